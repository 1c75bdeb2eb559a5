package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
)

// fakeNotifications keeps channels (with their write-only URL and
// secret), routes and notifications in memory.
type fakeNotifications struct {
	mu       sync.Mutex
	now      func() time.Time
	n        int
	channels map[string]*posfleet.NotifyChannel
	urls     map[string]string
	secrets  map[string]string
	routes   map[string]*posfleet.NotifyRoute
	recent   []posfleet.Notification
	testErr  error
	tested   []string
}

func newFakeNotifications(now func() time.Time) *fakeNotifications {
	return &fakeNotifications{now: now, channels: map[string]*posfleet.NotifyChannel{}, urls: map[string]string{},
		secrets: map[string]string{}, routes: map[string]*posfleet.NotifyRoute{}}
}

func (f *fakeNotifications) addChannel(ch posfleet.NotifyChannel) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.channels[ch.ID] = &ch
}

func (f *fakeNotifications) Channels(_ context.Context, tenant string) ([]posfleet.NotifyChannel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []posfleet.NotifyChannel
	for _, ch := range f.channels {
		if tenant == "" || ch.Tenant == tenant {
			out = append(out, *ch)
		}
	}
	slices.SortFunc(out, func(a, b posfleet.NotifyChannel) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeNotifications) Channel(_ context.Context, id string) (posfleet.NotifyChannel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.channels[id]
	if !ok {
		return posfleet.NotifyChannel{}, posfleet.Errorf(posfleet.NotFound, "channel_not_found", "no channel %q", id)
	}
	return *ch, nil
}

func (f *fakeNotifications) SaveChannel(_ context.Context, ch posfleet.NotifyChannel, sec posfleet.NotifySecrets, by string) (posfleet.NotifyChannel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ch.ID == "" {
		f.n++
		ch.ID, ch.Created, ch.CreatedBy = fmt.Sprintf("ch-%d", f.n), f.now(), by
	} else if _, ok := f.channels[ch.ID]; !ok {
		return ch, posfleet.Errorf(posfleet.NotFound, "channel_not_found", "no channel %q", ch.ID)
	}
	if sec.URL != nil {
		f.urls[ch.ID] = *sec.URL
	}
	if sec.Secret != nil {
		f.secrets[ch.ID] = *sec.Secret
	}
	ch.URLHint, ch.HasSecret, ch.Updated = "", f.secrets[ch.ID] != "", f.now()
	if u, err := url.Parse(f.urls[ch.ID]); err == nil && u.Host != "" {
		ch.URLHint = u.Scheme + "://" + u.Host + "/…"
	}
	f.channels[ch.ID] = &ch
	return ch, nil
}

func (f *fakeNotifications) DeleteChannel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.routes {
		if r.Channel == id {
			return posfleet.Errorf(posfleet.Conflict, "channel_in_use", "route %s sends to the channel; delete it first", r.Name)
		}
	}
	delete(f.channels, id)
	return nil
}

func (f *fakeNotifications) TestChannel(_ context.Context, id, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tested = append(f.tested, id+" "+by)
	return f.testErr
}

func (f *fakeNotifications) Routes(_ context.Context, tenant string) ([]posfleet.NotifyRoute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []posfleet.NotifyRoute
	for _, r := range f.routes {
		if tenant == "" || r.Tenant == tenant {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b posfleet.NotifyRoute) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeNotifications) SaveRoute(_ context.Context, r posfleet.NotifyRoute, by string) (posfleet.NotifyRoute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.ID == "" {
		f.n++
		r.ID, r.Created, r.CreatedBy = fmt.Sprintf("r-%d", f.n), f.now(), by
	}
	r.Updated = f.now()
	f.routes[r.ID] = &r
	return r, nil
}

func (f *fakeNotifications) DeleteRoute(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.routes, id)
	return nil
}

func (f *fakeNotifications) RecentNotifications(_ context.Context, tenant, state string, n int) ([]posfleet.Notification, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []posfleet.Notification
	for _, x := range f.recent {
		if (tenant == "" || x.Tenant == tenant) && (state == "" || string(x.State) == state) && len(out) < n {
			out = append(out, x)
		}
	}
	return out, nil
}

// The secrets of the tests: none may ever come back.
const (
	hookURL    = "https://hooks.example.com/robot/send?access_token=tok-SECRET-in-url"
	hookSecret = "SEC-very-secret-signing-key"
)

func noSecrets(t *testing.T, what string, body []byte) {
	t.Helper()
	for _, s := range []string{"tok-SECRET-in-url", hookSecret, "access_token", "new-secret-2"} {
		if strings.Contains(string(body), s) {
			t.Errorf("%s shows a secret (%s): %.400s", what, s, body)
		}
	}
}

func TestChannelsAPI(t *testing.T) {
	f := newAlarmFixture(t)
	create := fmt.Sprintf(`{"tenant":"acme","name":"ops hook","type":"webhook","url":%q,"secret":%q,"language":"zh-CN","rate_per_hour":30}`, hookURL, hookSecret)
	status, body := f.call(t, "acme", "POST", "/api/v1/channels", create)
	if status != 403 || errCode(t, body) != "forbidden" {
		t.Errorf("a tenant's token creates a channel: %d %s", status, body)
	}
	status, body = f.call(t, "admin", "POST", "/api/v1/channels", create)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	noSecrets(t, "POST /api/v1/channels", body)
	var out struct{ Channel posfleet.NotifyChannel }
	json.Unmarshal(body, &out)
	ch := out.Channel
	if ch.ID == "" || ch.Tenant != "acme" || !ch.HasSecret || ch.URLHint != "https://hooks.example.com/…" || !ch.Enabled || ch.RatePerHour != 30 || ch.Language != "zh-CN" || ch.CreatedBy != "admin-script" {
		t.Errorf("created: %+v", ch)
	}
	if f.notes.urls[ch.ID] != hookURL || f.notes.secrets[ch.ID] != hookSecret {
		t.Error("the URL and secret were not saved")
	}
	status, body = f.call(t, "admin", "POST", "/api/v1/channels", `{"tenant":"other","name":"mail","type":"email","to":["ops@other.example", "Boss <boss@other.example>"]}`)
	if status != 201 || !strings.Contains(string(body), `"boss@other.example"`) || !strings.Contains(string(body), `"rate_per_hour": 60`) || !strings.Contains(string(body), `"language": "en"`) {
		t.Errorf("e-mail channel: %d %s", status, body)
	}
	// Reading: each tenant its own; secrets never.
	for _, tc := range []struct{ token, query, want string }{
		{"acme", "", "ops hook"}, {"other", "", "mail"}, {"admin", "?tenant=acme", "ops hook"}, {"acme", "?tenant=acme", "ops hook"},
	} {
		status, body := f.call(t, tc.token, "GET", "/api/v1/channels"+tc.query, "")
		var l struct{ Channels []posfleet.NotifyChannel }
		json.Unmarshal(body, &l)
		if status != 200 || len(l.Channels) != 1 || l.Channels[0].Name != tc.want {
			t.Errorf("%s%s: %d %s", tc.token, tc.query, status, body)
		}
		noSecrets(t, "GET /api/v1/channels", body)
	}
	if status, _ := f.call(t, "admin", "GET", "/api/v1/channels", ""); status != 200 {
		t.Error("administrator's list")
	}
	if status, _ := f.call(t, "acme", "GET", "/api/v1/channels?tenant=other", ""); status != 404 {
		t.Errorf("another tenant's channels: %d", status)
	}
	// Updates: url and secret omitted keep theirs; "" removes the secret.
	status, body = f.call(t, "admin", "PUT", "/api/v1/channels/"+ch.ID, `{"name":"ops hook 2","type":"webhook","enabled":false}`)
	if status != 200 || !strings.Contains(string(body), `"has_secret": true`) || !strings.Contains(string(body), `"enabled": false`) || !strings.Contains(string(body), `"rate_per_hour": 30`) {
		t.Errorf("rename: %d %s", status, body)
	}
	if f.notes.urls[ch.ID] != hookURL || f.notes.secrets[ch.ID] != hookSecret {
		t.Error("an update without url and secret changed them")
	}
	// A client may send back what it read.
	_, listed := f.call(t, "admin", "GET", "/api/v1/channels?tenant=acme", "")
	var l struct{ Channels []json.RawMessage }
	json.Unmarshal(listed, &l)
	if status, body := f.call(t, "admin", "PUT", "/api/v1/channels/"+ch.ID, string(l.Channels[0])); status != 200 {
		t.Errorf("round trip: %d %s", status, body)
	}
	status, body = f.call(t, "admin", "PUT", "/api/v1/channels/"+ch.ID, `{"name":"ops hook","type":"webhook","secret":""}`)
	if status != 200 || !strings.Contains(string(body), `"has_secret": false`) {
		t.Errorf("remove the secret: %d %s", status, body)
	}
	if status, body := f.call(t, "admin", "PUT", "/api/v1/channels/"+ch.ID, `{"name":"x","type":"webhook","secret":"new-secret-2"}`); status != 200 {
		t.Errorf("new secret: %d %s", status, body)
	} else {
		noSecrets(t, "PUT", body)
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"bad type", "POST", "", `{"tenant":"acme","name":"x","type":"pager","url":"https://x.example"}`, 400},
		{"no url", "POST", "", `{"tenant":"acme","name":"x","type":"dingtalk"}`, 400},
		{"bad url", "POST", "", `{"tenant":"acme","name":"x","type":"slack","url":"ftp://x.example"}`, 400},
		{"url with password", "POST", "", `{"tenant":"acme","name":"x","type":"slack","url":"https://u:p@x.example"}`, 400},
		{"email without recipients", "POST", "", `{"tenant":"acme","name":"x","type":"email"}`, 400},
		{"email with url", "POST", "", `{"tenant":"acme","name":"x","type":"email","url":"https://x.example","to":["a@b.example"]}`, 400},
		{"bad recipient", "POST", "", `{"tenant":"acme","name":"x","type":"email","to":["not an address"]}`, 400},
		{"recipients on a webhook", "POST", "", `{"tenant":"acme","name":"x","type":"webhook","url":"https://x.example","to":["a@b.example"]}`, 400},
		{"bad language", "POST", "", `{"tenant":"acme","name":"x","type":"webhook","url":"https://x.example","language":"fr"}`, 400},
		{"rate 0", "POST", "", `{"tenant":"acme","name":"x","type":"webhook","url":"https://x.example","rate_per_hour":0}`, 400},
		{"no tenant", "POST", "", `{"name":"x","type":"webhook","url":"https://x.example"}`, 400},
		{"all tenants", "POST", "", `{"tenant":"*","name":"x","type":"webhook","url":"https://x.example"}`, 400},
		{"no name", "POST", "", `{"tenant":"acme","type":"webhook","url":"https://x.example"}`, 400},
		{"unknown field", "POST", "", `{"tenant":"acme","name":"x","type":"webhook","url":"https://x.example","token":"x"}`, 400},
		{"move tenant", "PUT", "/" + ch.ID, `{"tenant":"other","name":"x","type":"webhook"}`, 400},
		{"new type without url", "PUT", "/" + ch.ID, `{"name":"x","type":"slack"}`, 400},
		{"missing", "PUT", "/nope", `{"name":"x","type":"webhook"}`, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.call(t, "admin", tc.method, "/api/v1/channels"+tc.path, tc.body)
			if status != tc.status {
				t.Errorf("%d, want %d: %s", status, tc.status, body)
			}
			noSecrets(t, tc.name, body)
		})
	}
	// Send test: the receiver's refusal is a 502 without the channel's URL.
	if status, body := f.call(t, "admin", "POST", "/api/v1/channels/"+ch.ID+"/test", ""); status != 200 || !strings.Contains(string(body), `"sent": true`) {
		t.Errorf("test: %d %s", status, body)
	}
	f.notes.testErr = fmt.Errorf("notify: dingtalk: %w", &url.Error{Op: "Post", URL: hookURL, Err: errors.New("connection refused")})
	status, body = f.call(t, "admin", "POST", "/api/v1/channels/"+ch.ID+"/test", "")
	if status != 502 || !strings.Contains(string(body), "connection refused") || !strings.Contains(string(body), "https://hooks.example.com/") {
		t.Errorf("failed test: %d %s", status, body)
	}
	noSecrets(t, "failed test", body)
	f.notes.testErr = posfleet.Errorf(posfleet.Conflict, "disabled", "the channel is disabled")
	if status, body := f.call(t, "admin", "POST", "/api/v1/channels/"+ch.ID+"/test", ""); status != 409 {
		t.Errorf("test of a disabled channel: %d %s", status, body)
	}
	if status, _ := f.call(t, "acme", "POST", "/api/v1/channels/"+ch.ID+"/test", ""); status != 403 {
		t.Errorf("a tenant's token tests: %d", status)
	}
	// Delete: refused while a route uses it, then done; then 404.
	f.notes.routes["r-x"] = &posfleet.NotifyRoute{ID: "r-x", Tenant: "acme", Name: "x", Channel: ch.ID}
	if status, body := f.call(t, "admin", "DELETE", "/api/v1/channels/"+ch.ID, ""); status != 409 {
		t.Errorf("delete a channel in use: %d %s", status, body)
	}
	delete(f.notes.routes, "r-x")
	if status, _ := f.call(t, "acme", "DELETE", "/api/v1/channels/"+ch.ID, ""); status != 403 {
		t.Errorf("a tenant's token deletes: %d", status)
	}
	if status, body := f.call(t, "admin", "DELETE", "/api/v1/channels/"+ch.ID, ""); status != 200 {
		t.Errorf("delete: %d %s", status, body)
	}
	if status, _ := f.call(t, "admin", "DELETE", "/api/v1/channels/"+ch.ID, ""); status != 404 {
		t.Errorf("delete twice: %d", status)
	}
}

func TestRoutesAndNotificationsAPI(t *testing.T) {
	f := newAlarmFixture(t)
	f.notes.addChannel(posfleet.NotifyChannel{ID: "ch-a", Tenant: "acme", Name: "acme hook", Type: posfleet.NotifyWebhook, Enabled: true})
	f.notes.addChannel(posfleet.NotifyChannel{ID: "ch-o", Tenant: "other", Name: "other hook", Type: posfleet.NotifyWebhook, Enabled: true})
	route := `{"name":"urgent to ops","channel":"ch-a","kinds":["tamper","incident"],"urgent_only":true,"regions":["north"],
		"quiet_start":"22:00","quiet_end":"07:00","time_zone":"Asia/Shanghai","digest":true,"resolved":true}`
	if status, _ := f.call(t, "acme", "POST", "/api/v1/routes", route); status != 403 {
		t.Errorf("a tenant's token creates a route: %d", status)
	}
	status, body := f.call(t, "admin", "POST", "/api/v1/routes", route)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	var out struct{ Route posfleet.NotifyRoute }
	json.Unmarshal(body, &out)
	rt := out.Route
	if rt.ID == "" || rt.Tenant != "acme" || !rt.Enabled || rt.DigestAt != "09:00" || len(rt.Kinds) != 2 || rt.CreatedBy != "admin-script" {
		t.Errorf("created: %+v", rt)
	}
	for _, tc := range []struct {
		name, body string
	}{
		{"other tenant's channel", `{"tenant":"acme","name":"x","channel":"ch-o"}`},
		{"no channel", `{"name":"x"}`},
		{"unknown channel", `{"name":"x","channel":"nope"}`},
		{"bad kind", `{"name":"x","channel":"ch-a","kinds":["tampering"]}`},
		{"quiet start only", `{"name":"x","channel":"ch-a","quiet_start":"22:00"}`},
		{"bad quiet time", `{"name":"x","channel":"ch-a","quiet_start":"22h","quiet_end":"07:00"}`},
		{"bad time zone", `{"name":"x","channel":"ch-a","time_zone":"Mars/Olympus"}`},
		{"bad digest time", `{"name":"x","channel":"ch-a","digest":true,"digest_at":"9"}`},
		{"no name", `{"channel":"ch-a"}`},
	} {
		if status, body := f.call(t, "admin", "POST", "/api/v1/routes", tc.body); status != 400 {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
	}
	for _, tc := range []struct {
		token string
		n     int
	}{{"acme", 1}, {"other", 0}, {"admin", 1}} {
		status, body := f.call(t, tc.token, "GET", "/api/v1/routes", "")
		var l struct{ Routes []posfleet.NotifyRoute }
		json.Unmarshal(body, &l)
		if status != 200 || len(l.Routes) != tc.n {
			t.Errorf("%s: %d %s", tc.token, status, body)
		}
	}
	if status, _ := f.call(t, "other", "GET", "/api/v1/routes?tenant=acme", ""); status != 404 {
		t.Errorf("another tenant's routes: %d", status)
	}
	status, body = f.call(t, "admin", "PUT", "/api/v1/routes/"+rt.ID, `{"name":"all to ops","channel":"ch-a"}`)
	if status != 200 || !strings.Contains(string(body), `"enabled": true`) || strings.Contains(string(body), "quiet_start") {
		t.Errorf("update: %d %s", status, body)
	}
	if status, _ := f.call(t, "admin", "PUT", "/api/v1/routes/nope", `{"name":"x","channel":"ch-a"}`); status != 404 {
		t.Errorf("update a missing route: %d", status)
	}
	if status, _ := f.call(t, "acme", "DELETE", "/api/v1/routes/"+rt.ID, ""); status != 403 {
		t.Errorf("a tenant's token deletes: %d", status)
	}
	if status, _ := f.call(t, "admin", "DELETE", "/api/v1/routes/"+rt.ID, ""); status != 200 {
		t.Errorf("delete: %d", status)
	}
	if status, _ := f.call(t, "admin", "DELETE", "/api/v1/routes/"+rt.ID, ""); status != 404 {
		t.Errorf("delete twice: %d", status)
	}

	f.notes.recent = []posfleet.Notification{
		{ID: "n-1", Tenant: "acme", Channel: "ch-a", Event: posfleet.NotifyRaised, State: posfleet.NotificationSent, Attempts: 1, Created: f.now, Due: f.now, Sent: f.now,
			Alarm: f.alarms.get("a-tamper")},
		{ID: "n-2", Tenant: "acme", Channel: "ch-a", Event: posfleet.NotifyRaised, State: posfleet.NotificationFailed, Attempts: 7, LastError: "502 from receiver", Created: f.now, Due: f.now},
		{ID: "n-3", Tenant: "other", Channel: "ch-o", Event: posfleet.NotifyTest, State: posfleet.NotificationPending, Created: f.now, Due: f.now},
	}
	for _, tc := range []struct {
		token, query string
		status       int
		want         string
	}{
		{"acme", "", 200, "n-1,n-2"},
		{"acme", "?state=failed", 200, "n-2"},
		{"admin", "?limit=1", 200, "n-1"},
		{"admin", "?tenant=other", 200, "n-3"},
		{"acme", "?tenant=other", 404, ""},
		{"acme", "?state=lost", 400, ""},
		{"acme", "?limit=0", 400, ""},
	} {
		status, body := f.call(t, tc.token, "GET", "/api/v1/notifications"+tc.query, "")
		if status != tc.status {
			t.Errorf("%s%s: %d %s", tc.token, tc.query, status, body)
			continue
		}
		if status == 200 {
			var l struct{ Notifications []posfleet.Notification }
			json.Unmarshal(body, &l)
			var got []string
			for _, n := range l.Notifications {
				got = append(got, n.ID)
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("%s%s: %v", tc.token, tc.query, got)
			}
		}
	}
}

func TestNotificationsPage(t *testing.T) {
	f := newAlarmFixture(t)
	root, csrf := f.session(t, "root")
	// Create a channel through the form: no CSRF, refused.
	form := url.Values{"tenant": {"acme"}, "name": {"ops hook"}, "type": {"dingtalk"}, "url": {hookURL}, "secret": {hookSecret},
		"language": {"en"}, "rate_per_hour": {"60"}, "enabled": {"yes"}}
	if resp, _ := post(t, root, f.srv.URL+"/notifications/channels", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("without CSRF: %s", resp.Status)
	}
	form.Set("csrf", csrf)
	resp, body := post(t, root, f.srv.URL+"/notifications/channels", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/notifications?done=channel-saved" {
		t.Fatalf("create channel: %s %.300s", resp.Status, body)
	}
	chs, _ := f.notes.Channels(context.Background(), "acme")
	if len(chs) != 1 || f.notes.secrets[chs[0].ID] != hookSecret || f.notes.urls[chs[0].ID] != hookURL {
		t.Fatalf("channel not saved: %+v", chs)
	}
	id := chs[0].ID
	// A route through the form, with kinds from the multi-select.
	resp, body = post(t, root, f.srv.URL+"/notifications/routes", url.Values{"csrf": {csrf}, "name": {"urgent"}, "channel": {id},
		"kinds": {"tamper", "incident"}, "urgent_only": {"yes"}, "regions": {"north, Chengdu South"}, "quiet_start": {"22:00"}, "quiet_end": {"07:00"},
		"time_zone": {"Asia/Shanghai"}, "digest_at": {"09:00"}, "resolved": {"yes"}, "enabled": {"yes"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create route: %s %.300s", resp.Status, body)
	}
	routes, _ := f.notes.Routes(context.Background(), "acme")
	if len(routes) != 1 || routes[0].Tenant != "acme" || len(routes[0].Kinds) != 2 || strings.Join(routes[0].Regions, "|") != "north|Chengdu South" || routes[0].Digest || routes[0].DigestAt != "" {
		t.Fatalf("route: %+v", routes)
	}
	f.notes.recent = []posfleet.Notification{{ID: "n-1", Tenant: "acme", Channel: id, Event: posfleet.NotifyRaised, State: posfleet.NotificationFailed,
		Attempts: 3, LastError: "receiver said 500", Created: f.now, Due: f.now, Alarm: f.alarms.get("a-tamper")}}

	page, ids := f.page(t, root, "/notifications?done=channel-saved", 200)
	noSecrets(t, "notifications page", []byte(page))
	for _, want := range []string{`data-channel-id="` + id + `"`, `data-route-id="` + routes[0].ID + `"`, `data-notification-id="n-1"`,
		`id="channel-new"`, `id="route-new"`, `id="channel-edit-` + id + `"`, `action="/notifications/channels/` + id + `/test"`,
		`<option value="tamper" selected>`, `value="Asia/Shanghai"`, "receiver said 500", "https://hooks.example.com/…"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if one(t, ids, "notice") != "Channel saved." || len(ids["nav-notifications"]) != 1 {
		t.Errorf("notice %v", ids["notice"])
	}
	// The URL and secret inputs are never filled.
	if strings.Contains(page, `name="url" value=`) || strings.Contains(page, `name="secret" value=`) {
		t.Error("a URL or secret field is prefilled")
	}
	// Edit without url and secret keeps them.
	resp, _ = post(t, root, f.srv.URL+"/notifications/channels/"+id, url.Values{"csrf": {csrf}, "name": {"ops robot"}, "type": {"dingtalk"},
		"language": {"zh-CN"}, "rate_per_hour": {"20"}, "url": {""}, "secret": {""}})
	if resp.StatusCode != http.StatusSeeOther || f.notes.secrets[id] != hookSecret || f.notes.urls[id] != hookURL {
		t.Errorf("edit: %s; secrets kept: %v", resp.Status, f.notes.secrets[id] == hookSecret)
	}
	if ch, _ := f.notes.Channel(context.Background(), id); ch.Name != "ops robot" || ch.Enabled || ch.RatePerHour != 20 {
		t.Errorf("edited: %+v", ch)
	}
	// A refused form shows why, keeping what was typed (never the secret).
	resp, body = post(t, root, f.srv.URL+"/notifications/channels", url.Values{"csrf": {csrf}, "tenant": {"acme"}, "name": {"bad one"},
		"type": {"webhook"}, "url": {"ftp://nope"}, "secret": {"new-secret-2"}, "rate_per_hour": {"60"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(one(t, testIDs(t, body), "notify-error"), "https:// URL") || !strings.Contains(body, `value="bad one"`) {
		t.Errorf("refused: %s", resp.Status)
	}
	noSecrets(t, "refused form", []byte(body))
	// Send test: the failure shows without the URL's token.
	f.notes.testErr = fmt.Errorf("post %s: 400 errcode 310000 sign not match", hookURL)
	resp, body = post(t, root, f.srv.URL+"/notifications/channels/"+id+"/test", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(one(t, testIDs(t, body), "test-result"), "sign not match") {
		t.Errorf("failed test: %s", resp.Status)
	}
	noSecrets(t, "failed test page", []byte(body))
	f.notes.testErr = nil
	if resp, _ := post(t, root, f.srv.URL+"/notifications/channels/"+id+"/test", url.Values{"csrf": {csrf}}); resp.Header.Get("Location") != "/notifications?done=test-sent" {
		t.Errorf("test: %s", resp.Status)
	}
	// Lists in one field split at commas, semicolons and new lines, not
	// at spaces.
	resp, body = post(t, root, f.srv.URL+"/notifications/channels", url.Values{"csrf": {csrf}, "tenant": {"acme"}, "name": {"night desk"},
		"type": {"email"}, "to": {"Ops Desk <ops@acme.example>; night@acme.example"}, "language": {"zh-CN"}, "rate_per_hour": {"10"}, "enabled": {"yes"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("e-mail channel: %s %.300s", resp.Status, body)
	}
	chs, _ = f.notes.Channels(context.Background(), "acme")
	if len(chs) != 2 || strings.Join(chs[1].To, ",") != "ops@acme.example,night@acme.example" {
		t.Errorf("recipients: %+v", chs)
	}
	// Delete needs the confirmation box; a channel in use is refused.
	if resp, _ := post(t, root, f.srv.URL+"/notifications/channels/"+id+"/delete", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("delete without confirmation: %s", resp.Status)
	}
	if resp, _ := post(t, root, f.srv.URL+"/notifications/channels/"+id+"/delete", url.Values{"csrf": {csrf}, "confirm": {"yes"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("delete a channel in use: %s", resp.Status)
	}

	// A tenant's user reads its own tenant's, cannot change anything.
	acme, acmeCSRF := f.session(t, "ops-acme")
	page, ids = f.page(t, acme, "/notifications", 200)
	noSecrets(t, "tenant's notifications page", []byte(page))
	if !strings.Contains(page, `data-channel-id="`+id+`"`) || strings.Contains(page, "<form method=\"post\" action=\"/notifications") || len(ids["nav-notifications"]) != 0 {
		t.Error("a tenant's user's page")
	}
	if resp, _ := post(t, acme, f.srv.URL+"/notifications/channels/"+id+"/delete", url.Values{"csrf": {acmeCSRF}, "confirm": {"yes"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a tenant's user deletes: %s", resp.Status)
	}
	other, _ := f.session(t, "ops-other")
	if page, _ := f.page(t, other, "/notifications", 200); strings.Contains(page, id) {
		t.Error("another tenant's user sees the channel")
	}
	// Delete the route, then the channel.
	if resp, _ := post(t, root, f.srv.URL+"/notifications/routes/"+routes[0].ID+"/delete", url.Values{"csrf": {csrf}, "confirm": {"yes"}}); resp.Header.Get("Location") != "/notifications?done=route-deleted" {
		t.Errorf("delete route: %s", resp.Status)
	}
	if resp, _ := post(t, root, f.srv.URL+"/notifications/channels/"+id+"/delete", url.Values{"csrf": {csrf}, "confirm": {"yes"}}); resp.Header.Get("Location") != "/notifications?done=channel-deleted" {
		t.Errorf("delete channel: %s", resp.Status)
	}
}

// TestAlarmsJSONShape: the alarm and notification endpoints answer as the
// others do: lower-case keys, no null (empty lists are []).
func TestAlarmsJSONShape(t *testing.T) {
	f := newAlarmFixture(t)
	f.notes.addChannel(posfleet.NotifyChannel{ID: "ch-a", Tenant: "acme", Name: "hook", Type: posfleet.NotifyWebhook, Enabled: true})
	f.notes.routes["r-a"] = &posfleet.NotifyRoute{ID: "r-a", Tenant: "acme", Name: "all", Channel: "ch-a"}
	f.notes.recent = []posfleet.Notification{{ID: "n-1", Tenant: "acme", Channel: "ch-a", Event: posfleet.NotifyTest, State: posfleet.NotificationPending}}
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/alarms", ""},
		{"GET", "/api/v1/alarms?kind=battery", ""},
		{"GET", "/api/v1/alarms/a-incident", ""},
		{"GET", "/api/v1/alarms/a-tamper", ""},
		{"POST", "/api/v1/alarms/a-tamper/comment", `{"text":"x"}`},
		{"POST", "/api/v1/alarms/bulk", `{"ids":["a-tamper"],"action":"acknowledge"}`},
		{"GET", "/api/v1/channels", ""},
		{"GET", "/api/v1/routes", ""},
		{"GET", "/api/v1/notifications", ""},
		{"GET", "/api/v1/alarms/nope", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			_, b := f.call(t, "admin", tc.method, tc.path, tc.body)
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			walkJSON(t, "$", v)
		})
	}
}
