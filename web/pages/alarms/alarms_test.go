package alarms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"

	"github.com/posfleet/posfleet"
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
