package health

import (
	"math"
	"slices"

	"github.com/posfleet/posfleet"
)

// The rules of PROTOCOL.md §2, one small function per flag in a file named
// after its family (flag_offline.go, flag_firmware.go, flag_txn.go,
// flag_fault.go, flag_device.go, flag_data.go, flag_signals.go,
// flag_silent.go, flag_wear.go). Each flag has two halves: decide, on the
// message path, which says whether the flag is raised and since when
// without building evidence or allocating; and explain, on the query path,
// which gathers the evidence of a raised flag for a report.

// verdict is one flag's state for one terminal.
type verdict struct {
	on     bool
	at     int64 // time of the evidence that raised it
	urgent bool
}

// cutFor is the time before which evidence does not count for flag f:
// maintenance flags ignore evidence from before the last crew visit
// (ServicedAt), since the crew fixed what was there and only news counts.
func cutFor(s *termState, f int) int64 {
	if posfleet.FlagSpecs[f].Kind == posfleet.KindMaintenance {
		return s.ServicedAt
	}
	return 0
}

// decide judges flag f of terminal s at time now.
func (e *Engine) decide(s *termState, f int, now int64, r *resolved, pol *compiledPolicy, view *incidentView) verdict {
	cut := cutFor(s, f)
	switch f {
	case fOffline:
		return e.decideOffline(s, now, cut, r)
	case fFirmwareOutdated:
		return decideFirmwareOutdated(s, pol)
	case fFirmwareBlocked:
		return decideFirmwareBlocked(s, pol)
	case fUpdateFailed:
		return decideUpdateFailed(s)
	case fAmountMismatch:
		return e.decideAmountMismatch(s, now)
	case fTxnFailures:
		return e.decideTxnFailures(s, cut, view, r)
	case fReceiptFailures:
		return e.decideReceiptFailures(s, now, cut, r)
	case fRefundAnomaly:
		return e.decideRefundAnomaly(s, now)
	case fHardwareFault:
		return decideHardwareFault(s, cut)
	case fTamper:
		return decideTamper(s, cut)
	case fWeakNetwork:
		return e.decideWeakNetwork(s, cut, r)
	case fBattery:
		return e.decideBattery(s, cut, r)
	case fClockSkew:
		return e.decideClockSkew(s, cut, r)
	case fBadData:
		return e.decideBadData(s, now, r)
	case fFallbackRate:
		return e.decideFallbackRate(s, cut, r)
	case fMoved:
		return decideMoved(s)
	case fSilent:
		return e.decideSilent(s, now, r)
	case fWearDue:
		return e.decideWearDue(s, now, cut, r)
	}
	return verdict{}
}

// explain gathers the evidence of flag f, which decide found raised.
func (e *Engine) explain(s *termState, f int, now int64, r *resolved, pol *compiledPolicy, view *incidentView) posfleet.Evidence {
	cut := cutFor(s, f)
	switch f {
	case fOffline:
		return e.explainOffline(s, now, r)
	case fFirmwareOutdated:
		return explainFirmwareOutdated(s, pol)
	case fFirmwareBlocked:
		return explainFirmwareBlocked(s, pol)
	case fUpdateFailed:
		return explainUpdateFailed(s)
	case fAmountMismatch:
		return e.explainAmountMismatch(s, now)
	case fTxnFailures:
		return e.explainTxnFailures(s, cut, view, r)
	case fReceiptFailures:
		return e.explainReceiptFailures(s, now, cut, r)
	case fRefundAnomaly:
		return e.explainRefundAnomaly(s, now)
	case fHardwareFault:
		return explainHardwareFault(s, cut)
	case fTamper:
		return explainTamper(s, cut)
	case fWeakNetwork:
		return e.explainWeakNetwork(s, cut, r)
	case fBattery:
		return e.explainBattery(s, cut, r)
	case fClockSkew:
		return e.explainClockSkew(s, cut, r)
	case fBadData:
		return e.explainBadData(s, now, r)
	case fFallbackRate:
		return e.explainFallbackRate(s, cut, r)
	case fMoved:
		return e.explainMoved(s, r)
	case fSilent:
		return e.explainSilent(s, now, r)
	case fWearDue:
		return e.explainWearDue(s, now, cut, r)
	}
	return nil
}

// dayAgo is the start of the evidence window ("the last 24 h") at now.
func (e *Engine) dayAgo(now int64) int64 { return now - e.cfg.EvidenceWindow.Milliseconds() }

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
