// Package parts holds what several pages show the same way: flags as
// badges, their evidence in plain words, times and counts.
package parts

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
)

// FlagLabel is a flag's name for people.
func FlagLabel(ctx context.Context, f posfleet.FlagName) string {
	if slices.Contains(posfleet.FlagNames, f) {
		return locale.T(ctx, "flag."+string(f))
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
func KindLabel(ctx context.Context, k posfleet.FlagKind) string {
	switch k {
	case posfleet.KindMaintenance, posfleet.KindUpdate, posfleet.KindInvestigate:
		return locale.T(ctx, "kind."+string(k))
	}
	return string(k)
}

// Describe says in one sentence why a flag is raised, from its evidence.
func Describe(ctx context.Context, f posfleet.Flag) string {
	s := describe(ctx, f)
	if a := appliedThresholds(ctx, f.Evidence); a != "" {
		s += " " + a
	}
	return s
}

// appliedThresholds says which of a tenant's or model's thresholds raised
// the flag, one sentence each; "" when all were the defaults.
func appliedThresholds(ctx context.Context, ev posfleet.Evidence) string {
	if ev == nil {
		return ""
	}
	rv := reflect.ValueOf(ev)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return ""
	}
	fv := rv.Elem().FieldByName("Thresholds")
	if !fv.IsValid() {
		return ""
	}
	ths, _ := fv.Interface().([]posfleet.AppliedThreshold)
	var out []string
	for _, a := range ths {
		if a.Source == posfleet.ThresholdDefault {
			continue
		}
		kv := []any{"Name", locale.T(ctx, "thresholds.name."+strings.ReplaceAll(a.Name, ".", "_")), "Value", ThresholdValue(ctx, a.Unit, a.Value), "Model", a.Model}
		out = append(out, locale.T(ctx, "thresholds.describe."+string(a.Source), kv...))
	}
	return strings.Join(out, " ")
}

// ThresholdValue is a threshold's value with its unit, as people read it:
// a share as a percentage.
func ThresholdValue(ctx context.Context, unit string, v float64) string {
	switch unit {
	case "ratio":
		return pct(ctx, v)
	case "count", "probability", "times":
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64) + " " + unit
}

func describe(ctx context.Context, f posfleet.Flag) string {
	v := func(x any) string { return Value(ctx, x) }
	t := func(id string, kv ...any) string { return locale.T(ctx, "describe."+id, kv...) }
	switch ev := f.Evidence.(type) {
	case *posfleet.OfflineEvidence:
		if ev.Reason == posfleet.OfflineLastWill {
			return t("offline_will", "At", v(ev.LastSeen))
		}
		return t("offline_silent", "At", v(ev.LastSeen))
	case *posfleet.FirmwareOutdatedEvidence:
		s := t("firmware_outdated", "Firmware", v(ev.Firmware), "Model", v(ev.Model), "Target", v(ev.Target))
		if ev.BelowMinimum != nil && *ev.BelowMinimum {
			s += " " + t("below_minimum", "Minimum", v(ev.Minimum))
		}
		return s
	case *posfleet.FirmwareBlockedEvidence:
		return t("firmware_blocked", "Firmware", v(ev.Firmware), "Model", v(ev.Model), "Target", v(ev.Target))
	case *posfleet.UpdateFailedEvidence:
		return t("update_failed", "Target", v(ev.Target), "Error", v(ev.Error), "At", v(ev.ReportedAt), "Firmware", v(ev.Firmware))
	case *posfleet.AmountMismatchEvidence:
		return t("amount_mismatch", "Count", v(ev.Count), "Hours", v(ev.WindowH))
	case *posfleet.TxnFailuresEvidence:
		return t("txn_failures", "Failed", v(ev.Failed), "Total", v(ev.Total), "Limit", pct(ctx, ev.Threshold))
	case *posfleet.ReceiptFailuresEvidence:
		if ev.Paper == posfleet.PaperOut {
			return t("paper_out", "At", v(ev.PaperOutAt))
		}
		return t("receipt_failures", "Count", v(ev.FailedReceipts), "Hours", v(ev.WindowH))
	case *posfleet.RefundAnomalyEvidence:
		return t("refund_anomaly", "Count", v(ev.Count))
	case *posfleet.HardwareFaultEvidence:
		var parts []string
		for _, x := range ev.Faults {
			parts = append(parts, t("fault", "Component", v(x.Component), "Code", v(x.Code), "Severity", SeverityLabel(ctx, x.Severity), "Since", v(x.Since)))
		}
		return t("hardware_fault", "Faults", strings.Join(parts, t("separator")))
	case *posfleet.TamperEvidence:
		var parts []string
		for _, x := range ev.Events {
			parts = append(parts, t("tamper_event", "Component", v(x.Component), "Code", v(x.Code), "At", v(x.At)))
		}
		return t("tamper", "Events", strings.Join(parts, t("separator")))
	case *posfleet.WeakNetworkEvidence:
		if ev.WeakSignal {
			return t("weak_signal", "Heartbeats", v(ev.Heartbeats), "Median", v(opt(ev.MedianSignalDBm)), "Limit", v(ev.SignalThresholdDBm))
		}
		return t("slow_host", "P90", v(opt(ev.P90HostRTTMs)), "Limit", v(ev.RTTThresholdMs))
	case *posfleet.BatteryEvidence:
		if ev.TempC != nil {
			return t("battery_hot", "Temp", v(*ev.TempC), "Limit", v(opt(ev.TempThresholdC)), "At", v(ev.ReportedAt))
		}
		return t("battery_low", "Pct", v(opt(ev.BatteryPct)), "Heartbeats", v(opt(ev.LowHeartbeats)))
	case *posfleet.ClockSkewEvidence:
		return t("clock_skew", "Skew", v(ev.SkewS), "At", v(ev.ServerTS))
	case *posfleet.BadDataEvidence:
		reasons := map[string]any{}
		for r, n := range ev.ByReason {
			reasons[string(r)] = n
		}
		kv := []any{"Count", v(ev.Count), "Accepted", v(ev.Accepted), "Minutes", v(ev.WindowS / 60), "Reasons", v(reasons),
			"First", v(ev.FirstRejected), "Last", v(ev.LastRejected)}
		if ev.Accepted > 0 {
			return t("bad_data_some", kv...)
		}
		return t("bad_data", kv...)
	case *posfleet.FallbackRateEvidence:
		return t("fallback_rate", "Count", v(ev.Count), "Total", v(ev.Total), "Rate", locale.From(ctx).Percent(int64(ev.Count), int64(ev.Total)),
			"Limit", pct(ctx, ev.Threshold), "Minimum", v(ev.Minimum))
	case *posfleet.MovedEvidence:
		return t("moved", "Distance", v(ev.DistanceM), "Limit", v(ev.ThresholdM), "Since", v(ev.Since))
	case *posfleet.SilentEvidence:
		return t("silent", "Hours", v(len(ev.Missed)), "LastSale", v(ev.LastSale), "Chance", v(ev.Chance), "Weeks", v(ev.Weeks))
	case *posfleet.WearDueEvidence:
		var out []string
		for _, p := range ev.Parts {
			kv := []any{"Part", WearPart(ctx, p.Part), "Counter", EvidenceKey(ctx, p.Counter), "Value", v(p.Value),
				"Rated", v(p.RatedLife), "PerDay", v(p.PerDay), "Days", v(p.DaysLeft)}
			if p.DaysLeft <= 0 {
				out = append(out, t("wear_due_now", kv...))
			} else {
				out = append(out, t("wear_due", kv...))
			}
		}
		return strings.Join(out, " ")
	}
	return t("see_evidence")
}

// WearPart is a wear_due part's name in the reader's language.
func WearPart(ctx context.Context, part string) string {
	switch part {
	case posfleet.WearPrinterHead, posfleet.WearChipReader, posfleet.WearBattery:
		return locale.T(ctx, "wear_part."+part)
	}
	return part
}

// SeverityLabel is a fault's severity in the reader's language.
func SeverityLabel(ctx context.Context, s string) string {
	switch s {
	case posfleet.SeverityInfo, posfleet.SeverityWarning, posfleet.SeverityCritical:
		return locale.T(ctx, "terminal.severity."+s)
	}
	return s
}

// opt is what p points to, or nil (shown as "–") when p is nil.
func opt[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func pct(ctx context.Context, v any) string {
	if x, ok := v.(float64); ok {
		return strconv.FormatFloat(x*100, 'f', -1, 64) + "%"
	}
	return Value(ctx, v)
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
	ColNames   []string // Cols in the reader's language
}

// EvidenceKey is an evidence field's name in the reader's language (the
// catalogue's evidence.<key>, else the key with spaces).
func EvidenceKey(ctx context.Context, k string) string {
	if _, ok := evidenceKeys[k]; ok {
		if k == "id" {
			k = "id_" // "id" is a reserved word of the catalogue format
		}
		return locale.T(ctx, "evidence."+k)
	}
	return strings.ReplaceAll(k, "_", " ")
}

// evidenceKeys are the evidence fields the catalogue names (every JSON key
// of posfleet's evidence types; TestEvidenceKeysNamed).
var evidenceKeys = map[string]struct{}{}

func init() {
	for _, k := range strings.Fields(`accepted by_reason first_rejected last_accepted last_rejected share window_s
		amount amount_charged amount_entered at battery_pct below_minimum blocked by_cause
		cause charging code component count currency detail difference error events evidence excused_by_incident failed
		failed_receipts faults firmware heartbeats id last_seen last_txn latest low_heartbeats low_since median_signal_dbm
		minimum model network original_amount p90_host_rtt_ms paper paper_out_at rate reason reported_at result
		rtt_threshold_ms server_ts severity sha256 signal_threshold_dbm silent_s since skew_s slow_host target temp_c
		temp_threshold_c terminal terminal_ts threshold threshold_pct threshold_s total transactions url was_selling
		weak_signal window_h chance chance_rate
		distance_m lat lon site_lat site_lon threshold_m window
		thresholds name source unit value
		last_sale minimum_hours missed weeks horizon_days parts counter days_left part per_day rated_life samples
		prints card_insertions battery_cycles battery_health_pct`) {
		evidenceKeys[k] = struct{}{}
	}
}

// Evidence lists a flag's evidence sorted by key, with readable keys: the
// keys and values of its JSON, as the API shows them, so that every field of
// every flag's evidence type is listed without a list of them here.
func Evidence(ctx context.Context, ev posfleet.Evidence) []Field {
	if ev == nil {
		return nil
	}
	var m map[string]any
	if b, err := json.Marshal(ev); err != nil || json.Unmarshal(b, &m) != nil {
		return []Field{{Key: locale.T(ctx, "evidence.evidence"), Value: "–"}}
	}
	var out []Field
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fd := Field{Key: EvidenceKey(ctx, k)}
		if rows := list(m[k]); rows != nil {
			cols := map[string]bool{}
			for _, r := range rows {
				row := map[string]string{}
				for c, v := range r {
					cols[c] = true
					row[c] = Value(ctx, v)
					if s, ok := v.(string); ok && c == "severity" {
						row[c] = SeverityLabel(ctx, s)
					}
					if s, ok := v.(string); ok && c == "source" && k == "thresholds" {
						row[c] = locale.T(ctx, "thresholds.source."+s)
					}
				}
				fd.Rows = append(fd.Rows, row)
			}
			fd.Cols = slices.Sorted(maps.Keys(cols))
			for _, c := range fd.Cols {
				fd.ColNames = append(fd.ColNames, EvidenceKey(ctx, c))
			}
		} else {
			fd.Value = Value(ctx, m[k])
		}
		out = append(out, fd)
	}
	return out
}

// Value formats one evidence value: times in the reader's zone, numbers
// with separators, maps as k=v, lists joined.
func Value(ctx context.Context, v any) string {
	switch x := v.(type) {
	case nil:
		return "–"
	case time.Time:
		return Time(ctx, x)
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return Time(ctx, t)
		}
		return x
	case bool:
		if x {
			return locale.T(ctx, "common.yes")
		}
		return locale.T(ctx, "common.no")
	case int:
		return locale.Int(ctx, int64(x))
	case int64:
		return locale.Int(ctx, x)
	case float64:
		if x == float64(int64(x)) && x < 1e15 && x > -1e15 {
			return locale.Int(ctx, int64(x))
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []string:
		return strings.Join(x, ", ")
	case map[string]int:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, fmt.Sprintf("%s %s", k, locale.Int(ctx, int64(x[k]))))
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+" "+Value(ctx, x[k]))
		}
		return strings.Join(parts, ", ")
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, Value(ctx, e))
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

// Time formats a time for people in the reader's time zone, with the zone
// named ("2026-03-02 17:30:00 UTC+8").
func Time(ctx context.Context, t time.Time) string { return locale.Time(ctx, t) }

// Ago says how long before now t was, roughly.
func Ago(ctx context.Context, t, now time.Time) string { return locale.From(ctx).Ago(t, now) }

// Percent formats n of total as a percentage with one decimal.
func Percent(ctx context.Context, n, total int64) string { return locale.From(ctx).Percent(n, total) }

// Money formats an amount given in minor units in major units with its
// currency (¥409.59); the API keeps minor units.
func Money(ctx context.Context, v *int64, currency string) string {
	if v == nil {
		return "–"
	}
	return locale.Money(ctx, *v, currency)
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
func (m Model) Adoption(ctx context.Context) string {
	if m.Target == "" {
		return locale.T(ctx, "firmware.no_target")
	}
	return Percent(ctx, int64(m.OnTarget), int64(m.Total))
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
