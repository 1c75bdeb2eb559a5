package campaign_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/campaign"
)

// cohortOf returns n copies of t, named.
func cohortOf(n int, t campaign.TerminalKPI) []campaign.TerminalKPI {
	out := make([]campaign.TerminalKPI, n)
	for i := range out {
		out[i] = t
		out[i].Terminal = fmt.Sprintf("T%04d", i)
	}
	return out
}

// sales is a terminal that made n sales (and no other transactions), of
// which declined were declined, over hours.
func sales(n, declined uint32, hours float64) campaign.TerminalKPI {
	return campaign.TerminalKPI{Hours: hours, Counts: posfleet.KPICounts{Txns: n, Sales: n, ApprovedSales: n - declined, Approved: n - declined}}
}

// quiet is a terminal with 100 sales, 5 of them declined, over 2 hours.
func quiet() campaign.TerminalKPI { return sales(100, 5, 2) }

func with(t campaign.TerminalKPI, f func(*campaign.TerminalKPI)) campaign.TerminalKPI {
	f(&t)
	return t
}

// each returns a cohort of n terminals where the first k have f applied.
func each(n, k int, base campaign.TerminalKPI, f func(*campaign.TerminalKPI)) []campaign.TerminalKPI {
	out := cohortOf(n, base)
	for i := range k {
		f(&out[i])
	}
	return out
}

func metric(t *testing.T, g posfleet.GateResult, k posfleet.KPI) posfleet.GateMetric {
	t.Helper()
	for _, m := range g.Metrics {
		if m.KPI == k {
			return m
		}
	}
	t.Fatalf("no metric %s in %+v", k, g.Metrics)
	return posfleet.GateMetric{}
}

// TestJudgeBoundaries: for each KPI, an updated cohort below the minimum
// effect passes, one well above it with enough sample fails the gate on
// that KPI, and one with too little sample is not judged on it. The
// baseline is 200 identical terminals, so that chance and the bound are
// all there is.
func TestJudgeBoundaries(t *testing.T) {
	failures := func(n uint32) func(*campaign.TerminalKPI) {
		return func(x *campaign.TerminalKPI) { x.Counts.DeviceFailures = n }
	}
	mismatches := func(n uint32) func(*campaign.TerminalKPI) {
		return func(x *campaign.TerminalKPI) { x.Counts.Mismatches = n }
	}
	receipts := func(n uint32) func(*campaign.TerminalKPI) {
		return func(x *campaign.TerminalKPI) { x.Counts.ReceiptFails = n }
	}
	crashes := func(n uint32) func(*campaign.TerminalKPI) {
		return func(x *campaign.TerminalKPI) { x.Counts.CrashBoots = n }
	}
	failed := func(x *campaign.TerminalKPI) { x.UpdateFailed = true }
	offline := func(x *campaign.TerminalKPI) { x.Offline = true }
	for _, c := range []struct {
		name     string
		kpi      posfleet.KPI
		baseline []campaign.TerminalKPI
		updated  []campaign.TerminalKPI
		// enough and worse are the want; worse implies a failed gate.
		enough, worse bool
	}{
		// Declines: baseline 5%; bound max(1.25×5%, 5%+1) = 6.25%.
		{"declines below effect", posfleet.KPIDeclines, cohortOf(200, quiet()), cohortOf(20, sales(100, 6, 2)), true, false},
		{"declines above", posfleet.KPIDeclines, cohortOf(200, quiet()), cohortOf(20, sales(100, 12, 2)), true, true},
		{"declines too few sales", posfleet.KPIDeclines, cohortOf(200, quiet()), cohortOf(5, sales(3, 3, 2)), false, false},
		{"declines too small a baseline", posfleet.KPIDeclines, cohortOf(19, quiet()), cohortOf(20, sales(100, 50, 2)), false, false},
		// Terminal failures: baseline 1%; bound max(1.5%, 1.5%).
		{"failures below effect", posfleet.KPIDeviceFailures, cohortOf(200, with(quiet(), failures(1))), cohortOf(20, with(quiet(), failures(1))), true, false},
		{"failures at 1.4%", posfleet.KPIDeviceFailures, cohortOf(200, with(quiet(), failures(1))), each(20, 8, with(quiet(), failures(1)), failures(2)), true, false},
		{"failures above", posfleet.KPIDeviceFailures, cohortOf(200, with(quiet(), failures(1))), cohortOf(20, with(quiet(), failures(5))), true, true},
		{"failures too few transactions", posfleet.KPIDeviceFailures, cohortOf(200, with(quiet(), failures(1))), cohortOf(5, with(sales(3, 0, 2), failures(3))), false, false},
		// Amount mismatches: none in 19,000 approved baseline sales; the
		// bound is about 0.55%.
		{"mismatch none", posfleet.KPIAmountMismatch, cohortOf(200, quiet()), cohortOf(10, quiet()), true, false},
		{"mismatch a few", posfleet.KPIAmountMismatch, cohortOf(200, quiet()), each(10, 3, quiet(), mismatches(1)), true, false},
		{"mismatch fee bug", posfleet.KPIAmountMismatch, cohortOf(200, quiet()), cohortOf(10, with(quiet(), mismatches(95))), true, true},
		{"mismatch fee bug on 5 terminals, 2 sales each", posfleet.KPIAmountMismatch, cohortOf(200, quiet()), cohortOf(5, with(sales(2, 0, 1), mismatches(2))), true, true},
		{"mismatch no approved sale", posfleet.KPIAmountMismatch, cohortOf(200, quiet()), cohortOf(5, sales(0, 0, 1)), false, false},
		// Receipt failures: baseline 1 in 95 approved; bound about 2%.
		{"receipts below effect", posfleet.KPIReceiptFailures, cohortOf(200, with(quiet(), receipts(1))), cohortOf(20, with(quiet(), receipts(1))), true, false},
		{"receipts above", posfleet.KPIReceiptFailures, cohortOf(200, with(quiet(), receipts(1))), cohortOf(20, with(quiet(), receipts(8))), true, true},
		{"receipts too few", posfleet.KPIReceiptFailures, cohortOf(200, with(quiet(), receipts(1))), cohortOf(5, with(sales(3, 0, 2), receipts(3))), false, false},
		// Crash boots: none in 400 baseline terminal-hours; the bound is
		// about 0.044 an hour.
		{"crash one", posfleet.KPICrashBoots, cohortOf(200, quiet()), each(10, 1, quiet(), crashes(1)), true, false},
		{"crash firmware", posfleet.KPICrashBoots, cohortOf(200, quiet()), cohortOf(10, with(quiet(), crashes(2))), true, true},
		{"crash too few hours", posfleet.KPICrashBoots, cohortOf(200, quiet()), cohortOf(5, with(sales(2, 0, 0.25), crashes(3))), false, false},
		// Update failures: at most 5% may fail.
		{"update failures one in 20", posfleet.KPIUpdateFailures, cohortOf(200, quiet()), each(20, 1, quiet(), failed), true, false},
		{"update failures 3 in 20", posfleet.KPIUpdateFailures, cohortOf(200, quiet()), each(20, 3, quiet(), failed), true, false},
		{"update failures 6 in 20", posfleet.KPIUpdateFailures, cohortOf(200, quiet()), each(20, 6, quiet(), failed), true, true},
		{"update failures 2 of 2", posfleet.KPIUpdateFailures, cohortOf(200, quiet()), each(2, 2, quiet(), failed), false, false},
		{"update failures without baseline", posfleet.KPIUpdateFailures, nil, each(20, 10, quiet(), failed), true, true},
		// Offline: 3 of 200 baseline terminals; the bound is about 18%.
		{"offline 2 of 20", posfleet.KPIOffline, each(200, 3, quiet(), offline), each(20, 2, quiet(), offline), true, false},
		{"offline 12 of 20", posfleet.KPIOffline, each(200, 3, quiet(), offline), each(20, 12, quiet(), offline), true, true},
		{"offline 4 of 4", posfleet.KPIOffline, each(200, 3, quiet(), offline), each(4, 4, quiet(), offline), false, false},
		{"offline 2 of 2", posfleet.KPIOffline, each(200, 3, quiet(), offline), each(2, 2, quiet(), offline), false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := campaign.Judge(c.updated, c.baseline, campaign.DefaultGateRules())
			m := metric(t, g, c.kpi)
			if m.Enough != c.enough || m.Worse != c.worse {
				t.Errorf("%s: enough %v worse %v (p %.3g, %d/%.0f against %d/%.0f), want enough %v worse %v",
					c.kpi, m.Enough, m.Worse, m.PValue, m.UpdatedEvents, m.UpdatedExposure, m.BaselineEvents, m.BaselineExposure, c.enough, c.worse)
			}
			if g.Passed == c.worse {
				t.Errorf("passed %v with %s worse %v: %+v", g.Passed, c.kpi, c.worse, g.Metrics)
			}
			if !m.Enough && m.PValue != 1 {
				t.Errorf("unjudged metric has p %v", m.PValue)
			}
		})
	}
}

// TestJudgeResult checks the result's shape: one metric per KPI in order,
// the counts and rates, p-values between 0 and 1, and the cohorts' sizes.
func TestJudgeResult(t *testing.T) {
	baseline := cohortOf(300, with(quiet(), func(x *campaign.TerminalKPI) { x.Counts.DeviceFailures = 1 }))
	updated := cohortOf(10, with(quiet(), func(x *campaign.TerminalKPI) { x.Counts.Mismatches, x.Counts.CrashBoots = 95, 3 }))
	g := campaign.Judge(updated, baseline, campaign.DefaultGateRules())
	if g.Passed || g.Updated != 10 || g.Baseline != 300 || len(g.Metrics) != len(posfleet.KPIs) {
		t.Fatalf("got %+v", g)
	}
	for i, m := range g.Metrics {
		if m.KPI != posfleet.KPIs[i] {
			t.Errorf("metric %d is %s, want %s", i, m.KPI, posfleet.KPIs[i])
		}
		if m.PValue < 0 || m.PValue > 1 {
			t.Errorf("%s: p %v", m.KPI, m.PValue)
		}
	}
	mm := metric(t, g, posfleet.KPIAmountMismatch)
	if mm.UpdatedEvents != 950 || mm.UpdatedExposure != 950 || mm.UpdatedRate != 1 || mm.BaselineEvents != 0 || mm.BaselineExposure != 28500 || mm.BaselineRate != 0 {
		t.Errorf("amount_mismatch: %+v", mm)
	}
	df := metric(t, g, posfleet.KPIDeviceFailures)
	if df.BaselineEvents != 300 || df.BaselineExposure != 30000 || df.BaselineRate != 0.01 || df.Worse {
		t.Errorf("device_failures: %+v", df)
	}
	// Holm: both bad KPIs are marked, not only the most significant.
	if cb := metric(t, g, posfleet.KPICrashBoots); !mm.Worse || !cb.Worse || cb.UpdatedRate != 1.5 {
		t.Errorf("amount_mismatch worse %v, crash_boots %+v", mm.Worse, cb)
	}
}

// TestJudgeSpreadBetweenTerminals: half the baseline declines 2% of its
// sales, half 10%; a canary of five terminals that happen to be of the
// second kind is 10% against 6%, above the bound (7.5%) and by far beyond
// what chance gives one shared rate, but not beyond what drawing five
// terminals from such a fleet gives. The gate passes.
func TestJudgeSpreadBetweenTerminals(t *testing.T) {
	baseline := append(cohortOf(100, sales(400, 8, 2)), cohortOf(100, sales(400, 40, 2))...)
	g := campaign.Judge(cohortOf(5, sales(400, 40, 2)), baseline, campaign.DefaultGateRules())
	if m := metric(t, g, posfleet.KPIDeclines); !m.Enough || m.Worse || !g.Passed {
		t.Errorf("declines: %+v", m)
	}
	// The same canary against a baseline where every terminal declines 6%
	// is worse.
	g = campaign.Judge(cohortOf(5, sales(400, 40, 2)), cohortOf(200, sales(400, 24, 2)), campaign.DefaultGateRules())
	if m := metric(t, g, posfleet.KPIDeclines); !m.Worse {
		t.Errorf("declines against a uniform baseline: %+v", m)
	}
}

// TestJudgeFailedInstalls: a terminal whose install failed still runs its
// old firmware; its sales are not the new firmware's, its failed install
// and its being offline are.
func TestJudgeFailedInstalls(t *testing.T) {
	updated := cohortOf(10, with(quiet(), func(x *campaign.TerminalKPI) { x.Counts.CrashBoots = 5 }))
	for i := range 6 {
		updated[i].UpdateFailed, updated[i].Offline = true, true
	}
	g := campaign.Judge(updated, cohortOf(200, quiet()), campaign.DefaultGateRules())
	if m := metric(t, g, posfleet.KPICrashBoots); !m.Worse || m.UpdatedEvents != 20 || m.UpdatedExposure != 8 {
		t.Errorf("crash_boots counts the failed installs: %+v", m)
	}
	if m := metric(t, g, posfleet.KPIDeclines); m.UpdatedExposure != 400 {
		t.Errorf("declines counts the failed installs: %+v", m)
	}
	if m := metric(t, g, posfleet.KPIUpdateFailures); !m.Worse || m.UpdatedEvents != 6 || m.UpdatedExposure != 10 {
		t.Errorf("update_failures: %+v", m)
	}
	if m := metric(t, g, posfleet.KPIOffline); !m.Worse || m.UpdatedEvents != 6 {
		t.Errorf("offline: %+v", m)
	}
}

// TestJudgeEmpty: no terminals at all judges nothing and passes.
func TestJudgeEmpty(t *testing.T) {
	g := campaign.Judge(nil, nil, campaign.DefaultGateRules())
	if !g.Passed || len(g.Metrics) != len(posfleet.KPIs) {
		t.Fatalf("got %+v", g)
	}
	for _, m := range g.Metrics {
		if m.Enough || m.Worse {
			t.Errorf("%+v", m)
		}
	}
}

func TestGateRulesValidate(t *testing.T) {
	if err := campaign.DefaultGateRules().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		field string
		edit  func(*campaign.GateRules)
	}{
		{"alpha", func(r *campaign.GateRules) { r.Alpha = 0 }},
		{"alpha", func(r *campaign.GateRules) { r.Alpha = 0.6 }},
		{"nuisance_share", func(r *campaign.GateRules) { r.NuisanceShare = 1 }},
		{"min_updated_terminals", func(r *campaign.GateRules) { r.MinUpdatedTerminals = 0 }},
		{"min_baseline_terminals", func(r *campaign.GateRules) { r.MinBaselineTerminals = 1 }},
		{"kpis.offline", func(r *campaign.GateRules) { delete(r.KPIs, posfleet.KPIOffline) }},
		{"kpis.refunds", func(r *campaign.GateRules) { r.KPIs["refunds"] = campaign.KPIRule{Ratio: 2, Diff: 0.1, MinEvents: 1} }},
		{"kpis.declines.ratio", func(r *campaign.GateRules) {
			edit(r, posfleet.KPIDeclines, func(k *campaign.KPIRule) { k.Ratio = 0.5 })
		}},
		{"kpis.declines.diff", func(r *campaign.GateRules) { edit(r, posfleet.KPIDeclines, func(k *campaign.KPIRule) { k.Diff = 1 }) }},
		{"kpis.crash_boots.diff", func(r *campaign.GateRules) { edit(r, posfleet.KPICrashBoots, func(k *campaign.KPIRule) { k.Diff = 0 }) }},
		{"max_update_failure_rate", func(r *campaign.GateRules) { r.MaxUpdateFailureRate = 1.5 }},
		{"kpis.receipt_failures.min_updated", func(r *campaign.GateRules) {
			edit(r, posfleet.KPIReceiptFailures, func(k *campaign.KPIRule) { k.MinUpdated = -1 })
		}},
		{"kpis.offline.min_baseline", func(r *campaign.GateRules) {
			edit(r, posfleet.KPIOffline, func(k *campaign.KPIRule) { k.MinBaseline = -1 })
		}},
		{"kpis.amount_mismatch.min_events", func(r *campaign.GateRules) {
			edit(r, posfleet.KPIAmountMismatch, func(k *campaign.KPIRule) { k.MinEvents = 0 })
		}},
	} {
		t.Run(c.field, func(t *testing.T) {
			r := campaign.DefaultGateRules()
			c.edit(&r)
			err := r.Validate()
			var pe *posfleet.Error
			if !errors.As(err, &pe) || pe.Kind != posfleet.Invalid || pe.Code != "invalid_gate_rules" || !strings.Contains(err.Error(), c.field+":") {
				t.Errorf("got %v, want an invalid_gate_rules error naming %s", err, c.field)
			}
		})
	}
	// DefaultGateRules returns a fresh map each time.
	r := campaign.DefaultGateRules()
	delete(r.KPIs, posfleet.KPIDeclines)
	if err := campaign.DefaultGateRules().Validate(); err != nil {
		t.Errorf("defaults shared: %v", err)
	}
}

func edit(r *campaign.GateRules, k posfleet.KPI, f func(*campaign.KPIRule)) {
	kr := r.KPIs[k]
	f(&kr)
	r.KPIs[k] = kr
}

// TestJudgeBaselineWithABrokenUnit: one terminal of the baseline already
// charges every sale a fee (a unit of a known fee-bug version). Counted
// in, it makes the terminals' spread so wide that a canary charging every
// sale a fee passes; left out as broken on its own, the canary fails on
// amount_mismatch. Healthy terminals with a chance mismatch or two stay in.
func TestJudgeBaselineWithABrokenUnit(t *testing.T) {
	mismatching := func(n uint32) func(*campaign.TerminalKPI) {
		return func(k *campaign.TerminalKPI) { k.Counts.Mismatches = n }
	}
	updated := each(3, 3, sales(36, 0, 1), mismatching(36))
	baseline := each(214, 2, sales(4, 0, 1), mismatching(1))
	baseline = append(baseline, with(sales(38, 0, 1), mismatching(38)))
	baseline[len(baseline)-1].Terminal = "FEEBUG"
	g := campaign.Judge(updated, baseline, campaign.DefaultGateRules())
	m := metric(t, g, posfleet.KPIAmountMismatch)
	if g.Passed || !m.Worse {
		t.Fatalf("fee canary passed against a baseline with one fee-bug unit: %+v", m)
	}
	if m.BaselineLeftOut != 1 || m.BaselineEvents != 2 {
		t.Errorf("left out %d, baseline events %d: want the fee-bug unit out and the two chance mismatches in", m.BaselineLeftOut, m.BaselineEvents)
	}
	// A healthy canary against the same baseline passes.
	if g := campaign.Judge(each(3, 0, sales(36, 0, 1), nil), baseline, campaign.DefaultGateRules()); !g.Passed {
		t.Errorf("healthy canary paused: %+v", g.Metrics)
	}
}
