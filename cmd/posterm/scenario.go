package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The scenario file shipped with posterm: the field's failures of
// DOMAIN.md, each with the flag (PROTOCOL.md §2) it should raise.
//
//go:embed scenarios/*.json
var scenarioFiles embed.FS

// DefaultScenarios is the name of the embedded scenario file.
const DefaultScenarios = "scenarios/field.json"

// ScenarioFile is the data behind a simulated fleet: how a normal terminal
// behaves (Baseline) and how each scenario deviates from it.
type ScenarioFile struct {
	// Baseline is the behaviour of every terminal before its scenario.
	Baseline json.RawMessage `json:"baseline"`
	// Scenarios are assigned to terminals by share, or by name.
	Scenarios []Scenario `json:"scenarios"`
}

// Scenario is one kind of terminal, or one fleet-wide event.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Share is the part of the fleet (0..1) that gets this scenario; the
	// shares of terminal scenarios add up to at most 1 and healthy takes
	// the rest.
	Share float64 `json:"share"`
	// Terminals names terminals that get this scenario whatever the shares.
	Terminals []string `json:"terminals,omitempty"`
	// FleetWide scenarios (a bank host outage) apply to every terminal on
	// top of its own scenario, while their Window lasts.
	FleetWide bool `json:"fleet_wide,omitempty"`
	// Expect lists the flags (PROTOCOL.md §2) the server should raise for
	// the terminals of this scenario; "incident" for a fleet incident.
	// Empty: the terminal must stay unflagged (an operator's mistakes are
	// not the device's fault).
	Expect []string `json:"expect"`
	// Behavior holds the fields of Behavior that differ from the baseline.
	Behavior json.RawMessage `json:"behavior"`
}

// Behavior is how a simulated terminal acts. Rates are probabilities per
// transaction (0..1); ranges are [min, max]; times are simulated minutes
// since the start of the simulation.
type Behavior struct {
	// Models are the models a terminal of this kind may be, picked at
	// provisioning; MainsModels those powered from the mains, which report
	// no battery.
	Models      []string `json:"models"`
	MainsModels []string `json:"mains_models"`
	Firmware    string   `json:"firmware"`
	App         string   `json:"app"`

	// TxnPerHour is the number of transactions in the busiest hour of the
	// shop's day; Curve is the relative activity of each hour of the day
	// (0..1, 24 values, 0 while the shop is closed).
	TxnPerHour float64   `json:"txn_per_hour"`
	Curve      []float64 `json:"curve"`
	// AllDay makes a share of the shops trade round the clock (hours.go).
	AllDay   *AllDay    `json:"all_day,omitempty"`
	Amount   [2]int64   `json:"amount"` // minor units, log-uniform
	Currency string     `json:"currency"`
	Entry    EntryShare `json:"entry"`

	// Card-side declines (51, 05, 55, 54...), operator cancellations, and
	// sales keyed wrong and declined 13.
	DeclineRate float64 `json:"decline_rate"`
	CancelRate  float64 `json:"cancel_rate"`
	KeyingRate  float64 `json:"keying_error_rate"`
	// RefundRate is the share of transactions that are refunds;
	// RefundOverRate the share of refunds larger than their sale (answered
	// 13).
	RefundRate     float64 `json:"refund_rate"`
	RefundOverRate float64 `json:"refund_over_rate"`
	// Device and network failures: chip read errors (a share of those fall
	// back to the stripe), timeouts, terminal errors.
	ChipFailRate float64 `json:"chip_fail_rate"`
	FallbackRate float64 `json:"fallback_rate"`
	TimeoutRate  float64 `json:"timeout_rate"`
	ErrorRate    float64 `json:"error_rate"`
	// HostDownRate is the share of transactions the bank host fails
	// (HostRCs, or a timeout in HostTimeoutShare of them).
	HostDownRate     float64  `json:"host_down_rate"`
	HostRCs          []string `json:"host_rcs"`
	HostTimeoutShare float64  `json:"host_timeout_share"`
	HostMs           [2]int   `json:"host_ms"`
	ReceiptFailRate  float64  `json:"receipt_fail_rate"`

	// Heartbeat readings.
	Net       string     `json:"net"`
	SignalDBm [2]int     `json:"signal_dbm"`
	Battery   [2]int     `json:"battery_pct"`
	Charging  float64    `json:"charging"` // share of heartbeats charging
	TempC     [2]float64 `json:"temp_c"`
	Paper     string     `json:"paper"`

	// ClockDriftS is how far the terminal's clock is off, in seconds.
	ClockDriftS int `json:"clock_drift_s"`
	// Flap takes the link down for DownMin every UpMin+DownMin minutes.
	Flap *Flap `json:"flap,omitempty"`
	// Faults are raised (and cleared) on a schedule.
	Faults []FaultPlan `json:"faults,omitempty"`
	// Window limits a fleet-wide scenario to a time span.
	Window *Window `json:"window,omitempty"`
	// SignalBehavior: the optional signals (signals.go).
	SignalBehavior
}

// EntryShare is the mix of entry modes.
type EntryShare struct {
	Chip   float64 `json:"chip"`
	Tap    float64 `json:"tap"`
	QR     float64 `json:"qr"`
	Swipe  float64 `json:"swipe"`
	Manual float64 `json:"manual"`
}

// Flap is a link that keeps dropping.
type Flap struct {
	UpMin   float64 `json:"up_min"`
	DownMin float64 `json:"down_min"`
}

// FaultPlan raises a fault at AtMin, again every EveryMin (0: once), and
// clears it ClearAfterMin later (0: never).
type FaultPlan struct {
	Component     string  `json:"component"`
	Code          string  `json:"code"`
	Severity      string  `json:"severity"`
	Detail        string  `json:"detail,omitempty"`
	AtMin         float64 `json:"at_min"`
	EveryMin      float64 `json:"every_min"`
	ClearAfterMin float64 `json:"clear_after_min"`
}

// Window is a span of simulated time.
type Window struct {
	StartMin float64 `json:"start_min"`
	Minutes  float64 `json:"minutes"`
}

// Contains reports whether minute m is inside the window.
func (w *Window) Contains(m float64) bool {
	return w == nil || (m >= w.StartMin && m < w.StartMin+w.Minutes)
}

// healthFlags are the flags of PROTOCOL.md §2, and "incident".
var healthFlags = []string{
	"offline", "firmware_outdated", "firmware_blocked", "update_failed", "amount_mismatch",
	"txn_failures", "receipt_failures", "refund_anomaly", "hardware_fault", "tamper",
	"weak_network", "battery", "clock_skew", "incident",
}

// LoadScenarios reads a scenario file; "" reads the embedded one.
func LoadScenarios(path string) (*ScenarioFile, error) {
	var b []byte
	var err error
	if path == "" {
		b, err = scenarioFiles.ReadFile(DefaultScenarios)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("scenarios: %w", err)
	}
	return ParseScenarios(b)
}

// ParseScenarios parses and checks a scenario file.
func ParseScenarios(b []byte) (*ScenarioFile, error) {
	var f ScenarioFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("scenarios: %w", err)
	}
	if _, err := f.behavior(); err != nil {
		return nil, fmt.Errorf("scenarios: baseline: %w", err)
	}
	total := 0.0
	seen := map[string]bool{}
	for _, s := range f.Scenarios {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("scenarios: a scenario without a name")
		case seen[s.Name]:
			return nil, fmt.Errorf("scenarios: %s appears twice", s.Name)
		case s.Share < 0 || s.Share > 1:
			return nil, fmt.Errorf("scenarios: %s: share %v: want 0..1", s.Name, s.Share)
		}
		seen[s.Name] = true
		for _, fl := range s.Expect {
			if !slices.Contains(healthFlags, fl) {
				return nil, fmt.Errorf("scenarios: %s: expects %q, not a flag of PROTOCOL.md §2", s.Name, fl)
			}
		}
		b, err := f.behavior(&s)
		if err == nil && b.TxnPerHour < 0 {
			err = fmt.Errorf("negative txn_per_hour")
		}
		if err != nil {
			return nil, fmt.Errorf("scenarios: %s: %w", s.Name, err)
		}
		if s.FleetWide && b.Window == nil {
			return nil, fmt.Errorf("scenarios: %s: a fleet-wide scenario needs a window", s.Name)
		}
		if !s.FleetWide {
			total += s.Share
		}
	}
	if !seen["healthy"] {
		return nil, fmt.Errorf("scenarios: no healthy scenario")
	}
	if total > 1.0001 {
		return nil, fmt.Errorf("scenarios: shares add up to %.3f, over 1", total)
	}
	return &f, nil
}

// behavior returns the baseline with the changes of each scenario applied
// in turn: a terminal's own, then a fleet-wide event's.
func (f *ScenarioFile) behavior(scens ...*Scenario) (Behavior, error) {
	var b Behavior
	layers := []json.RawMessage{f.Baseline}
	for _, s := range scens {
		if s != nil && len(s.Behavior) > 0 {
			layers = append(layers, s.Behavior)
		}
	}
	for _, l := range layers {
		// Decoding into the same value overrides only the fields present.
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return b, err
		}
	}
	if len(b.Curve) != 24 {
		return b, fmt.Errorf("curve has %d values, want 24", len(b.Curve))
	}
	if len(b.Models) == 0 || b.Firmware == "" {
		return b, fmt.Errorf("want models and firmware")
	}
	return b, nil
}

// Scenario returns the named scenario.
func (f *ScenarioFile) Scenario(name string) (*Scenario, bool) {
	for i := range f.Scenarios {
		if f.Scenarios[i].Name == name {
			return &f.Scenarios[i], true
		}
	}
	return nil, false
}

// SetShares overrides shares from "name=share,name=share".
func (f *ScenarioFile) SetShares(mix string) error {
	if mix == "" {
		return nil
	}
	for _, part := range strings.Split(mix, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		share, err := strconv.ParseFloat(v, 64)
		s, found := f.Scenario(name)
		if !ok || err != nil || !found || share < 0 || share > 1 {
			return fmt.Errorf("mix %q: want name=share with a known scenario and a share in 0..1", part)
		}
		s.Share = share
	}
	total := 0.0
	for _, s := range f.Scenarios {
		if !s.FleetWide {
			total += s.Share
		}
	}
	if total > 1.0001 {
		return fmt.Errorf("mix: shares add up to %.3f, over 1", total)
	}
	return nil
}

// Assign gives each terminal a scenario: named terminals first, then shares
// (rounded, so that a 1% share of 300 terminals is 3 terminals), healthy
// for the rest, shuffled with seed so the same seed gives the same fleet.
func (f *ScenarioFile) Assign(terminals []string, seed uint64) map[string]string {
	out := make(map[string]string, len(terminals))
	for _, s := range f.Scenarios {
		for _, t := range s.Terminals {
			if slices.Contains(terminals, t) {
				out[t] = s.Name
			}
		}
	}
	var free []string
	for _, t := range terminals {
		if _, ok := out[t]; !ok {
			free = append(free, t)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	rng.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	n := len(free)
	names := make([]string, 0, len(f.Scenarios))
	for _, s := range f.Scenarios {
		if !s.FleetWide && s.Name != "healthy" && s.Share > 0 {
			names = append(names, s.Name)
		}
	}
	sort.Strings(names)
	next := 0
	for _, name := range names {
		s, _ := f.Scenario(name)
		k := int(s.Share*float64(n) + 0.5)
		if k == 0 {
			k = 1 // every scenario with a share shows up at least once
		}
		for ; k > 0 && next < len(free); k-- {
			out[free[next]] = name
			next++
		}
	}
	for ; next < len(free); next++ {
		out[free[next]] = "healthy"
	}
	return out
}

// FleetWide returns the fleet-wide scenarios.
func (f *ScenarioFile) FleetWide() []*Scenario {
	var out []*Scenario
	for i := range f.Scenarios {
		if f.Scenarios[i].FleetWide {
			out = append(out, &f.Scenarios[i])
		}
	}
	return out
}
