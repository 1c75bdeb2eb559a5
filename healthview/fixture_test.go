package healthview_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/pgtest"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// policy puts 2.4.1 of the A920 behind its target: firmware_outdated.
const policy = `models:
  A920:
    target: 2.5.1
    minimum: 2.3.0
    url: https://fw.example.com/a920-2.5.1.bin
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
`

// fleet is a health engine on a fixed clock, with sites from the
// terminal's number: region by the last digit, a shop per ten terminals.
type fleet struct {
	eng *health.Engine
	now time.Time
}

func siteOf(r posfleet.TerminalRef) (health.Site, bool) {
	id := r.Terminal
	region := "region-" + id[len(id)-1:]
	shop := "Shop " + id[:max(len(id)-1, 1)]
	return health.Site{Model: "A920", Merchant: "M-" + shop, Site: shop, Region: region}, true
}

func newFleet(t testing.TB) *fleet {
	t.Helper()
	f := &fleet{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	cfg := health.DefaultConfig()
	cfg.Now = func() time.Time { return f.now }
	cfg.Merchant = func(r posfleet.TerminalRef) string { s, _ := siteOf(r); return s.Merchant }
	cfg.Site = siteOf
	f.eng = health.New(cfg)
	if err := f.eng.SetPolicy([]byte(policy)); err != nil {
		t.Fatal(err)
	}
	return f
}

func ptr[T any](v T) *T { return &v }

// kinds of terminal the fixtures are made of.
const (
	healthy   = iota
	printer   // a printer fault: hardware_fault, on the work list (routine)
	tamper    // tamper: on the work list first
	outdated  // firmware 2.4.1: firmware_outdated, not on the work list
	mismatch  // an amount charged unlike the one entered: amount_mismatch
	offline   // said goodbye (last will): offline, on the work list
	twoIssues // a printer fault and an old firmware
)

// add feeds one terminal of kind k, heard from a minute ago.
func (f *fleet) add(ref posfleet.TerminalRef, k int) {
	at := f.now.Add(-time.Minute)
	seq := int64(0)
	hdr := func() posfleet.Header { seq++; return posfleet.Header{Seq: seq, TS: at} }
	send := func(m *posfleet.Message) { m.Terminal, m.Received = ref, at; f.eng.Observe(m) }
	fw := "2.5.1"
	if k == outdated || k == twoIssues {
		fw = "2.4.1"
	}
	send(&posfleet.Message{Channel: posfleet.ChannelFirmware, Inventory: &posfleet.Inventory{Header: hdr(), Model: "A920",
		Serial: "S-" + ref.Terminal, Firmware: fw, App: "1.2.0", BootReason: posfleet.BootPowerOn}})
	send(&posfleet.Message{Channel: posfleet.ChannelHeartbeat, Heartbeat: &posfleet.Heartbeat{Header: hdr(), UptimeS: ptr[int64](3600),
		BatteryPct: ptr(80), Charging: ptr(false), SignalDBm: ptr(-70), HostRTTMs: ptr(300), Paper: posfleet.PaperOK, Net: posfleet.Net4G}})
	send(&posfleet.Message{Channel: posfleet.ChannelTxn, Txn: &posfleet.Transaction{Header: hdr(), ID: ref.Terminal + "-1", Type: posfleet.TxnSale,
		Entry: posfleet.EntryChip, Currency: "CNY", AmountEntered: ptr[int64](1000), AmountCharged: ptr[int64](1000),
		Result: posfleet.ResultApproved, RC: "00", HostMs: ptr(300), Receipt: posfleet.ReceiptPrinted}})
	fault := func(component, code, severity string) {
		send(&posfleet.Message{Channel: posfleet.ChannelFault, Fault: &posfleet.Fault{Header: hdr(), Component: component, Code: code,
			Severity: severity, State: posfleet.FaultRaised}})
	}
	switch k {
	case printer, twoIssues:
		fault(posfleet.ComponentPrinter, "PAPER_JAM", posfleet.SeverityWarning)
	case tamper:
		fault(posfleet.ComponentSecureElement, "TAMPER", posfleet.SeverityCritical)
	case mismatch:
		send(&posfleet.Message{Channel: posfleet.ChannelTxn, Txn: &posfleet.Transaction{Header: hdr(), ID: ref.Terminal + "-2", Type: posfleet.TxnSale,
			Entry: posfleet.EntryChip, Currency: "CNY", AmountEntered: ptr[int64](1000), AmountCharged: ptr[int64](1006),
			Result: posfleet.ResultApproved, RC: "00", HostMs: ptr(300), Receipt: posfleet.ReceiptPrinted}})
	case offline:
		send(&posfleet.Message{Channel: posfleet.ChannelStatus, Status: &posfleet.Status{Online: false}})
	}
}

// batchOf is what a publisher writes for the engine's state: every
// terminal (the never-connected ones too), its work item, the incidents
// and the summaries of tenants and of the whole fleet ("").
func batchOf(eng *health.Engine, tenants ...string) healthview.Batch {
	b := healthview.Batch{Summaries: map[string]health.FleetSummary{}, Incidents: eng.Incidents("")}
	work := map[posfleet.TerminalRef]health.WorkItem{}
	for _, it := range eng.WorkList("") {
		work[it.Ref] = it
	}
	for _, r := range eng.Rows("", "") {
		if r.NeverConnected {
			st, _ := eng.Site(r.Ref)
			b.Terminals = append(b.Terminals, healthview.TerminalRow{NeverConnected: true, Merchant: st.Merchant, Region: st.Region,
				Health: health.TerminalHealth{Ref: r.Ref, Tenant: r.Ref.Tenant, Terminal: r.Ref.Terminal, Site: st,
					OpenFaults: []health.OpenFault{}, Flags: []posfleet.Flag{}, Service: []health.ServiceRecord{}}})
			continue
		}
		h, _ := eng.Terminal(r.Ref)
		row := healthview.TerminalRow{Health: h, Merchant: h.Site.Merchant, Region: h.Site.Region}
		if it, ok := work[r.Ref]; ok {
			row.Work = &it
		}
		b.Terminals = append(b.Terminals, row)
	}
	for _, t := range append([]string{""}, tenants...) {
		b.Summaries[t] = eng.FleetSummary(t)
	}
	return b
}

// publish writes b in transactions of at most n terminals, the summaries
// and incidents with the last.
func publish(t testing.TB, db *store.DB, b healthview.Batch, n int, now time.Time) {
	t.Helper()
	ctx := context.Background()
	for len(b.Terminals) > n {
		if err := healthview.Publish(ctx, db, nil, healthview.Batch{Terminals: b.Terminals[:n]}, now); err != nil {
			t.Fatal(err)
		}
		b.Terminals = b.Terminals[n:]
	}
	if err := healthview.Publish(ctx, db, nil, b, now); err != nil {
		t.Fatal(err)
	}
}

// site is a web server over hs, with users of tenant acme, of tenant
// other and of every tenant, who sign in with a password, and an
// administrator's API token.
type site struct {
	h     http.Handler
	token string
}

func newSite(t testing.TB, hs web.Health, now func() time.Time) *site {
	t.Helper()
	users, err := auth.New(context.Background(), storetest.SQLite(t), auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range [][2]string{{"ops-acme", "acme"}, {"ops-other", "other"}, {"root", auth.AllTenants}} {
		if err := users.AddUser(ctx, u[0], u[1], "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	token, err := users.CreateToken(ctx, "admin", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key, Health: hs, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return &site{h: h, token: token}
}

// api answers GET path for the administrator's token.
func (s *site) api(t testing.TB, path string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// signIn returns the session cookie of user.
func (s *site) signIn(t testing.TB, user string) *http.Cookie {
	t.Helper()
	csrf := strings.Repeat("x", 24)
	form := url.Values{"name": {user}, "password": {"correct horse battery"}, "next": {"/"}, "csrf": {csrf}}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "posfleet_login", Value: csrf})
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if len(cookies) == 0 {
		t.Fatalf("sign in %s: %d", user, rec.Code)
	}
	return cookies[0]
}

// page answers GET path for the session of cookie.
func (s *site) page(t testing.TB, cookie *http.Cookie, path string) (int, string) {
	req := httptest.NewRequest("GET", path, nil)
	req.AddCookie(cookie)
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func ref(tenant string, i int) posfleet.TerminalRef {
	return posfleet.TerminalRef{Tenant: tenant, Terminal: fmt.Sprintf("T%07d", i)}
}
