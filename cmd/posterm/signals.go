package main

import (
	"math"
	"math/rand/v2"

	"github.com/posfleet/posfleet"
)

// The simulator's side of issue 17's signals (README, "PROTOCOL
// extensions"): what a terminal reports beyond PROTOCOL §1. A worn chip
// reader needs nothing here: chip_fail_rate and fallback_rate already make
// its chip payments fall back to the stripe (entry "fallback").

// SignalBehavior is the part of Behavior about the optional signals.
type SignalBehavior struct {
	// Location makes the terminal report where it is (lat and lon in hb);
	// nil: it reports no location, as PROTOCOL §1 terminals do.
	Location *LocationPlan `json:"location,omitempty"`
}

// LocationPlan is what a terminal's GPS says.
type LocationPlan struct {
	// NoiseM is how far a fix strays from the true place, in metres (up
	// to; uniformly in a disc).
	NoiseM float64 `json:"noise_m"`
	// AwayKm is how far from its provisioned site the terminal is, to the
	// north-east: 0 for a terminal where it belongs, 25 for one taken
	// across town.
	AwayKm float64 `json:"away_km"`
}

// metresPerDegree is a degree of latitude in metres.
const metresPerDegree = 111_195.0

// locate adds the terminal's location to a heartbeat; it runs on the
// library's goroutine, and reads only what does not change after start.
func (t *simTerminal) locate(hb *posfleet.Heartbeat) {
	l := t.b.Location
	if l == nil || (t.ft.Lat == 0 && t.ft.Lon == 0) {
		return
	}
	north, east := l.AwayKm*1000/math.Sqrt2, l.AwayKm*1000/math.Sqrt2
	r, a := l.NoiseM*math.Sqrt(rand.Float64()), 2*math.Pi*rand.Float64()
	north += r * math.Sin(a)
	east += r * math.Cos(a)
	lat := t.ft.Lat + north/metresPerDegree
	lon := t.ft.Lon + east/(metresPerDegree*math.Cos(t.ft.Lat*math.Pi/180))
	// Six decimals: about 10 cm, what a GPS receiver reports.
	lat, lon = math.Round(lat*1e6)/1e6, math.Round(lon*1e6)/1e6
	hb.Lat, hb.Lon = &lat, &lon
}

// The flags of the signals, which scenarios may expect besides those of
// PROTOCOL.md §2 (healthFlags).
func init() {
	healthFlags = append(healthFlags, string(posfleet.FlagFallbackRate), string(posfleet.FlagMoved))
}
