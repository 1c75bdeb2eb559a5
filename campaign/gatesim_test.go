package campaign

// The gate measured on simulated waves: how often it pauses healthy
// firmware, how often it finds bad firmware. The figures are doc.go's.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/posfleet/posfleet"
)

// fleetSim draws terminals of one model with the spread real fleets show:
// every terminal has its own sales volume and its own rates (merchants,
// cards, lines and cashiers differ), a few are weak links.
type fleetSim struct {
	rng *rand.Rand
	// Hours of the soak.
	hours float64
	// salesLo and salesHi bound a terminal's sales per hour (drawn
	// log-uniformly between them).
	salesLo, salesHi float64
}

// firmware is how an updated cohort's firmware behaves; the zero value is
// as good as the baseline's.
type firmware struct {
	// declines and failures multiply the terminal's own rates.
	declines, failures float64
	// fee: every approved sale is charged another amount.
	fee bool
	// crashesPerHour are crash boots per terminal-hour, added.
	crashesPerHour float64
}

func (s *fleetSim) uniform(lo, hi float64) float64 { return lo + (hi-lo)*s.rng.Float64() }

func (s *fleetSim) poisson(lambda float64) uint32 {
	if lambda <= 0 {
		return 0
	}
	if lambda > 50 {
		return uint32(max(0, math.Round(lambda+math.Sqrt(lambda)*s.rng.NormFloat64())))
	}
	// Knuth's method is fine for the small means of a soak.
	l, k, p := math.Exp(-lambda), uint32(0), 1.0
	for {
		p *= s.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (s *fleetSim) binomial(n uint32, p float64) uint32 {
	if p <= 0 || n == 0 {
		return 0
	}
	if p >= 1 {
		return n
	}
	if p > 0.5 {
		return n - s.binomial(n, 1-p)
	}
	if m := float64(n) * p; m > 50 {
		v := math.Round(m + math.Sqrt(m*(1-p))*s.rng.NormFloat64())
		return uint32(min(float64(n), max(0, v)))
	}
	// Waiting times between successes are geometric: as many draws as
	// successes.
	lq := math.Log1p(-p)
	var k uint32
	for x := 0.0; ; k++ {
		x += math.Floor(math.Log(1-s.rng.Float64())/lq) + 1
		if x > float64(n) {
			return k
		}
	}
}

func (s *fleetSim) terminal(fw firmware, updated bool) TerminalKPI {
	t := TerminalKPI{Hours: s.hours}
	if s.rng.Float64() < 0.1 {
		// Joined late (came back from an outage, or finished its install
		// into the soak).
		t.Hours = s.hours * s.uniform(0.3, 1)
	}
	perHour := math.Exp(s.uniform(math.Log(s.salesLo), math.Log(s.salesHi)))
	decline := s.uniform(0.03, 0.08)
	failure := s.uniform(0.002, 0.02)
	if s.rng.Float64() < 0.05 {
		failure = 0.06 // a weak link: a bad line, a worn reader
	}
	receipt := s.uniform(0.002, 0.008)
	if fw.declines > 0 {
		decline = min(1, decline*fw.declines)
	}
	if fw.failures > 0 {
		failure = min(1, failure*fw.failures)
	}
	c := &t.Counts
	c.Sales = s.poisson(perHour * t.Hours)
	// Refunds, voids and pre-authorisations make a tenth of the rest.
	other := s.poisson(float64(c.Sales) * 0.1)
	c.Txns = c.Sales + other
	c.ApprovedSales = c.Sales - s.binomial(c.Sales, decline)
	c.Approved = c.ApprovedSales + other - s.binomial(other, decline)
	c.DeviceFailures = s.binomial(c.Txns, failure)
	c.ReceiptFails = s.binomial(c.Approved, receipt)
	// A crash boot every 500 terminal-days.
	c.CrashBoots = s.poisson(t.Hours/(500*24) + fw.crashesPerHour*t.Hours)
	if fw.fee {
		c.Mismatches = c.ApprovedSales
	}
	t.Offline = s.rng.Float64() < s.uniform(0.01, 0.02)
	if updated {
		t.UpdateFailed = s.rng.Float64() < 0.01
	}
	return t
}

// wave draws a canary of nu terminals on fw and a baseline of nb.
func (s *fleetSim) wave(nu, nb int, fw firmware) (updated, baseline []TerminalKPI) {
	for range nu {
		updated = append(updated, s.terminal(fw, true))
	}
	for range nb {
		baseline = append(baseline, s.terminal(firmware{}, false))
	}
	return updated, baseline
}

// healthyWave is a wave of a random size and soak, all on good firmware.
func healthyWave(rng *rand.Rand) (updated, baseline []TerminalKPI) {
	s := &fleetSim{rng: rng, hours: 1 + 5*rng.Float64(), salesLo: 2, salesHi: 30}
	return s.wave(5+rng.IntN(46), 100+rng.IntN(2901), firmware{})
}

// pauses runs Judge on n waves and returns the share that failed and, per
// KPI, the share on which that KPI was worse.
func pauses(n int, seed uint64, draw func(*rand.Rand) ([]TerminalKPI, []TerminalKPI)) (float64, map[posfleet.KPI]float64) {
	return pausesWith(DefaultGateRules(), n, seed, draw)
}

func pausesWith(rules GateRules, n int, seed uint64, draw func(*rand.Rand) ([]TerminalKPI, []TerminalKPI)) (float64, map[posfleet.KPI]float64) {
	rng := rand.New(rand.NewPCG(seed, 16))
	failed, by := 0, map[posfleet.KPI]float64{}
	for range n {
		u, b := draw(rng)
		g := Judge(u, b, rules)
		if !g.Passed {
			failed++
		}
		for _, m := range g.Metrics {
			if m.Worse {
				by[m.KPI] += 1 / float64(n)
			}
		}
	}
	return float64(failed) / float64(n), by
}

// TestGateFalsePauseRate: over 1,000 healthy waves the gate pauses at most
// as often as the designed family-wise rate (DefaultGateRules().Alpha).
func TestGateFalsePauseRate(t *testing.T) {
	rate, by := pauses(1000, 1, healthyWave)
	t.Logf("healthy waves: %.1f%% paused (designed at most %.1f%%); by KPI %v", 100*rate, 100*DefaultGateRules().Alpha, by)
	if rate > DefaultGateRules().Alpha {
		t.Errorf("false-pause rate %.3f above the documented %.3f", rate, DefaultGateRules().Alpha)
	}
}

// TestGateFalsePauseRateCorners: the same bound at the corners of the
// healthy waves, where the approximations are most strained: a large
// canary against a small baseline, a tiny canary of busy terminals (down
// to the 3 terminals a gate judges), the longest soak.
func TestGateFalsePauseRateCorners(t *testing.T) {
	for _, c := range []struct {
		canary, baseline int
		hours, lo, hi    float64
	}{
		{50, 100, 6, 15, 30},
		{50, 100, 1, 2, 5},
		{5, 3000, 6, 15, 30},
		{50, 3000, 6, 15, 30},
		{20, 300, 2, 2, 30},
		{3, 1000, 6, 15, 30},
	} {
		rate, by := pauses(1000, uint64(c.canary*c.baseline), func(rng *rand.Rand) ([]TerminalKPI, []TerminalKPI) {
			s := &fleetSim{rng: rng, hours: c.hours, salesLo: c.lo, salesHi: c.hi}
			return s.wave(c.canary, c.baseline, firmware{})
		})
		t.Logf("healthy, canary %d, baseline %d, %.0f h, %.0f–%.0f sales/h: %.1f%% paused; by KPI %v", c.canary, c.baseline, c.hours, c.lo, c.hi, 100*rate, by)
		if rate > DefaultGateRules().Alpha {
			t.Errorf("canary %d baseline %d: false-pause rate %.3f above the documented %.3f", c.canary, c.baseline, rate, DefaultGateRules().Alpha)
		}
	}
}

// TestGateAtBoundary judges firmware exactly at the minimum effects on
// declines (every terminal's rate 1.25 times its own) and terminal
// failures (1.5 times, weak links included): the hardest case for the
// statistics, since only chance and the spread between terminals stand
// between it and a pause. The gate must still pause at most Alpha of such
// waves. The same waves judged as pooled counts (the spread ignored) are
// reported beside: doc.go quotes both.
func TestGateAtBoundary(t *testing.T) {
	defer func() { pooled = false }()
	for _, c := range []struct {
		canary, baseline int
		hours, lo, hi    float64
	}{
		{50, 3000, 6, 15, 30},
		{50, 200, 6, 15, 30},
		{10, 1000, 6, 15, 30},
		{20, 500, 2, 2, 30},
	} {
		draw := func(rng *rand.Rand) ([]TerminalKPI, []TerminalKPI) {
			s := &fleetSim{rng: rng, hours: c.hours, salesLo: c.lo, salesHi: c.hi}
			return s.wave(c.canary, c.baseline, firmware{declines: 1.25, failures: 1.5})
		}
		pooled = false
		rate, by := pauses(1000, 3, draw)
		pooled = true
		pooledRate, pooledBy := pauses(1000, 3, draw)
		t.Logf("at the minimum effects, canary %d, baseline %d, %.0f h, %.0f–%.0f sales/h: %.1f%% paused %v; pooled counts %.1f%% %v",
			c.canary, c.baseline, c.hours, c.lo, c.hi, 100*rate, by, 100*pooledRate, pooledBy)
		if rate > DefaultGateRules().Alpha {
			t.Errorf("canary %d baseline %d: pause rate at the boundary %.3f above the documented %.3f", c.canary, c.baseline, rate, DefaultGateRules().Alpha)
		}
	}
}

// TestGateFindsFeeBug: a firmware charging a fee on every approved sale
// fails the gate on amount_mismatch with a canary of 5 or 10 terminals
// after an hour of ordinary trade (2 to 6 sales an hour each).
func TestGateFindsFeeBug(t *testing.T) {
	for _, canary := range []int{5, 10} {
		rate, by := pauses(1000, uint64(canary), func(rng *rand.Rand) ([]TerminalKPI, []TerminalKPI) {
			s := &fleetSim{rng: rng, hours: 1, salesLo: 2, salesHi: 6}
			return s.wave(canary, 100+rng.IntN(2901), firmware{fee: true})
		})
		t.Logf("fee bug, canary %d, 1 h: found in %.1f%% (amount_mismatch %.1f%%)", canary, 100*rate, 100*by[posfleet.KPIAmountMismatch])
		if by[posfleet.KPIAmountMismatch] < 0.99 {
			t.Errorf("fee bug on %d terminals found in %.3f of waves, want 0.99", canary, by[posfleet.KPIAmountMismatch])
		}
	}
}

// TestGateFindsCrashingFirmware: a firmware that crash-boots a terminal
// about twice an hour fails on crash_boots with a canary of 5 or 10.
func TestGateFindsCrashingFirmware(t *testing.T) {
	for _, canary := range []int{5, 10} {
		rate, by := pauses(1000, 100+uint64(canary), func(rng *rand.Rand) ([]TerminalKPI, []TerminalKPI) {
			s := &fleetSim{rng: rng, hours: 1, salesLo: 2, salesHi: 30}
			return s.wave(canary, 100+rng.IntN(2901), firmware{crashesPerHour: 2})
		})
		t.Logf("crashing firmware (2 an hour), canary %d, 1 h: found in %.1f%% (crash_boots %.1f%%)", canary, 100*rate, 100*by[posfleet.KPICrashBoots])
		if by[posfleet.KPICrashBoots] < 0.99 {
			t.Errorf("crashing firmware on %d terminals found in %.3f of waves, want 0.99", canary, by[posfleet.KPICrashBoots])
		}
	}
}

// TestGatePassesBelowEffect: a firmware a little worse than the minimum
// effects (declines 1.2 times, terminal failures 1.4 times) passes as
// often as a good one would, even on the largest canary, longest soak and
// busiest terminals the gate meets: the effect bound, not the sample
// size, decides what is worth a pause.
func TestGatePassesBelowEffect(t *testing.T) {
	rate, by := pauses(1000, 7, func(rng *rand.Rand) ([]TerminalKPI, []TerminalKPI) {
		s := &fleetSim{rng: rng, hours: 6, salesLo: 15, salesHi: 30}
		return s.wave(50, 3000, firmware{declines: 1.2, failures: 1.4})
	})
	t.Logf("slightly worse than the minimum effect, canary 50, 6 h: %.1f%% paused; by KPI %v", 100*rate, by)
	if rate > DefaultGateRules().Alpha {
		t.Errorf("pause rate %.3f above the documented %.3f", rate, DefaultGateRules().Alpha)
	}
}

// TestGatePower reports (for doc.go) how often the gate finds bad firmware,
// by canary size and soak, with a baseline of 1,000 terminals selling 2 to
// 30 times an hour.
func TestGatePower(t *testing.T) {
	if testing.Short() {
		t.Skip("reports only")
	}
	for _, c := range []struct {
		name string
		fw   firmware
	}{
		{"fee bug", firmware{fee: true}},
		{"crashes 1/h", firmware{crashesPerHour: 1}},
		{"crashes 0.2/h", firmware{crashesPerHour: 0.2}},
		{"declines ×1.5", firmware{declines: 1.5}},
		{"declines ×2", firmware{declines: 2}},
		{"terminal failures ×2", firmware{failures: 2}},
		{"terminal failures ×3", firmware{failures: 3}},
	} {
		for _, canary := range []int{5, 10, 50} {
			line := ""
			for _, hours := range []float64{1, 2, 6} {
				rate, _ := pauses(200, uint64(canary)*7+uint64(hours), func(rng *rand.Rand) ([]TerminalKPI, []TerminalKPI) {
					s := &fleetSim{rng: rng, hours: hours, salesLo: 2, salesHi: 30}
					return s.wave(canary, 1000, c.fw)
				})
				line += fmt.Sprintf(" %.0f h: %3.0f%%", hours, 100*rate)
			}
			t.Logf("%-22s canary %2d:%s", c.name, canary, line)
		}
	}
}

// TestTails checks the exact tails against direct sums of the
// probabilities, and their behaviour on counts in the millions.
func TestTails(t *testing.T) {
	direct := func(d discrete, from, to float64) float64 {
		s := 0.0
		for k := from; k <= to; k++ {
			s += math.Exp(d.logPMF(k))
		}
		return s
	}
	for _, d := range []discrete{
		binomial{n: 40, p: 0.05}, binomial{n: 40, p: 0.7}, poisson{lambda: 3.5}, poisson{lambda: 0.01},
		betaBinomial(60, 0.1, 0.05), negBinomial(4, 3), negBinomial(0.3, 1.5),
	} {
		total := direct(d, 0, 400)
		if math.Abs(total-1) > 1e-9 {
			t.Errorf("%#v: probabilities sum to %v", d, total)
		}
		for _, k := range []float64{0, 1, 2, 5, 10, 30} {
			if got, want := upper(d, k), direct(d, k, 400); math.Abs(got-want) > 1e-12+1e-9*want {
				t.Errorf("%#v: P(X ≥ %v) = %v, want %v", d, k, got, want)
			}
			if got, want := lower(d, k), direct(d, 0, k); math.Abs(got-want) > 1e-12+1e-9*want {
				t.Errorf("%#v: P(X ≤ %v) = %v, want %v", d, k, got, want)
			}
		}
	}
	// Millions: a normal approximation is good to a few per cent here.
	d := binomial{n: 5e6, p: 0.05}
	sd := math.Sqrt(5e6 * 0.05 * 0.95)
	z := 4.0
	got := upper(d, math.Ceil(250000+z*sd))
	want := 0.5 * math.Erfc(z/math.Sqrt2)
	if math.Abs(got-want) > 0.05*want {
		t.Errorf("binomial(5e6, 0.05): P(X ≥ mean+4sd) = %v, want about %v", got, want)
	}
	if p := upper(poisson{lambda: 2e6}, 2e6+10*math.Sqrt(2e6)); !(p > 0 && p < 1e-20) {
		t.Errorf("poisson(2e6) 10 sd tail = %v", p)
	}
	if p := upper(negBinomial(1e6, 4), 1e6); !(p > 0.45 && p < 0.55) {
		t.Errorf("negative binomial median tail = %v", p)
	}
	// A wide distribution: the tail takes the doubling steps after 20,000
	// terms; it stays within a part in a thousand of the direct sum.
	wide := negBinomial(1e6, 100)
	for _, k := range []float64{1.02e6, 1.05e6} {
		got, want := upper(wide, k), direct(wide, k, 2e6)
		if math.Abs(got-want) > 1e-3*want {
			t.Errorf("negative binomial(1e6, ×100): P(X ≥ %v) = %v, want %v", k, got, want)
		}
	}
}

// BenchmarkJudge judges a canary of 50 against 1,000 baseline terminals
// over a 2-hour soak.
func BenchmarkJudge(b *testing.B) {
	s := &fleetSim{rng: rand.New(rand.NewPCG(1, 16)), hours: 2, salesLo: 2, salesHi: 30}
	u, base := s.wave(50, 1000, firmware{})
	rules := DefaultGateRules()
	b.ReportAllocs()
	for b.Loop() {
		Judge(u, base, rules)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/gate")
}
