// Package parts holds what several pages show the same way: flags as
// badges, their evidence in plain words, times and counts.
package parts

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
)

// FlagLabel is a flag's name for people.
func FlagLabel(f posfleet.FlagName) string {
	switch f {
	case posfleet.FlagOffline:
		return "Offline"
	case posfleet.FlagFirmwareOutdated:
		return "Firmware outdated"
	case posfleet.FlagFirmwareBlocked:
		return "Firmware blocked"
	case posfleet.FlagUpdateFailed:
		return "Update failed"
	case posfleet.FlagAmountMismatch:
		return "Amount mismatch"
	case posfleet.FlagTxnFailures:
		return "Payments failing"
	case posfleet.FlagReceiptFailures:
		return "Receipts failing"
	case posfleet.FlagRefundAnomaly:
		return "Refund anomaly"
	case posfleet.FlagHardwareFault:
		return "Hardware fault"
	case posfleet.FlagTamper:
		return "Tamper"
	case posfleet.FlagWeakNetwork:
		return "Weak network"
	case posfleet.FlagBattery:
		return "Battery"
	case posfleet.FlagClockSkew:
		return "Clock wrong"
	}
	return string(f)
}

// BadgeClass is the css class of a flag's badge: by who acts on it, red
// when urgent.
func BadgeClass(f posfleet.Flag) string {
	if f.Urgent || f.Name.Urgent() {
		return "badge urgent"
	}
	return "badge " + string(f.Name.Kind())
}

// KindLabel says who acts on a kind of flag.
func KindLabel(k posfleet.FlagKind) string {
	switch k {
	case posfleet.KindMaintenance:
		return "needs a visit"
	case posfleet.KindUpdate:
		return "needs an update"
	case posfleet.KindInvestigate:
		return "under investigation"
	}
	return string(k)
}

// Describe says in one sentence why a flag is raised, from its evidence.
func Describe(f posfleet.Flag) string {
	switch ev := f.Evidence.(type) {
	case *posfleet.OfflineEvidence:
		if ev.Reason == posfleet.OfflineLastWill {
			return "The terminal dropped off the network (its connection ended without a goodbye) at " + Value(ev.LastSeen) + "."
		}
		return "Nothing heard from the terminal since " + Value(ev.LastSeen) + "."
	case *posfleet.FirmwareOutdatedEvidence:
		s := fmt.Sprintf("Runs %s; the policy's target for %s is %s.", Value(ev.Firmware), Value(ev.Model), Value(ev.Target))
		if ev.BelowMinimum != nil && *ev.BelowMinimum {
			s += " It is below the minimum " + Value(ev.Minimum) + "."
		}
		return s
	case *posfleet.FirmwareBlockedEvidence:
		return fmt.Sprintf("Runs %s, a version the policy blocks for %s; update it to %s.", Value(ev.Firmware), Value(ev.Model), Value(ev.Target))
	case *posfleet.UpdateFailedEvidence:
		return fmt.Sprintf("The update to %s failed (%s) at %s; it still runs %s.", Value(ev.Target), Value(ev.Error), Value(ev.ReportedAt), Value(ev.Firmware))
	case *posfleet.AmountMismatchEvidence:
		return fmt.Sprintf("%s approved sales charged an amount other than the one entered in the last %s hours.", Value(ev.Count), Value(ev.WindowH))
	case *posfleet.TxnFailuresEvidence:
		return fmt.Sprintf("%s of the last %s transactions failed on the terminal or its network (limit %s).", Value(ev.Failed), Value(ev.Total), pct(ev.Threshold))
	case *posfleet.ReceiptFailuresEvidence:
		if ev.Paper == posfleet.PaperOut {
			return "The printer reported paper out at " + Value(ev.PaperOutAt) + "."
		}
		return fmt.Sprintf("%s approved payments had no receipt printed in the last %s hours.", Value(ev.FailedReceipts), Value(ev.WindowH))
	case *posfleet.RefundAnomalyEvidence:
		return fmt.Sprintf("%s refunds do not match a sale of this terminal.", Value(ev.Count))
	case *posfleet.HardwareFaultEvidence:
		var parts []string
		for _, x := range ev.Faults {
			parts = append(parts, fmt.Sprintf("%s %s (%s) since %s", Value(x.Component), Value(x.Code), Value(x.Severity), Value(x.Since)))
		}
		return "Open faults: " + strings.Join(parts, "; ") + "."
	case *posfleet.TamperEvidence:
		var parts []string
		for _, x := range ev.Events {
			parts = append(parts, fmt.Sprintf("%s reported %s at %s", Value(x.Component), Value(x.Code), Value(x.At)))
		}
		return "Possible tampering: " + strings.Join(parts, "; ") + ". Take it out of service."
	case *posfleet.WeakNetworkEvidence:
		if ev.WeakSignal {
			return fmt.Sprintf("The median signal over the last %s heartbeats was %s dBm (limit %s dBm).", Value(ev.Heartbeats), Value(opt(ev.MedianSignalDBm)), Value(ev.SignalThresholdDBm))
		}
		return fmt.Sprintf("90%% of the round trips to the bank took up to %s ms (limit %s ms).", Value(opt(ev.P90HostRTTMs)), Value(ev.RTTThresholdMs))
	case *posfleet.BatteryEvidence:
		if ev.TempC != nil {
			return fmt.Sprintf("The terminal reported %s °C (limit %s °C) at %s.", Value(*ev.TempC), Value(opt(ev.TempThresholdC)), Value(ev.ReportedAt))
		}
		return fmt.Sprintf("The battery was at %s%% and not charging for %s heartbeats in a row.", Value(opt(ev.BatteryPct)), Value(opt(ev.LowHeartbeats)))
	case *posfleet.ClockSkewEvidence:
		return fmt.Sprintf("The terminal's clock was %s s off the server's at %s.", Value(ev.SkewS), Value(ev.ServerTS))
	}
	return "See the evidence."
}

// opt is what p points to, or nil (shown as "–") when p is nil.
func opt[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func pct(v any) string {
	if x, ok := v.(float64); ok {
		return strconv.FormatFloat(x*100, 'f', -1, 64) + "%"
	}
	return Value(v)
}

// list returns a JSON array of objects (transactions, faults) as records;
// nil for anything else.
func list(v any) []map[string]any {
	x, ok := v.([]any)
	if !ok {
		return nil
	}
	var out []map[string]any
	for _, e := range x {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// Field is one line of evidence.
type Field struct {
	Key, Value string
	Rows       []map[string]string // a list of records (transactions, faults)
	Cols       []string
}

// Evidence lists a flag's evidence sorted by key, with readable keys: the
// keys and values of its JSON, as the API shows them, so that every field of
// every flag's evidence type is listed without a list of them here.
func Evidence(ev posfleet.Evidence) []Field {
	if ev == nil {
		return nil
	}
	var m map[string]any
	if b, err := json.Marshal(ev); err != nil || json.Unmarshal(b, &m) != nil {
		return []Field{{Key: "evidence", Value: "–"}}
	}
	var out []Field
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fd := Field{Key: strings.ReplaceAll(k, "_", " ")}
		if rows := list(m[k]); rows != nil {
			cols := map[string]bool{}
			for _, r := range rows {
				row := map[string]string{}
				for c, v := range r {
					cols[c] = true
					row[c] = Value(v)
				}
				fd.Rows = append(fd.Rows, row)
			}
			fd.Cols = slices.Sorted(maps.Keys(cols))
		} else {
			fd.Value = Value(m[k])
		}
		out = append(out, fd)
	}
	return out
}

// Value formats one evidence value: times in UTC, maps as k=v, lists joined.
func Value(v any) string {
	switch x := v.(type) {
	case nil:
		return "–"
	case time.Time:
		return Time(x)
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return Time(t)
		}
		return x
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []string:
		return strings.Join(x, ", ")
	case map[string]int:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, x[k]))
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+" "+Value(x[k]))
		}
		return strings.Join(parts, ", ")
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, Value(e))
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

// Time formats a time for people, in UTC (crews and operators across
// time zones read the same clock).
func Time(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// Ago says how long before now t was, roughly.
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// Percent formats n of total as a percentage with one decimal.
func Percent(n, total int64) string {
	if total == 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(n)*100/float64(total), 'f', 1, 64) + "%"
}

// Money formats an amount in minor units.
func Money(v *int64, currency string) string {
	if v == nil {
		return "–"
	}
	sign, n := "", *v
	if n < 0 {
		sign, n = "-", -n
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, n/100, n%100, currency)
}

// FlagsHref is the terminal list filtered to a flag.
func FlagsHref(f posfleet.FlagName) string { return "/terminals?flag=" + string(f) }

// TerminalHref is a terminal's page.
func TerminalHref(tenant, terminal string) string {
	return "/terminals/" + pathEscape(tenant) + "/" + pathEscape(terminal)
}

func pathEscape(s string) string {
	// Terminal and tenant IDs are validated ([A-Za-z0-9._-]); escaping is a
	// second fence.
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Version is one firmware version of a model in the field.
type Version struct {
	Version string
	N       int
	// Status against the policy: target, ahead, behind, below minimum,
	// blocked, or unknown (no policy for the model, or not a version).
	Status string
}

// Model is a model's firmware adoption against the policy's target.
type Model struct {
	Model, Target, Minimum string
	Total, OnTarget        int
	Behind, Blocked        int // terminals below target; on a blocked version
	Versions               []Version
}

// Adoption is the share of a model's terminals on the target or above.
func (m Model) Adoption() string {
	if m.Target == "" {
		return "no target"
	}
	return Percent(int64(m.OnTarget), int64(m.Total))
}

// StatusClass is the css class of a version's status.
func StatusClass(status string) string {
	switch status {
	case "target", "ahead":
		return "badge ok"
	case "blocked", "below minimum":
		return "badge urgent"
	case "behind":
		return "badge update"
	}
	return "badge"
}

// ListHref is the terminal list filtered by key/value pairs.
func ListHref(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return "/terminals?" + q.Encode()
}
