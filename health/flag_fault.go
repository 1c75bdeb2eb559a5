package health

import "github.com/posfleet/posfleet"

// hardware_fault: an open fault of warning or critical severity that is not
// tamper. tamper: a tamper event since the last crew visit.

// tamperFault is the tamper rule, the one place that says which faults are
// tamper: anything the secure element reports, and TAMPER from any part.
func tamperFault(component, code string) bool {
	return component == posfleet.ComponentSecureElement || code == "TAMPER"
}

// countsAsHardwareFault tells whether an open fault raises hardware_fault.
func countsAsHardwareFault(of *openFault, cut int64) bool {
	return of.At >= cut && !tamperFault(of.Component, of.Code) &&
		(of.Severity == posfleet.SeverityWarning || of.Severity == posfleet.SeverityCritical)
}

func decideHardwareFault(s *termState, cut int64) verdict {
	var v verdict
	for i := range s.Faults {
		of := &s.Faults[i]
		if !countsAsHardwareFault(of, cut) {
			continue
		}
		if !v.on || of.At < v.at {
			v.at = of.At
		}
		v.on = true
	}
	return v
}

func explainHardwareFault(s *termState, cut int64) map[string]any {
	var faults []map[string]any
	for i := range s.Faults {
		of := &s.Faults[i]
		if countsAsHardwareFault(of, cut) {
			faults = append(faults, map[string]any{"component": of.Component, "code": of.Code,
				"severity": of.Severity, "since": tm(of.At), "detail": of.Detail})
		}
	}
	return map[string]any{"faults": faults}
}

func decideTamper(s *termState, cut int64) verdict {
	n, first := s.Tamper.countSince(max(cut, 1))
	return verdict{on: n > 0, at: first, urgent: true}
}

func explainTamper(s *termState, cut int64) map[string]any {
	var evs []map[string]any
	for _, x := range s.Tamper.since(max(cut, 1)) {
		evs = append(evs, map[string]any{"component": x.ID, "code": x.Note, "at": tm(x.At)})
	}
	return map[string]any{"events": evs}
}
