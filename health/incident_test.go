package health_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// outageFleet is 30 terminals; terminal i belongs to merchant i % merchants.
func outageFleet(e *health.Engine) []*term {
	var ts []*term
	for i := range 30 {
		ts = append(ts, newTerm(e, fmt.Sprintf("T%02d", i)))
	}
	return ts
}

func merchantOf(merchants int) func(posfleet.TerminalRef) string {
	return func(r posfleet.TerminalRef) string {
		var i int
		fmt.Sscanf(r.Terminal, "T%d", &i)
		return fmt.Sprintf("m%d", i%merchants)
	}
}

// hostFailures sends 4 timeouts and 4 "issuer unavailable" declines: 20% of
// the terminal's window are timeouts, enough for txn_failures if nothing
// explains them.
func hostFailures(x *term) {
	for range 4 {
		x.txn(timeout)
		x.txn(result(posfleet.ResultDeclined, "91"))
	}
}

func TestIncidents(t *testing.T) {
	tests := []struct {
		name         string
		merchants    int
		hit          int // terminals with host-side failures, of 30
		wantIncident bool
	}{
		{"fleet-wide host outage", 5, 30, true},
		{"20 percent of the terminals", 5, 6, true},
		{"just under 20 percent", 5, 5, false},
		{"one terminal alone", 5, 1, false},
		{"only two merchants", 2, 30, false},
		{"no merchant lookup: each terminal its own merchant", 0, 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// TxnAlpha 1: the share alone flags a terminal (the binomial
			// rule is TestFlags'); this test is about what incidents excuse.
			cfg := health.Config{TxnAlpha: 1}
			wantMerchants := tt.hit
			if tt.merchants > 0 {
				cfg.Merchant = merchantOf(tt.merchants)
				wantMerchants = min(tt.merchants, tt.hit)
			}
			bubbleWith(t, cfg, func(t *testing.T, e *health.Engine) {
				// Off the tick grid, so that no tick runs while a round is sent.
				time.Sleep(time.Second)
				fleet := outageFleet(e)
				for range 12 {
					for _, x := range fleet {
						x.txn()
					}
					time.Sleep(10 * time.Second)
				}
				outageStart := time.Now()
				for _, x := range fleet[:tt.hit] {
					hostFailures(x)
				}
				time.Sleep(10 * time.Second) // a few ticks
				incs := e.Incidents(tenant)
				flagged := len(e.Terminals(tenant, posfleet.FlagTxnFailures))
				if !tt.wantIncident {
					if len(incs) != 0 {
						t.Fatalf("incidents = %+v, want none", incs)
					}
					// Nothing explains the timeouts: the terminals are to blame.
					if flagged != tt.hit {
						t.Errorf("%d terminals with txn_failures, want %d", flagged, tt.hit)
					}
					return
				}
				if len(incs) != 1 {
					t.Fatalf("incidents = %+v, want one", incs)
				}
				inc := incs[0]
				if !inc.Open || !inc.Start.Equal(outageStart) || inc.TerminalCount != tt.hit ||
					len(inc.Terminals) != tt.hit || len(inc.Merchants) != wantMerchants || inc.Failures != int64(8*tt.hit) {
					t.Errorf("incident = %+v", inc)
				}
				if flagged != 0 {
					t.Errorf("%d terminals with txn_failures during the incident, want 0", flagged)
				}
				if fs := e.FleetSummary(tenant); len(fs.OpenIncidents) != 1 {
					t.Errorf("summary open incidents = %v", fs.OpenIncidents)
				}

				// More failures while it lasts are the bank's too.
				for _, x := range fleet[:tt.hit] {
					x.txn(timeout)
				}
				lastFailure := time.Now()
				time.Sleep(10 * time.Second)
				if n := len(e.Terminals(tenant, posfleet.FlagTxnFailures)); n != 0 {
					t.Errorf("%d terminals with txn_failures, want 0", n)
				}
				h, _ := e.Terminal(fleet[0].ref)
				if h.Txns.RecentFailed[posfleet.CauseHost] != 9 || h.Txns.RecentFailed[posfleet.CauseNetwork] != 0 {
					t.Errorf("recent failures by cause = %v, want 9 host", h.Txns.RecentFailed)
				}

				// The bank recovers; five minutes later the incident is over.
				for range 6 {
					for _, x := range fleet {
						x.txn()
					}
					time.Sleep(time.Minute)
				}
				incs = e.Incidents(tenant)
				if len(incs) != 1 || incs[0].Open || !incs[0].End.Equal(lastFailure) || incs[0].Failures != int64(9*tt.hit) {
					t.Fatalf("after recovery incidents = %+v", incs)
				}
				if n := len(e.Terminals(tenant, posfleet.FlagTxnFailures)); n != 0 {
					t.Errorf("%d terminals with txn_failures after the incident, want 0", n)
				}

				// A terminal timing out on its own after the incident is its own problem.
				hostFailures(fleet[0])
				fleet[0].txns(6, timeout)
				time.Sleep(10 * time.Second)
				if !fleet[0].has(posfleet.FlagTxnFailures) {
					t.Error("timeouts after the incident did not flag the terminal")
				}
				if len(e.Incidents(tenant)) != 1 {
					t.Errorf("incidents = %+v", e.Incidents(tenant))
				}
			})
		})
	}
}

func TestIncidentsAreTenantScoped(t *testing.T) {
	bubbleWith(t, health.Config{Merchant: merchantOf(5), TxnAlpha: 1}, func(t *testing.T, e *health.Engine) {
		fleet := outageFleet(e)
		other := newTerm(e, "B1")
		other.ref.Tenant = "other"
		for range 12 {
			for _, x := range fleet {
				x.txn()
			}
			other.txn()
		}
		for _, x := range fleet {
			hostFailures(x)
		}
		hostFailures(other)
		time.Sleep(10 * time.Second)
		if n := len(e.Incidents(tenant)); n != 1 {
			t.Errorf("acme incidents = %d, want 1", n)
		}
		if n := len(e.Incidents("other")); n != 0 {
			t.Errorf("other tenant's incidents = %d, want 0", n)
		}
		if !other.has(posfleet.FlagTxnFailures) {
			t.Error("another tenant's outage excused this tenant's terminal")
		}
	})
}
