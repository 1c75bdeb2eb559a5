package campaign

// TEMPORARY stand-in for gate.go (the gate's statistics, written by
// another change): the lead deletes this file when gate.go lands. Only
// the names the runner uses are here, with a simple rule: a KPI fails
// the gate when the updated terminals' rate is over twice the baseline's
// plus one percentage point, on at least 20 units of exposure.

import (
	"github.com/posfleet/posfleet"
)

// TerminalKPI is one terminal's KPIs over a soak: its counters' growth,
// the hours it was watched, whether its update failed and whether it was
// offline at the soak's end.
type TerminalKPI struct {
	Terminal     string
	Counts       posfleet.KPICounts
	Hours        float64
	UpdateFailed bool
	Offline      bool
}

// GateRules are the gate's thresholds.
type GateRules struct {
	MinExposure float64
}

// DefaultGateRules returns the default thresholds.
func DefaultGateRules() GateRules { return GateRules{MinExposure: 20} }

// Judge compares the updated terminals with the baseline.
func Judge(updated, baseline []TerminalKPI, rules GateRules) posfleet.GateResult {
	res := posfleet.GateResult{Passed: true, Updated: len(updated), Baseline: len(baseline)}
	type ratio struct{ events, exposure float64 }
	measure := func(cohort []TerminalKPI, k posfleet.KPI) ratio {
		var r ratio
		for _, t := range cohort {
			c := t.Counts
			switch k {
			case posfleet.KPIDeclines:
				r.events += float64(c.Sales - min(c.ApprovedSales, c.Sales))
				r.exposure += float64(c.Sales)
			case posfleet.KPIDeviceFailures:
				r.events += float64(c.DeviceFailures)
				r.exposure += float64(c.Txns)
			case posfleet.KPIAmountMismatch:
				r.events += float64(c.Mismatches)
				r.exposure += float64(c.ApprovedSales)
			case posfleet.KPIReceiptFailures:
				r.events += float64(c.ReceiptFails)
				r.exposure += float64(c.Approved)
			case posfleet.KPICrashBoots:
				r.events += float64(c.CrashBoots)
				r.exposure += t.Hours
			case posfleet.KPIUpdateFailures:
				if t.UpdateFailed {
					r.events++
				}
				r.exposure++
			case posfleet.KPIOffline:
				if t.Offline {
					r.events++
				}
				r.exposure++
			}
		}
		return r
	}
	for _, k := range posfleet.KPIs {
		u, b := measure(updated, k), measure(baseline, k)
		m := posfleet.GateMetric{KPI: k, UpdatedEvents: int64(u.events), UpdatedExposure: u.exposure,
			BaselineEvents: int64(b.events), BaselineExposure: b.exposure, PValue: 1}
		if u.exposure > 0 {
			m.UpdatedRate = u.events / u.exposure
		}
		if b.exposure > 0 {
			m.BaselineRate = b.events / b.exposure
		}
		// Update failures have no baseline: every updated terminal is
		// exposed, and half of them failing fails the gate.
		minExp := rules.MinExposure
		minEvents := 1.0
		switch k {
		case posfleet.KPIUpdateFailures, posfleet.KPIOffline:
			minExp = 1
		case posfleet.KPICrashBoots:
			minExp, minEvents = 0.0001, 2
		}
		m.Enough = u.exposure >= minExp
		if k != posfleet.KPIUpdateFailures && k != posfleet.KPIOffline {
			m.Enough = m.Enough && b.exposure >= minExp // nothing to compare with
		}
		if m.Enough && u.events >= minEvents && m.UpdatedRate > 2*m.BaselineRate+0.01 {
			if k != posfleet.KPIUpdateFailures && k != posfleet.KPIOffline || m.UpdatedRate >= 0.5 {
				m.Worse, m.PValue = true, 0
				res.Passed = false
			}
		}
		res.Metrics = append(res.Metrics, m)
	}
	return res
}
