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

func explainHardwareFault(s *termState, cut int64) *posfleet.HardwareFaultEvidence {
	ev := &posfleet.HardwareFaultEvidence{}
	for i := range s.Faults {
		of := &s.Faults[i]
		if countsAsHardwareFault(of, cut) {
			ev.Faults = append(ev.Faults, posfleet.RaisedFault{Component: of.Component, Code: of.Code,
				Severity: of.Severity, Since: tm(of.At), Detail: of.Detail})
		}
	}
	return ev
}

func decideTamper(s *termState, cut int64) verdict {
	n, first := s.Tamper.countSince(max(cut, 1))
	return verdict{on: n > 0, at: first, urgent: true}
}

func explainTamper(s *termState, cut int64) *posfleet.TamperEvidence {
	ev := &posfleet.TamperEvidence{}
	for _, x := range s.Tamper.since(max(cut, 1)) {
		ev.Events = append(ev.Events, posfleet.TamperEvent{Component: x.ID, Code: x.Note, At: tm(x.At)})
	}
	return ev
}
