package healthview_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// BenchmarkResync measures a full publish (taking the lease) of 100,000
// terminals, a tenth of them with a flag, per engine, with multi-row
// INSERTs and with one row per statement. Run it with -benchtime=1x:
//
//	go test ./healthview -run '^$' -bench Resync -benchtime 1x
func BenchmarkResync(b *testing.B) {
	const terminals = 100_000
	c := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
	e := health.New(health.Config{Now: c.now})
	for i := range terminals {
		r := posfleet.TerminalRef{Tenant: fmt.Sprintf("t%d", i%10), Terminal: fmt.Sprintf("T%07d", i)}
		m := inv()
		m.Terminal, m.Received, m.Channel = r, c.t, posfleet.ChannelFirmware
		e.Observe(&m)
		if i%10 == 0 {
			m := fault(posfleet.FaultRaised)
			m.Terminal, m.Received, m.Channel = r, c.t, posfleet.ChannelFault
			e.Observe(&m)
		}
	}
	for _, engine := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		for _, rows := range []int{1, 200} {
			b.Run(fmt.Sprintf("%s/rows=%d", engine.name, rows), func(b *testing.B) {
				defer healthview.SetRowsPerStatement(rows)()
				for b.Loop() {
					db := engine.open(b)
					p := healthview.NewPublisher(db, e, healthview.PublisherOptions{Holder: "bench", Now: c.now})
					start := time.Now()
					if err := p.Step(context.Background(), c.now()); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(time.Since(start).Seconds(), "s/resync")
					b.ReportMetric(float64(terminals)/time.Since(start).Seconds(), "terminals/s")
					var n int
					db.QueryRow(`SELECT COUNT(*) FROM terminal_flags`).Scan(&n)
					if n != terminals/10 {
						b.Fatalf("%d flags", n)
					}
				}
			})
		}
	}
}
