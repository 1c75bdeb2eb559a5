package health

// offline: the last will arrived, or nothing was heard for OfflineAfter.

func (e *Engine) decideOffline(s *termState, now, cut int64) verdict {
	if s.WillAt != 0 {
		return verdict{on: s.WillAt >= cut, at: s.WillAt}
	}
	heard := e.heardAt(s)
	if now-heard > e.cfg.OfflineAfter.Milliseconds() && s.LastSeen >= cut {
		return verdict{on: true, at: heard + e.cfg.OfflineAfter.Milliseconds()}
	}
	return verdict{}
}

func (e *Engine) explainOffline(s *termState, now int64) map[string]any {
	wasSelling := s.LastTxnAt != 0 && s.LastSeen-s.LastTxnAt <= e.cfg.SellingWindow.Milliseconds()
	var ev map[string]any
	if s.WillAt != 0 {
		ev = map[string]any{"reason": "last_will", "last_seen": tm(s.LastSeen), "was_selling": wasSelling}
	} else {
		ev = map[string]any{"reason": "no_message", "last_seen": tm(s.LastSeen), "silent_s": (now - s.LastSeen) / 1000,
			"threshold_s": int64(e.cfg.OfflineAfter.Seconds()), "was_selling": wasSelling}
	}
	if s.LastTxnAt != 0 {
		ev["last_txn"] = tm(s.LastTxnAt)
	}
	return ev
}

// heardAt is the time silence is counted from: the last message, or the
// last restore for a terminal that was not offline already.
func (e *Engine) heardAt(s *termState) int64 {
	if s.Since[fOffline] != 0 {
		return s.LastSeen
	}
	return max(s.LastSeen, e.restoredAt.Load())
}
