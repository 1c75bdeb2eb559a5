package notify

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
)

// The texts of the messages are in the message catalogues
// (locale/catalog/notify.<lang>.toml, IDs "notify.…"), rendered through
// package locale in the channel's language and its readers' time zone:
// every entry is a whole sentence or line with named placeholders, so that
// a translation may reorder them or leave one out, and no sentence is
// glued from translated fragments. Counts are plural messages (CLDR rules:
// English has one and other, Chinese other only).

// digestMax caps the alarms a digest lists: a chat message or an e-mail
// with hundreds of lines is not read, and chat services refuse large
// bodies. The rest are counted and on the alarm list.
const digestMax = 50

// language returns the catalogue language of a channel's language: ""
// and anything unknown are English.
func language(lang string) string {
	switch strings.ToLower(lang) {
	case "zh-cn", "zh", "zh-hans":
		return locale.Chinese
	}
	return locale.English
}

// TimeZone is the zone a channel's readers live in when neither its
// routes nor its tenant name one: Asia/Shanghai for zh-CN, UTC otherwise
// (locale.DefaultZone).
func TimeZone(lang string) *time.Location {
	return locale.New(language(lang), "").Zone
}

// link is one link of a message.
type link struct {
	Label string
	URL   string
}

// text is a message rendered for people, before a channel formats it.
// Every value from outside posfleet in it has passed esc.
type text struct {
	Lang   string // "en" or "zh-CN"
	Title  string
	Lead   string
	Facts  []string
	Items  []string // a digest's alarms, at most digestMax
	More   int      // a digest's alarms not in Items
	Links  []link
	Footer string
	Urgent bool
	loc    *locale.Locale
}

// printer formats the texts of one language in one time zone.
type printer struct {
	l   *locale.Locale
	esc func(string) string
}

// f is the message id with its placeholders (name, value pairs; times in
// the readers' zone with the zone named, integers with separators).
func (p printer) f(id string, kv ...any) string { return p.l.T("notify."+id, kv...) }

// n is the plural message id for n, as {{.Count}}.
func (p printer) n(id string, n int, kv ...any) string { return p.l.N("notify."+id, n, kv...) }

// v is a value from outside posfleet, made safe to show: redacted if it
// looks like card data (the guard every such value passes), then escaped
// for the channel's markup.
func (p printer) v(s string) string { return p.esc(posfleet.Redact(s)) }

// kinds are the alarm kinds the catalogue names.
var kinds = func() []string {
	out := []string{posfleet.AlarmKindIncident, posfleet.AlarmKindBurst, posfleet.AlarmKindCampaign}
	for _, f := range posfleet.FlagNames {
		out = append(out, string(f))
	}
	return out
}()

// kindLabel is a kind's name for people; an unknown kind is shown as is.
func (p printer) kindLabel(kind string) string {
	if slices.Contains(kinds, kind) {
		return p.f("kind." + kind)
	}
	return p.v(kind)
}

func (p printer) where(a *posfleet.Alarm) string {
	switch {
	case a.Terminal == "":
		return p.f("where.tenant", "Tenant", p.v(a.Tenant))
	case a.Merchant == "":
		return p.f("where.terminal", "Tenant", p.v(a.Tenant), "Terminal", p.v(a.Terminal))
	}
	return p.f("where.terminal_merchant", "Tenant", p.v(a.Tenant), "Terminal", p.v(a.Terminal), "Merchant", p.v(a.Merchant))
}

// render turns m into the texts of t's language, its times in t's zone.
// esc escapes values from outside posfleet for the channel's markup
// (identity for plain text). Evidence is never shown: the alarm page has
// it, and a message that travels through third-party chat services
// carries no more than it must.
func render(t Target, m posfleet.NotifyMessage, esc func(string) string) text {
	if esc == nil {
		esc = func(s string) string { return s }
	}
	l := locale.New(language(t.Language), t.TimeZone)
	p := printer{l: l, esc: esc}
	out := text{Lang: l.Lang, Footer: p.f("footer", "ID", p.v(m.ID)), loc: l}
	switch m.Event {
	case posfleet.NotifyRaised, posfleet.NotifyResolved:
		a := m.Alarm
		if a == nil {
			a = &posfleet.Alarm{Tenant: m.Tenant}
		}
		kind, label, where := p.v(a.Kind), p.kindLabel(a.Kind), p.where(a)
		urgent := a.Urgent && m.Event == posfleet.NotifyRaised
		out.Urgent = urgent
		key := "raised"
		switch {
		case m.Event == posfleet.NotifyResolved:
			key = "resolved"
		case urgent:
			key = "raised_urgent"
		}
		out.Title = p.f("title."+key, "Kind", kind, "Where", where)
		out.Lead = p.f("lead."+key, "Label", label, "Where", where)
		out.Facts = p.alarmFacts(a, m.Event == posfleet.NotifyResolved)
		if a.Kind == posfleet.AlarmKindCampaign {
			out.Facts = append(out.Facts, p.campaignFacts(a)...)
			out.Links = p.links(m, "link.campaign")
		} else if a.Kind == posfleet.AlarmKindIncident || a.Terminal == "" {
			out.Links = p.links(m, "link.incident")
		} else {
			out.Links = p.links(m, "link.terminal")
		}
	case posfleet.NotifyDigest:
		out.Title = p.n("title.digest", len(m.Alarms), "Tenant", p.v(m.Tenant))
		out.Lead = p.n("lead.digest", len(m.Alarms))
		for i := range m.Alarms {
			if i == digestMax {
				out.More = len(m.Alarms) - digestMax
				break
			}
			a := &m.Alarms[i]
			key := "item"
			if a.Urgent {
				key = "item_urgent"
			}
			out.Items = append(out.Items, p.f(key, "Label", p.kindLabel(a.Kind), "Where", p.where(a), "At", a.Opened))
		}
		out.Links = p.links(m, "link.alarms")
	case posfleet.NotifySummary:
		out.Title = p.n("title.summary", m.Held, "Tenant", p.v(m.Tenant))
		out.Lead = p.n("lead.summary", m.Held, "URL", m.URL)
		out.Links = p.links(m, "link.alarms")
	default: // test, and whatever comes later: a message that says little beats none
		name := t.Name
		if name == "" {
			name = t.ID
		}
		out.Title = p.f("title.test", "Channel", p.v(name))
		out.Lead = p.f("lead.test", "Channel", p.v(name), "Tenant", p.v(m.Tenant))
		out.Facts = []string{p.f("fact.tenant", "Tenant", p.v(m.Tenant))}
		out.Links = p.links(m, "link.alarms")
	}
	return out
}

func (p printer) alarmFacts(a *posfleet.Alarm, resolved bool) []string {
	var out []string
	add := func(id string, kv ...any) { out = append(out, p.f(id, kv...)) }
	add("fact.tenant", "Tenant", p.v(a.Tenant))
	if a.Terminal != "" {
		add("fact.terminal", "Terminal", p.v(a.Terminal))
	}
	if a.Merchant != "" {
		add("fact.merchant", "Merchant", p.v(a.Merchant))
	}
	if a.Region != "" {
		add("fact.region", "Region", p.v(a.Region))
	}
	add("fact.kind", "Label", p.kindLabel(a.Kind), "Kind", p.v(a.Kind))
	if a.Urgent {
		add("fact.urgent")
	}
	if !a.Opened.IsZero() {
		add("fact.opened", "At", a.Opened)
	}
	if resolved {
		if !a.Resolved.IsZero() {
			add("fact.resolved", "At", a.Resolved)
		}
		if a.ResolvedBy != "" {
			add("fact.resolved_by", "Who", p.v(a.ResolvedBy))
		}
	} else if slices.Contains(posfleet.AlarmStates, a.State) && a.State != posfleet.AlarmOpen {
		add("fact.state", "State", p.f("state."+string(a.State)))
	}
	if a.Assignee != "" && !resolved {
		add("fact.assignee", "Who", p.v(a.Assignee))
	}
	if a.Occurrences > 1 {
		add("fact.occurrences", "Count", a.Occurrences)
	}
	if a.Folded > 0 {
		add("fact.folded", "Count", a.Folded)
	}
	return out
}

// campaignFacts are the evidence of a campaign's alarm: which campaign
// and wave, and each KPI that failed its gate with both cohorts' numbers
// (counts only: nothing of a terminal or a transaction).
func (p printer) campaignFacts(a *posfleet.Alarm) []string {
	var ev struct {
		Baseline int                   `json:"baseline"`
		Metrics  []posfleet.GateMetric `json:"metrics"`
		Model    string                `json:"model"`
		Name     string                `json:"name"`
		Target   string                `json:"target"`
		Updated  int                   `json:"updated"`
		Wave     int                   `json:"wave"`
	}
	if len(a.Evidence) == 0 || json.Unmarshal(a.Evidence, &ev) != nil {
		return nil
	}
	out := []string{p.f("fact.campaign", "Name", p.v(ev.Name), "Model", p.v(ev.Model), "Target", p.v(ev.Target), "Wave", ev.Wave),
		p.f("fact.campaign_cohorts", "Updated", ev.Updated, "Baseline", ev.Baseline)}
	pct := func(r float64) string { return strconv.FormatFloat(100*r, 'f', 1, 64) + "%" }
	for _, m := range ev.Metrics {
		var id string
		var ue, be any
		if m.KPI == posfleet.KPICrashBoots {
			id, ue, be = "fact.campaign_kpi_hours", strconv.FormatFloat(m.UpdatedExposure, 'f', 1, 64), strconv.FormatFloat(m.BaselineExposure, 'f', 1, 64)
		} else {
			id, ue, be = "fact.campaign_kpi", int64(math.Round(m.UpdatedExposure)), int64(math.Round(m.BaselineExposure))
		}
		out = append(out, p.f(id, "KPI", p.v(string(m.KPI)), "UpdatedEvents", m.UpdatedEvents, "UpdatedExposure", ue, "UpdatedRate", pct(m.UpdatedRate),
			"BaselineEvents", m.BaselineEvents, "BaselineExposure", be, "BaselineRate", pct(m.BaselineRate)))
	}
	return out
}

// links are the message's page and, for one alarm, the alarm's own page.
func (p printer) links(m posfleet.NotifyMessage, key string) []link {
	var out []link
	if m.URL != "" {
		out = append(out, link{Label: p.f(key), URL: m.URL})
	}
	if m.AlarmURL != "" && m.AlarmURL != m.URL {
		out = append(out, link{Label: p.f("link.alarm"), URL: m.AlarmURL})
	}
	return out
}

// items are the first n of the digest's items, then "and N more" for the
// rest if any.
func (t text) items(n int) []string {
	n = min(n, len(t.Items))
	out := t.Items[:n:n]
	if more := len(t.Items) - n + t.More; more > 0 {
		out = append(out, t.printer().f("item_more", "Count", more))
	}
	return out
}

// printer formats more of t's texts (in its language and zone).
func (t text) printer() printer {
	l := t.loc
	if l == nil {
		l = locale.New(t.Lang, "")
	}
	return printer{l: l, esc: func(s string) string { return s }}
}

// AllItems are the digest's items and "and N more" (for templates).
func (t text) AllItems() []string { return t.items(len(t.Items)) }

// plain is the message as plain text: title, lead, facts, items and links
// one per line (e-mail's text part).
func (t text) plain() string {
	var b strings.Builder
	b.WriteString(t.Lead)
	b.WriteString("\n\n")
	for _, f := range t.Facts {
		b.WriteString(f)
		b.WriteByte('\n')
	}
	for _, it := range t.items(len(t.Items)) {
		b.WriteString("- ")
		b.WriteString(it)
		b.WriteByte('\n')
	}
	if len(t.Links) > 0 {
		b.WriteByte('\n')
		p := t.printer()
		for _, l := range t.Links {
			b.WriteString(p.f("link.line", "Label", l.Label, "URL", l.URL))
			b.WriteByte('\n')
		}
	}
	b.WriteString("\n-- \n")
	b.WriteString(t.Footer)
	b.WriteByte('\n')
	return b.String()
}
