package health_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/posfleet/posfleet/health"
)

// simFleet is a seeded day of a 300-terminal fleet of three models, each
// with four versions in the field (the target on most terminals), where
// healthy terminals fail by chance (0.3% of transactions), one terminal in
// 20 is a bad unit or on a bad line (6% failures), one in 30 has a careless
// cashier (0.5% of sales keyed wrong), and, when feeBug, a new version on
// exactly 5 terminals adds a fee to every sale.
func simFleet(rng *rand.Rand, feeBug bool) []health.FirmwareCounts {
	versions := []struct {
		fw    string
		share float64
	}{{"2.4.1", 0.60}, {"2.4.0", 0.25}, {"2.3.9", 0.10}, {"2.5.0-beta", 0.05}}
	binom := func(n int64, p float64) int64 {
		var x int64
		for range n {
			if rng.Float64() < p {
				x++
			}
		}
		return x
	}
	var out []health.FirmwareCounts
	for m, model := range []string{"A920", "V200c", "Move5000"} {
		for i := range 100 {
			fw := versions[len(versions)-1].fw
			u := rng.Float64()
			for _, v := range versions {
				if u < v.share {
					fw = v.fw
					break
				}
				u -= v.share
			}
			if feeBug && m == 0 && i < 5 {
				fw = "2.5.0"
			}
			txns := 50 + rng.Int64N(350)
			sales := txns * 9 / 10
			failP, cashierP := 0.003, 0.0
			if rng.IntN(20) == 0 {
				failP = 0.06
			}
			if rng.IntN(30) == 0 {
				cashierP = 0.005
			}
			c := health.FirmwareCounts{Model: model, Firmware: fw, Txns: txns, Sales: sales,
				TermFailures: binom(txns, failP), Mismatches: binom(sales, cashierP)}
			if fw == "2.5.0" {
				c.Mismatches = sales // the fee: every approved sale charged more than entered
			}
			out = append(out, c)
		}
	}
	return out
}

// simFleets is how many seeded fleets each verdict test judges.
const simFleets = 1000

// The documented false-suspect rate (health/doc.go): at most 1 fleet in 100
// with no bad version lists one. The target version of a healthy fleet is
// never listed.
func TestSuspectFirmwareFalseRate(t *testing.T) {
	rules := health.DefaultConfig().SuspectRules()
	rng := rand.New(rand.NewPCG(1, 2))
	falseFleets, targetListed := 0, 0
	for range simFleets {
		got := health.JudgeFirmware(simFleet(rng, false), rules)
		if len(got) > 0 {
			falseFleets++
		}
		for _, f := range got {
			if f.Firmware == "2.4.1" {
				targetListed++
			}
		}
	}
	t.Logf("%d of %d healthy fleets listed a suspect version (%.2f%%); the target was listed %d times",
		falseFleets, simFleets, 100*float64(falseFleets)/simFleets, targetListed)
	if falseFleets*100 > simFleets {
		t.Errorf("%d of %d healthy fleets listed a suspect version: over the documented 1%%", falseFleets, simFleets)
	}
	if targetListed > 0 {
		t.Errorf("the target version of a healthy fleet was listed %d times", targetListed)
	}
}

// A version carrying a fee bug on 5 terminals among 300 is found every
// time, as the only amount-mismatch finding.
func TestSuspectFirmwareFindsFeeBug(t *testing.T) {
	rules := health.DefaultConfig().SuspectRules()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range simFleets {
		got := health.JudgeFirmware(simFleet(rng, true), rules)
		found := false
		for _, f := range got {
			if f.Firmware == "2.5.0" && f.Model == "A920" && f.Metric == health.MetricAmountMismatch {
				found = true
			} else if f.Metric == health.MetricAmountMismatch {
				t.Errorf("fleet %d: a healthy version listed: %+v", i, f)
			}
		}
		if !found {
			t.Fatalf("fleet %d: the fee bug was not found: %s", i, fmt.Sprint(got))
		}
	}
}
