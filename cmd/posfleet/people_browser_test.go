package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/server"
)

// The browser tests of people at work: a crew on its
// phone, a viewer, and a person who reads Chinese in UTC+8, each signed in
// with a real browser (Debian's chromium) against the real server run in
// process, on a fleet of two regions with job-sheet columns that was
// imported through the API and reports over MQTT. Each page is saved at
// 390 px and 1440 px as out/screenshots/<role>-<page>-<width>.png.

// The fleet of the people tests: tenant acme, two terminals in chengdu,
// two in shanghai, each site with an address, a contact, a phone and
// opening hours (the job sheet's optional columns, PROTOCOL §4).
var peopleSites = []struct {
	terminal, model, merchant, site, region, address, contact, phone string
	lat, lon                                                         float64
}{
	{"T-0001", "A920", "春熙路便利店", "春熙路店", "chengdu", "成都市锦江区春熙路 88 号", "王经理", "+86 28 8666 1234", 30.6575, 104.0806},
	{"T-0002", "A920", "宽窄巷子茶馆", "宽窄巷子店", "chengdu", "成都市青羊区宽窄巷子 12 号", "李老板", "028-8765 4321", 30.6696, 104.0553},
	{"T-0003", "A80", "南京路书店", "南京路店", "shanghai", "上海市黄浦区南京东路 300 号", "张店长", "+86 21 6350 0000", 31.2355, 121.4737},
	{"T-0004", "A80", "徐家汇面馆", "徐家汇店", "shanghai", "上海市徐汇区漕溪北路 1 号", "刘师傅", "021-6487 1111", 31.1955, 121.4376},
}

const (
	peoplePassword = "correct horse battery staple"
	peopleZone     = "Asia/Shanghai"
	peoplePolicy   = "https://updates.example.net/a920-2.4.3.bin"
	peopleSHA      = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// The people signed in (made through POST /api/v1/users): names that are
// no English words, so that the allow-list of the language check stays
// free of them.
var peopleUsers = []struct {
	name    string
	role    posfleet.Role
	regions []string
}{
	{"wangwei", posfleet.RoleCrew, []string{"chengdu"}},
	{"liuyang", posfleet.RoleViewer, nil},
	{"zhangli", posfleet.RoleTenantAdmin, nil},
}

// peopleFleet is the server of the people tests with its fleet reporting.
type peopleFleet struct {
	srv     *server.Server
	base    string
	admin   string // an administrator's API token
	alarmID string // T-0002's tamper alarm
	// data are the values of the fleet as a person may see them on a page
	// (IDs, models, versions, names, addresses, fault codes, the policy's
	// address): the allow-list of the language check is built from them.
	data []string
}

// newPeopleFleet starts the server, imports the fleet through the API,
// makes the users and has the terminals report: T-0001 and T-0003 a
// printer jam, T-0002 a tamper (an alarm); every terminal its firmware,
// heartbeats and a few sales in CNY.
func newPeopleFleet(t *testing.T) *peopleFleet {
	t.Helper()
	influx := influxtest.Start(t)
	srv := testServer(t, influx, len(peopleSites))
	admin, err := srv.Users().CreateToken(context.Background(), "ops7", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	f := &peopleFleet{srv: srv, base: "http://" + srv.HTTPAddr().String(), admin: admin}
	f.data = append(f.data, "ops7", peoplePolicy, peopleSHA, peopleZone)
	for _, l := range locale.Languages {
		f.data = append(f.data, locale.LanguageName(l))
	}
	for _, fl := range posfleet.FlagNames {
		f.data = append(f.data, string(fl)) // flag codes shown as data
	}

	var csv strings.Builder
	csv.WriteString("tenant,terminal,model,merchant,site,region,lat,lon,secret,address,contact,phone,opening_hours\n")
	for i, s := range peopleSites {
		fmt.Fprintf(&csv, "acme,%s,%s,%s,%s,%s,%g,%g,%s,%s,%s,%s,09:00-22:00\n",
			s.terminal, s.model, s.merchant, s.site, s.region, s.lat, s.lon, secretOf(i+1), s.address, s.contact, s.phone)
		f.data = append(f.data, s.terminal, s.model, s.merchant, s.site, s.region, s.address, s.contact, s.phone, "acme")
	}
	f.api(t, "POST", "/api/v1/terminals/import", csv.String(), http.StatusOK)
	f.api(t, "PUT", "/api/v1/policy", fmt.Sprintf("models:\n  A920:\n    target: 2.4.3\n    blocked: [2.4.1]\n    url: %s\n    sha256: %s\n", peoplePolicy, peopleSHA), http.StatusOK)
	for _, u := range peopleUsers {
		b, _ := json.Marshal(map[string]any{"name": u.name, "tenant": "acme", "password": peoplePassword, "role": u.role, "regions": u.regions})
		f.api(t, "POST", "/api/v1/users", string(b), http.StatusCreated)
		f.data = append(f.data, u.name)
	}

	addr := srv.MQTTAddr().String()
	now := time.Now().UTC().Truncate(time.Second)
	for i, s := range peopleSites {
		n := i + 1
		if n == 2 {
			tamper(t, addr, n) // its own connection: status, firmware 2.4.1, a heartbeat, the tamper
			f.data = append(f.data, "2.4.1", "secure_element", "TAMPER", "case opened")
			continue
		}
		c := mustConnect(t, addr, n)
		seq := 0
		pub := func(ch string, retained bool, body string, args ...any) {
			seq++
			publish(t, c, fmt.Sprintf("fleet/v1/acme/%s/%s", s.terminal, ch), 1, retained, fmt.Sprintf(`{"seq":%d,`, seq)+fmt.Sprintf(body, args...)+"}")
		}
		fw := fmt.Sprintf("2.4.%d", 2+n%2)
		publish(t, c, fmt.Sprintf("fleet/v1/acme/%s/status", s.terminal), 1, true, `{"online":true}`)
		pub("fw", true, `"ts":%q,"model":%q,"serial":"SN%04d","firmware":%q,"app":"1.2.0"`, now.Add(-time.Hour).Format(time.RFC3339), s.model, n, fw)
		f.data = append(f.data, fw, fmt.Sprintf("SN%04d", n), "1.2.0")
		for k := 3; k >= 0; k-- {
			pub("hb", false, `"ts":%q,"battery_pct":%d,"charging":false,"signal_dbm":%d,"net":"4g","host_rtt_ms":%d,"paper":"ok"`,
				now.Add(-time.Duration(k)*10*time.Minute).Format(time.RFC3339), 60+k*5, -70-k, 250+k*20)
		}
		for k := range 3 {
			pub("txn", false, `"ts":%q,"id":"tx-%d-%d","type":"sale","entry":"tap","currency":"CNY","amount_entered":40959,"amount_charged":40959,"result":"approved","rc":"00","receipt":"printed"`,
				now.Add(-time.Duration(k)*7*time.Minute).Format(time.RFC3339), n, k)
			f.data = append(f.data, fmt.Sprintf("tx-%d-%d", n, k))
		}
		if s.region == "chengdu" || n == 3 {
			pub("fault", false, `"ts":%q,"component":"printer","code":"PAPER_JAM","severity":"warning","state":"raised","detail":"roll stuck"`, now.Format(time.RFC3339))
			f.data = append(f.data, "printer", "PAPER_JAM", "roll stuck")
		}
	}
	waitFor(t, "the work list of both regions and the sales in InfluxDB", func() bool {
		_, b := apiCall(t, srv, admin, "GET", "/api/v1/worklist", "")
		return strings.Contains(string(b), "T-0001") && strings.Contains(string(b), "T-0002") && strings.Contains(string(b), "T-0003") &&
			count(t, influx, "txn", "seq") >= 9
	})
	waitFor(t, "T-0002's tamper alarm", func() bool {
		var r struct {
			Alarms []posfleet.Alarm `json:"alarms"`
		}
		_, b := apiCall(t, srv, admin, "GET", "/api/v1/alarms?kind=tamper&terminal=T-0002", "")
		if json.Unmarshal(b, &r) == nil && len(r.Alarms) > 0 {
			f.alarmID = r.Alarms[0].ID
		}
		return f.alarmID != ""
	})
	f.data = append(f.data, f.alarmID)
	return f
}

// api makes one call with the administrator's token and fails the test
// unless its status is want.
func (f *peopleFleet) api(t *testing.T, method, path, body string, want int) []byte {
	t.Helper()
	code, b := apiCall(t, f.srv, f.admin, method, path, body)
	if code != want {
		t.Fatalf("%s %s: %d %s; want %d", method, path, code, b, want)
	}
	return b
}

// tab is one person's browser (chromium started once per test).
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	role string // the screenshots' prefix
}

func (f *peopleFleet) tab(t *testing.T, role string) *tab {
	return &tab{t: t, ctx: browser(t), base: f.base, role: role}
}

func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval runs js (an expression, awaited when a promise) and returns its
// value as a string.
func (b *tab) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return s
}

// strings is eval of js that returns an array of strings (JSON).
func (b *tab) strings(js string) []string {
	b.t.Helper()
	var out []string
	if s := b.eval(`JSON.stringify(` + js + `)`); json.Unmarshal([]byte(s), &out) != nil {
		b.t.Fatalf("%s: not an array of strings: %s", js, s)
	}
	return out
}

// open navigates to path and returns the answer's HTTP status.
func (b *tab) open(path string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Navigate(b.base+path))
	if err != nil || resp == nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	return resp.Status
}

func (b *tab) signIn(name string, width int64) {
	b.t.Helper()
	byID := func(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }
	b.do("sign in as "+name,
		chromedp.EmulateViewport(width, 900),
		chromedp.Navigate(b.base+"/"),
		chromedp.WaitVisible(byID("signin")),
		chromedp.SendKeys(byID("signin-name"), name),
		chromedp.SendKeys(byID("signin-password"), peoplePassword),
		chromedp.Click(byID("signin-submit")),
		chromedp.WaitVisible(byID("user")),
	)
}

// waitFor polls cond (a JS expression) for up to 10 s: a submitted form
// returns before the next page is there.
func (b *tab) waitFor(what, cond string) {
	b.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if s, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`)); err == nil && s {
			return
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(b.ctx, chromedp.Location())
			text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 600)`))
			b.t.Fatalf("the page never showed %s (%s); at %s:\n%s", what, cond, loc, text)
		}
	}
}

// shoot saves the page at a phone's and a desktop's width, and leaves the
// viewport at the desktop's.
func (b *tab) shoot(page string) {
	b.t.Helper()
	for _, w := range []int64{390, 1440} {
		shootAt(b.t, b.ctx, fmt.Sprintf("%s-%s-%d.png", b.role, page, w), w, 900)
	}
}

// testIDs lists the text of every element with data-testid id.
func testIDs(id, what string) string {
	return `Array.from(document.querySelectorAll('[data-testid="` + id + `"]')).map(e => ` + what + `)`
}

// TestBrowserCrew: a crew of region chengdu signs in on its phone, sees
// only its region's terminals on the job sheet and the terminal list, each
// site with its address, a tel: link and geo: and OpenStreetMap links to
// its address, opens a site, marks a visit done with a note and sees it
// recorded; another region's terminal is refused with the error page
// inside the layout.
func TestBrowserCrew(t *testing.T) {
	f := newPeopleFleet(t)
	b := f.tab(t, "crew")
	b.signIn("wangwei", 390)

	if st := b.open("/worklist"); st != http.StatusOK {
		t.Fatalf("GET /worklist: %d", st)
	}
	b.do("the job sheet", chromedp.WaitVisible(chromedp.CSS(`[data-testid="worklist-item"]`)))
	if regions := b.strings(testIDs("worklist-region-group", "e.dataset.region")); !slices.Equal(regions, []string{"chengdu"}) {
		t.Errorf("the crew's job sheet shows regions %q; want only chengdu", regions)
	}
	if terms := b.strings(testIDs("worklist-terminal", "e.textContent.trim()")); !slices.Equal(sorted(terms), []string{"T-0001", "T-0002"}) {
		t.Errorf("the crew's job sheet lists %q; want T-0001 and T-0002 (chengdu), not T-0003 (shanghai)", terms)
	}
	// Each site: its address, a tap-to-call link, a geo: URI and an
	// OpenStreetMap search for its address.
	var sites []struct{ Site, Address, Tel, Geo, OSM string }
	if err := json.Unmarshal([]byte(b.eval(`JSON.stringify(Array.from(document.querySelectorAll('[data-testid="worklist-group"]')).map(d => {
		const a = id => (d.querySelector('[data-testid="' + id + '"]') || {}).getAttribute?.("href") || "";
		return {Site: d.dataset.site, Address: (d.querySelector('[data-testid="worklist-address"]') || {textContent: ""}).textContent.trim(),
			Tel: a("worklist-tel"), Geo: a("worklist-geo"), OSM: a("worklist-osm")};
	}))`)), &sites); err != nil || len(sites) != 2 {
		t.Fatalf("the job sheet's sites: %v %+v; want 2", err, sites)
	}
	for _, got := range sites {
		i := -1
		for k, s := range peopleSites {
			if s.site == got.Site {
				i = k
			}
		}
		if i < 0 {
			t.Errorf("a site %q on the job sheet that is not the crew's", got.Site)
			continue
		}
		want := peopleSites[i]
		if got.Address != want.address {
			t.Errorf("site %s: address %q; want %q", got.Site, got.Address, want.address)
		}
		if wantTel := "tel:" + strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' || r == '+' {
				return r
			}
			return -1
		}, want.phone); got.Tel != wantTel {
			t.Errorf("site %s: phone link %q; want %q", got.Site, got.Tel, wantTel)
		}
		if q, ok := strings.CutPrefix(got.Geo, "geo:0,0?q="); !ok || unescape(q) != want.address {
			t.Errorf("site %s: map link %q; want geo:0,0?q=<its address>", got.Site, got.Geo)
		}
		if u, err := url.Parse(got.OSM); err != nil || u.Scheme != "https" || u.Host != "www.openstreetmap.org" || u.Path != "/search" || u.Query().Get("query") != want.address {
			t.Errorf("site %s: OpenStreetMap link %q; want https://www.openstreetmap.org/search?query=<its address>", got.Site, got.OSM)
		}
	}
	// The most pressing site is open; the crew opens the other one.
	closed := `document.querySelector('details[data-testid="worklist-group"]:not([open])')`
	if b.eval(`String(!!`+closed+`)`) != "true" {
		t.Fatal("every site open on the phone; want the sites after the first collapsed")
	}
	site := b.eval(closed + `.dataset.site`)
	b.do("open a site", chromedp.Click(chromedp.CSS(`details[data-site="`+site+`"] > summary`)))
	b.waitFor("the site opened", `document.querySelector('details[data-site="`+site+`"]').open && document.querySelector('details[data-site="`+site+`"] [data-testid="worklist-tel"]').offsetParent`)
	b.shoot("worklist")

	// Visit done on T-0001, with a note.
	const note = "换了打印纸，打印正常"
	item := `[data-terminal="acme/T-0001"] `
	b.do("the visit note", chromedp.SendKeys(chromedp.CSS(item+`[data-testid="worklist-note"]`), note), chromedp.Click(chromedp.CSS(item+`[data-testid="worklist-done"]`)))
	b.waitFor("the visit's notice", `document.querySelector('[data-testid="notice"]')`)
	if left := b.eval(`String(!!document.querySelector('[data-terminal="acme/T-0001"]'))`); left != "false" {
		t.Error("T-0001 is still on the job sheet after its visit")
	}
	b.shoot("worklist-done")
	if st := b.open("/terminals/acme/T-0001"); st != http.StatusOK {
		t.Fatalf("the crew's own terminal: %d", st)
	}
	if rows := strings.Join(b.strings(testIDs("service-row", "e.textContent")), "\n"); !strings.Contains(rows, note) || !strings.Contains(rows, "wangwei") {
		t.Errorf("the terminal's visits do not show the crew's visit with its note:\n%s", rows)
	}
	b.shoot("terminal")

	b.open("/terminals?region=shanghai")
	if terms := b.strings(testIDs("terminal-link", "e.textContent.trim()")); !slices.Equal(sorted(terms), []string{"T-0001", "T-0002"}) {
		t.Errorf("the crew's terminal list (asking for shanghai) shows %q; want T-0001 and T-0002", terms)
	}
	b.shoot("terminals")

	// Another region's terminal: refused, on an error page with the
	// navigation. (The server answers 404, as for another tenant's
	// terminal, so that a crew cannot probe which terminals exist.)
	st := b.open("/terminals/acme/T-0003")
	if st != http.StatusForbidden && st != http.StatusNotFound {
		t.Errorf("another region's terminal: %d; want it refused", st)
	}
	if b.eval(`String(!!document.querySelector('[data-testid="error-page"]') && !!document.querySelector('[data-testid="nav"]') && !document.querySelector('[data-testid="terminal-title"]'))`) != "true" {
		t.Errorf("another region's terminal: not an error page inside the layout:\n%s", b.eval(`document.body.innerText`))
	}
	t.Logf("another region's terminal: %d, %q", st, b.eval(`document.querySelector('[data-testid="error-message"]')?.textContent || ""`))
	b.shoot("other-region")
}

func sorted(s []string) []string { slices.Sort(s); return s }

func unescape(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return u
}

// TestBrowserViewer: a viewer sees no form that acts on any page (no
// command, firmware update, visit, alarm action), and the server refuses
// the POSTs of each (403) even with a valid CSRF token of its session;
// the same token is good for what a viewer may do (its own preferences).
func TestBrowserViewer(t *testing.T) {
	f := newPeopleFleet(t)
	b := f.tab(t, "viewer")
	b.signIn("liuyang", 1440)
	pages := []struct{ name, path string }{
		{"overview", "/"},
		{"terminals", "/terminals"},
		{"terminal", "/terminals/acme/T-0002"},
		{"worklist", "/worklist"},
		{"firmware", "/firmware"},
		{"alarms", "/alarms"},
		{"alarm", "/alarms/" + f.alarmID},
	}
	for _, p := range pages {
		if st := b.open(p.path); st != http.StatusOK {
			t.Errorf("%s: %d", p.path, st)
			continue
		}
		// A form that posts (but signing out) or a button outside a form
		// (acting through script) is an action.
		if acts := b.strings(`Array.from(document.querySelectorAll("form")).filter(f => (f.getAttribute("method") || "get").toLowerCase() === "post" && f.getAttribute("action") !== "/logout")
			.map(f => "form " + f.getAttribute("action") + ": " + f.innerText.replace(/\s+/g, " ").trim().slice(0, 60))
			.concat(Array.from(document.querySelectorAll("button, input[type=submit]")).filter(e => !e.closest("form")).map(e => "button " + e.textContent.trim()))`); len(acts) > 0 {
			t.Errorf("%s shows a viewer actions:\n  %s", p.path, strings.Join(acts, "\n  "))
		}
		b.shoot(p.name)
	}

	posts := []struct{ path, form string }{
		{"/terminals/acme/T-0001/commands", "type=reboot"},
		{"/terminals/acme/T-0001/serviced", "note=seen"},
		{"/firmware/update", "model=A920&version=2.4.3&ref=acme:T-0001"},
		{"/firmware/policy", "policy=models: {}"},
		{"/worklist/site-done", "ref=acme:T-0001&ref=acme:T-0003"},
		{"/alarms/" + f.alarmID + "/acknowledge", ""},
		{"/alarms/" + f.alarmID + "/comment", "text=seen"},
		{"/alarms/bulk", "action=acknowledge&id=" + f.alarmID},
		{"/admin/users", "name=mallory&tenant=acme&password=a long enough password&role=operator"},
	}
	b.open("/terminals/acme/T-0001")
	post := func(path, form string) string {
		return b.eval(`(async () => {
			const body = new URLSearchParams(` + jsString(form) + `);
			body.set("csrf", document.querySelector('input[name="csrf"]').value);
			const r = await fetch(` + jsString(path) + `, {method: "POST", body, credentials: "same-origin", redirect: "manual"});
			return String(r.status);
		})()`)
	}
	for _, p := range posts {
		if got := post(p.path, p.form); got != "403" {
			t.Errorf("a viewer's POST %s: %s; want 403", p.path, got)
		}
	}
	// The token was valid: the viewer's own preferences are saved with it.
	if got := post("/account", "language=en&time_zone=UTC"); got != "200" && got != "0" && !strings.HasPrefix(got, "3") {
		t.Errorf("a viewer's POST /account with the same CSRF token: %s; want it accepted", got)
	}
	var d struct{ Alarm posfleet.Alarm }
	if json.Unmarshal(f.api(t, "GET", "/api/v1/alarms/"+f.alarmID, "", http.StatusOK), &d) != nil || d.Alarm.State != posfleet.AlarmOpen {
		t.Errorf("after the viewer's refused POSTs the alarm is %+v; want open", d.Alarm)
	}
	var me struct {
		Language string `json:"language"`
		TimeZone string `json:"time_zone"`
	}
	if err := json.Unmarshal([]byte(b.eval(`fetch("/api/v1/me/preferences", {credentials: "same-origin"}).then(r => r.text())`)), &me); err != nil || me.TimeZone != "UTC" {
		t.Errorf("the viewer's preferences after its POST /account: %+v %v", me, err)
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

// zhPages are the pages a person uses, as a zh-CN user in Asia/Shanghai
// sees them; money marks those that show amounts.
var zhPages = []struct {
	name, path string
	money      bool
}{
	{"overview", "/", false},
	{"terminals", "/terminals", false},
	{"terminal", "/terminals/acme/T-0001", true},
	{"worklist", "/worklist", false},
	{"firmware", "/firmware", false},
	{"campaigns", "/campaigns", false},
	{"campaign-new", "/campaigns/new?model=A920&target=2.4.3&versions=2.4.1", false},
	{"incidents", "/incidents", false},
	{"security", "/security", false},
	{"alarms", "/alarms", false},
	{"alarm", "/alarms/{alarm}", false},
	{"notifications", "/notifications", false},
	{"admin", "/admin", false},
	{"audit", "/audit", false},
	{"account", "/account", false},
}

var (
	asciiWord = regexp.MustCompile(`[A-Za-z]{4,}`)
	// A time as pages show it, and what follows it.
	shownTime = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(.{0,6})`)
	// "UTC" not followed by an offset: a time in UTC, or "Times are UTC".
	bareUTC = regexp.MustCompile(`\bUTC(?:$|[^+\-\d])`)
)

// allowWords are the ASCII words (4 letters or more) of the fleet's data,
// which a Chinese page shows as they are, and the names and units no
// language translates.
func allowWords(data []string) map[string]bool {
	allow := map[string]bool{"posfleet": true, "OpenStreetMap": true, "SHA": true, "dBm": true, "Excel": true, "YAML": true, "JSON": true, "Mann": true, "Whitney": true}
	for _, s := range data {
		for _, w := range asciiWord.FindAllString(s, -1) {
			allow[w] = true
		}
	}
	return allow
}

// zhProblems lists what on a page's visible text is not Chinese with
// Asia/Shanghai times: English words outside the allow-list, times not in
// UTC+8, a bare UTC, and no ¥ on a page with amounts.
func zhProblems(text string, allow map[string]bool, money bool) []string {
	var out []string
	seen := map[string]bool{}
	var english []string
	for _, w := range asciiWord.FindAllString(text, -1) {
		if !allow[w] && !seen[w] {
			seen[w] = true
			english = append(english, w)
		}
	}
	if len(english) > 0 {
		out = append(out, fmt.Sprintf("%d untranslated English words: %s", len(english), strings.Join(english, " ")))
	}
	for _, m := range shownTime.FindAllStringSubmatch(text, -1) {
		if !strings.HasPrefix(m[1], " UTC+8") {
			out = append(out, fmt.Sprintf("a time not in UTC+8: %q", m[0]))
			break
		}
	}
	if m := bareUTC.FindString(text); m != "" {
		out = append(out, fmt.Sprintf("a bare UTC: %q", m))
	}
	if money && !strings.Contains(text, "¥") {
		out = append(out, "no amount in ¥")
	}
	return out
}

// TestBrowserChinese: a tenant administrator chooses Chinese and
// Asia/Shanghai on its account page and sees every page it uses in
// Chinese: html lang zh-CN, every time in UTC+8, amounts in ¥, and no
// English but the fleet's own data; no catalogue key is missing.
func TestBrowserChinese(t *testing.T) {
	f := newPeopleFleet(t)
	b := f.tab(t, "zh-CN")
	b.signIn("zhangli", 1440)
	byID := func(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }
	b.open("/account")
	b.eval(`(() => {
		document.querySelector('[data-testid="account-language"]').value = "zh-CN";
		document.querySelector('[data-testid="account-zone"]').value = ` + jsString(peopleZone) + `;
		return "";
	})()`)
	b.do("save Chinese and Asia/Shanghai", chromedp.Click(byID("account-save")))
	b.waitFor("the preferences saved", `document.querySelector('[data-testid="account-saved"]') && document.documentElement.lang === "zh-CN"`)

	// The table covers every page of the navigation.
	for _, href := range b.strings(`Array.from(document.querySelectorAll('[data-testid="nav"] a')).map(a => a.getAttribute("href"))`) {
		if !slices.ContainsFunc(zhPages, func(p struct {
			name, path string
			money      bool
		}) bool {
			return p.path == href
		}) {
			t.Errorf("the navigation's %s is not in zhPages", href)
		}
	}
	allow := allowWords(f.data)
	failed := map[string][]string{}
	for _, p := range zhPages {
		path := strings.ReplaceAll(p.path, "{alarm}", f.alarmID)
		if st := b.open(path); st != http.StatusOK {
			failed[p.name] = append(failed[p.name], fmt.Sprintf("status %d", st))
			continue
		}
		if lang := b.eval(`document.documentElement.lang`); lang != "zh-CN" {
			failed[p.name] = append(failed[p.name], fmt.Sprintf("html lang %q", lang))
		}
		// Codes shown as codes (<code>: an audit entry's action code beside
		// its name, the fields a request asked for) are data, not prose.
		text := b.eval(`(() => { document.querySelectorAll("code, pre").forEach(e => e.style.display = "none"); return document.body.innerText })()`)
		failed[p.name] = append(failed[p.name], zhProblems(text, allow, p.money)...)
		b.shoot(p.name)
	}
	// The navigation (the frame) is translated on every page.
	if nav := zhProblems(b.eval(`document.querySelector('[data-testid="nav"]').parentElement.innerText`), allow, false); len(nav) > 0 {
		failed["navigation"] = nav
	}
	var passed []string
	for _, p := range zhPages {
		if len(failed[p.name]) == 0 {
			passed = append(passed, p.name)
		}
	}
	t.Logf("all Chinese in UTC+8: %s", strings.Join(passed, ", "))
	for _, p := range zhPages {
		if len(failed[p.name]) > 0 {
			t.Errorf("%s (%s) is not all Chinese in UTC+8:\n  %s", p.name, p.path, strings.Join(failed[p.name], "\n  "))
		}
	}
	if len(failed["navigation"]) > 0 {
		t.Errorf("the navigation: %s", strings.Join(failed["navigation"], "; "))
	}
	if m := locale.Missing(); len(m) > 0 {
		t.Errorf("messages missing from the catalogues: %q", m)
	}
}

// TestZhProblems: the language check of TestBrowserChinese finds English,
// UTC times and missing ¥, and passes Chinese with data values.
func TestZhProblems(t *testing.T) {
	allow := allowWords([]string{"T-0001", "A920", "PAPER_JAM", "secure_element", "wangwei"})
	ok := "终端 T-0001 (A920) 打印机 PAPER_JAM · secure_element\n最近 2026-03-02 17:30:00 UTC+8 · 金额 ¥409.59 · wangwei · posfleet -70 dBm"
	if p := zhProblems(ok, allow, true); len(p) > 0 {
		t.Errorf("Chinese with data: %q", p)
	}
	for _, bad := range []struct {
		text  string
		money bool
	}{
		{"终端 T-0001 Last seen", false},
		{"最近 2026-03-02 09:30:00 UTC", false},
		{"最近 2026-03-02 09:30", false},
		{"时间均为 UTC。", false},
		{"金额 409.59", true},
	} {
		if p := zhProblems(bad.text, allow, bad.money); len(p) == 0 {
			t.Errorf("%q passes", bad.text)
		}
	}
}

// TestAccountPreferencesApply: the language and time zone a person chooses
// on /account apply to its pages at once, in the same session (the
// session reads them as they are now), and GET /api/v1/me/preferences
// answers them.
func TestAccountPreferencesApply(t *testing.T) {
	influx := influxtest.Start(t)
	srv := testServer(t, influx, 1)
	if err := srv.Users().AddUser(context.Background(), "zhangli", "acme", peoplePassword); err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.HTTPAddr().String()
	c := signInWeb(t, base, "zhangli", peoplePassword)
	read := func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(read(c.Get(base + "/account")))
	if m == nil {
		t.Fatal("no CSRF token on /account")
	}
	page := read(c.PostForm(base+"/account", url.Values{"csrf": {m[1]}, "language": {"zh-CN"}, "time_zone": {peopleZone}}))
	if !strings.Contains(page, `lang="zh-CN"`) || !strings.Contains(page, "UTC+8") {
		t.Errorf("the page after choosing zh-CN and %s is not Chinese in UTC+8:\n%.600s", peopleZone, page)
	}
	var me struct {
		Language string `json:"language"`
		TimeZone string `json:"time_zone"`
	}
	if got := read(c.Get(base + "/api/v1/me/preferences")); json.Unmarshal([]byte(got), &me) != nil || me.Language != "zh-CN" || me.TimeZone != peopleZone {
		t.Errorf("GET /api/v1/me/preferences: %s", got)
	}
}
