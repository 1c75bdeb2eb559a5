package health_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// drained drains e and fails on a resync unless want says one is due.
func drained(t *testing.T, e *health.Engine, wantResync bool) health.Changes {
	t.Helper()
	c := e.Drain()
	if c.Resync != wantResync {
		t.Fatalf("Resync = %v, want %v", c.Resync, wantResync)
	}
	return c
}

func hasRef(c health.Changes, r posfleet.TerminalRef) bool { return slices.Contains(c.Terminals, r) }

// TestChangeFeed: the change feed reports the terminals whose view changed
// and every flag transition, with evidence, and nothing when only the
// windows moved on without changing a flag.
func TestChangeFeed(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		e.TrackChanges(true)
		drained(t, e, true) // just turned on

		a, b := newTerm(e, "T-A"), newTerm(e, "T-B")
		a.inv("A920", "2.5.1", nil)
		b.inv("A920", "2.5.1", nil)
		c := drained(t, e, false)
		if !hasRef(c, a.ref) || !hasRef(c, b.ref) || len(c.Terminals) != 2 {
			t.Fatalf("new terminals: changed %v", c.Terminals)
		}

		// A heartbeat that changes no flag changes nothing published.
		a.hb()
		if c := drained(t, e, false); len(c.Terminals) != 0 || len(c.Transitions) != 0 {
			t.Fatalf("a plain heartbeat: %+v", c)
		}

		// A fault raises hardware_fault: one raising, with evidence.
		a.fault(posfleet.ComponentPrinter, "PRINTER_JAM", posfleet.SeverityWarning, posfleet.FaultRaised)
		c = drained(t, e, false)
		if !slices.Equal(c.Terminals, []posfleet.TerminalRef{a.ref}) || len(c.Transitions) != 1 {
			t.Fatalf("fault: %+v", c)
		}
		tr := c.Transitions[0]
		if tr.Ref != a.ref || tr.Flag != posfleet.FlagHardwareFault || !tr.Raised || tr.Actor != "" || tr.Evidence == nil ||
			!tr.At.Equal(a.flag(t, posfleet.FlagHardwareFault).Since) {
			t.Fatalf("raising: %+v", tr)
		}

		// Cleared by the terminal: a clearing by the rules, no evidence.
		time.Sleep(time.Minute)
		a.fault(posfleet.ComponentPrinter, "PRINTER_JAM", posfleet.SeverityWarning, posfleet.FaultCleared)
		c = drained(t, e, false)
		if len(c.Transitions) != 1 || c.Transitions[0].Raised || c.Transitions[0].Evidence != nil ||
			!c.Transitions[0].At.Equal(time.Now().UTC()) {
			t.Fatalf("clearing: %+v", c.Transitions)
		}

		// Cleared by a crew visit: the actor is the user.
		b.fault(posfleet.ComponentPrinter, "PRINTER_JAM", posfleet.SeverityWarning, posfleet.FaultRaised)
		drained(t, e, false)
		if _, err := e.MarkServiced(b.ref, "fixed", "crew-7", time.Now()); err != nil {
			t.Fatal(err)
		}
		c = drained(t, e, false)
		if len(c.Transitions) != 1 || c.Transitions[0].Actor != "crew-7" || c.Transitions[0].Raised {
			t.Fatalf("visit: %+v", c.Transitions)
		}
		time.Sleep(time.Second)
		b.hb() // heard from after the visit: its silence counts again

		// The last will: offline, online, each a transition.
		a.status(false)
		c = drained(t, e, false)
		if len(c.Transitions) != 1 || c.Transitions[0].Flag != posfleet.FlagOffline || !c.Transitions[0].Raised {
			t.Fatalf("last will: %+v", c)
		}
		a.hb()
		c = drained(t, e, false)
		if len(c.Transitions) != 1 || c.Transitions[0].Flag != posfleet.FlagOffline || c.Transitions[0].Raised {
			t.Fatalf("back: %+v", c)
		}

		// Silence: Tick raises offline.
		time.Sleep(health.DefaultConfig().OfflineAfter + 2*health.DefaultConfig().TickInterval)
		c = drained(t, e, false)
		n := 0
		for _, tr := range c.Transitions {
			if tr.Flag == posfleet.FlagOffline && tr.Raised {
				n++
			}
		}
		if n != 2 || !hasRef(c, a.ref) || !hasRef(c, b.ref) {
			t.Fatalf("silence: %+v", c)
		}

		// A firmware change is a change, with or without a flag.
		a.inv("A920", "2.5.2", nil)
		if c := drained(t, e, false); !hasRef(c, a.ref) {
			t.Fatalf("firmware: %+v", c)
		}

		// Provisioned terminals are new terminals too.
		e.Provision(ref("T-P"))
		if c := drained(t, e, false); !slices.Equal(c.Terminals, []posfleet.TerminalRef{ref("T-P")}) {
			t.Fatalf("provisioned: %+v", c)
		}
		heard, never := e.Refs()
		if len(heard) != 2 || !slices.Equal(never, []posfleet.TerminalRef{ref("T-P")}) {
			t.Fatalf("Refs = %v, %v", heard, never)
		}
	})
}

// TestChangeFeedOffAndRestore: an engine nobody drains keeps nothing; a
// restored snapshot and a full buffer ask for a resync.
func TestChangeFeedOffAndRestore(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		a := newTerm(e, "T-A")
		a.inv("A920", "2.5.1", nil)
		if c := e.Drain(); len(c.Terminals) != 0 || c.Resync {
			t.Fatalf("off: %+v", c)
		}
		e.TrackChanges(true)
		drained(t, e, true)
		var buf bytes.Buffer
		if err := e.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		a.hb()
		if err := e.Restore(&buf); err != nil {
			t.Fatal(err)
		}
		drained(t, e, true)

		// Overflow: one shard's buffer fills with one terminal flapping.
		for range 3000 {
			a.status(false)
			a.status(true)
		}
		c := drained(t, e, true)
		if len(c.Transitions) == 0 || !hasRef(c, a.ref) {
			t.Fatalf("overflow: %d transitions, terminals %v", len(c.Transitions), c.Terminals)
		}
		drained(t, e, false)
	})
}

// TestWorkItem: one terminal's work-list item is the work list's.
func TestWorkItem(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		a, b := newTerm(e, "T-A"), newTerm(e, "T-B")
		a.inv("A920", "2.5.1", nil)
		b.inv("A920", "2.5.1", nil)
		a.fault(posfleet.ComponentPrinter, "PRINTER_JAM", posfleet.SeverityWarning, posfleet.FaultRaised)
		list := e.WorkList("")
		it, ok := e.WorkItem(a.ref)
		if len(list) != 1 || !ok || it.Terminal != "T-A" || it.Priority != list[0].Priority || len(it.Reasons) != len(list[0].Reasons) {
			t.Fatalf("WorkItem = %+v %v; list %+v", it, ok, list)
		}
		if _, ok := e.WorkItem(b.ref); ok {
			t.Fatal("T-B has no work")
		}
	})
}
