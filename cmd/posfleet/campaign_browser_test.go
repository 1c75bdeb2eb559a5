package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/posfleet/posfleet"
	firmwareclient "github.com/posfleet/posfleet/firmware-client"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/servertest"
)

// The campaign pages' browser test, against the real server (the
// campaign runner, its store and the health engine) and real terminal
// clients over MQTT that download, verify and install what they are sent:
// a release engineer creates a campaign through the form (preview, then
// confirm), watches the canary install on its page (which refreshes
// itself), pauses it during the canary's soak and resumes it, and sees it
// finish; each page at 1440 px and 390 px without sideways scrolling.
// Screenshots: out/screenshots/campaign-<page>-<width>.png.

// campaignTerminals is the fleet of the test: six A920s on 2.4.1.
const campaignTerminals = 6

func TestCampaignBrowser(t *testing.T) {
	site := newCampaignSite(t)
	// The firmware policy names the target and its package: the Firmware
	// page links to a campaign for the outdated A920s.
	code, body := apiDo(t, "PUT", site.base+"/api/v1/policy", site.token,
		fmt.Sprintf("models:\n  A920:\n    target: 2.5.2\n    url: %s\n    sha256: %s\n", site.pkgURL, site.pkgSHA))
	if code != http.StatusOK {
		t.Fatalf("PUT /api/v1/policy: %d %s", code, body)
	}
	b := &tab{t: t, ctx: browser(t), base: site.base, role: "campaign"}
	started := time.Now()
	defer func() { t.Logf("the browser's part took %s of its 60 s", time.Since(started).Round(time.Second)) }()
	byID := func(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }
	// noSideways checks the page at 390 px does not scroll sideways.
	noSideways := func(page string) {
		t.Helper()
		b.do("phone width", chromedp.EmulateViewport(390, 844))
		if w := b.eval(`String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("%s at 390 px is %s px wide: it scrolls sideways", page, w)
		}
		b.do("desktop width", chromedp.EmulateViewport(1440, 900))
	}
	// waitLong polls cond (JS) for up to 25 s: the page refreshes itself
	// every 10 s.
	waitLong := func(what, cond string) {
		t.Helper()
		for deadline := time.Now().Add(25 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			if s, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`)); err == nil && s {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page never showed %s", what)
			}
		}
	}
	text := func(id string) string {
		return b.eval(`(document.querySelector('[data-testid="` + id + `"]') || {innerText: ""}).innerText.trim()`)
	}

	b.signIn("zhaolei", 1440)
	b.open("/campaigns")
	b.waitFor("the campaign list", `document.querySelector('[data-testid="campaign-new"]')`)
	b.shoot("list")
	noSideways("the list")

	// The form, as the Firmware page's link opens it for the A920s.
	b.open("/firmware")
	b.waitFor("the campaign link", `document.querySelector('[data-testid="campaign-create-link"]')`)
	if got, want := text("campaign-create-link"), fmt.Sprintf("Create a campaign for %d A920 terminals", campaignTerminals); got != want {
		t.Errorf("the Firmware page's link: %q, want %q", got, want)
	}
	b.do("open the campaign form", chromedp.Click(byID("campaign-create-link")), chromedp.WaitVisible(byID("campaign-form")))
	for id, want := range map[string]string{"field-name": "A920 to 2.5.2", "field-model": "A920", "field-target": "2.5.2",
		"field-package-url": site.pkgURL, "field-package-sha256": site.pkgSHA, "field-versions": "2.4.1"} {
		if got := b.eval(`document.querySelector('[data-testid="` + id + `"]').value`); got != want {
			t.Errorf("the prefilled form's %s: %q, want %q", id, got, want)
		}
	}
	// A canary of 2 with a short soak (time to pause it), then all; at
	// any time.
	b.eval(`(() => {
		const set = (sel, v) => { document.querySelector(sel).value = v; };
		set('[name="canary"]', "2"); set('[name="canary_soak"]', "20s");
		const p = document.querySelectorAll('[name="wave_percent"]'), s = document.querySelectorAll('[name="wave_soak"]');
		p[0].value = "100"; s[0].value = "1s";
		for (let i = 1; i < p.length; i++) { p[i].value = ""; s[i].value = ""; }
		document.querySelector('[name="window_mode"][value="any"]').checked = true;
		return "ok";
	})()`)
	b.shoot("form")
	noSideways("the form")
	b.do("preview", chromedp.Click(byID("campaign-preview")), chromedp.WaitVisible(byID("preview-selected")))
	if got, want := text("preview-selected"), fmt.Sprintf("%d A920 terminals selected to update to 2.5.2.", site.selected); got != want {
		t.Errorf("preview: %q, want %q", got, want)
	}
	if got := text("preview-waves"); got != "Wave sizes: 2 / 4" {
		t.Errorf("preview waves: %q", got)
	}
	b.shoot("preview")
	noSideways("the preview")
	b.do("create", chromedp.Click(byID("campaign-create")))
	b.waitFor("the new campaign's page", `document.querySelector('[data-testid="campaign-state"]') && document.querySelector('[data-testid="notice"]')`)
	if got := text("campaign-state"); got != "running" {
		t.Errorf("a new campaign is %q", got)
	}
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	id := strings.TrimPrefix(strings.TrimSuffix(loc, "?done=created"), site.base+"/campaigns/")
	if err != nil || id == "" || strings.Contains(id, "/") {
		t.Fatalf("the new campaign's page is at %s (%v)", loc, err)
	}

	// Watching: the page refreshes itself (no reload) as the waves fill.
	waitLong("the canary installed, shown by the page's own refresh", `document.documentElement.getAttribute("data-refreshed") &&
		document.querySelector('[data-testid="wave"][data-wave="0"] [data-testid="wave-installed"]').innerText.trim() === "2"`)
	if got := text("campaign-wave"); !strings.HasPrefix(got, "wave ") {
		t.Errorf("current wave %q", got)
	}
	b.shoot("running")
	noSideways("the running campaign")

	// Pause, with a confirmation that says how many updates are under way.
	b.do("pause", chromedp.Click(byID("campaign-pause")), chromedp.WaitVisible(byID("confirm-question")))
	if q := text("confirm-question"); !strings.HasPrefix(q, "Pause “A920 to 2.5.2”?") {
		t.Errorf("pause question %q", q)
	}
	b.shoot("confirm-pause")
	noSideways("the confirmation")
	b.do("note", chromedp.SendKeys(byID("confirm-note"), "waiting for the acquirer's go"))
	b.do("confirm pause", chromedp.Click(byID("confirm-submit")))
	b.waitFor("paused", `(document.querySelector('[data-testid="campaign-state"]') || {innerText: ""}).innerText.trim() === "paused"`)
	if why := text("campaign-why"); !strings.HasPrefix(why, "Paused by zhaolei at ") {
		t.Errorf("why paused: %q", why)
	}
	b.shoot("paused")
	if st := site.campaign(t, id).State; st != posfleet.CampaignPaused {
		t.Fatalf("the page says paused, the campaign is %s", st)
	}

	// Resume, with the count still to update.
	b.do("resume", chromedp.Click(byID("campaign-resume")), chromedp.WaitVisible(byID("confirm-question")))
	if q := text("confirm-question"); !strings.Contains(q, "still to be updated") {
		t.Errorf("resume question %q", q)
	}
	b.do("confirm resume", chromedp.Click(byID("confirm-submit")))
	b.waitFor("running again", `(document.querySelector('[data-testid="campaign-state"]') || {innerText: ""}).innerText.trim() === "running"`)
	if st := site.campaign(t, id).State; st != posfleet.CampaignRunning && st != posfleet.CampaignFinished {
		t.Fatalf("the page says running, the campaign is %s", st)
	}
	if timeline := strings.Join(b.strings(testIDs("event", `e.getAttribute("data-kind")`)), ","); !strings.Contains(timeline, "paused,resumed") {
		t.Errorf("timeline %s: no pause then resume", timeline)
	}
	// The rest of the waves, watched without reloading.
	waitLong("the campaign finished", `(document.querySelector('[data-testid="campaign-state"]') || {innerText: ""}).innerText.trim() === "finished"`)
	if got, want := text("campaign-progress"), fmt.Sprintf("%d of %d terminals updated", site.selected, site.selected); got != want {
		t.Errorf("finished: %q, want %q", got, want)
	}
	// Its gates, judged by the real runner: each passed, in words.
	if gates := b.strings(testIDs("gate", `e.getAttribute("data-passed")`)); len(gates) == 0 || slices.Contains(gates, "false") {
		t.Errorf("gates of the finished campaign: %v", gates)
	}
	b.shoot("finished")
	noSideways("the finished campaign")
	for i := 1; i <= campaignTerminals; i++ {
		if st, _ := site.srv.Health().FirmwareState(servertest.Ref(i)); st.Firmware != "2.5.2" {
			t.Errorf("%s runs %s after the campaign", servertest.Ref(i), st.Firmware)
		}
	}
}

// campaignSite is the real server with its terminals online on 2.4.1,
// a package to download and a release engineer (an operator of acme).
type campaignSite struct {
	srv            *servertest.Server
	base           string
	token          string // an administrator's API token
	pkgURL, pkgSHA string
	selected       int
}

func newCampaignSite(t *testing.T) *campaignSite {
	t.Helper()
	srv := servertest.Start(t, campaignTerminals, servertest.WithConfig(func(c *server.Config) {
		c.AllowHTTPFirmware = true // the package comes from a local test server
		c.Campaigns.MinSoak = 0
		c.CampaignInterval = 200 * time.Millisecond
	}))
	pkg := []byte("firmware 2.5.2 for the A920")
	sum := sha256.Sum256(pkg)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(pkg) }))
	t.Cleanup(files.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, campaignTerminals)
	t.Cleanup(func() {
		cancel()
		for range campaignTerminals {
			<-done
		}
	})
	for i := 1; i <= campaignTerminals; i++ {
		ref := servertest.Ref(i)
		c, err := firmwareclient.New(firmwareclient.Config{Broker: srv.URL(), Tenant: ref.Tenant, Terminal: ref.Terminal, Secret: servertest.Secret(i),
			StoreDir:          t.TempDir(),
			Inventory:         posfleet.Inventory{Model: "A920", Serial: "S" + ref.Terminal, Firmware: "2.4.1", App: "1.0.0"},
			HeartbeatInterval: time.Second,
			// Installing takes a moment, as on a terminal.
			Flash: func(ctx context.Context, _ firmwareclient.Update) error {
				time.Sleep(500 * time.Millisecond)
				return nil
			},
			ReconnectMax: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		go func() { c.Run(ctx); done <- struct{}{} }()
	}
	servertest.Eventually(t, 20*time.Second, "every terminal online on 2.4.1", func() bool {
		for i := 1; i <= campaignTerminals; i++ {
			st, ok := srv.Health().FirmwareState(servertest.Ref(i))
			if !ok || !st.Online || st.Firmware != "2.4.1" {
				return false
			}
		}
		return true
	})
	if err := srv.Server().Users().NewUser(context.Background(), posfleet.User{Name: "zhaolei", Tenant: servertest.Tenant, Role: posfleet.RoleOperator}, peoplePassword); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Server().Users().CreateToken(context.Background(), "ops", "*")
	if err != nil {
		t.Fatal(err)
	}
	return &campaignSite{srv: srv, token: tok, base: "http://" + srv.Server().HTTPAddr().String(), pkgURL: files.URL + "/a920-2.5.2.bin",
		pkgSHA: hex.EncodeToString(sum[:]), selected: campaignTerminals}
}

// campaign reads a campaign through the API, as an administrator.
func (s *campaignSite) campaign(t *testing.T, id string) posfleet.Campaign {
	t.Helper()
	code, b := apiDo(t, "GET", s.base+"/api/v1/campaigns/"+id, s.token, "")
	var out struct{ Campaign posfleet.Campaign }
	if code != http.StatusOK || json.Unmarshal(b, &out) != nil {
		t.Fatalf("GET /api/v1/campaigns/%s: %d %s", id, code, b)
	}
	return out.Campaign
}
