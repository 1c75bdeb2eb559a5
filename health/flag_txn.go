package health

import (
	"math"
	"strconv"

	"github.com/posfleet/posfleet"
)

// amount_mismatch, txn_failures, receipt_failures, refund_anomaly: what the
// terminal's transactions say.

// amount_mismatch: an approved sale charged another amount than the one
// entered, in the evidence window.

func (e *Engine) decideAmountMismatch(s *termState, now int64) verdict {
	n, first := s.Mismatch.countSince(e.dayAgo(now))
	return verdict{on: n > 0, at: first}
}

func (e *Engine) explainAmountMismatch(s *termState, now int64) *posfleet.AmountMismatchEvidence {
	ev := &posfleet.AmountMismatchEvidence{WindowH: int(e.cfg.EvidenceWindow.Hours())}
	for _, x := range s.Mismatch.since(e.dayAgo(now)) {
		ev.Transactions = append(ev.Transactions, posfleet.MismatchedTxn{ID: x.ID, At: tm(x.At), AmountEntered: x.A,
			AmountCharged: x.B, Difference: x.B - x.A, Currency: x.Note})
	}
	ev.Count = s.Mismatch.total(e.dayAgo(now), now)
	return ev
}

// txn_failures: at least TxnMinimum of the last TxnWindow transactions, and
// a share of at least TxnFailureRate failed on the terminal or its network.
// Host-side failures an incident explains do not count.

// txnTally counts the last TxnWindow transactions since cut.
type txnTally struct {
	total, failed, excused int
	byCause                [nCauses]int
	first                  int64 // the oldest counted failure
}

func (e *Engine) tallyTxns(s *termState, cut int64, view *incidentView, th *resolved) txnTally {
	var t txnTally
	window := min(th.TxnWindow, int(s.TxnCount))
	for i := 1; i <= window; i++ {
		at, cause, hostSide := unpackOutcome(s.Txn[(int(s.TxnNext)-i+TxnRing)%TxnRing])
		if at < cut {
			break // older still are older than the visit too
		}
		t.total++
		if !causeByIndex[cause].CountsAgainstTerminal() {
			continue
		}
		if hostSide && view.covers(s.Ref.Tenant, s.Host, at) {
			t.excused++
			continue
		}
		t.failed++
		t.byCause[cause]++
		if t.first == 0 || at < t.first {
			t.first = at
		}
	}
	return t
}

func (t *txnTally) rate() float64 {
	if t.total == 0 {
		return 0
	}
	return float64(t.failed) / float64(t.total)
}

func (e *Engine) decideTxnFailures(s *termState, cut int64, view *incidentView, th *resolved) verdict {
	t := e.tallyTxns(s, cut, view, th)
	return verdict{on: t.total >= th.TxnMinimum && t.rate() >= th.TxnFailureRate && t.failed >= th.txnCritical[t.total], at: t.first}
}

// binomialTail is P(X ≥ k) for X ~ Binomial(n, p).
func binomialTail(k, n int, p float64) float64 {
	if k <= 0 {
		return 1
	}
	if k > n || p <= 0 {
		return 0
	}
	if p >= 1 {
		return 1
	}
	sum := 0.0
	for x := k; x <= n; x++ {
		a, _ := math.Lgamma(float64(n + 1))
		b, _ := math.Lgamma(float64(x + 1))
		c, _ := math.Lgamma(float64(n - x + 1))
		sum += math.Exp(a - b - c + float64(x)*math.Log(p) + float64(n-x)*math.Log1p(-p))
	}
	return min(sum, 1)
}

// binomialCritical is the fewest events among n for which a rate of p or
// less would show as many with probability under alpha.
func binomialCritical(n int, p, alpha float64) int {
	for k := 0; k <= n; k++ {
		if binomialTail(k, n, p) < alpha {
			return k
		}
	}
	return n + 1
}

func (e *Engine) explainTxnFailures(s *termState, cut int64, view *incidentView, th *resolved) *posfleet.TxnFailuresEvidence {
	t := e.tallyTxns(s, cut, view, th)
	ev := &posfleet.TxnFailuresEvidence{
		Failed: t.failed, Total: t.total, Rate: math.Round(t.rate()*1000) / 1000,
		Threshold: th.TxnFailureRate, Minimum: th.TxnMinimum, ChanceRate: th.TxnChanceRate,
		Chance:            roundSig(binomialTail(t.failed, t.total, th.TxnChanceRate)),
		ByCause:           posfleet.FailuresByCause{Network: t.byCause[cNetwork], Terminal: t.byCause[cTerminal]},
		ExcusedByIncident: t.excused,
		Thresholds:        th.appliedFor("txn_failures"),
	}
	for _, x := range s.Failures.since(max(cut, 1)) {
		if x.B == 1 && view.covers(s.Ref.Tenant, s.Host, x.At) {
			continue
		}
		ev.Latest = append(ev.Latest, posfleet.FailedTxn{ID: x.ID, At: tm(x.At), Result: x.Note, Cause: causeByIndex[x.A]})
	}
	return ev
}

// receipt_failures: ReceiptFailures approved payments without a printed
// receipt in the evidence window, or the printer out of paper.

func (e *Engine) paperOut(s *termState, cut int64) bool {
	return s.PaperOutAt != 0 && s.PaperOutAt >= cut
}

func (e *Engine) decideReceiptFailures(s *termState, now, cut int64, th *resolved) verdict {
	n, first := s.Receipt.countSince(max(e.dayAgo(now), cut))
	paperOut := e.paperOut(s, cut)
	v := verdict{on: n >= th.ReceiptFailures || paperOut, at: first}
	if paperOut && (v.at == 0 || s.PaperOutAt < v.at) {
		v.at = s.PaperOutAt
	}
	return v
}

func (e *Engine) explainReceiptFailures(s *termState, now, cut int64, th *resolved) *posfleet.ReceiptFailuresEvidence {
	from := max(e.dayAgo(now), cut)
	ev := &posfleet.ReceiptFailuresEvidence{FailedReceipts: s.Receipt.total(from, now), Threshold: th.ReceiptFailures,
		WindowH: int(e.cfg.EvidenceWindow.Hours()), Thresholds: th.appliedFor("receipt_failures")}
	for _, x := range s.Receipt.since(from) {
		ev.Transactions = append(ev.Transactions, posfleet.ReceiptTxn{ID: x.ID, At: tm(x.At)})
	}
	if e.paperOut(s, cut) {
		ev.Paper, ev.PaperOutAt = posfleet.PaperOut, tm(s.PaperOutAt)
	}
	return ev
}

// refund_anomaly: a refund with response code 13 or above the original
// sale's amount, in the evidence window.

func (e *Engine) decideRefundAnomaly(s *termState, now int64) verdict {
	n, first := s.Refund.countSince(e.dayAgo(now))
	return verdict{on: n > 0, at: first}
}

func (e *Engine) explainRefundAnomaly(s *termState, now int64) *posfleet.RefundAnomalyEvidence {
	ev := &posfleet.RefundAnomalyEvidence{}
	for _, x := range s.Refund.since(e.dayAgo(now)) {
		t := posfleet.RefundTxn{ID: x.ID, At: tm(x.At), Reason: x.Note}
		if x.A >= 0 {
			t.Amount = &x.A
		}
		if x.B >= 0 {
			t.OriginalAmount = &x.B
		}
		ev.Transactions = append(ev.Transactions, t)
	}
	ev.Count = s.Refund.total(e.dayAgo(now), now)
	return ev
}

// roundSig rounds v to 3 significant digits (a probability shown to people).
func roundSig(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	return r
}
