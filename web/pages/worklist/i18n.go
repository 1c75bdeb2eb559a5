package worklist

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/parts"
)

// PartKey is the catalogue ID of a part to bring (posfleet.FlagParts and
// ComponentParts name them in English): "spare SIM card" is
// worklist.part.spare_sim_card.
func PartKey(part string) string {
	var b strings.Builder
	under := false
	for _, c := range strings.ToLower(part) {
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(c)
			under = false
			continue
		}
		under = true
	}
	return "worklist.part." + b.String()
}

// Part is a part to bring in the reader's language.
func Part(ctx context.Context, part string) string {
	return locale.T(ctx, PartKey(part))
}

// Parts is a list of parts to bring in the reader's language, joined with
// sep's message (worklist.parts_separator on the page, worklist.csv.
// parts_separator in the CSV), or nothing when empty.
func Parts(ctx context.Context, parts []string, sep string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = Part(ctx, p)
	}
	return strings.Join(out, locale.T(ctx, sep))
}

func bring(ctx context.Context, parts []string) string {
	if len(parts) == 0 {
		return locale.T(ctx, "worklist.bring", "Parts", locale.T(ctx, "worklist.bring_nothing"))
	}
	return locale.T(ctx, "worklist.bring", "Parts", Parts(ctx, parts, "worklist.parts_separator"))
}

// Action says what a crew should do about a reason, in the reader's
// language, times in its zone: health's WorkReason.Action, from the
// catalogue and the reason's evidence.
func Action(ctx context.Context, r health.WorkReason) string {
	at := func(t time.Time) string {
		if t.IsZero() {
			return locale.T(ctx, "worklist.action.unknown")
		}
		return locale.Minute(ctx, t)
	}
	switch ev := r.Evidence.(type) {
	case *posfleet.OfflineEvidence:
		if ev.Reason == posfleet.OfflineLastWill {
			return locale.T(ctx, "worklist.action.offline_will", "At", at(ev.LastSeen))
		}
		return locale.T(ctx, "worklist.action.offline_silent", "At", at(ev.LastSeen))
	case *posfleet.TamperEvidence:
		var events []string
		for _, x := range ev.Events {
			events = append(events, locale.T(ctx, "worklist.action.tamper_event", "Component", x.Component, "Code", x.Code, "At", at(x.At)))
		}
		return strings.TrimSpace(locale.T(ctx, "worklist.action.tamper", "Events", strings.Join(events, " ")))
	case *posfleet.HardwareFaultEvidence:
		var out []string
		for _, x := range ev.Faults {
			out = append(out, faultAction(ctx, x.Component, x.Code, at(x.Since)))
		}
		return strings.Join(out, " ")
	case *posfleet.TxnFailuresEvidence:
		return locale.T(ctx, "worklist.action.txn_failures", "Failed", ev.Failed, "Total", ev.Total,
			"Terminal", ev.ByCause.Terminal, "Network", ev.ByCause.Network)
	case *posfleet.ReceiptFailuresEvidence:
		if ev.Paper == posfleet.PaperOut {
			return locale.T(ctx, "worklist.action.paper_out", "At", at(ev.PaperOutAt))
		}
		return locale.T(ctx, "worklist.action.receipt_failures", "Count", ev.FailedReceipts, "Hours", ev.WindowH)
	case *posfleet.WeakNetworkEvidence:
		if ev.WeakSignal {
			median := locale.T(ctx, "worklist.action.unknown")
			if ev.MedianSignalDBm != nil {
				median = strconv.FormatFloat(*ev.MedianSignalDBm, 'f', -1, 64)
			}
			return locale.T(ctx, "worklist.action.weak_signal", "Heartbeats", ev.Heartbeats, "Median", median)
		}
		p90 := locale.T(ctx, "worklist.action.unknown")
		if ev.P90HostRTTMs != nil {
			p90 = locale.Int(ctx, int64(*ev.P90HostRTTMs))
		}
		return locale.T(ctx, "worklist.action.slow_host", "P90", p90, "Limit", ev.RTTThresholdMs)
	case *posfleet.BatteryEvidence:
		if ev.TempC != nil {
			return locale.T(ctx, "worklist.action.battery_hot", "Temp", strconv.FormatFloat(*ev.TempC, 'f', -1, 64), "At", at(ev.ReportedAt))
		}
		pct, beats := locale.T(ctx, "worklist.action.unknown"), locale.T(ctx, "worklist.action.unknown")
		if ev.BatteryPct != nil {
			pct = strconv.Itoa(*ev.BatteryPct)
		}
		if ev.LowHeartbeats != nil {
			beats = strconv.Itoa(*ev.LowHeartbeats)
		}
		return locale.T(ctx, "worklist.action.battery_low", "Pct", pct, "Heartbeats", beats, "At", at(ev.LowSince))
	case *posfleet.FallbackRateEvidence:
		return locale.T(ctx, "worklist.action.fallback_rate", "Count", ev.Count, "Total", ev.Total)
	case *posfleet.WearDueEvidence:
		var out []string
		for _, p := range ev.Parts {
			kv := []any{"Part", parts.WearPart(ctx, p.Part), "Counter", parts.EvidenceKey(ctx, p.Counter),
				"Value", locale.Int(ctx, p.Value), "Rated", locale.Int(ctx, p.RatedLife),
				"PerDay", strconv.FormatFloat(p.PerDay, 'f', -1, 64), "Days", strconv.FormatFloat(p.DaysLeft, 'f', -1, 64)}
			if p.DaysLeft <= 0 {
				out = append(out, locale.T(ctx, "worklist.action.wear_due_now", kv...))
			} else {
				out = append(out, locale.T(ctx, "worklist.action.wear_due", kv...))
			}
		}
		return strings.Join(out, " ")
	case *posfleet.ClockSkewEvidence:
		if ev.SkewS < 0 {
			return locale.T(ctx, "worklist.action.clock_behind", "Skew", -ev.SkewS, "At", at(ev.ServerTS))
		}
		return locale.T(ctx, "worklist.action.clock_ahead", "Skew", ev.SkewS, "At", at(ev.ServerTS))
	}
	return locale.T(ctx, "worklist.action.inspect")
}

func faultAction(ctx context.Context, component, code, at string) string {
	kv := []any{"Code", code, "At", at}
	switch component {
	case posfleet.ComponentPrinter:
		if code == "PAPER_OUT" {
			return locale.T(ctx, "worklist.action.fault_paper_out", kv...)
		}
		return locale.T(ctx, "worklist.action.fault_printer", kv...)
	case posfleet.ComponentMSR, posfleet.ComponentICC, posfleet.ComponentNFC, posfleet.ComponentKeypad,
		posfleet.ComponentDisplay, posfleet.ComponentBattery, posfleet.ComponentModem, posfleet.ComponentStorage,
		posfleet.ComponentClock, posfleet.ComponentApp:
		return locale.T(ctx, "worklist.action.fault_"+component, kv...)
	}
	return locale.T(ctx, "worklist.action.fault_other", append(kv, "Component", component)...)
}
