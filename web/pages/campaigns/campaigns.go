// Package campaigns is the firmware campaign pages: the list, the form of
// a new campaign with its preview, a campaign's page (waves, gates with
// their KPI comparison, timeline, terminals, actions) and the
// confirmation of an action.
package campaigns

import (
	"cmp"
	"context"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/parts"
)

// Href is a campaign's page.
func Href(id string) string { return "/campaigns/" + url.PathEscape(id) }

// ActionHref is where an action's form posts.
func ActionHref(id string, act posfleet.CampaignAction) string { return Href(id) + "/" + string(act) }

// StateLabel is a campaign's state for people; an unknown one as it is.
func StateLabel(ctx context.Context, st posfleet.CampaignState) string {
	if slices.Contains(posfleet.CampaignStates, st) {
		return locale.T(ctx, "campaigns.state."+string(st))
	}
	return string(st)
}

// StateClass is the css class of a state's badge.
func StateClass(st posfleet.CampaignState) string {
	switch st {
	case posfleet.CampaignRunning:
		return "badge update"
	case posfleet.CampaignPaused, posfleet.CampaignRollingBack:
		return "badge urgent"
	case posfleet.CampaignFinished:
		return "badge ok"
	case posfleet.CampaignAborted, posfleet.CampaignRolledBack:
		return "badge maintenance"
	}
	return "badge"
}

// TerminalStateLabel is a terminal's state in a campaign for people.
func TerminalStateLabel(ctx context.Context, st posfleet.CampaignTerminalState) string {
	if slices.Contains(posfleet.CampaignTerminalStates, st) {
		return locale.T(ctx, "campaigns.tstate."+string(st))
	}
	return string(st)
}

// TerminalStateClass is the css class of a terminal state's badge.
func TerminalStateClass(st posfleet.CampaignTerminalState) string {
	switch st {
	case posfleet.CTInstalled:
		return "badge ok"
	case posfleet.CTFailed:
		return "badge urgent"
	case posfleet.CTOffline, posfleet.CTRolledBack:
		return "badge maintenance"
	case posfleet.CTSent, posfleet.CTDownloading:
		return "badge update"
	}
	return "badge"
}

// ActionLabel is an action's button.
func ActionLabel(ctx context.Context, act posfleet.CampaignAction) string {
	return locale.T(ctx, "campaigns.action."+string(act))
}

// KPILabel is a KPI's name for people.
func KPILabel(ctx context.Context, k posfleet.KPI) string {
	if slices.Contains(posfleet.KPIs, k) {
		return locale.T(ctx, "campaigns.kpi."+string(k))
	}
	return string(k)
}

// ExposureLabel names what a KPI counts its events among ("approved
// sales", "terminal-hours"), with n.
func ExposureLabel(ctx context.Context, k posfleet.KPI, events int64, exposure float64) string {
	if !slices.Contains(posfleet.KPIs, k) {
		return locale.T(ctx, "campaigns.gate.of", "Events", events, "Exposure", exposureNumber(ctx, exposure))
	}
	return locale.T(ctx, "campaigns.exposure."+string(k), "Events", events, "Exposure", exposureNumber(ctx, exposure))
}

// exposureNumber writes an exposure: whole counts with separators,
// terminal-hours with one decimal.
func exposureNumber(ctx context.Context, v float64) string {
	if v == math.Trunc(v) {
		return locale.Int(ctx, int64(v))
	}
	return locale.From(ctx).Float(v, 1)
}

// RateText writes a rate: a share as a percentage with two decimals,
// crash boots per 1,000 terminal-hours.
func RateText(ctx context.Context, k posfleet.KPI, rate float64) string {
	if k == posfleet.KPICrashBoots {
		return locale.T(ctx, "campaigns.gate.per_terminal_hours", "Rate", BarValue(ctx, k, rate))
	}
	return BarValue(ctx, k, rate)
}

// BarValue is the number written next to a KPI's bar, its unit in the
// chart's caption for crash boots.
func BarValue(ctx context.Context, k posfleet.KPI, rate float64) string {
	if k == posfleet.KPICrashBoots {
		return locale.From(ctx).Float(1000*rate, 2)
	}
	return locale.From(ctx).Float(100*rate, 2) + "%"
}

// UnitText is a KPI chart's unit, "" for a share.
func UnitText(ctx context.Context, k posfleet.KPI) string {
	if k == posfleet.KPICrashBoots {
		return locale.T(ctx, "campaigns.gate.unit_crash_boots")
	}
	return ""
}

// Totals counts a campaign's terminals by state over its waves.
func Totals(c posfleet.Campaign) map[posfleet.CampaignTerminalState]int {
	out := map[posfleet.CampaignTerminalState]int{}
	for _, w := range c.Waves {
		for st, n := range w.Counts {
			out[st] += n
		}
	}
	return out
}

// Size is how many terminals the campaign chose.
func Size(c posfleet.Campaign) int {
	n := 0
	for _, w := range c.Waves {
		n += w.Size
	}
	return n
}

// Installed is how many have the target now.
func Installed(c posfleet.Campaign) int { return Totals(c)[posfleet.CTInstalled] }

// WaveText is "wave 2 of 4" (the canary is wave 1).
func WaveText(ctx context.Context, c posfleet.Campaign) string {
	if len(c.Spec.Waves) == 0 {
		return "–"
	}
	return locale.T(ctx, "campaigns.wave_of", "Wave", c.Wave+1, "Waves", len(c.Spec.Waves))
}

// WaveName names a wave: the canary, or its share or count.
func WaveName(ctx context.Context, c posfleet.Campaign, i int) string {
	if i < 0 || i >= len(c.Spec.Waves) {
		return locale.T(ctx, "campaigns.wave_n", "Wave", i+1)
	}
	return WaveSpecText(ctx, i, c.Spec.Waves[i])
}

// WaveSpecText names a wave spec: "Canary: 5 terminals", "Wave 2: up to 10%".
func WaveSpecText(ctx context.Context, i int, w posfleet.WaveSpec) string {
	var what string
	if w.Count > 0 {
		what = locale.N(ctx, "campaigns.wave_count", w.Count)
	} else {
		what = locale.T(ctx, "campaigns.wave_percent", "Percent", PercentText(ctx, w.Percent))
	}
	if i == 0 {
		return locale.T(ctx, "campaigns.wave_canary", "What", what)
	}
	return locale.T(ctx, "campaigns.wave_numbered", "Wave", i+1, "What", what)
}

// PercentText writes a wave's percentage: 10%, 0.5%.
func PercentText(ctx context.Context, p float64) string {
	return strconv.FormatFloat(p, 'f', -1, 64) + "%"
}

// SoakText writes a soak time as people read it: 24 h, 2 h 30 min, none.
func SoakText(ctx context.Context, d posfleet.Duration) string {
	t := time.Duration(d)
	if t <= 0 {
		return locale.T(ctx, "campaigns.soak_none")
	}
	h, m := int(t/time.Hour), int(t%time.Hour/time.Minute)
	if t < time.Minute {
		return locale.T(ctx, "campaigns.soak_s", "Seconds", int(t.Seconds()))
	}
	switch {
	case h > 0 && m > 0:
		return locale.T(ctx, "campaigns.soak_hm", "Hours", h, "Minutes", m)
	case h > 0:
		return locale.T(ctx, "campaigns.soak_h", "Hours", h)
	}
	return locale.T(ctx, "campaigns.soak_m", "Minutes", m)
}

// WindowText says when the campaign may send an update.
func WindowText(ctx context.Context, w posfleet.MaintenanceWindow) string {
	zone := w.Zone
	if zone == "" {
		zone = locale.T(ctx, "campaigns.window.tenant_zone")
	}
	switch w.Mode {
	case posfleet.WindowAny:
		return locale.T(ctx, "campaigns.window.any_text")
	case posfleet.WindowFixed:
		return locale.T(ctx, "campaigns.window.fixed_text", "Start", w.Start, "End", w.End, "Zone", zone)
	}
	return locale.T(ctx, "campaigns.window.learned_text", "Start", w.Start, "End", w.End, "Zone", zone)
}

// Row is one campaign of the list.
type Row struct {
	posfleet.Campaign
	Href             string
	Installed, Total int
}

// NewRow is a campaign with its link and progress.
func NewRow(c posfleet.Campaign) Row {
	return Row{Campaign: c, Href: Href(c.ID), Installed: Installed(c), Total: Size(c)}
}

// ListView is the campaign list.
type ListView struct {
	Frame layout.Page
	Now   time.Time
	// State filters the list ("" = all).
	State string
	Rows  []Row
	// CanCreate shows "New campaign" (Perms.Act).
	CanCreate bool
}

// WaveRow is one wave of the form: a percentage and a soak, as typed.
type WaveRow struct{ Percent, Soak string }

// Form is the new campaign form's values as typed: the form keeps them
// after a refusal.
type Form struct {
	Tenant                             string
	Name, Model, Target                string
	PackageURL, PackageSHA             string
	Regions, Merchants, Versions       string
	Terminals                          string
	Canary, CanarySoak                 string
	Waves                              []WaveRow
	MaxInFlight                        string
	WindowMode, WindowStart, WindowEnd string
	WindowZone                         string
	// Rollback: one line per version, "version URL SHA-256".
	Rollback string
}

// FormWaves is how many percentage rows the form offers after the canary.
const FormWaves = 5

// Rows are the form's wave rows, padded with empty ones to FormWaves.
func (f Form) Rows() []WaveRow {
	out := slices.Clone(f.Waves)
	for len(out) < FormWaves {
		out = append(out, WaveRow{})
	}
	return out
}

// FormView is the new campaign form, with the refusals by field.
type FormView struct {
	Frame layout.Page
	Form  Form
	// Tenants: the caller sees every tenant and names the campaign's.
	AskTenant bool
	// Models and Versions are the fleet's, for the fields' suggestions.
	Models, Versions []string
	// Errors are the refusals by form field name; Error one about no
	// field in particular.
	Errors map[string]string
	Error  string
}

// Err is the refusal of field, "" for none.
func (v FormView) Err(field string) string { return v.Errors[field] }

// ErrID is the id of field's refusal, for aria-describedby.
func ErrID(field string) string { return "err-" + field }

// VersionCount is how many selected terminals run a version.
type VersionCount struct {
	Version string
	N       int
}

// PreviewView is the preview of a campaign before it is created: what it
// selects, its wave sizes, and the form's values to post again.
type PreviewView struct {
	Frame   layout.Page
	Form    Form
	Spec    posfleet.CampaignSpec
	Preview posfleet.CampaignPreview
	// Changed is the count the caller confirmed when the selection has
	// changed since (the fleet moved in between).
	Changed string
	// NoRollback are the selected versions a rollback would have no
	// package for.
	NoRollback []string
}

// Versions are the preview's versions, the most common first.
func (v PreviewView) Versions() []VersionCount {
	out := make([]VersionCount, 0, len(v.Preview.Versions))
	for _, ver := range slices.Sorted(maps.Keys(v.Preview.Versions)) {
		out = append(out, VersionCount{ver, v.Preview.Versions[ver]})
	}
	slices.SortStableFunc(out, func(a, b VersionCount) int { return cmp.Compare(b.N, a.N) })
	return out
}

// WaveSizes writes the wave sizes as "5 / 120 / 600 / 1,200".
func (v PreviewView) WaveSizes(ctx context.Context) string {
	s := ""
	for i, n := range v.Preview.WaveSizes {
		if i > 0 {
			s += " / "
		}
		s += locale.Int(ctx, int64(n))
	}
	return s
}

// TerminalRow is one terminal of a campaign, with its page.
type TerminalRow struct {
	posfleet.CampaignTerminal
	Href string
}

// DetailView is a campaign's page.
type DetailView struct {
	Frame    layout.Page
	Now      time.Time
	Campaign posfleet.Campaign
	// Why says in words why it is paused or ended ("" when running).
	Why    string
	Events []posfleet.CampaignEvent
	// Terminals are those in TerminalState ("" = all), at most Limit.
	Terminals     []TerminalRow
	TerminalState string
	Limit         int
	// Actions are those the campaign's state allows, for those who may
	// act.
	Actions       []posfleet.CampaignAction
	Notice, Error string
	// Refresh is the period of the page's own refresh while the campaign
	// runs (0: it does not change any more).
	Refresh int
}

// Totals counts the campaign's terminals by state.
func (v DetailView) Totals() map[posfleet.CampaignTerminalState]int { return Totals(v.Campaign) }

// Shown is how many terminals the terminal list could show: those in its
// state, or all.
func (v DetailView) Shown() int {
	if v.TerminalState == "" {
		return Size(v.Campaign)
	}
	return v.Totals()[posfleet.CampaignTerminalState(v.TerminalState)]
}

// ConfirmView asks before an action, with how many terminals it touches.
type ConfirmView struct {
	Frame    layout.Page
	Campaign posfleet.Campaign
	Action   posfleet.CampaignAction
	// Count is the terminals the action touches: rolled back, still to
	// update, in flight.
	Count int
	// AcceptsGate: resuming after a failed gate accepts its verdict.
	AcceptsGate bool
}

// Effect says what the action does next.
func (v ConfirmView) Effect(ctx context.Context) string {
	if v.AcceptsGate {
		return locale.T(ctx, "campaigns.confirm_effect.resume_gate")
	}
	return locale.T(ctx, "campaigns.confirm_effect."+string(v.Action))
}

// Question is the confirmation's question.
func (v ConfirmView) Question(ctx context.Context) string {
	return locale.N(ctx, "campaigns.confirm."+string(v.Action), v.Count, "Name", v.Campaign.Spec.Name)
}

// ActionCount is how many terminals act touches in c: a rollback the
// updated ones, an abort and a resume those not yet updated, a pause
// those whose update is under way.
func ActionCount(c posfleet.Campaign, act posfleet.CampaignAction) int {
	t := Totals(c)
	switch act {
	case posfleet.CampaignRollback:
		return t[posfleet.CTInstalled] + t[posfleet.CTSent] + t[posfleet.CTDownloading]
	case posfleet.CampaignPause:
		return t[posfleet.CTSent] + t[posfleet.CTDownloading]
	}
	return t[posfleet.CTPending] + t[posfleet.CTQueued] + t[posfleet.CTOffline]
}

// barX is where a KPI chart's bars start, after their labels.
const barX = 112.0

// Bar is one bar of a gate's KPI chart.
type Bar struct {
	Label, Value, Class string
	W                   string // width in viewBox units
	Y, TextY            string
}

// KPIChart lays out the updated and baseline rates of m as two bars on
// one scale, with the numbers written next to them.
func KPIChart(ctx context.Context, m posfleet.GateMetric) []Bar {
	const full = 180.0
	top := max(m.UpdatedRate, m.BaselineRate)
	w := func(v float64) string {
		if top <= 0 || v <= 0 {
			return "0"
		}
		return strconv.FormatFloat(math.Max(1, math.Round(full*v/top*10)/10), 'f', -1, 64)
	}
	upd := "bar-updated"
	if m.Worse {
		upd = "bar-worse"
	}
	return []Bar{
		{Label: locale.T(ctx, "campaigns.gate.updated"), Value: BarValue(ctx, m.KPI, m.UpdatedRate), Class: upd, W: w(m.UpdatedRate), Y: "2", TextY: "14"},
		{Label: locale.T(ctx, "campaigns.gate.baseline"), Value: BarValue(ctx, m.KPI, m.BaselineRate), Class: "bar-baseline", W: w(m.BaselineRate), Y: "22", TextY: "34"},
	}
}

// BarTextX is where a bar's number is written: after the bar.
func BarTextX(b Bar) string {
	w, _ := strconv.ParseFloat(b.W, 64)
	return strconv.FormatFloat(barX+w+4, 'f', -1, 64)
}

// Verdict is a KPI's verdict in words.
func Verdict(ctx context.Context, m posfleet.GateMetric) string {
	switch {
	case !m.Enough:
		return locale.T(ctx, "campaigns.gate.not_enough")
	case m.Worse:
		return locale.T(ctx, "campaigns.gate.worse")
	}
	return locale.T(ctx, "campaigns.gate.passed")
}

// VerdictClass is the css class of a KPI's verdict badge.
func VerdictClass(m posfleet.GateMetric) string {
	switch {
	case !m.Enough:
		return "badge"
	case m.Worse:
		return "badge urgent"
	}
	return "badge ok"
}

// WaveBar lays out a wave's progress as stacked segments of 100 units:
// installed, failed, under way, the rest.
func WaveBar(w posfleet.WaveProgress) []Bar {
	if w.Size <= 0 {
		return nil
	}
	var out []Bar
	x := 0.0
	for _, seg := range []struct {
		class string
		n     int
	}{
		{"seg-installed", w.Counts[posfleet.CTInstalled]},
		{"seg-failed", w.Counts[posfleet.CTFailed] + w.Counts[posfleet.CTRolledBack]},
		{"seg-flight", w.Counts[posfleet.CTSent] + w.Counts[posfleet.CTDownloading]},
		{"seg-offline", w.Counts[posfleet.CTOffline]},
	} {
		if seg.n <= 0 {
			continue
		}
		width := 100 * float64(seg.n) / float64(w.Size)
		out = append(out, Bar{Class: seg.class, W: strconv.FormatFloat(width, 'f', 2, 64), Y: strconv.FormatFloat(x, 'f', 2, 64)})
		x += width
	}
	return out
}

// EventLabel is a timeline entry's kind for people.
func EventLabel(ctx context.Context, kind string) string {
	if slices.Contains(eventKinds, kind) {
		return locale.T(ctx, "campaigns.event."+kind)
	}
	return kind
}

// EventDetail is a timeline entry's text for the reader: an operator's
// note always; the campaign package's own sentences (in English) only to
// a reader of English, as the other columns say the same in words.
func EventDetail(ctx context.Context, e posfleet.CampaignEvent) string {
	if e.By != "" && slices.Contains(noteKinds, e.Kind) {
		return e.Text
	}
	if locale.From(ctx).Lang == locale.English {
		return e.Text
	}
	return ""
}

// noteKinds are the timeline kinds whose text is an operator's note.
var noteKinds = []string{"paused", "resumed", "aborted", "rollback"}

// eventKinds are the timeline kinds with a name in the catalogue.
var eventKinds = []string{"created", "wave_started", "soak_started", "soak_extended", "gate_passed", "gate_failed", "paused", "resumed", "aborted", "rollback", "rolled_back", "finished"}

// GateTitle names a gate: after which wave.
func GateTitle(ctx context.Context, c posfleet.Campaign, g posfleet.GateResult) string {
	return locale.T(ctx, "campaigns.gate.title", "Wave", WaveName(ctx, c, g.Wave))
}

// WorseKPIs names the KPIs a gate found worse, joined for a sentence.
func WorseKPIs(ctx context.Context, g posfleet.GateResult) string {
	s := ""
	for _, m := range g.Metrics {
		if m.Worse {
			if s != "" {
				s += locale.T(ctx, "campaigns.list_separator")
			}
			s += KPILabel(ctx, m.KPI)
		}
	}
	return s
}

// orDash is s, or "–" when empty.
func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func fromText(ctx context.Context, versions []string) string {
	if len(versions) == 0 {
		return locale.T(ctx, "campaigns.any_version")
	}
	return strings.Join(versions, locale.T(ctx, "campaigns.list_separator"))
}

// waveStates are the terminal states the waves table counts.
var waveStates = []posfleet.CampaignTerminalState{posfleet.CTQueued, posfleet.CTSent, posfleet.CTDownloading, posfleet.CTInstalled,
	posfleet.CTFailed, posfleet.CTOffline, posfleet.CTPending, posfleet.CTRolledBack}

func refreshAttr(s int) string {
	if s <= 0 {
		return ""
	}
	return strconv.Itoa(s)
}

func whyClass(st posfleet.CampaignState) string {
	if st == posfleet.CampaignPaused || st == posfleet.CampaignRollingBack {
		return "error"
	}
	return "notice"
}

func actionClass(a posfleet.CampaignAction) string {
	if a == posfleet.CampaignAbort || a == posfleet.CampaignRollback {
		return "danger"
	}
	return ""
}

func timeOrDash(ctx context.Context, t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return parts.Time(ctx, t)
}

func actorLabel(by string) string {
	if by == "" {
		return "posfleet"
	}
	return by
}
