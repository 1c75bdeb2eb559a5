package health_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// silentConfig: heartbeats every 10 minutes (offline after 30), ticks
// every minute; the baseline's defaults (three weeks, two hours, 1 in
// 10,000).
func silentConfig() health.Config {
	return health.Config{HeartbeatInterval: 10 * time.Minute, TickInterval: time.Minute}
}

// shop runs a terminal that is on day and night (a heartbeat every 10
// minutes) and sells twice an hour from 08:00 to 20:00 UTC, for the given
// time from now; sells false: no sales, heartbeats only.
func (t *term) shop(d time.Duration, sells bool) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		h := time.Now().UTC().Hour()
		t.hb()
		if sells && h >= 8 && h < 20 && time.Now().Minute()%30 == 0 {
			t.txn()
		}
		time.Sleep(10 * time.Minute)
	}
}

// untilHour sleeps (heartbeats on, no sales) until the next hh:mm UTC.
func (t *term) untilHour(hh, mm int, sells bool) {
	now := time.Now().UTC()
	at := time.Date(now.Year(), now.Month(), now.Day(), hh, mm, 0, 0, time.UTC)
	if !at.After(now) {
		at = at.Add(24 * time.Hour)
	}
	t.shop(at.Sub(now), sells)
}

// The synctest clock starts on Saturday 1 January 2000 at midnight UTC.
const history = 22 * 24 * time.Hour

func wearHB(prints int64) func(*posfleet.Heartbeat) {
	return func(h *posfleet.Heartbeat) { h.Prints = ptr(prints) }
}

// rebooted: the terminal restarted a minute ago.
func rebooted(h *posfleet.Heartbeat) { h.UptimeS = ptr[int64](60) }

func batteryHealth(pct int) func(*posfleet.Heartbeat) {
	return func(h *posfleet.Heartbeat) { h.BatteryHealthPct = ptr(pct) }
}

// wearDays sends heartbeats twice a day for days days, the counters set
// by at(day) for each.
func (t *term) wearDays(days float64, at func(day float64) func(*posfleet.Heartbeat)) {
	for d := 0.0; d <= days; d += 0.5 {
		t.hb(at(d))
		time.Sleep(12 * time.Hour)
	}
}

// silentWearFlagCases are TestFlags' cases of silent and wear_due.
func silentWearFlagCases() []flagCase {
	return []flagCase{
		{
			name: "silent",
			flag: posfleet.FlagSilent,
			cfg:  silentConfig(),
			// Three weeks of selling, then nothing from 10:00: five usual
			// hours (0.125⁵ = 0.00003) raise it at 15:00.
			raise: func(x *term) {
				x.shop(history, true)
				x.untilHour(10, 0, true)
				x.untilHour(15, 5, false)
			},
			// Four silent hours are a chance of 0.0002; a terminal with
			// ten days of history is never silent; nor at night.
			below: func(x *term) {
				x.shop(history, true)
				x.untilHour(10, 0, true)
				x.untilHour(14, 5, false)
				x.txn()
				x.untilHour(20, 5, true)
				x.untilHour(7, 55, false)
				y := newTerm(x.e, "T2")
				y.shop(10*24*time.Hour, true)
				y.untilHour(10, 0, true)
				y.untilHour(19, 5, false)
				if y.has(posfleet.FlagSilent) {
					panic("silent with ten days of history")
				}
			},
			// The next sale.
			clear:    func(x *term) { x.txn() },
			evidence: []string{"chance", "last_sale", "minimum_hours", "missed", "threshold", "weeks"},
		},
		{
			name: "silent until closing time",
			flag: posfleet.FlagSilent,
			cfg:  silentConfig(),
			raise: func(x *term) {
				x.shop(history, true)
				x.untilHour(10, 0, true)
				x.untilHour(17, 5, false)
			},
			below: func(x *term) {
				x.shop(history, true)
				x.untilHour(10, 0, true)
				x.untilHour(17, 5, false)
				x.status(false) // the last will: offline, not silent
			},
			// 20:00 is not a usual hour.
			clear: func(x *term) { x.untilHour(20, 5, false) },
		},
		{
			name: "wear_due printer head",
			flag: posfleet.FlagWearDue,
			// 1,000 prints a day, 6,000 from the head's 150,000: 6 days.
			raise: func(x *term) {
				x.wearDays(4, func(d float64) func(*posfleet.Heartbeat) { return wearHB(140_000 + int64(d*1000)) })
			},
			// 46 days left; or too short a trend (2 days) for a head still
			// under its rated life; or a battery losing 0.1 points a day
			// from 62% (20 days).
			below: func(x *term) {
				x.wearDays(4, func(d float64) func(*posfleet.Heartbeat) { return wearHB(100_000 + int64(d*1000)) })
				y := newTerm(x.e, "T2")
				y.wearDays(2, func(d float64) func(*posfleet.Heartbeat) { return wearHB(149_000 + int64(d*200)) })
				z := newTerm(x.e, "T3")
				z.wearDays(6, func(d float64) func(*posfleet.Heartbeat) { return batteryHealth(62 - int(d/10)) })
				if y.has(posfleet.FlagWearDue) || z.has(posfleet.FlagWearDue) {
					panic("wear_due on a short trend or a slowly ageing battery")
				}
			},
			// A new head, fitted with the terminal off: the counter starts
			// again. (A lower reading while it runs is a glitch:
			// TestWearCounterGlitch.)
			clear:    func(x *term) { x.hb(wearHB(12), rebooted) },
			evidence: []string{"horizon_days", "parts"},
		},
		{
			name: "wear_due battery",
			flag: posfleet.FlagWearDue,
			// At 59%: due at once.
			raise: func(x *term) { x.hb(batteryHealth(61)); x.hb(batteryHealth(59)) },
			below: func(x *term) { x.hb(batteryHealth(61)); x.hb(batteryHealth(60 + 1)) },
			// A crew visit, then a new battery.
			clear: func(x *term) {
				time.Sleep(time.Second)
				if _, err := x.e.MarkServiced(x.ref, "battery replaced", "crew-1", time.Now()); err != nil {
					panic(err)
				}
				time.Sleep(time.Second)
				x.hb(batteryHealth(98), rebooted)
			},
		},
	}
}

// TestSilentEvidence: the evidence lists the usual hours missed, the last
// sale and the weeks of history; UsualSaleHours tells the shop's hours
// once the history is long enough.
func TestSilentEvidence(t *testing.T) {
	bubbleWith(t, silentConfig(), func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.shop(10*24*time.Hour, true)
		if _, known := e.UsualSaleHours(x.ref); known {
			t.Error("usual hours known after ten days")
		}
		x.shop(history-10*24*time.Hour, true)
		hours, known := e.UsualSaleHours(x.ref)
		if !known {
			t.Fatal("usual hours unknown after three weeks")
		}
		for i, usual := range hours {
			if want := i%24 >= 8 && i%24 < 20; usual != want {
				t.Errorf("hour of week %d (%s %02d:00): usual %t, want %t", i, time.Weekday(i/24), i%24, usual, want)
			}
		}
		x.untilHour(10, 0, true)
		last := time.Now().UTC().Add(-30 * time.Minute)
		x.untilHour(15, 5, false)
		synctest.Wait()
		f := x.flag(t, posfleet.FlagSilent)
		ev := evidenceOf[*posfleet.SilentEvidence](t, f)
		day := time.Now().UTC().Truncate(24 * time.Hour)
		if len(ev.Missed) != 5 || !ev.Missed[0].Equal(day.Add(10*time.Hour)) || !ev.Missed[4].Equal(day.Add(14*time.Hour)) ||
			!ev.LastSale.Equal(last) || ev.Weeks != 3 || ev.MinimumHours != 2 || ev.Threshold != 0.0001 || ev.Chance != 0.0000305 {
			t.Errorf("evidence %+v, last sale %v", ev, last)
		}
		if !f.Since.Equal(day.Add(15*time.Hour)) || f.Kind != posfleet.KindInvestigate {
			t.Errorf("since %v kind %s", f.Since, f.Kind)
		}
		// Not on the work list: someone calls the merchant.
		if len(e.WorkList(tenant)) != 0 {
			t.Errorf("work list %+v", e.WorkList(tenant))
		}
	})
}

// TestWearDueEvidence: the forecast names the part, the counter, its rate,
// the days left and the rated life; the work list brings the part.
func TestWearDueEvidence(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.wearDays(4, func(d float64) func(*posfleet.Heartbeat) {
			return func(h *posfleet.Heartbeat) {
				h.Prints = ptr(140_000 + int64(d*1000))
				h.CardInsertions = ptr(50_000 + int64(d*100))
				h.BatteryHealthPct = ptr(90)
			}
		})
		f := x.flag(t, posfleet.FlagWearDue)
		ev := evidenceOf[*posfleet.WearDueEvidence](t, f)
		want := posfleet.WearForecast{Counter: "prints", Part: posfleet.WearPrinterHead, Value: 144_000, PerDay: 1000,
			DaysLeft: 6, RatedLife: 150_000, Samples: 9}
		if ev.HorizonDays != 14 || len(ev.Parts) != 1 || ev.Parts[0] != want {
			t.Errorf("evidence %+v, want %+v", ev, want)
		}
		work := e.WorkList(tenant)
		if len(work) != 1 {
			t.Fatalf("work list %+v", work)
		}
		parts := health.ItemParts(work[0])
		if !slices.Contains(parts, "printer head") {
			t.Errorf("parts %q", parts)
		}
	})
}

// TestSnapshotKeepsSignals: the sales baseline, the wear samples and the
// host survive a snapshot, and so do the flags they raised.
func TestSnapshotKeepsSignals(t *testing.T) {
	bubbleWith(t, silentConfig(), func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.shop(history, true)
		x.txn(viaHost("cup-sh"))
		x.untilHour(10, 0, true)
		x.untilHour(15, 5, false)
		x.hb(batteryHealth(61), wearHB(1000))
		x.hb(batteryHealth(59), wearHB(1001))
		var buf bytes.Buffer
		if err := e.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		cfg := silentConfig()
		cfg.Now = time.Now
		back := health.New(cfg)
		if err := back.Restore(&buf); err != nil {
			t.Fatal(err)
		}
		h1, k1 := e.UsualSaleHours(x.ref)
		h2, k2 := back.UsualSaleHours(x.ref)
		if !k1 || !k2 || h1 != h2 {
			t.Errorf("usual hours after restore: known %t %t, equal %t", k1, k2, h1 == h2)
		}
		y := &term{e: back, ref: x.ref, seq: 1000}
		for _, f := range []posfleet.FlagName{posfleet.FlagSilent, posfleet.FlagWearDue} {
			if !y.has(f) {
				t.Errorf("%s lost in the snapshot", f)
			}
		}
		// The restored samples go on: a new battery clears wear_due.
		y.hb(batteryHealth(97), rebooted)
		if y.has(posfleet.FlagWearDue) {
			t.Error("wear_due after a new battery")
		}
	})
}

// TestWearCounterGlitch: a counter that goes down while the terminal runs
// (uptime still growing) is a glitch, not a new part: wear_due stays; the
// same reading after a restart clears it.
func TestWearCounterGlitch(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.hb(wearHB(151_000))
		if !x.has(posfleet.FlagWearDue) {
			t.Fatal("a head past its rated life is not due")
		}
		x.hb(wearHB(12), func(h *posfleet.Heartbeat) { h.UptimeS = ptr[int64](3700) })
		if !x.has(posfleet.FlagWearDue) {
			t.Error("a glitch while running cleared wear_due")
		}
		x.hb(wearHB(151_001), func(h *posfleet.Heartbeat) { h.UptimeS = ptr[int64](3800) })
		x.hb(wearHB(12), rebooted)
		if x.has(posfleet.FlagWearDue) {
			t.Error("a new head after a restart did not clear wear_due")
		}
	})
}

// TestSilentThresholdOverride: a tenant asking for eight usual hours
// missed is not told of a shop quiet for five; back to the defaults, it is
// (silent needs weeks of history, so it is not in TestThresholdOverrides'
// table).
func TestSilentThresholdOverride(t *testing.T) {
	for _, over := range []map[string]float64{{"silent.min_hours": 8}, {"silent.alpha": 1e-9}} {
		t.Run(fmt.Sprint(over), func(t *testing.T) { silentOverride(t, over) })
	}
}

// silentOverride: under the override, five quiet usual hours raise
// nothing (eight are needed, or a chance below 10⁻⁹, where five have
// 0.00003); back to the defaults they raise silent.
func silentOverride(t *testing.T, over map[string]float64) {
	bubbleWith(t, silentConfig(), func(t *testing.T, e *health.Engine) {
		if err := e.SetThresholds(thrDoc(over, nil), 1); err != nil {
			t.Fatal(err)
		}
		x := newTerm(e, "T1")
		x.inv("A920", "2.5.1", nil)
		x.shop(history, true)
		x.untilHour(10, 0, true)
		x.untilHour(15, 5, false)
		synctest.Wait()
		if x.has(posfleet.FlagSilent) {
			t.Fatalf("silent raised after five quiet hours with the tenant's %v", over)
		}
		if err := e.SetThresholds(&health.Thresholds{}, 2); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !x.has(posfleet.FlagSilent) {
			t.Fatal("silent not raised under the defaults")
		}
	})
}
