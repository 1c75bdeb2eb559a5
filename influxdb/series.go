package influxdb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
)

// Point, Txn and TerminalSeries are the root-owned values the store
// returns (posfleet.SeriesPoint, TxnSummary, TerminalSeries).
type (
	Point          = posfleet.SeriesPoint
	Txn            = posfleet.TxnSummary
	TerminalSeries = posfleet.TerminalSeries
)

// MaxRecent bounds TerminalSeries.Recent.
const MaxRecent = 20

// maxTxnRows bounds the transactions one terminal's charts read: a
// terminal selling every 30 s for a week stays under it.
const maxTxnRows = 50_000

// steps returns the heartbeat window and the transaction bucket for a span:
// about 150 heartbeat points and at most 168 bars whatever the span.
func steps(span time.Duration) (step, bucket time.Duration) {
	if span <= 24*time.Hour {
		return 10 * time.Minute, time.Hour
	}
	return time.Hour, 6 * time.Hour
}

// fluxString quotes s as a Flux string literal.
func fluxString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`)
	return `"` + r.Replace(s) + `"`
}

// TerminalSeries reads one terminal's heartbeat series (mean per window),
// transactions per bucket by result, amount mismatches and the latest
// transactions over the span ending at end.
func (s *Store) TerminalSeries(ctx context.Context, tenant, terminal string, span time.Duration, end time.Time) (TerminalSeries, error) {
	step, bucket := steps(span)
	// Buckets start on whole hours (6 h for a week) so that bars line up
	// with the clock; step divides bucket.
	end = end.UTC().Truncate(bucket).Add(bucket)
	ts := TerminalSeries{Start: end.Add(-span), End: end, Step: step, Bucket: bucket, TxnsByResult: map[string][]Point{}}
	rng := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r.tenant == %s and r.terminal == %s)`,
		fluxString(s.Bucket()), ts.Start.Format(time.RFC3339), end.Format(time.RFC3339), fluxString(tenant), fluxString(terminal))

	hb, err := s.Query(ctx, rng+fmt.Sprintf(`
  |> filter(fn: (r) => r._measurement == "heartbeat" and (r._field == "battery_pct" or r._field == "signal_dbm" or r._field == "host_rtt_ms"))
  |> group(columns: ["_field"])
  |> aggregateWindow(every: %s, fn: mean, createEmpty: false)
  |> sort(columns: ["_time"])`, step))
	if err != nil {
		return ts, fmt.Errorf("heartbeat series of %s/%s: %w", tenant, terminal, err)
	}
	for _, r := range hb {
		at, ok1 := r["_time"].(time.Time)
		v, ok2 := number(r["_value"])
		if !ok1 || !ok2 {
			continue
		}
		// aggregateWindow stamps a window with its end; the chart wants its start.
		p := Point{At: at.Add(-step).UTC(), Value: v}
		switch r["_field"] {
		case "battery_pct":
			ts.Battery = append(ts.Battery, p)
		case "signal_dbm":
			ts.Signal = append(ts.Signal, p)
		case "host_rtt_ms":
			ts.HostRTT = append(ts.HostRTT, p)
		}
	}

	rows, err := s.Query(ctx, rng+fmt.Sprintf(`
  |> filter(fn: (r) => r._measurement == "txn" and (r._field == "id" or r._field == "rc" or r._field == "currency" or r._field == "amount_entered" or r._field == "amount_charged"))
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> sort(columns: ["_time"], desc: true)
  |> limit(n: %d)`, maxTxnRows))
	if err != nil {
		return ts, fmt.Errorf("transactions of %s/%s: %w", tenant, terminal, err)
	}
	n := int(span / bucket)
	counts := map[string][]float64{}
	for _, res := range []string{"approved", "declined", "error", "timeout", "cancelled"} {
		counts[res] = make([]float64, n)
	}
	mism := make([]float64, n)
	for _, r := range rows {
		t := txnOf(r)
		i := int(t.At.Sub(ts.Start) / bucket)
		if i < 0 || i >= n {
			continue
		}
		if counts[t.Result] == nil {
			counts[t.Result] = make([]float64, n)
		}
		counts[t.Result][i]++
		if t.Result == "approved" && t.Mismatch() {
			mism[i]++
		}
		if len(ts.Recent) < MaxRecent {
			ts.Recent = append(ts.Recent, t)
		}
	}
	pts := func(v []float64) []Point {
		out := make([]Point, len(v))
		for i := range v {
			out[i] = Point{At: ts.Start.Add(time.Duration(i) * bucket), Value: v[i]}
		}
		return out
	}
	for res, v := range counts {
		ts.TxnsByResult[res] = pts(v)
	}
	ts.Mismatches = pts(mism)
	return ts, nil
}

// TransactionCounts counts a tenant's transactions ("" for every tenant)
// by result over the span ending at end.
//
// The range is written to the nanosecond: cut to the second, it would leave
// out the transactions of the current second (a point's time is the
// terminal's ts plus seq nanoseconds).
func (s *Store) TransactionCounts(ctx context.Context, tenant string, span time.Duration, end time.Time) (map[string]int64, error) {
	filter := `r._measurement == "txn" and r._field == "seq"`
	if tenant != "" {
		filter += " and r.tenant == " + fluxString(tenant)
	}
	rows, err := s.Query(ctx, fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => %s)
  |> group(columns: ["result"])
  |> count()`, fluxString(s.Bucket()), end.Add(-span).UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano), filter))
	if err != nil {
		return nil, fmt.Errorf("transaction counts of %q: %w", tenant, err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		res, _ := r["result"].(string)
		if v, ok := number(r["_value"]); ok {
			out[res] += int64(v)
		}
	}
	return out, nil
}

func txnOf(r map[string]any) Txn {
	str := func(k string) string { v, _ := r[k].(string); return v }
	i64 := func(k string) *int64 {
		if v, ok := number(r[k]); ok {
			n := int64(v)
			return &n
		}
		return nil
	}
	t := Txn{ID: str("id"), Type: str("type"), Result: str("result"), Entry: str("entry"), RC: str("rc"), Currency: str("currency"),
		AmountEntered: i64("amount_entered"), AmountCharged: i64("amount_charged")}
	t.At, _ = r["_time"].(time.Time)
	t.At = t.At.UTC()
	return t
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}
