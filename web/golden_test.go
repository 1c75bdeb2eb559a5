package web_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/web"
)

// update rewrites testdata/golden from today's answers:
//
//	go test ./web -run TestAPIGolden -update
var update = flag.Bool("update", false, "rewrite testdata/golden with the API's current answers")

// goldenStart is the fixed clock of the golden fixture: no wall-clock time
// reaches an answer.
var goldenStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const goldenPolicy = `
models:
  A920:
    target: 2.5.1
    minimum: 2.3.0
    blocked: [2.4.0]
    url: https://updates.example.com/a920-2.5.1.bin
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
  A80:
    target: 1.2.0
    url: https://updates.example.com/a80-1.2.0.bin
    sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
`

// goldenFleet is a real health engine and command tracker on a fixed
// clock, fed with fixed messages: every flag of PROTOCOL.md §2 on a
// terminal of its own, a host incident, a suspect firmware, a provisioned
// terminal that never connected, a command with its acks and a crew visit.
type goldenFleet struct {
	now    time.Time
	engine *health.Engine
	cmds   *commands.Tracker
	seq    map[posfleet.TerminalRef]int64
	txnN   map[posfleet.TerminalRef]int
	// sites is the registry the engine and the Directory read.
	sites map[posfleet.TerminalRef]registry.Terminal
}

func goldenRef(tenant, id string) posfleet.TerminalRef {
	return posfleet.TerminalRef{Tenant: tenant, Terminal: id}
}

func (g *goldenFleet) header(ref posfleet.TerminalRef) posfleet.Header {
	g.seq[ref]++
	return posfleet.Header{Seq: g.seq[ref], TS: g.now}
}

func (g *goldenFleet) send(ref posfleet.TerminalRef, m *posfleet.Message) {
	m.Terminal, m.Received = ref, g.now
	g.engine.Observe(m)
	g.cmds.Observe(m)
}

// advance moves the clock on by d in steps of the engine's tick.
func (g *goldenFleet) advance(d time.Duration) {
	for end := g.now.Add(d); g.now.Before(end); {
		g.now = g.now.Add(5 * time.Second)
		if g.now.After(end) {
			g.now = end
		}
		g.engine.Tick(g.now)
	}
}

func gptr[T any](v T) *T { return &v }

func (g *goldenFleet) hb(ref posfleet.TerminalRef, mods ...func(*posfleet.Heartbeat)) {
	h := &posfleet.Heartbeat{Header: g.header(ref), UptimeS: gptr[int64](3600), BatteryPct: gptr(80), Charging: gptr(false),
		TempC: gptr(35.0), SignalDBm: gptr(-70), Net: posfleet.Net4G, HostRTTMs: gptr(250), Paper: posfleet.PaperOK, PendingTxns: gptr(0)}
	for _, m := range mods {
		m(h)
	}
	g.send(ref, &posfleet.Message{Channel: posfleet.ChannelHeartbeat, Heartbeat: h})
}

func (g *goldenFleet) txn(ref posfleet.TerminalRef, mods ...func(*posfleet.Transaction)) {
	g.txnN[ref]++
	x := &posfleet.Transaction{Header: g.header(ref), ID: fmt.Sprintf("%s-%d", ref.Terminal, g.txnN[ref]), Type: posfleet.TxnSale,
		Entry: posfleet.EntryChip, Currency: "CNY", AmountEntered: gptr[int64](1000), AmountCharged: gptr[int64](1000),
		Result: posfleet.ResultApproved, RC: "00", HostMs: gptr(300), Receipt: posfleet.ReceiptPrinted}
	for _, m := range mods {
		m(x)
	}
	g.send(ref, &posfleet.Message{Channel: posfleet.ChannelTxn, Txn: x})
}

func (g *goldenFleet) fault(ref posfleet.TerminalRef, component, code, severity, state string) {
	g.send(ref, &posfleet.Message{Channel: posfleet.ChannelFault, Fault: &posfleet.Fault{Header: g.header(ref),
		Component: component, Code: code, Severity: severity, State: state}})
}

func (g *goldenFleet) inv(ref posfleet.TerminalRef, model, fw string, upd *posfleet.UpdateAttempt) {
	g.send(ref, &posfleet.Message{Channel: posfleet.ChannelFirmware, Inventory: &posfleet.Inventory{Header: g.header(ref),
		Model: model, Serial: "S-" + ref.Terminal, Firmware: fw, App: "1.0.0", BootReason: posfleet.BootPowerOn, Update: upd}})
}

func (g *goldenFleet) ack(ref posfleet.TerminalRef, id, status, detail string) {
	g.send(ref, &posfleet.Message{Channel: posfleet.ChannelAck, Ack: &posfleet.Ack{Header: g.header(ref), CmdID: id, Status: status, Detail: detail}})
}

func gResult(r, rc string) func(*posfleet.Transaction) {
	return func(x *posfleet.Transaction) { x.Result, x.RC = r, rc }
}

// newGoldenFleet builds the fixture. Everything happens in one fixed
// order on the fixed clock, so two runs give the same engine state.
func newGoldenFleet(t *testing.T) *goldenFleet {
	t.Helper()
	g := &goldenFleet{now: goldenStart, cmds: commands.New(), seq: map[posfleet.TerminalRef]int64{}, txnN: map[posfleet.TerminalRef]int{},
		sites: map[posfleet.TerminalRef]registry.Terminal{}}
	goldenSites := g.sites
	cfg := health.DefaultConfig()
	cfg.Now = func() time.Time { return g.now }
	cfg.SuspectMinTxns = 30
	cfg.Site = func(r posfleet.TerminalRef) (health.Site, bool) {
		rt, ok := goldenSites[r]
		if !ok {
			return health.Site{}, false
		}
		s := health.Site{Model: rt.Model, Merchant: rt.Merchant, Site: rt.Site, Region: rt.Region}
		if rt.Lat != nil {
			s.Lat, s.Lon = *rt.Lat, *rt.Lon
		}
		return s, true
	}
	g.engine = health.New(cfg)
	if err := g.engine.SetPolicy([]byte(goldenPolicy)); err != nil {
		t.Fatal(err)
	}

	acme := func(id string) posfleet.TerminalRef { return goldenRef("acme", id) }
	// The acme terminals, one per flag, each with a registry entry.
	ids := []string{"T-00", "T-01", "T-02", "T-03", "T-04", "T-05", "T-06", "T-07", "T-08", "T-09",
		"T-10", "T-11", "T-12", "T-13", "T-14", "T-15", "T-16", "T-17", "T-18", "T-19", "T-20"}
	region := []string{"north", "south"}
	for i, id := range ids {
		rt := registry.Terminal{TerminalRef: acme(id), Model: "A920", Merchant: fmt.Sprintf("M-%02d", i%4),
			Site: "Shop " + id, Region: region[i%2], Created: goldenStart.Add(-48 * time.Hour), Updated: goldenStart.Add(-24 * time.Hour)}
		if i%3 == 0 {
			rt.Lat, rt.Lon = gptr(31.25+float64(i)/8), gptr(-121.5+float64(i)/8)
		}
		goldenSites[rt.TerminalRef] = rt
	}
	// A provisioned terminal that never connected.
	never := acme("T-99")
	goldenSites[never] = registry.Terminal{TerminalRef: never, Model: "A80", Merchant: "M-99", Site: "Kiosk 99", Region: "north",
		Created: goldenStart.Add(-72 * time.Hour), Updated: goldenStart.Add(-72 * time.Hour)}
	g.engine.Provision(never)

	// T-01 falls silent: offline by silence once ten minutes have passed.
	g.inv(acme("T-01"), "A920", "2.5.1", nil)
	g.hb(acme("T-01"))
	g.txn(acme("T-01"))
	g.advance(10 * time.Minute)

	for _, id := range ids {
		if id == "T-01" {
			continue
		}
		g.inv(acme(id), "A920", "2.5.1", nil)
		if id != "T-19" && id != "T-20" { // their first heartbeat is skewed
			g.hb(acme(id))
		}
	}
	// T-02: offline by its last will, after a sale (was selling).
	g.txn(acme("T-02"))
	g.send(acme("T-02"), &posfleet.Message{Channel: posfleet.ChannelStatus, Status: &posfleet.Status{Online: false}})
	// T-03: firmware_outdated; T-04: firmware_blocked (and outdated).
	g.inv(acme("T-03"), "A920", "2.4.1", nil)
	g.inv(acme("T-04"), "A920", "2.4.0", nil)
	// T-05: update_failed.
	g.inv(acme("T-05"), "A920", "2.4.1", &posfleet.UpdateAttempt{Target: "2.5.1", Status: posfleet.UpdateFailed, Error: "checksum mismatch"})
	// T-06: amount_mismatch.
	g.txn(acme("T-06"), func(x *posfleet.Transaction) { x.AmountCharged = gptr[int64](1006) })
	// T-07: txn_failures (5 of 10: too many for chance).
	for range 5 {
		g.txn(acme("T-07"))
	}
	for range 3 {
		g.txn(acme("T-07"), gResult(posfleet.ResultError, ""))
	}
	g.txn(acme("T-07"), gResult(posfleet.ResultTimeout, ""))
	g.txn(acme("T-07"), gResult(posfleet.ResultTimeout, ""))
	// T-08: receipt_failures by failed prints; T-09 by paper out.
	g.txn(acme("T-08"), func(x *posfleet.Transaction) { x.Receipt = posfleet.ReceiptFailed })
	g.txn(acme("T-08"), func(x *posfleet.Transaction) { x.Receipt = posfleet.ReceiptFailed })
	g.hb(acme("T-09"), func(h *posfleet.Heartbeat) { h.Paper = posfleet.PaperOut })
	// T-10: refund_anomaly (invalid amount); T-11 (larger than the sale).
	refund := func(amount, original int64) func(*posfleet.Transaction) {
		return func(x *posfleet.Transaction) {
			x.Type, x.AmountEntered, x.AmountCharged = posfleet.TxnRefund, gptr(amount), gptr(amount)
			x.OriginalID, x.OriginalAmount = "orig", gptr(original)
		}
	}
	g.txn(acme("T-10"), refund(500, 1000), gResult(posfleet.ResultDeclined, "13"))
	g.txn(acme("T-11"), refund(1001, 1000))
	// T-12: hardware_fault; T-13: tamper; T-14: tamper by the secure element.
	g.fault(acme("T-12"), posfleet.ComponentPrinter, "PAPER_JAM", posfleet.SeverityWarning, posfleet.FaultRaised)
	g.fault(acme("T-13"), posfleet.ComponentKeypad, "TAMPER", posfleet.SeverityCritical, posfleet.FaultRaised)
	g.fault(acme("T-14"), posfleet.ComponentSecureElement, "KEY_ERASED", posfleet.SeverityInfo, posfleet.FaultRaised)
	// T-15: weak_network by signal; T-16 by host round trip.
	for i := range 10 {
		g.hb(acme("T-15"), func(h *posfleet.Heartbeat) { h.SignalDBm = gptr(-106) })
		g.hb(acme("T-16"), func(h *posfleet.Heartbeat) { h.HostRTTMs = gptr(map[bool]int{true: 3001, false: 200}[i < 2]) })
	}
	// T-17: battery low.
	for range 3 {
		g.hb(acme("T-17"), func(h *posfleet.Heartbeat) { h.BatteryPct = gptr(14) })
	}
	// T-19: clock_skew behind; T-20 ahead.
	skew := func(d time.Duration) func(*posfleet.Heartbeat) {
		return func(h *posfleet.Heartbeat) { h.TS = h.TS.Add(d) }
	}
	g.hb(acme("T-19"), skew(-301*time.Second))
	g.hb(acme("T-20"), skew(301*time.Second))
	g.advance(time.Minute)
	g.hb(acme("T-19"), skew(-301*time.Second))
	g.hb(acme("T-20"), skew(301*time.Second))
	// The others stay online.
	for _, id := range []string{"T-00", "T-03", "T-04", "T-05", "T-06", "T-07", "T-08", "T-10", "T-11", "T-12", "T-13", "T-14"} {
		g.hb(acme(id))
	}
	// T-18: battery hot.
	g.hb(acme("T-18"), func(h *posfleet.Heartbeat) { h.TempC = gptr(60.5) })

	// T-00: a command with its acks, and a crew visit.
	g.cmds.Sent(acme("T-00"), posfleet.Command{ID: "cmd-0000000000000001", Type: posfleet.CmdUpdateFirmware, Target: "2.5.1",
		URL: "https://updates.example.com/a920-2.5.1.bin", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}, "ops-acme", g.now)
	g.cmds.Sent(acme("T-00"), posfleet.Command{ID: "cmd-0000000000000002", Type: posfleet.CmdReboot}, "root", g.now)
	g.advance(10 * time.Second)
	g.ack(acme("T-00"), "cmd-0000000000000001", posfleet.AckAccepted, "")
	g.ack(acme("T-00"), "cmd-0000000000000002", posfleet.AckFailed, "busy: transaction in progress")
	g.advance(10 * time.Second)
	g.ack(acme("T-00"), "cmd-0000000000000001", posfleet.AckDone, "")
	g.fault(acme("T-00"), posfleet.ComponentPrinter, "PAPER_JAM", posfleet.SeverityWarning, posfleet.FaultRaised)
	g.fault(acme("T-00"), posfleet.ComponentPrinter, "PAPER_JAM", posfleet.SeverityWarning, posfleet.FaultCleared)
	if _, err := g.engine.MarkServiced(acme("T-00"), "printer cleaned", "crew-7", g.now); err != nil {
		t.Fatal(err)
	}

	// Tenant "other": a host incident over five terminals of five merchants.
	var others []posfleet.TerminalRef
	for i := range 8 {
		ref := goldenRef("other", fmt.Sprintf("H-%d", i))
		others = append(others, ref)
		goldenSites[ref] = registry.Terminal{TerminalRef: ref, Model: "A80", Merchant: fmt.Sprintf("OM-%d", i), Site: "Mall " + ref.Terminal, Region: "east"}
		g.inv(ref, "A80", "1.2.0", nil)
		g.hb(ref)
	}
	for range 6 {
		for _, ref := range others {
			g.txn(ref)
		}
		g.advance(10 * time.Second)
	}
	for _, ref := range others[:5] {
		for range 4 {
			g.txn(ref, gResult(posfleet.ResultTimeout, ""))
			g.txn(ref, gResult(posfleet.ResultDeclined, "91"))
		}
	}
	g.advance(15 * time.Second)

	// Tenant "beta": a suspect firmware (Fisher's exact test on few counts).
	for i := range 10 {
		ref := goldenRef("beta", fmt.Sprintf("B-old%d", i))
		g.inv(ref, "A80", "1.1.0", nil)
		g.hb(ref)
		for range 40 {
			g.txn(ref)
		}
	}
	for i := range 3 {
		ref := goldenRef("beta", fmt.Sprintf("B-bug%d", i))
		g.inv(ref, "A80", "1.1.1", nil)
		g.hb(ref)
		for range 5 {
			g.txn(ref)
		}
		for range 5 {
			g.txn(ref, gResult(posfleet.ResultError, ""))
		}
	}
	g.advance(5 * time.Second)
	return g
}

type goldenDirectory struct{ g *goldenFleet }

func (d goldenDirectory) Get(_ context.Context, ref posfleet.TerminalRef) (registry.Terminal, error) {
	if t, ok := d.g.sites[ref]; ok {
		return t, nil
	}
	return registry.Terminal{}, registry.ErrNotFound
}

type goldenCommander struct{}

func (goldenCommander) SendCommand(context.Context, posfleet.TerminalRef, posfleet.Command) error {
	return errors.New("golden: no command is sent")
}

// TestAPIGolden calls every GET endpoint of the JSON API (and a few of its
// errors) on the golden fixture and compares each answer's body byte for
// byte with testdata/golden/<name>; index.txt holds each answer's status
// and content type. The fixture's clock, messages, command IDs and users
// are fixed; the one thing normalised is the order of an incident's
// terminals (sortRefLists). The API has no JSON endpoint for
// rejections or security events (the security page is HTML only).
func TestAPIGolden(t *testing.T) {
	g := newGoldenFleet(t)
	clock := func() time.Time { return g.now }
	users, err := newUsers(t, auth.Options{BcryptCost: 4, Now: clock, Rand: rand.NewChaCha8([32]byte{})}) // fixed token IDs
	if err != nil {
		t.Fatal(err)
	}
	defer users.Close()
	ctx := context.Background()
	for _, u := range []struct{ name, tenant string }{{"ops-acme", "acme"}, {"ops-other", "other"}, {"root", auth.AllTenants}} {
		if err := users.AddUser(ctx, u.name, u.tenant, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	tokens := map[string]string{}
	for _, tk := range []struct{ name, tenant string }{{"admin", auth.AllTenants}, {"acme-script", "acme"}} {
		if tokens[tk.name], err = users.CreateToken(ctx, tk.name, tk.tenant); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key, Health: g.engine, Directory: goldenDirectory{g},
		Commands: g.cmds, Commander: goldenCommander{}, Now: clock,
		Checks: map[string]web.Check{"influxdb": func(context.Context) error { return nil }, "broker": func(context.Context) error { return errors.New("down") }}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	type call struct{ name, token, path string }
	calls := []call{
		{"healthz.json", "", "/healthz"},
		{"me-admin.json", "admin", "/api/v1/me"},
		{"me-acme.json", "acme-script", "/api/v1/me"},
		{"fleet-admin.json", "admin", "/api/v1/fleet"},
		{"fleet-acme.json", "acme-script", "/api/v1/fleet"},
		{"terminals-admin.json", "admin", "/api/v1/terminals?per_page=100"},
		{"terminals-acme.json", "acme-script", "/api/v1/terminals"},
		{"terminals-flag.json", "admin", "/api/v1/terminals?flag=tamper"},
		{"terminals-model-firmware.json", "admin", "/api/v1/terminals?model=A920&firmware=2.4.1"},
		{"terminals-region-q.json", "admin", "/api/v1/terminals?region=north&q=shop%20t-1"},
		{"terminals-online-false.json", "admin", "/api/v1/terminals?online=false"},
		{"terminals-state-never.json", "admin", "/api/v1/terminals?state=never_connected"},
		{"terminals-state-offline.json", "admin", "/api/v1/terminals?state=offline"},
		{"terminals-page.json", "admin", "/api/v1/terminals?per_page=7&page=2"},
		{"worklist-admin.json", "admin", "/api/v1/worklist"},
		{"worklist-acme.json", "acme-script", "/api/v1/worklist?format=json"},
		{"worklist-admin.csv", "admin", "/api/v1/worklist?format=csv"},
		{"incidents-admin.json", "admin", "/api/v1/incidents"},
		{"incidents-acme.json", "acme-script", "/api/v1/incidents"},
		{"policy-admin.json", "admin", "/api/v1/policy"},
		{"policy-acme.json", "acme-script", "/api/v1/policy"},
		{"policy-admin.yaml", "admin", "/api/v1/policy?format=yaml"},
		{"users.json", "admin", "/api/v1/users"},
		{"tokens.json", "admin", "/api/v1/tokens"},
		// Errors.
		{"error-unknown-endpoint.json", "admin", "/api/v1/nothing"},
		{"error-bad-flag.json", "admin", "/api/v1/terminals?flag=nope"},
		{"error-bad-page.json", "admin", "/api/v1/terminals?page=0"},
		{"error-unknown-terminal.json", "admin", "/api/v1/terminals/acme/T-77"},
		{"error-other-tenant.json", "acme-script", "/api/v1/terminals/other/H-0"},
		{"error-bad-format.json", "admin", "/api/v1/worklist?format=xml"},
		{"error-users-not-admin.json", "acme-script", "/api/v1/users"},
		{"error-tokens-not-admin.json", "acme-script", "/api/v1/tokens"},
		{"error-no-token.json", "", "/api/v1/fleet"},
	}
	// Every terminal's detail: every flag's evidence, the never-connected
	// terminal, the command log, the crew visit, the incident's terminals.
	var refs []string
	for ref := range g.sites {
		refs = append(refs, ref.Tenant+"/"+ref.Terminal)
	}
	for _, tenant := range []string{"beta"} {
		for _, id := range []string{"B-old0", "B-bug0"} {
			refs = append(refs, tenant+"/"+id)
		}
	}
	for _, r := range refs {
		calls = append(calls, call{"terminal-" + strings.ReplaceAll(r, "/", "-") + ".json", "admin", "/api/v1/terminals/" + r})
	}

	dir := filepath.Join("testdata", "golden")
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	index := map[string]string{}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+tokens[c.token])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			index[c.name] = fmt.Sprintf("%s\t%s\t%d\t%s\t%s\n", c.name, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
			compareGolden(t, filepath.Join(dir, c.name), sortRefLists(body))
		})
	}
	var idx strings.Builder
	idx.WriteString("# name\tpath\tstatus\tcontent type\tcontent disposition\n")
	for _, c := range slices.Sorted(maps.Keys(index)) {
		idx.WriteString(index[c])
	}
	compareGolden(t, filepath.Join(dir, "index.txt"), []byte(idx.String()))
}

// refList is an indented JSON list of terminal references under the key
// "terminals" (an incident's terminals), and refItem one of its items.
var (
	refList = regexp.MustCompile(`"terminals": \[\n((?:[ ]*\{\n[ ]*"tenant": "[^"\n]*",\n[ ]*"terminal": "[^"\n]*"\n[ ]*\},?\n)+)`)
	refItem = regexp.MustCompile(`([ ]*)\{\n[ ]*"tenant": "([^"\n]*)",\n[ ]*"terminal": "([^"\n]*)"\n[ ]*\},?\n`)
)

// sortRefLists sorts the items of every incident's terminal list, the one
// normalisation of the golden test: the engine appends the terminals an
// incident hits in the order it finds them in its shards' maps, which
// differs from run to run for terminals hit within the same tick.
func sortRefLists(body []byte) []byte {
	return refList.ReplaceAllFunc(body, func(list []byte) []byte {
		items := refItem.FindAllSubmatch(list, -1)
		slices.SortFunc(items, func(a, b [][]byte) int {
			return cmp.Or(bytes.Compare(a[2], b[2]), bytes.Compare(a[3], b[3]))
		})
		var out bytes.Buffer
		out.WriteString("\"terminals\": [\n")
		for i, it := range items {
			ind := string(it[1])
			fmt.Fprintf(&out, "%s{\n%s  \"tenant\": %q,\n%s  \"terminal\": %q\n%s}", ind, ind, it[2], ind, it[3], ind)
			if i < len(items)-1 {
				out.WriteString(",")
			}
			out.WriteString("\n")
		}
		return out.Bytes()
	})
}

// compareGolden compares got with the golden file, or writes it with -update.
func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\n%s", path, firstDiff(string(want), string(got)))
	}
}

// firstDiff shows the first line that differs.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, w, g)
		}
	}
	return "(same lines, different bytes)"
}
