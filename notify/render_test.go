package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
)

// TestCatalogue: both languages have every text of every message (the
// catalogue's completeness is locale's test; this one renders), and every
// kind has a label.
func TestCatalogue(t *testing.T) {
	msgs := chMessages()
	for _, lang := range []string{locale.English, locale.Chinese} {
		p := printer{l: locale.New(lang, ""), esc: func(s string) string { return s }}
		for _, k := range kinds {
			if got := p.kindLabel(k); got == "" || got == k || strings.HasPrefix(got, "notify.") {
				t.Errorf("%s has no label for %s: %q", lang, k, got)
			}
		}
		for _, st := range posfleet.AlarmStates {
			a := *msgs[posfleet.NotifyRaised].Alarm
			a.State, a.Resolved, a.ResolvedBy, a.Assignee, a.Folded = st, chNow, "li", "crew", 3
			for _, ev := range []posfleet.NotificationEvent{posfleet.NotifyRaised, posfleet.NotifyResolved} {
				m := msgs[ev]
				m.Alarm = &a
				render(Target{NotifyChannel: posfleet.NotifyChannel{Language: lang}}, m, nil).plain()
			}
		}
		for _, m := range msgs {
			render(Target{NotifyChannel: posfleet.NotifyChannel{Language: lang}}, m, nil).plain()
		}
	}
	if m := locale.Missing(); len(m) > 0 {
		t.Errorf("messages missing from the catalogue: %v", m)
	}
}

func TestRenderAll(t *testing.T) {
	msgs := chMessages()
	incident := posfleet.Alarm{ID: "al-inc", Tenant: "acme", Kind: posfleet.AlarmKindIncident, Incident: "inc-1",
		Urgent: true, State: posfleet.AlarmAcknowledged, AckBy: "li", Active: true, Opened: chNow, Folded: 200,
		Occurrences: 1, Updated: chNow}
	msgs["incident"] = posfleet.NotifyMessage{ID: "n-inc", Event: posfleet.NotifyRaised, Tenant: "acme", Alarm: &incident,
		URL: chBase + "/incidents", AlarmURL: chBase + "/alarms/al-inc", Time: chNow}
	one := msgs[posfleet.NotifyDigest]
	one.Alarms = one.Alarms[:1]
	msgs["digest1"] = one
	sum1 := msgs[posfleet.NotifySummary]
	sum1.Held = 1
	msgs["summary1"] = sum1
	for _, lang := range []string{"", "en", "zh-CN", "fr"} {
		for name, m := range msgs {
			r := render(Target{NotifyChannel: posfleet.NotifyChannel{Name: "ops", Language: lang}}, m, nil)
			all := strings.Join(append(append([]string{r.Title, r.Lead, r.Footer}, r.Facts...), r.AllItems()...), "\n")
			for _, l := range r.Links {
				all += "\n" + l.Label + " " + l.URL
			}
			if strings.Contains(all, "%!") || r.Title == "" || r.Lead == "" {
				t.Errorf("%s/%s: broken text:\n%s", lang, name, all)
			}
			if strings.Contains(all, chEvidence) {
				t.Errorf("%s/%s: evidence shown:\n%s", lang, name, all)
			}
			if (lang == "zh-CN") != (r.Lang == "zh-CN") {
				t.Errorf("language %q rendered as %s", lang, r.Lang)
			}
		}
	}

	en := func(name any) text {
		var m posfleet.NotifyMessage
		switch n := name.(type) {
		case string:
			m = msgs[posfleet.NotificationEvent(n)]
		}
		return render(Target{NotifyChannel: posfleet.NotifyChannel{Name: "ops"}}, m, nil)
	}
	if r := en("incident"); r.Title != "URGENT incident on acme" || r.Links[0].Label != "Open the incident" ||
		!strings.Contains(strings.Join(r.Facts, "\n"), "Terminal alarms folded into it: 200") ||
		!strings.Contains(strings.Join(r.Facts, "\n"), "State: acknowledged") {
		t.Errorf("incident: %+v", r)
	}
	if r := en("digest1"); r.Title != "Daily digest for acme: 1 open alarm" || len(r.AllItems()) != 1 {
		t.Errorf("digest of one: %+v", r)
	}
	if r := en("summary1"); r.Lead != "1 notification was held back by the rate limit; see "+chBase+"/alarms" {
		t.Errorf("summary of one: %q", r.Lead)
	}
	if r := en(string(posfleet.NotifyDigest)); len(r.Items) != digestMax || r.More != 10 ||
		r.AllItems()[digestMax] != "and 10 more" {
		t.Errorf("digest of 60: %d items, %d more", len(r.Items), r.More)
	}
	if r := en(string(posfleet.NotifyRaised)); !r.Urgent || r.Title != "URGENT tamper on acme/T-0001 (Noodle Bar *Chengdu*)" {
		t.Errorf("raised: %q", r.Title)
	}
	if r := en(string(posfleet.NotifyResolved)); r.Urgent {
		t.Error("a resolution is marked urgent")
	}
}

func TestTimeZone(t *testing.T) {
	at := time.Date(2026, 12, 3, 20, 30, 0, 0, time.UTC)
	if got := at.In(TimeZone("zh-CN")).Format("2006-01-02 15:04 -0700"); got != "2026-12-04 04:30 +0800" {
		t.Errorf("zh-CN: %s", got)
	}
	for _, lang := range []string{"", "en", "de"} {
		if TimeZone(lang) != time.UTC {
			t.Errorf("%q: %v, want UTC", lang, TimeZone(lang))
		}
	}
}

// TestRedacted: a value that looks like card data is withheld from the
// texts. Like the root package's tests, the test number is completed at
// run time from a well-known test prefix, so that no card number is
// written in the fixtures.
func TestRedacted(t *testing.T) {
	digits := chLuhnComplete("411111111111111")
	grouped := digits[0:4] + " " + digits[4:8] + " " + digits[8:12] + " " + digits[12:16]
	if !posfleet.ContainsCardData(grouped) {
		t.Fatal("the card-data guard lets the test number through")
	}
	m := chMessages()[posfleet.NotifyRaised]
	a := *m.Alarm
	a.Merchant = "shop " + grouped
	m.Alarm = &a
	for _, lang := range []string{"en", "zh-CN"} {
		r := render(Target{NotifyChannel: posfleet.NotifyChannel{Language: lang}}, m, nil)
		all := r.Title + r.Lead + strings.Join(r.Facts, "")
		if strings.Contains(all, digits[8:12]) || !strings.Contains(all, posfleet.RedactedMarker) {
			t.Errorf("card-like value shown or not marked:\n%s", all)
		}
	}
}

// chLuhnComplete returns prefix followed by the digit that makes it pass
// Luhn.
func chLuhnComplete(prefix string) string {
	for d := byte('0'); d <= '9'; d++ {
		s := prefix + string(d)
		sum := 0
		for i := range len(s) {
			n := int(s[len(s)-1-i] - '0')
			if i%2 == 1 {
				if n *= 2; n > 9 {
					n -= 9
				}
			}
			sum += n
		}
		if sum%10 == 0 {
			return s
		}
	}
	panic("unreachable")
}
