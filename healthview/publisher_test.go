package healthview_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// clock is a manual clock shared by an engine and its publisher.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                { return c.t }
func (c *clock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

// fleet is one or more engines fed the same messages (health replicas).
type pubFleet struct {
	c    *clock
	engs []*health.Engine
	seq  map[posfleet.TerminalRef]int64
}

func newPubFleet(c *clock, n int) *pubFleet {
	f := &pubFleet{c: c, seq: map[posfleet.TerminalRef]int64{}}
	for range n {
		f.engs = append(f.engs, health.New(health.Config{Now: c.now, Merchant: func(r posfleet.TerminalRef) string {
			var i int
			fmt.Sscanf(r.Terminal, "T%d", &i)
			return fmt.Sprintf("m%d", i%5)
		}}))
	}
	return f
}

func (f *pubFleet) send(engs []*health.Engine, ref posfleet.TerminalRef, m posfleet.Message) {
	f.seq[ref]++
	h := posfleet.Header{Seq: f.seq[ref], TS: f.c.t}
	m.Terminal, m.Received = ref, f.c.t
	switch {
	case m.Fault != nil:
		m.Channel, m.Fault.Header = posfleet.ChannelFault, h
	case m.Txn != nil:
		m.Channel, m.Txn.Header = posfleet.ChannelTxn, h
	case m.Inventory != nil:
		m.Channel, m.Inventory.Header = posfleet.ChannelFirmware, h
	case m.Status != nil:
		m.Channel = posfleet.ChannelStatus
	}
	for _, e := range engs {
		msg := m
		e.Observe(&msg)
	}
}

func (f *pubFleet) all(ref posfleet.TerminalRef, m posfleet.Message) { f.send(f.engs, ref, m) }

func fault(state string) posfleet.Message {
	return posfleet.Message{Fault: &posfleet.Fault{Component: posfleet.ComponentPrinter, Code: "PRINTER_JAM",
		Severity: posfleet.SeverityWarning, State: state}}
}

func inv() posfleet.Message {
	return posfleet.Message{Inventory: &posfleet.Inventory{Model: "A920", Serial: "S", Firmware: "2.5.1", App: "1.0.0", BootReason: posfleet.BootPowerOn}}
}

func txn(id, result, rc string) posfleet.Message {
	return posfleet.Message{Txn: &posfleet.Transaction{ID: id, Type: posfleet.TxnSale, Entry: posfleet.EntryChip, Currency: "CNY",
		AmountEntered: ptr[int64](1000), AmountCharged: ptr[int64](1000), Result: result, RC: rc, HostMs: ptr(300), Receipt: posfleet.ReceiptPrinted}}
}

func acmeRef(id string) posfleet.TerminalRef {
	return posfleet.TerminalRef{Tenant: "acme", Terminal: id}
}

type storedFlag struct {
	Since    int64
	Evidence string
}

func flags(t *testing.T, db *store.DB, r posfleet.TerminalRef) map[string]storedFlag {
	t.Helper()
	rows, err := db.Query(`SELECT flag, since_ms, evidence FROM terminal_flags WHERE tenant = $1 AND terminal = $2`, r.Tenant, r.Terminal)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]storedFlag{}
	for rows.Next() {
		var name string
		var f storedFlag
		if err := rows.Scan(&name, &f.Since, &f.Evidence); err != nil {
			t.Fatal(err)
		}
		out[name] = f
	}
	return out
}

type event struct {
	Flag   string
	Raised bool
	At     int64
	Actor  string
}

func events(t *testing.T, db *store.DB, r posfleet.TerminalRef) []event {
	t.Helper()
	rows, err := db.Query(`SELECT flag, raised, at_ms, actor FROM flag_events WHERE tenant = $1 AND terminal = $2 ORDER BY at_ms, raised DESC`, r.Tenant, r.Terminal)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []event
	for rows.Next() {
		var e event
		if err := rows.Scan(&e.Flag, &e.Raised, &e.At, &e.Actor); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func count(t *testing.T, db *store.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func step(t *testing.T, p *healthview.Publisher, now time.Time) {
	t.Helper()
	if err := p.Step(context.Background(), now); err != nil {
		t.Fatal(err)
	}
}

// TestPublisherView: flags raised and cleared by messages appear in and
// leave terminal_flags, with evidence and since; flag_events keeps the
// history; incidents and fleet summaries are written.
func TestPublisherView(t *testing.T) {
	// One prepared statement per row, and several rows per statement.
	for _, rows := range []int{1, 3} {
		t.Run(fmt.Sprintf("rows=%d", rows), func(t *testing.T) {
			defer healthview.SetRowsPerStatement(rows)()
			testPublisherView(t)
		})
	}
}

func testPublisherView(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
		f := newPubFleet(c, 1)
		e := f.engs[0]
		p := healthview.NewPublisher(db, e, healthview.PublisherOptions{Holder: "a", Now: c.now})
		a := acmeRef("T00")
		f.all(a, inv())
		step(t, p, c.now())
		if n := count(t, db, `SELECT COUNT(*) FROM terminal_state`); n != 1 {
			t.Fatalf("terminal_state: %d rows", n)
		}

		raisedAt := c.add(time.Minute)
		f.all(a, fault(posfleet.FaultRaised))
		step(t, p, c.add(time.Second))
		fl := flags(t, db, a)
		hw, ok := fl[string(posfleet.FlagHardwareFault)]
		if !ok || hw.Since != raisedAt.UnixMilli() || len(fl) != 1 {
			t.Fatalf("terminal_flags = %+v", fl)
		}
		var ev posfleet.HardwareFaultEvidence
		if err := json.Unmarshal([]byte(hw.Evidence), &ev); err != nil || len(ev.Faults) != 1 || ev.Faults[0].Code != "PRINTER_JAM" {
			t.Fatalf("evidence %s: %+v %v", hw.Evidence, ev, err)
		}
		var state string
		if err := db.QueryRow(`SELECT flags FROM terminal_state WHERE tenant = 'acme' AND terminal = 'T00'`).Scan(&state); err != nil || state != "hardware_fault" {
			t.Fatalf("terminal_state.flags = %q, %v", state, err)
		}

		clearedAt := c.add(time.Minute)
		f.all(a, fault(posfleet.FaultCleared))
		step(t, p, c.add(time.Second))
		if fl := flags(t, db, a); len(fl) != 0 {
			t.Fatalf("cleared, terminal_flags = %+v", fl)
		}
		want := []event{
			{Flag: "hardware_fault", Raised: true, At: raisedAt.UnixMilli()},
			{Flag: "hardware_fault", Raised: false, At: clearedAt.UnixMilli()},
		}
		if got := events(t, db, a); !slices.Equal(got, want) {
			t.Fatalf("flag_events = %+v, want %+v", got, want)
		}

		// A fleet-wide host outage: 30 terminals of 5 merchants.
		var refs []posfleet.TerminalRef
		for i := range 30 {
			refs = append(refs, acmeRef(fmt.Sprintf("T%02d", i)))
		}
		for range 12 {
			for i, r := range refs {
				f.all(r, txn(fmt.Sprintf("ok-%d-%d", i, c.t.Unix()), posfleet.ResultApproved, "00"))
			}
			c.add(10 * time.Second)
		}
		for _, r := range refs {
			for k := range 4 {
				f.all(r, txn(fmt.Sprintf("to-%s-%d", r.Terminal, k), posfleet.ResultTimeout, ""))
				f.all(r, txn(fmt.Sprintf("dn-%s-%d", r.Terminal, k), posfleet.ResultDeclined, "91"))
			}
		}
		e.Tick(c.add(5 * time.Second))
		if len(e.Incidents("acme")) == 0 {
			t.Fatal("the engine opened no incident")
		}
		step(t, p, c.add(5*time.Second))
		if n := count(t, db, `SELECT COUNT(*) FROM incidents WHERE tenant = 'acme' AND open = $1`, true); n != 1 {
			t.Fatalf("open incidents: %d", n)
		}
		for _, tenant := range []string{"", "acme"} {
			var body string
			if err := db.QueryRow(`SELECT body FROM fleet_views WHERE tenant = $1 AND view = 'summary'`, tenant).Scan(&body); err != nil {
				t.Fatalf("summary of %q: %v", tenant, err)
			}
			var fs health.FleetSummary
			if err := json.Unmarshal([]byte(body), &fs); err != nil || fs.Total != 30 || len(fs.OpenIncidents) != 1 {
				t.Fatalf("summary of %q: %+v %v", tenant, fs, err)
			}
			if n := count(t, db, `SELECT COUNT(*) FROM fleet_views WHERE tenant = $1 AND view = 'suspect_firmware'`, tenant); n != 1 {
				t.Fatalf("suspect_firmware of %q missing", tenant)
			}
		}
		if n := count(t, db, `SELECT COUNT(*) FROM terminal_state`); n != 30 {
			t.Fatalf("terminal_state: %d rows", n)
		}
	})
}

func terminals(t *testing.T, db *store.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT terminal FROM terminal_state ORDER BY terminal`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestPublisherFailover: two replicas with two engines fed the same
// messages publish to one database; only the lease holder writes. When the
// holder stops without releasing the lease (SIGKILL), the other takes over
// within the TTL and publishes everything, with the flag events it missed.
func TestPublisherFailover(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
		f := newPubFleet(c, 2)
		ea, eb := f.engs[0], f.engs[1]
		ttl := 10 * time.Second
		pa := healthview.NewPublisher(db, ea, healthview.PublisherOptions{Holder: "a", TTL: ttl, Now: c.now})
		pb := healthview.NewPublisher(db, eb, healthview.PublisherOptions{Holder: "b", TTL: ttl, Now: c.now})
		x := acmeRef("T01")
		f.all(x, inv())
		// What only one engine knows shows who writes.
		f.send([]*health.Engine{ea}, acmeRef("T-only-a"), inv())
		f.send([]*health.Engine{eb}, acmeRef("T-only-b"), inv())
		step(t, pa, c.now())
		step(t, pb, c.now())
		if !pa.Held() || pb.Held() {
			t.Fatalf("held: a %v, b %v", pa.Held(), pb.Held())
		}
		for range 3 {
			c.add(time.Second)
			f.all(x, fault(posfleet.FaultRaised))
			step(t, pb, c.now())
			step(t, pa, c.now())
		}
		if got := terminals(t, db); !slices.Equal(got, []string{"T-only-a", "T01"}) {
			t.Fatalf("terminal_state = %v: b wrote", got)
		}

		// a is killed: no Release, no more steps. While the lease runs
		// out, the fault clears and another flag is raised.
		killed := c.now()
		c.add(time.Second)
		f.all(x, fault(posfleet.FaultCleared))
		f.all(x, posfleet.Message{Status: &posfleet.Status{Online: false}})
		for !pb.Held() && c.now().Sub(killed) <= ttl+time.Second {
			step(t, pb, c.add(time.Second))
		}
		if !pb.Held() {
			t.Fatal("b did not take over within the TTL")
		}
		if got := terminals(t, db); !slices.Equal(got, []string{"T-only-a", "T-only-b", "T01"}) {
			t.Fatalf("after the takeover, terminal_state = %v", got)
		}
		fl := flags(t, db, x)
		if _, ok := fl[string(posfleet.FlagOffline)]; !ok || len(fl) != 1 {
			t.Fatalf("after the takeover, terminal_flags = %+v", fl)
		}
		// The clearing b did not see happen is dated when b found it.
		var got []string
		for _, e := range events(t, db, x) {
			got = append(got, fmt.Sprintf("%s/%v", e.Flag, e.Raised))
			if !e.Raised && e.At != c.now().UnixMilli() {
				t.Errorf("clearing found at the takeover dated %d, want %d", e.At, c.now().UnixMilli())
			}
		}
		want := []string{"hardware_fault/true", "offline/true", "hardware_fault/false"}
		if !slices.Equal(got, want) {
			t.Fatalf("flag_events = %v, want %v", got, want)
		}

		// a comes back from its pause: fenced, it writes nothing.
		f.send([]*health.Engine{ea}, acmeRef("T-only-a-2"), inv())
		if err := pa.Step(context.Background(), c.now()); err != nil {
			t.Fatal(err)
		}
		if pa.Held() {
			t.Fatal("a holds the lease b holds")
		}
		if got := terminals(t, db); slices.Contains(got, "T-only-a-2") {
			t.Fatalf("the fenced replica wrote: %v", got)
		}
		// A write under a's stale lease is refused.
		stale := &store.Lease{Name: healthview.LeaseName, Holder: "a", TTL: ttl, Fence: 1}
		err := healthview.Publish(context.Background(), db, stale, healthview.Batch{}, c.now())
		if err != store.ErrFenced {
			t.Fatalf("stale write: %v, want ErrFenced", err)
		}
	})
}

// TestPublisherAppliesVisitsAndPolicy: a crew visit another replica wrote
// clears the terminal's maintenance flags (recorded as cleared by the
// user) and is marked applied; a newer policy version is applied; a
// standby applies both to its own engine without writing.
func TestPublisherAppliesVisitsAndPolicy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
		f := newPubFleet(c, 2)
		pa := healthview.NewPublisher(db, f.engs[0], healthview.PublisherOptions{Holder: "a", TTL: time.Hour, Now: c.now})
		pb := healthview.NewPublisher(db, f.engs[1], healthview.PublisherOptions{Holder: "b", TTL: time.Hour, Now: c.now})
		x := acmeRef("T01")
		f.all(x, inv())
		f.all(x, fault(posfleet.FaultRaised))
		step(t, pa, c.now())
		step(t, pb, c.now())

		visitAt := c.add(time.Minute)
		if _, err := db.Exec(`INSERT INTO service_visits (id, tenant, terminal, at_ms, by_user, note) VALUES ('v1', 'acme', 'T01', $1, 'crew-7', 'jam cleared')`,
			visitAt.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		policy := "models:\n  A920:\n    target: 2.6.0\n    minimum: 2.0.0\n    url: https://updates.example.com/a920-2.6.0.bin\n    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
		if _, err := db.Exec(`INSERT INTO policy_versions (version, body, created_ms, created_by) VALUES (3, $1, $2, 'admin')`, policy, visitAt.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		// The standby first: it applies to its engine, writes nothing.
		step(t, pb, c.add(time.Second))
		var applied int64
		var cleared string
		if err := db.QueryRow(`SELECT applied_ms, cleared FROM service_visits WHERE id = 'v1'`).Scan(&applied, &cleared); err != nil || applied != 0 {
			t.Fatalf("the standby marked the visit applied: %d %v", applied, err)
		}
		step(t, pa, c.add(time.Second))
		if err := db.QueryRow(`SELECT applied_ms, cleared FROM service_visits WHERE id = 'v1'`).Scan(&applied, &cleared); err != nil ||
			applied != c.now().UnixMilli() || cleared != "hardware_fault" {
			t.Fatalf("visit: applied %d, cleared %q, %v", applied, cleared, err)
		}
		for i, e := range f.engs {
			h, _ := e.Terminal(x)
			if h.Has(posfleet.FlagHardwareFault) || len(h.Service) != 1 {
				t.Fatalf("engine %d: flags %v, service %v", i, h.Flags, h.Service)
			}
			if e.Policy().Models["A920"].Target != "2.6.0" {
				t.Fatalf("engine %d: policy %+v", i, e.Policy())
			}
		}
		fl := flags(t, db, x)
		if _, ok := fl[string(posfleet.FlagHardwareFault)]; ok {
			t.Fatalf("terminal_flags = %+v", fl)
		}
		if _, ok := fl[string(posfleet.FlagFirmwareOutdated)]; !ok {
			t.Fatalf("the new policy's target raised no firmware_outdated: %+v", fl)
		}
		evs := events(t, db, x)
		if last := evs[len(evs)-1]; last.Flag != "hardware_fault" || last.Raised || last.Actor != "crew-7" {
			t.Fatalf("flag_events = %+v", evs)
		}
		// Applied once: later steps leave it.
		step(t, pa, c.add(time.Second))
		step(t, pb, c.now())
		for i, e := range f.engs {
			if h, _ := e.Terminal(x); len(h.Service) != 1 {
				t.Fatalf("engine %d: service %v", i, h.Service)
			}
		}

		// A replica restarted from a snapshot that has the visit does not
		// apply it again.
		var snap bytes.Buffer
		if err := f.engs[1].Snapshot(&snap); err != nil {
			t.Fatal(err)
		}
		restarted := health.New(health.Config{Now: c.now})
		if err := restarted.Restore(&snap); err != nil {
			t.Fatal(err)
		}
		pc := healthview.NewPublisher(db, restarted, healthview.PublisherOptions{Holder: "c", TTL: time.Hour, Now: c.now})
		step(t, pc, c.add(time.Second))
		if h, _ := restarted.Terminal(x); len(h.Service) != 1 {
			t.Fatalf("after a restart: service %v", h.Service)
		}
	})
}

// TestPublisherRefresh: what changes without a transition (last seen)
// reaches the database within RefreshEvery.
func TestPublisherRefresh(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
		f := newPubFleet(c, 1)
		p := healthview.NewPublisher(db, f.engs[0], healthview.PublisherOptions{Holder: "a", Every: time.Second, RefreshEvery: 3 * time.Second, Now: c.now})
		for i := range 7 {
			f.all(acmeRef(fmt.Sprintf("T%02d", i)), inv())
		}
		step(t, p, c.now())
		seen := c.add(time.Minute)
		for i := range 7 {
			f.all(acmeRef(fmt.Sprintf("T%02d", i)), txn(fmt.Sprint(i), posfleet.ResultApproved, "00"))
		}
		for range 3 {
			step(t, p, c.add(time.Second))
		}
		if n := count(t, db, `SELECT COUNT(*) FROM terminal_state WHERE last_seen_ms = $1`, seen.UnixMilli()); n != 7 {
			t.Fatalf("%d of 7 terminals refreshed", n)
		}
	})
}

// TestPublisherRenewsDuringLongPublish: a full publish that takes longer
// than the lease's TTL (a large fleet) renews the lease as it goes, so a
// standby does not take over in the middle (and the two would take it
// from each other for ever, each resyncing).
func TestPublisherRenewsDuringLongPublish(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
		f := newPubFleet(c, 2)
		ttl := 10 * time.Second
		// Each terminal's row takes a second to make: 30 s in all.
		slow := func(posfleet.TerminalRef) (health.Site, bool) { c.add(time.Second); return health.Site{}, false }
		pa := healthview.NewPublisher(db, f.engs[0], healthview.PublisherOptions{Holder: "a", TTL: ttl, BatchSize: 1, Site: slow, Now: c.now})
		pb := healthview.NewPublisher(db, f.engs[1], healthview.PublisherOptions{Holder: "b", TTL: ttl, Now: c.now})
		for i := range 30 {
			for _, e := range f.engs {
				e.Provision(acmeRef(fmt.Sprintf("T%02d", i)))
			}
		}
		start := c.now()
		step(t, pa, start)
		if c.now().Sub(start) <= ttl {
			t.Fatalf("the publish took %v, not longer than the TTL", c.now().Sub(start))
		}
		step(t, pb, c.now())
		if pb.Held() || !pa.Held() {
			t.Fatalf("after a long publish: a held %v, b held %v", pa.Held(), pb.Held())
		}
		if n := count(t, db, `SELECT COUNT(*) FROM terminal_state`); n != 30 {
			t.Fatalf("terminal_state: %d rows", n)
		}
	})
}
