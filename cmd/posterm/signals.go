package main

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet"
)

// The simulator's side of the optional signals (README, "PROTOCOL
// extensions"): what a terminal reports beyond PROTOCOL §1. A worn chip
// reader needs nothing here: chip_fail_rate and fallback_rate already make
// its chip payments fall back to the stripe (entry "fallback").

// SignalBehavior is the part of Behavior about the optional signals.
type SignalBehavior struct {
	// Location makes the terminal report where it is (lat and lon in hb);
	// nil: it reports no location, as PROTOCOL §1 terminals do.
	Location *LocationPlan `json:"location,omitempty"`
	// Hosts are the acquirer hosts (switch IDs) of the fleet: each terminal
	// uses one, picked by its ID, and names it in every transaction (txn
	// host). Empty: transactions name no host, as PROTOCOL §1's do.
	Hosts []string `json:"hosts,omitempty"`
	// DownHosts limits a fleet-wide event to the terminals of these hosts
	// (one acquirer down, the others fine); empty: every terminal.
	DownHosts []string `json:"down_hosts,omitempty"`
	// Wear makes the terminal report its parts' wear counters in hb.
	Wear *WearPlan `json:"wear,omitempty"`
	// SilentHours: the shop stopped selling this many hours before the
	// simulation started and sells nothing during it, its terminal online
	// all along (History gives the server the hours before the start).
	SilentHours float64 `json:"silent_hours,omitempty"`
}

// WearPlan is what a terminal's wear counters start at (ranges; one value
// is picked per terminal) and how they move: prints with every printed
// receipt, card insertions with every chip read, battery health down by
// BatteryHealthLossPerHour points per simulated hour. Mains-powered models
// report no battery counters.
type WearPlan struct {
	Prints                   [2]int64 `json:"prints"`
	CardInsertions           [2]int64 `json:"card_insertions"`
	BatteryCycles            [2]int64 `json:"battery_cycles"`
	BatteryHealthPct         [2]int   `json:"battery_health_pct"`
	BatteryHealthLossPerHour float64  `json:"battery_health_loss_per_hour"`
}

// signalState is a terminal's side of the signals; the counters are read
// by the heartbeat on the library's goroutine.
type signalState struct {
	host                  string
	prints, insertions    atomic.Int64
	cycles                int64
	health                float64
	wear, battery, silent bool
}

// initSignals picks the terminal's host and its counters' start.
func (t *simTerminal) initSignals() {
	b := &t.b
	if len(b.Hosts) > 0 {
		h := fnv.New32a()
		h.Write([]byte(t.ft.Terminal))
		t.sig.host = b.Hosts[h.Sum32()%uint32(len(b.Hosts))]
	}
	if w := b.Wear; w != nil {
		t.sig.wear = true
		t.sig.prints.Store(randRange64(w.Prints))
		t.sig.insertions.Store(randRange64(w.CardInsertions))
		t.sig.cycles = randRange64(w.BatteryCycles)
		t.sig.health = float64(randRange(w.BatteryHealthPct))
		t.sig.battery = !t.mains
	}
	t.sig.silent = b.SilentHours > 0
}

func randRange64(r [2]int64) int64 {
	if r[1] <= r[0] {
		return r[0]
	}
	return r[0] + rand.Int64N(r[1]-r[0]+1)
}

// hitBy tells whether a fleet-wide event's behaviour b reaches the
// terminal: every terminal, or those of its down hosts.
func (t *simTerminal) hitBy(b *Behavior) bool {
	return len(b.DownHosts) == 0 || slices.Contains(b.DownHosts, t.sig.host)
}

// signTxn adds the host to a transaction and wears the parts it used.
func (t *simTerminal) signTxn(tx *posfleet.Transaction) {
	tx.Host = t.sig.host
	if tx.Receipt == posfleet.ReceiptPrinted {
		t.sig.prints.Add(1)
	}
	if tx.Entry == posfleet.EntryChip || tx.Entry == posfleet.EntryFallback {
		t.sig.insertions.Add(1)
	}
}

// wearReport adds the wear counters to a heartbeat.
func (t *simTerminal) wearReport(hb *posfleet.Heartbeat) {
	if !t.sig.wear {
		return
	}
	hb.Prints, hb.CardInsertions = ptr(t.sig.prints.Load()), ptr(t.sig.insertions.Load())
	if t.sig.battery {
		lost := t.b.Wear.BatteryHealthLossPerHour * t.sim.SimMinute(time.Now()) / 60
		hb.BatteryCycles = ptr(t.sig.cycles)
		hb.BatteryHealthPct = ptr(max(0, int(math.Ceil(t.sig.health-lost))))
	}
}

// History gives learn what the server would have heard of each terminal
// in the weeks before now, for its sales baseline (health.Engine.
// LearnHistory): a sale in every hour of those weeks, round the clock (a
// fleet of convenience stores and petrol stations, so that a test does
// not depend on the hour it runs at), and a heartbeat in every hour; a
// silent shop's sales stop SilentHours before now.
func (s *Simulation) History(now time.Time, weeks int, learn func(ref posfleet.TerminalRef, sales, heard []time.Time)) {
	from := now.Add(-time.Duration(weeks) * 7 * 24 * time.Hour).Truncate(time.Hour)
	for _, t := range s.terms {
		stop := now.Add(-time.Duration(t.b.SilentHours * float64(time.Hour)))
		var sales, heard []time.Time
		for h := from; h.Before(now); h = h.Add(time.Hour) {
			at := h.Add(time.Duration(rand.Int64N(int64(time.Hour))))
			if at.After(now) {
				at = now
			}
			heard = append(heard, at)
			if at.Before(stop) {
				sales = append(sales, at)
			}
		}
		learn(t.ft.TerminalRef, sales, heard)
	}
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
	healthFlags = append(healthFlags, string(posfleet.FlagFallbackRate), string(posfleet.FlagMoved),
		string(posfleet.FlagSilent), string(posfleet.FlagWearDue))
}
