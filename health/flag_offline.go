package health

import "github.com/posfleet/posfleet"

// offline: the last will arrived, or nothing was heard for OfflineAfter.

func (e *Engine) decideOffline(s *termState, now, cut int64, th *resolved) verdict {
	if s.WillAt != 0 {
		return verdict{on: s.WillAt >= cut, at: s.WillAt}
	}
	heard := e.heardAt(s)
	if now-heard > th.OfflineAfter.Milliseconds() && s.LastSeen >= cut {
		return verdict{on: true, at: heard + th.OfflineAfter.Milliseconds()}
	}
	return verdict{}
}

func (e *Engine) explainOffline(s *termState, now int64, th *resolved) *posfleet.OfflineEvidence {
	ev := &posfleet.OfflineEvidence{
		LastSeen:   tm(s.LastSeen),
		LastTxn:    tm(s.LastTxnAt),
		Reason:     posfleet.OfflineLastWill,
		WasSelling: s.LastTxnAt != 0 && s.LastSeen-s.LastTxnAt <= e.cfg.SellingWindow.Milliseconds(),
	}
	if s.WillAt == 0 {
		silent, threshold := (now-s.LastSeen)/1000, int64(th.OfflineAfter.Seconds())
		ev.Reason, ev.SilentS, ev.ThresholdS = posfleet.OfflineNoMessage, &silent, &threshold
		ev.Thresholds = th.appliedFor("offline")
	}
	return ev
}

// heardAt is the time silence is counted from: the last message, or the
// last restore for a terminal that was not offline already.
func (e *Engine) heardAt(s *termState) int64 {
	if s.raised[fOffline] != 0 {
		return s.LastSeen
	}
	return max(s.LastSeen, e.restoredAt.Load())
}
