package health

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/posfleet/posfleet"
)

// Thresholds per tenant and per (tenant, model): the thresholds of
// PROTOCOL.md §2 are Config's (DefaultConfig), and a Thresholds document
// overrides any of them for a tenant's terminals, or for those of one model
// of a tenant. The most specific value wins: model, then tenant, then the
// default. Each threshold is one line of ThresholdTable: its name in the
// document, its flag, unit and range, and the Config field it sets.
//
// The engine compiles a document into an immutable table of resolved
// Configs (one per tenant and per tenant's model with an override) and
// swaps it atomically (SetThresholds); the message path looks a terminal's
// up by tenant and model once per message, without allocating.

// Unit is the unit of a threshold's value in the document.
type Unit string

// The units of thresholds.
const (
	UnitRatio       Unit = "ratio"       // a share, 0.2 is 20%
	UnitProbability Unit = "probability" // a significance level
	UnitCount       Unit = "count"
	UnitSeconds     Unit = "s"
	UnitMillis      Unit = "ms"
	UnitDBm         Unit = "dBm"
	UnitPercent     Unit = "%"
	UnitCelsius     Unit = "°C"
	UnitKm          Unit = "km"
	UnitDays        Unit = "days"
	UnitTimes       Unit = "times" // a ratio of two rates
)

// Threshold is one threshold that a Thresholds document may set.
type Threshold struct {
	// Name is the threshold's key in the document: "<flag>.<what>".
	Name string `json:"name"`
	// Flag is the flag it belongs to, or "incident" or "suspect" (firmware).
	Flag string `json:"flag"`
	Unit Unit   `json:"unit"`
	// Min and Max bound the value; Integer values are whole numbers.
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Integer bool    `json:"integer,omitempty"`
	// TenantOnly thresholds judge a tenant's fleet as a whole (incidents,
	// suspect firmware): a tenant may override them, a model may not.
	TenantOnly bool `json:"tenant_only,omitempty"`

	get func(*Config) float64
	set func(*Config, float64)
}

func floatT(name, flag string, unit Unit, lo, hi float64, field func(*Config) *float64) Threshold {
	return Threshold{Name: name, Flag: flag, Unit: unit, Min: lo, Max: hi,
		get: func(c *Config) float64 { return *field(c) },
		set: func(c *Config, v float64) { *field(c) = v }}
}

func intT[T int | int64](name, flag string, unit Unit, lo, hi float64, field func(*Config) *T) Threshold {
	return Threshold{Name: name, Flag: flag, Unit: unit, Min: lo, Max: hi, Integer: true,
		get: func(c *Config) float64 { return float64(*field(c)) },
		set: func(c *Config, v float64) { *field(c) = T(v) }}
}

func secondsT(name, flag string, lo, hi float64, field func(*Config) *time.Duration) Threshold {
	return Threshold{Name: name, Flag: flag, Unit: UnitSeconds, Min: lo, Max: hi, Integer: true,
		get: func(c *Config) float64 { return field(c).Seconds() },
		set: func(c *Config, v float64) { *field(c) = time.Duration(v) * time.Second }}
}

// daysT is a duration kept as a time.Duration in Config and shown in days.
func daysT(name, flag string, lo, hi float64, field func(*Config) *time.Duration) Threshold {
	return Threshold{Name: name, Flag: flag, Unit: UnitDays, Min: lo, Max: hi, Integer: true,
		get: func(c *Config) float64 { return field(c).Hours() / 24 },
		set: func(c *Config, v float64) { *field(c) = time.Duration(v) * 24 * time.Hour }}
}

// kmT is a distance kept in metres in Config and shown in kilometres.
func kmT(name, flag string, lo, hi float64, field func(*Config) *float64) Threshold {
	return Threshold{Name: name, Flag: flag, Unit: UnitKm, Min: lo, Max: hi,
		get: func(c *Config) float64 { return *field(c) / 1000 },
		set: func(c *Config, v float64) { *field(c) = v * 1000 }}
}

func (t Threshold) tenantOnly() Threshold { t.TenantOnly = true; return t }

// ThresholdTable lists every threshold a document may set, grouped by flag
// in the order of PROTOCOL.md §2. A new threshold is a new line.
var ThresholdTable = []Threshold{
	secondsT("offline.after", "offline", 30, 86400, func(c *Config) *time.Duration { return &c.OfflineAfter }),
	intT("txn_failures.window", "txn_failures", UnitCount, 10, TxnRing, func(c *Config) *int { return &c.TxnWindow }),
	intT("txn_failures.minimum", "txn_failures", UnitCount, 1, TxnRing, func(c *Config) *int { return &c.TxnMinimum }),
	floatT("txn_failures.rate", "txn_failures", UnitRatio, 0.01, 1, func(c *Config) *float64 { return &c.TxnFailureRate }),
	floatT("txn_failures.chance_rate", "txn_failures", UnitRatio, 0.001, 0.5, func(c *Config) *float64 { return &c.TxnChanceRate }),
	floatT("txn_failures.alpha", "txn_failures", UnitProbability, 1e-6, 0.5, func(c *Config) *float64 { return &c.TxnAlpha }),
	intT("receipt_failures.count", "receipt_failures", UnitCount, 1, EvidenceRing, func(c *Config) *int { return &c.ReceiptFailures }),
	intT("weak_network.signal_dbm", "weak_network", UnitDBm, -140, -50, func(c *Config) *int { return &c.WeakSignalDBm }),
	intT("weak_network.rtt_ms", "weak_network", UnitMillis, 100, 60000, func(c *Config) *int { return &c.WeakRTTMs }),
	intT("weak_network.min_heartbeats", "weak_network", UnitCount, 1, HeartbeatRing, func(c *Config) *int { return &c.WeakNetworkMinHeartbeats }),
	intT("battery.low_pct", "battery", UnitPercent, 1, 99, func(c *Config) *int { return &c.LowBatteryPct }),
	intT("battery.low_heartbeats", "battery", UnitCount, 1, 255, func(c *Config) *int { return &c.LowBatteryHeartbeats }),
	floatT("battery.hot_c", "battery", UnitCelsius, 30, 120, func(c *Config) *float64 { return &c.HotTempC }),
	secondsT("clock_skew.seconds", "clock_skew", 1, 86400, func(c *Config) *time.Duration { return &c.ClockSkew }),
	intT("clock_skew.heartbeats", "clock_skew", UnitCount, 1, clockSkewWindow, func(c *Config) *int { return &c.ClockSkewHeartbeats }),
	intT("bad_data.min_rejected", "bad_data", UnitCount, 1, 1e6, func(c *Config) *int { return &c.BadDataMinRejected }),
	floatT("bad_data.share", "bad_data", UnitRatio, 0.01, 1, func(c *Config) *float64 { return &c.BadDataShare }),
	intT("fallback_rate.window", "fallback_rate", UnitCount, 1, FallbackRing, func(c *Config) *int { return &c.FallbackWindow }),
	intT("fallback_rate.minimum", "fallback_rate", UnitCount, 1, FallbackRing, func(c *Config) *int { return &c.FallbackMinimum }),
	floatT("fallback_rate.rate", "fallback_rate", UnitRatio, 0.01, 1, func(c *Config) *float64 { return &c.FallbackRate }),
	kmT("moved.distance_km", "moved", 0.05, 20000, func(c *Config) *float64 { return &c.MovedDistanceM }),
	intT("moved.heartbeats", "moved", UnitCount, 1, 255, func(c *Config) *int { return &c.MovedHeartbeats }),
	intT("silent.min_hours", "silent", UnitCount, 1, silentWalk, func(c *Config) *int { return &c.SilentMinHours }),
	floatT("silent.alpha", "silent", UnitProbability, 1e-9, 0.1, func(c *Config) *float64 { return &c.SilentAlpha }),
	daysT("wear.horizon_days", "wear_due", 1, 365, func(c *Config) *time.Duration { return &c.WearHorizon }),
	intT("wear.printer_prints", "wear_due", UnitCount, 1000, 1e8, func(c *Config) *int64 { return &c.WearPrinterPrints }),
	intT("wear.chip_insertions", "wear_due", UnitCount, 1000, 1e8, func(c *Config) *int64 { return &c.WearChipInsertions }),
	intT("wear.battery_cycles", "wear_due", UnitCount, 10, 1e5, func(c *Config) *int64 { return &c.WearBatteryCycles }),
	intT("wear.battery_health_pct", "wear_due", UnitPercent, 1, 99, func(c *Config) *int { return &c.WearBatteryHealthPct }),
	floatT("incident.share", "incident", UnitRatio, 0.01, 1, func(c *Config) *float64 { return &c.IncidentShare }).tenantOnly(),
	intT("incident.min_terminals", "incident", UnitCount, 1, MaxIncidentTerminals, func(c *Config) *int { return &c.IncidentMinTerminals }).tenantOnly(),
	intT("incident.min_merchants", "incident", UnitCount, 1, 1000, func(c *Config) *int { return &c.IncidentMinMerchants }).tenantOnly(),
	floatT("suspect.alpha", "suspect", UnitProbability, 1e-6, 0.2, func(c *Config) *float64 { return &c.SuspectAlpha }).tenantOnly(),
	intT("suspect.min_txns", "suspect", UnitCount, 1, 1e7, func(c *Config) *int { return &c.SuspectMinTxns }).tenantOnly(),
	intT("suspect.min_terminals", "suspect", UnitCount, 1, 1e5, func(c *Config) *int { return &c.SuspectMinTerminals }).tenantOnly(),
	intT("suspect.min_terminal_volume", "suspect", UnitCount, 1, 1e6, func(c *Config) *int64 { return &c.SuspectMinTerminalVolume }).tenantOnly(),
	floatT("suspect.min_ratio", "suspect", UnitTimes, 1, 100, func(c *Config) *float64 { return &c.SuspectMinRatio }).tenantOnly(),
	floatT("suspect.min_diff", "suspect", UnitRatio, 0, 1, func(c *Config) *float64 { return &c.SuspectMinDiff }).tenantOnly(),
}

// thresholdIndex is each threshold's position in ThresholdTable.
var thresholdIndex = func() map[string]int {
	m := make(map[string]int, len(ThresholdTable))
	for i, t := range ThresholdTable {
		if _, dup := m[t.Name]; dup {
			panic("health: threshold " + t.Name + " twice in ThresholdTable")
		}
		m[t.Name] = i
	}
	return m
}()

// LookupThreshold returns the threshold called name.
func LookupThreshold(name string) (Threshold, bool) {
	i, ok := thresholdIndex[name]
	if !ok {
		return Threshold{}, false
	}
	return ThresholdTable[i], true
}

// Value is t's value in c, in t's unit.
func (t Threshold) Value(c Config) float64 { return t.get(&c) }

// thresholdPairs are the cross-field rules: First may not exceed Second.
var thresholdPairs = [][2]string{
	{"txn_failures.minimum", "txn_failures.window"},
	{"fallback_rate.minimum", "fallback_rate.window"},
}

// Thresholds is a thresholds document: overrides per tenant and per
// (tenant, model). In JSON and YAML:
//
//	tenants:
//	  acme:
//	    txn_failures.rate: 0.15
//	    models:
//	      A920:
//	        txn_failures.rate: 0.1
type Thresholds struct {
	Tenants map[string]TenantThresholds
}

// TenantThresholds are one tenant's overrides (Values, by threshold name)
// and its models' (Models, model -> name -> value).
type TenantThresholds struct {
	Values map[string]float64
	Models map[string]map[string]float64
}

// Empty reports whether the document overrides nothing.
func (d *Thresholds) Empty() bool {
	for _, t := range d.Tenants {
		if len(t.Values) > 0 {
			return false
		}
		for _, m := range t.Models {
			if len(m) > 0 {
				return false
			}
		}
	}
	return true
}

// Clone returns a deep copy.
func (d *Thresholds) Clone() *Thresholds {
	out := &Thresholds{Tenants: map[string]TenantThresholds{}}
	if d == nil {
		return out
	}
	for name, t := range d.Tenants {
		c := TenantThresholds{Values: cloneValues(t.Values), Models: map[string]map[string]float64{}}
		for m, v := range t.Models {
			c.Models[m] = cloneValues(v)
		}
		out.Tenants[name] = c
	}
	return out
}

func cloneValues(v map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(v))
	for k, x := range v {
		out[k] = x
	}
	return out
}

// Tenant returns the part of d about tenant (an empty one when d says
// nothing of it).
func (d *Thresholds) Tenant(tenant string) TenantThresholds {
	t := d.Clone().Tenants[tenant]
	if t.Values == nil {
		t.Values = map[string]float64{}
	}
	if t.Models == nil {
		t.Models = map[string]map[string]float64{}
	}
	return t
}

// tree is d as plain maps, for JSON and YAML (keys sorted by both encoders).
func (d *Thresholds) tree() map[string]any {
	tenants := map[string]any{}
	if d != nil {
		for name, t := range d.Tenants {
			m := map[string]any{}
			for k, v := range t.Values {
				m[k] = v
			}
			if len(t.Models) > 0 {
				models := map[string]any{}
				for model, vs := range t.Models {
					models[model] = cloneValues(vs)
				}
				m["models"] = models
			}
			tenants[name] = m
		}
	}
	return map[string]any{"tenants": tenants}
}

// MarshalJSON writes the document's JSON form.
func (d Thresholds) MarshalJSON() ([]byte, error) { return json.Marshal(d.tree()) }

// UnmarshalJSON parses and validates a document (ParseThresholds).
func (d *Thresholds) UnmarshalJSON(b []byte) error {
	p, err := ParseThresholds(b)
	if err != nil {
		return err
	}
	*d = *p
	return nil
}

// YAML is the document in YAML, for export.
func (d *Thresholds) YAML() []byte {
	b, err := yaml.Marshal(d.tree())
	if err != nil {
		panic(err) // plain maps of strings and numbers always encode
	}
	return b
}

// ThresholdProblem is one refused value: the field's path in the document
// ("tenants.acme.models.A920.txn_failures.rate") and why.
type ThresholdProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ThresholdsError is a refused document: every problem found.
type ThresholdsError struct {
	Problems []ThresholdProblem
}

// Error lists the problems, each with its field.
func (e *ThresholdsError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return "thresholds: " + strings.Join(parts, "; ")
}

// Unwrap gives the refusal its kind: invalid input, code bad_thresholds.
func (e *ThresholdsError) Unwrap() error {
	return &posfleet.Error{Kind: posfleet.Invalid, Code: "bad_thresholds", Message: e.Error()}
}

// For returns the message of field's problem, or "".
func (e *ThresholdsError) For(field string) string {
	if e == nil {
		return ""
	}
	for _, p := range e.Problems {
		if p.Field == field {
			return p.Message
		}
	}
	return ""
}

// ParseThresholds parses a document in JSON or YAML and validates it;
// errors are *ThresholdsError naming each field.
func ParseThresholds(data []byte) (*Thresholds, error) {
	d := &Thresholds{Tenants: map[string]TenantThresholds{}}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return d, nil
		}
		return nil, &ThresholdsError{Problems: []ThresholdProblem{{Field: "document", Message: posfleet.Redact(err.Error())}}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var probs []ThresholdProblem
	fail := func(field, format string, a ...any) {
		probs = append(probs, ThresholdProblem{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	isNull := func(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }
	if isNull(root) {
		return d, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &ThresholdsError{Problems: []ThresholdProblem{{Field: "document", Message: `want a mapping with the key "tenants"`}}}
	}
	values := func(path string, n *yaml.Node, into map[string]float64, skip string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == skip {
				continue
			}
			field := path + "." + k.Value
			if _, dup := into[k.Value]; dup {
				fail(field, "appears twice")
				continue
			}
			if v.Kind != yaml.ScalarNode || isNull(v) {
				fail(field, "want a number")
				continue
			}
			x, err := strconv.ParseFloat(v.Value, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				fail(field, "%q is not a number", posfleet.Redact(v.Value))
				continue
			}
			into[k.Value] = x
		}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "tenants" {
			fail(k.Value, `unknown key (want "tenants")`)
			continue
		}
		if isNull(v) {
			continue
		}
		if v.Kind != yaml.MappingNode {
			fail("tenants", "want a mapping of tenant to its thresholds")
			continue
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			tk, tv := v.Content[j], v.Content[j+1]
			if posfleet.ContainsCardData(tk.Value) {
				fail("tenants", "a tenant name looks like it holds a card number; card data is never stored")
				continue
			}
			path := "tenants." + tk.Value
			if _, dup := d.Tenants[tk.Value]; dup {
				fail(path, "appears twice")
				continue
			}
			t := TenantThresholds{Values: map[string]float64{}, Models: map[string]map[string]float64{}}
			if isNull(tv) {
				d.Tenants[tk.Value] = t
				continue
			}
			if tv.Kind != yaml.MappingNode {
				fail(path, "want a mapping of threshold to value, and models")
				continue
			}
			values(path, tv, t.Values, "models")
			for m := 0; m+1 < len(tv.Content); m += 2 {
				if tv.Content[m].Value != "models" {
					continue
				}
				mv := tv.Content[m+1]
				if isNull(mv) {
					continue
				}
				if mv.Kind != yaml.MappingNode {
					fail(path+".models", "want a mapping of model to its thresholds")
					continue
				}
				for n := 0; n+1 < len(mv.Content); n += 2 {
					mk, mvv := mv.Content[n], mv.Content[n+1]
					if posfleet.ContainsCardData(mk.Value) {
						fail(path+".models", "a model name looks like it holds a card number; card data is never stored")
						continue
					}
					mpath := path + ".models." + mk.Value
					if _, dup := t.Models[mk.Value]; dup {
						fail(mpath, "appears twice")
						continue
					}
					vals := map[string]float64{}
					if !isNull(mvv) {
						if mvv.Kind != yaml.MappingNode {
							fail(mpath, "want a mapping of threshold to value")
							continue
						}
						values(mpath, mvv, vals, "")
					}
					t.Models[mk.Value] = vals
				}
			}
			d.Tenants[tk.Value] = t
		}
	}
	if len(probs) > 0 {
		return nil, &ThresholdsError{Problems: probs}
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate checks every value against its threshold's range, the names,
// and the cross-field rules (a minimum no larger than its window) of every
// tenant's and model's resolved thresholds. The error is a
// *ThresholdsError naming each field.
func (d *Thresholds) Validate() error {
	var probs []ThresholdProblem
	fail := func(field, format string, a ...any) {
		probs = append(probs, ThresholdProblem{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	check := func(path string, vals map[string]float64, model bool) {
		for _, name := range slices.Sorted(mapKeys(vals)) {
			v := vals[name]
			field := path + "." + name
			t, ok := LookupThreshold(name)
			switch {
			case !ok:
				fail(field, "no such threshold")
			case model && t.TenantOnly:
				fail(field, "judges a tenant's whole fleet: set it for the tenant, not for one model")
			case math.IsNaN(v) || math.IsInf(v, 0):
				fail(field, "not a number")
			case v < t.Min:
				fail(field, "%s is below %s", num(v), num(t.Min))
			case v > t.Max:
				fail(field, "%s is above %s", num(v), num(t.Max))
			case t.Integer && v != math.Trunc(v):
				fail(field, "%s is not a whole number", num(v))
			}
		}
	}
	def := DefaultConfig()
	pairs := func(path string, layers ...map[string]float64) {
		get := func(name string) (float64, bool) {
			for i := len(layers) - 1; i >= 0; i-- {
				if v, ok := layers[i][name]; ok {
					return v, i == len(layers)-1
				}
			}
			t, _ := LookupThreshold(name)
			return t.Value(def), false
		}
		for _, p := range thresholdPairs {
			a, aHere := get(p[0])
			b, bHere := get(p[1])
			if a > b && (aHere || bHere) {
				field := path + "." + p[0]
				if !aHere {
					field = path + "." + p[1]
				}
				fail(field, "%s %s is more than %s %s", p[0], num(a), p[1], num(b))
			}
		}
	}
	for _, tenant := range slices.Sorted(mapKeys(d.Tenants)) {
		t := d.Tenants[tenant]
		path := "tenants." + tenant
		if strings.TrimSpace(tenant) == "" {
			fail("tenants", "empty tenant name")
			continue
		}
		check(path, t.Values, false)
		pairs(path, t.Values)
		for _, model := range slices.Sorted(mapKeys(t.Models)) {
			mpath := path + ".models." + model
			if strings.TrimSpace(model) == "" {
				fail(path+".models", "empty model name")
				continue
			}
			check(mpath, t.Models[model], true)
			pairs(mpath, t.Values, t.Models[model])
		}
	}
	if len(probs) > 0 {
		return &ThresholdsError{Problems: probs}
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// num formats a threshold's value as people write it.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// resolved is the Config of one tenant or one of its models, overrides
// applied, and where each threshold's value came from.
type resolved struct {
	Config
	// src[i] is the source of ThresholdTable[i]; model names the model
	// of the model's overrides.
	src   []posfleet.ThresholdSource
	model string
}

// applied names the thresholds a rule used, with their values and sources.
func (r *resolved) applied(names ...string) []posfleet.AppliedThreshold {
	out := make([]posfleet.AppliedThreshold, 0, len(names))
	for _, name := range names {
		i := thresholdIndex[name]
		a := posfleet.AppliedThreshold{Name: name, Source: r.src[i], Unit: string(ThresholdTable[i].Unit), Value: ThresholdTable[i].get(&r.Config)}
		if a.Source == posfleet.ThresholdModel {
			a.Model = r.model
		}
		out = append(out, a)
	}
	return out
}

// thresholdSet is a compiled document: immutable once made.
type thresholdSet struct {
	doc     *Thresholds
	version int64
	base    *resolved
	tenants map[string]*tenantSet
}

type tenantSet struct {
	base   *resolved
	models map[string]*resolved
}

// lookup is the resolved thresholds of a terminal of tenant and model: one
// or two map lookups, none when no tenant has an override.
func (t *thresholdSet) lookup(tenant, model string) *resolved {
	if len(t.tenants) == 0 {
		return t.base
	}
	ts, ok := t.tenants[tenant]
	if !ok {
		return t.base
	}
	if len(ts.models) > 0 && model != "" {
		if r, ok := ts.models[model]; ok {
			return r
		}
	}
	return ts.base
}

// compileThresholds resolves d over base (the engine's Config, defaults
// applied). d must be valid.
func compileThresholds(base Config, d *Thresholds, version int64) *thresholdSet {
	def := &resolved{Config: base, src: make([]posfleet.ThresholdSource, len(ThresholdTable))}
	for i := range def.src {
		def.src[i] = posfleet.ThresholdDefault
	}
	set := &thresholdSet{doc: d.Clone(), version: version, base: def, tenants: map[string]*tenantSet{}}
	for name, t := range d.Tenants {
		if len(t.Values) == 0 && !hasModelValues(t) {
			continue
		}
		ts := &tenantSet{base: def.with(t.Values, posfleet.ThresholdTenant, ""), models: map[string]*resolved{}}
		for model, vals := range t.Models {
			if len(vals) > 0 {
				ts.models[model] = ts.base.with(vals, posfleet.ThresholdModel, model)
			}
		}
		set.tenants[name] = ts
	}
	return set
}

func hasModelValues(t TenantThresholds) bool {
	for _, v := range t.Models {
		if len(v) > 0 {
			return true
		}
	}
	return false
}

// with is r with vals applied from source; the derived tables are made
// again when their thresholds changed.
func (r *resolved) with(vals map[string]float64, source posfleet.ThresholdSource, model string) *resolved {
	if len(vals) == 0 {
		return r
	}
	out := &resolved{Config: r.Config, src: slices.Clone(r.src), model: r.model}
	if source == posfleet.ThresholdModel {
		out.model = model
	}
	for name, v := range vals {
		i, ok := thresholdIndex[name]
		if !ok {
			continue
		}
		ThresholdTable[i].set(&out.Config, v)
		out.src[i] = source
	}
	c := &out.Config
	if c.TxnWindow != r.TxnWindow || c.TxnChanceRate != r.TxnChanceRate || c.TxnAlpha != r.TxnAlpha {
		c.txnCritical = make([]int, c.TxnWindow+1)
		for n := range c.txnCritical {
			c.txnCritical[n] = binomialCritical(n, c.TxnChanceRate, c.TxnAlpha)
		}
	}
	return out
}

// SetThresholds validates and applies a thresholds document (version is
// the store's number, 0 for none) and re-judges every terminal. On error
// the thresholds in force stay; a version older than theirs is ignored.
func (e *Engine) SetThresholds(d *Thresholds, version int64) error {
	if d == nil {
		d = &Thresholds{}
	}
	if err := d.Validate(); err != nil {
		return err
	}
	set := compileThresholds(e.cfg, d, version)
	for {
		// A version older than the one in force (a poll that read the
		// database before this process saved a newer one) changes nothing.
		cur := e.thr.Load()
		if version > 0 && version < cur.version {
			return nil
		}
		if e.thr.CompareAndSwap(cur, set) {
			break
		}
	}
	now := ms(e.cfg.Now())
	e.eachIn("", func(sh *shard, s *termState) { e.reassess(sh, s, mAll, now, "") })
	return nil
}

// Thresholds returns a copy of the document in force and its version.
func (e *Engine) Thresholds() (*Thresholds, int64) {
	t := e.thr.Load()
	return t.doc.Clone(), t.version
}

// ThresholdsFor returns the thresholds that apply to a terminal of tenant
// and model, each with its value and source, in ThresholdTable's order.
func (e *Engine) ThresholdsFor(tenant, model string) []posfleet.AppliedThreshold {
	r := e.thr.Load().lookup(tenant, model)
	names := make([]string, len(ThresholdTable))
	for i, t := range ThresholdTable {
		names[i] = t.Name
	}
	return r.applied(names...)
}

// resolve is the thresholds of terminal s.
func (e *Engine) resolve(s *termState) *resolved {
	return e.thr.Load().lookup(s.Ref.Tenant, s.Model)
}

// appliedFor names every threshold of flag, as its evidence shows them,
// when a tenant's or model's override set any of them; nil when all are
// the defaults (PROTOCOL.md §2), so that the evidence of a fleet without
// overrides reads as it always did.
func (r *resolved) appliedFor(flag string) []posfleet.AppliedThreshold {
	var names []string
	overridden := false
	for i, t := range ThresholdTable {
		if t.Flag == flag {
			names = append(names, t.Name)
			overridden = overridden || r.src[i] != posfleet.ThresholdDefault
		}
	}
	if !overridden {
		return nil
	}
	return r.applied(names...)
}

// Only is the part of d about tenant: a document with that tenant alone
// (none when d says nothing of it).
func (d *Thresholds) Only(tenant string) *Thresholds {
	out := &Thresholds{Tenants: map[string]TenantThresholds{}}
	if t, ok := d.Clone().Tenants[tenant]; ok {
		out.Tenants[tenant] = t
	}
	return out
}

// WithTenant is d with tenant's part replaced by from's part about it
// (removed when from has none).
func (d *Thresholds) WithTenant(tenant string, from *Thresholds) *Thresholds {
	out := d.Clone()
	delete(out.Tenants, tenant)
	if t, ok := from.Clone().Tenants[tenant]; ok {
		out.Tenants[tenant] = t
	}
	return out
}

// ThresholdChange is one value a new version changed: From is nil for a
// value set anew, To for one removed (back to the less specific value).
type ThresholdChange struct {
	Field string   `json:"field"`
	From  *float64 `json:"from"`
	To    *float64 `json:"to"`
}

// flat is d's values by field path ("tenants.acme.models.A920.txn_failures.rate").
func (d *Thresholds) flat() map[string]float64 {
	out := map[string]float64{}
	if d == nil {
		return out
	}
	for tenant, t := range d.Tenants {
		for k, v := range t.Values {
			out["tenants."+tenant+"."+k] = v
		}
		for model, vals := range t.Models {
			for k, v := range vals {
				out["tenants."+tenant+".models."+model+"."+k] = v
			}
		}
	}
	return out
}

// DiffThresholds lists the values that differ from a to b, by field.
func DiffThresholds(a, b *Thresholds) []ThresholdChange {
	fa, fb := a.flat(), b.flat()
	out := []ThresholdChange{}
	for _, f := range slices.Sorted(mapKeys(fa)) {
		if v, ok := fb[f]; !ok {
			out = append(out, ThresholdChange{Field: f, From: ptrTo(fa[f])})
		} else if v != fa[f] {
			out = append(out, ThresholdChange{Field: f, From: ptrTo(fa[f]), To: ptrTo(v)})
		}
	}
	for _, f := range slices.Sorted(mapKeys(fb)) {
		if _, ok := fa[f]; !ok {
			out = append(out, ThresholdChange{Field: f, To: ptrTo(fb[f])})
		}
	}
	slices.SortStableFunc(out, func(x, y ThresholdChange) int { return strings.Compare(x.Field, y.Field) })
	return out
}

func ptrTo(v float64) *float64 { return &v }

// ResolveThresholds is what the thresholds of d are for tenant's terminals
// of model ("" for the tenant's own), over the defaults (DefaultConfig),
// in ThresholdTable's order. d must be valid.
func ResolveThresholds(d *Thresholds, tenant, model string) []posfleet.AppliedThreshold {
	set := compileThresholds(DefaultConfig().withDefaults(), d, 0)
	names := make([]string, len(ThresholdTable))
	for i, t := range ThresholdTable {
		names[i] = t.Name
	}
	return set.lookup(tenant, model).applied(names...)
}
