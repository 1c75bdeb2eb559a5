package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/influxdb"
	"github.com/posfleet/posfleet/web"
)

// fakeSeries stands in for InfluxDB: a falling battery over the second
// half of the span and a few transactions per result.
type fakeSeries struct {
	asked []string // tenant/terminal/span of each TerminalSeries call
	err   error
}

func (s *fakeSeries) TerminalSeries(_ context.Context, tenant, terminal string, span time.Duration, end time.Time) (influxdb.TerminalSeries, error) {
	s.asked = append(s.asked, fmt.Sprintf("%s/%s/%v", tenant, terminal, span))
	step, bucket := 10*time.Minute, time.Hour
	if span > 24*time.Hour {
		step, bucket = time.Hour, 6*time.Hour
	}
	ts := influxdb.TerminalSeries{Start: end.Add(-span), End: end, Step: step, Bucket: bucket, TxnsByResult: map[string][]influxdb.Point{}}
	for i := range 12 {
		at := end.Add(-span/2 + time.Duration(i)*step)
		ts.Battery = append(ts.Battery, influxdb.Point{At: at, Value: float64(90 - i)})
		ts.Signal = append(ts.Signal, influxdb.Point{At: at, Value: -70})
		ts.HostRTT = append(ts.HostRTT, influxdb.Point{At: at, Value: float64(200 + 10*i)})
	}
	for i := range int(span / bucket) {
		at := ts.Start.Add(time.Duration(i) * bucket)
		ts.TxnsByResult["approved"] = append(ts.TxnsByResult["approved"], influxdb.Point{At: at, Value: float64(i % 5)})
		ts.TxnsByResult["declined"] = append(ts.TxnsByResult["declined"], influxdb.Point{At: at, Value: float64(i % 2)})
		ts.Mismatches = append(ts.Mismatches, influxdb.Point{At: at})
	}
	entered, charged := int64(1250), int64(12500)
	ts.Recent = []influxdb.Txn{{At: end.Add(-time.Minute), ID: "tx-1", Type: "sale", Result: "approved", RC: "00", Currency: "EUR", AmountEntered: &entered, AmountCharged: &charged}}
	return ts, s.err
}

func (s *fakeSeries) TransactionCounts(_ context.Context, tenant string, _ time.Duration, _ time.Time) (map[string]int64, error) {
	if tenant == "acme" {
		return map[string]int64{"approved": 9, "declined": 1}, s.err
	}
	return map[string]int64{"approved": 18, "declined": 2}, s.err
}

// uiFixture is the web server over a real health engine with people of two
// tenants and an administrator who sign in with a password.
type uiFixture struct {
	*apiFixture
	series *fakeSeries
	h      *web.Server
}

func newUIFixture(t testing.TB, with ...func(*web.Options)) *uiFixture {
	t.Helper()
	f := &uiFixture{apiFixture: &apiFixture{now: time.Now().UTC().Truncate(time.Second)}, series: &fakeSeries{}}
	cfg := health.DefaultConfig()
	cfg.Now = func() time.Time { return f.now }
	cfg.Merchant = func(r posfleet.TerminalRef) string { return "M-" + r.Terminal }
	cfg.Site = func(r posfleet.TerminalRef) (health.Site, bool) {
		region := "north"
		if strings.HasSuffix(r.Terminal, "2") {
			region = "south"
		}
		return health.Site{Model: "A920", Merchant: "M-" + r.Terminal, Site: "Shop " + r.Terminal, Region: region}, true
	}
	f.engine = health.New(cfg)
	f.cmds = commands.New()
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	ctx := context.Background()
	for _, u := range [][2]string{{"ops-acme", "acme"}, {"ops-other", "other"}, {"root", auth.AllTenants}} {
		if err := users.AddUser(ctx, u[0], u[1], "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := users.SessionKey()
	opts := web.Options{Users: users, SessionKey: key, Health: f.engine, Commander: f.apiFixture, Commands: f.cmds,
		Series: f.series, Now: cfg.Now, SavePolicy: func(context.Context, []byte, string) error { return nil }}
	for _, w := range with {
		w(&opts)
	}
	f.h, err = web.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.h)
	t.Cleanup(f.srv.Close)
	return f
}

// session signs user in and returns a client with the session cookie and
// the CSRF token of the pages' forms.
func (f *uiFixture) session(t *testing.T, user string) (*http.Client, string) {
	t.Helper()
	c := browser(t)
	resp, _ := postLogin(t, f.srv.URL, c, url.Values{"name": {user}, "password": {"correct horse battery"}, "next": {"/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign in %s: %s to %q", user, resp.Status, resp.Header.Get("Location"))
	}
	resp, page := get(t, c, f.srv.URL+"/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("overview: %s", resp.Status)
	}
	return c, attr(t, page, "csrf")
}

func (f *uiFixture) page(t *testing.T, c *http.Client, path string, status int) (string, map[string][]string) {
	t.Helper()
	resp, body := get(t, c, f.srv.URL+path)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %s, want %d: %.300s", path, resp.Status, status, body)
	}
	return body, testIDs(t, body)
}

func one(t *testing.T, ids map[string][]string, id string) string {
	t.Helper()
	if len(ids[id]) != 1 {
		t.Fatalf("%d elements with data-testid %q, want 1", len(ids[id]), id)
	}
	return ids[id][0]
}

func TestOverviewPage(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	for _, tc := range []struct {
		user                 string
		total, online, visit string
		txns, success        string
	}{
		{"ops-acme", "2", "2", "1", "10", "90.0%"},
		{"root", "3", "3", "1", "20", "90.0%"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			c, _ := f.session(t, tc.user)
			_, ids := f.page(t, c, "/", 200)
			stat := func(id string) string { return strings.Fields(one(t, ids, "stat-"+id))[0] }
			if stat("total") != tc.total || stat("online") != tc.online || stat("offline") != "0" || stat("visit") != tc.visit || stat("incidents") != "0" {
				t.Errorf("stats: %v", ids)
			}
			if got := one(t, ids, "flag-count-hardware_fault"); !strings.HasSuffix(got, "1") {
				t.Errorf("hardware fault count: %q", got)
			}
			if one(t, ids, "txn-total") != tc.txns || one(t, ids, "txn-success") != tc.success || len(ids["txn-cause"]) != 5 {
				t.Errorf("transactions: %v %v %v", ids["txn-total"], ids["txn-success"], ids["txn-cause"])
			}
			if one(t, ids, "adoption-model") != "A920" || one(t, ids, "adoption-share") != "no target" {
				t.Errorf("adoption: %v", ids["adoption-row"])
			}
			if one(t, ids, "nav-overview") != "Overview" || len(ids["incidents-empty"]) != 1 {
				t.Errorf("nav or incidents: %v", ids)
			}
		})
	}
	t.Run("series down", func(t *testing.T) {
		f.series.err = fmt.Errorf("connection refused")
		defer func() { f.series.err = nil }()
		c, _ := f.session(t, "ops-acme")
		body, ids := f.page(t, c, "/", 200)
		if len(ids["txn-total"]) != 0 || !strings.Contains(body, "did not answer") || one(t, ids, "stat-total") == "" {
			t.Errorf("overview with InfluxDB down: %v", ids)
		}
	})
}

func TestTerminalsPage(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	c, _ := f.session(t, "ops-acme")
	for _, tc := range []struct {
		query string
		want  []string // terminal IDs, in order
	}{
		{"", []string{"T-1", "T-2"}},
		{"?flag=hardware_fault", []string{"T-1"}},
		{"?flag=tamper", nil},
		{"?q=shop+t-2", []string{"T-2"}},
		{"?region=south", []string{"T-2"}},
		{"?model=A920&online=true", []string{"T-1", "T-2"}},
		{"?online=false", nil},
		{"?firmware=2.4.1", []string{"T-2"}},
		{"?sort=flags&per_page=1", []string{"T-1"}},
		{"?per_page=1&page=2", []string{"T-2"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, ids := f.page(t, c, "/terminals"+tc.query, 200)
			if strings.Join(ids["terminal-link"], ",") != strings.Join(tc.want, ",") {
				t.Errorf("terminals %v, want %v", ids["terminal-link"], tc.want)
			}
		})
	}
	t.Run("badges and paging", func(t *testing.T) {
		body, ids := f.page(t, c, "/terminals?per_page=1", 200)
		if one(t, ids, "flag-badge") != "Hardware fault" || len(ids["page-next"]) != 1 || len(ids["page-prev"]) != 0 {
			t.Errorf("first page: %v", ids)
		}
		if !strings.Contains(body, `href="/terminals?page=2&amp;per_page=1"`) || !strings.Contains(body, `href="/terminals/acme/T-1"`) {
			t.Errorf("links: %s", body)
		}
	})
	for _, q := range []string{"?flag=bogus", "?online=maybe", "?page=0", "?sort=price"} {
		t.Run(q, func(t *testing.T) {
			_, ids := f.page(t, c, "/terminals"+q, 400)
			if one(t, ids, "filter-error") == "" || len(ids["terminal-row"]) != 0 {
				t.Errorf("bad filter: %v", ids)
			}
		})
	}
}

func TestTerminalPage(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	// Telemetry is escaped: a fault detail with markup stays text.
	f.feed(t, t2, posfleet.ChannelFault, fmt.Sprintf(`{"seq":4,"ts":%q,"component":"icc","code":"READ_ERR","severity":"critical","state":"raised","detail":"<script>alert(1)</script>"}`, f.now.Format(time.RFC3339)))
	c, csrf := f.session(t, "ops-acme")

	body, ids := f.page(t, c, "/terminals/acme/T-1", 200)
	if one(t, ids, "model") != "A920" || one(t, ids, "merchant") != "M-T-1" || one(t, ids, "online") != "online" || one(t, ids, "firmware") != "2.4.0" {
		t.Errorf("identity: %v", ids)
	}
	if d := one(t, ids, "flag-description"); !strings.Contains(d, "printer PAPER_JAM") {
		t.Errorf("flag in plain words: %q", d)
	}
	if len(ids["flag-hardware_fault"]) != 1 || len(ids["fault-row"]) != 1 || len(ids["commands-empty"]) != 1 || len(ids["service-empty"]) != 1 {
		t.Errorf("flags, faults, commands, service: %v", ids)
	}
	for _, ch := range []string{"battery", "signal", "rtt", "txns"} {
		if len(ids["chart-"+ch]) != 1 {
			t.Errorf("no chart %s", ch)
		}
	}
	if !strings.Contains(body, `<path class="line line-battery" d="M`) || !strings.Contains(body, `<rect class="bar-approved"`) {
		t.Error("the charts draw no line or no bar")
	}
	if len(ids["chart-mismatch"]) != 1 || len(ids["txn-row"]) != 1 || !strings.Contains(body, "€12.50") || !strings.Contains(body, "€125.00") {
		t.Errorf("mismatch chart or recent transactions: %v", ids["txn-row"])
	}
	if one(t, ids, "send-update") != "Update firmware" || !strings.Contains(body, `data-testid="send-update" disabled`) {
		t.Error("update offered without a policy")
	}
	f.page(t, c, "/terminals/acme/T-1?range=7d", 200)
	if got := strings.Join(f.series.asked, " "); got != "acme/T-1/24h0m0s acme/T-1/168h0m0s" {
		t.Errorf("series asked: %s", got)
	}
	if body, _ := f.page(t, c, "/terminals/acme/T-2", 200); strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("fault detail not escaped")
	}

	t.Run("another tenant", func(t *testing.T) {
		for _, p := range []string{"/terminals/other/T-1", "/terminals/acme/T-9", "/terminals/acme/bad%20name"} {
			f.page(t, c, p, 404)
		}
		resp, _ := post(t, c, f.srv.URL+"/terminals/other/T-1/commands", url.Values{"csrf": {csrf}, "type": {"reboot"}})
		if resp.StatusCode != 404 || len(f.sent) != 0 {
			t.Errorf("reboot of another tenant's terminal: %s, sent %v", resp.Status, f.sent)
		}
	})
	t.Run("reboot", func(t *testing.T) {
		resp, _ := post(t, c, f.srv.URL+"/terminals/acme/T-1/commands", url.Values{"type": {"reboot"}})
		if resp.StatusCode != http.StatusForbidden || len(f.sent) != 0 {
			t.Fatalf("without CSRF: %s", resp.Status)
		}
		resp, _ = post(t, c, f.srv.URL+"/terminals/acme/T-1/commands", url.Values{"csrf": {csrf}, "type": {"reboot"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/terminals/acme/T-1?done=reboot" || len(f.sent) != 1 {
			t.Fatalf("reboot: %s to %q", resp.Status, resp.Header.Get("Location"))
		}
		f.feed(t, t1, posfleet.ChannelAck, fmt.Sprintf(`{"seq":10,"ts":%q,"cmd_id":%q,"status":"done"}`, f.now.Format(time.RFC3339), f.sent[0].ID))
		_, ids := f.page(t, c, resp.Header.Get("Location"), 200)
		if !strings.HasPrefix(one(t, ids, "command-type"), "reboot") || one(t, ids, "command-status") != "done" || !strings.Contains(one(t, ids, "notice"), "Reboot sent") {
			t.Errorf("after reboot: %v", ids)
		}
	})
	t.Run("update refused", func(t *testing.T) {
		resp, body := post(t, c, f.srv.URL+"/terminals/acme/T-1/commands", url.Values{"csrf": {csrf}, "type": {"update_firmware"}})
		ids := testIDs(t, body)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(one(t, ids, "action-error"), "no update package") || len(f.sent) != 1 {
			t.Errorf("update without a policy: %s %v", resp.Status, ids["action-error"])
		}
	})
	t.Run("visit done", func(t *testing.T) {
		resp, body := post(t, c, f.srv.URL+"/terminals/acme/T-1/serviced", url.Values{"csrf": {csrf}, "note": {"card 4111111111111111"}})
		if resp.StatusCode != 400 || !strings.Contains(one(t, testIDs(t, body), "action-error"), "card number") {
			t.Errorf("note with a card number: %s", resp.Status)
		}
		resp, _ = post(t, c, f.srv.URL+"/terminals/acme/T-1/serviced", url.Values{"csrf": {csrf}, "note": {"cleared the paper jam"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/terminals/acme/T-1?done=serviced" {
			t.Fatalf("serviced: %s to %q", resp.Status, resp.Header.Get("Location"))
		}
		_, ids := f.page(t, c, resp.Header.Get("Location"), 200)
		if !strings.Contains(one(t, ids, "service-row"), "cleared the paper jam") || len(ids["flag-hardware_fault"]) != 0 || len(ids["notice"]) != 1 {
			t.Errorf("after the visit: %v", ids)
		}
	})
}

func TestFirmwarePage(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	acme, acmeCSRF := f.session(t, "ops-acme")
	root, rootCSRF := f.session(t, "root")

	_, ids := f.page(t, acme, "/firmware", 200)
	if len(ids["policy-save"]) != 0 || len(ids["policy-yaml"]) != 1 || len(ids["suspect-empty"]) != 1 || len(ids["adoption-row"]) != 1 {
		t.Errorf("tenant user's firmware page: %v", ids)
	}
	if resp, _ := post(t, acme, f.srv.URL+"/firmware/policy", url.Values{"csrf": {acmeCSRF}, "policy": {policy}}); resp.StatusCode != 403 {
		t.Errorf("tenant user saves the policy: %s", resp.Status)
	}
	resp, body := post(t, root, f.srv.URL+"/firmware/policy", url.Values{"csrf": {rootCSRF}, "policy": {"models:\r\n  A920:\r\n    target: not-a-version\r\n"}})
	ids = testIDs(t, body)
	if resp.StatusCode != 400 || !strings.HasPrefix(one(t, ids, "policy-error"), "Line 3:") || !strings.Contains(one(t, ids, "policy-yaml"), "not-a-version") {
		t.Errorf("bad policy: %s %v", resp.Status, ids["policy-error"])
	}
	resp, _ = post(t, root, f.srv.URL+"/firmware/policy", url.Values{"csrf": {rootCSRF}, "policy": {policy}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/firmware?done=policy" {
		t.Fatalf("policy: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	_, ids = f.page(t, root, "/firmware?done=policy", 200)
	if one(t, ids, "adoption-share") != "0.0%" || one(t, ids, "adoption-blocked") != "1" || len(ids["notice"]) != 1 {
		t.Errorf("after the policy: %v", ids)
	}
	// The tenant's overview counts its two terminals as needing an update.
	_, ids = f.page(t, acme, "/", 200)
	if n := strings.Fields(one(t, ids, "stat-update"))[0]; n != "2" {
		t.Errorf("need an update: %s", n)
	}
	// A model without an update package: nothing is sent.
	resp, body = post(t, acme, f.srv.URL+"/firmware/update", url.Values{"csrf": {acmeCSRF}, "model": {"A80"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(one(t, testIDs(t, body), "action-error"), "no update package") || len(f.sent) != 0 {
		t.Errorf("bulk update of a model without a package: %s, sent %d", resp.Status, len(f.sent))
	}
	// Bulk update: the tenant's outdated A920s, not the other tenant's,
	// after a confirmation with their count; a count that no longer
	// matches asks again.
	resp, body = post(t, acme, f.srv.URL+"/firmware/update", url.Values{"csrf": {acmeCSRF}, "model": {"A920"}})
	ids = testIDs(t, body)
	if q := one(t, ids, "bulk-question"); resp.StatusCode != 200 || len(f.sent) != 0 || !strings.HasPrefix(q, "Update 2 A920 terminals from 2.4.") || !strings.HasSuffix(q, " to 2.5.1?") ||
		!strings.Contains(body, `name="confirm" value="2"`) || len(ids["bulk-cancel"]) != 1 {
		t.Fatalf("bulk update, first step: %s, sent %d, %v", resp.Status, len(f.sent), ids)
	}
	resp, body = post(t, acme, f.srv.URL+"/firmware/update", url.Values{"csrf": {acmeCSRF}, "model": {"A920"}, "confirm": {"3"}})
	if ids := testIDs(t, body); resp.StatusCode != http.StatusConflict || len(f.sent) != 0 || len(ids["bulk-changed"]) != 1 || !strings.Contains(body, `name="confirm" value="2"`) {
		t.Fatalf("bulk update, stale count: %s, sent %d, %v", resp.Status, len(f.sent), ids)
	}
	resp, _ = post(t, acme, f.srv.URL+"/firmware/update", url.Values{"csrf": {acmeCSRF}, "model": {"A920"}, "confirm": {"2"}})
	if resp.StatusCode != http.StatusSeeOther || len(f.sent) != 2 {
		t.Fatalf("bulk update: %s, sent %d", resp.Status, len(f.sent))
	}
	for _, cmd := range f.sent {
		if cmd.Type != posfleet.CmdUpdateFirmware || cmd.Target != "2.5.1" {
			t.Errorf("sent %+v", cmd)
		}
	}
	_, ids = f.page(t, acme, resp.Header.Get("Location"), 200)
	if n := one(t, ids, "notice"); !strings.Contains(n, "sent to 2 terminals") {
		t.Errorf("notice: %q", n)
	}
}

func TestWorkListPage(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	c, csrf := f.session(t, "ops-acme")
	body, ids := f.page(t, c, "/worklist", 200)
	if one(t, ids, "worklist-terminal") != "T-1" || !strings.Contains(strings.ToLower(one(t, ids, "worklist-reason")), "printer") || len(ids["worklist-group"]) != 1 {
		t.Errorf("work list: %v", ids)
	}
	if !strings.Contains(body, `href="/api/v1/worklist?format=csv"`) || !strings.Contains(body, "@media print") && !strings.Contains(body, "posfleet.css") {
		t.Error("no CSV link or stylesheet")
	}
	resp, csv := get(t, c, f.srv.URL+"/api/v1/worklist?format=csv")
	if resp.StatusCode != 200 || !strings.Contains(csv, "T-1") {
		t.Errorf("CSV with the session cookie: %s %q", resp.Status, csv)
	}
	resp, _ = post(t, c, f.srv.URL+"/terminals/acme/T-1/serviced", url.Values{"csrf": {csrf}, "note": {"paper jam cleared"}, "back": {"worklist"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/worklist?done=acme%3AT-1" {
		t.Fatalf("visit done: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	_, ids = f.page(t, c, resp.Header.Get("Location"), 200)
	if len(ids["worklist-item"]) != 0 || len(ids["worklist-empty"]) != 1 || one(t, ids, "notice") != "Visit to T-1 recorded." {
		t.Errorf("after the visit: %v", ids)
	}
}

// TestIncidentPage: the bank's host fails for four merchants' terminals at
// once; the incident shows on the overview and on the incidents page with
// its numbers, and not to another tenant.
func TestIncidentPage(t *testing.T) {
	f := newUIFixture(t)
	seq := 0
	txn := func(ref posfleet.TerminalRef, ago time.Duration, result, rc string) {
		seq++
		code := ""
		if rc != "" {
			code = fmt.Sprintf(`,"rc":%q`, rc)
		}
		f.feed(t, ref, posfleet.ChannelTxn, fmt.Sprintf(`{"seq":%d,"ts":%q,"id":"tx-%d","type":"sale","currency":"EUR","amount_entered":100,"result":%q%s}`,
			seq, f.now.Add(-ago).Format(time.RFC3339), seq, result, code))
	}
	for i := 1; i <= 4; i++ {
		ref := posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%d", i)}
		for k := range 5 {
			txn(ref, time.Duration(30-k)*time.Minute, "approved", "00")
		}
		for k := range 4 {
			txn(ref, time.Duration(4-k)*time.Minute/2, "timeout", "")
			txn(ref, time.Duration(4-k)*time.Minute/2, "declined", "91")
		}
	}
	f.engine.Tick(f.now)
	acme, _ := f.session(t, "ops-acme")
	_, ids := f.page(t, acme, "/incidents", 200)
	if len(ids["incident"]) != 1 || !strings.Contains(ids["incident"][0], "4 merchants, 4 terminals") || !strings.Contains(ids["incident"][0], "open") {
		t.Fatalf("incidents: %v", ids["incident"])
	}
	_, ids = f.page(t, acme, "/", 200)
	if len(ids["incident-row"]) != 1 || strings.Fields(one(t, ids, "stat-incidents"))[0] != "1" {
		t.Errorf("overview incidents: %v", ids["incident-row"])
	}
	other, _ := f.session(t, "ops-other")
	if _, ids := f.page(t, other, "/incidents", 200); len(ids["incident"]) != 0 {
		t.Errorf("another tenant sees the incident: %v", ids["incident"])
	}
}

func TestIncidentsAndNavigation(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	c, _ := f.session(t, "ops-other")
	_, ids := f.page(t, c, "/incidents", 200)
	if len(ids["incidents-empty"]) != 1 || len(ids["incident"]) != 0 {
		t.Errorf("incidents: %v", ids)
	}
	for _, p := range []string{"/", "/terminals", "/terminals/other/T-1", "/worklist", "/firmware", "/incidents", "/security"} {
		_, ids := f.page(t, c, p, 200)
		if len(ids["nav"]) != 1 || one(t, ids, "tenant") != "tenant other" {
			t.Errorf("%s: no navigation", p)
		}
	}
	// Another tenant's terminals never show.
	_, ids = f.page(t, c, "/terminals", 200)
	if strings.Join(ids["terminal-link"], ",") != "T-1" || strings.Join(ids["terminal-row"], "") == "" || strings.Contains(strings.Join(ids["terminal-row"], ""), "acme") {
		t.Errorf("other's terminals: %v", ids["terminal-row"])
	}
	// Signed out, every page sends to the sign-in page.
	anon := browser(t)
	for _, p := range []string{"/", "/terminals", "/terminals/acme/T-1", "/worklist", "/firmware", "/incidents"} {
		resp, _ := get(t, anon, f.srv.URL+p)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("%s signed out: %s to %q", p, resp.Status, resp.Header.Get("Location"))
		}
	}
	if resp, _ := get(t, anon, f.srv.URL+"/static/live.js"); resp.StatusCode != 200 {
		t.Errorf("live.js: %s", resp.Status)
	}
}

// fleetOf feeds n terminals of one tenant to the engine: an inventory and a
// heartbeat each, a printer fault on one in ten and tamper on one in a
// hundred; a third run an older firmware.
func (f *uiFixture) fleetOf(n int) {
	for i := range n {
		ref := posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T%07d", i)}
		at := f.now.Add(-time.Minute)
		fw := "2.5.1"
		if i%3 == 0 {
			fw = "2.4.1"
		}
		f.engine.Observe(&posfleet.Message{Terminal: ref, Channel: posfleet.ChannelFirmware, Received: at,
			Inventory: &posfleet.Inventory{Header: posfleet.Header{Seq: 1, TS: at}, Model: "A920", Serial: "S", Firmware: fw, App: "1.2.0"}})
		bat, sig, rtt := 80, -70, 300
		f.engine.Observe(&posfleet.Message{Terminal: ref, Channel: posfleet.ChannelHeartbeat, Received: at,
			Heartbeat: &posfleet.Heartbeat{Header: posfleet.Header{Seq: 2, TS: at}, BatteryPct: &bat, SignalDBm: &sig, HostRTTMs: &rtt, Paper: posfleet.PaperOK}})
		if i%10 == 0 {
			fault := &posfleet.Fault{Header: posfleet.Header{Seq: 3, TS: at}, Component: posfleet.ComponentPrinter, Code: "PAPER_JAM", Severity: posfleet.SeverityWarning, State: posfleet.FaultRaised}
			if i%100 == 0 {
				fault.Component, fault.Code, fault.Severity = posfleet.ComponentSecureElement, "TAMPER", posfleet.SeverityCritical
			}
			f.engine.Observe(&posfleet.Message{Terminal: ref, Channel: posfleet.ChannelFault, Received: at, Fault: fault})
		}
	}
}

// benchPages measures the server time of pages over 100,000 terminals: the
// handler is called directly, without a network in between.
func benchPages(b *testing.B, paths ...string) {
	f := newUIFixture(b)
	f.fleetOf(100_000)
	if err := f.engine.SetPolicy([]byte(policy)); err != nil {
		b.Fatal(err)
	}
	csrf := strings.Repeat("x", 24)
	form := url.Values{"name": {"ops-acme"}, "password": {"correct horse battery"}, "next": {"/"}, "csrf": {csrf}}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "posfleet_login", Value: csrf})
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if len(cookies) == 0 {
		b.Fatalf("sign in: %d", rec.Code)
	}
	for _, p := range paths {
		name := strings.TrimPrefix(p, "/")
		if name == "" {
			name = "overview"
		}
		b.Run(name, func(b *testing.B) {
			// CPU time per request as well as wall time: on a shared
			// machine the wall time says more about the neighbours.
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			for b.Loop() {
				req := httptest.NewRequest("GET", p, nil)
				req.AddCookie(cookies[0])
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("GET %s: %d", p, rec.Code)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
			b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}

func BenchmarkOverviewPage(b *testing.B) { benchPages(b, "/") }

func BenchmarkTerminalsPage(b *testing.B) {
	benchPages(b, "/terminals", "/terminals?flag=tamper", "/terminals?q=T00999&page=1", "/terminals?sort=flags&page=100")
}

func BenchmarkWorkListPage(b *testing.B) { benchPages(b, "/worklist") }

// TestNeverConnectedPages: the overview counts provisioned terminals that
// never connected and links to the list filtered to them, where they show
// as "never connected".
func TestNeverConnectedPages(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	f.engine.Provision(posfleet.TerminalRef{Tenant: "acme", Terminal: "T-9"}, posfleet.TerminalRef{Tenant: "other", Terminal: "T-8"})
	c, _ := f.session(t, "ops-acme")

	body, ids := f.page(t, c, "/", 200)
	stat := func(id string) string { return strings.Fields(one(t, ids, "stat-"+id))[0] }
	if stat("never-connected") != "1" || stat("total") != "3" || stat("online") != "2" || stat("offline") != "0" {
		t.Errorf("stats: %v", ids)
	}
	if !strings.Contains(body, `href="/terminals?state=never_connected"`) {
		t.Error("the never-connected count links nowhere")
	}

	for _, tc := range []struct {
		query string
		want  []string
		never int
	}{
		{"", []string{"T-1", "T-2", "T-9"}, 1},
		{"?state=never_connected", []string{"T-9"}, 1},
		{"?state=online", []string{"T-1", "T-2"}, 0},
		{"?state=offline", nil, 0},
		{"?online=false", nil, 0},
		{"?sort=last_seen", []string{"T-9", "T-1", "T-2"}, 1},
	} {
		t.Run(tc.query, func(t *testing.T) {
			body, ids := f.page(t, c, "/terminals"+tc.query, 200)
			if strings.Join(ids["terminal-link"], ",") != strings.Join(tc.want, ",") || len(ids["never-connected"]) != tc.never {
				t.Errorf("terminals %v (never connected %v), want %v", ids["terminal-link"], ids["never-connected"], tc.want)
			}
			if tc.never > 0 && one(t, ids, "never-connected") != "never connected" {
				t.Errorf("state shown: %v", ids["never-connected"])
			}
			if tc.query == "?state=never_connected" && !strings.Contains(body, `<option value="never_connected" selected>`) {
				t.Error("the state filter does not show never connected")
			}
		})
	}
	f.page(t, c, "/terminals?state=lost", 400)
}

// TestErrorPageInLayout: a signed-in person who opens another tenant's
// terminal (or one that does not exist) gets the 404 inside the layout,
// with the navigation and a way back, not bare text.
func TestErrorPageInLayout(t *testing.T) {
	f := newUIFixture(t)
	c, _ := f.session(t, "ops-acme")
	for _, path := range []string{"/terminals/other/T-0001", "/terminals/acme/T-NONE"} {
		body, ids := f.page(t, c, path, http.StatusNotFound)
		for _, id := range []string{"error-page", "error-message", "error-home", "nav-overview"} {
			if len(ids[id]) == 0 {
				t.Errorf("GET %s: no %s in the error page: %.300s", path, id, body)
			}
		}
	}
}
