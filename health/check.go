package health

import (
	"math"
	"slices"

	"github.com/posfleet/posfleet"
)

// clockSkewWindow is how many of the latest live heartbeats clock_skew looks at.
const clockSkewWindow = 3

// verdict is one flag's state for one terminal.
type verdict struct {
	on     bool
	at     int64 // time of the evidence that raised it
	urgent bool
	ev     map[string]any // only when asked for
}

func (e *Engine) check(s *termState, f int, now int64, pol *compiledPolicy, view *incidentView) (bool, int64) {
	v := e.judge(s, f, now, pol, view, false)
	return v.on, v.at
}

// judge decides flag f of terminal s at time now, the rules of PROTOCOL.md §2
// in one place. With withEv it also gathers the evidence for a report.
// Maintenance flags ignore evidence from before the last crew visit
// (ServicedAt): the crew fixed what was there, only news counts.
func (e *Engine) judge(s *termState, f int, now int64, pol *compiledPolicy, view *incidentView, withEv bool) verdict {
	cut := int64(0)
	if posfleet.FlagSpecs[f].Kind == posfleet.KindMaintenance {
		cut = s.ServicedAt
	}
	dayAgo := now - e.cfg.EvidenceWindow.Milliseconds()
	var v verdict
	ev := func(kv ...any) {
		if !withEv {
			return
		}
		if v.ev == nil {
			v.ev = map[string]any{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v.ev[kv[i].(string)] = kv[i+1]
		}
	}
	switch f {
	case fOffline:
		wasSelling := s.LastTxnAt != 0 && s.LastSeen-s.LastTxnAt <= e.cfg.SellingWindow.Milliseconds()
		if s.WillAt != 0 {
			v.on, v.at = s.WillAt >= cut, s.WillAt
			if withEv {
				ev("reason", "last_will", "last_seen", tm(s.LastSeen), "was_selling", wasSelling)
			}
		} else if silent := now - e.heardAt(s); silent > e.cfg.OfflineAfter.Milliseconds() && s.LastSeen >= cut {
			silent = now - s.LastSeen
			v.on, v.at = true, e.heardAt(s)+e.cfg.OfflineAfter.Milliseconds()
			if withEv {
				ev("reason", "no_message", "last_seen", tm(s.LastSeen), "silent_s", silent/1000,
					"threshold_s", int64(e.cfg.OfflineAfter.Seconds()), "was_selling", wasSelling)
			}
		}
		if v.on && s.LastTxnAt != 0 {
			if withEv {
				ev("last_txn", tm(s.LastTxnAt))
			}
		}

	case fFirmwareOutdated, fFirmwareBlocked:
		fv := pol.judge(s.Model, s.Firmware)
		v.at = s.InvAt
		if f == fFirmwareOutdated {
			v.on, v.urgent = fv.outdated, fv.belowMinimum
			if withEv {
				ev("model", s.Model, "firmware", s.Firmware, "target", fv.policy.Target)
			}
			if fv.policy.Minimum != "" {
				if withEv {
					ev("minimum", fv.policy.Minimum, "below_minimum", fv.belowMinimum)
				}
			}
		} else {
			v.on, v.urgent = fv.blocked, true
			if withEv {
				ev("model", s.Model, "firmware", s.Firmware, "blocked", fv.policy.Blocked, "target", fv.policy.Target)
			}
		}
		if fv.policy.URL != "" {
			if withEv {
				ev("url", fv.policy.URL, "sha256", fv.policy.SHA256)
			}
		}

	case fUpdateFailed:
		v.on = s.Update.Status == posfleet.UpdateFailed && s.Update.Target != s.Firmware
		v.at = s.UpdateAt
		if withEv {
			ev("target", s.Update.Target, "error", s.Update.Error, "firmware", s.Firmware, "reported_at", tm(s.UpdateAt))
		}

	case fAmountMismatch:
		n, first := s.Mismatch.countSince(dayAgo)
		v.on, v.at = n > 0, first
		if v.on && withEv {
			var txns []map[string]any
			for _, x := range s.Mismatch.since(dayAgo) {
				txns = append(txns, map[string]any{"id": x.ID, "at": tm(x.At), "amount_entered": x.A,
					"amount_charged": x.B, "difference": x.B - x.A, "currency": x.Note})
			}
			if withEv {
				ev("count", n, "window_h", int(e.cfg.EvidenceWindow.Hours()), "transactions", txns)
			}
		}

	case fTxnFailures:
		v = e.judgeTxnFailures(s, cut, view, withEv)

	case fReceiptFailures:
		from := max(dayAgo, cut)
		n, first := s.Receipt.countSince(from)
		paperOut := s.PaperOutAt != 0 && s.PaperOutAt >= cut
		v.on = n >= e.cfg.ReceiptFailures || paperOut
		v.at = first
		if paperOut && (v.at == 0 || s.PaperOutAt < v.at) {
			v.at = s.PaperOutAt
		}
		if v.on && withEv {
			var txns []map[string]any
			for _, x := range s.Receipt.since(from) {
				txns = append(txns, map[string]any{"id": x.ID, "at": tm(x.At)})
			}
			if withEv {
				ev("failed_receipts", n, "threshold", e.cfg.ReceiptFailures, "window_h", int(e.cfg.EvidenceWindow.Hours()))
			}
			if len(txns) > 0 {
				if withEv {
					ev("transactions", txns)
				}
			}
			if paperOut {
				if withEv {
					ev("paper", posfleet.PaperOut, "paper_out_at", tm(s.PaperOutAt))
				}
			}
		}

	case fRefundAnomaly:
		n, first := s.Refund.countSince(dayAgo)
		v.on, v.at = n > 0, first
		if v.on && withEv {
			var txns []map[string]any
			for _, x := range s.Refund.since(dayAgo) {
				t := map[string]any{"id": x.ID, "at": tm(x.At), "reason": x.Note}
				if x.A >= 0 {
					t["amount"] = x.A
				}
				if x.B >= 0 {
					t["original_amount"] = x.B
				}
				txns = append(txns, t)
			}
			if withEv {
				ev("count", n, "transactions", txns)
			}
		}

	case fHardwareFault:
		var faults []map[string]any
		for _, of := range s.Faults {
			if of.At < cut || of.Component == posfleet.ComponentSecureElement || of.Code == "TAMPER" ||
				(of.Severity != posfleet.SeverityWarning && of.Severity != posfleet.SeverityCritical) {
				continue
			}
			if !v.on || of.At < v.at {
				v.at = of.At
			}
			v.on = true
			if withEv {
				faults = append(faults, map[string]any{"component": of.Component, "code": of.Code,
					"severity": of.Severity, "since": tm(of.At), "detail": of.Detail})
			}
		}
		if withEv {
			ev("faults", faults)
		}

	case fTamper:
		n, first := s.Tamper.countSince(max(cut, 1))
		v.on, v.at, v.urgent = n > 0, first, true
		if v.on && withEv {
			var evs []map[string]any
			for _, x := range s.Tamper.since(max(cut, 1)) {
				evs = append(evs, map[string]any{"component": x.ID, "code": x.Note, "at": tm(x.At)})
			}
			if withEv {
				ev("events", evs)
			}
		}

	case fWeakNetwork:
		var sigBuf, rttBuf [HeartbeatRing]int
		sig, rtt := sigBuf[:0], rttBuf[:0]
		n := 0
		for i := range int(s.HBCount) {
			h := s.HB[i]
			if h.At < cut {
				continue
			}
			n++
			if h.HasSignal {
				sig = append(sig, int(h.Signal))
			}
			if h.RTT >= 0 {
				rtt = append(rtt, int(h.RTT))
			}
			v.at = max(v.at, h.At)
		}
		if n < e.cfg.WeakNetworkMinHeartbeats {
			break
		}
		med, hasMed := median(sig)
		p90, hasP90 := percentile(rtt, 0.9)
		weakSignal := hasMed && len(sig) >= e.cfg.WeakNetworkMinHeartbeats && med < float64(e.cfg.WeakSignalDBm)
		slow := hasP90 && len(rtt) >= e.cfg.WeakNetworkMinHeartbeats && p90 > e.cfg.WeakRTTMs
		v.on = weakSignal || slow
		if withEv {
			ev("heartbeats", n, "signal_threshold_dbm", e.cfg.WeakSignalDBm, "rtt_threshold_ms", e.cfg.WeakRTTMs,
				"weak_signal", weakSignal, "slow_host", slow)
		}
		if hasMed {
			if withEv {
				ev("median_signal_dbm", med)
			}
		}
		if hasP90 {
			if withEv {
				ev("p90_host_rtt_ms", p90)
			}
		}

	case fBattery:
		low := int(s.LowBatStreak) >= e.cfg.LowBatteryHeartbeats && s.LowBatSince >= cut
		hot := s.LastHB.HasTemp && float64(s.LastHB.TempC) > e.cfg.HotTempC && s.LastHB.At >= cut
		v.on = low || hot
		if low {
			v.at = s.LowBatSince
			if withEv {
				ev("battery_pct", int(s.LastHB.Battery), "charging", false, "low_heartbeats", int(s.LowBatStreak),
					"low_since", tm(s.LowBatSince), "threshold_pct", e.cfg.LowBatteryPct)
			}
		}
		if hot {
			if v.at == 0 {
				v.at = s.LastHB.At
			}
			if withEv {
				ev("temp_c", math.Round(float64(s.LastHB.TempC)*10)/10, "temp_threshold_c", e.cfg.HotTempC,
					"reported_at", tm(s.LastHB.At))
			}
		}

	case fClockSkew:
		// ts - received is the clock's offset minus the delivery delay, and
		// the delay is never negative: the least delayed of the last few
		// live heartbeats (liveHeartbeat) gives the offset, and a terminal
		// that delivers old heartbeats from its outbox is not taken for a
		// wrong clock.
		n, skew := 0, int64(0)
		for j := 0; j < int(s.HBCount) && n < clockSkewWindow; j++ {
			h := s.HB[(int(s.HBNext)-1-j+2*HeartbeatRing)%HeartbeatRing]
			if !h.Live || h.At < cut {
				continue
			}
			if off := int64(h.Off); n == 0 || off > skew {
				skew = off
			}
			if n == 0 {
				v.at = h.At
			}
			n++
		}
		if n < e.cfg.ClockSkewHeartbeats {
			v.at = 0
			break
		}
		v.on = abs(skew) > int64(e.cfg.ClockSkew.Seconds())
		if withEv {
			ev("skew_s", skew, "heartbeats", n, "terminal_ts", tm(s.LastHB.TS), "server_ts", tm(s.LastHB.At),
				"threshold_s", int64(e.cfg.ClockSkew.Seconds()))
		}
	}
	if !v.on {
		v.ev = nil
	}
	return v
}

func (e *Engine) judgeTxnFailures(s *termState, cut int64, view *incidentView, withEv bool) verdict {
	var v verdict
	window := min(e.cfg.TxnWindow, int(s.TxnCount))
	total, failed, excused := 0, 0, 0
	var byCause [nCauses]int
	for i := 1; i <= window; i++ {
		at, cause, hostSide := unpackOutcome(s.Txn[(int(s.TxnNext)-i+TxnRing)%TxnRing])
		if at < cut {
			break // older still are older than the visit too
		}
		total++
		if !causeByIndex[cause].CountsAgainstTerminal() {
			continue
		}
		if hostSide && view.covers(s.Ref.Tenant, at) {
			excused++
			continue
		}
		failed++
		byCause[cause]++
		if v.at == 0 || at < v.at {
			v.at = at
		}
	}
	rate := 0.0
	if total > 0 {
		rate = float64(failed) / float64(total)
	}
	v.on = total >= e.cfg.TxnMinimum && rate >= e.cfg.TxnFailureRate
	if !v.on || !withEv {
		return v
	}
	v.ev = map[string]any{
		"failed": failed, "total": total, "rate": math.Round(rate*1000) / 1000,
		"threshold": e.cfg.TxnFailureRate, "minimum": e.cfg.TxnMinimum,
		"by_cause": map[string]int{"network": byCause[cNetwork], "terminal": byCause[cTerminal]},
	}
	if excused > 0 {
		v.ev["excused_by_incident"] = excused
	}
	var txns []map[string]any
	for _, x := range s.Failures.since(max(cut, 1)) {
		if x.B == 1 && view.covers(s.Ref.Tenant, x.At) {
			continue
		}
		txns = append(txns, map[string]any{"id": x.ID, "at": tm(x.At), "result": x.Note,
			"cause": string(causeByIndex[x.A])})
	}
	v.ev["latest"] = txns
	return v
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// median of xs (the mean of the middle two for an even count).
func median(xs []int) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	var buf [HeartbeatRing]int
	s := buf[:copy(buf[:], xs)]
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return float64(s[n/2]), true
	}
	return float64(s[n/2-1]+s[n/2]) / 2, true
}

// percentile by the nearest-rank method: the smallest value with at least
// p of the values at or below it (of 10 round trips, the 9th).
func percentile(xs []int, p float64) (int, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	var buf [HeartbeatRing]int
	s := buf[:copy(buf[:], xs)]
	slices.Sort(s)
	rank := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(rank, 0)], true
}

// heardAt is the time silence is counted from: the last message, or the
// last restore for a terminal that was not offline already.
func (e *Engine) heardAt(s *termState) int64 {
	if s.Since[fOffline] != 0 {
		return s.LastSeen
	}
	return max(s.LastSeen, e.restoredAt.Load())
}
