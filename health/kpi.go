package health

import (
	"time"

	"github.com/posfleet/posfleet"
)

// Payment KPIs for firmware campaigns (package campaign): per terminal,
// cumulative counters since the engine first counted for it. A campaign's
// gate reads them when a wave's soak starts and when it ends and compares
// the differences of the terminals just updated with those of terminals
// of the same model not updated yet.

// kpiState is a terminal's counters and what tells a new crash boot from
// an inventory seen again; allocated at its first transaction or crash
// boot (termState.KPI): a terminal that never sold costs nothing.
type kpiState struct {
	C posfleet.KPICounts
	// BootSeq and BootTS are the seq and ts of the last inventory that
	// reported a crash or watchdog boot: the same inventory delivered
	// again (a retained message replayed to a new subscription, an
	// outbox resending what was not acknowledged) is not a new boot.
	BootSeq int64
	BootTS  int64
}

// kpi returns s's counters, allocated on first use.
func (s *termState) kpi() *kpiState {
	if s.KPI == nil {
		s.KPI = &kpiState{}
	}
	return s.KPI
}

// countTxn adds one transaction of cause (after an open incident's
// reclassification) to s's KPIs.
func (s *termState) countTxn(t *posfleet.Transaction, cause int) {
	k := &s.kpi().C
	k.Txns++
	approved := t.Result == posfleet.ResultApproved
	if approved {
		k.Approved++
	}
	if t.Type == posfleet.TxnSale {
		k.Sales++
		if approved {
			k.ApprovedSales++
			if t.AmountEntered != nil && t.AmountCharged != nil && *t.AmountEntered != *t.AmountCharged {
				k.Mismatches++
			}
		}
	}
	if causeByIndex[cause].CountsAgainstTerminal() {
		k.DeviceFailures++
	}
	if approved && t.Receipt == posfleet.ReceiptFailed {
		k.ReceiptFails++
	}
}

// countBoot counts a crash or watchdog boot the inventory reports, once
// per boot. prev is the update attempt s had before this inventory.
//
// A terminal reports its inventory at every boot, and again after each
// step of an update (downloading, installed, failed) with the boot reason
// of its current boot. So an inventory with boot_reason crash or watchdog
// is a new boot unless it carries an update attempt other than the one
// known before (a progress report of the running boot), or it is the very
// inventory counted last (same seq and ts: delivered again).
func (s *termState) countBoot(inv *posfleet.Inventory, prev posfleet.UpdateAttempt) {
	if inv.BootReason != posfleet.BootCrash && inv.BootReason != posfleet.BootWatchdog {
		return
	}
	if inv.Update != nil && *inv.Update != prev {
		return
	}
	k := s.kpi()
	seq, ts := inv.Seq, ms(inv.TS)
	if seq == k.BootSeq && ts == k.BootTS {
		return
	}
	k.BootSeq, k.BootTS = seq, ts
	k.C.CrashBoots++
}

// KPI returns ref's cumulative payment KPIs; false when the engine has
// counted none for it (no transaction nor crash boot yet: all zero).
func (e *Engine) KPI(ref posfleet.TerminalRef) (posfleet.KPICounts, bool) {
	sh := e.shard(ref)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.m[ref]
	if !ok || s.KPI == nil {
		return posfleet.KPICounts{}, false
	}
	return s.KPI.C, true
}

// FirmwareState is what a firmware campaign needs of one terminal now.
type FirmwareState struct {
	Ref                       posfleet.TerminalRef
	Model, Firmware, Merchant string
	Online                    bool
	// Update is the last update attempt the terminal reported (nil if
	// none) and UpdateAt when it arrived.
	Update   *posfleet.UpdateAttempt
	UpdateAt time.Time
}

// firmwareState reads s; its shard is locked.
func (e *Engine) firmwareState(s *termState, now int64) FirmwareState {
	fs := FirmwareState{Ref: s.Ref, Model: s.Model, Firmware: s.Firmware, Merchant: s.Merchant,
		Online: s.raised[fOffline] == 0 && s.WillAt == 0 && now-s.LastSeen <= e.cfg.OfflineAfter.Milliseconds()}
	if s.UpdateAt != 0 {
		u := s.Update
		fs.Update, fs.UpdateAt = &u, tm(s.UpdateAt)
	}
	return fs
}

// FirmwareState returns ref's firmware and connection now; false when the
// engine never heard from it.
func (e *Engine) FirmwareState(ref posfleet.TerminalRef) (FirmwareState, bool) {
	now := ms(e.cfg.Now())
	sh := e.shard(ref)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.m[ref]
	if !ok {
		return FirmwareState{}, false
	}
	return e.firmwareState(s, now), true
}

// FirmwareStates returns the firmware and connection of tenant's
// terminals ("" for every tenant) that reported model ("" for any), in no
// particular order.
func (e *Engine) FirmwareStates(tenant, model string) []FirmwareState {
	now := ms(e.cfg.Now())
	var out []FirmwareState
	e.each(tenant, func(s *termState) {
		if model == "" || s.Model == model {
			out = append(out, e.firmwareState(s, now))
		}
	})
	return out
}
