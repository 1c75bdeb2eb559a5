package health_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// thresholdCase is one threshold override: evidence fed to a terminal,
// the flag's verdict under the defaults (def), and an override that turns
// the verdict the other way.
type thresholdCase struct {
	name  string  // the threshold
	value float64 // the override
	flag  posfleet.FlagName
	def   bool // raised under the defaults
	feed  func(x *term)
}

// hbs sends n heartbeats a minute apart.
func hbs(x *term, n int, mods ...func(*posfleet.Heartbeat)) {
	for range n {
		x.hb(mods...)
		time.Sleep(time.Minute)
	}
}

func hbTemp(c float64) func(*posfleet.Heartbeat) {
	return func(h *posfleet.Heartbeat) { h.TempC = ptr(c) }
}

// wearFeed sends four days of wear counters, set by set for each half day.
func wearFeed(set func(h *posfleet.Heartbeat, day float64)) func(x *term) {
	return func(x *term) {
		x.wearDays(4, func(d float64) func(*posfleet.Heartbeat) {
			return func(h *posfleet.Heartbeat) { set(h, d) }
		})
	}
}

func thresholdCases() []thresholdCase {
	return []thresholdCase{
		{"offline.after", 60, posfleet.FlagOffline, false, func(x *term) { x.hb(); time.Sleep(2 * time.Minute); x.e.Tick(time.Now()) }},
		{"txn_failures.rate", 0.3, posfleet.FlagTxnFailures, true, func(x *term) { x.txns(37); x.txns(13, timeout) }},
		{"txn_failures.minimum", 5, posfleet.FlagTxnFailures, false, func(x *term) { x.txns(8, timeout) }},
		{"txn_failures.window", 20, posfleet.FlagTxnFailures, false, func(x *term) { x.txns(30); x.txns(10, timeout); x.txns(10) }},
		{"txn_failures.chance_rate", 0.3, posfleet.FlagTxnFailures, true, func(x *term) { x.txns(5); x.txns(5, timeout) }},
		{"txn_failures.alpha", 0.001, posfleet.FlagTxnFailures, true, func(x *term) { x.txns(5); x.txns(5, timeout) }},
		{"receipt_failures.count", 1, posfleet.FlagReceiptFailures, false, func(x *term) { x.txn(receipt(posfleet.ReceiptFailed)) }},
		{"weak_network.signal_dbm", -95, posfleet.FlagWeakNetwork, false, func(x *term) { hbs(x, 3, hbSignal(-100)) }},
		{"weak_network.rtt_ms", 1000, posfleet.FlagWeakNetwork, false, func(x *term) { hbs(x, 3, hbRTT(2000)) }},
		{"weak_network.min_heartbeats", 2, posfleet.FlagWeakNetwork, false, func(x *term) { hbs(x, 2, hbSignal(-120)) }},
		{"battery.low_pct", 25, posfleet.FlagBattery, false, func(x *term) { hbs(x, 3, hbBattery(20, false)) }},
		{"battery.low_heartbeats", 2, posfleet.FlagBattery, false, func(x *term) { hbs(x, 2, hbBattery(10, false)) }},
		{"battery.hot_c", 50, posfleet.FlagBattery, false, func(x *term) { hbs(x, 1, hbTemp(55)) }},
		{"clock_skew.seconds", 100, posfleet.FlagClockSkew, false, func(x *term) { hbs(x, 3, hbSkew(200*time.Second)) }},
		{"clock_skew.heartbeats", 1, posfleet.FlagClockSkew, false, func(x *term) { hbs(x, 1, hbSkew(400*time.Second)) }},
		{"bad_data.min_rejected", 3, posfleet.FlagBadData, false, func(x *term) { time.Sleep(61 * time.Minute); x.rejects(3, posfleet.ReasonNotJSON) }},
		{"bad_data.share", 0.5, posfleet.FlagBadData, false, func(x *term) { time.Sleep(61 * time.Minute); x.rejects(5, posfleet.ReasonNotJSON); x.hb() }},
		{"fallback_rate.minimum", 3, posfleet.FlagFallbackRate, false, func(x *term) { x.txns(7); x.txns(3, fallback) }},
		{"fallback_rate.rate", 0.2, posfleet.FlagFallbackRate, true, func(x *term) { x.txns(45); x.txns(5, fallback) }},
		{"fallback_rate.window", 20, posfleet.FlagFallbackRate, true, func(x *term) { x.txns(5, fallback); x.txns(45) }},
		{"moved.distance_km", 0.2, posfleet.FlagMoved, false, func(x *term) { hbs(x, 2, hbAt(0.5)) }},
		{"moved.heartbeats", 1, posfleet.FlagMoved, false, func(x *term) { hbs(x, 1, hbAt(5)) }},
		// wear_due: four days of counters twice a day; the default horizon
		// is 14 days.
		{"wear.horizon_days", 5, posfleet.FlagWearDue, true, wearFeed(func(h *posfleet.Heartbeat, d float64) { h.Prints = ptr(140_000 + int64(d*1000)) })},
		{"wear.printer_prints", 300_000, posfleet.FlagWearDue, true, wearFeed(func(h *posfleet.Heartbeat, d float64) { h.Prints = ptr(140_000 + int64(d*1000)) })},
		{"wear.chip_insertions", 51_000, posfleet.FlagWearDue, false, wearFeed(func(h *posfleet.Heartbeat, d float64) { h.CardInsertions = ptr(50_000 + int64(d*100)) })},
		{"wear.battery_cycles", 100, posfleet.FlagWearDue, false, wearFeed(func(h *posfleet.Heartbeat, d float64) { h.BatteryCycles = ptr(90 + int64(d)) })},
		{"wear.battery_health_pct", 70, posfleet.FlagWearDue, false, wearFeed(func(h *posfleet.Heartbeat, d float64) { h.BatteryHealthPct = ptr(80 - int(d)) })},
	}
}

func doc(t *testing.T, yaml string) *health.Thresholds {
	t.Helper()
	d, err := health.ParseThresholds([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func thrDoc(tenantVals, modelVals map[string]float64) *health.Thresholds {
	tt := health.TenantThresholds{Values: tenantVals, Models: map[string]map[string]float64{}}
	if modelVals != nil {
		tt.Models["A920"] = modelVals
	}
	return &health.Thresholds{Tenants: map[string]health.TenantThresholds{tenant: tt}}
}

// TestThresholdOverrides checks every threshold override: under the
// defaults the evidence gives one verdict; the tenant's override, or its
// A920 terminals' override, gives the other, for its terminals only; a
// model's override back to the default wins over the tenant's; and
// clearing the overrides restores the default verdict.
func TestThresholdOverrides(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range thresholdCases() {
		covered[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			th, _ := health.LookupThreshold(tc.name)
			defVal := th.Value(health.DefaultConfig())
			over := map[string]float64{tc.name: tc.value}
			back := map[string]float64{tc.name: defVal}
			for _, st := range []struct {
				name        string
				doc         *health.Thresholds
				a920, other bool // raised on an A920, on a B50
				source      posfleet.ThresholdSource
			}{
				{"default", nil, tc.def, tc.def, ""},
				{"tenant", thrDoc(over, nil), !tc.def, !tc.def, posfleet.ThresholdTenant},
				{"model", thrDoc(nil, over), !tc.def, tc.def, posfleet.ThresholdModel},
				{"model over tenant", thrDoc(over, back), tc.def, !tc.def, posfleet.ThresholdModel},
			} {
				t.Run(st.name, func(t *testing.T) {
					bubbleWith(t, siteConfig(), func(t *testing.T, e *health.Engine) {
						if st.doc != nil {
							if err := e.SetThresholds(st.doc, 1); err != nil {
								t.Fatal(err)
							}
						}
						a, b := newTerm(e, "A"), newTerm(e, "B")
						a.inv("A920", "2.5.1", nil)
						b.inv("B50", "1.0.0", nil)
						var wg sync.WaitGroup
						wg.Go(func() { tc.feed(a) })
						wg.Go(func() { tc.feed(b) })
						wg.Wait()
						synctest.Wait()
						if got := a.has(tc.flag); got != st.a920 {
							t.Fatalf("A920 terminal: %s raised %v, want %v", tc.flag, got, st.a920)
						}
						if got := b.has(tc.flag); got != st.other {
							t.Fatalf("B50 terminal: %s raised %v, want %v", tc.flag, got, st.other)
						}
						if st.a920 && st.source != "" {
							checkApplied(t, a.flag(t, tc.flag), tc.name, st.source)
						}
						if st.a920 && st.doc == nil {
							if ev, _ := json.Marshal(a.flag(t, tc.flag).Evidence); strings.Contains(string(ev), `"thresholds"`) {
								t.Errorf("evidence under the defaults names thresholds: %s", ev)
							}
						}
						// Clear: back to the defaults, the same evidence
						// again gives the default verdict.
						if err := e.SetThresholds(&health.Thresholds{}, 2); err != nil {
							t.Fatal(err)
						}
						c := newTerm(e, "C")
						c.inv("A920", "2.5.1", nil)
						tc.feed(c)
						synctest.Wait()
						if got := c.has(tc.flag); got != tc.def {
							t.Fatalf("after clearing: %s raised %v, want %v", tc.flag, got, tc.def)
						}
					})
				})
			}
		})
	}
	for _, th := range health.ThresholdTable {
		if !covered[th.Name] && !th.TenantOnly && !strings.HasPrefix(th.Name, "silent.") {
			t.Errorf("threshold %s has no override case", th.Name)
		}
	}
}

func checkApplied(t *testing.T, f posfleet.Flag, name string, source posfleet.ThresholdSource) {
	t.Helper()
	b, err := json.Marshal(f.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Thresholds []posfleet.AppliedThreshold `json:"thresholds"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ev.Thresholds, func(a posfleet.AppliedThreshold) bool { return a.Name == name })
	if i < 0 {
		t.Fatalf("evidence names no %s: %s", name, b)
	}
	if a := ev.Thresholds[i]; a.Source != source || (source == posfleet.ThresholdModel) != (a.Model == "A920") {
		t.Errorf("evidence's %s: %+v, want source %s", name, a, source)
	}
}

// TestThresholdOverridesSwitchAtRunTime: a raised flag clears as soon as a
// looser threshold is set, and comes back with the stricter one.
func TestThresholdOverridesSwitchAtRunTime(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.txns(37)
		x.txns(13, timeout)
		synctest.Wait()
		if !x.has(posfleet.FlagTxnFailures) {
			t.Fatal("13 of 50 failed: no txn_failures")
		}
		if err := e.SetThresholds(thrDoc(map[string]float64{"txn_failures.rate": 0.3}, nil), 1); err != nil {
			t.Fatal(err)
		}
		if x.has(posfleet.FlagTxnFailures) {
			t.Error("txn_failures still raised above a 30% threshold")
		}
		if _, v := e.Thresholds(); v != 1 {
			t.Errorf("version %d, want 1", v)
		}
		if err := e.SetThresholds(&health.Thresholds{}, 2); err != nil {
			t.Fatal(err)
		}
		if !x.has(posfleet.FlagTxnFailures) {
			t.Error("txn_failures not raised again under the default")
		}
	})
}

// TestThresholdValidation: every refused value names its field and the
// allowed range, and a refused document leaves the thresholds in force.
func TestThresholdValidation(t *testing.T) {
	for _, tc := range []struct{ doc, field, msg string }{
		{"tenants: {acme: {models: {A920: {txn_failures.rate: 1.5}}}}", "tenants.acme.models.A920.txn_failures.rate", "1.5 is above 1"},
		{"tenants: {acme: {txn_failures.rate: 0}}", "tenants.acme.txn_failures.rate", "0 is below 0.01"},
		{"tenants: {acme: {txn_failures.minimum: 2.5}}", "tenants.acme.txn_failures.minimum", "2.5 is not a whole number"},
		{"tenants: {acme: {txn_failures.rat: 0.1}}", "tenants.acme.txn_failures.rat", "no such threshold"},
		{"tenants: {acme: {offline.after: ten}}", "tenants.acme.offline.after", `"ten" is not a number`},
		{"tenants: {acme: {models: {A920: {incident.share: 0.5}}}}", "tenants.acme.models.A920.incident.share", "set it for the tenant"},
		{"tenants: {acme: {txn_failures.window: 20, models: {A920: {txn_failures.minimum: 30}}}}", "tenants.acme.models.A920.txn_failures.minimum", "txn_failures.minimum 30 is more than txn_failures.window 20"},
		{"tenants: {acme: {weak_network.signal_dbm: -200}}", "tenants.acme.weak_network.signal_dbm", "-200 is below -140"},
		{"tenants: {acme: {moved.distance_km: 0.01}}", "tenants.acme.moved.distance_km", "0.01 is below 0.05"},
		{"tenant: {}", "tenant", "unknown key"},
		{"tenants: {acme: {offline.after: 60, offline.after: 90}}", "tenants.acme.offline.after", "appears twice"},
		{"tenants: {'" + luhnComplete("4"+strings.Repeat("1", 14)) + "': {offline.after: 60}}", "tenants", "card number"},
	} {
		_, err := health.ParseThresholds([]byte(tc.doc))
		var te *health.ThresholdsError
		if !errors.As(err, &te) {
			t.Errorf("%s: error %v, want a ThresholdsError", tc.doc, err)
			continue
		}
		if m := te.For(tc.field); !strings.Contains(m, tc.msg) {
			t.Errorf("%s: %s: %q, want %q (all: %v)", tc.doc, tc.field, m, tc.msg, err)
		}
		var pe *posfleet.Error
		if !errors.As(err, &pe) || pe.Kind != posfleet.Invalid || !strings.Contains(pe.Message, tc.field+": ") {
			t.Errorf("%s: %v is not an Invalid naming %s", tc.doc, err, tc.field)
		}
	}
	bubble(t, func(t *testing.T, e *health.Engine) {
		if err := e.SetThresholds(thrDoc(map[string]float64{"battery.low_pct": 20}, nil), 3); err != nil {
			t.Fatal(err)
		}
		bad := thrDoc(map[string]float64{"battery.low_pct": 200}, nil)
		if err := e.SetThresholds(bad, 4); err == nil {
			t.Fatal("battery.low_pct 200 accepted")
		}
		d, v := e.Thresholds()
		if v != 3 || d.Tenants[tenant].Values["battery.low_pct"] != 20 {
			t.Errorf("after a refused document: version %d, %v", v, d.Tenants)
		}
		// An older version (a poll racing a save) changes nothing.
		if err := e.SetThresholds(thrDoc(map[string]float64{"battery.low_pct": 30}, nil), 2); err != nil {
			t.Fatal(err)
		}
		if d, v := e.Thresholds(); v != 3 || d.Tenants[tenant].Values["battery.low_pct"] != 20 {
			t.Errorf("after an older version: version %d, %v", v, d.Tenants)
		}
	})
}

// TestThresholdsRoundTrip: a document reads back the same from its JSON and
// its YAML.
func TestThresholdsRoundTrip(t *testing.T) {
	d := doc(t, `
tenants:
  acme:
    txn_failures.rate: 0.15
    offline.after: 300
    models:
      A920:
        txn_failures.rate: 0.1
        moved.distance_km: 0.5
  globex:
    incident.min_terminals: 5
`)
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"tenants":{"acme":{"models":{"A920":{"moved.distance_km":0.5,"txn_failures.rate":0.1}},"offline.after":300,"txn_failures.rate":0.15},"globex":{"incident.min_terminals":5}}}`
	if string(j) != want {
		t.Errorf("JSON %s\nwant %s", j, want)
	}
	var back health.Thresholds
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	y := back.YAML()
	again := doc(t, string(y))
	if j2, _ := json.Marshal(again); string(j2) != want {
		t.Errorf("after YAML %s:\n%s\nwant %s", y, j2, want)
	}
}

// TestThresholdsForTenantOnly: incidents and suspect firmware read the
// tenant's thresholds.
func TestThresholdsFor(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		if err := e.SetThresholds(doc(t, "tenants: {acme: {suspect.min_terminals: 7, models: {A920: {offline.after: 600}}}}"), 1); err != nil {
			t.Fatal(err)
		}
		get := func(tenant, model, name string) posfleet.AppliedThreshold {
			for _, a := range e.ThresholdsFor(tenant, model) {
				if a.Name == name {
					return a
				}
			}
			t.Fatalf("no %s", name)
			return posfleet.AppliedThreshold{}
		}
		for _, c := range []struct {
			tenant, model, name string
			want                posfleet.AppliedThreshold
		}{
			{"acme", "A920", "offline.after", posfleet.AppliedThreshold{Name: "offline.after", Value: 600, Source: posfleet.ThresholdModel, Model: "A920", Unit: "s"}},
			{"acme", "B50", "offline.after", posfleet.AppliedThreshold{Name: "offline.after", Value: 180, Source: posfleet.ThresholdDefault, Unit: "s"}},
			{"acme", "A920", "suspect.min_terminals", posfleet.AppliedThreshold{Name: "suspect.min_terminals", Value: 7, Source: posfleet.ThresholdTenant, Unit: "count"}},
			{"globex", "A920", "suspect.min_terminals", posfleet.AppliedThreshold{Name: "suspect.min_terminals", Value: 3, Source: posfleet.ThresholdDefault, Unit: "count"}},
		} {
			if got := get(c.tenant, c.model, c.name); got != c.want {
				t.Errorf("%s %s %s: %+v, want %+v", c.tenant, c.model, c.name, got, c.want)
			}
		}
	})
}

// TestTenantOnlyThresholds: incidents and suspect firmware judge a tenant
// by its own thresholds; another tenant keeps the defaults.
func TestTenantOnlyThresholds(t *testing.T) {
	t.Run("incident.share", func(t *testing.T) {
		for _, c := range []struct {
			name string
			doc  *health.Thresholds
			want int
		}{
			{"default: 3 terminals of 30 are not 20%", nil, 0},
			{"tenant: 10%", thrDoc(map[string]float64{"incident.share": 0.1}, nil), 1},
			{"another tenant's 10%", &health.Thresholds{Tenants: map[string]health.TenantThresholds{"globex": {Values: map[string]float64{"incident.share": 0.1}}}}, 0},
		} {
			t.Run(c.name, func(t *testing.T) {
				bubbleWith(t, health.Config{TxnAlpha: 1}, func(t *testing.T, e *health.Engine) {
					if c.doc != nil {
						if err := e.SetThresholds(c.doc, 1); err != nil {
							t.Fatal(err)
						}
					}
					time.Sleep(time.Second)
					fleet := outageFleet(e)
					for range 3 {
						for _, x := range fleet {
							x.txn()
						}
						time.Sleep(10 * time.Second)
					}
					for _, x := range fleet[:3] {
						hostFailures(x)
					}
					time.Sleep(10 * time.Second)
					if got := len(e.Incidents(tenant)); got != c.want {
						t.Errorf("%d incidents, want %d", got, c.want)
					}
				})
			})
		}
	})
	t.Run("suspect.min_terminals", func(t *testing.T) {
		bubble(t, func(t *testing.T, e *health.Engine) {
			// 2.4.1 adds a fee on its 4 terminals.
			for i := range 10 {
				x := newTerm(e, fmt.Sprintf("old%d", i))
				x.inv("A920", "2.4.0", nil)
				x.txns(100)
			}
			for i := range 4 {
				y := newTerm(e, fmt.Sprintf("bug%d", i))
				y.inv("A920", "2.4.1", nil)
				for j := range 100 {
					if j%12 == 0 {
						y.txn(charged(1006))
					} else {
						y.txn()
					}
				}
			}
			if got := e.SuspectFirmware(tenant); len(got) != 1 || got[0].Firmware != "2.4.1" {
				t.Fatalf("default: findings %+v, want 2.4.1", got)
			}
			if err := e.SetThresholds(thrDoc(map[string]float64{"suspect.min_terminals": 5, "suspect.min_txns": 200}, nil), 1); err != nil {
				t.Fatal(err)
			}
			if got := e.SuspectFirmware(tenant); len(got) != 0 {
				t.Errorf("with 5 terminals needed: findings %+v", got)
			}
		})
	})
}

// luhnComplete is prefix with the check digit that makes it pass Luhn,
// built at run time so that no card number is written down.
func luhnComplete(prefix string) string {
	sum := 0
	for i := len(prefix) - 1; i >= 0; i-- {
		d := int(prefix[i] - '0')
		if (len(prefix)-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return prefix + fmt.Sprint((10-sum%10)%10)
}
