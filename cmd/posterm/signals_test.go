package main

import (
	"math"
	"strconv"

	"github.com/posfleet/posfleet"
)

// signalEvidence is evidence (main_test.go) for the flags of signals.go,
// from what InfluxDB holds of terminal f: fallback_rate when some run of
// the last 50 chip payments held at least 5 fallbacks and 10% of them, and
// moved when two heartbeats in a row reported a location more than 1 km
// from the provisioned site, silent for a terminal heard but never
// selling, and wear_due for a part near its rated life.
func signalEvidence(data map[string]map[string][]map[string]string, f FleetTerminal) []string {
	var flags []string
	var chip []bool
	fallbacks := false
	for _, p := range data["txn"][f.Terminal] {
		if p["entry"] != posfleet.EntryChip && p["entry"] != posfleet.EntryFallback {
			continue
		}
		chip = append(chip, p["entry"] == posfleet.EntryFallback)
		w := chip[max(0, len(chip)-50):]
		n := 0
		for _, fb := range w {
			if fb {
				n++
			}
		}
		fallbacks = fallbacks || n >= 5 && n*10 >= len(w)
	}
	if fallbacks {
		flags = append(flags, string(posfleet.FlagFallbackRate))
	}
	away, moved := 0, false
	for _, p := range data["heartbeat"][f.Terminal] {
		if p["lat"] == "" || p["lon"] == "" {
			continue
		}
		lat, _ := strconv.ParseFloat(p["lat"], 64)
		lon, _ := strconv.ParseFloat(p["lon"], 64)
		if km(lat, lon, f.Lat, f.Lon) > 1 {
			away++
		} else {
			away = 0
		}
		moved = moved || away >= 2
	}
	if moved {
		flags = append(flags, string(posfleet.FlagMoved))
	}
	// silent: heard, and no sale at all (the baseline that makes the hours
	// usual is History's, before the run).
	sales := 0
	for _, p := range data["txn"][f.Terminal] {
		if p["type"] == posfleet.TxnSale {
			sales++
		}
	}
	if sales == 0 && len(data["heartbeat"][f.Terminal]) > 0 {
		flags = append(flags, string(posfleet.FlagSilent))
	}
	// wear_due: a part within 2% of its rated life (health/config.go), or
	// a battery down to 60%.
	worn := false
	for _, p := range data["heartbeat"][f.Terminal] {
		prints, _ := strconv.ParseInt(p["prints"], 10, 64)
		ins, _ := strconv.ParseInt(p["card_insertions"], 10, 64)
		worn = worn || prints >= 147_000 || ins >= 196_000
		if h, err := strconv.Atoi(p["battery_health_pct"]); err == nil && h <= 60 {
			worn = true
		}
	}
	if worn {
		flags = append(flags, string(posfleet.FlagWearDue))
	}
	return flags
}

// km is the distance between two points (an equirectangular
// approximation: good to a metre at a kilometre).
func km(lat1, lon1, lat2, lon2 float64) float64 {
	x := (lon2 - lon1) * math.Cos((lat1+lat2)/2*math.Pi/180)
	y := lat2 - lat1
	return math.Hypot(x, y) * 111.195
}
