// Package notifications is the page of a tenant's notification channels
// (webhook, e-mail, chat robots), the routes that say which alarms go to
// which channel and when, and the latest notifications of the outbox.
// Administrators create, edit, test and delete; a tenant's users read.
package notifications

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/web/pages/layout"
)

// Option is one choice of a select.
type Option struct{ Value, Label string }

// ChannelDraft is a channel form's values: never its URL or secret.
type ChannelDraft struct {
	ID, Tenant, Name, Type string
	To                     string // recipients, comma-separated
	Language               string
	Enabled                bool
	RatePerHour            string
	HasSecret              bool
	URLHint                string
}

// RouteDraft is a route form's values; Set when they came back from a
// refused form.
type RouteDraft struct {
	posfleet.NotifyRoute
	Set bool
}

// View is the page's content.
type View struct {
	Frame layout.Page
	// Admin may create, edit, test and delete.
	Admin           bool
	Types           []posfleet.NotifyChannelType
	Kinds           []Option
	States          []posfleet.NotificationState
	State           string // the recent list's filter
	DefaultTimeZone string
	Channels        []posfleet.NotifyChannel
	Routes          []posfleet.NotifyRoute
	Recent          []posfleet.Notification
	Notice, Error   string
	// TestFailed is the receiver's answer to "send test" on TestChannel.
	TestFailed, TestChannel string
	// The create forms' values after a refusal.
	ChannelDraft ChannelDraft
	RouteDraft   RouteDraft
}

// EditDraft is a channel's edit form's values.
func EditDraft(ch posfleet.NotifyChannel) ChannelDraft {
	return ChannelDraft{ID: ch.ID, Tenant: ch.Tenant, Name: ch.Name, Type: string(ch.Type), To: strings.Join(ch.To, ", "),
		Language: ch.Language, Enabled: ch.Enabled, RatePerHour: strconv.Itoa(ch.RatePerHour), HasSecret: ch.HasSecret, URLHint: ch.URLHint}
}

// NewChannelDraft is the create form's values: the refused ones, or the
// defaults.
func (v View) NewChannelDraft() ChannelDraft {
	if v.ChannelDraft.Name != "" || v.ChannelDraft.Type != "" {
		return v.ChannelDraft
	}
	return ChannelDraft{Type: string(posfleet.NotifyWebhook), Language: "en", Enabled: true, RatePerHour: "60"}
}

// NewRouteDraft is the create form's values: the refused ones, or the
// defaults.
func (v View) NewRouteDraft() posfleet.NotifyRoute {
	if v.RouteDraft.Set {
		return v.RouteDraft.NotifyRoute
	}
	return posfleet.NotifyRoute{TimeZone: v.DefaultTimeZone, DigestAt: "09:00", Resolved: true, Enabled: true}
}

// ChannelName is a channel's name for people, by its ID.
func (v View) ChannelName(id string) string {
	for _, ch := range v.Channels {
		if ch.ID == id {
			return ch.Name
		}
	}
	return id
}

func channelHref(id, action string) string {
	if action == "" {
		return "/notifications/channels/" + url.PathEscape(id)
	}
	return "/notifications/channels/" + url.PathEscape(id) + "/" + action
}

func routeHref(id, action string) string {
	if action == "" {
		return "/notifications/routes/" + url.PathEscape(id)
	}
	return "/notifications/routes/" + url.PathEscape(id) + "/" + action
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func orAll(list []string) string {
	if len(list) == 0 {
		return "all"
	}
	return strings.Join(list, ", ")
}

func has(list []string, v string) bool { return slices.Contains(list, v) }

func joinTo(list []string) string { return strings.Join(list, ", ") }

func orUTC(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

// stateClass is the css class of a notification's state.
func stateClass(st posfleet.NotificationState) string {
	switch st {
	case posfleet.NotificationSent, posfleet.NotificationBundled:
		return "badge ok"
	case posfleet.NotificationFailed:
		return "badge urgent"
	case posfleet.NotificationPending, posfleet.NotificationHeld:
		return "badge update"
	}
	return "badge"
}

func sentTime(n posfleet.Notification) string {
	if n.Sent.IsZero() {
		return "–"
	}
	return n.Sent.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// formID is a form's id: channel-new, or channel-edit-<id>.
func formID(kind, id string, isNew bool) string {
	if isNew {
		return kind + "-new"
	}
	return kind + "-edit-" + id
}

func formTestID(kind string, isNew bool) string {
	if isNew {
		return kind + "-create"
	}
	return kind + "-edit"
}

func urlPlaceholder(d ChannelDraft, isNew bool) string {
	switch {
	case isNew:
		return "https://… (not for e-mail)"
	case d.URLHint != "":
		return "unchanged: " + d.URLHint
	}
	return "none set"
}

func secretPlaceholder(d ChannelDraft, isNew bool) string {
	switch {
	case isNew:
		return "signing secret (optional)"
	case d.HasSecret:
		return "unchanged (set)"
	}
	return "none set"
}

// digestAt is the digest time the form shows: 09:00 when none is set.
func digestAt(r posfleet.NotifyRoute) string {
	if r.DigestAt == "" {
		return "09:00"
	}
	return r.DigestAt
}
