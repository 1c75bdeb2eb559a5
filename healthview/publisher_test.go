package healthview_test

import (
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
	"github.com/posfleet/posfleet/store/pgtest"
	"github.com/posfleet/posfleet/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func ptr[T any](v T) *T { return &v }

// clock is a manual clock shared by an engine and its publisher.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                { return c.t }
func (c *clock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

// fleet is one or more engines fed the same messages (health replicas).
type fleet struct {
	c    *clock
	engs []*health.Engine
	seq  map[posfleet.TerminalRef]int64
}

func newFleet(c *clock, n int) *fleet {
	f := &fleet{c: c, seq: map[posfleet.TerminalRef]int64{}}
	for range n {
		f.engs = append(f.engs, health.New(health.Config{Now: c.now, Merchant: func(r posfleet.TerminalRef) string {
			var i int
			fmt.Sscanf(r.Terminal, "T%d", &i)
			return fmt.Sprintf("m%d", i%5)
		}}))
	}
	return f
}

func (f *fleet) send(engs []*health.Engine, ref posfleet.TerminalRef, m posfleet.Message) {
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

func (f *fleet) all(ref posfleet.TerminalRef, m posfleet.Message) { f.send(f.engs, ref, m) }

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

func ref(id string) posfleet.TerminalRef { return posfleet.TerminalRef{Tenant: "acme", Terminal: id} }

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
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
		f := newFleet(c, 1)
		e := f.engs[0]
		p := healthview.NewPublisher(db, e, healthview.PublisherOptions{Holder: "a", Now: c.now})
		a := ref("T00")
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
			refs = append(refs, ref(fmt.Sprintf("T%02d", i)))
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
