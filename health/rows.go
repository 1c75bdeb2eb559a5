package health

import (
	"sort"
	"time"

	"github.com/posfleet/posfleet"
)

// Row is a terminal as a list shows it: identity, online state, inventory
// and the names of its raised flags, without evidence or site. It is cheap
// enough to make for 100,000 terminals per request; a page then asks
// Terminal for the full health of the rows it shows.
type Row struct {
	Ref      posfleet.TerminalRef
	Online   bool
	LastSeen time.Time
	Model    string
	Firmware string
	Serial   string
	Merchant string
	Flags    []posfleet.FlagName
	// NeverConnected marks a provisioned terminal never heard from: not
	// online, zero LastSeen, nothing reported.
	NeverConnected bool
}

// Rows returns the terminals of tenant ("" for every tenant) that have
// flag raised (any terminal for "", including the provisioned ones never
// heard from), sorted by tenant and terminal ID. A
// flag whose window moved on since the last Tick may still be listed until
// the next Tick clears it (Config.TickInterval); Terminal judges it afresh.
func (e *Engine) Rows(tenant string, flag posfleet.FlagName) []Row {
	fi := -1
	if flag != "" {
		if fi = posfleet.FlagIndex(flag); fi < 0 {
			return nil
		}
	}
	now := ms(e.cfg.Now())
	var out []Row
	e.each(tenant, func(s *termState) {
		if fi >= 0 && s.raised[fi] == 0 {
			return
		}
		r := Row{Ref: s.Ref, LastSeen: tm(s.LastSeen), Model: s.Model, Firmware: s.Firmware, Serial: s.Serial, Merchant: s.Merchant,
			Online: s.raised[fOffline] == 0 && s.WillAt == 0 && now-s.LastSeen <= e.resolve(s).OfflineAfter.Milliseconds()}
		for i := range nFlags {
			if s.raised[i] != 0 {
				r.Flags = append(r.Flags, posfleet.FlagNames[i])
			}
		}
		out = append(out, r)
	})
	if fi < 0 {
		e.eachNeverConnected(tenant, func(ref posfleet.TerminalRef) {
			out = append(out, Row{Ref: ref, NeverConnected: true})
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ref.Tenant != out[j].Ref.Tenant {
			return out[i].Ref.Tenant < out[j].Ref.Tenant
		}
		return out[i].Ref.Terminal < out[j].Ref.Terminal
	})
	return out
}

// Site returns where a terminal stands, from Config.Site.
func (e *Engine) Site(ref posfleet.TerminalRef) (Site, bool) {
	if e.cfg.Site == nil {
		return Site{}, false
	}
	return e.cfg.Site(ref)
}
