package journal_test

import (
	"context"
	"testing"
	"time"

	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// BenchmarkEventWriter: security events written through the writer's
// batches, per second, on each engine.
func BenchmarkEventWriter(b *testing.B) {
	for _, e := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		b.Run(e.name, func(b *testing.B) {
			db := e.open(b)
			w := journal.NewEventWriter(db, nil)
			defer w.Close()
			b.ResetTimer()
			for i := range b.N {
				w.Security(security(a, t0.Add(time.Duration(i)*time.Millisecond)))
				if i%4096 == 4095 {
					w.Flush(context.Background())
				}
			}
			w.Flush(context.Background())
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if w.Dropped() != 0 {
				b.Errorf("%d dropped", w.Dropped())
			}
		})
	}
}

// BenchmarkCommandsList: one terminal's command log (20 commands, 2 acks
// each) among 10,000 terminals' logs.
func BenchmarkCommandsList(b *testing.B) {
	for _, e := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		b.Run(e.name, func(b *testing.B) {
			db := e.open(b)
			seedCommands(b, db, 10_000, 2)
			c := journal.Commands{DB: db}
			b.ResetTimer()
			for range b.N {
				if l, err := c.Commands(context.Background(), a, 20); err != nil || len(l) != 2 {
					b.Fatal(len(l), err)
				}
			}
		})
	}
}
