package health

import (
	"math/rand/v2"
	"testing"
)

// flaggedDay simulates one terminal's day of n transactions, each failing
// with probability p, judged after every transaction over the last
// TxnWindow as the engine does; it reports whether txn_failures was raised
// at any point, and after how many transactions.
func flaggedDay(rng *rand.Rand, c Config, n int, p float64) (bool, int) {
	ring := make([]bool, c.TxnWindow)
	failed := 0
	for i := range n {
		slot := i % c.TxnWindow
		if i >= c.TxnWindow && ring[slot] {
			failed--
		}
		ring[slot] = rng.Float64() < p
		if ring[slot] {
			failed++
		}
		total := min(i+1, c.TxnWindow)
		if total >= c.TxnMinimum && float64(failed)/float64(total) >= c.TxnFailureRate && failed >= c.txnCritical[total] {
			return true, i + 1
		}
	}
	return false, 0
}

// TestTxnFailuresFalseFlagRate measures the rates health/doc.go states:
// terminal-days of 300 transactions flagged for a healthy terminal (0.7% of
// payments failing by chance, the simulator's baseline) and for a weak link
// (6% timeouts), and how soon a failing chip reader (a third of its
// payments) is flagged.
func TestTxnFailuresFalseFlagRate(t *testing.T) {
	c := DefaultConfig().withDefaults()
	old := c
	old.TxnAlpha = 1
	old = old.withDefaults()
	rng := rand.New(rand.NewPCG(5, 6))
	const days = 20000
	rate := func(c Config, p float64) float64 {
		n := 0
		for range days {
			if ok, _ := flaggedDay(rng, c, 300, p); ok {
				n++
			}
		}
		return float64(n) / days
	}
	healthy, weak := rate(c, 0.007), rate(c, 0.06)
	oldHealthy, oldWeak := rate(old, 0.007), rate(old, 0.06)
	within25, within50 := 0, 0
	for range days {
		if ok, at := flaggedDay(rng, c, 300, 1.0/3); ok && at <= 25 {
			within25++
		} else if ok && at <= 50 {
			within50++
		}
	}
	t.Logf("terminal-days flagged: healthy %.4f%% (share alone: %.3f%%), weak link %.3f%% (share alone: %.2f%%); failing chip reader flagged within 25 transactions %.1f%%, within 50 %.1f%%",
		100*healthy, 100*oldHealthy, 100*weak, 100*oldWeak, 100*float64(within25)/days, 100*float64(within25+within50)/days)
	if healthy > 0.0001 {
		t.Errorf("healthy terminal-days flagged: %.4f%%, documented at most 0.01%%", 100*healthy)
	}
	if weak > 0.01 {
		t.Errorf("weak-link terminal-days flagged: %.3f%%, documented at most 1%%", 100*weak)
	}
	if float64(within25+within50)/days < 0.95 {
		t.Errorf("a failing chip reader is flagged within 50 transactions only %.1f%% of the time", 100*float64(within25+within50)/days)
	}
}
