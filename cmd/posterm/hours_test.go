package main

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/server/servertest"
)

// TestPoisson: the draws' mean is lambda, small and large.
func TestPoisson(t *testing.T) {
	for _, lambda := range []float64{0, 0.3, 4, 50} {
		const n = 20000
		sum := 0
		for range n {
			sum += poisson(lambda)
		}
		if mean := float64(sum) / n; math.Abs(mean-lambda) > 0.05*lambda+0.02 {
			t.Errorf("poisson(%v): mean %.3f", lambda, mean)
		}
	}
}

// TestAllDayShops: the share of merchants that trade round the clock is
// about AllDay.Share, their terminals agree, and their closed hours sell
// at Night.
func TestAllDayShops(t *testing.T) {
	scen, err := LoadScenarios("")
	if err != nil {
		t.Fatal(err)
	}
	b, err := scen.behavior()
	if err != nil {
		t.Fatal(err)
	}
	if b.AllDay == nil || b.Curve[3] != 0 {
		t.Fatalf("the field baseline: all_day %+v, activity at 03:00 %v", b.AllDay, b.Curve[3])
	}
	allDay := 0
	const n = 2000
	for i := range n {
		ft := FleetTerminal{TerminalRef: posfleet.TerminalRef{Tenant: "demo", Terminal: "T-1"}, Merchant: "M-" + string(rune('a'+i%26)) + time.Duration(i).String()}
		c := b.hours(ft)
		other := ft
		other.Terminal = "T-2"
		if c2 := b.hours(other); c2[3] != c[3] {
			t.Fatalf("two terminals of merchant %s keep different hours", ft.Merchant)
		}
		if c[3] > 0 {
			allDay++
			if c[3] != b.AllDay.Night || c[12] != b.Curve[12] {
				t.Fatalf("a round-the-clock shop's hours: %v", c)
			}
		}
	}
	if share := float64(allDay) / n; math.Abs(share-b.AllDay.Share) > 0.03 {
		t.Errorf("%.3f of the merchants trade round the clock, want about %v", share, b.AllDay.Share)
	}
}

// TestHistoryFollowsTradingHours: two terminals on the real clock report
// 24 hours of history before going live, one of a shop open 08:00–20:00 in
// Asia/Shanghai, one of a shop that never closes. What reaches InfluxDB
// lies within those 24 hours, none of the first shop's in its closed
// hours, the second's in every hour; a restart on the same store
// directory does not report the history again.
func TestHistoryFollowsTradingHours(t *testing.T) {
	srv := servertest.Start(t, 0)
	scen, err := LoadScenarios("")
	if err != nil {
		t.Fatal(err)
	}
	curve := make([]float64, 24)
	for h := 8; h < 20; h++ {
		curve[h] = 1
	}
	day, _ := json.Marshal(map[string]any{"curve": curve, "txn_per_hour": 8, "models": []string{"A920"}, "all_day": nil})
	allDay, _ := json.Marshal(map[string]any{"curve": curve, "txn_per_hour": 8, "models": []string{"A920"}, "all_day": map[string]any{"share": 1, "night": 1}})
	scen.Scenarios = append(scen.Scenarios[:1], Scenario{Name: "day_shop", Behavior: day}, Scenario{Name: "all_day_shop", Behavior: allDay})
	fleet, assigned := testFleet(t, srv, "day_shop", "all_day_shop")
	zone, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func() *Simulation {
		sim, err := NewSimulation(SimOptions{
			Broker: srv.URL(), Fleet: fleet, Scenarios: assigned, File: scen,
			Heartbeat: time.Second, TimeScale: 1, RealClock: true, Zone: zone,
			History: 24 * time.Hour, HistoryRate: 1,
			StoreDir: dir, Ramp: 100, ReconnectMax: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		if err := sim.Run(ctx); err != nil {
			t.Fatal(err)
		}
		return sim
	}
	start := time.Now()
	sim := run()
	acked := map[string]uint64{}
	for _, st := range sim.terms {
		acked[st.ft.Terminal] = st.client.Stats().Acked.Txn
	}
	bg := context.Background()
	hours := map[string]map[int]int{}
	for _, f := range fleet {
		servertest.Eventually(t, 20*time.Second, f.Terminal+"'s history in InfluxDB", func() bool {
			return uint64(len(srv.Points(bg, "txn", f.TerminalRef))) >= acked[f.Terminal]
		})
		hours[f.Terminal] = map[int]int{}
		for _, p := range srv.Points(bg, "txn", f.TerminalRef) {
			ts, err := time.Parse(time.RFC3339Nano, p["_time"])
			if err != nil {
				t.Fatal(err)
			}
			if ts.Before(start.Add(-24*time.Hour-time.Second)) || ts.After(time.Now()) {
				t.Errorf("%s: a transaction at %v, outside the history and the run", f.Terminal, ts)
			}
			hours[f.Terminal][ts.In(zone).Hour()]++
		}
	}
	t.Logf("transactions per local hour: day shop %v, all-day shop %v", hours["T-00001"], hours["T-00002"])
	for h, n := range hours["T-00001"] {
		if curve[h] == 0 && n > 0 {
			t.Errorf("the day shop sold %d times at %02d:00, when it is closed", n, h)
		}
	}
	if len(hours["T-00002"]) < 20 {
		t.Errorf("the all-day shop sold in %d of 24 hours, want nearly all", len(hours["T-00002"]))
	}
	if n := acked["T-00001"]; n < 60 {
		t.Errorf("the day shop's history has %d transactions, want about 96", n)
	}

	sim = run()
	for _, st := range sim.terms {
		if n := st.client.Stats().Reported.Txn; n > 50 {
			t.Errorf("%s reported %d transactions after a restart: the history again?", st.ft.Terminal, n)
		}
	}
}
