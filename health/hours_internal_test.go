package health

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
)

// TestSilentWithLearnedHistory: a round-the-clock shop with six weeks of
// history learned (LearnHistory) that has not sold for five hours while
// heard every hour is silent whatever the hour and weekday; the same shop
// still selling is not. The hours of the oldest week seen only partly
// count as the weeks they were seen in (a shop is not "unusual" in the
// hour before the history's first).
func TestSilentWithLearnedHistory(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 3))
	base := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	for i := range 300 {
		now := base.Add(time.Duration(rng.Int64N(int64(7 * 24 * time.Hour))))
		for _, quiet := range []time.Duration{0, 5 * time.Hour} {
			e := New(Config{HeartbeatInterval: time.Second, Now: func() time.Time { return now }})
			ref := posfleet.TerminalRef{Tenant: "a", Terminal: "b"}
			if e.LearnHistory(ref, []time.Time{now}, nil) {
				t.Fatal("history learned for a terminal never heard from")
			}
			e.Observe(&posfleet.Message{Terminal: ref, Received: now, Heartbeat: &posfleet.Heartbeat{}})
			var sales, heard []time.Time
			for h := now.Add(-6 * 7 * 24 * time.Hour).Truncate(time.Hour); h.Before(now); h = h.Add(time.Hour) {
				at := h.Add(time.Duration(rng.Int64N(int64(time.Hour))))
				if at.After(now) {
					at = now
				}
				heard = append(heard, at)
				if at.Before(now.Add(-quiet)) {
					sales = append(sales, at)
				}
			}
			e.LearnHistory(ref, sales, heard)
			sh := e.shard(ref)
			if v := e.decideSilent(sh.m[ref], ms(now), e.resolve(sh.m[ref])); v.on != (quiet > 0) {
				n, chance, _ := e.silentRun(sh.m[ref], ms(now), e.resolve(sh.m[ref]), false, false)
				t.Fatalf("run %d at %v, quiet %v: silent %t (usual hours missed %d, chance %g)", i, now, quiet, v.on, n, chance)
			}
		}
	}
}
