package notify

import (
	"fmt"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
)

// The texts of the messages, one table per language. Every entry is a whole
// sentence or line with fmt verbs (explicit argument indexes, so that a
// translation may reorder them or leave one out): translators see what a
// reader sees, and no sentence is glued from translated fragments.
//
// A key with a ".one" variant is looked up with ".one" appended when its
// count is 1 (English and Chinese need no other plural forms).
var texts = map[string]map[string]string{
	"en": {
		// Where an alarm is: its terminal (and merchant), or its tenant for an incident.
		"where.terminal":          "%[1]s/%[2]s",
		"where.terminal.merchant": "%[1]s/%[2]s (%[3]s)",
		"where.tenant":            "%[1]s",

		// Titles: the e-mail subject (after "[posfleet] ") and the chat headline.
		// The kind is the flag's name as it is spelt in the API, so that mail
		// filters and chat keyword rules can match it.
		"title.raised":        "%[1]s on %[2]s",
		"title.raised.urgent": "URGENT %[1]s on %[2]s",
		"title.resolved":      "Resolved: %[1]s on %[2]s",
		"title.digest":        "Daily digest for %[1]s: %[2]d open alarms",
		"title.digest.one":    "Daily digest for %[1]s: %[2]d open alarm",
		"title.summary":       "%[2]d notifications held back for %[1]s",
		"title.summary.one":   "%[2]d notification held back for %[1]s",
		"title.test":          "Test notification for %[1]s",

		"lead.raised":            "Alarm raised: %[1]s on %[2]s.",
		"lead.raised.urgent":     "Urgent alarm raised: %[1]s on %[2]s. Please act now.",
		"lead.resolved":          "Alarm resolved: %[1]s on %[2]s.",
		"lead.digest":            "These %[1]d alarms opened and are not urgent:",
		"lead.digest.one":        "This alarm opened and is not urgent:",
		"lead.summary":           "%[1]d notifications were held back by the rate limit; see %[2]s",
		"lead.summary.one":       "%[1]d notification was held back by the rate limit; see %[2]s",
		"lead.test":              "This is a test from posfleet for the channel %[1]s of %[2]s. If you can read it, the channel works.",
		"fact.tenant":            "Tenant: %[1]s",
		"fact.terminal":          "Terminal: %[1]s",
		"fact.merchant":          "Merchant: %[1]s",
		"fact.region":            "Region: %[1]s",
		"fact.kind":              "Kind: %[1]s (%[2]s)",
		"fact.urgent":            "Urgent: yes",
		"fact.opened":            "Opened: %[1]s",
		"fact.resolved":          "Resolved: %[1]s",
		"fact.resolved_by":       "Resolved by: %[1]s",
		"fact.occurrences":       "Occurrences: %[1]d",
		"fact.folded":            "Terminal alarms folded into it: %[1]d",
		"fact.assignee":          "Assigned to: %[1]s",
		"fact.state":             "State: %[1]s",
		"item":                   "%[1]s on %[2]s, opened %[3]s",
		"item.urgent":            "URGENT %[1]s on %[2]s, opened %[3]s",
		"item.more":              "and %[1]d more",
		"link.terminal":          "Open the terminal",
		"link.incident":          "Open the incident",
		"link.alarms":            "Open the alarm list",
		"link.alarm":             "Open the alarm (acknowledge, assign, comment)",
		"link.line":              "%[1]s: %[2]s",
		"footer":                 "posfleet notification %[1]s",
		"state.open":             "open",
		"state.acknowledged":     "acknowledged",
		"state.assigned":         "assigned",
		"state.resolved":         "resolved",
		"kind.incident":          "Incident (many terminals at once)",
		"kind.mass_offline":      "Many terminals offline at once",
		"kind.offline":           "Offline",
		"kind.firmware_outdated": "Firmware outdated",
		"kind.firmware_blocked":  "Firmware blocked",
		"kind.update_failed":     "Update failed",
		"kind.amount_mismatch":   "Amount mismatch",
		"kind.txn_failures":      "Payments failing",
		"kind.receipt_failures":  "Receipts failing",
		"kind.refund_anomaly":    "Refund anomaly",
		"kind.hardware_fault":    "Hardware fault",
		"kind.tamper":            "Tamper",
		"kind.weak_network":      "Weak network",
		"kind.battery":           "Battery",
		"kind.clock_skew":        "Clock wrong",
		"kind.bad_data":          "Bad data (every message rejected)",
	},
	"zh-CN": {
		"where.terminal":          "%[1]s/%[2]s",
		"where.terminal.merchant": "%[1]s/%[2]s（%[3]s）",
		"where.tenant":            "%[1]s",

		"title.raised":        "告警 %[1]s：%[2]s",
		"title.raised.urgent": "紧急告警 %[1]s：%[2]s",
		"title.resolved":      "告警已恢复 %[1]s：%[2]s",
		"title.digest":        "%[1]s 每日告警汇总：%[2]d 条未处理告警",
		"title.summary":       "%[1]s 有 %[2]d 条通知因限流未发送",
		"title.test":          "%[1]s 的测试通知",

		"lead.raised":            "%[2]s 产生告警：%[1]s。",
		"lead.raised.urgent":     "%[2]s 产生紧急告警：%[1]s，请立即处理。",
		"lead.resolved":          "%[2]s 的告警已恢复：%[1]s。",
		"lead.digest":            "以下 %[1]d 条非紧急告警已产生：",
		"lead.summary":           "因限流共有 %[1]d 条通知未发送，请查看 %[2]s",
		"lead.test":              "这是 posfleet 发给 %[2]s 的通知渠道 %[1]s 的测试消息。能看到这条消息，说明渠道工作正常。",
		"fact.tenant":            "租户：%[1]s",
		"fact.terminal":          "终端：%[1]s",
		"fact.merchant":          "商户：%[1]s",
		"fact.region":            "区域：%[1]s",
		"fact.kind":              "类型：%[1]s（%[2]s）",
		"fact.urgent":            "紧急：是",
		"fact.opened":            "开始时间：%[2]s（北京时间），%[1]s",
		"fact.resolved":          "恢复时间：%[2]s（北京时间），%[1]s",
		"fact.resolved_by":       "处理人：%[1]s",
		"fact.occurrences":       "发生次数：%[1]d",
		"fact.folded":            "并入的终端告警：%[1]d 条",
		"fact.assignee":          "指派给：%[1]s",
		"fact.state":             "状态：%[1]s",
		"item":                   "%[2]s：%[1]s，开始于 %[4]s（北京时间）",
		"item.urgent":            "紧急 %[2]s：%[1]s，开始于 %[4]s（北京时间）",
		"item.more":              "还有 %[1]d 条",
		"link.terminal":          "查看终端",
		"link.incident":          "查看故障事件",
		"link.alarms":            "查看告警列表",
		"link.alarm":             "处理告警（确认、指派、评论）",
		"link.line":              "%[1]s：%[2]s",
		"footer":                 "posfleet 通知 %[1]s",
		"state.open":             "未处理",
		"state.acknowledged":     "已确认",
		"state.assigned":         "已指派",
		"state.resolved":         "已恢复",
		"kind.incident":          "故障事件（多台终端同时受影响）",
		"kind.mass_offline":      "大量终端同时离线",
		"kind.offline":           "离线",
		"kind.firmware_outdated": "固件版本过旧",
		"kind.firmware_blocked":  "固件已被禁用",
		"kind.update_failed":     "固件升级失败",
		"kind.amount_mismatch":   "金额不符",
		"kind.txn_failures":      "交易失败",
		"kind.receipt_failures":  "小票打印失败",
		"kind.refund_anomaly":    "退款异常",
		"kind.hardware_fault":    "硬件故障",
		"kind.tamper":            "防拆触发",
		"kind.weak_network":      "网络信号弱",
		"kind.battery":           "电池电量低",
		"kind.clock_skew":        "时钟不准",
		"kind.bad_data":          "数据全被拒收",
	},
}

// digestMax caps the alarms a digest lists: a chat message or an e-mail
// with hundreds of lines is not read, and chat services refuse large
// bodies. The rest are counted and on the alarm list.
const digestMax = 50

// language returns the table key of a channel's language: "" and anything
// unknown are English.
func language(lang string) string {
	switch strings.ToLower(lang) {
	case "zh-cn", "zh", "zh-hans":
		return "zh-CN"
	}
	return "en"
}

// shanghai is China Standard Time. China has kept UTC+8 without daylight
// saving since 1991, so a fixed zone is right whenever the zone database is
// missing (a scratch container).
var shanghai = func() *time.Location {
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return loc
	}
	return time.FixedZone("CST", 8*60*60)
}()

// TimeZone is the zone a channel's readers live in, for the local times
// its messages show next to UTC: Asia/Shanghai for zh-CN, UTC otherwise.
func TimeZone(lang string) *time.Location {
	if language(lang) == "zh-CN" {
		return shanghai
	}
	return time.UTC
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
}

// printer formats the texts of one language.
type printer struct {
	tab map[string]string
	tz  *time.Location
	esc func(string) string
}

func (p printer) get(key string) string {
	if s, ok := p.tab[key]; ok {
		return s
	}
	if s, ok := texts["en"][key]; ok {
		return s
	}
	return key
}

// f formats the text of key. A text without verbs (a translation that
// leaves the count out) is returned as it is, not with fmt's complaint
// about extra arguments.
func (p printer) f(key string, args ...any) string {
	s := p.get(key)
	if !strings.Contains(s, "%") {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// n formats a counted text: key.one when n is 1 and the table has it.
func (p printer) n(key string, n int, args ...any) string {
	if _, ok := p.tab[key+".one"]; ok && n == 1 {
		key += ".one"
	}
	return p.f(key, args...)
}

// v is a value from outside posfleet, made safe to show: redacted if it
// looks like card data (the guard every such value passes), then escaped
// for the channel's markup.
func (p printer) v(s string) string { return p.esc(posfleet.Redact(s)) }

// kindLabel is a kind's name for people; an unknown kind is shown as is.
func (p printer) kindLabel(kind string) string {
	if s, ok := p.tab["kind."+kind]; ok {
		return s
	}
	return p.v(kind)
}

// times returns t in UTC (RFC 3339) and in the readers' zone.
func (p printer) times(t time.Time) (string, string) {
	return t.UTC().Format(time.RFC3339), t.In(p.tz).Format("2006-01-02 15:04")
}

func (p printer) where(a *posfleet.Alarm) string {
	switch {
	case a.Terminal == "":
		return p.f("where.tenant", p.v(a.Tenant))
	case a.Merchant == "":
		return p.f("where.terminal", p.v(a.Tenant), p.v(a.Terminal))
	}
	return p.f("where.terminal.merchant", p.v(a.Tenant), p.v(a.Terminal), p.v(a.Merchant))
}

// render turns m into the texts of ch's language. esc escapes values from
// outside posfleet for the channel's markup (identity for plain text).
// Evidence is never shown: the alarm page has it, and a message that
// travels through third-party chat services carries no more than it must.
func render(ch posfleet.NotifyChannel, m posfleet.NotifyMessage, esc func(string) string) text {
	if esc == nil {
		esc = func(s string) string { return s }
	}
	lang := language(ch.Language)
	p := printer{tab: texts[lang], tz: TimeZone(lang), esc: esc}
	out := text{Lang: lang, Footer: p.f("footer", p.v(m.ID))}
	switch m.Event {
	case posfleet.NotifyRaised, posfleet.NotifyResolved:
		a := m.Alarm
		if a == nil {
			a = &posfleet.Alarm{Tenant: m.Tenant}
		}
		kind, label, where := p.v(a.Kind), p.kindLabel(a.Kind), p.where(a)
		urgent := a.Urgent && m.Event == posfleet.NotifyRaised
		out.Urgent = urgent
		switch {
		case m.Event == posfleet.NotifyResolved:
			out.Title = p.f("title.resolved", kind, where)
			out.Lead = p.f("lead.resolved", label, where)
		case urgent:
			out.Title = p.f("title.raised.urgent", kind, where)
			out.Lead = p.f("lead.raised.urgent", label, where)
		default:
			out.Title = p.f("title.raised", kind, where)
			out.Lead = p.f("lead.raised", label, where)
		}
		out.Facts = p.alarmFacts(a, m.Event == posfleet.NotifyResolved)
		if a.Kind == posfleet.AlarmKindIncident || a.Terminal == "" {
			out.Links = p.links(m, "link.incident")
		} else {
			out.Links = p.links(m, "link.terminal")
		}
	case posfleet.NotifyDigest:
		out.Title = p.n("title.digest", len(m.Alarms), p.v(m.Tenant), len(m.Alarms))
		out.Lead = p.n("lead.digest", len(m.Alarms), len(m.Alarms))
		for i := range m.Alarms {
			if i == digestMax {
				out.More = len(m.Alarms) - digestMax
				break
			}
			a := &m.Alarms[i]
			utc, local := p.times(a.Opened)
			key := "item"
			if a.Urgent {
				key = "item.urgent"
			}
			out.Items = append(out.Items, p.f(key, p.kindLabel(a.Kind), p.where(a), utc, local))
		}
		out.Links = p.links(m, "link.alarms")
	case posfleet.NotifySummary:
		out.Title = p.n("title.summary", m.Held, p.v(m.Tenant), m.Held)
		out.Lead = p.n("lead.summary", m.Held, m.Held, m.URL)
		out.Links = p.links(m, "link.alarms")
	default: // test, and whatever comes later: a message that says little beats none
		name := ch.Name
		if name == "" {
			name = ch.ID
		}
		out.Title = p.f("title.test", p.v(name))
		out.Lead = p.f("lead.test", p.v(name), p.v(m.Tenant))
		out.Facts = []string{p.f("fact.tenant", p.v(m.Tenant))}
		out.Links = p.links(m, "link.alarms")
	}
	return out
}

func (p printer) alarmFacts(a *posfleet.Alarm, resolved bool) []string {
	var out []string
	add := func(key string, args ...any) { out = append(out, p.f(key, args...)) }
	add("fact.tenant", p.v(a.Tenant))
	if a.Terminal != "" {
		add("fact.terminal", p.v(a.Terminal))
	}
	if a.Merchant != "" {
		add("fact.merchant", p.v(a.Merchant))
	}
	if a.Region != "" {
		add("fact.region", p.v(a.Region))
	}
	add("fact.kind", p.kindLabel(a.Kind), p.v(a.Kind))
	if a.Urgent {
		add("fact.urgent")
	}
	if !a.Opened.IsZero() {
		utc, local := p.times(a.Opened)
		add("fact.opened", utc, local)
	}
	if resolved {
		if !a.Resolved.IsZero() {
			utc, local := p.times(a.Resolved)
			add("fact.resolved", utc, local)
		}
		if a.ResolvedBy != "" {
			add("fact.resolved_by", p.v(a.ResolvedBy))
		}
	} else if a.State != "" && a.State != posfleet.AlarmOpen {
		add("fact.state", p.get("state."+string(a.State)))
	}
	if a.Assignee != "" && !resolved {
		add("fact.assignee", p.v(a.Assignee))
	}
	if a.Occurrences > 1 {
		add("fact.occurrences", a.Occurrences)
	}
	if a.Folded > 0 {
		add("fact.folded", a.Folded)
	}
	return out
}

// links are the message's page and, for one alarm, the alarm's own page.
func (p printer) links(m posfleet.NotifyMessage, key string) []link {
	var out []link
	if m.URL != "" {
		out = append(out, link{Label: p.get(key), URL: m.URL})
	}
	if m.AlarmURL != "" && m.AlarmURL != m.URL {
		out = append(out, link{Label: p.get("link.alarm"), URL: m.AlarmURL})
	}
	return out
}

// items are the first n of the digest's items, then "and N more" for the
// rest if any.
func (t text) items(n int) []string {
	n = min(n, len(t.Items))
	out := t.Items[:n:n]
	if more := len(t.Items) - n + t.More; more > 0 {
		out = append(out, printer{tab: texts[t.Lang]}.f("item.more", more))
	}
	return out
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
		p := printer{tab: texts[t.Lang]}
		for _, l := range t.Links {
			b.WriteString(p.f("link.line", l.Label, l.URL))
			b.WriteByte('\n')
		}
	}
	b.WriteString("\n-- \n")
	b.WriteString(t.Footer)
	b.WriteByte('\n')
	return b.String()
}
