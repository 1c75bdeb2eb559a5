package campaign

import (
	"math"
	"slices"

	"github.com/posfleet/posfleet"
)

// TerminalKPI is one terminal's counts over the compared hours (the
// difference of its cumulative posfleet.KPICounts between soak start and end).
type TerminalKPI struct {
	Terminal string
	Counts   posfleet.KPICounts
	// Hours it was observed (the soak's length, or less if it joined late).
	Hours float64
	// Updated cohort only: the update was sent and failed.
	UpdateFailed bool
	// Offline or silent at the end of the soak.
	Offline bool
}

// KPIRule is one KPI's part of a gate: how much worse the updated cohort
// must be to matter, and how much it must have seen to be judged.
type KPIRule struct {
	// Ratio and Diff are the minimum effect: the updated rate counts as
	// worse only above both Ratio times the baseline rate and the
	// baseline rate plus Diff (in the KPI's unit: a share, or crash boots
	// per terminal-hour). update_failures has no baseline and uses
	// GateRules.MaxUpdateFailureRate instead.
	Ratio float64
	Diff  float64
	// MinUpdated and MinBaseline are the least exposure (sales,
	// transactions, approved sales, terminal-hours, terminals) each cohort
	// must have for the KPI to be judged (GateMetric.Enough).
	MinUpdated  float64
	MinBaseline float64
	// MinEvents is the least number of events in the updated cohort for
	// the KPI to count as worse: one crash in a canary is not a firmware.
	MinEvents int64
}

// GateRules are a gate's thresholds; DefaultGateRules documents each.
type GateRules struct {
	// Alpha is the chance a gate pauses a campaign whose firmware is no
	// worse than the minimum effects (the family-wise false-pause rate
	// over every KPI of one gate, Holm's correction).
	Alpha float64
	// NuisanceShare is the share of each KPI's Alpha spent on the
	// baseline's rate being underestimated (Berger–Boos: the baseline rate
	// is taken at its upper confidence bound at level
	// Alpha·NuisanceShare/len(KPIs)).
	NuisanceShare float64
	// MinUpdatedTerminals and MinBaselineTerminals: a cohort with fewer
	// terminals is not judged on any KPI that needs it.
	MinUpdatedTerminals  int
	MinBaselineTerminals int
	// MaxUpdateFailureRate is the highest acceptable share of failed
	// installs among the updated terminals (update_failures has no
	// baseline to compare with).
	MaxUpdateFailureRate float64
	// KPIs has one rule per posfleet.KPIs entry.
	KPIs map[posfleet.KPI]KPIRule
}

// DefaultGateRules are the rules doc.go explains and gatesim_test.go
// measures.
func DefaultGateRules() GateRules {
	return GateRules{
		// One healthy gate in 100 may pause: a campaign of four waves
		// pauses for nothing about once in 25, and an operator resumes it
		// in a click; a lower rate costs power on small canaries.
		Alpha: 0.01,
		// A tenth of the error budget for the baseline's own noise keeps
		// the bound close to the baseline's rate on large baselines.
		NuisanceShare: 0.1,
		// Three terminals on the new firmware: one bad unit is not a
		// firmware, and a canary of five is still judged when one or two
		// of its installs fail (a canary of five finds a fee bug in an
		// hour). Twenty terminals of baseline are the fewest whose spread
		// between terminals can be estimated.
		MinUpdatedTerminals:  3,
		MinBaselineTerminals: 20,
		// One install in twenty may fail (a flaky download, a full
		// flash) before the firmware is suspected of failing them.
		MaxUpdateFailureRate: 0.05,
		KPIs: map[posfleet.KPI]KPIRule{
			// Declines are mostly the card's and the issuer's doing and
			// vary from 3% to 8% between merchants: a quarter more, and a
			// point more (5.5% becomes 6.9%).
			posfleet.KPIDeclines: {Ratio: 1.25, Diff: 0.01, MinUpdated: 20, MinBaseline: 200, MinEvents: 3},
			// Failures the terminal or its network caused: half again as
			// many and half a point more (1.3% becomes 2%); weak links
			// fail 6% of their payments, so a canary's share swings.
			posfleet.KPIDeviceFailures: {Ratio: 1.5, Diff: 0.005, MinUpdated: 20, MinBaseline: 200, MinEvents: 3},
			// Amount mismatches are near zero on healthy firmware: half a
			// point of approved sales is already a fee bug.
			posfleet.KPIAmountMismatch: {Ratio: 2, Diff: 0.005, MinUpdated: 5, MinBaseline: 100, MinEvents: 3},
			// Receipt failures (paper, printer, e-receipt): twice as many
			// and a point more.
			posfleet.KPIReceiptFailures: {Ratio: 2, Diff: 0.01, MinUpdated: 20, MinBaseline: 200, MinEvents: 3},
			// Crash and watchdog boots: twice as many and one more per
			// terminal every 50 hours; two terminal-hours of canary are
			// enough to see a firmware that crashes every hour.
			posfleet.KPICrashBoots: {Ratio: 2, Diff: 0.02, MinUpdated: 2, MinBaseline: 20, MinEvents: 3},
			// Update failures: at least 3 installs, 3 of them failed (a canary
			// whose three installs all failed is not a flaky download).
			posfleet.KPIUpdateFailures: {MinUpdated: 3, MinEvents: 3},
			// Terminals offline at the end of the soak: twice the
			// baseline's share and 10 points more.
			posfleet.KPIOffline: {Ratio: 2, Diff: 0.10, MinUpdated: 5, MinBaseline: 20, MinEvents: 2},
		},
	}
}

// Validate names the field at fault.
func (r GateRules) Validate() error {
	bad := func(field, want string) error {
		return posfleet.Errorf(posfleet.Invalid, "invalid_gate_rules", "gate rules: %s: %s", field, want)
	}
	if !(r.Alpha > 0 && r.Alpha < 0.5) {
		return bad("alpha", "want a false-pause rate between 0 and 0.5")
	}
	if !(r.NuisanceShare > 0 && r.NuisanceShare < 1) {
		return bad("nuisance_share", "want a share between 0 and 1")
	}
	if r.MinUpdatedTerminals < 1 {
		return bad("min_updated_terminals", "want at least 1")
	}
	if r.MinBaselineTerminals < 2 {
		return bad("min_baseline_terminals", "want at least 2")
	}
	if !(r.MaxUpdateFailureRate > 0 && r.MaxUpdateFailureRate < 1) {
		return bad("max_update_failure_rate", "want a share between 0 and 1")
	}
	for _, k := range posfleet.KPIs {
		kr, ok := r.KPIs[k]
		f := "kpis." + string(k)
		switch {
		case !ok:
			return bad(f, "missing")
		case k != posfleet.KPIUpdateFailures && !(kr.Ratio >= 1 && kr.Ratio < 1000):
			return bad(f+".ratio", "want a ratio of at least 1")
		case k != posfleet.KPIUpdateFailures && !(kr.Diff > 0 && (kr.Diff < 1 || !proportion(k))):
			return bad(f+".diff", "want a positive difference (below 1 for a share)")
		case !(kr.MinUpdated >= 0) || math.IsInf(kr.MinUpdated, 0):
			return bad(f+".min_updated", "want a non-negative exposure")
		case !(kr.MinBaseline >= 0) || math.IsInf(kr.MinBaseline, 0):
			return bad(f+".min_baseline", "want a non-negative exposure")
		case kr.MinEvents < 1:
			return bad(f+".min_events", "want at least 1")
		}
	}
	for k := range r.KPIs {
		if !slices.Contains(posfleet.KPIs, k) {
			return bad("kpis."+string(k), "not a KPI")
		}
	}
	return nil
}

// proportion reports whether k's events are a share of their exposure
// (at most one event per unit) rather than a count per terminal-hour.
func proportion(k posfleet.KPI) bool { return k != posfleet.KPICrashBoots }

// events returns t's events and exposure for k (update_failures and
// offline count the terminal as one trial).
func events(k posfleet.KPI, t TerminalKPI) (e, x float64) {
	c := t.Counts
	switch k {
	case posfleet.KPIDeclines:
		return float64(c.Sales) - float64(min(c.ApprovedSales, c.Sales)), float64(c.Sales)
	case posfleet.KPIDeviceFailures:
		return float64(min(c.DeviceFailures, c.Txns)), float64(c.Txns)
	case posfleet.KPIAmountMismatch:
		return float64(min(c.Mismatches, c.ApprovedSales)), float64(c.ApprovedSales)
	case posfleet.KPIReceiptFailures:
		return float64(min(c.ReceiptFails, c.Approved)), float64(c.Approved)
	case posfleet.KPICrashBoots:
		return float64(c.CrashBoots), max(t.Hours, 0)
	case posfleet.KPIUpdateFailures:
		return b2f(t.UpdateFailed), 1
	case posfleet.KPIOffline:
		return b2f(t.Offline), 1
	}
	return 0, 0
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// cohort is one cohort's sums for one KPI.
type cohort struct {
	terminals int
	// e and x are the events and exposure; x2 and x3 the sums of the
	// terminals' squared and cubed exposures; s the sum of squared
	// deviations from the pooled rate (baseline only).
	e, x, x2, x3, s float64
}

// sum sums ts for k; dev also sums the squared deviations (the baseline).
// An updated terminal whose install failed still runs its old firmware:
// it counts for update_failures and offline (a failed install may leave a
// terminal dead), not for the payment KPIs and crash boots.
func sum(k posfleet.KPI, ts []TerminalKPI, dev bool) cohort {
	var c cohort
	for _, t := range ts {
		if t.UpdateFailed && k != posfleet.KPIUpdateFailures && k != posfleet.KPIOffline {
			continue
		}
		c.terminals++
		e, x := events(k, t)
		c.e += e
		c.x += x
		c.x2 += x * x
		c.x3 += x * x * x
	}
	if dev && c.x > 0 {
		mu := c.e / c.x
		for _, t := range ts {
			if t.UpdateFailed && k != posfleet.KPIUpdateFailures && k != posfleet.KPIOffline {
				continue
			}
			e, x := events(k, t)
			c.s += (e - mu*x) * (e - mu*x)
		}
	}
	return c
}

// outlierLevel: a baseline terminal whose own count is beyond chance for
// the rest of the baseline at this level, divided by the baseline's size,
// is left out of it (typical).
const outlierLevel = 1e-8

// typical returns the baseline's terminals without the units that are
// broken on their own: a terminal of the old firmware that already
// charges every sale a fee (a known fee-bug version), a reader that fails
// every chip payment, a terminal crashing every hour. One of them among
// hundreds widens the spread between terminals (spread) so much that a
// canary charging every sale a fee passes the gate; it also stands for no
// typical terminal of the old firmware. A terminal is left out when its
// count has a chance below outlierLevel/n (n terminals: Bonferroni over
// them) under the rate of the rest of the baseline, taken as at least half
// an event over their exposure (a rest with no event at all would make any
// single event impossible), and it has at least the KPI's MinEvents. The
// level is far below any healthy terminal's: a weak link failing 6% of
// its payments against the fleet's 1% stays in (leaving such terminals
// out would narrow the spread and raise the false-pause rate, measured in
// gatesim_test.go), while a unit failing or mischarging every payment is
// beyond it after a handful. left is how many were left out; ts is
// returned as it is when none is.
func typical(k posfleet.KPI, ts []TerminalKPI, kr KPIRule) (kept []TerminalKPI, left int) {
	if k == posfleet.KPIOffline || len(ts) < 3 {
		return ts, 0 // one unit each: nothing to single out
	}
	var e, x float64
	for _, t := range ts {
		te, tx := events(k, t)
		e, x = e+te, x+tx
	}
	level := outlierLevel / float64(len(ts))
	minEvents := float64(max(kr.MinEvents, 3))
	out := func(t TerminalKPI) bool {
		te, tx := events(k, t)
		if te < minEvents || tx <= 0 || x-tx <= 0 {
			return false
		}
		mu := max((e-te)/(x-tx), 0.5/(x-tx))
		if proportion(k) && mu >= 1 {
			return false
		}
		return upper(dist(k, tx, mu, 1), te) < level
	}
	for _, t := range ts {
		if out(t) {
			left++
		}
	}
	if left == 0 {
		return ts, 0
	}
	kept = make([]TerminalKPI, 0, len(ts)-left)
	for _, t := range ts {
		if !out(t) {
			kept = append(kept, t)
		}
	}
	return kept, left
}

func (c cohort) rate() float64 {
	if c.x <= 0 {
		return 0
	}
	return c.e / c.x
}

// within is the variance of one unit of exposure at rate mu: binomial for
// shares, Poisson for counts.
func within(k posfleet.KPI, mu float64) float64 {
	if proportion(k) {
		return mu * (1 - mu)
	}
	return mu
}

// spread estimates, from the baseline cohort, the variance between its
// terminals' own rates (τ²), by the method of moments: the terminals'
// squared deviations from the pooled rate, less what chance alone (the
// binomial or Poisson variance) explains. Zero when chance explains all.
func spread(k posfleet.KPI, c cohort) float64 {
	if c.x <= 0 || c.terminals < 2 {
		return 0
	}
	mu := c.e / c.x
	den := c.x2 - 2*c.x3/c.x + c.x2*c.x2/(c.x*c.x)
	if den <= 0 {
		return 0
	}
	return max(0, (c.s-within(k, mu)*(c.x-c.x2/c.x))/den)
}

// inflation is the dispersion factor of a cohort's total at rate mu when
// its terminals' rates vary with variance tau2: the total's variance over
// the variance chance alone gives it.
func inflation(k posfleet.KPI, c cohort, mu, tau2 float64) float64 {
	v := within(k, mu)
	if v <= 0 || c.x <= 0 || tau2 <= 0 {
		return 1
	}
	f := 1 + tau2*c.x2/(v*c.x)
	if proportion(k) {
		// A share's total cannot vary more than all-or-nothing.
		f = min(f, max(c.x, 1))
	}
	return f
}

// pooled, when set (by the simulation tests only), ignores the spread
// between terminals: the test a pooled count would make.
var pooled bool

// Judge compares the updated cohort with the baseline cohort (same model,
// not yet updated, same hours) on every posfleet.KPIs entry and returns
// the verdict with Metrics filled (one per KPI, in posfleet.KPIs order),
// Passed, Updated and Baseline counts. The caller sets Wave, At, From, To.
//
// The rules must be valid (GateRules.Validate).
func Judge(updated, baseline []TerminalKPI, rules GateRules) posfleet.GateResult {
	g := posfleet.GateResult{Updated: len(updated), Baseline: len(baseline), Metrics: make([]posfleet.GateMetric, 0, len(posfleet.KPIs))}
	// gamma is the level of the baseline's upper bound (Berger–Boos);
	// it is added to every p-value that uses one.
	gamma := rules.Alpha * rules.NuisanceShare / float64(len(posfleet.KPIs))
	for _, k := range posfleet.KPIs {
		kr := rules.KPIs[k]
		u := sum(k, updated, false)
		m := posfleet.GateMetric{KPI: k, UpdatedEvents: int64(u.e), UpdatedExposure: u.x, UpdatedRate: u.rate(), PValue: 1}
		m.Enough = u.terminals >= rules.MinUpdatedTerminals && u.x >= kr.MinUpdated && u.x > 0
		if k == posfleet.KPIUpdateFailures {
			// No baseline: an exact binomial test against the highest
			// acceptable failure rate.
			if m.Enough {
				m.PValue = upper(binomial{n: u.x, p: rules.MaxUpdateFailureRate}, u.e)
			}
			g.Metrics = append(g.Metrics, m)
			continue
		}
		kept, left := typical(k, baseline, kr)
		b := sum(k, kept, true)
		m.BaselineEvents, m.BaselineExposure, m.BaselineRate = int64(b.e), b.x, b.rate()
		m.BaselineLeftOut = left
		m.Enough = m.Enough && b.terminals >= rules.MinBaselineTerminals && b.x >= kr.MinBaseline && b.x > 0
		if m.Enough {
			m.PValue = worse(k, kr, u, b, gamma)
		}
		g.Metrics = append(g.Metrics, m)
	}
	holm(g.Metrics, rules)
	g.Passed = true
	for _, m := range g.Metrics {
		if m.Worse {
			g.Passed = false
		}
	}
	return g
}

// largeBaseline is how many events the baseline needs for its rate to be
// taken as measured, its uncertainty added to the updated cohort's
// variance; with fewer, the rate is taken at its upper confidence bound.
const largeBaseline = 50

// worse is the one-sided p-value of "the updated cohort's rate is above
// the boundary": the baseline rate times Ratio or plus Diff, whichever is
// higher. The updated cohort's total is compared with a beta-binomial or
// negative binomial of the boundary's mean and of the variance the
// terminals' spread (tau2, from the baseline) gives it. With at least
// largeBaseline events the baseline rate's own uncertainty is added to
// that variance; with fewer, the baseline rate is taken at its upper
// confidence bound at level gamma and gamma is added to the p-value
// (Berger and Boos), which stays valid when the baseline saw no event at
// all.
func worse(k posfleet.KPI, kr KPIRule, u, b cohort, gamma float64) float64 {
	tau2 := 0.0
	if !pooled && k != posfleet.KPIOffline {
		tau2 = spread(k, b)
	}
	mu0 := b.rate()
	f0 := inflation(k, b, mu0, tau2)
	if b.e < largeBaseline {
		hi := upperBound(k, b, f0, gamma)
		bound := max(kr.Ratio*hi, hi+kr.Diff)
		if proportion(k) && bound >= 1 {
			return 1
		}
		// At the boundary the terminals' rates are Ratio times the
		// baseline's: their spread grows with them.
		f := inflation(k, u, bound, tau2*kr.Ratio*kr.Ratio)
		return min(1, upper(dist(k, u.x, bound, f), u.e)+gamma)
	}
	bound, scale := mu0+kr.Diff, 1.0
	if kr.Ratio*mu0 > bound {
		bound, scale = kr.Ratio*mu0, kr.Ratio
	}
	if proportion(k) && bound >= 1 {
		return 1
	}
	f := inflation(k, u, bound, tau2*kr.Ratio*kr.Ratio)
	// The boundary moves with the baseline's estimate: its variance
	// (scale·exposure)²·Var(rate) adds to the total's.
	f += scale * scale * u.x * f0 * within(k, mu0) / b.x / within(k, bound)
	return upper(dist(k, u.x, bound, f), u.e)
}

// dist is the distribution of a cohort's total events over exposure x at
// rate mu with dispersion factor f: binomial or Poisson when f is 1,
// beta-binomial or negative binomial (the same mean, f times the
// variance) when the terminals differ.
func dist(k posfleet.KPI, x, mu, f float64) discrete {
	if proportion(k) {
		n := math.Round(x)
		if f <= 1 || n < 2 {
			return binomial{n: n, p: mu}
		}
		return betaBinomial(n, mu, (f-1)/(n-1))
	}
	if f <= 1 {
		return poisson{lambda: mu * x}
	}
	return negBinomial(mu*x, f)
}

// upperBound is the baseline rate's one-sided upper confidence bound at
// level gamma: the rate at which seeing as few events as the baseline did
// has chance gamma.
func upperBound(k posfleet.KPI, b cohort, f, gamma float64) float64 {
	at := func(mu float64) float64 { return lower(dist(k, b.x, mu, f), b.e) }
	lo, hi := b.rate(), 0.0
	if proportion(k) {
		hi = 1
	} else {
		// Start from a normal approximation and widen until it brackets.
		hi = lo + (5*math.Sqrt((b.e+1)*f)+5*f)/b.x
		for at(hi) > gamma {
			lo, hi = hi, 2*hi
		}
	}
	if at(lo) <= gamma {
		return lo
	}
	for range 60 {
		mid := (lo + hi) / 2
		if at(mid) > gamma {
			lo = mid
		} else {
			hi = mid
		}
		if hi-lo <= 1e-9*hi {
			break
		}
	}
	return hi
}

// holm sets each judged metric's PValue to Holm's adjusted p-value over
// the judged metrics and Worse where it is at most Alpha and the updated
// cohort had MinEvents. The gate fails exactly when Bonferroni's would
// (on the smallest p-value); Holm only marks more of the other KPIs.
func holm(ms []posfleet.GateMetric, rules GateRules) {
	var idx []int
	for i, m := range ms {
		if m.Enough {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case ms[a].PValue < ms[b].PValue:
			return -1
		case ms[a].PValue > ms[b].PValue:
			return 1
		}
		return 0
	})
	adj := 0.0
	for rank, i := range idx {
		adj = min(1, max(adj, ms[i].PValue*float64(len(idx)-rank)))
		ms[i].PValue = adj
		ms[i].Worse = adj <= rules.Alpha && ms[i].UpdatedEvents >= rules.KPIs[ms[i].KPI].MinEvents
	}
}

// discrete is a distribution on the whole numbers 0..top (top +Inf when
// unbounded), given by its log probability at k and the ratio of the
// probabilities at k+1 and k: enough to sum a tail term by term from its
// first term, in log space where it matters, for counts up to millions.
type discrete interface {
	logPMF(k float64) float64
	// next is P(k+1)/P(k).
	next(k float64) float64
	mean() float64
	top() float64
}

// upper is P(X ≥ k).
func upper(d discrete, k float64) float64 {
	k = math.Ceil(k)
	switch {
	case k <= 0:
		return 1
	case k > d.top():
		return 0
	case k <= d.mean():
		return max(0, 1-lower(d, k-1))
	}
	return tail(d, k, +1)
}

// lower is P(X ≤ k).
func lower(d discrete, k float64) float64 {
	k = math.Floor(k)
	switch {
	case k < 0:
		return 0
	case k >= d.top():
		return 1
	case k >= d.mean():
		return max(0, 1-upper(d, k+1))
	}
	return tail(d, k, -1)
}

// tail sums the probabilities from k outward (dir +1 up, -1 down) to the
// end of the support or until the terms no longer matter. k is on the far
// side of the mean, where the terms fall off geometrically. A very wide
// distribution (a cohort of a few terminals with huge counts and a large
// spread) would take millions of terms: after every stride terms the step
// doubles, each term then standing for the step's width, so a tail costs
// at most about stride·log2(width) terms; the terms fall away from k, so
// the wider steps err toward a larger tail (a larger p-value, a higher
// upper bound).
func tail(d discrete, k float64, dir int) float64 {
	const stride = 20000
	first := d.logPMF(k)
	if math.IsInf(first, -1) {
		return 0
	}
	s, t, h, n := 1.0, 1.0, 1.0, 0
	for j := k; ; {
		step := h
		if dir > 0 {
			step = min(h, d.top()-j)
		} else {
			step = min(h, j)
		}
		if step <= 0 {
			break
		}
		switch {
		case h == 1 && dir > 0:
			t *= d.next(j)
		case h == 1:
			t /= d.next(j - 1)
		default:
			t = math.Exp(d.logPMF(j+float64(dir)*step)-first) * step
		}
		j += float64(dir) * step
		s += t
		if t < 1e-17*s || t == 0 || math.IsInf(t, 0) || math.IsNaN(t) {
			break
		}
		if n++; n == stride {
			n, h = 0, 2*h
		}
	}
	return min(1, math.Exp(first+math.Log(s)))
}

// lchoose is log(n choose k).
func lchoose(n, k float64) float64 {
	a, _ := math.Lgamma(n + 1)
	b, _ := math.Lgamma(k + 1)
	c, _ := math.Lgamma(n - k + 1)
	return a - b - c
}

func lgamma(x float64) float64 { v, _ := math.Lgamma(x); return v }

// lbeta is log B(a, b).
func lbeta(a, b float64) float64 { return lgamma(a) + lgamma(b) - lgamma(a+b) }

type binomial struct{ n, p float64 }

func (d binomial) logPMF(k float64) float64 {
	switch {
	case d.p <= 0:
		return logIf(k == 0)
	case d.p >= 1:
		return logIf(k == d.n)
	}
	return lchoose(d.n, k) + k*math.Log(d.p) + (d.n-k)*math.Log1p(-d.p)
}
func (d binomial) next(k float64) float64 {
	if d.p >= 1 {
		return math.Inf(1)
	}
	return (d.n - k) / (k + 1) * d.p / (1 - d.p)
}
func (d binomial) mean() float64 { return d.n * d.p }
func (d binomial) top() float64  { return d.n }

func logIf(b bool) float64 {
	if b {
		return 0
	}
	return math.Inf(-1)
}

// betaBinom is the beta-binomial: n trials whose success chance is itself
// drawn from a beta of mean p, so that trials are correlated by rho
// (variance n·p·(1-p)·(1+(n-1)·rho)).
type betaBinom struct{ n, a, b float64 }

func betaBinomial(n, p, rho float64) discrete {
	if p <= 0 || p >= 1 || rho <= 0 {
		return binomial{n: n, p: p}
	}
	rho = min(rho, 1-1e-9)
	s := (1 - rho) / rho
	return betaBinom{n: n, a: p * s, b: (1 - p) * s}
}

func (d betaBinom) logPMF(k float64) float64 {
	return lchoose(d.n, k) + lbeta(k+d.a, d.n-k+d.b) - lbeta(d.a, d.b)
}
func (d betaBinom) next(k float64) float64 {
	return (d.n - k) / (k + 1) * (k + d.a) / (d.n - k - 1 + d.b)
}
func (d betaBinom) mean() float64 { return d.n * d.a / (d.a + d.b) }
func (d betaBinom) top() float64  { return d.n }

type poisson struct{ lambda float64 }

func (d poisson) logPMF(k float64) float64 {
	if d.lambda <= 0 {
		return logIf(k == 0)
	}
	return k*math.Log(d.lambda) - d.lambda - lgamma(k+1)
}
func (d poisson) next(k float64) float64 { return d.lambda / (k + 1) }
func (d poisson) mean() float64          { return d.lambda }
func (d poisson) top() float64           { return math.Inf(1) }

// negBin is the negative binomial (a Poisson whose rate is gamma
// distributed) of mean m and variance f·m.
type negBin struct{ r, q, m float64 }

func negBinomial(m, f float64) discrete {
	if m <= 0 || f <= 1 {
		return poisson{lambda: m}
	}
	return negBin{r: m / (f - 1), q: 1 / f, m: m}
}

func (d negBin) logPMF(k float64) float64 {
	return lgamma(k+d.r) - lgamma(d.r) - lgamma(k+1) + d.r*math.Log(d.q) + k*math.Log1p(-d.q)
}
func (d negBin) next(k float64) float64 { return (k + d.r) / (k + 1) * (1 - d.q) }
func (d negBin) mean() float64          { return d.m }
func (d negBin) top() float64           { return math.Inf(1) }
