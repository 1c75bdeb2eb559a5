// Package parts holds what several pages show the same way: flags as
// badges, their evidence in plain words, times and counts.
package parts

import (
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
	ev := f.Evidence
	g := func(k string) string { return Value(ev[k]) }
	switch f.Name {
	case posfleet.FlagOffline:
		if ev["reason"] == "last_will" {
			return "The terminal dropped off the network (its connection ended without a goodbye) at " + g("last_seen") + "."
		}
		return "Nothing heard from the terminal since " + g("last_seen") + "."
	case posfleet.FlagFirmwareOutdated:
		s := fmt.Sprintf("Runs %s; the policy's target for %s is %s.", g("firmware"), g("model"), g("target"))
		if b, _ := ev["below_minimum"].(bool); b {
			s += " It is below the minimum " + g("minimum") + "."
		}
		return s
	case posfleet.FlagFirmwareBlocked:
		return fmt.Sprintf("Runs %s, a version the policy blocks for %s; update it to %s.", g("firmware"), g("model"), g("target"))
	case posfleet.FlagUpdateFailed:
		return fmt.Sprintf("The update to %s failed (%s) at %s; it still runs %s.", g("target"), g("error"), g("reported_at"), g("firmware"))
	case posfleet.FlagAmountMismatch:
		return fmt.Sprintf("%s approved sales charged an amount other than the one entered in the last %s hours.", g("count"), g("window_h"))
	case posfleet.FlagTxnFailures:
		return fmt.Sprintf("%s of the last %s transactions failed on the terminal or its network (limit %s).", g("failed"), g("total"), pct(ev["threshold"]))
	case posfleet.FlagReceiptFailures:
		if ev["paper"] == posfleet.PaperOut {
			return "The printer reported paper out at " + g("paper_out_at") + "."
		}
		return fmt.Sprintf("%s approved payments had no receipt printed in the last %s hours.", g("failed_receipts"), g("window_h"))
	case posfleet.FlagRefundAnomaly:
		return fmt.Sprintf("%s refunds do not match a sale of this terminal.", g("count"))
	case posfleet.FlagHardwareFault:
		var parts []string
		for _, x := range list(ev["faults"]) {
			parts = append(parts, fmt.Sprintf("%s %s (%s) since %s", Value(x["component"]), Value(x["code"]), Value(x["severity"]), Value(x["since"])))
		}
		return "Open faults: " + strings.Join(parts, "; ") + "."
	case posfleet.FlagTamper:
		var parts []string
		for _, x := range list(ev["events"]) {
			parts = append(parts, fmt.Sprintf("%s reported %s at %s", Value(x["component"]), Value(x["code"]), Value(x["at"])))
		}
		return "Possible tampering: " + strings.Join(parts, "; ") + ". Take it out of service."
	case posfleet.FlagWeakNetwork:
		if ws, _ := ev["weak_signal"].(bool); ws {
			return fmt.Sprintf("The median signal over the last %s heartbeats was %s dBm (limit %s dBm).", g("heartbeats"), g("median_signal_dbm"), g("signal_threshold_dbm"))
		}
		return fmt.Sprintf("90%% of the round trips to the bank took up to %s ms (limit %s ms).", g("p90_host_rtt_ms"), g("rtt_threshold_ms"))
	case posfleet.FlagBattery:
		if _, ok := ev["temp_c"]; ok {
			return fmt.Sprintf("The terminal reported %s °C (limit %s °C) at %s.", g("temp_c"), g("temp_threshold_c"), g("reported_at"))
		}
		return fmt.Sprintf("The battery was at %s%% and not charging for %s heartbeats in a row.", g("battery_pct"), g("low_heartbeats"))
	case posfleet.FlagClockSkew:
		return fmt.Sprintf("The terminal's clock was %s s off the server's at %s.", g("skew_s"), g("server_ts"))
	}
	return "See the evidence."
}

func pct(v any) string {
	if x, ok := v.(float64); ok {
		return strconv.FormatFloat(x*100, 'f', -1, 64) + "%"
	}
	return Value(v)
}

func list(v any) []map[string]any {
	switch x := v.(type) {
	case []map[string]any:
		return x
	case []any: // after a JSON round trip (a restored snapshot)
		var out []map[string]any
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// Field is one line of evidence.
type Field struct {
	Key, Value string
	Rows       []map[string]string // a list of records (transactions, faults)
	Cols       []string
}

// Evidence lists a flag's evidence sorted by key, with readable keys.
func Evidence(ev map[string]any) []Field {
	var out []Field
	for _, k := range slices.Sorted(maps.Keys(ev)) {
		fd := Field{Key: strings.ReplaceAll(k, "_", " ")}
		if rows := list(ev[k]); rows != nil {
			cols := map[string]bool{}
			for _, r := range rows {
				m := map[string]string{}
				for c, v := range r {
					cols[c] = true
					m[c] = Value(v)
				}
				fd.Rows = append(fd.Rows, m)
			}
			fd.Cols = slices.Sorted(maps.Keys(cols))
		} else {
			fd.Value = Value(ev[k])
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
