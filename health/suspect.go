package health

import (
	"math"
	"sort"
)

// Metrics a FirmwareFinding can be about.
const (
	MetricAmountMismatch   = "amount_mismatch"   // approved sales with amount_charged ≠ amount_entered, per approved sale
	MetricTerminalFailures = "terminal_failures" // transactions failed for a terminal cause, per transaction
)

// FirmwareFinding is a firmware version whose rate of amount mismatches or
// terminal-caused failures is clearly above the rest of its model's fleet:
// likely a software bug, not a thousand cashier errors.
type FirmwareFinding struct {
	Model    string `json:"model"`
	Firmware string `json:"firmware"`
	Metric   string `json:"metric"`
	// Terminals run the version; Affected of them had at least one event.
	Terminals int `json:"terminals"`
	Affected  int `json:"affected"`
	// Count of Total on this version, and on the model's other versions.
	Count     int64   `json:"count"`
	Total     int64   `json:"total"`
	Rate      float64 `json:"rate"`
	RestCount int64   `json:"rest_count"`
	RestTotal int64   `json:"rest_total"`
	RestRate  float64 `json:"rest_rate"`
	// Test is "z" (one-sided two-proportion z-test, pooled) or "fisher"
	// (one-sided Fisher's exact test, for small expected counts).
	Test   string  `json:"test"`
	Z      float64 `json:"z,omitempty"`
	PValue float64 `json:"p_value"`
}

type versionAgg struct {
	terminals                    int
	sales, mismatches, txns, tfs int64
	mismatchTerms, failTerms     int
}

// SuspectFirmware compares every firmware version of each model with the
// rest of that model's fleet in tenant ("" for every tenant) and returns the
// versions whose rates are significantly higher, most significant first.
// The counts are per terminal since it got its current firmware.
func (e *Engine) SuspectFirmware(tenant string) []FirmwareFinding {
	aggs := map[string]map[string]*versionAgg{}
	e.each(tenant, func(s *termState) {
		if s.Model == "" || s.Firmware == "" {
			return
		}
		if aggs[s.Model] == nil {
			aggs[s.Model] = map[string]*versionAgg{}
		}
		a := aggs[s.Model][s.Firmware]
		if a == nil {
			a = &versionAgg{}
			aggs[s.Model][s.Firmware] = a
		}
		a.terminals++
		a.sales += int64(s.FW.Sales)
		a.mismatches += int64(s.FW.Mismatches)
		a.txns += int64(s.FW.Txns)
		a.tfs += int64(s.FW.TerminalFailures)
		if s.FW.Mismatches > 0 {
			a.mismatchTerms++
		}
		if s.FW.TerminalFailures > 0 {
			a.failTerms++
		}
	})
	out := []FirmwareFinding{}
	for model, versions := range aggs {
		var all versionAgg
		for _, a := range versions {
			all.sales += a.sales
			all.mismatches += a.mismatches
			all.txns += a.txns
			all.tfs += a.tfs
		}
		for fw, a := range versions {
			for _, m := range []struct {
				metric   string
				x, n     int64
				xa, na   int64
				affected int
			}{
				{MetricAmountMismatch, a.mismatches, a.sales, all.mismatches, all.sales, a.mismatchTerms},
				{MetricTerminalFailures, a.tfs, a.txns, all.tfs, all.txns, a.failTerms},
			} {
				x2, n2 := m.xa-m.x, m.na-m.n
				if m.n < int64(e.cfg.SuspectMinTxns) || n2 <= 0 || m.affected < e.cfg.SuspectMinTerminals {
					continue
				}
				r1, r2 := float64(m.x)/float64(m.n), float64(x2)/float64(n2)
				if r1 <= r2 {
					continue
				}
				f := FirmwareFinding{Model: model, Firmware: fw, Metric: m.metric, Terminals: a.terminals,
					Affected: m.affected, Count: m.x, Total: m.n, Rate: round4(r1),
					RestCount: x2, RestTotal: n2, RestRate: round4(r2)}
				f.Test, f.Z, f.PValue = compareProportions(m.x, m.n, x2, n2)
				if f.PValue < e.cfg.SuspectAlpha {
					f.Z = math.Round(f.Z*100) / 100
					out = append(out, f)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PValue != out[j].PValue {
			return out[i].PValue < out[j].PValue
		}
		if out[i].Model != out[j].Model {
			return out[i].Model < out[j].Model
		}
		if out[i].Firmware != out[j].Firmware {
			return out[i].Firmware < out[j].Firmware
		}
		return out[i].Metric < out[j].Metric
	})
	return out
}

func round4(v float64) float64 { return math.Round(v*10000) / 10000 }

// compareProportions tests H1: p1 > p2 for x1 of n1 against x2 of n2. The
// pooled z-test is accurate when every expected cell count is at least 5;
// below that its normal approximation overstates significance, so Fisher's
// exact test is used instead.
func compareProportions(x1, n1, x2, n2 int64) (test string, z, p float64) {
	pooled := float64(x1+x2) / float64(n1+n2)
	if minExpected(pooled, n1, n2) >= 5 {
		se := math.Sqrt(pooled * (1 - pooled) * (1/float64(n1) + 1/float64(n2)))
		if se == 0 {
			return "z", 0, 1
		}
		z = (float64(x1)/float64(n1) - float64(x2)/float64(n2)) / se
		return "z", z, 0.5 * math.Erfc(z/math.Sqrt2)
	}
	return "fisher", 0, fisherGreater(x1, n1, x2, n2)
}

func minExpected(pooled float64, n1, n2 int64) float64 {
	return min(pooled*float64(n1), pooled*float64(n2), (1-pooled)*float64(n1), (1-pooled)*float64(n2))
}

// fisherGreater is the one-sided p-value of Fisher's exact test: the
// probability, with the margins fixed, of x1 or more events in the first group.
func fisherGreater(x1, n1, x2, n2 int64) float64 {
	total, events := n1+n2, x1+x2
	lchoose := func(n, k int64) float64 {
		a, _ := math.Lgamma(float64(n + 1))
		b, _ := math.Lgamma(float64(k + 1))
		c, _ := math.Lgamma(float64(n - k + 1))
		return a - b - c
	}
	denom := lchoose(total, n1)
	p := 0.0
	for k := x1; k <= min(n1, events); k++ {
		if events-k > total-n1 {
			continue
		}
		p += math.Exp(lchoose(events, k) + lchoose(total-events, n1-k) - denom)
	}
	return min(p, 1)
}
