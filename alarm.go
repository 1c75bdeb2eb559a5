package posfleet

import (
	"encoding/json"
	"time"
)

// An alarm is one occurrence of a problem that someone has to own: a flag
// raised on a terminal, or a fleet-wide incident. It has a lifecycle
// (open → acknowledged → assigned → resolved), comments, a snooze and its
// whole history; notifications are sent on its transitions.
//
// One alarm per occurrence, never one per message: a flag that clears and
// comes back within the debounce reopens the same alarm. While an incident
// is open, the terminal alarms it explains are folded into its alarm
// (Parent) and notify nobody on their own.

// AlarmState is where an alarm is in its lifecycle.
type AlarmState string

const (
	AlarmOpen         AlarmState = "open"
	AlarmAcknowledged AlarmState = "acknowledged"
	AlarmAssigned     AlarmState = "assigned"
	AlarmResolved     AlarmState = "resolved"
)

// AlarmStates lists the states in lifecycle order.
var AlarmStates = []AlarmState{AlarmOpen, AlarmAcknowledged, AlarmAssigned, AlarmResolved}

// AlarmKindIncident is the kind of an incident's alarm. A terminal's alarm
// has its flag's name as kind.
const AlarmKindIncident = "incident"

// AlarmGroup reports whether alarms of kind stand for many terminals and
// fold their alarms (incidents, bursts).
func AlarmGroup(kind string) bool { return kind == AlarmKindIncident || kind == AlarmKindBurst }

// AlarmKindCampaign is the kind of the alarm a firmware campaign raises
// when a gate pauses it (its Incident is the campaign's ID).
const AlarmKindCampaign = "campaign_paused"

// ValidAlarmKind reports whether kind is a flag's name, a group's kind or
// a campaign's.
func ValidAlarmKind(kind string) bool {
	if AlarmGroup(kind) || kind == AlarmKindCampaign {
		return true
	}
	_, err := ParseFlagName(kind)
	return err == nil
}

// AlarmKindBurst is the kind of the alarm that stands for many terminals
// of a tenant raising the same flag at once (offline: a network or power
// outage), folding their own alarms.
const AlarmKindBurst = "mass_offline"

// Alarm is one alarm as lists and pages show it.
type Alarm struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// Terminal is "" for an incident's alarm.
	Terminal string `json:"terminal,omitempty"`
	// Kind is the flag's name, or AlarmKindIncident.
	Kind string `json:"kind"`
	// Incident is the incident's ID (incident alarms only).
	Incident string     `json:"incident,omitempty"`
	Urgent   bool       `json:"urgent"`
	Merchant string     `json:"merchant,omitempty"`
	Region   string     `json:"region,omitempty"`
	State    AlarmState `json:"state"`
	// Active: its evidence is there (the flag is raised, the incident
	// open). An alarm whose evidence went is resolved once it stayed away
	// for the debounce; until then it reopens if the evidence comes back.
	Active bool      `json:"active"`
	Opened time.Time `json:"opened"`
	// Cleared is when the evidence last went (zero while active).
	Cleared  time.Time `json:"cleared,omitzero"`
	Resolved time.Time `json:"resolved,omitzero"`
	// ResolvedBy is "" when resolved by the rules (the evidence stayed
	// away), else the user who resolved it or whose visit cleared it.
	ResolvedBy string    `json:"resolved_by,omitempty"`
	AckBy      string    `json:"acknowledged_by,omitempty"`
	AckAt      time.Time `json:"acknowledged_at,omitzero"`
	// Assignee is a user name or a crew's name.
	Assignee     string    `json:"assignee,omitempty"`
	SnoozedUntil time.Time `json:"snoozed_until,omitzero"`
	// Parent is the ID of the incident alarm this one is folded into.
	Parent string `json:"parent,omitempty"`
	// Folded counts the terminal alarms folded into an incident's alarm.
	Folded int `json:"folded,omitempty"`
	// Occurrences: 1, plus one for every time the evidence came back
	// within the debounce.
	Occurrences int `json:"occurrences"`
	// Evidence is the flag's evidence when last raised, or the incident.
	Evidence json.RawMessage `json:"evidence,omitempty"`
	Updated  time.Time       `json:"updated"`
}

// Snoozed reports whether the alarm is snoozed at now.
func (a Alarm) Snoozed(now time.Time) bool { return a.SnoozedUntil.After(now) }

// AlarmAction is what happened to an alarm, in its history.
type AlarmAction string

const (
	AlarmActRaised       AlarmAction = "raised"       // the evidence appeared: the alarm opened
	AlarmActCleared      AlarmAction = "cleared"      // the evidence went; resolved after the debounce
	AlarmActReopened     AlarmAction = "reopened"     // the evidence came back within the debounce
	AlarmActResolved     AlarmAction = "resolved"     // by the rules, a visit or by hand
	AlarmActAcknowledged AlarmAction = "acknowledged" // someone owns it
	AlarmActAssigned     AlarmAction = "assigned"     // to a user or crew (detail: who)
	AlarmActCommented    AlarmAction = "commented"    // detail: the comment
	AlarmActSnoozed      AlarmAction = "snoozed"      // detail: until when (RFC 3339), "" to end a snooze
	AlarmActFolded       AlarmAction = "folded"       // into an incident's alarm (detail: its ID)
	AlarmActUnfolded     AlarmAction = "unfolded"     // its incident closed while it was still active
)

// AlarmEntry is one line of an alarm's history.
type AlarmEntry struct {
	At time.Time `json:"at"`
	// Actor is "" for the rules, else the user.
	Actor  string      `json:"actor,omitempty"`
	Action AlarmAction `json:"action"`
	Detail string      `json:"detail,omitempty"`
}

// AlarmFilter selects alarms for a list. Zero fields select everything.
type AlarmFilter struct {
	Tenant string // "" for every tenant (administrators)
	// States: any of these; empty means every state but resolved.
	States   []AlarmState
	Kind     string // a flag name or "incident"
	Urgent   *bool
	Region   string
	Assignee string
	Terminal string
	// Parent lists the alarms folded into one incident alarm; "" lists
	// top-level alarms only unless AllLevels.
	Parent    string
	AllLevels bool
	Limit     int
	Offset    int
}

// NotifyChannelType is how a notification channel delivers.
type NotifyChannelType string

const (
	NotifyWebhook  NotifyChannelType = "webhook"  // JSON, HMAC-SHA256 signed
	NotifyEmail    NotifyChannelType = "email"    // SMTP, plain text and HTML
	NotifyDingTalk NotifyChannelType = "dingtalk" // DingTalk custom robot, signed
	NotifyWeCom    NotifyChannelType = "wecom"    // WeCom (WeChat Work) group robot
	NotifyFeishu   NotifyChannelType = "feishu"   // Feishu / Lark custom bot, signed
	NotifySlack    NotifyChannelType = "slack"    // Slack incoming webhook
)

// NotifyChannelTypes lists the channel types.
var NotifyChannelTypes = []NotifyChannelType{NotifyWebhook, NotifyEmail, NotifyDingTalk, NotifyWeCom, NotifyFeishu, NotifySlack}

// NotifyChannel is where notifications go. Its secret (the webhook's HMAC key,
// DingTalk's or Feishu's signing secret) and its URL (chat robots carry
// their token in it) are never shown back once set: URLHint and HasSecret
// say they are there.
type NotifyChannel struct {
	ID     string            `json:"id"`
	Tenant string            `json:"tenant"`
	Name   string            `json:"name"`
	Type   NotifyChannelType `json:"type"`
	// URLHint is the URL's scheme and host ("https://oapi.dingtalk.com/…").
	URLHint string `json:"url_hint,omitempty"`
	// To lists the e-mail recipients.
	To        []string `json:"to,omitempty"`
	HasSecret bool     `json:"has_secret"`
	// Language of its messages: "en" or "zh-CN".
	Language string `json:"language"`
	Enabled  bool   `json:"enabled"`
	// RatePerHour caps the notifications sent per hour; past it, one
	// summary says how many were held back.
	RatePerHour int       `json:"rate_per_hour"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"created_by"`
	Updated     time.Time `json:"updated"`
}

// NotifySecrets are a channel's write-only parts; nil leaves one as it is.
type NotifySecrets struct {
	URL    *string `json:"url,omitempty"`
	Secret *string `json:"secret,omitempty"`
}

// NotifyRoute says which alarms of a tenant notify which channel, and when.
type NotifyRoute struct {
	ID      string `json:"id"`
	Tenant  string `json:"tenant"`
	Name    string `json:"name"`
	Channel string `json:"channel"` // the channel's ID
	// Kinds: flag names and/or "incident"; empty: every kind.
	Kinds []string `json:"kinds,omitempty"`
	// UrgentOnly: only urgent alarms (tamper, blocked firmware, incidents).
	UrgentOnly bool `json:"urgent_only,omitempty"`
	// Regions; empty: every region.
	Regions []string `json:"regions,omitempty"`
	// QuietStart and QuietEnd ("22:00", "07:00") in TimeZone: a non-urgent
	// notification due then waits for QuietEnd; urgent ones go through.
	QuietStart string `json:"quiet_start,omitempty"`
	QuietEnd   string `json:"quiet_end,omitempty"`
	// TimeZone is an IANA name (Asia/Shanghai); "" is UTC.
	TimeZone string `json:"time_zone,omitempty"`
	// Digest: non-urgent alarms go into one daily message at DigestAt
	// (in TimeZone) instead of one message each.
	Digest   bool   `json:"digest,omitempty"`
	DigestAt string `json:"digest_at,omitempty"`
	// Resolved: also notify when an alarm is resolved.
	Resolved  bool      `json:"resolved"`
	Enabled   bool      `json:"enabled"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
	Updated   time.Time `json:"updated"`
}

// NotificationEvent is why a notification is sent.
type NotificationEvent string

const (
	NotifyRaised   NotificationEvent = "raised"   // an alarm opened
	NotifyResolved NotificationEvent = "resolved" // an alarm was resolved
	NotifyDigest   NotificationEvent = "digest"   // the day's non-urgent alarms
	NotifySummary  NotificationEvent = "summary"  // the rate limit held some back
	NotifyTest     NotificationEvent = "test"     // "send test"
)

// NotificationState is where a notification is in the outbox.
type NotificationState string

const (
	NotificationPending    NotificationState = "pending"    // to deliver at Due
	NotificationHeld       NotificationState = "held"       // waiting for its route's digest at Due
	NotificationSent       NotificationState = "sent"       // delivered (the receiver said so)
	NotificationFailed     NotificationState = "failed"     // given up (too old); kept for the record
	NotificationSuppressed NotificationState = "suppressed" // over the rate limit; counted in a summary
	NotificationBundled    NotificationState = "bundled"    // sent as part of a digest or summary
)

// Notification is one message to one channel: written in the same
// transaction as the alarm transition that caused it, delivered at least
// once. Receivers drop repeats by ID.
type Notification struct {
	ID      string            `json:"id"`
	Tenant  string            `json:"tenant"`
	Channel string            `json:"channel"`
	Event   NotificationEvent `json:"event"`
	State   NotificationState `json:"state"`
	// Alarm is the alarm as it was at the transition (zero for digests,
	// summaries and tests).
	Alarm     Alarm     `json:"alarm,omitzero"`
	Created   time.Time `json:"created"`
	Due       time.Time `json:"due"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	Sent      time.Time `json:"sent,omitzero"`
}

// NotifyMessage is what a channel renders: one notification, or a digest or
// summary of several.
type NotifyMessage struct {
	// ID is the notification's ID: receivers drop repeats by it.
	ID     string            `json:"id"`
	Event  NotificationEvent `json:"event"`
	Tenant string            `json:"tenant"`
	// Alarm is set for raised and resolved.
	Alarm *Alarm `json:"alarm,omitempty"`
	// Alarms are a digest's alarms.
	Alarms []Alarm `json:"alarms,omitempty"`
	// Held is how many notifications a summary stands for.
	Held int `json:"held,omitempty"`
	// URL is the page to open: the alarm's terminal or incident, the
	// alarm list for digests and summaries.
	URL string `json:"url"`
	// AlarmURL is the alarm's own page (acknowledge, assign, comment);
	// "" for digests, summaries and tests.
	AlarmURL string    `json:"alarm_url,omitempty"`
	Time     time.Time `json:"time"`
}
