package alarm

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// BenchmarkApply measures what the alarms add to one publish of the
// health view: a batch of 1,000 terminals (the publisher's BatchSize), one
// flag each, first raised (1,000 new alarms and notifications), then
// published again unchanged (the refresh round: reconciling only).
func BenchmarkApply(b *testing.B) {
	for _, engine := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		b.Run(engine.name, func(b *testing.B) {
			db := engine.open(b)
			ctx := context.Background()
			db.ExecContext(ctx, `INSERT INTO channels (id, tenant, name, type, url, enabled, rate_per_hour, created_ms, created_by, updated_ms)
				VALUES ('ch1', 'acme', 'ops', 'webhook', 'http://127.0.0.1:9/hook', $1, 60, 1, 'test', 1)`, true)
			db.ExecContext(ctx, `INSERT INTO notification_routes (id, tenant, name, channel_id, urgent_only, digest, resolved, enabled, created_ms, created_by, updated_ms)
				VALUES ('r1', 'acme', 'all', 'ch1', $1, $1, $2, $2, 1, 'test', 1)`, false, true)
			opts := DefaultOptions()
			now := time.Now()
			batch := func(round int, flag posfleet.FlagName) Input {
				var in Input
				for i := range 1000 {
					ref := posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%d-%04d", round, i)}
					in.Terminals = append(in.Terminals, TerminalFlags{Ref: ref, Region: "Chengdu", Flags: flagsOf(flag)})
				}
				return in
			}
			run := func(in Input) {
				if err := db.Tx(ctx, func(tx *sql.Tx) error { return Apply(ctx, tx, db.Dialect, opts, in, now) }); err != nil {
					b.Fatal(err)
				}
			}
			var raise, steady time.Duration
			for i := 0; b.Loop(); i++ {
				in := batch(i, posfleet.FlagBattery)
				t0 := time.Now()
				run(in)
				t1 := time.Now()
				run(in)
				raise, steady = raise+t1.Sub(t0), steady+time.Since(t1)
			}
			b.ReportMetric(float64(raise.Milliseconds())/float64(b.N), "ms/1000-raised")
			b.ReportMetric(float64(steady.Milliseconds())/float64(b.N), "ms/1000-unchanged")
		})
	}
}
