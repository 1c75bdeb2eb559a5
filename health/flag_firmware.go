package health

import "github.com/posfleet/posfleet"

// firmware_outdated, firmware_blocked: the firmware policy's verdict on the
// terminal's model and version. update_failed: the last update attempt
// failed and the terminal still runs something else than its target.

func decideFirmwareOutdated(s *termState, pol *compiledPolicy) verdict {
	fv := pol.judge(s.Model, s.Firmware)
	return verdict{on: fv.outdated, at: s.InvAt, urgent: fv.belowMinimum}
}

func explainFirmwareOutdated(s *termState, pol *compiledPolicy) *posfleet.FirmwareOutdatedEvidence {
	fv := pol.judge(s.Model, s.Firmware)
	ev := &posfleet.FirmwareOutdatedEvidence{Model: s.Model, Firmware: s.Firmware, Target: fv.policy.Target,
		Minimum: fv.policy.Minimum, URL: fv.policy.URL, SHA256: packageSHA256(fv.policy)}
	if fv.policy.Minimum != "" {
		ev.BelowMinimum = &fv.belowMinimum
	}
	return ev
}

func decideFirmwareBlocked(s *termState, pol *compiledPolicy) verdict {
	fv := pol.judge(s.Model, s.Firmware)
	return verdict{on: fv.blocked, at: s.InvAt, urgent: true}
}

func explainFirmwareBlocked(s *termState, pol *compiledPolicy) *posfleet.FirmwareBlockedEvidence {
	fv := pol.judge(s.Model, s.Firmware)
	return &posfleet.FirmwareBlockedEvidence{Model: s.Model, Firmware: s.Firmware, Blocked: fv.policy.Blocked,
		Target: fv.policy.Target, URL: fv.policy.URL, SHA256: packageSHA256(fv.policy)}
}

// packageSHA256 is the checksum of the package to fetch, reported along
// with its URL (even when empty) and not without one.
func packageSHA256(p ModelPolicy) *string {
	if p.URL == "" {
		return nil
	}
	return &p.SHA256
}

func decideUpdateFailed(s *termState) verdict {
	return verdict{on: s.Update.Status == posfleet.UpdateFailed && s.Update.Target != s.Firmware, at: s.UpdateAt}
}

func explainUpdateFailed(s *termState) *posfleet.UpdateFailedEvidence {
	return &posfleet.UpdateFailedEvidence{Target: s.Update.Target, Error: s.Update.Error, Firmware: s.Firmware,
		ReportedAt: tm(s.UpdateAt)}
}
