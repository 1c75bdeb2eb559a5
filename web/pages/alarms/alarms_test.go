package alarms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/alarms"
	"github.com/posfleet/posfleet/web/pages/layout"
)

func render(t *testing.T, c templ.Component) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var at = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// TestDetail: the elements a browser test finds, the forms a state
// allows, and text that comes from outside (a comment) escaped.
func TestDetail(t *testing.T) {
	a := posfleet.Alarm{ID: "a-1", Tenant: "acme", Terminal: "T-1", Kind: "tamper", Urgent: true, State: posfleet.AlarmAcknowledged,
		Active: true, Opened: at.Add(-time.Hour), AckBy: "ops", AckAt: at, SnoozedUntil: at.Add(time.Hour), Occurrences: 2,
		Evidence: json.RawMessage(`{"events":[{"code":"OPENED"}]}`)}
	v := alarms.DetailView{Frame: layout.Page{User: "ops", Tenant: "acme", CSRF: "tok", Perms: layout.Perms{Act: true, Visit: true}, Alarms: true, OpenAlarms: 3}, Now: at,
		Alarm: alarms.NewRow(context.Background(), a), Evidence: "{\n  \"events\": []\n}", Zone: "Asia/Shanghai",
		History: []posfleet.AlarmEntry{{At: at.Add(-time.Hour), Action: posfleet.AlarmActRaised},
			{At: at, Actor: "ops", Action: posfleet.AlarmActCommented, Detail: "<script>alert(1)</script>"}}}
	page := render(t, alarms.Detail(v))
	for _, want := range []string{`id="alarm-state"`, `>acknowledged</span>`, `<tbody id="history">`, `id="assign"`, `id="comment"`, `id="snooze"`,
		`id="unsnooze"`, `id="resolve"`, `href="/terminals/acme/T-1"`, `data-testid="nav-alarms-count" title="open alarms">3</span>`,
		"&lt;script&gt;", "until tomorrow 09:00 (Asia/Shanghai)"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, `id="ack"`) || strings.Contains(page, "<script>") {
		t.Error("an acknowledged alarm offers acknowledging, or a comment is not escaped")
	}
	if n := strings.Count(page, `data-testid="history-row"`); n != 2 {
		t.Errorf("%d history rows", n)
	}
	if n := strings.Count(page, `name="csrf" value="tok"`); n != 6 { // assign, snooze, unsnooze, resolve, comment; sign out
		t.Errorf("%d forms with the CSRF token", n)
	}
	a.State = posfleet.AlarmResolved
	v.Alarm = alarms.NewRow(context.Background(), a)
	page = render(t, alarms.Detail(v))
	if strings.Contains(page, `id="assign"`) || strings.Contains(page, `id="resolve"`) || !strings.Contains(page, `id="comment"`) {
		t.Error("a resolved alarm offers more than a comment")
	}
}

// TestList: a row per alarm with its links, the filters as chosen, the
// bulk form, and an incident's alarm linking to the incidents.
func TestList(t *testing.T) {
	v := alarms.ListView{Frame: layout.Page{User: "ops", Tenant: "acme", CSRF: "tok", Perms: layout.Perms{Act: true, Visit: true}}, Now: at, Total: 2, Page: 1, Pages: 1, First: 1,
		Filter: alarms.Filter{State: "assigned", Urgent: "true"}, Kinds: []alarms.Option{{Value: "tamper", Label: "Tamper"}}, Back: "/alarms?urgent=true",
		Rows: []alarms.Row{
			alarms.NewRow(context.Background(), posfleet.Alarm{ID: "a-1", Tenant: "acme", Terminal: "T-1", Kind: "tamper", Urgent: true, State: posfleet.AlarmAssigned, Assignee: "crew-1", Opened: at}),
			alarms.NewRow(context.Background(), posfleet.Alarm{ID: "a-2", Tenant: "acme", Kind: posfleet.AlarmKindIncident, Incident: "i-9", State: posfleet.AlarmOpen, Folded: 12, Opened: at}),
		}}
	page := render(t, alarms.List(v))
	for _, want := range []string{`<tr data-alarm-id="a-1"`, `<tr data-alarm-id="a-2"`, `href="/incidents"`, "incident i-9", `>12</td>`,
		`<option value="assigned" selected>`, `<option value="true" selected>`, `name="back" value="/alarms?urgent=true"`, `id="bulk-ack"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, `data-testid="filter-tenant"`) {
		t.Error("a tenant's user gets the tenant filter")
	}
}

// TestChinese: the list (with a notice and a pager), both steps of a bulk
// action and an incident's alarm page render in zh-CN with every message
// in the catalogue, times in the reader's zone with the zone named, and
// numbers with separators.
func TestChinese(t *testing.T) {
	ctx := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	frame := layout.Page{User: "ops", Tenant: "acme", CSRF: "tok", Perms: layout.Perms{Act: true, Visit: true}, Alarms: true}
	rows := []alarms.Row{
		alarms.NewRow(ctx, posfleet.Alarm{ID: "a-1", Tenant: "acme", Terminal: "T-1", Kind: "tamper", Urgent: true, State: posfleet.AlarmAssigned,
			Assignee: "crew-1", Opened: at, SnoozedUntil: at.Add(2 * time.Hour), Active: true, Occurrences: 12345}),
		alarms.NewRow(ctx, posfleet.Alarm{ID: "a-2", Tenant: "acme", Kind: posfleet.AlarmKindIncident, Incident: "i-9", State: posfleet.AlarmOpen,
			Folded: 12, Opened: at, Cleared: at.Add(time.Minute)}),
		alarms.NewRow(ctx, posfleet.Alarm{ID: "a-3", Tenant: "acme", Kind: posfleet.AlarmKindBurst, State: posfleet.AlarmResolved, Opened: at}),
	}
	done := 2
	pages := []string{
		renderCtx(t, ctx, alarms.List(alarms.ListView{Frame: frame, Now: at, Total: 26371, Page: 2, Pages: 528, First: 51, Admin: true,
			Kinds: []alarms.Option{{Value: "tamper", Label: alarms.KindLabel(ctx, "tamper")}}, Notice: &alarms.BulkNotice{Action: "assign", Done: 3},
			Rows: rows, Prev: "/alarms?page=1", Next: "/alarms?page=3", Back: "/alarms"})),
		renderCtx(t, ctx, alarms.List(alarms.ListView{Frame: frame, Now: at, Notice: &alarms.BulkNotice{Action: "acknowledge", Done: 1}})),
		renderCtx(t, ctx, alarms.Confirm(alarms.ConfirmView{Frame: frame, Action: "assign", Assignee: "crew-9", IDs: []string{"a-1", "a-2"}, Rows: rows, Back: "/alarms"})),
		renderCtx(t, ctx, alarms.Confirm(alarms.ConfirmView{Frame: frame, Action: "acknowledge", IDs: []string{"a-1"}, Rows: rows[:1], Back: "/alarms"})),
		renderCtx(t, ctx, alarms.Confirm(alarms.ConfirmView{Frame: frame, Action: "assign", Assignee: "crew-9", Done: &done, Back: "/alarms",
			Failed: []alarms.Failure{{ID: "a-3", Error: "no such alarm"}}})),
		renderCtx(t, ctx, alarms.Confirm(alarms.ConfirmView{Frame: frame, Action: "acknowledge", Done: &done, Back: "/alarms"})),
	}
	inc := posfleet.Alarm{ID: "a-2", Tenant: "acme", Kind: posfleet.AlarmKindIncident, Incident: "i-9", State: posfleet.AlarmResolved, Urgent: true,
		Opened: at, Cleared: at.Add(time.Minute), Resolved: at.Add(time.Hour), AckBy: "ops", AckAt: at, Folded: 1, Occurrences: 1,
		SnoozedUntil: at.Add(3 * time.Hour), Parent: "a-0"}
	hist := []posfleet.AlarmEntry{}
	for _, act := range []posfleet.AlarmAction{posfleet.AlarmActRaised, posfleet.AlarmActCleared, posfleet.AlarmActReopened, posfleet.AlarmActResolved,
		posfleet.AlarmActAcknowledged, posfleet.AlarmActAssigned, posfleet.AlarmActCommented, posfleet.AlarmActFolded, posfleet.AlarmActUnfolded} {
		hist = append(hist, posfleet.AlarmEntry{At: at, Actor: "ops", Action: act})
	}
	hist = append(hist, posfleet.AlarmEntry{At: at, Action: posfleet.AlarmActSnoozed, Detail: at.Add(time.Hour).Format(time.RFC3339)},
		posfleet.AlarmEntry{At: at, Action: posfleet.AlarmActSnoozed})
	detail := alarms.DetailView{Frame: frame, Now: at, Alarm: alarms.NewRow(ctx, inc), History: hist, Folded: rows[:1], Zone: "Asia/Shanghai", Users: []string{"crew-1"}}
	pages = append(pages, renderCtx(t, ctx, alarms.Detail(detail)))
	inc.State, inc.Cleared, inc.Active, inc.Folded = posfleet.AlarmOpen, time.Time{}, true, 0
	detail.Alarm, detail.Folded, detail.Evidence = alarms.NewRow(ctx, inc), nil, "{}"
	pages = append(pages, renderCtx(t, ctx, alarms.Detail(detail)))
	if m := locale.Missing(); len(m) > 0 {
		t.Fatalf("messages missing from the catalogue: %v", m)
	}
	all := strings.Join(pages, "\n")
	for _, want := range []string{"告警", "共 26,371 条告警，显示第 51–53 条。", "第 2 页，共 528 页", "已指派 3 条告警。", "已确认 1 条告警。",
		"将 2 条告警指派给 crew-9？", "确认 1 条告警？", "1 条告警未能更改：", "防拆", "故障事件 i-9", "大量终端同时离线", "12,345",
		"2026-03-02 17:00:00 UTC+8", "至明天 09:00（Asia/Shanghai）", "暂停通知至 2026-03-02 18:00:00 UTC+8", "已结束暂停", "已并入故障事件告警"} {
		if !strings.Contains(all, want) {
			t.Errorf("the zh-CN pages lack %q", want)
		}
	}
	text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(all, "\n")
	for _, english := range []string{"Acknowledge", "Assign", "alarms", "Snooze", "History", "UTC\n", "not resolved", "incident"} {
		if strings.Contains(text, english) {
			t.Errorf("the zh-CN pages show %q", english)
		}
	}
}

func renderCtx(t *testing.T, ctx context.Context, c templ.Component) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.Render(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
