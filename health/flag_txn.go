package health

import (
	"math"

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

func (e *Engine) explainAmountMismatch(s *termState, now int64) map[string]any {
	var txns []map[string]any
	for _, x := range s.Mismatch.since(e.dayAgo(now)) {
		txns = append(txns, map[string]any{"id": x.ID, "at": tm(x.At), "amount_entered": x.A,
			"amount_charged": x.B, "difference": x.B - x.A, "currency": x.Note})
	}
	return map[string]any{"count": len(txns), "window_h": int(e.cfg.EvidenceWindow.Hours()), "transactions": txns}
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

func (e *Engine) tallyTxns(s *termState, cut int64, view *incidentView) txnTally {
	var t txnTally
	window := min(e.cfg.TxnWindow, int(s.TxnCount))
	for i := 1; i <= window; i++ {
		at, cause, hostSide := unpackOutcome(s.Txn[(int(s.TxnNext)-i+TxnRing)%TxnRing])
		if at < cut {
			break // older still are older than the visit too
		}
		t.total++
		if !causeByIndex[cause].CountsAgainstTerminal() {
			continue
		}
		if hostSide && view.covers(s.Ref.Tenant, at) {
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

func (e *Engine) decideTxnFailures(s *termState, cut int64, view *incidentView) verdict {
	t := e.tallyTxns(s, cut, view)
	return verdict{on: t.total >= e.cfg.TxnMinimum && t.rate() >= e.cfg.TxnFailureRate, at: t.first}
}

func (e *Engine) explainTxnFailures(s *termState, cut int64, view *incidentView) map[string]any {
	t := e.tallyTxns(s, cut, view)
	ev := map[string]any{
		"failed": t.failed, "total": t.total, "rate": math.Round(t.rate()*1000) / 1000,
		"threshold": e.cfg.TxnFailureRate, "minimum": e.cfg.TxnMinimum,
		"by_cause": map[string]int{"network": t.byCause[cNetwork], "terminal": t.byCause[cTerminal]},
	}
	if t.excused > 0 {
		ev["excused_by_incident"] = t.excused
	}
	var txns []map[string]any
	for _, x := range s.Failures.since(max(cut, 1)) {
		if x.B == 1 && view.covers(s.Ref.Tenant, x.At) {
			continue
		}
		txns = append(txns, map[string]any{"id": x.ID, "at": tm(x.At), "result": x.Note,
			"cause": string(causeByIndex[x.A])})
	}
	ev["latest"] = txns
	return ev
}

// receipt_failures: ReceiptFailures approved payments without a printed
// receipt in the evidence window, or the printer out of paper.

func (e *Engine) paperOut(s *termState, cut int64) bool {
	return s.PaperOutAt != 0 && s.PaperOutAt >= cut
}

func (e *Engine) decideReceiptFailures(s *termState, now, cut int64) verdict {
	n, first := s.Receipt.countSince(max(e.dayAgo(now), cut))
	paperOut := e.paperOut(s, cut)
	v := verdict{on: n >= e.cfg.ReceiptFailures || paperOut, at: first}
	if paperOut && (v.at == 0 || s.PaperOutAt < v.at) {
		v.at = s.PaperOutAt
	}
	return v
}

func (e *Engine) explainReceiptFailures(s *termState, now, cut int64) map[string]any {
	from := max(e.dayAgo(now), cut)
	n, _ := s.Receipt.countSince(from)
	ev := map[string]any{"failed_receipts": n, "threshold": e.cfg.ReceiptFailures, "window_h": int(e.cfg.EvidenceWindow.Hours())}
	var txns []map[string]any
	for _, x := range s.Receipt.since(from) {
		txns = append(txns, map[string]any{"id": x.ID, "at": tm(x.At)})
	}
	if len(txns) > 0 {
		ev["transactions"] = txns
	}
	if e.paperOut(s, cut) {
		ev["paper"], ev["paper_out_at"] = posfleet.PaperOut, tm(s.PaperOutAt)
	}
	return ev
}

// refund_anomaly: a refund with response code 13 or above the original
// sale's amount, in the evidence window.

func (e *Engine) decideRefundAnomaly(s *termState, now int64) verdict {
	n, first := s.Refund.countSince(e.dayAgo(now))
	return verdict{on: n > 0, at: first}
}

func (e *Engine) explainRefundAnomaly(s *termState, now int64) map[string]any {
	var txns []map[string]any
	for _, x := range s.Refund.since(e.dayAgo(now)) {
		t := map[string]any{"id": x.ID, "at": tm(x.At), "reason": x.Note}
		if x.A >= 0 {
			t["amount"] = x.A
		}
		if x.B >= 0 {
			t["original_amount"] = x.B
		}
		txns = append(txns, t)
	}
	return map[string]any{"count": len(txns), "transactions": txns}
}
