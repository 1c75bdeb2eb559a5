package health_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

func TestSuspectFirmware(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		// 2.4.1 adds a fee into the charged amount in 8% of sales on all its
		// terminals; 2.4.0 has the odd cashier error; 2.4.2 runs on one
		// terminal whose cashier keys wrong amounts all day.
		for i := range 10 {
			x := newTerm(e, fmt.Sprintf("old%d", i))
			x.inv("A920", "2.4.0", nil)
			x.txns(100)
			if i < 2 {
				x.txn(charged(999))
			}
			y := newTerm(e, fmt.Sprintf("bug%d", i))
			y.inv("A920", "2.4.1", nil)
			for j := range 100 {
				if j%12 == 0 {
					y.txn(charged(1006))
				} else {
					y.txn()
				}
			}
		}
		z := newTerm(e, "cashier")
		z.inv("A920", "2.4.2", nil)
		for j := range 300 {
			if j%5 == 0 {
				z.txn(charged(100))
			} else {
				z.txn()
			}
		}
		got := e.SuspectFirmware(tenant)
		if len(got) != 1 {
			t.Fatalf("findings = %+v, want one for 2.4.1", got)
		}
		f := got[0]
		if f.Model != "A920" || f.Firmware != "2.4.1" || f.Metric != health.MetricAmountMismatch ||
			f.Terminals != 10 || f.Affected != 10 || f.Count != 90 || f.Total != 1000 || f.RestCount != 62 || f.RestTotal != 1302 {
			t.Errorf("finding = %+v", f)
		}
		if f.Test != "mann_whitney" || f.Z < 3 || f.PValue >= 0.001 || f.Rate <= f.RestRate || f.MedianRate != 0.09 || f.RestMedianRate != 0 || f.Above < 0.9 {
			t.Errorf("statistics = %+v", f)
		}
		if fs := e.FleetSummary(tenant); len(fs.SuspectFirmware) != 1 || fs.Models["A920"]["2.4.1"] != 10 {
			t.Errorf("summary = %+v", fs)
		}
	})
}

func TestSuspectFirmwareSmallCounts(t *testing.T) {
	bubbleWith(t, health.Config{SuspectMinTxns: 30}, func(t *testing.T, e *health.Engine) {
		// Rare events on few terminals: every one of the version's
		// terminals is worse than every other terminal.
		for i := range 10 {
			x := newTerm(e, fmt.Sprintf("old%d", i))
			x.inv("A920", "2.4.0", nil)
			x.txns(40)
		}
		for i := range 3 {
			y := newTerm(e, fmt.Sprintf("bug%d", i))
			y.inv("A920", "2.4.1", nil)
			y.txns(8)
			y.txns(2, terminalError)
		}
		got := e.SuspectFirmware(tenant)
		if len(got) != 1 || got[0].Metric != health.MetricTerminalFailures || got[0].Above != 1 || got[0].PValue >= 0.001 {
			t.Fatalf("findings = %+v", got)
		}
	})
}

func testSites(r posfleet.TerminalRef) (health.Site, bool) {
	sites := map[string]health.Site{
		"T1": {Merchant: "Hotel Lido", Site: "Lido front desk", Region: "north", Lat: 45.1, Lon: 9.2},
		"T2": {Merchant: "Bakery Rossi", Site: "Rossi Via Roma", Region: "south", Lat: 41.9, Lon: 12.5},
		"T3": {Merchant: "Bakery Rossi", Site: "Rossi Via Roma", Region: "south"},
		"T4": {Merchant: "Kiosk 9", Site: "Station kiosk", Region: "north"},
	}
	s, ok := sites[r.Terminal]
	return s, ok
}

func TestWorkList(t *testing.T) {
	bubbleWith(t, health.Config{Site: testSites}, func(t *testing.T, e *health.Engine) {
		time.Sleep(10*time.Hour + 42*time.Minute)
		t1, t2, t3, t4, t5, t6 := newTerm(e, "T1"), newTerm(e, "T2"), newTerm(e, "T3"), newTerm(e, "T4"), newTerm(e, "T5"), newTerm(e, "T6")
		t3.fault(posfleet.ComponentPrinter, "PAPER_OUT", posfleet.SeverityWarning, posfleet.FaultRaised)
		t2.txn() // selling, then silent
		t4.hb()  // idle, then silent
		time.Sleep(10 * time.Minute)
		t1.fault(posfleet.ComponentSecureElement, "TAMPER", posfleet.SeverityCritical, posfleet.FaultRaised)
		for _, x := range []*term{t1, t3, t5, t6} {
			x.hb()
		}
		t5.inv("A920", "2.4.1", nil) // outdated firmware: an update, not a visit
		t5.txn(charged(1100))        // a mismatch: an investigation, not a visit

		items := e.WorkList(tenant)
		var got []string
		for _, it := range items {
			got = append(got, fmt.Sprintf("%s:%d", it.Terminal, it.Priority))
		}
		if want := "T1:1 T2:2 T4:4 T3:4"; strings.Join(got, " ") != want {
			t.Fatalf("work list = %v, want %s", got, want)
		}
		if items[0].Site.Site != "Lido front desk" || items[0].Region != "north" || items[0].Lat != 45.1 || !items[0].Urgent {
			t.Errorf("item = %+v", items[0])
		}
		wantActions := map[string][]string{
			"T1": {"Take the terminal out of service", "secure_element reported TAMPER at 10:52 UTC on 1 Jan"},
			"T2": {"Check the terminal's power and network connection; it was last heard from at 10:42 UTC on 1 Jan."},
			"T3": {"Replace the printer paper roll; the printer reported PAPER_OUT at 10:42 UTC on 1 Jan."},
		}
		for _, it := range items {
			for _, want := range wantActions[it.Terminal] {
				if len(it.Reasons) != 1 || !strings.Contains(it.Reasons[0].Action, want) {
					t.Errorf("%s reasons = %+v, want action with %q", it.Terminal, it.Reasons, want)
				}
			}
			for _, r := range it.Reasons {
				if r.Flag.Kind() != posfleet.KindMaintenance || r.Evidence == nil {
					t.Errorf("%s reason = %+v", it.Terminal, r)
				}
			}
		}
		groups := health.GroupWorkList(items)
		var gs []string
		for _, g := range groups {
			gs = append(gs, fmt.Sprintf("%s/%s:%d", g.Region, g.Site, len(g.Items)))
		}
		if want := "north/Lido front desk:1 south/Rossi Via Roma:2 north/Station kiosk:1"; strings.Join(gs, " ") != want {
			t.Errorf("groups = %v, want %s", gs, want)
		}
	})
}

func TestMarkServiced(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.hb()
		x.fault(posfleet.ComponentPrinter, "JAM", posfleet.SeverityWarning, posfleet.FaultRaised)
		x.txn(charged(1001)) // investigate: not the crew's to clear
		x.txns(4)
		x.txns(5, terminalError)
		for _, f := range []posfleet.FlagName{posfleet.FlagHardwareFault, posfleet.FlagTxnFailures, posfleet.FlagAmountMismatch} {
			if !x.has(f) {
				t.Fatalf("no %s before the visit", f)
			}
		}
		time.Sleep(time.Minute)
		cleared, err := e.MarkServiced(x.ref, "printer cleaned, reader replaced", "crew-7", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(cleared) != "[txn_failures hardware_fault]" {
			t.Errorf("cleared = %v", cleared)
		}
		h, _ := x.e.Terminal(x.ref)
		if h.Has(posfleet.FlagHardwareFault) || h.Has(posfleet.FlagTxnFailures) || !h.Has(posfleet.FlagAmountMismatch) {
			t.Errorf("flags after the visit = %+v", h.Flags)
		}
		if len(h.Service) != 1 || h.Service[0].By != "crew-7" || h.Service[0].Note != "printer cleaned, reader replaced" {
			t.Errorf("service = %+v", h.Service)
		}
		if len(e.WorkList(tenant)) != 0 {
			t.Errorf("work list after the visit = %+v", e.WorkList(tenant))
		}
		time.Sleep(time.Second)
		// Old evidence is not news: heartbeats of before the visit, and one
		// failure among few transactions.
		x.txns(3)
		x.txn(terminalError)
		x.hb()
		if x.has(posfleet.FlagTxnFailures) {
			t.Error("txn_failures back on 4 transactions after the visit")
		}
		if x.has(posfleet.FlagHardwareFault) {
			t.Error("hardware_fault back without the fault raised again")
		}
		// New evidence after the visit raises the flags again: the printer
		// jams again, and failures mount.
		x.fault(posfleet.ComponentPrinter, "JAM", posfleet.SeverityWarning, posfleet.FaultRaised)
		x.txns(2)
		x.txns(4, timeout)
		if !x.has(posfleet.FlagHardwareFault) || !x.has(posfleet.FlagTxnFailures) {
			t.Error("no hardware_fault or txn_failures with new evidence")
		}
		if _, err := e.MarkServiced(ref("nobody"), "", "crew-7", time.Now()); err == nil {
			t.Error("MarkServiced of an unknown terminal succeeded")
		}
		for range health.MaxServiceRecords + 3 {
			_, _ = e.MarkServiced(x.ref, "again", "crew-7", time.Now())
		}
		if h, _ := e.Terminal(x.ref); len(h.Service) != health.MaxServiceRecords {
			t.Errorf("service history holds %d records, want %d", len(h.Service), health.MaxServiceRecords)
		}
	})
}

func TestQueries(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x, y := newTerm(e, "T1"), newTerm(e, "T2")
		other := newTerm(e, "T1")
		other.ref.Tenant = "other"
		x.inv("A920", "2.4.1", nil)
		x.hb(hbBattery(50, true))
		x.fault(posfleet.ComponentMSR, "READ_ERROR", posfleet.SeverityInfo, posfleet.FaultRaised)
		x.txns(3)
		x.txn(result(posfleet.ResultDeclined, "51"))
		x.txn(timeout)
		y.inv("A920", "2.5.1", nil)
		y.hb()
		other.hb()
		h, ok := e.Terminal(x.ref)
		if !ok || !h.Online || h.Firmware != "2.4.1" || h.Heartbeat == nil || *h.Heartbeat.BatteryPct != 50 ||
			len(h.OpenFaults) != 1 || h.OpenFaults[0].Code != "READ_ERROR" || h.Txns.Recent != 5 || h.Txns.Approved != 3 ||
			h.Txns.RecentFailed[posfleet.CauseCard] != 1 || h.Txns.Failed[posfleet.CauseNetwork] != 1 {
			t.Errorf("terminal = %+v", h)
		}
		if _, ok := e.Terminal(ref("nobody")); ok {
			t.Error("unknown terminal found")
		}
		if got := e.Terminals(tenant, posfleet.FlagFirmwareOutdated); len(got) != 1 || got[0].Terminal != "T1" {
			t.Errorf("outdated terminals = %+v", got)
		}
		if got := e.Terminals(tenant, ""); len(got) != 2 {
			t.Errorf("tenant terminals = %d, want 2", len(got))
		}
		if got := e.Terminals("", ""); len(got) != 3 {
			t.Errorf("all terminals = %d, want 3", len(got))
		}
		fs := e.FleetSummary(tenant)
		if fs.Total != 2 || fs.Online != 2 || fs.Flagged[posfleet.FlagFirmwareOutdated] != 1 ||
			fs.Models["A920"]["2.5.1"] != 1 || fs.Causes[posfleet.CauseCard] != 1 || fs.Approved != 3 {
			t.Errorf("summary = %+v", fs)
		}
	})
}

func TestMarkServicedPaperStillOut(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		paperOut := func(h *posfleet.Heartbeat) { h.Paper = posfleet.PaperOut }
		x.hb(paperOut)
		time.Sleep(time.Minute)
		if _, err := e.MarkServiced(x.ref, "", "crew-7", time.Now()); err != nil {
			t.Fatal(err)
		}
		if x.has(posfleet.FlagReceiptFailures) {
			t.Fatal("receipt_failures not cleared by the visit")
		}
		time.Sleep(time.Minute)
		x.hb(paperOut)
		f := x.flag(t, posfleet.FlagReceiptFailures)
		if !f.Since.Equal(time.Now()) {
			t.Errorf("since = %v, want the heartbeat after the visit (%v)", f.Since, time.Now())
		}
	})
}

// TestNeverConnected: a provisioned terminal that never sent a message is
// counted in the fleet summary (never_connected, part of total) and listed
// by Rows until its first message; Provision leaves terminals the engine
// has heard from alone, and a restored snapshot takes the terminals it
// holds out of the count.
func TestNeverConnected(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.hb()
		other := posfleet.TerminalRef{Tenant: "other", Terminal: "T1"}
		e.Provision(ref("T1"), ref("T2"), ref("T3"), other)
		e.Provision(ref("T2")) // again: still one

		type counts struct{ total, online, offline, never int }
		summary := func(tenant string) counts {
			fs := e.FleetSummary(tenant)
			return counts{fs.Total, fs.Online, fs.Offline, fs.NeverConnected}
		}
		never := func(tenant string) []string {
			var out []string
			for _, r := range e.Rows(tenant, "") {
				if r.NeverConnected {
					if r.Online || !r.LastSeen.IsZero() || len(r.Flags) != 0 {
						t.Errorf("never-connected row %+v", r)
					}
					out = append(out, r.Ref.String())
				}
			}
			return out
		}
		if got, want := summary(tenant), (counts{3, 1, 0, 2}); got != want {
			t.Errorf("acme summary %+v, want %+v", got, want)
		}
		if got, want := summary(""), (counts{4, 1, 0, 3}); got != want {
			t.Errorf("fleet summary %+v, want %+v", got, want)
		}
		if got := strings.Join(never(tenant), ","); got != "acme:T2,acme:T3" {
			t.Errorf("never-connected rows %s, want acme:T2,acme:T3", got)
		}
		if rows := e.Rows(tenant, posfleet.FlagOffline); len(rows) != 0 {
			t.Errorf("a flag filter lists %+v", rows)
		}

		newTerm(e, "T2").hb()
		if got, want := summary(tenant), (counts{3, 2, 0, 1}); got != want {
			t.Errorf("after T2's first heartbeat: %+v, want %+v", got, want)
		}
		if got := strings.Join(never(tenant), ","); got != "acme:T3" {
			t.Errorf("never-connected rows %s, want acme:T3", got)
		}

		// A snapshot holding T3 (heard from elsewhere) takes it out.
		src := health.New(health.Config{Now: time.Now})
		newTerm(src, "T3").hb()
		newTerm(src, "T2").hb()
		var b strings.Builder
		if err := src.Snapshot(&b); err != nil {
			t.Fatal(err)
		}
		if err := e.Restore(strings.NewReader(b.String())); err != nil {
			t.Fatal(err)
		}
		if got, want := summary(""), (counts{3, 2, 0, 1}); got != want {
			t.Errorf("after restore: %+v, want %+v", got, want)
		}
	})
}

// TestMarkServicedRefusesCardData: the engine itself refuses a note holding
// a card number (posfleet.ValidateNote) and records nothing.
func TestMarkServicedRefusesCardData(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.hb()
		pan := testPAN()
		_, err := e.MarkServiced(x.ref, "card "+pan[:4]+"."+pan[4:8]+"."+pan[8:12]+"."+pan[12:]+" stuck in reader", "crew-7", time.Now())
		if !errors.Is(err, posfleet.ErrNoteCardData) {
			t.Fatalf("err = %v, want ErrNoteCardData", err)
		}
		if h, _ := x.e.Terminal(x.ref); len(h.Service) != 0 {
			t.Errorf("a visit was recorded: %d", len(h.Service))
		}
	})
}

// TestRestoreWithholdsCardData: a snapshot holding a visit note with a card
// number (written by a release whose guard missed its layout) is restored
// with the note withheld.
func TestRestoreWithholdsCardData(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.hb()
		pan := testPAN()
		health.PlantServiceNote(e, x.ref, "card "+pan[:4]+"."+pan[4:8]+"."+pan[8:12]+"."+pan[12:]+" stuck")
		health.PlantServiceNote(e, x.ref, "replaced the printer, 2 rolls")
		var b strings.Builder
		if err := e.Snapshot(&b); err != nil {
			t.Fatal(err)
		}
		back := health.New(health.Config{Now: time.Now})
		if err := back.Restore(strings.NewReader(b.String())); err != nil {
			t.Fatal(err)
		}
		h, _ := back.Terminal(x.ref)
		if len(h.Service) != 2 {
			t.Fatalf("%d visits restored, want 2", len(h.Service))
		}
		if h.Service[0].Note != posfleet.RedactedMarker {
			t.Error("the card number's note came back from the snapshot")
		}
		if h.Service[1].Note != "replaced the printer, 2 rolls" {
			t.Errorf("a plain note became %q", h.Service[1].Note)
		}
	})
}

// A terminal mismatching 120 sales in an hour says 120, not the 4 samples
// its evidence keeps; the next day's count starts again.
func TestEvidenceCountsAreTrue(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		for range 120 {
			x.txn(charged(1006))
			time.Sleep(30 * time.Second)
		}
		for range 3 {
			x.txn(result(posfleet.ResultApproved, "00"), receipt(posfleet.ReceiptFailed))
		}
		ev := func(f posfleet.FlagName) posfleet.Evidence {
			h, _ := e.Terminal(posfleet.TerminalRef{Tenant: tenant, Terminal: "T1"})
			for _, fl := range h.Flags {
				if fl.Name == f {
					return fl.Evidence
				}
			}
			t.Fatalf("no %s", f)
			return nil
		}
		am := ev(posfleet.FlagAmountMismatch).(*posfleet.AmountMismatchEvidence)
		if am.Count != 120 || len(am.Transactions) != health.EvidenceRing {
			t.Errorf("amount_mismatch count %d with %d samples, want 120 with %d", am.Count, len(am.Transactions), health.EvidenceRing)
		}
		if rf := ev(posfleet.FlagReceiptFailures).(*posfleet.ReceiptFailuresEvidence); rf.FailedReceipts != 3 {
			t.Errorf("receipt failures %d, want 3", rf.FailedReceipts)
		}
		time.Sleep(23 * time.Hour)
		x.txn(charged(1007))
		if am := ev(posfleet.FlagAmountMismatch).(*posfleet.AmountMismatchEvidence); am.Count < 1 || am.Count > 121 {
			t.Errorf("a day later: count %d", am.Count)
		}
		time.Sleep(25 * time.Hour)
		x.txn(charged(1008))
		if am := ev(posfleet.FlagAmountMismatch).(*posfleet.AmountMismatchEvidence); am.Count != 1 {
			t.Errorf("two days later: count %d, want 1", am.Count)
		}
	})
}

// TestRejectedOnlyIsNotHealthy: a provisioned terminal whose every message
// is rejected is connected, not "never connected", and flagged bad_data
// with the reasons and counts; accepted messages clear it.
func TestRejectedOnlyIsNotHealthy(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		e.Provision(ref("BAD"))
		x := newTerm(e, "BAD")
		start := time.Now().UTC()
		x.rejects(7, posfleet.ReasonCardData)
		x.rejects(5, posfleet.ReasonNotJSON)
		synctest.Wait()
		if fs := e.FleetSummary(tenant); fs.NeverConnected != 0 || fs.Online != 1 {
			t.Errorf("summary %+v: want it online, not never connected", fs)
		}
		for _, r := range e.Rows(tenant, "") {
			if r.NeverConnected || r.LastSeen.IsZero() {
				t.Errorf("row %+v", r)
			}
		}
		h, ok := e.Terminal(ref("BAD"))
		if !ok || len(h.Flags) != 1 || h.Flags[0].Name != posfleet.FlagBadData {
			t.Fatalf("flags %+v (known %v), want bad_data alone", h.Flags, ok)
		}
		f := h.Flags[0]
		ev := evidenceOf[*posfleet.BadDataEvidence](t, f)
		if ev.Count != 12 || ev.ByReason[posfleet.ReasonCardData] != 7 || ev.ByReason[posfleet.ReasonNotJSON] != 5 || ev.Accepted != 0 {
			t.Errorf("evidence %+v", ev)
		}
		if !ev.FirstRejected.Equal(start) || !ev.LastRejected.Equal(start.Add(11*time.Second)) || !f.Since.Equal(start) {
			t.Errorf("first %v last %v since %v, want %v and 11 s later", ev.FirstRejected, ev.LastRejected, f.Since, start)
		}
		if ev.WindowS != 3600 || ev.Threshold != 5 || ev.Share != 1 || !ev.LastAccepted.IsZero() {
			t.Errorf("thresholds %+v", ev)
		}
		if f.Kind != posfleet.KindInvestigate {
			t.Errorf("kind %s", f.Kind)
		}
		x.txn()
		if x.has(posfleet.FlagBadData) {
			t.Error("bad_data stays after an accepted message")
		}
	})
}

// TestBadDataShare: with a share below 1, bad_data allows some accepted
// messages among the rejected ones.
func TestBadDataShare(t *testing.T) {
	bubbleWith(t, health.Config{BadDataShare: 0.8, BadDataMinRejected: 3}, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.reject(posfleet.ReasonOutOfRange)
		x.hb()
		x.rejects(3, posfleet.ReasonOutOfRange) // 4 of 5: 80%
		if !x.has(posfleet.FlagBadData) {
			t.Fatal("bad_data not raised at 80% rejected")
		}
		x.hb() // 4 of 6
		if x.has(posfleet.FlagBadData) {
			t.Error("bad_data raised at 67% rejected")
		}
	})
}

// TestBadDataSurvivesRestart: a snapshot keeps bad_data, its time and the
// rejections that raised it.
func TestBadDataSurvivesRestart(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "BAD")
		x.rejects(6, posfleet.ReasonNotJSON)
		since := x.flag(t, posfleet.FlagBadData).Since
		var b strings.Builder
		if err := e.Snapshot(&b); err != nil {
			t.Fatal(err)
		}
		r := health.New(health.Config{Now: time.Now})
		if err := r.Restore(strings.NewReader(b.String())); err != nil {
			t.Fatal(err)
		}
		y := newTerm(r, "BAD")
		f := y.flag(t, posfleet.FlagBadData)
		if ev := evidenceOf[*posfleet.BadDataEvidence](t, f); !f.Since.Equal(since) || ev.Count != 6 || ev.ByReason[posfleet.ReasonNotJSON] != 6 {
			t.Errorf("after restore: %+v %+v", f, ev)
		}
		y.hb()
		if y.has(posfleet.FlagBadData) {
			t.Error("bad_data stays after an accepted message")
		}
	})
}
