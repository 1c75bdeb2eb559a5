package web_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/web"
)

// fakeAlarms keeps alarms in memory with the lifecycle package alarm
// gives them: acknowledging twice or changing a resolved alarm is a
// conflict.
type fakeAlarms struct {
	mu      sync.Mutex
	now     func() time.Time
	alarms  map[string]*posfleet.Alarm
	history map[string][]posfleet.AlarmEntry
	calls   []string // action id by
}

func newFakeAlarms(now func() time.Time) *fakeAlarms {
	return &fakeAlarms{now: now, alarms: map[string]*posfleet.Alarm{}, history: map[string][]posfleet.AlarmEntry{}}
}

func (f *fakeAlarms) add(a posfleet.Alarm) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.State == "" {
		a.State = posfleet.AlarmOpen
	}
	if a.Occurrences == 0 {
		a.Occurrences = 1
	}
	f.alarms[a.ID] = &a
	f.history[a.ID] = append(f.history[a.ID], posfleet.AlarmEntry{At: a.Opened, Action: posfleet.AlarmActRaised})
}

func (f *fakeAlarms) ListAlarms(_ context.Context, flt posfleet.AlarmFilter) ([]posfleet.Alarm, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []posfleet.Alarm
	for _, a := range f.alarms {
		states := flt.States
		if len(states) == 0 {
			states = []posfleet.AlarmState{posfleet.AlarmOpen, posfleet.AlarmAcknowledged, posfleet.AlarmAssigned}
		}
		switch {
		case flt.Tenant != "" && a.Tenant != flt.Tenant,
			!slices.Contains(states, a.State),
			flt.Kind != "" && a.Kind != flt.Kind,
			flt.Urgent != nil && a.Urgent != *flt.Urgent,
			flt.Region != "" && a.Region != flt.Region,
			flt.Assignee != "" && a.Assignee != flt.Assignee,
			flt.Terminal != "" && a.Terminal != flt.Terminal,
			flt.Parent != "" && a.Parent != flt.Parent,
			flt.Parent == "" && !flt.AllLevels && a.Parent != "":
			continue
		}
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b posfleet.Alarm) int { return cmp.Or(b.Opened.Compare(a.Opened), cmp.Compare(a.ID, b.ID)) })
	total := len(out)
	lo := min(flt.Offset, len(out))
	hi := len(out)
	if flt.Limit > 0 {
		hi = min(lo+flt.Limit, len(out))
	}
	return out[lo:hi], total, nil
}

func (f *fakeAlarms) Alarm(_ context.Context, id string) (posfleet.Alarm, []posfleet.AlarmEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.alarms[id]
	if !ok {
		return posfleet.Alarm{}, nil, posfleet.Errorf(posfleet.NotFound, "alarm_not_found", "no alarm %q", id)
	}
	return *a, slices.Clone(f.history[id]), nil
}

// change applies fn to a live alarm and records the action.
func (f *fakeAlarms) change(id, by string, action posfleet.AlarmAction, detail string, fn func(*posfleet.Alarm) error) (posfleet.Alarm, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.alarms[id]
	if !ok {
		return posfleet.Alarm{}, posfleet.Errorf(posfleet.NotFound, "alarm_not_found", "no alarm %q", id)
	}
	if a.State == posfleet.AlarmResolved && action != posfleet.AlarmActCommented {
		return *a, posfleet.Errorf(posfleet.Conflict, "resolved", "the alarm is resolved")
	}
	if err := fn(a); err != nil {
		return *a, err
	}
	a.Updated = f.now()
	f.history[id] = append(f.history[id], posfleet.AlarmEntry{At: f.now(), Actor: by, Action: action, Detail: detail})
	f.calls = append(f.calls, fmt.Sprintf("%s %s %s", action, id, by))
	return *a, nil
}

func (f *fakeAlarms) AcknowledgeAlarm(_ context.Context, id, by string) (posfleet.Alarm, error) {
	return f.change(id, by, posfleet.AlarmActAcknowledged, "", func(a *posfleet.Alarm) error {
		if a.State != posfleet.AlarmOpen {
			return posfleet.Errorf(posfleet.Conflict, "acknowledged", "the alarm is already acknowledged by %s", a.AckBy)
		}
		a.State, a.AckBy, a.AckAt = posfleet.AlarmAcknowledged, by, f.now()
		return nil
	})
}

func (f *fakeAlarms) AssignAlarm(_ context.Context, id, to, by string) (posfleet.Alarm, error) {
	return f.change(id, by, posfleet.AlarmActAssigned, to, func(a *posfleet.Alarm) error {
		a.State, a.Assignee = posfleet.AlarmAssigned, to
		return nil
	})
}

func (f *fakeAlarms) CommentAlarm(_ context.Context, id, by, text string) (posfleet.Alarm, error) {
	return f.change(id, by, posfleet.AlarmActCommented, text, func(*posfleet.Alarm) error { return nil })
}

func (f *fakeAlarms) SnoozeAlarm(_ context.Context, id string, until time.Time, by string) (posfleet.Alarm, error) {
	detail := ""
	if !until.IsZero() {
		detail = until.UTC().Format(time.RFC3339)
	}
	return f.change(id, by, posfleet.AlarmActSnoozed, detail, func(a *posfleet.Alarm) error {
		a.SnoozedUntil = until
		return nil
	})
}

func (f *fakeAlarms) ResolveAlarm(_ context.Context, id, by, note string) (posfleet.Alarm, error) {
	return f.change(id, by, posfleet.AlarmActResolved, note, func(a *posfleet.Alarm) error {
		a.State, a.Resolved, a.ResolvedBy, a.Active = posfleet.AlarmResolved, f.now(), by, false
		return nil
	})
}

func (f *fakeAlarms) CountAlarms(_ context.Context, tenant string) (map[posfleet.AlarmState]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[posfleet.AlarmState]int{}
	for _, a := range f.alarms {
		if (tenant == "" || a.Tenant == tenant) && a.Parent == "" {
			out[a.State]++
		}
	}
	return out, nil
}

func (f *fakeAlarms) get(id string) posfleet.Alarm {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.alarms[id]
}

// alarmFixture is the web server over fake alarms and notifications, with
// people and tokens of two tenants and an administrator.
type alarmFixture struct {
	srv    *httptest.Server
	alarms *fakeAlarms
	notes  *fakeNotifications
	tokens map[string]string // acme, other, admin
	now    time.Time
}

func newAlarmFixture(t *testing.T, with ...func(*web.Options)) *alarmFixture {
	t.Helper()
	f := &alarmFixture{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), tokens: map[string]string{}}
	clock := func() time.Time { return f.now }
	f.alarms, f.notes = newFakeAlarms(clock), newFakeNotifications(clock)
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	ctx := context.Background()
	for _, u := range [][2]string{{"ops-acme", "acme"}, {"ops-other", "other"}, {"root", auth.AllTenants}} {
		if err := users.AddUser(ctx, u[0], u[1], "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tk := range [][2]string{{"acme", "acme"}, {"other", "other"}, {"admin", auth.AllTenants}} {
		if f.tokens[tk[0]], err = users.CreateToken(ctx, tk[0]+"-script", tk[1]); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := users.SessionKey()
	opts := web.Options{Users: users, SessionKey: key, Alarms: f.alarms, Notifications: f.notes, Now: clock}
	for _, w := range with {
		w(&opts)
	}
	h, err := web.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	f.seed()
	return f
}

// seed: acme has a tamper (urgent, north), an offline (south, assigned to
// crew-1), a resolved battery alarm and an incident with a folded alarm;
// other has a tamper.
func (f *alarmFixture) seed() {
	ago := func(d time.Duration) time.Time { return f.now.Add(-d) }
	f.alarms.add(posfleet.Alarm{ID: "a-tamper", Tenant: "acme", Terminal: "T-1", Kind: "tamper", Urgent: true, Merchant: "M-1", Region: "north",
		Active: true, Opened: ago(time.Hour), Evidence: json.RawMessage(`{"events":[{"component":"case","code":"OPENED"}]}`)})
	f.alarms.add(posfleet.Alarm{ID: "a-offline", Tenant: "acme", Terminal: "T-2", Kind: "offline", Merchant: "M-2", Region: "south",
		Active: true, Opened: ago(2 * time.Hour), State: posfleet.AlarmAssigned, Assignee: "crew-1"})
	f.alarms.add(posfleet.Alarm{ID: "a-battery", Tenant: "acme", Terminal: "T-3", Kind: "battery", Region: "north",
		Opened: ago(3 * time.Hour), State: posfleet.AlarmResolved, Resolved: ago(time.Hour)})
	f.alarms.add(posfleet.Alarm{ID: "a-incident", Tenant: "acme", Kind: posfleet.AlarmKindIncident, Incident: "i-1", Urgent: true,
		Active: true, Opened: ago(30 * time.Minute), Folded: 1})
	f.alarms.add(posfleet.Alarm{ID: "a-folded", Tenant: "acme", Terminal: "T-4", Kind: "txn_failures", Region: "north",
		Active: true, Opened: ago(29 * time.Minute), Parent: "a-incident"})
	f.alarms.add(posfleet.Alarm{ID: "o-tamper", Tenant: "other", Terminal: "T-1", Kind: "tamper", Urgent: true,
		Active: true, Opened: ago(time.Hour)})
}

func (f *alarmFixture) call(t *testing.T, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+f.tokens[token])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, []byte(b.String())
}

// session signs user in and returns a browser and the forms' CSRF token.
func (f *alarmFixture) session(t *testing.T, user string) (*http.Client, string) {
	t.Helper()
	c := browser(t)
	resp, _ := postLogin(t, f.srv.URL, c, url.Values{"name": {user}, "password": {"correct horse battery"}, "next": {"/alarms"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in %s: %s", user, resp.Status)
	}
	resp, page := get(t, c, f.srv.URL+"/alarms")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("alarms page: %s", resp.Status)
	}
	return c, attr(t, page, "csrf")
}

func (f *alarmFixture) page(t *testing.T, c *http.Client, path string, status int) (string, map[string][]string) {
	t.Helper()
	resp, body := get(t, c, f.srv.URL+path)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %s, want %d: %.300s", path, resp.Status, status, body)
	}
	return body, testIDs(t, body)
}

type alarmList struct {
	Alarms []posfleet.Alarm `json:"alarms"`
	Total  int              `json:"total"`
}

func ids(list []posfleet.Alarm) string {
	var out []string
	for _, a := range list {
		out = append(out, a.ID)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func TestAlarmsAPIList(t *testing.T) {
	f := newAlarmFixture(t)
	for _, tc := range []struct {
		token, query string
		status       int
		want         string // sorted IDs, or the error code
	}{
		{"acme", "", 200, "a-incident,a-offline,a-tamper"},
		{"admin", "", 200, "a-incident,a-offline,a-tamper,o-tamper"},
		{"admin", "?tenant=other", 200, "o-tamper"},
		{"other", "", 200, "o-tamper"},
		{"acme", "?tenant=acme", 200, "a-incident,a-offline,a-tamper"},
		{"acme", "?state=resolved", 200, "a-battery"},
		{"acme", "?state=open,assigned", 200, "a-incident,a-offline,a-tamper"},
		{"acme", "?state=all", 200, "a-battery,a-incident,a-offline,a-tamper"},
		{"acme", "?kind=tamper", 200, "a-tamper"},
		{"acme", "?kind=incident", 200, "a-incident"},
		{"acme", "?urgent=true", 200, "a-incident,a-tamper"},
		{"acme", "?urgent=false", 200, "a-offline"},
		{"acme", "?region=south", 200, "a-offline"},
		{"acme", "?assignee=crew-1", 200, "a-offline"},
		{"acme", "?terminal=T-1", 200, "a-tamper"},
		{"acme", "?parent=a-incident", 200, "a-folded"},
		{"acme", "?limit=1&offset=1", 200, "a-tamper"},
		{"acme", "?tenant=other", 404, "not_found"},
		{"acme", "?state=closed", 400, "bad_request"},
		{"acme", "?kind=nope", 400, "bad_request"},
		{"acme", "?urgent=maybe", 400, "bad_request"},
		{"acme", "?limit=0", 400, "bad_request"},
		{"acme", "?limit=501", 400, "bad_request"},
		{"acme", "?offset=-1", 400, "bad_request"},
		{"", "", 401, "unauthorized"},
	} {
		t.Run(tc.token+tc.query, func(t *testing.T) {
			status, body := f.call(t, tc.token, "GET", "/api/v1/alarms"+tc.query, "")
			if status != tc.status {
				t.Fatalf("%d, want %d: %s", status, tc.status, body)
			}
			if status != 200 {
				if code := errCode(t, body); code != tc.want {
					t.Errorf("code %q, want %q", code, tc.want)
				}
				return
			}
			var l alarmList
			if err := json.Unmarshal(body, &l); err != nil {
				t.Fatal(err)
			}
			if got := ids(l.Alarms); got != tc.want {
				t.Errorf("alarms %s, want %s", got, tc.want)
			}
			if strings.Contains(tc.query, "limit=1") && (len(l.Alarms) != 1 || l.Total != 3) {
				t.Errorf("page: %d alarms of %d, want 1 of 3", len(l.Alarms), l.Total)
			}
		})
	}
	// An empty list is [], never null.
	status, body := f.call(t, "acme", "GET", "/api/v1/alarms?kind=battery", "")
	if status != 200 || !strings.Contains(string(body), `"alarms": []`) || !strings.Contains(string(body), `"total": 0`) {
		t.Errorf("empty list: %d %s", status, body)
	}
}

func TestAlarmsAPIDetail(t *testing.T) {
	f := newAlarmFixture(t)
	status, body := f.call(t, "acme", "GET", "/api/v1/alarms/a-incident", "")
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var d struct {
		Alarm   posfleet.Alarm        `json:"alarm"`
		History []posfleet.AlarmEntry `json:"history"`
		Folded  []posfleet.Alarm      `json:"folded"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if d.Alarm.ID != "a-incident" || len(d.History) != 1 || ids(d.Folded) != "a-folded" {
		t.Errorf("detail: %+v", d)
	}
	status, body = f.call(t, "acme", "GET", "/api/v1/alarms/a-tamper", "")
	if status != 200 || !strings.Contains(string(body), `"folded": []`) || !strings.Contains(string(body), `"OPENED"`) {
		t.Errorf("terminal alarm: %d %s", status, body)
	}
	// Another tenant's alarm and a missing one answer the same.
	_, missing := f.call(t, "acme", "GET", "/api/v1/alarms/nope", "")
	status, other := f.call(t, "acme", "GET", "/api/v1/alarms/o-tamper", "")
	if status != 404 || string(other) != string(missing) {
		t.Errorf("other tenant's alarm: %d %s; missing: %s", status, other, missing)
	}
	if status, _ := f.call(t, "admin", "GET", "/api/v1/alarms/o-tamper", ""); status != 200 {
		t.Errorf("administrator: %d", status)
	}
}

func TestAlarmsAPIActions(t *testing.T) {
	f := newAlarmFixture(t)
	for _, tc := range []struct {
		name, token, path, body string
		status                  int
		code                    string
	}{
		{"ack", "acme", "a-tamper/acknowledge", `{}`, 200, ""},
		{"ack again", "acme", "a-tamper/acknowledge", `{}`, 409, "acknowledged"},
		{"ack empty body", "acme", "a-incident/acknowledge", ``, 200, ""},
		{"ack other tenant", "acme", "o-tamper/acknowledge", `{}`, 404, "not_found"},
		{"ack missing", "acme", "nope/acknowledge", `{}`, 404, "not_found"},
		{"ack with a field", "acme", "o-tamper/acknowledge", `{"note":"x"}`, 400, "bad_request"},
		{"assign", "acme", "a-tamper/assign", `{"assignee":"crew-chengdu"}`, 200, ""},
		{"assign nobody", "acme", "a-tamper/assign", `{"assignee":" "}`, 400, "bad_request"},
		{"assign unknown field", "acme", "a-tamper/assign", `{"to":"x"}`, 400, "bad_request"},
		{"assign key case", "acme", "a-tamper/assign", `{"Assignee":"x"}`, 400, "bad_request"},
		{"comment", "acme", "a-tamper/comment", `{"text":"on my way"}`, 200, ""},
		{"comment empty", "acme", "a-tamper/comment", `{"text":""}`, 400, "bad_request"},
		{"comment card number", "acme", "a-tamper/comment", `{"text":"card 4111 1111 1111 1111"}`, 400, "bad_request"},
		{"comment too long", "acme", "a-tamper/comment", `{"text":"` + strings.Repeat("x", posfleet.MaxNoteLen+1) + `"}`, 400, "bad_request"},
		{"snooze for", "acme", "a-tamper/snooze", `{"for":"2h"}`, 200, ""},
		{"snooze bad for", "acme", "a-tamper/snooze", `{"for":"soon"}`, 400, "bad_request"},
		{"snooze negative", "acme", "a-tamper/snooze", `{"for":"-1h"}`, 400, "bad_request"},
		{"snooze past", "acme", "a-tamper/snooze", `{"until":"2026-03-01T09:00:00Z"}`, 400, "bad_request"},
		{"snooze both", "acme", "a-tamper/snooze", `{"until":"2026-03-03T09:00:00Z","for":"1h"}`, 400, "bad_request"},
		{"snooze neither", "acme", "a-tamper/snooze", `{}`, 400, "bad_request"},
		{"snooze bad until", "acme", "a-tamper/snooze", `{"until":"tomorrow"}`, 400, "bad_request"},
		{"snooze until", "acme", "a-offline/snooze", `{"until":"2026-03-03T09:00:00+08:00"}`, 200, ""},
		{"snooze end", "acme", "a-offline/snooze", `{"until":""}`, 200, ""},
		{"resolve", "acme", "a-offline/resolve", `{"note":"replaced the router"}`, 200, ""},
		{"resolve again", "acme", "a-offline/resolve", `{"note":""}`, 409, "resolved"},
		{"resolve other tenant", "acme", "o-tamper/resolve", `{}`, 404, "not_found"},
		{"malformed", "acme", "a-tamper/comment", `{"text":`, 400, "bad_request"},
		{"too large", "acme", "a-tamper/comment", `{"text":"` + strings.Repeat("x", 300<<10) + `"}`, 413, "too_large"},
		{"admin acts on any tenant", "admin", "o-tamper/acknowledge", `{}`, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.call(t, tc.token, "POST", "/api/v1/alarms/"+tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("%d, want %d: %.300s", status, tc.status, body)
			}
			if tc.code != "" {
				if code := errCode(t, body); code != tc.code {
					t.Errorf("code %q, want %q", code, tc.code)
				}
				return
			}
			var out struct{ Alarm posfleet.Alarm }
			if err := json.Unmarshal(body, &out); err != nil || out.Alarm.ID == "" {
				t.Errorf("answer %s: %v", body, err)
			}
		})
	}
	a := f.alarms.get("a-tamper")
	if a.State != posfleet.AlarmAssigned || a.Assignee != "crew-chengdu" || a.AckBy != "acme-script" || !a.SnoozedUntil.Equal(f.now.Add(2*time.Hour)) {
		t.Errorf("a-tamper after the actions: %+v", a)
	}
	if a := f.alarms.get("a-offline"); a.State != posfleet.AlarmResolved || !a.SnoozedUntil.IsZero() || a.ResolvedBy != "acme-script" {
		t.Errorf("a-offline after the actions: %+v", a)
	}
	if a := f.alarms.get("o-tamper"); a.AckBy != "admin-script" {
		t.Errorf("o-tamper acknowledged by %q, want the administrator's token", a.AckBy)
	}
	_, hist, _ := f.alarms.Alarm(context.Background(), "a-tamper")
	if got := hist[3]; got.Action != posfleet.AlarmActCommented || got.Detail != "on my way" || got.Actor != "acme-script" {
		t.Errorf("comment in history: %+v", got)
	}
}

func TestAlarmsAPIBulk(t *testing.T) {
	f := newAlarmFixture(t)
	// a-offline is assigned already: acknowledging it is a conflict;
	// o-tamper is another tenant's: not found.
	status, body := f.call(t, "acme", "POST", "/api/v1/alarms/bulk",
		`{"ids":["a-tamper","a-incident","a-offline","o-tamper","a-tamper"],"action":"acknowledge"}`)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var res web.BulkResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Done != 2 || len(res.Failed) != 2 || res.Failed[0].ID != "a-offline" || res.Failed[1].ID != "o-tamper" || res.Failed[1].Error != "no such alarm" {
		t.Errorf("bulk: %+v", res)
	}
	if a := f.alarms.get("o-tamper"); a.State != posfleet.AlarmOpen {
		t.Error("a bulk action changed another tenant's alarm")
	}
	status, body = f.call(t, "acme", "POST", "/api/v1/alarms/bulk", `{"ids":["a-tamper","a-incident"],"action":"assign","assignee":"crew-2"}`)
	if status != 200 || !strings.Contains(string(body), `"done": 2`) || !strings.Contains(string(body), `"failed": []`) {
		t.Errorf("bulk assign: %d %s", status, body)
	}
	if a := f.alarms.get("a-incident"); a.Assignee != "crew-2" {
		t.Errorf("a-incident: %+v", a)
	}
	many := make([]string, 501)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprint("id-", i))
	}
	for _, body := range []string{
		`{"ids":[],"action":"acknowledge"}`,
		`{"ids":["a-tamper"],"action":"delete"}`,
		`{"ids":["a-tamper"],"action":"assign"}`,
		`{"ids":[` + strings.Join(many, ",") + `],"action":"acknowledge"}`,
	} {
		if status, b := f.call(t, "acme", "POST", "/api/v1/alarms/bulk", body); status != 400 || errCode(t, b) != "bad_request" {
			t.Errorf("%.60s: %d %s", body, status, b)
		}
	}
}

// TestAlarmsNotMounted: without Alarms and Notifications, their pages
// and endpoints do not exist and the navigation does not offer them.
func TestAlarmsNotMounted(t *testing.T) {
	f := newAlarmFixture(t, func(o *web.Options) { o.Alarms, o.Notifications = nil, nil })
	for _, p := range []string{"/api/v1/alarms", "/api/v1/alarms/a-tamper", "/api/v1/channels", "/api/v1/routes", "/api/v1/notifications"} {
		if status, _ := f.call(t, "admin", "GET", p, ""); status != 404 {
			t.Errorf("%s: %d", p, status)
		}
	}
	c := browser(t)
	postLogin(t, f.srv.URL, c, url.Values{"name": {"root"}, "password": {"correct horse battery"}})
	if resp, _ := get(t, c, f.srv.URL+"/alarms"); resp.StatusCode != 404 {
		t.Errorf("/alarms: %s", resp.Status)
	}
	_, ids := f.page(t, c, "/security", 200)
	if len(ids["nav-alarms"]) != 0 || len(ids["nav-notifications"]) != 0 {
		t.Errorf("navigation offers what is not there: %v", ids)
	}
}

func TestAlarmListPage(t *testing.T) {
	f := newAlarmFixture(t)
	c, _ := f.session(t, "ops-acme")
	page, ids := f.page(t, c, "/alarms", 200)
	if n := strings.Count(page, "data-alarm-id="); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
	if one(t, ids, "nav-alarms-count") != "2" { // a-tamper and a-incident are open
		t.Errorf("nav count %q", ids["nav-alarms-count"])
	}
	for _, want := range []string{`<tr data-alarm-id="a-tamper"`, `href="/terminals/acme/T-1"`, `href="/incidents"`, `href="/alarms/a-tamper"`,
		`form method="post" action="/alarms/bulk" id="bulk"`, `name="id" value="a-tamper"`, `id="bulk-ack"`, `id="bulk-assign"`, "crew-1"} {
		if !strings.Contains(page, want) {
			t.Errorf("list page lacks %s", want)
		}
	}
	if strings.Contains(page, "o-tamper") || len(ids["filter-tenant"]) != 0 || len(ids["nav-notifications"]) != 0 {
		t.Error("a tenant's user sees another tenant's alarm, the tenant filter or the notifications admin")
	}
	page, ids = f.page(t, c, "/alarms?kind=tamper&urgent=true&region=north", 200)
	if n := strings.Count(page, "data-alarm-id="); n != 1 || !strings.Contains(page, `<option value="tamper" selected>`) {
		t.Errorf("filtered: %d rows", n)
	}
	_, ids = f.page(t, c, "/alarms?state=resolved", 200)
	if len(ids["alarm-row"]) != 1 || !strings.Contains(ids["alarm-row-state"][0], "resolved") {
		t.Errorf("resolved: %v", ids["alarm-row-state"])
	}
	_, ids = f.page(t, c, "/alarms?state=bogus", 400)
	if !strings.Contains(one(t, ids, "alarms-error"), "unknown state") {
		t.Errorf("error: %v", ids["alarms-error"])
	}
	f.page(t, c, "/alarms?tenant=other", 404)

	// Paging: 60 more alarms make two pages of 50.
	for i := range 60 {
		f.alarms.add(posfleet.Alarm{ID: fmt.Sprintf("p-%02d", i), Tenant: "acme", Terminal: "T-9", Kind: "battery", Active: true, Opened: f.now.Add(-time.Duration(i+5) * time.Hour)})
	}
	page, ids = f.page(t, c, "/alarms?kind=battery", 200)
	if strings.Count(page, "data-alarm-id=") != 50 || len(ids["page-next"]) != 1 || len(ids["page-prev"]) != 0 {
		t.Errorf("page 1: %d rows", strings.Count(page, "data-alarm-id="))
	}
	page, ids = f.page(t, c, "/alarms?kind=battery&page=2", 200)
	if strings.Count(page, "data-alarm-id=") != 10 || len(ids["page-prev"]) != 1 || !strings.Contains(one(t, ids, "alarms-total"), "60") {
		t.Errorf("page 2: %d rows", strings.Count(page, "data-alarm-id="))
	}

	// The administrator sees every tenant and may filter by one.
	c, _ = f.session(t, "root")
	page, ids = f.page(t, c, "/alarms", 200)
	if !strings.Contains(page, `data-alarm-id="o-tamper"`) || len(ids["filter-tenant"]) != 1 || len(ids["nav-notifications"]) != 1 {
		t.Error("administrator's list")
	}
	page, _ = f.page(t, c, "/alarms?tenant=other", 200)
	if strings.Count(page, "data-alarm-id=") != 1 {
		t.Error("tenant filter")
	}
}

func TestAlarmPageAndForms(t *testing.T) {
	f := newAlarmFixture(t)
	c, csrf := f.session(t, "ops-acme")
	page, ids := f.page(t, c, "/alarms/a-tamper", 200)
	if one(t, ids, "alarm-state") != "open" || len(ids["history-row"]) != 1 {
		t.Errorf("alarm page: %v", ids)
	}
	for _, want := range []string{`id="alarm-state"`, `<tbody id="history">`, `id="ack"`, `id="assign"`, `name="assignee"`, `id="comment"`,
		`name="text"`, `id="snooze"`, `name="for"`, `id="resolve"`, `name="note"`, `<dl class="evidence">`, `OPENED`,
		`<datalist id="assignees"><option value="ops-acme"></option><option value="root"></option></datalist>`} {
		if !strings.Contains(page, want) {
			t.Errorf("alarm page lacks %s", want)
		}
	}
	if strings.Contains(page, "ops-other") {
		t.Error("the assign form suggests another tenant's user")
	}
	f.page(t, c, "/alarms/o-tamper", 404)
	f.page(t, c, "/alarms/nope", 404)

	postForm := func(path string, form url.Values) (*http.Response, string) {
		t.Helper()
		return post(t, c, f.srv.URL+path, form)
	}
	// No CSRF token, no change.
	if resp, _ := postForm("/alarms/a-tamper/acknowledge", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("without CSRF: %s", resp.Status)
	}
	if resp, _ := postForm("/alarms/a-tamper/acknowledge", url.Values{"csrf": {"forged"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged CSRF: %s", resp.Status)
	}
	if f.alarms.get("a-tamper").State != posfleet.AlarmOpen {
		t.Fatal("acknowledged without a CSRF token")
	}
	for _, step := range []struct {
		action string
		form   url.Values
		notice string
	}{
		{"acknowledge", url.Values{}, "Acknowledged"},
		{"assign", url.Values{"assignee": {"crew-chengdu"}}, "Assigned"},
		{"comment", url.Values{"text": {"replacing the case"}}, "Comment added"},
		{"snooze", url.Values{"for": {"4h"}}, "Snoozed"},
	} {
		step.form.Set("csrf", csrf)
		resp, body := postForm("/alarms/a-tamper/"+step.action, step.form)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/alarms/a-tamper?done="+step.action {
			t.Fatalf("%s: %s to %q: %.300s", step.action, resp.Status, resp.Header.Get("Location"), body)
		}
		_, ids := f.page(t, c, resp.Header.Get("Location"), 200)
		if !strings.Contains(one(t, ids, "notice"), step.notice) {
			t.Errorf("%s: notice %v", step.action, ids["notice"])
		}
	}
	a := f.alarms.get("a-tamper")
	if a.State != posfleet.AlarmAssigned || a.AckBy != "ops-acme" || a.Assignee != "crew-chengdu" || !a.SnoozedUntil.Equal(f.now.Add(4*time.Hour)) {
		t.Errorf("after the forms: %+v", a)
	}
	page, ids = f.page(t, c, "/alarms/a-tamper", 200)
	if one(t, ids, "alarm-state") != "assigned" || len(ids["history-row"]) != 5 || len(ids["alarm-snoozed"]) != 1 ||
		!strings.Contains(page, `id="unsnooze"`) || strings.Contains(page, `id="ack"`) {
		t.Errorf("after the forms: %v", ids)
	}
	// End the snooze; then snooze until tomorrow 09:00 in the tenant's
	// zone (its route's: Asia/Shanghai).
	f.notes.addChannel(posfleet.NotifyChannel{ID: "ch-a", Tenant: "acme", Name: "ops", Type: posfleet.NotifyWebhook, Enabled: true})
	f.notes.routes["r-a"] = &posfleet.NotifyRoute{ID: "r-a", Tenant: "acme", Name: "all", Channel: "ch-a", TimeZone: "Asia/Shanghai", Enabled: true}
	if resp, _ := postForm("/alarms/a-tamper/snooze", url.Values{"csrf": {csrf}, "for": {"end"}}); resp.Header.Get("Location") != "/alarms/a-tamper?done=unsnooze" {
		t.Errorf("end snooze: %s %q", resp.Status, resp.Header.Get("Location"))
	}
	if !f.alarms.get("a-tamper").SnoozedUntil.IsZero() {
		t.Error("the snooze did not end")
	}
	postForm("/alarms/a-tamper/snooze", url.Values{"csrf": {csrf}, "for": {"tomorrow"}})
	if got, want := f.alarms.get("a-tamper").SnoozedUntil, time.Date(2026, 3, 3, 1, 0, 0, 0, time.UTC); !got.Equal(want) { // 09:00 +08:00
		t.Errorf("snoozed until %v, want %v", got, want)
	}
	if page, _ := f.page(t, c, "/alarms/a-tamper", 200); !strings.Contains(page, "until tomorrow 09:00 (Asia/Shanghai)") {
		t.Error("the snooze option does not name the time zone")
	}
	// Refused actions show why on the page, with their status.
	resp, body := postForm("/alarms/a-tamper/comment", url.Values{"csrf": {csrf}, "text": {"card 4111 1111 1111 1111"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(one(t, testIDs(t, body), "action-error"), "card number") {
		t.Errorf("card number in a comment: %s", resp.Status)
	}
	resp, _ = postForm("/alarms/a-tamper/snooze", url.Values{"csrf": {csrf}, "for": {"forever"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad snooze: %s", resp.Status)
	}
	resp, _ = postForm("/alarms/o-tamper/acknowledge", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusNotFound || f.alarms.get("o-tamper").State != posfleet.AlarmOpen {
		t.Errorf("another tenant's alarm: %s", resp.Status)
	}
	if resp, _ := postForm("/alarms/a-tamper/delete", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown action: %s", resp.Status)
	}
	resp, _ = postForm("/alarms/a-tamper/resolve", url.Values{"csrf": {csrf}, "note": {"case replaced"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("resolve: %s", resp.Status)
	}
	page, ids = f.page(t, c, "/alarms/a-tamper", 200)
	if one(t, ids, "alarm-state") != "resolved" || strings.Contains(page, `id="resolve"`) || !strings.Contains(page, `id="comment"`) {
		t.Errorf("resolved alarm's page: %v", ids)
	}
	resp, body = postForm("/alarms/a-tamper/resolve", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusConflict || len(testIDs(t, body)["action-error"]) != 1 {
		t.Errorf("resolve twice: %s", resp.Status)
	}

	// An incident's alarm lists its folded alarms.
	page, ids = f.page(t, c, "/alarms/a-incident", 200)
	if len(ids["folded-row"]) != 1 || !strings.Contains(page, `data-alarm-id="a-folded"`) {
		t.Errorf("incident alarm: %v", ids)
	}
}

func TestAlarmBulkConfirm(t *testing.T) {
	f := newAlarmFixture(t)
	c, csrf := f.session(t, "ops-acme")
	back := "/alarms?urgent=true"
	form := url.Values{"csrf": {csrf}, "back": {back}, "action": {"acknowledge"}, "id": {"a-tamper", "a-incident"}}
	// Without CSRF: refused.
	if resp, _ := post(t, c, f.srv.URL+"/alarms/bulk", url.Values{"action": {"acknowledge"}, "id": {"a-tamper"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("without CSRF: %s", resp.Status)
	}
	// The first step asks, and changes nothing.
	resp, page := post(t, c, f.srv.URL+"/alarms/bulk", form)
	ids := testIDs(t, page)
	if resp.StatusCode != 200 || one(t, ids, "bulk-question") != "Acknowledge 2 alarms?" {
		t.Fatalf("confirmation: %s %v", resp.Status, ids["bulk-question"])
	}
	if !strings.Contains(page, `name="confirm" value="yes"`) || strings.Count(page, `type="hidden" name="id"`) != 2 || f.alarms.get("a-tamper").State != posfleet.AlarmOpen {
		t.Error("the confirmation step")
	}
	form.Set("confirm", "yes")
	resp, _ = post(t, c, f.srv.URL+"/alarms/bulk", form)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/alarms?") || !strings.Contains(loc, "done=bulk-acknowledge") || !strings.Contains(loc, "n=2") || !strings.Contains(loc, "urgent=true") {
		t.Fatalf("confirmed: %s to %q", resp.Status, loc)
	}
	if f.alarms.get("a-tamper").AckBy != "ops-acme" || f.alarms.get("a-incident").State != posfleet.AlarmAcknowledged {
		t.Error("not acknowledged")
	}
	if _, ids := f.page(t, c, loc, 200); !strings.Contains(one(t, ids, "notice"), "Acknowledged 2 alarms") {
		t.Errorf("notice %v", ids["notice"])
	}
	// Assign to a crew: some fail (another tenant's, a resolved one), and
	// the answer lists them.
	form = url.Values{"csrf": {csrf}, "action": {"assign"}, "assignee": {"crew-9"}, "id": {"a-tamper", "o-tamper", "a-battery"}}
	_, page = post(t, c, f.srv.URL+"/alarms/bulk", form)
	if q := one(t, testIDs(t, page), "bulk-question"); q != "Assign 3 alarms to crew-9?" {
		t.Errorf("question %q", q)
	}
	if strings.Contains(page, "other</span>") {
		t.Error("the confirmation shows another tenant's alarm")
	}
	form.Set("confirm", "yes")
	resp, page = post(t, c, f.srv.URL+"/alarms/bulk", form)
	ids = testIDs(t, page)
	if resp.StatusCode != 200 || len(ids["bulk-failure"]) != 2 || f.alarms.get("a-tamper").Assignee != "crew-9" || f.alarms.get("o-tamper").Assignee != "" {
		t.Errorf("partial failure: %s %v", resp.Status, ids["bulk-failure"])
	}
	// Nothing selected: back to the list with the reason.
	resp, page = post(t, c, f.srv.URL+"/alarms/bulk", url.Values{"csrf": {csrf}, "action": {"acknowledge"}, "back": {"https://evil.example/"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(one(t, testIDs(t, page), "alarms-error"), "Select at least one") {
		t.Errorf("nothing selected: %s", resp.Status)
	}
	// A foreign "back" never leaves the alarm list.
	resp, _ = post(t, c, f.srv.URL+"/alarms/bulk", url.Values{"csrf": {csrf}, "action": {"acknowledge"}, "id": {"a-offline"}, "confirm": {"yes"}, "back": {"//evil.example/"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusSeeOther && !strings.HasPrefix(loc, "/alarms?") {
		t.Errorf("redirect to %q", loc)
	}
}
