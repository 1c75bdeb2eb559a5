// Package alarms is the alarm list (filters, bulk acknowledge and assign
// with a confirmation step) and the alarm page (evidence, history, folded
// alarms, and the forms to acknowledge, assign, comment, snooze, resolve).
package alarms

import (
	"context"
	"net/url"
	"slices"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/parts"
)

// Option is one choice of a select.
type Option struct{ Value, Label string }

// Filter is the filter form's current values.
type Filter struct {
	State, Kind, Urgent, Region, Assignee, Tenant string
}

// Row is one alarm as the pages show it.
type Row struct {
	posfleet.Alarm
	Href string // the alarm's page
	// TargetHref and TargetLabel link to its terminal or to the incidents.
	TargetHref, TargetLabel string
	KindLabel               string
}

// NewRow is an alarm with its links and labels.
func NewRow(ctx context.Context, a posfleet.Alarm) Row {
	r := Row{Alarm: a, Href: Href(a.ID), KindLabel: KindLabel(ctx, a.Kind)}
	if a.Kind == posfleet.AlarmKindBurst {
		r.TargetHref, r.TargetLabel = Href(a.ID), locale.T(ctx, "alarms.target.its_terminals")
	} else if a.Kind == posfleet.AlarmKindCampaign {
		r.TargetHref, r.TargetLabel = "/campaigns/"+url.PathEscape(a.Incident), a.Incident
	} else if a.Kind == posfleet.AlarmKindIncident || a.Terminal == "" {
		r.TargetHref, r.TargetLabel = "/incidents", locale.T(ctx, "alarms.target.incident", "ID", a.Incident)
		if a.Incident == "" {
			r.TargetLabel = locale.T(ctx, "alarms.target.incidents")
		}
	} else {
		r.TargetHref, r.TargetLabel = parts.TerminalHref(a.Tenant, a.Terminal), a.Terminal
	}
	return r
}

// Href is an alarm's page.
func Href(id string) string { return "/alarms/" + url.PathEscape(id) }

// ActionHref is the address of an action's form on an alarm.
func ActionHref(id, action string) string { return Href(id) + "/" + action }

// KindLabel is an alarm's kind for people: its flag's name, or Incident.
func KindLabel(ctx context.Context, kind string) string {
	switch kind {
	case posfleet.AlarmKindIncident:
		return locale.T(ctx, "alarms.kind.incident")
	case posfleet.AlarmKindBurst:
		return locale.T(ctx, "alarms.kind.mass_offline")
	case posfleet.AlarmKindCampaign:
		return locale.T(ctx, "alarms.kind.campaign_paused")
	}
	return parts.FlagLabel(ctx, posfleet.FlagName(kind))
}

// StateLabel is an alarm's state for people; an unknown one as it is.
func StateLabel(ctx context.Context, st posfleet.AlarmState) string {
	if slices.Contains(posfleet.AlarmStates, st) {
		return locale.T(ctx, "alarms.state."+string(st))
	}
	return string(st)
}

// historyActions are the actions of an alarm's history.
var historyActions = []posfleet.AlarmAction{posfleet.AlarmActRaised, posfleet.AlarmActCleared, posfleet.AlarmActReopened,
	posfleet.AlarmActResolved, posfleet.AlarmActAcknowledged, posfleet.AlarmActAssigned, posfleet.AlarmActCommented,
	posfleet.AlarmActSnoozed, posfleet.AlarmActFolded, posfleet.AlarmActUnfolded}

// ActionLabel is a history entry's action for people; an unknown one as
// it is.
func ActionLabel(ctx context.Context, act posfleet.AlarmAction) string {
	if slices.Contains(historyActions, act) {
		return locale.T(ctx, "alarms.action_done."+string(act))
	}
	return string(act)
}

// entryDetail is a history entry's detail: a snooze's end (RFC 3339) in
// the reader's zone, "snooze ended" for its end; anything else as it is.
func entryDetail(ctx context.Context, e posfleet.AlarmEntry) string {
	if e.Action == posfleet.AlarmActSnoozed {
		if e.Detail == "" {
			return locale.T(ctx, "alarms.snooze_ended")
		}
		if t, err := time.Parse(time.RFC3339, e.Detail); err == nil {
			return locale.T(ctx, "alarms.snoozed_until", "Until", t)
		}
	}
	return e.Detail
}

// StateClass is the css class of a state's badge.
func StateClass(st posfleet.AlarmState) string {
	switch st {
	case posfleet.AlarmOpen:
		return "badge urgent"
	case posfleet.AlarmAcknowledged:
		return "badge maintenance"
	case posfleet.AlarmAssigned:
		return "badge update"
	case posfleet.AlarmResolved:
		return "badge ok"
	}
	return "badge"
}

// BulkNotice is the result of a bulk action after its redirect.
type BulkNotice struct {
	Action       string
	Done, Failed int
}

// ListView is the alarm list's content.
type ListView struct {
	Frame  layout.Page
	Now    time.Time
	Filter Filter
	Admin  bool // may filter by tenant
	Kinds  []Option
	Error  string
	Notice *BulkNotice
	Total  int
	Page   int
	Pages  int
	First  int // 1-based index of the first row shown
	Rows   []Row
	// Prev and Next are hrefs; "" at the ends.
	Prev, Next string
	// Back is this list with its filters: where the bulk form returns.
	Back string
}

// Failure is an alarm a bulk action could not change.
type Failure struct{ ID, Error string }

// ConfirmView is the bulk action's confirmation, or its result when some
// alarms failed (Done set).
type ConfirmView struct {
	Frame    layout.Page
	Action   string // acknowledge or assign
	Assignee string
	IDs      []string
	Rows     []Row // those of IDs the user may see
	Back     string
	Done     *int
	Failed   []Failure
}

// DetailView is an alarm's page.
type DetailView struct {
	Frame    layout.Page
	Now      time.Time
	Alarm    Row
	Evidence string // indented JSON, when it is not a flag's
	// FlagEvidence is a flag alarm's evidence, shown as the terminal page
	// shows it.
	FlagEvidence posfleet.Evidence
	History      []posfleet.AlarmEntry
	Folded       []Row
	// Users are the names the assign form suggests.
	Users         []string
	Notice, Error string
	// Zone names the time zone of "until tomorrow 09:00" (Asia/Shanghai).
	Zone string
}

// Resolved reports whether the alarm is resolved: only a comment is left to do.
func (v DetailView) Resolved() bool { return v.Alarm.State == posfleet.AlarmResolved }

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// timeOrDash formats a time, "–" when zero.
func timeOrDash(ctx context.Context, t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return parts.Time(ctx, t)
}

func actorLabel(actor string) string {
	if actor == "" {
		return "posfleet"
	}
	return actor
}
