package campaign_test

import (
	"context"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store/storetest"
)

// BenchmarkCampaign20k: creating a campaign over 20,000 terminals (one
// wave, all queued) and one runner step over it (20,000 terminals looked
// at, MaxInFlight sent), on SQLite.
func BenchmarkCampaign20k(b *testing.B) {
	const n = 20_000
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		db := storetest.SQLite(b)
		f := newFleet(n, "A920", "2.4.1")
		r := newRig(nil, db, f)
		sp := spec("2.5.2", posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)})
		sp.MaxInFlight = 100
		b.StartTimer()
		t0 := time.Now()
		if _, err := r.st.CreateCampaign(ctx, tenant, sp, "ana"); err != nil {
			b.Fatal(err)
		}
		created := time.Since(t0)
		t1 := time.Now()
		if err := r.run.Step(ctx, f.clock()); err != nil {
			b.Fatal(err)
		}
		stepped := time.Since(t1)
		t2 := time.Now()
		if err := r.run.Step(ctx, f.clock()); err != nil {
			b.Fatal(err)
		}
		again := time.Since(t2)
		b.ReportMetric(created.Seconds()*1000, "create-ms")
		b.ReportMetric(stepped.Seconds()*1000, "first-step-ms")
		b.ReportMetric(again.Seconds()*1000, "idle-step-ms")
		if f.sentCount() != 100 {
			b.Fatalf("%d sent", f.sentCount())
		}
	}
}
