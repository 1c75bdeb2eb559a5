package health_test

import (
	"bytes"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// TestKPICounters: each kind of message moves the counters a campaign's
// gate compares, and only those; a crash inventory delivered again, or an
// update's progress reported under a crash boot, is not a new boot.
func TestKPICounters(t *testing.T) {
	crash := func(x *term, reason string) posfleet.Inventory {
		inv := posfleet.Inventory{Header: x.header(), Model: "A920", Firmware: "2.5.1", BootReason: reason}
		x.send(&posfleet.Message{Channel: posfleet.ChannelFirmware, Inventory: &inv})
		return inv
	}
	tests := []struct {
		name string
		feed func(x *term)
		want posfleet.KPICounts
	}{
		{"approved sale", func(x *term) { x.txn() },
			posfleet.KPICounts{Txns: 1, Sales: 1, ApprovedSales: 1, Approved: 1}},
		{"card decline is no device failure", func(x *term) { x.txn(result(posfleet.ResultDeclined, "51")) },
			posfleet.KPICounts{Txns: 1, Sales: 1}},
		{"timeout and terminal error are device failures", func(x *term) { x.txn(timeout); x.txn(terminalError) },
			posfleet.KPICounts{Txns: 2, Sales: 2, DeviceFailures: 2}},
		{"mismatch", func(x *term) { x.txn(charged(1006)) },
			posfleet.KPICounts{Txns: 1, Sales: 1, ApprovedSales: 1, Approved: 1, Mismatches: 1}},
		{"receipt failure", func(x *term) { x.txn(receipt(posfleet.ReceiptFailed)) },
			posfleet.KPICounts{Txns: 1, Sales: 1, ApprovedSales: 1, Approved: 1, ReceiptFails: 1}},
		{"approved refund", func(x *term) { x.txn(refund(500, 1000)) },
			posfleet.KPICounts{Txns: 1, Approved: 1}},
		{"power-on boot counts nothing", func(x *term) { x.inv("A920", "2.4.1", nil) }, posfleet.KPICounts{}},
		{"two crashes, one watchdog", func(x *term) {
			crash(x, posfleet.BootCrash)
			crash(x, posfleet.BootCrash)
			crash(x, posfleet.BootWatchdog)
		}, posfleet.KPICounts{CrashBoots: 3}},
		{"the same crash inventory delivered again", func(x *term) {
			inv := crash(x, posfleet.BootCrash)
			again := inv
			x.send(&posfleet.Message{Channel: posfleet.ChannelFirmware, Inventory: &again})
		}, posfleet.KPICounts{CrashBoots: 1}},
		{"update progress under a crash boot", func(x *term) {
			crash(x, posfleet.BootCrash)
			for _, st := range []string{posfleet.UpdateDownloading, posfleet.UpdateFailed} {
				inv := posfleet.Inventory{Header: x.header(), Model: "A920", Firmware: "2.5.1", BootReason: posfleet.BootCrash,
					Update: &posfleet.UpdateAttempt{Target: "2.5.2", Status: st, Error: "x"}}
				x.send(&posfleet.Message{Channel: posfleet.ChannelFirmware, Inventory: &inv})
			}
			// A crash after it, the last attempt still reported: a boot.
			inv := posfleet.Inventory{Header: x.header(), Model: "A920", Firmware: "2.5.1", BootReason: posfleet.BootCrash,
				Update: &posfleet.UpdateAttempt{Target: "2.5.2", Status: posfleet.UpdateFailed, Error: "x"}}
			x.send(&posfleet.Message{Channel: posfleet.ChannelFirmware, Inventory: &inv})
		}, posfleet.KPICounts{CrashBoots: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := health.New(health.DefaultConfig())
				x := newTerm(e, "T-1")
				x.hb()
				if _, ok := e.KPI(x.ref); ok {
					t.Error("KPI known before any transaction or inventory")
				}
				tc.feed(x)
				got, ok := e.KPI(x.ref)
				if ok != (tc.want != posfleet.KPICounts{}) || got != tc.want {
					t.Errorf("KPI = %+v, %v; want %+v", got, ok, tc.want)
				}
			})
		})
	}
}

// TestKPISnapshot: the counters and the last crash boot survive a
// snapshot, so that a restart neither loses a soak's counts nor counts
// a replayed crash inventory again.
func TestKPISnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := health.New(health.DefaultConfig())
		x := newTerm(e, "T-1")
		x.txns(3)
		x.txn(charged(1006))
		inv := posfleet.Inventory{Header: x.header(), Model: "A920", Firmware: "2.5.1", BootReason: posfleet.BootCrash}
		again := inv
		x.send(&posfleet.Message{Channel: posfleet.ChannelFirmware, Inventory: &inv})
		want, _ := e.KPI(x.ref)
		var buf bytes.Buffer
		if err := e.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		back := health.New(health.DefaultConfig())
		if err := back.Restore(&buf); err != nil {
			t.Fatal(err)
		}
		if got, ok := back.KPI(x.ref); !ok || got != want {
			t.Fatalf("restored KPI = %+v, %v; want %+v", got, ok, want)
		}
		time.Sleep(time.Second)
		x.e = back
		x.send(&posfleet.Message{Channel: posfleet.ChannelFirmware, Inventory: &again})
		if got, _ := back.KPI(x.ref); got.CrashBoots != 1 {
			t.Errorf("replayed crash inventory after restore: %d crash boots, want 1", got.CrashBoots)
		}
	})
}

// TestFirmwareStates: a campaign's view of the terminals: model,
// firmware, connection and the last update attempt.
func TestFirmwareStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := health.New(health.DefaultConfig())
		a, b := newTerm(e, "T-1"), newTerm(e, "T-2")
		a.inv("A920", "2.4.1", &posfleet.UpdateAttempt{Target: "2.5.2", Status: posfleet.UpdateDownloading})
		b.inv("S920", "1.0.0", nil)
		b.status(false)
		got := e.FirmwareStates(tenant, "A920")
		if len(got) != 1 || got[0].Firmware != "2.4.1" || !got[0].Online || got[0].Update == nil || got[0].Update.Status != posfleet.UpdateDownloading {
			t.Fatalf("FirmwareStates(A920) = %+v", got)
		}
		if s, ok := e.FirmwareState(b.ref); !ok || s.Online || s.Model != "S920" {
			t.Errorf("FirmwareState(T-2) = %+v, %v; want offline S920", s, ok)
		}
		if len(e.FirmwareStates("", "")) != 2 {
			t.Error("FirmwareStates of every tenant and model: want 2")
		}
	})
}
