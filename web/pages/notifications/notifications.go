// Package notifications is the page of a tenant's notification channels
// (webhook, e-mail, chat robots), the routes that say which alarms go to
// which channel and when, and the latest notifications of the outbox.
// Administrators create, edit, test and delete; a tenant's users read.
package notifications

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
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
	// DefaultLanguage is a new channel's language: the reader's.
	DefaultLanguage string
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
	lang := v.DefaultLanguage
	if !locale.Supported(lang) {
		lang = locale.English
	}
	return ChannelDraft{Type: string(posfleet.NotifyWebhook), Language: lang, Enabled: true, RatePerHour: "60"}
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

func yesNo(ctx context.Context, b bool) string {
	if b {
		return locale.T(ctx, "common.yes")
	}
	return locale.T(ctx, "common.no")
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func orAll(ctx context.Context, list []string) string {
	if len(list) == 0 {
		return locale.T(ctx, "notifications.all")
	}
	return strings.Join(list, ", ")
}

// kindLabel is an alarm kind's name for people (the kind filter's
// labels); an unknown kind as it is.
func (v View) kindLabel(kind string) string {
	for _, k := range v.Kinds {
		if k.Value == kind {
			return k.Label
		}
	}
	return kind
}

// kindsLabel are a route's kinds for people, "all" for none.
func (v View) kindsLabel(ctx context.Context, kinds []string) string {
	if len(kinds) == 0 {
		return locale.T(ctx, "notifications.all")
	}
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = v.kindLabel(k)
	}
	return strings.Join(out, locale.T(ctx, "notifications.list_separator"))
}

func has(list []string, v string) bool { return slices.Contains(list, v) }

func joinTo(list []string) string { return strings.Join(list, ", ") }

// orUTC is a route's time zone: "" is UTC.
func orUTC(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

// typeLabel is a channel type's name for people (DingTalk, 钉钉).
func typeLabel(ctx context.Context, t posfleet.NotifyChannelType) string {
	if slices.Contains(posfleet.NotifyChannelTypes, t) {
		return locale.T(ctx, "notifications.type."+string(t))
	}
	return string(t)
}

// languageLabel is a channel's language in itself (English, 简体中文).
func languageLabel(ctx context.Context, lang string) string {
	if !locale.Supported(lang) {
		return orDash(lang)
	}
	return locale.LanguageName(lang)
}

// notificationStates are the states a notification's label is known for.
var notificationStates = []posfleet.NotificationState{posfleet.NotificationPending, posfleet.NotificationHeld,
	posfleet.NotificationSent, posfleet.NotificationFailed, posfleet.NotificationSuppressed, posfleet.NotificationBundled}

// stateLabel is a notification's state for people.
func stateLabel(ctx context.Context, st posfleet.NotificationState) string {
	if slices.Contains(notificationStates, st) {
		return locale.T(ctx, "notifications.state."+string(st))
	}
	return string(st)
}

var notificationEvents = []posfleet.NotificationEvent{posfleet.NotifyRaised, posfleet.NotifyResolved,
	posfleet.NotifyDigest, posfleet.NotifySummary, posfleet.NotifyTest}

// eventLabel is a notification's event for people.
func eventLabel(ctx context.Context, ev posfleet.NotificationEvent) string {
	if slices.Contains(notificationEvents, ev) {
		return locale.T(ctx, "notifications.event."+string(ev))
	}
	return string(ev)
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

// sentTime is when a notification was sent, in the reader's zone; "–"
// before.
func sentTime(ctx context.Context, n posfleet.Notification) string {
	if n.Sent.IsZero() {
		return "–"
	}
	return locale.Time(ctx, n.Sent)
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

func urlPlaceholder(ctx context.Context, d ChannelDraft, isNew bool) string {
	switch {
	case isNew:
		return locale.T(ctx, "notifications.url_new")
	case d.URLHint != "":
		return locale.T(ctx, "notifications.url_unchanged", "Hint", d.URLHint)
	}
	return locale.T(ctx, "notifications.none_set")
}

func secretPlaceholder(ctx context.Context, d ChannelDraft, isNew bool) string {
	switch {
	case isNew:
		return locale.T(ctx, "notifications.secret_new")
	case d.HasSecret:
		return locale.T(ctx, "notifications.secret_unchanged")
	}
	return locale.T(ctx, "notifications.none_set")
}

// digestAt is the digest time the form shows: 09:00 when none is set.
func digestAt(r posfleet.NotifyRoute) string {
	if r.DigestAt == "" {
		return "09:00"
	}
	return r.DigestAt
}
