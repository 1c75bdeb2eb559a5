package health

import (
	"fmt"
	"sort"
	"time"

	"github.com/posfleet/posfleet"
)

// ErrUnknownTerminal is returned for a terminal the engine has never heard from.
// Its kind is NotFound: the API and the pages answer it as 404.
var ErrUnknownTerminal = posfleet.KindError(posfleet.NotFound, "health: unknown terminal")

// HeartbeatSummary is a terminal's last heartbeat. Absent readings are nil.
type HeartbeatSummary struct {
	At          time.Time `json:"at"`
	TS          time.Time `json:"ts"`
	UptimeS     *int64    `json:"uptime_s,omitempty"`
	BatteryPct  *int      `json:"battery_pct,omitempty"`
	Charging    bool      `json:"charging"`
	TempC       *float64  `json:"temp_c,omitempty"`
	SignalDBm   *int      `json:"signal_dbm,omitempty"`
	Net         string    `json:"net,omitempty"`
	HostRTTMs   *int      `json:"host_rtt_ms,omitempty"`
	Paper       string    `json:"paper,omitempty"`
	PendingTxns *int      `json:"pending_txns,omitempty"`
}

// OpenFault is a fault a terminal raised and has not cleared.
type OpenFault struct {
	Component string    `json:"component"`
	Code      string    `json:"code"`
	Severity  string    `json:"severity"`
	Since     time.Time `json:"since"`
	Detail    string    `json:"detail,omitempty"`
}

// TxnStats are a terminal's transaction statistics.
type TxnStats struct {
	// Recent is the number of transactions in the rolling window
	// (Config.TxnWindow) and RecentFailed its failures by cause.
	Recent       int                    `json:"recent"`
	RecentFailed map[posfleet.Cause]int `json:"recent_failed"`
	// Approved and Failed count every transaction since the terminal was
	// first seen; a failure explained by an open incident counts as host.
	Approved int64                    `json:"approved"`
	Failed   map[posfleet.Cause]int64 `json:"failed"`
	LastTxn  time.Time                `json:"last_txn,omitzero"`
}

// TerminalHealth is everything the engine knows about one terminal.
type TerminalHealth struct {
	Ref        posfleet.TerminalRef    `json:"-"`
	Tenant     string                  `json:"tenant"`
	Terminal   string                  `json:"terminal"`
	Site       Site                    `json:"site"`
	Online     bool                    `json:"online"`
	FirstSeen  time.Time               `json:"first_seen"`
	LastSeen   time.Time               `json:"last_seen"`
	Model      string                  `json:"model,omitempty"`
	Serial     string                  `json:"serial,omitempty"`
	Firmware   string                  `json:"firmware,omitempty"`
	App        string                  `json:"app,omitempty"`
	BootReason string                  `json:"boot_reason,omitempty"`
	LastUpdate *posfleet.UpdateAttempt `json:"last_update,omitempty"`
	Heartbeat  *HeartbeatSummary       `json:"last_heartbeat,omitempty"`
	OpenFaults []OpenFault             `json:"open_faults"`
	Flags      []posfleet.Flag         `json:"flags"`
	Txns       TxnStats                `json:"txn_stats"`
	Service    []ServiceRecord         `json:"service"`
}

// Has reports whether the terminal has flag f raised.
func (h *TerminalHealth) Has(f posfleet.FlagName) bool {
	for _, fl := range h.Flags {
		if fl.Name == f {
			return true
		}
	}
	return false
}

// flags returns the raised flags with their evidence.
func (e *Engine) flags(s *termState, now int64, pol *compiledPolicy, view *incidentView) []posfleet.Flag {
	out := []posfleet.Flag{}
	th := e.resolve(s)
	for i := range nFlags {
		if s.raised[i] == 0 {
			continue
		}
		v := e.decide(s, i, now, th, pol, view)
		if !v.on {
			// Raised at the last update, but the window moved on since;
			// the next Tick clears it.
			continue
		}
		spec := posfleet.FlagSpecs[i]
		out = append(out, posfleet.Flag{Name: spec.Name, Kind: spec.Kind, Since: tm(s.raised[i]),
			Urgent: v.urgent || posfleet.FlagSpecs[i].Urgent, Evidence: e.explain(s, i, now, th, pol, view)})
	}
	return out
}

func (e *Engine) health(s *termState, now int64, pol *compiledPolicy, view *incidentView) TerminalHealth {
	h := TerminalHealth{
		Ref: s.Ref, Tenant: s.Ref.Tenant, Terminal: s.Ref.Terminal,
		FirstSeen: tm(s.FirstSeen), LastSeen: tm(s.LastSeen),
		Model: s.Model, Serial: s.Serial, Firmware: s.Firmware, App: s.App, BootReason: s.BootReason,
		OpenFaults: []OpenFault{},
		Flags:      e.flags(s, now, pol, view),
		Service:    append([]ServiceRecord{}, s.Service...),
	}
	for i := range h.Service {
		if h.Service[i].Cleared == nil {
			// A snapshot does not keep empty lists apart from none.
			h.Service[i].Cleared = []posfleet.FlagName{}
		}
	}
	h.Online = s.raised[fOffline] == 0 && s.WillAt == 0 && now-s.LastSeen <= e.resolve(s).OfflineAfter.Milliseconds()
	h.Site.Merchant = s.Merchant
	h.Site.Model = s.Model
	if s.Update.Status != "" {
		u := s.Update
		h.LastUpdate = &u
	}
	if s.LastHB.At != 0 {
		hb := &HeartbeatSummary{At: tm(s.LastHB.At), TS: tm(s.LastHB.TS), Charging: s.LastHB.Charging,
			Net: s.LastHB.Net, Paper: s.LastHB.Paper}
		if s.LastHB.Uptime >= 0 {
			v := s.LastHB.Uptime
			hb.UptimeS = &v
		}
		if s.LastHB.Battery >= 0 {
			v := int(s.LastHB.Battery)
			hb.BatteryPct = &v
		}
		if s.LastHB.HasTemp {
			v := float64(s.LastHB.TempC)
			hb.TempC = &v
		}
		if s.LastHB.HasSignal {
			v := int(s.LastHB.Signal)
			hb.SignalDBm = &v
		}
		if s.LastHB.RTT >= 0 {
			v := int(s.LastHB.RTT)
			hb.HostRTTMs = &v
		}
		if s.LastHB.Pending >= 0 {
			v := int(s.LastHB.Pending)
			hb.PendingTxns = &v
		}
		h.Heartbeat = hb
	}
	for _, f := range s.Faults {
		h.OpenFaults = append(h.OpenFaults, OpenFault{Component: f.Component, Code: f.Code,
			Severity: f.Severity, Since: tm(f.At), Detail: f.Detail})
	}
	h.Txns = TxnStats{RecentFailed: map[posfleet.Cause]int{}, Failed: map[posfleet.Cause]int64{},
		Approved: int64(s.Causes[cNone]), LastTxn: tm(s.LastTxnAt)}
	for c := 1; c < nCauses; c++ {
		h.Txns.Failed[causeByIndex[c]] = int64(s.Causes[c])
	}
	window := min(e.resolve(s).TxnWindow, int(s.TxnCount))
	for i := 1; i <= window; i++ {
		at, cause, hostSide := unpackOutcome(s.Txn[(int(s.TxnNext)-i+TxnRing)%TxnRing])
		h.Txns.Recent++
		if cause == cNone {
			continue
		}
		if hostSide && view.covers(s.Ref.Tenant, s.Host, at) {
			cause = cHost
		}
		h.Txns.RecentFailed[causeByIndex[cause]]++
	}
	return h
}

func (e *Engine) site(h *TerminalHealth) {
	if e.cfg.Site == nil {
		return
	}
	if st, ok := e.cfg.Site(h.Ref); ok {
		if st.Model == "" {
			st.Model = h.Site.Model
		}
		if st.Merchant == "" {
			st.Merchant = h.Site.Merchant
		}
		h.Site = st
	}
}

// Terminal returns the health of one terminal; false if it was never heard from.
func (e *Engine) Terminal(ref posfleet.TerminalRef) (TerminalHealth, bool) {
	now := ms(e.cfg.Now())
	pol, view := e.policy.Load(), e.incView.Load()
	sh := e.shard(ref)
	sh.mu.Lock()
	s, ok := sh.m[ref]
	var h TerminalHealth
	if ok {
		h = e.health(s, now, pol, view)
	}
	sh.mu.Unlock()
	if ok {
		e.site(&h)
	}
	return h, ok
}

// Terminals returns the terminals of tenant ("" for every tenant) that have
// flag (or any terminal, for ""), sorted by tenant and terminal ID.
func (e *Engine) Terminals(tenant string, flag posfleet.FlagName) []TerminalHealth {
	fi := -1
	if flag != "" {
		if fi = posfleet.FlagIndex(flag); fi < 0 {
			return nil
		}
	}
	now := ms(e.cfg.Now())
	pol, view := e.policy.Load(), e.incView.Load()
	var out []TerminalHealth
	e.each(tenant, func(s *termState) {
		if fi >= 0 && s.raised[fi] == 0 {
			return
		}
		h := e.health(s, now, pol, view)
		if fi >= 0 && !h.Has(flag) {
			return
		}
		out = append(out, h)
	})
	for i := range out {
		e.site(&out[i])
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Terminal < out[j].Terminal
	})
	return out
}

// FleetSummary is the state of a tenant's fleet at a glance (PROTOCOL.md §3, GET /api/v1/fleet).
type FleetSummary struct {
	// Total counts the terminals heard from and the provisioned ones never
	// heard from: Online + Offline + NeverConnected.
	Total   int `json:"total"`
	Online  int `json:"online"`
	Offline int `json:"offline"`
	// NeverConnected counts provisioned terminals (Engine.Provision) that
	// never sent a message; they have no flags, model or firmware yet.
	NeverConnected int                       `json:"never_connected"`
	Flagged        map[posfleet.FlagName]int `json:"flagged"`
	Models         map[string]map[string]int `json:"models"` // model → firmware → terminals
	Causes         map[posfleet.Cause]int64  `json:"failed_by_cause"`
	// Approved counts approved transactions fleet-wide.
	Approved        int64             `json:"approved"`
	OpenIncidents   []Incident        `json:"open_incidents"`
	SuspectFirmware []FirmwareFinding `json:"suspect_firmware"`
}

// FleetSummary returns the totals of tenant's fleet ("" for every tenant).
func (e *Engine) FleetSummary(tenant string) FleetSummary {
	now := ms(e.cfg.Now())
	fs := FleetSummary{Flagged: map[posfleet.FlagName]int{}, Models: map[string]map[string]int{},
		Causes: map[posfleet.Cause]int64{}, OpenIncidents: []Incident{}}
	for _, c := range posfleet.Causes {
		fs.Causes[c] = 0
	}
	e.each(tenant, func(s *termState) {
		fs.Total++
		offline := s.raised[fOffline] != 0 || s.WillAt != 0 || now-s.LastSeen > e.resolve(s).OfflineAfter.Milliseconds()
		if offline {
			fs.Offline++
		} else {
			fs.Online++
		}
		for i := range nFlags {
			if s.raised[i] != 0 {
				fs.Flagged[posfleet.FlagNames[i]]++
			}
		}
		model, fw := s.Model, s.Firmware
		if model == "" {
			model = "unknown"
		}
		if fw == "" {
			fw = "unknown"
		}
		if fs.Models[model] == nil {
			fs.Models[model] = map[string]int{}
		}
		fs.Models[model][fw]++
		fs.Approved += int64(s.Causes[cNone])
		for c := 1; c < nCauses; c++ {
			fs.Causes[causeByIndex[c]] += int64(s.Causes[c])
		}
	})
	e.eachNeverConnected(tenant, func(posfleet.TerminalRef) {
		fs.Total++
		fs.NeverConnected++
	})
	for _, inc := range e.Incidents(tenant) {
		if inc.Open {
			fs.OpenIncidents = append(fs.OpenIncidents, inc)
		}
	}
	fs.SuspectFirmware = e.SuspectFirmware(tenant)
	return fs
}

// MarkServiced records a crew visit to ref at time at and clears its
// maintenance flags: from now on only evidence that arrives after at counts
// for them. It returns the flags it cleared.
//
// A note posfleet.ValidateNote refuses is an error (wrapping its reason):
// nothing is recorded.
func (e *Engine) MarkServiced(ref posfleet.TerminalRef, note, by string, at time.Time) ([]posfleet.FlagName, error) {
	if err := posfleet.ValidateNote(note); err != nil {
		return nil, fmt.Errorf("mark %s serviced: %w", ref, err)
	}
	if at.IsZero() {
		at = e.cfg.Now()
	}
	sh := e.shard(ref)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.m[ref]
	if !ok {
		return nil, fmt.Errorf("mark %s serviced: %w", ref, ErrUnknownTerminal)
	}
	cleared := []posfleet.FlagName{}
	for i := range nFlags {
		if s.raised[i] != 0 && posfleet.FlagSpecs[i].Kind == posfleet.KindMaintenance {
			cleared = append(cleared, posfleet.FlagNames[i])
		}
	}
	n := ms(at)
	// Evidence at the very millisecond of the visit is old evidence.
	s.ServicedAt = max(s.ServicedAt, n+1)
	s.LowBatStreak, s.LowBatSince = 0, 0
	rec := ServiceRecord{At: at.UTC(), By: by, Note: note, Cleared: cleared}
	if len(s.Service) >= MaxServiceRecords {
		s.Service = append(s.Service[:0], s.Service[1:]...)
	}
	s.Service = append(s.Service, rec)
	sh.markDirty(s) // its service record
	e.reassess(sh, s, mAll, max(n, ms(e.cfg.Now())), by)
	return cleared, nil
}
