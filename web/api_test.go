package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/broker"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web"
)

// apiFixture is the web server over a real health engine fed with decoded
// messages, and tokens of two tenants and an administrator.
type apiFixture struct {
	srv                *httptest.Server
	engine             *health.Engine
	cmds               *commands.Tracker
	sent               []posfleet.Command
	answer             func(posfleet.Command) error // the terminal, as the command goes out
	acme, other, admin string
	now                time.Time
}

func (f *apiFixture) SendCommand(_ context.Context, _ posfleet.TerminalRef, cmd posfleet.Command) error {
	if f.answer != nil {
		if err := f.answer(cmd); err != nil {
			return err
		}
	}
	f.sent = append(f.sent, cmd)
	return nil
}

func newAPIFixture(t *testing.T, opts ...func(*web.Options)) *apiFixture {
	t.Helper()
	f := &apiFixture{now: time.Now().UTC().Truncate(time.Second)}
	cfg := health.DefaultConfig()
	cfg.Now = func() time.Time { return f.now }
	cfg.Merchant = func(r posfleet.TerminalRef) string { return "M-" + r.Terminal }
	cfg.Site = func(r posfleet.TerminalRef) (health.Site, bool) {
		return health.Site{Model: "A920", Merchant: "M-" + r.Terminal, Site: "Shop " + r.Terminal, Region: "north"}, true
	}
	f.engine = health.New(cfg)
	f.cmds = commands.New()
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	ctx := context.Background()
	f.acme, _ = users.CreateToken(ctx, "acme-script", "acme")
	f.other, _ = users.CreateToken(ctx, "other-script", "other")
	f.admin, _ = users.CreateToken(ctx, "admin", auth.AllTenants)
	key, _ := users.SessionKey()
	wopts := web.Options{Users: users, SessionKey: key, Health: f.engine, Commander: f, Commands: f.cmds, Now: cfg.Now}
	for _, o := range opts {
		o(&wopts)
	}
	h, err := web.New(wopts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// feed decodes payloads as the collector would and hands them to the engine.
func (f *apiFixture) feed(t *testing.T, ref posfleet.TerminalRef, ch posfleet.Channel, payload string) {
	t.Helper()
	m, err := posfleet.Decode(ref, ch, []byte(payload), f.now)
	if err != nil {
		t.Fatalf("%s: %v", payload, err)
	}
	f.engine.Observe(m)
	f.cmds.Observe(m)
}

func (f *apiFixture) call(t *testing.T, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func errCode(t *testing.T, b []byte) string {
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	if e.Error.Message == "" {
		t.Errorf("error without a message: %s", b)
	}
	return e.Error.Code
}

var (
	t1 = posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	t2 = posfleet.TerminalRef{Tenant: "acme", Terminal: "T-2"}
	o1 = posfleet.TerminalRef{Tenant: "other", Terminal: "T-1"}
)

func (f *apiFixture) seed(t *testing.T) {
	ts := func(d time.Duration) string { return f.now.Add(d).Format(time.RFC3339) }
	for i, ref := range []posfleet.TerminalRef{t1, t2, o1} {
		f.feed(t, ref, posfleet.ChannelFirmware, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","firmware":"2.4.%d"}`, ts(-time.Minute), i))
		f.feed(t, ref, posfleet.ChannelHeartbeat, fmt.Sprintf(`{"seq":2,"ts":%q,"battery_pct":80,"paper":"ok","signal_dbm":-70,"host_rtt_ms":300}`, ts(-30*time.Second)))
	}
	// T-1 has a printer fault: a maintenance flag with its evidence.
	f.feed(t, t1, posfleet.ChannelFault, fmt.Sprintf(`{"seq":3,"ts":%q,"component":"printer","code":"PAPER_JAM","severity":"warning","state":"raised"}`, ts(-10*time.Second)))
}

func TestAPIFleetAndTenantIsolation(t *testing.T) {
	f := newAPIFixture(t)
	f.seed(t)
	code, b := f.call(t, f.acme, "GET", "/api/v1/fleet", "")
	var fs health.FleetSummary
	if code != 200 || json.Unmarshal(b, &fs) != nil || fs.Total != 2 || fs.Flagged[posfleet.FlagHardwareFault] != 1 {
		t.Fatalf("fleet for acme: %d %s", code, b)
	}
	code, b = f.call(t, f.admin, "GET", "/api/v1/fleet", "")
	if json.Unmarshal(b, &fs) != nil || fs.Total != 3 {
		t.Errorf("fleet for admin: %d %s", code, b)
	}
	// Another tenant's terminal is not found, not forbidden; nothing of it leaks.
	code, b = f.call(t, f.other, "GET", "/api/v1/terminals/acme/T-1", "")
	if code != 404 || errCode(t, b) != "not_found" || bytes.Contains(b, []byte("PAPER_JAM")) {
		t.Errorf("other tenant reading acme/T-1: %d %s", code, b)
	}
	for _, path := range []string{"/api/v1/terminals/acme/T-1/serviced", "/api/v1/terminals/acme/T-1/commands"} {
		if code, _ := f.call(t, f.other, "POST", path, `{"type":"reboot","note":"x"}`); code != 404 {
			t.Errorf("other tenant POST %s: %d", path, code)
		}
	}
	code, b = f.call(t, f.other, "GET", "/api/v1/terminals", "")
	if code != 200 || bytes.Contains(b, []byte(`"acme"`)) {
		t.Errorf("other tenant's list holds acme: %s", b)
	}
	code, b = f.call(t, f.acme, "GET", "/api/v1/terminals/acme/T-1", "")
	var d web.TerminalDetail
	if code != 200 || json.Unmarshal(b, &d) != nil || !d.Seen || !d.Health.Has(posfleet.FlagHardwareFault) || d.Health.Firmware != "2.4.0" {
		t.Errorf("acme/T-1: %d %s", code, b)
	}
	if !bytes.Contains(b, []byte(`"evidence"`)) || !bytes.Contains(b, []byte("PAPER_JAM")) {
		t.Errorf("flag without its evidence: %s", b)
	}
}

func TestAPITerminalFiltersAndPaging(t *testing.T) {
	f := newAPIFixture(t)
	f.seed(t)
	list := func(q string) web.TerminalPage {
		code, b := f.call(t, f.admin, "GET", "/api/v1/terminals"+q, "")
		var p web.TerminalPage
		if code != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("list %s: %d %s", q, code, b)
		}
		return p
	}
	cases := []struct {
		q    string
		want int
	}{
		{"", 3}, {"?flag=hardware_fault", 1}, {"?flag=tamper", 0}, {"?firmware=2.4.1", 1}, {"?model=A920", 3}, {"?model=A80", 0},
		{"?region=north", 3}, {"?q=shop%20t-2", 1}, {"?q=m-t-1", 2}, {"?online=true", 3}, {"?online=false", 0},
	}
	for _, c := range cases {
		if p := list(c.q); p.Total != c.want {
			t.Errorf("%s: total %d, want %d", c.q, p.Total, c.want)
		}
	}
	p := list("?per_page=2&page=2")
	if p.Total != 3 || len(p.Terminals) != 1 || p.Terminals[0].Terminal != "T-1" || p.Terminals[0].Tenant != "other" {
		t.Errorf("page 2 of 2: %+v", p)
	}
	bad := []string{"?flag=nope", "?page=0", "?page=x", "?per_page=501", "?online=maybe"}
	for _, q := range bad {
		code, b := f.call(t, f.admin, "GET", "/api/v1/terminals"+q, "")
		if code != 400 || errCode(t, b) != "bad_request" {
			t.Errorf("%s: %d %s", q, code, b)
		}
	}
	_, b := f.call(t, f.admin, "GET", "/api/v1/terminals?flag=nope", "")
	if !bytes.Contains(b, []byte("hardware_fault")) {
		t.Errorf("unknown flag error does not list the flags: %s", b)
	}
}

func TestAPIWorkListAndServiced(t *testing.T) {
	f := newAPIFixture(t)
	f.seed(t)
	code, b := f.call(t, f.acme, "GET", "/api/v1/worklist", "")
	var wl struct{ Groups []health.WorkGroup }
	if code != 200 || json.Unmarshal(b, &wl) != nil || len(wl.Groups) != 1 || len(wl.Groups[0].Items) != 1 || wl.Groups[0].Items[0].Terminal != "T-1" {
		t.Fatalf("work list: %d %s", code, b)
	}
	if a := wl.Groups[0].Items[0].Reasons[0].Action; !strings.Contains(strings.ToLower(a), "printer") {
		t.Errorf("action %q does not tell the crew about the printer", a)
	}
	code, b = f.call(t, f.acme, "GET", "/api/v1/worklist?format=csv", "")
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if code != 200 || err != nil || len(rows) != 2 || rows[0][0] != "priority" || rows[1][6] != "T-1" || rows[1][12] != "hardware_fault" {
		t.Fatalf("CSV: %d %v %q", code, err, b)
	}
	if code, _ := f.call(t, f.acme, "GET", "/api/v1/worklist?format=xml", ""); code != 400 {
		t.Errorf("format=xml: %d", code)
	}
	// Bad serviced requests.
	for _, body := range []string{"", "{", `{"note":1}`, `{"note":"x","extra":true}`, `{"note":"card 4111111111111111"}`, `{"note":"` + strings.Repeat("x", 300<<10) + `"}`} {
		code, b := f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-1/serviced", body)
		if code != 400 && code != 413 {
			t.Errorf("serviced with %.30q: %d %s", body, code, b)
		}
	}
	code, b = f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-1/serviced", `{"note":"cleared the paper jam"}`)
	if code != 200 || !bytes.Contains(b, []byte("hardware_fault")) {
		t.Fatalf("serviced: %d %s", code, b)
	}
	_, b = f.call(t, f.acme, "GET", "/api/v1/worklist", "")
	if json.Unmarshal(b, &wl) != nil || len(wl.Groups) != 0 {
		t.Errorf("work list after the visit: %s", b)
	}
	_, b = f.call(t, f.acme, "GET", "/api/v1/terminals/acme/T-1", "")
	if !bytes.Contains(b, []byte("cleared the paper jam")) {
		t.Errorf("service history lacks the note: %s", b)
	}
	if code, _ := f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-9/serviced", `{"note":"x"}`); code != 404 {
		t.Errorf("unknown terminal serviced: %d", code)
	}
}

const policy = `models:
  A920:
    target: 2.5.1
    minimum: 2.4.1
    blocked: [2.4.0]
    url: https://updates.example.net/a920-2.5.1.bin
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`

func TestAPIPolicyAndCommands(t *testing.T) {
	f := newAPIFixture(t)
	f.seed(t)
	if code, b := f.call(t, f.acme, "PUT", "/api/v1/policy", policy); code != 403 || errCode(t, b) != "forbidden" {
		t.Errorf("tenant user PUT policy: %d %s", code, b)
	}
	code, b := f.call(t, f.admin, "PUT", "/api/v1/policy", "models:\n  A920:\n    target: not-a-version\n")
	if code != 400 || !bytes.Contains(b, []byte(`"line": 3`)) {
		t.Errorf("bad policy: %d %s", code, b)
	}
	// No policy yet: an update cannot be sent.
	if code, b := f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"update_firmware"}`); code != 409 || errCode(t, b) != "no_policy" {
		t.Errorf("update without a policy: %d %s", code, b)
	}
	if code, b := f.call(t, f.admin, "PUT", "/api/v1/policy", policy); code != 200 {
		t.Fatalf("PUT policy: %d %s", code, b)
	}
	_, b = f.call(t, f.acme, "GET", "/api/v1/terminals/acme/T-1", "")
	if !bytes.Contains(b, []byte("firmware_blocked")) {
		t.Errorf("2.4.0 is blocked, but no flag: %s", b)
	}
	for _, body := range []string{`{"type":"selfdestruct"}`, `{"type":"reboot","target":"1"}`, `{"type":"update_firmware","target":"9.9.9"}`, `{"type":"reboot","x":1}`} {
		if code, b := f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-1/commands", body); code != 400 {
			t.Errorf("command %s: %d %s", body, code, b)
		}
	}
	code, b = f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"update_firmware"}`)
	if code != 202 || len(f.sent) != 1 || f.sent[0].Target != "2.5.1" || f.sent[0].SHA256 == "" || f.sent[0].URL == "" {
		t.Fatalf("update: %d %s, sent %+v", code, b, f.sent)
	}
	// The terminal answers; the terminal's page shows it.
	f.feed(t, t1, posfleet.ChannelAck, fmt.Sprintf(`{"seq":9,"ts":%q,"cmd_id":%q,"status":"done"}`, f.now.Format(time.RFC3339), f.sent[0].ID))
	_, b = f.call(t, f.acme, "GET", "/api/v1/terminals/acme/T-1", "")
	var d web.TerminalDetail
	if json.Unmarshal(b, &d) != nil || len(d.Commands) != 1 || d.Commands[0].Status != "done" || d.Commands[0].SentBy != "acme-script" {
		t.Errorf("commands on the terminal: %s", b)
	}
	code, b = f.call(t, f.acme, "GET", "/api/v1/policy", "")
	if code != 200 || !bytes.Contains(b, []byte("2.5.1")) {
		t.Errorf("GET policy: %d %s", code, b)
	}
}

// TestCommandRecordedBeforeItGoesOut: a terminal that acks a command as
// soon as it is published finds it in the command log (the ack was lost
// when the log recorded it after publishing), and a command that could
// not be published is not listed.
func TestCommandRecordedBeforeItGoesOut(t *testing.T) {
	f := newAPIFixture(t)
	f.feed(t, t1, posfleet.ChannelHeartbeat, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","fw":"2.4.0","battery":80,"uptime_s":60}`, f.now.Format(time.RFC3339)))
	f.answer = func(cmd posfleet.Command) error {
		f.feed(t, t1, posfleet.ChannelAck, fmt.Sprintf(`{"seq":2,"ts":%q,"cmd_id":%q,"status":"accepted"}`, f.now.Format(time.RFC3339), cmd.ID))
		return nil
	}
	if code, b := f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"reboot"}`); code != 202 {
		t.Fatalf("reboot: %d %s", code, b)
	}
	f.answer = func(posfleet.Command) error { return fmt.Errorf("send command: %w", broker.ErrNoSession) }
	if code, b := f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"reboot"}`); code != 409 || errCode(t, b) != "not_reachable" {
		t.Fatalf("reboot without a session: %d %s", code, b)
	}
	_, b := f.call(t, f.acme, "GET", "/api/v1/terminals/acme/T-1", "")
	var d web.TerminalDetail
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Commands) != 1 || d.Commands[0].Command.ID != f.sent[0].ID || d.Commands[0].Status != posfleet.AckAccepted {
		t.Errorf("commands: %+v, want the first reboot, accepted", d.Commands)
	}
}

// TestAPINeverConnected: provisioned terminals that never connected are in
// the fleet summary (never_connected, counted in total) and in the list
// (never_connected: true, with their site), filtered by
// ?state=never_connected; the online filter and the rows of terminals
// that connected are as before.
func TestAPINeverConnected(t *testing.T) {
	f := newAPIFixture(t)
	f.seed(t)
	f.engine.Provision(t1, posfleet.TerminalRef{Tenant: "acme", Terminal: "T-9"}, posfleet.TerminalRef{Tenant: "other", Terminal: "T-8"})

	code, b := f.call(t, f.acme, "GET", "/api/v1/fleet", "")
	var fs struct {
		Total, Online, Offline int
		NeverConnected         *int `json:"never_connected"`
	}
	if code != 200 || json.Unmarshal(b, &fs) != nil || fs.NeverConnected == nil || *fs.NeverConnected != 1 || fs.Total != 3 || fs.Online != 2 || fs.Offline != 0 {
		t.Fatalf("fleet for acme: %d %s", code, b)
	}
	code, b = f.call(t, f.admin, "GET", "/api/v1/fleet", "")
	if json.Unmarshal(b, &fs) != nil || *fs.NeverConnected != 2 || fs.Total != 5 {
		t.Errorf("fleet for admin: %d %s", code, b)
	}

	list := func(token, q string) (web.TerminalPage, []byte) {
		code, b := f.call(t, token, "GET", "/api/v1/terminals"+q, "")
		var p web.TerminalPage
		if code != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("list %s: %d %s", q, code, b)
		}
		return p, b
	}
	ids := func(p web.TerminalPage) string {
		var out []string
		for _, s := range p.Terminals {
			out = append(out, s.Tenant+":"+s.Terminal)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct{ token, q, want string }{
		{f.admin, "", "acme:T-1,acme:T-2,acme:T-9,other:T-1,other:T-8"},
		{f.acme, "", "acme:T-1,acme:T-2,acme:T-9"},
		{f.admin, "?state=never_connected", "acme:T-9,other:T-8"},
		{f.other, "?state=never_connected", "other:T-8"},
		{f.admin, "?state=online", "acme:T-1,acme:T-2,other:T-1"},
		{f.admin, "?state=offline", ""},
		{f.admin, "?online=true", "acme:T-1,acme:T-2,other:T-1"},
		{f.admin, "?online=false", ""},
		{f.admin, "?flag=hardware_fault", "acme:T-1"},
		{f.admin, "?region=north&state=never_connected", "acme:T-9,other:T-8"},
		{f.admin, "?q=t-9", "acme:T-9"},
	} {
		if p, _ := list(c.token, c.q); ids(p) != c.want || p.Total != len(p.Terminals) {
			t.Errorf("%s: %s (total %d), want %s", c.q, ids(p), p.Total, c.want)
		}
	}
	p, raw := list(f.acme, "?state=never_connected")
	if s := p.Terminals[0]; !s.NeverConnected || s.Online || !s.LastSeen.IsZero() || s.Site.Site != "Shop T-9" || s.Flags == nil {
		t.Errorf("never-connected row: %+v", s)
	}
	if !bytes.Contains(raw, []byte(`"never_connected": true`)) {
		t.Errorf("no never_connected in %s", raw)
	}
	// Rows of terminals that connected carry no new field.
	_, raw = list(f.acme, "?state=online")
	if bytes.Contains(raw, []byte("never_connected")) {
		t.Errorf("a connected terminal's row changed: %s", raw)
	}
	if code, b := f.call(t, f.admin, "GET", "/api/v1/terminals?state=lost", ""); code != 400 || errCode(t, b) != "bad_request" || !bytes.Contains(b, []byte("never_connected")) {
		t.Errorf("?state=lost: %d %s", code, b)
	}
}
