package health

import (
	"cmp"
	"math"
	"slices"
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
	// Test is "mann_whitney": a one-sided rank test of the version's
	// terminals' rates against the rest's (judgeVersion), with its Z and
	// PValue.
	Test   string  `json:"test"`
	Z      float64 `json:"z,omitempty"`
	PValue float64 `json:"p_value"`
	// QValue is PValue adjusted for every version, model and metric
	// tested at once (Benjamini–Hochberg).
	QValue float64 `json:"q_value"`
	// RestTerminals run the model's other versions. Compared and
	// RestCompared of them had enough transactions to be compared; their
	// median rates are MedianRate and RestMedianRate, and Above is the
	// chance that one of the version's terminals is worse than one of the
	// rest's (0.5: no difference; 1: every one).
	RestTerminals  int     `json:"rest_terminals"`
	Compared       int     `json:"compared"`
	RestCompared   int     `json:"rest_compared"`
	MedianRate     float64 `json:"median_rate"`
	RestMedianRate float64 `json:"rest_median_rate"`
	Above          float64 `json:"above"`
}

// FirmwareCounts are one terminal's counts since it got its current
// firmware: what SuspectFirmware judges a version by.
type FirmwareCounts struct {
	Model, Firmware                       string
	Txns, Sales, Mismatches, TermFailures int64
}

// SuspectRules are the rules of a suspect-firmware verdict (Config's
// Suspect* fields; doc.go explains them and their false-suspect rate).
type SuspectRules struct {
	MinTxns, MinTerminals int
	// MinTerminalVolume is how many transactions (sales for mismatches) a
	// terminal needs to count toward MinTerminals.
	MinTerminalVolume int64
	// MinRatio and MinDiff: the version's median terminal rate must be at
	// least MinRatio times the rest's and MinDiff above it.
	MinRatio, MinDiff float64
	// FDR is the Benjamini–Hochberg false discovery rate over every
	// version, model and metric tested together.
	FDR float64
}

// SuspectRules are c's suspect-firmware rules.
func (c Config) SuspectRules() SuspectRules {
	return SuspectRules{MinTxns: c.SuspectMinTxns, MinTerminals: c.SuspectMinTerminals, MinTerminalVolume: c.SuspectMinTerminalVolume,
		MinRatio: c.SuspectMinRatio, MinDiff: c.SuspectMinDiff, FDR: c.SuspectAlpha}
}

// SuspectFirmware compares every firmware version of each model with the
// rest of that model's fleet in tenant ("" for every tenant) and returns the
// versions whose rates are clearly higher, most significant first. The
// counts are per terminal since it got its current firmware.
func (e *Engine) SuspectFirmware(tenant string) []FirmwareFinding {
	var terms []FirmwareCounts
	e.each(tenant, func(s *termState) {
		if s.Model == "" || s.Firmware == "" {
			return
		}
		terms = append(terms, FirmwareCounts{Model: s.Model, Firmware: s.Firmware, Txns: int64(s.FW.Txns), Sales: int64(s.FW.Sales),
			Mismatches: int64(s.FW.Mismatches), TermFailures: int64(s.FW.TerminalFailures)})
	})
	// A tenant's own rules; every tenant's fleet at once is judged by the defaults.
	return JudgeFirmware(terms, e.thr.Load().lookup(tenant, "").SuspectRules())
}

// termRate is one terminal's events of a metric out of its volume.
type termRate struct{ x, n int64 }

func (t termRate) rate() float64 {
	if t.n == 0 {
		return 0
	}
	return float64(t.x) / float64(t.n)
}

// JudgeFirmware is SuspectFirmware over given terminals' counts.
func JudgeFirmware(terms []FirmwareCounts, r SuspectRules) []FirmwareFinding {
	type key struct{ model, fw string }
	metrics := []string{MetricAmountMismatch, MetricTerminalFailures}
	per := map[key][2][]termRate{}
	models := map[string][]string{}
	for _, t := range terms {
		k := key{t.Model, t.Firmware}
		v, seen := per[k]
		if !seen {
			models[t.Model] = append(models[t.Model], t.Firmware)
		}
		v[0] = append(v[0], termRate{t.Mismatches, t.Sales})
		v[1] = append(v[1], termRate{t.TermFailures, t.Txns})
		per[k] = v
	}
	var cands []FirmwareFinding
	for model, versions := range models {
		for mi, metric := range metrics {
			for _, fw := range versions {
				ts := per[key{model, fw}][mi]
				var rest []termRate
				for _, other := range versions {
					if other != fw {
						rest = append(rest, per[key{model, other}][mi]...)
					}
				}
				f, ok := judgeVersion(ts, rest, r)
				if !ok {
					continue
				}
				f.Model, f.Firmware, f.Metric = model, fw, metric
				cands = append(cands, f)
			}
		}
	}
	out := benjaminiHochberg(cands, r.FDR)
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

// judgeVersion tests one version's terminals (ts) of a metric against the
// rest of its model's terminals; false when the version lacks volume,
// terminals or an effect large enough to matter.
//
// The test is on terminals, not on pooled transactions: each terminal with
// at least MinTerminalVolume transactions is one observation (its rate), and
// a one-sided Mann–Whitney rank test asks whether the version's terminals
// rank above the rest's. Terminals differ among themselves (a worn reader, a
// shop on a bad line, a busy till) far more than one shared rate allows, and
// a pooled test takes a chance cluster of such terminals on one version for a
// bug; ranks do not, since under "the version does not matter" every
// assignment of terminals to versions is as likely as any other.
func judgeVersion(ts, rest []termRate, r SuspectRules) (FirmwareFinding, bool) {
	var x, n, x2, n2 int64
	affected := 0
	var a, b []float64
	for _, t := range ts {
		x, n = x+t.x, n+t.n
		if t.x > 0 {
			affected++
		}
		if t.n >= r.MinTerminalVolume {
			a = append(a, t.rate())
		}
	}
	for _, t := range rest {
		x2, n2 = x2+t.x, n2+t.n
		if t.n >= r.MinTerminalVolume {
			b = append(b, t.rate())
		}
	}
	if n < int64(r.MinTxns) || n2 <= 0 || affected < r.MinTerminals || len(a) < r.MinTerminals || len(b) < 2 {
		return FirmwareFinding{}, false
	}
	// The effect: the version's typical terminal against the rest's.
	ma, mb := medianRate(a), medianRate(b)
	if ma < r.MinRatio*mb || ma-mb < r.MinDiff {
		return FirmwareFinding{}, false
	}
	f := FirmwareFinding{Terminals: len(ts), RestTerminals: len(rest), Affected: affected, Count: x, Total: n,
		Rate: round4(float64(x) / float64(n)), RestCount: x2, RestTotal: n2, RestRate: round4(float64(x2) / float64(n2)),
		Compared: len(a), RestCompared: len(b), MedianRate: round4(ma), RestMedianRate: round4(mb), Test: "mann_whitney"}
	var above float64
	f.Z, f.PValue, above = mannWhitney(a, b)
	f.Z, f.Above = math.Round(f.Z*100)/100, round4(above)
	return f, true
}

func medianRate(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// mannWhitney is the one-sided Mann–Whitney U test of "a ranks above b":
// its z (normal approximation with the corrections for ties and for
// continuity), p-value, and U/(len(a)·len(b)), the chance that a member of
// a is worse than one of b (ties count half). With few members in a, the
// rank sum has lighter tails than the normal, so the p-value errs on the
// side of "not suspect".
func mannWhitney(a, b []float64) (z, p, above float64) {
	type obs struct {
		v   float64
		inA bool
	}
	all := make([]obs, 0, len(a)+len(b))
	for _, v := range a {
		all = append(all, obs{v, true})
	}
	for _, v := range b {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(x, y obs) int { return cmp.Compare(x.v, y.v) })
	n := float64(len(all))
	ties, ra := 0.0, 0.0
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mid := float64(i+j+1) / 2 // the mean of ranks i+1..j
		for k := i; k < j; k++ {
			if all[k].inA {
				ra += mid
			}
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	n1, n2 := float64(len(a)), float64(len(b))
	u := ra - n1*(n1+1)/2
	above = u / (n1 * n2)
	variance := n1 * n2 / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance <= 0 {
		return 0, 1, above
	}
	z = (u - n1*n2/2 - 0.5) / math.Sqrt(variance)
	return z, 0.5 * math.Erfc(z/math.Sqrt2), above
}

// benjaminiHochberg keeps the findings whose p-values pass the
// Benjamini–Hochberg step-up procedure at false discovery rate q over all of
// them, and sets each one's adjusted p-value (QValue).
func benjaminiHochberg(fs []FirmwareFinding, q float64) []FirmwareFinding {
	m := len(fs)
	if m == 0 {
		return []FirmwareFinding{}
	}
	idx := make([]int, m)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return fs[idx[a]].PValue < fs[idx[b]].PValue })
	k := -1
	for rank, i := range idx {
		if fs[i].PValue <= q*float64(rank+1)/float64(m) {
			k = rank
		}
	}
	// Adjusted p-values: min over later ranks of p·m/rank, capped at 1.
	adj := 1.0
	qv := make([]float64, m)
	for rank := m - 1; rank >= 0; rank-- {
		i := idx[rank]
		adj = min(adj, fs[i].PValue*float64(m)/float64(rank+1))
		qv[i] = adj
	}
	out := []FirmwareFinding{}
	for rank := 0; rank <= k; rank++ {
		f := fs[idx[rank]]
		f.QValue = qv[idx[rank]]
		out = append(out, f)
	}
	return out
}

func round4(v float64) float64 { return math.Round(v*10000) / 10000 }
