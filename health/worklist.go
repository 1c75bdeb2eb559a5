package health

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
)

// Work list priorities, most pressing first.
const (
	// PriorityTamper: a terminal that may be compromised must leave the
	// counter before it reads another card.
	PriorityTamper = 1
	// PrioritySelling: a terminal that went offline while the shop was
	// selling costs the merchant every sale until a crew comes.
	PrioritySelling = 2
	// PriorityFailing: the terminal is up but fails payments or receipts,
	// or has a critical fault.
	PriorityFailing = 3
	// PriorityRoutine: everything else a crew should look at.
	PriorityRoutine = 4
)

// WorkReason is one maintenance flag of a work item, with what to do about it.
type WorkReason struct {
	Flag     posfleet.FlagName `json:"flag"`
	Since    time.Time         `json:"since"`
	Evidence posfleet.Evidence `json:"evidence"`
	// Action says in plain words what the crew should do and why.
	Action string `json:"action"`
}

// UnmarshalJSON decodes a reason with the evidence type of its flag.
func (r *WorkReason) UnmarshalJSON(data []byte) error {
	type plain WorkReason
	var raw struct {
		plain
		Evidence json.RawMessage `json:"evidence"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	ev, err := posfleet.DecodeEvidence(raw.Flag, raw.Evidence)
	if err != nil {
		return err
	}
	*r = WorkReason(raw.plain)
	r.Evidence = ev
	return nil
}

// WorkItem is one terminal that needs a crew visit.
type WorkItem struct {
	Ref      posfleet.TerminalRef `json:"-"`
	Tenant   string               `json:"tenant"`
	Terminal string               `json:"terminal"`
	Site
	Firmware string       `json:"firmware,omitempty"`
	LastSeen time.Time    `json:"last_seen"`
	Priority int          `json:"priority"`
	Urgent   bool         `json:"urgent"`
	Reasons  []WorkReason `json:"reasons"`
}

// WorkGroup is the work items of one site.
type WorkGroup struct {
	Region string     `json:"region"`
	Site   string     `json:"site"`
	Items  []WorkItem `json:"items"`
}

// WorkList returns one item per terminal of tenant ("" for every tenant)
// with a maintenance flag, most pressing first, then by region, site and
// terminal.
func (e *Engine) WorkList(tenant string) []WorkItem {
	now := ms(e.cfg.Now())
	pol, view := e.policy.Load(), e.incView.Load()
	var items []WorkItem
	e.each(tenant, func(s *termState) {
		if it, ok := e.workItem(s, now, pol, view); ok {
			items = append(items, it)
		}
	})
	for i := range items {
		h := TerminalHealth{Ref: items[i].Ref, Site: items[i].Site}
		e.site(&h)
		items[i].Site = h.Site
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := &items[i], &items[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if a.Region != b.Region {
			return a.Region < b.Region
		}
		if a.Site.Site != b.Site.Site {
			return a.Site.Site < b.Site.Site
		}
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		return a.Terminal < b.Terminal
	})
	return items
}

// workItem is s's work-list item (its site not yet from Config.Site);
// false without a maintenance flag. Under s's shard's lock.
func (e *Engine) workItem(s *termState, now int64, pol *compiledPolicy, view *incidentView) (WorkItem, bool) {
	need := false
	for i := range nFlags {
		if s.raised[i] != 0 && posfleet.FlagSpecs[i].Kind == posfleet.KindMaintenance {
			need = true
			break
		}
	}
	if !need {
		return WorkItem{}, false
	}
	h := e.health(s, now, pol, view)
	it := WorkItem{Ref: s.Ref, Tenant: s.Ref.Tenant, Terminal: s.Ref.Terminal, Site: h.Site,
		Firmware: h.Firmware, LastSeen: h.LastSeen, Priority: PriorityRoutine}
	for _, f := range h.Flags {
		if f.Kind != posfleet.KindMaintenance {
			continue
		}
		it.Reasons = append(it.Reasons, WorkReason{Flag: f.Name, Since: f.Since, Evidence: f.Evidence, Action: action(f)})
		it.Urgent = it.Urgent || f.Urgent
		it.Priority = min(it.Priority, priority(f))
	}
	return it, len(it.Reasons) > 0
}

// GroupWorkList groups work items by region and site; a group comes where
// its most pressing item would, so a crew planning a route sees first the
// sites with the worst problems.
func GroupWorkList(items []WorkItem) []WorkGroup {
	var groups []WorkGroup
	index := map[[2]string]int{}
	for _, it := range items {
		k := [2]string{it.Region, it.Site.Site}
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, WorkGroup{Region: it.Region, Site: it.Site.Site})
		}
		groups[i].Items = append(groups[i].Items, it)
	}
	return groups
}

func priority(f posfleet.Flag) int {
	switch ev := f.Evidence.(type) {
	case *posfleet.TamperEvidence:
		return PriorityTamper
	case *posfleet.OfflineEvidence:
		if ev.WasSelling {
			return PrioritySelling
		}
	case *posfleet.TxnFailuresEvidence, *posfleet.ReceiptFailuresEvidence:
		return PriorityFailing
	case *posfleet.HardwareFaultEvidence:
		for _, x := range ev.Faults {
			if x.Severity == posfleet.SeverityCritical {
				return PriorityFailing
			}
		}
	}
	return PriorityRoutine
}

// clock formats a time for a crew: the time of day first, the date after.
func clock(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format("15:04 UTC on 2 Jan")
}

// action says what a crew should do about a maintenance flag.
func action(f posfleet.Flag) string {
	switch ev := f.Evidence.(type) {
	case *posfleet.OfflineEvidence:
		if ev.Reason == posfleet.OfflineLastWill {
			return fmt.Sprintf("Check the terminal's power and network connection; it dropped off the network at %s.", clock(ev.LastSeen))
		}
		return fmt.Sprintf("Check the terminal's power and network connection; it was last heard from at %s.", clock(ev.LastSeen))
	case *posfleet.TamperEvidence:
		var parts []string
		for _, x := range ev.Events {
			parts = append(parts, fmt.Sprintf("%s reported %s at %s", x.Component, x.Code, clock(x.At)))
		}
		return "Take the terminal out of service at once and bring it back for inspection; do not let it read another card. " +
			"The " + strings.Join(parts, "; the ") + "."
	case *posfleet.HardwareFaultEvidence:
		var parts []string
		for _, x := range ev.Faults {
			parts = append(parts, faultAction(x.Component, x.Code, clock(x.Since)))
		}
		return strings.Join(parts, " ")
	case *posfleet.TxnFailuresEvidence:
		return fmt.Sprintf("Run a test sale with a chip card and a contactless card, check the card readers, the network cable or SIM card and the signal; "+
			"%d of the last %d transactions failed (%d on the terminal, %d on the network).",
			ev.Failed, ev.Total, ev.ByCause.Terminal, ev.ByCause.Network)
	case *posfleet.ReceiptFailuresEvidence:
		if ev.Paper == posfleet.PaperOut {
			return fmt.Sprintf("Replace the printer paper roll and print a test receipt; the terminal reported paper out at %s.", clock(ev.PaperOutAt))
		}
		return fmt.Sprintf("Check the printer and the paper roll and print a test receipt; %d approved payments had no receipt printed in the last %d hours.",
			ev.FailedReceipts, ev.WindowH)
	case *posfleet.WeakNetworkEvidence:
		if ev.WeakSignal {
			return fmt.Sprintf("Improve the terminal's signal: check the SIM card and antenna, move the terminal or the Wi-Fi router closer, or use a cable; "+
				"the median signal over the last %d heartbeats was %v dBm.", ev.Heartbeats, orNil(ev.MedianSignalDBm))
		}
		return fmt.Sprintf("Check the shop's internet connection and router; payments take too long to reach the bank (90%% of round trips under %v ms, limit %d ms).",
			orNil(ev.P90HostRTTMs), ev.RTTThresholdMs)
	case *posfleet.BatteryEvidence:
		if ev.TempC != nil {
			return fmt.Sprintf("Move the terminal away from heat and sunlight and check its battery for swelling; it reported %v °C at %s.", *ev.TempC, clock(ev.ReportedAt))
		}
		return fmt.Sprintf("Replace the battery or the charger and check the charging cradle; the battery was at %v%% and not charging for %v heartbeats in a row since %s.",
			orNil(ev.BatteryPct), orNil(ev.LowHeartbeats), clock(ev.LowSince))
	case *posfleet.FallbackRateEvidence:
		return fmt.Sprintf("Check the chip card slot for an overlay or a skimmer, clean it with a cleaning card and test a chip card; "+
			"replace the chip reader if chip cards still fall back to the stripe. %d of the last %d chip payments fell back.", ev.Count, ev.Total)
	case *posfleet.WearDueEvidence:
		var out []string
		for _, p := range ev.Parts {
			part := strings.ReplaceAll(p.Part, "_", " ")
			if p.DaysLeft <= 0 {
				out = append(out, fmt.Sprintf("Bring a new %s and fit it on this visit; it is past its rated life (%s %d, rated %d).",
					part, p.Counter, p.Value, p.RatedLife))
				continue
			}
			out = append(out, fmt.Sprintf("Bring a new %s and fit it on this visit; it reaches its rated life in about %v days (%s %d, %v a day, rated %d).",
				part, p.DaysLeft, p.Counter, p.Value, p.PerDay, p.RatedLife))
		}
		return strings.Join(out, " ")
	case *posfleet.ClockSkewEvidence:
		skew, dir := ev.SkewS, "ahead of"
		if skew < 0 {
			dir, skew = "behind", -skew
		}
		return fmt.Sprintf("Set the terminal's date and time and check its time synchronisation; its clock was %d s %s the server's at %s.", skew, dir, clock(ev.ServerTS))
	}
	return "Inspect the terminal."
}

// orNil is what a reading points to, or nil for %v to print as before
// (evidence used to be a map, where a missing reading was nil).
func orNil[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func faultAction(component, code, at string) string {
	switch component {
	case posfleet.ComponentPrinter:
		if code == "PAPER_OUT" {
			return fmt.Sprintf("Replace the printer paper roll; the printer reported PAPER_OUT at %s.", at)
		}
		return fmt.Sprintf("Open the printer, clear any jammed paper, clean the print head and print a test receipt; the printer reported %s at %s.", code, at)
	case posfleet.ComponentMSR:
		return fmt.Sprintf("Clean the card swipe slot with a cleaning card and test a swipe; replace the stripe reader if it still fails. It reported %s at %s.", code, at)
	case posfleet.ComponentICC:
		return fmt.Sprintf("Clean the chip card slot and test a chip card; replace the chip reader if it still fails. It reported %s at %s.", code, at)
	case posfleet.ComponentNFC:
		return fmt.Sprintf("Test a contactless payment; replace the contactless reader if it fails. It reported %s at %s.", code, at)
	case posfleet.ComponentKeypad:
		return fmt.Sprintf("Test every key; replace the keypad if a key sticks or does not respond. It reported %s at %s.", code, at)
	case posfleet.ComponentDisplay:
		return fmt.Sprintf("Check the screen; replace it if it is dark, garbled or does not respond to touch. It reported %s at %s.", code, at)
	case posfleet.ComponentBattery:
		return fmt.Sprintf("Replace the battery. It reported %s at %s.", code, at)
	case posfleet.ComponentModem:
		return fmt.Sprintf("Check the SIM card and the antenna and the mobile signal at the counter. The modem reported %s at %s.", code, at)
	case posfleet.ComponentStorage:
		return fmt.Sprintf("Swap the terminal for a spare and bring it back; its storage reported %s at %s.", code, at)
	case posfleet.ComponentClock:
		return fmt.Sprintf("Set the date and time and replace the clock battery. The clock reported %s at %s.", code, at)
	case posfleet.ComponentApp:
		return fmt.Sprintf("Restart the terminal; if the error comes back, reinstall the payment app. The app reported %s at %s.", code, at)
	}
	return fmt.Sprintf("Inspect the %s; it reported %s at %s.", component, code, at)
}
