package health_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/posfleet/posfleet/health"
)

// BenchmarkObserveThresholds is BenchmarkObserve (feed off) with
// overrides: none, every tenant's, and every tenant's plus the traffic's
// model (A920): the message path's lookup of a terminal's thresholds
// (tenant, then model) against the compiled table.
func BenchmarkObserveThresholds(b *testing.B) {
	for _, c := range []struct {
		name  string
		model bool
		set   bool
	}{{"overrides=none", false, false}, {"overrides=tenant", false, true}, {"overrides=model", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			e := health.New(health.Config{})
			if c.set {
				d := &health.Thresholds{Tenants: map[string]health.TenantThresholds{}}
				for i := range 10 { // newTraffic's tenants
					tn := fmt.Sprintf("tenant%d", i)
					tt := health.TenantThresholds{Values: map[string]float64{"txn_failures.rate": 0.25, "battery.low_pct": 20},
						Models: map[string]map[string]float64{"B50": {"offline.after": 600}}}
					if c.model {
						tt.Models["A920"] = map[string]float64{"weak_network.signal_dbm": -100}
					}
					d.Tenants[tn] = tt
				}
				if err := e.SetThresholds(d, 1); err != nil {
					b.Fatal(err)
				}
			}
			var id atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				g := int(id.Add(1))
				tr := newTraffic(10, 10_000, g*10_000)
				i, k := 0, 0
				for pb.Next() {
					e.Observe(tr.message(i, k))
					if i++; i == len(tr.refs) {
						i, k = 0, k+1
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
