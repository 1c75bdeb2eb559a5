package health

import "github.com/posfleet/posfleet"

// firmware_outdated, firmware_blocked: the firmware policy's verdict on the
// terminal's model and version. update_failed: the last update attempt
// failed and the terminal still runs something else than its target.

func decideFirmwareOutdated(s *termState, pol *compiledPolicy) verdict {
	fv := pol.judge(s.Model, s.Firmware)
	return verdict{on: fv.outdated, at: s.InvAt, urgent: fv.belowMinimum}
}

func explainFirmwareOutdated(s *termState, pol *compiledPolicy) map[string]any {
	fv := pol.judge(s.Model, s.Firmware)
	ev := map[string]any{"model": s.Model, "firmware": s.Firmware, "target": fv.policy.Target}
	if fv.policy.Minimum != "" {
		ev["minimum"], ev["below_minimum"] = fv.policy.Minimum, fv.belowMinimum
	}
	packageEvidence(ev, fv.policy)
	return ev
}

func decideFirmwareBlocked(s *termState, pol *compiledPolicy) verdict {
	fv := pol.judge(s.Model, s.Firmware)
	return verdict{on: fv.blocked, at: s.InvAt, urgent: true}
}

func explainFirmwareBlocked(s *termState, pol *compiledPolicy) map[string]any {
	fv := pol.judge(s.Model, s.Firmware)
	ev := map[string]any{"model": s.Model, "firmware": s.Firmware, "blocked": fv.policy.Blocked, "target": fv.policy.Target}
	packageEvidence(ev, fv.policy)
	return ev
}

// packageEvidence adds where the target firmware is to be fetched from.
func packageEvidence(ev map[string]any, p ModelPolicy) {
	if p.URL != "" {
		ev["url"], ev["sha256"] = p.URL, p.SHA256
	}
}

func decideUpdateFailed(s *termState) verdict {
	return verdict{on: s.Update.Status == posfleet.UpdateFailed && s.Update.Target != s.Firmware, at: s.UpdateAt}
}

func explainUpdateFailed(s *termState) map[string]any {
	return map[string]any{"target": s.Update.Target, "error": s.Update.Error, "firmware": s.Firmware, "reported_at": tm(s.UpdateAt)}
}
