package health_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// The provisioned site of the signal tests' terminals: a shop in Shanghai.
const siteLat, siteLon = 31.2304, 121.4737

// siteConfig provisions every terminal but "NOSITE" at the Shanghai shop.
func siteConfig() health.Config {
	return health.Config{Site: func(r posfleet.TerminalRef) (health.Site, bool) {
		if r.Terminal == "NOSITE" {
			return health.Site{Site: "no location"}, true
		}
		return health.Site{Site: "Shanghai Grocery", Lat: siteLat, Lon: siteLon}, true
	}}
}

func fallback(x *posfleet.Transaction) { x.Entry = posfleet.EntryFallback }

// hbAt reports a location north of the site by km (0.009° of latitude is
// about a kilometre).
func hbAt(km float64) func(*posfleet.Heartbeat) {
	return func(h *posfleet.Heartbeat) { h.Lat, h.Lon = ptr(siteLat+km*0.008993), ptr(siteLon) }
}

// signalFlagCases are TestFlags' cases of fallback_rate and moved.
func signalFlagCases() []flagCase {
	return []flagCase{
		{
			name: "fallback_rate",
			flag: posfleet.FlagFallbackRate,
			// 5 fallbacks among 45 chip payments: 11%.
			raise: func(x *term) { x.txns(40); x.txns(5, fallback) },
			// 4 fallbacks (under the minimum), then 5 among 55 (9%: the
			// last 50 hold 5 of 50 = 10%, so 6 chip payments more).
			below: func(x *term) {
				x.txns(4, fallback)
				x.txns(46)
				x.txns(5, fallback)
				x.txns(46)
			},
			// Chip payments that work push the fallbacks out of the last 50.
			clear:    func(x *term) { x.txns(46) },
			evidence: []string{"count", "total", "rate", "threshold", "minimum", "window", "latest"},
		},
		{
			name: "fallback_rate cleared by a visit",
			flag: posfleet.FlagFallbackRate,
			raise: func(x *term) {
				x.txns(6, fallback)
			},
			// Contactless and QR payments are not chip payments.
			below: func(x *term) {
				x.txns(4, fallback)
				x.txns(40, func(t *posfleet.Transaction) { t.Entry = posfleet.EntryTap })
			},
			clear: func(x *term) {
				time.Sleep(time.Second)
				if _, err := x.e.MarkServiced(x.ref, "chip reader replaced", "crew-1", time.Now()); err != nil {
					panic(err)
				}
				time.Sleep(time.Second)
				x.txns(4, fallback)
			},
		},
		{
			name: "moved",
			flag: posfleet.FlagMoved,
			cfg:  siteConfig(),
			raise: func(x *term) {
				x.hb(hbAt(0.05))
				x.hb(hbAt(30))
				time.Sleep(time.Minute)
				x.hb(hbAt(30))
			},
			// One far fix is GPS noise; 900 m is the same street; no
			// location says nothing; a terminal without a provisioned
			// location is never moved.
			below: func(x *term) {
				x.hb(hbAt(30))
				x.hb(hbAt(0.9))
				x.hb(hbAt(30))
				x.hb()
				x.hb(hbAt(0.9))
				y := newTerm(x.e, "NOSITE")
				y.hb(hbAt(30))
				y.hb(hbAt(30))
				y.hb(hbAt(30))
				if y.has(posfleet.FlagMoved) {
					panic("moved without a provisioned location")
				}
			},
			// Two heartbeats at the site; one is not enough.
			clear: func(x *term) {
				x.hb(hbAt(0.1))
				if !x.has(posfleet.FlagMoved) {
					panic("moved cleared by one heartbeat at the site")
				}
				x.hb()
				x.hb(hbAt(30)) // away again: the run at the site restarts
				x.hb(hbAt(0.1))
				x.hb(hbAt(0.2))
			},
			evidence: []string{"distance_m", "lat", "lon", "site_lat", "site_lon", "since", "threshold_m", "heartbeats"},
		},
	}
}

// TestFallbackRateEvidence: the evidence counts every fallback of the last
// 50 chip payments and lists the latest as samples.
func TestFallbackRateEvidence(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.txns(60)
		start := time.Now().UTC()
		for range 7 {
			x.txn(fallback)
			time.Sleep(time.Minute)
		}
		x.txns(3, func(t *posfleet.Transaction) { t.Entry = posfleet.EntryQR })
		f := x.flag(t, posfleet.FlagFallbackRate)
		ev := evidenceOf[*posfleet.FallbackRateEvidence](t, f)
		if ev.Count != 7 || ev.Total != 50 || ev.Rate != 0.14 || ev.Threshold != 0.1 || ev.Minimum != 5 || ev.Window != 50 {
			t.Errorf("evidence %+v", ev)
		}
		if len(ev.Latest) != health.EvidenceRing || ev.Latest[len(ev.Latest)-1].ID != "T1-67" {
			t.Errorf("latest %+v", ev.Latest)
		}
		if !f.Since.Equal(start) || f.Kind != posfleet.KindMaintenance {
			t.Errorf("since %v kind %s, want %v", f.Since, f.Kind, start)
		}
	})
}

// TestMovedEvidence: the evidence names both locations, the distance and
// since when the terminal is away; a re-sited terminal whose new site is
// entered in the registry clears within siteRefresh.
func TestMovedEvidence(t *testing.T) {
	lat, lon := siteLat, siteLon
	cfg := health.Config{Site: func(posfleet.TerminalRef) (health.Site, bool) {
		return health.Site{Lat: lat, Lon: lon}, true
	}}
	bubbleWith(t, cfg, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.hb()
		start := time.Now().UTC()
		x.hb(hbAt(12))
		time.Sleep(time.Minute)
		x.hb(hbAt(12))
		synctest.Wait()
		f := x.flag(t, posfleet.FlagMoved)
		ev := evidenceOf[*posfleet.MovedEvidence](t, f)
		if ev.DistanceM < 11900 || ev.DistanceM > 12100 || ev.SiteLat != siteLat || ev.SiteLon != siteLon ||
			ev.Lat != siteLat+12*0.008993 || ev.ThresholdM != 1000 || ev.Heartbeats != 2 || !ev.Since.Equal(start) || !f.Since.Equal(start) {
			t.Errorf("evidence %+v since %v, want from %v", ev, f.Since, start)
		}
		if f.Kind != posfleet.KindInvestigate {
			t.Errorf("kind %s", f.Kind)
		}
		// The terminal was re-sited: the registry has its new place.
		lat += 12 * 0.008993
		x.hb(hbAt(12))
		time.Sleep(11 * time.Minute)
		x.hb(hbAt(12))
		x.hb(hbAt(12))
		if x.has(posfleet.FlagMoved) {
			t.Errorf("moved after the registry moved the site: %+v", x.flag(t, posfleet.FlagMoved))
		}
	})
}

// TestMovedSurvivesRestart: a snapshot keeps moved and its time.
func TestMovedSurvivesRestart(t *testing.T) {
	bubbleWith(t, siteConfig(), func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.hb(hbAt(5))
		x.hb(hbAt(5))
		x.txns(6, fallback)
		since := x.flag(t, posfleet.FlagMoved).Since
		fb := x.flag(t, posfleet.FlagFallbackRate).Since
		var b bytes.Buffer
		if err := e.Snapshot(&b); err != nil {
			t.Fatal(err)
		}
		cfg := siteConfig()
		cfg.Now = time.Now
		r := health.New(cfg)
		if err := r.Restore(&b); err != nil {
			t.Fatal(err)
		}
		y := newTerm(r, "T1")
		if !y.flag(t, posfleet.FlagMoved).Since.Equal(since) || !y.flag(t, posfleet.FlagFallbackRate).Since.Equal(fb) {
			t.Error("times changed over a restart")
		}
		y.hb(hbAt(0))
		y.hb(hbAt(0))
		if y.has(posfleet.FlagMoved) {
			t.Error("moved stays after two heartbeats at the site")
		}
	})
}

// TestFallbackRateOnWorkList: fallback_rate puts the terminal on the work
// list (routine: payments still go through) with what to do, and the crew
// brings a chip reader; moved, an investigation, does not.
func TestFallbackRateOnWorkList(t *testing.T) {
	bubbleWith(t, siteConfig(), func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.txns(6, fallback)
		y := newTerm(e, "T2")
		y.hb(hbAt(30))
		y.hb(hbAt(30))
		if !y.has(posfleet.FlagMoved) {
			t.Fatal("T2 not moved")
		}
		items := e.WorkList(tenant)
		if len(items) != 1 || items[0].Terminal != "T1" || len(items[0].Reasons) != 1 {
			t.Fatalf("work list %+v", items)
		}
		it := items[0]
		if r := it.Reasons[0]; r.Flag != posfleet.FlagFallbackRate || it.Priority != health.PriorityRoutine ||
			!strings.Contains(r.Action, "6 of the last 6 chip payments fell back") {
			t.Errorf("reason %+v priority %d", r, it.Priority)
		}
		if parts := posfleet.PartsFor(posfleet.FlagFallbackRate, nil); !slices.Contains(parts, "chip reader") {
			t.Errorf("parts %v", parts)
		}
	})
}
