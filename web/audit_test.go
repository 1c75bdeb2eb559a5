package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

// memAudit is an audit log in memory (the journal's is tested on both
// databases in package journal).
type memAudit struct {
	mu      sync.Mutex
	entries []posfleet.AuditEntry // oldest first
	fail    bool
}

func (m *memAudit) AppendAudit(_ context.Context, e posfleet.AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("disk full")
	}
	m.entries = append(m.entries, e)
	return nil
}

func (m *memAudit) AuditLog(_ context.Context, f posfleet.AuditFilter) ([]posfleet.AuditEntry, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []posfleet.AuditEntry
	for _, e := range slices.Backward(m.entries) {
		if (f.Tenant == "" || e.Tenant == f.Tenant) && (f.Actor == "" || e.Actor == f.Actor) && (f.Action == "" || e.Action == f.Action) {
			out = append(out, e)
		}
	}
	total := len(out)
	out = out[min(f.Offset, len(out)):]
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, total, nil
}

// set replaces the entries.
func (m *memAudit) set(es ...posfleet.AuditEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = es
}

// take returns the entries written since the last take.
func (m *memAudit) take() []posfleet.AuditEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.entries
	m.entries = nil
	return out
}

// only returns the one entry written since the last take.
func (m *memAudit) only(t *testing.T, what string) posfleet.AuditEntry {
	t.Helper()
	es := m.take()
	if len(es) != 1 {
		t.Fatalf("%s: %d audit entries, want 1: %+v", what, len(es), es)
	}
	return es[0]
}

func withAudit(a *memAudit) func(*web.Options) { return func(o *web.Options) { o.Audit = a } }

// TestAuditAPIRequests: each mutating API request of a principal is
// recorded once, with its action, actor, tenant, target, detail and
// outcome; reads are not; secrets never reach the detail.
func TestAuditAPIRequests(t *testing.T) {
	a := &memAudit{}
	f := newAPIFixture(t, withAudit(a), func(o *web.Options) {
		o.SavePolicy = func(ctx context.Context, _ []byte, _ string) error { web.NoteAudit(ctx, "version", 7); return nil }
	})
	f.seed(t)
	for _, c := range []struct {
		name, token, method, path, body string
		status                          int
		want                            posfleet.AuditEntry // ID, At, Remote, Detail not compared
		detail                          []string            // in the detail
		never                           []string            // not in the detail
	}{
		{"command", f.acme, "POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"reboot"}`, 202,
			posfleet.AuditEntry{Actor: "acme-script", ActorKind: "token", Tenant: "acme", Action: "command", Target: "acme:T-1", Outcome: "ok"},
			[]string{`"type":"reboot"`}, nil},
		{"command of another tenant", f.acme, "POST", "/api/v1/terminals/other/T-1/commands", `{"type":"reboot"}`, 404,
			posfleet.AuditEntry{Actor: "acme-script", ActorKind: "token", Tenant: "other", Action: "command", Target: "other:T-1", Outcome: "not_found"},
			nil, nil},
		{"policy refused", f.acme, "PUT", "/api/v1/policy", policy, 403,
			posfleet.AuditEntry{Actor: "acme-script", ActorKind: "token", Tenant: "acme", Action: "policy_change", Outcome: "forbidden"},
			nil, []string{"version"}},
		{"policy", f.admin, "PUT", "/api/v1/policy", policy, 200,
			posfleet.AuditEntry{Actor: "admin", ActorKind: "token", Action: "policy_change", Outcome: "ok"},
			[]string{`"version":7`}, []string{"A920"}},
		{"visit", f.acme, "POST", "/api/v1/terminals/acme/T-1/serviced", `{"note":"王府井店：换了打印纸"}`, 200,
			posfleet.AuditEntry{Actor: "acme-script", ActorKind: "token", Tenant: "acme", Action: "visit", Target: "acme:T-1", Outcome: "ok"},
			[]string{`"note":"王府井店：换了打印纸"`}, nil},
		{"user", f.admin, "POST", "/api/v1/users", `{"name":"crew-li","tenant":"acme","password":"a long secret phrase"}`, 201,
			posfleet.AuditEntry{Actor: "admin", ActorKind: "token", Tenant: "acme", Action: "user_create", Target: "crew-li", Outcome: "ok"},
			[]string{`"name":"crew-li"`, `"tenant":"acme"`}, []string{"secret phrase", "password"}},
		{"user password", f.admin, "POST", "/api/v1/users/crew-li/password", `{"password":"another long phrase"}`, 200,
			posfleet.AuditEntry{Actor: "admin", ActorKind: "token", Action: "user_password", Target: "crew-li", Outcome: "ok"},
			nil, []string{"another long phrase"}},
		{"token", f.admin, "POST", "/api/v1/tokens", `{"name":"erp","tenant":"acme","description":"ERP sync"}`, 201,
			posfleet.AuditEntry{Actor: "admin", ActorKind: "token", Tenant: "acme", Action: "token_create", Target: "erp", Outcome: "ok"},
			[]string{`"description":"ERP sync"`}, nil},
		{"token refused", f.acme, "POST", "/api/v1/tokens", `{"name":"mine","tenant":"acme"}`, 403,
			posfleet.AuditEntry{Actor: "acme-script", ActorKind: "token", Tenant: "acme", Action: "token_create", Target: "mine", Outcome: "forbidden"},
			nil, nil},
		{"token revoke", f.admin, "DELETE", "/api/v1/tokens/nope", ``, 404,
			posfleet.AuditEntry{Actor: "admin", ActorKind: "token", Action: "token_revoke", Target: "nope", Outcome: "not_found"},
			nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, b := f.call(t, c.token, c.method, c.path, c.body)
			if code != c.status {
				t.Fatalf("%s %s: %d %s", c.method, c.path, code, b)
			}
			e := a.only(t, c.name)
			got := e
			got.ID, got.Remote, got.Detail = "", "", ""
			want := c.want
			want.At = got.At
			if got != want {
				t.Errorf("entry\n got %+v\nwant %+v", got, want)
			}
			if e.Remote != "127.0.0.1" || e.At.IsZero() {
				t.Errorf("remote %q, at %v", e.Remote, e.At)
			}
			if e.Detail != "" && !json.Valid([]byte(e.Detail)) {
				t.Errorf("detail is not JSON: %s", e.Detail)
			}
			for _, s := range c.detail {
				if !strings.Contains(e.Detail, s) {
					t.Errorf("detail %s lacks %s", e.Detail, s)
				}
			}
			for _, s := range c.never {
				if strings.Contains(e.Detail, s) {
					t.Errorf("detail %s holds %s", e.Detail, s)
				}
			}
		})
	}
	// The token's secret is nowhere in the log.
	code, b := f.call(t, f.admin, "POST", "/api/v1/tokens", `{"name":"erp2","tenant":"acme"}`)
	var made web.NewTokenResponse
	if code != 201 || json.Unmarshal(b, &made) != nil || made.Secret == "" {
		t.Fatalf("token: %d %s", code, b)
	}
	if e := a.only(t, "second token"); strings.Contains(e.Detail+e.Target, made.Secret) {
		t.Errorf("the secret is in the entry: %+v", e)
	}
	// Reads are not recorded; nor are requests without a principal.
	f.call(t, f.acme, "GET", "/api/v1/terminals", "")
	f.call(t, "not-a-token", "POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"reboot"}`)
	if es := a.take(); len(es) != 0 {
		t.Errorf("reads and strangers recorded: %+v", es)
	}
	// A failed write leaves the answer as it was.
	a.mu.Lock()
	a.fail = true
	a.mu.Unlock()
	if code, _ := f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"reboot"}`); code != 202 {
		t.Errorf("with the audit log failing, a command answers %d", code)
	}
}

// TestAuditAlarmsSignInAndPages: an alarm acknowledged, a sign-in, a
// failed one and a sign-out are recorded; an administrator reads the log
// on /audit, /api/v1/audit and /audit.csv (UTF-8 with a BOM, parsed back
// with encoding/csv); a tenant's user is refused all three.
func TestAuditAlarmsSignInAndPages(t *testing.T) {
	a := &memAudit{}
	f := newAlarmFixture(t, withAudit(a))

	if code, b := f.call(t, "acme", "POST", "/api/v1/alarms/a-tamper/acknowledge", ""); code != 200 {
		t.Fatalf("acknowledge: %d %s", code, b)
	}
	e := a.only(t, "acknowledge")
	if e.Action != "alarm_acknowledge" || e.Actor != "acme-script" || e.Tenant != "acme" || e.Target != "a-tamper" || e.Outcome != "ok" {
		t.Errorf("acknowledge: %+v", e)
	}

	// An administrator's: the alarm names the tenant.
	if code, b := f.call(t, "admin", "POST", "/api/v1/alarms/o-tamper/acknowledge", ""); code != 200 {
		t.Fatalf("acknowledge: %d %s", code, b)
	}
	if e := a.only(t, "admin's acknowledge"); e.Tenant != "other" || e.Actor != "admin-script" {
		t.Errorf("admin's acknowledge: %+v", e)
	}

	c := browser(t)
	if resp, _ := postLogin(t, f.srv.URL, c, url.Values{"name": {"ops-acme"}, "password": {"wrong guess"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %s", resp.Status)
	}
	e = a.only(t, "failed sign-in")
	if e.Action != "sign_in_failed" || e.Actor != "ops-acme" || e.Outcome != "unauthorized" || e.Remote != "127.0.0.1" || strings.Contains(e.Detail, "wrong guess") {
		t.Errorf("failed sign-in: %+v", e)
	}
	ops, csrf := f.session(t, "ops-acme")
	e = a.only(t, "sign-in")
	if e.Action != "sign_in" || e.Actor != "ops-acme" || e.Tenant != "acme" || e.Outcome != "ok" {
		t.Errorf("sign-in: %+v", e)
	}
	// A form: the page's alarm action, with the note the user typed.
	resp, _ := post(t, ops, f.srv.URL+"/alarms/a-offline/comment", url.Values{"csrf": {csrf}, "text": {"商户 王府井店 关门了"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("comment form: %s", resp.Status)
	}
	e = a.only(t, "comment form")
	if e.Action != "alarm_comment" || e.ActorKind != "user" || e.Target != "a-offline" || !strings.Contains(e.Detail, "王府井店") || strings.Contains(e.Detail, csrf) {
		t.Errorf("comment form: %+v", e)
	}
	for _, p := range []string{"/audit", "/audit.csv"} {
		if resp, _ := get(t, ops, f.srv.URL+p); resp.StatusCode != http.StatusForbidden {
			t.Errorf("tenant user GET %s: %s", p, resp.Status)
		}
	}
	if code, _ := f.call(t, "acme", "GET", "/api/v1/audit", ""); code != http.StatusForbidden {
		t.Errorf("tenant token GET /api/v1/audit: %d", code)
	}
	if resp, _ := post(t, ops, f.srv.URL+"/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %s", resp.Status)
	}
	if e := a.only(t, "sign-out"); e.Action != "sign_out" || e.Actor != "ops-acme" {
		t.Errorf("sign-out: %+v", e)
	}

	// Entries for the administrator to read.
	root, _ := f.session(t, "root")
	a.set(
		posfleet.AuditEntry{ID: "1", Actor: "ops-acme", ActorKind: "user", Tenant: "acme", Action: "visit", Target: "acme:T-1", Detail: `{"note":"商户 王府井店"}`, Remote: "10.0.0.1", Outcome: "ok"},
		posfleet.AuditEntry{ID: "2", Actor: "=cmd()", ActorKind: "user", Action: "sign_in_failed", Target: "=cmd()", Remote: "10.0.0.2", Outcome: "unauthorized"},
	)
	_, ids := f.page(t, root, "/audit", http.StatusOK)
	if len(ids["audit-entry"]) != 2 || ids["audit-action"][0] != "sign_in_failed" {
		t.Errorf("audit page: %v", ids)
	}
	_, ids = f.page(t, root, "/audit?action=visit", http.StatusOK)
	if len(ids["audit-entry"]) != 1 || len(ids["nav-audit"]) != 1 {
		t.Errorf("filtered audit page: %v", ids)
	}
	code, b := f.call(t, "admin", "GET", "/api/v1/audit?tenant=acme&limit=10", "")
	var got struct {
		Entries []posfleet.AuditEntry
		Total   int
	}
	if code != 200 || json.Unmarshal(b, &got) != nil || got.Total != 1 || got.Entries[0].ID != "1" {
		t.Errorf("GET /api/v1/audit: %d %s", code, b)
	}
	if code, _ := f.call(t, "admin", "GET", "/api/v1/audit?from=yesterday", ""); code != 400 {
		t.Errorf("bad from: %d", code)
	}

	resp, body := get(t, root, f.srv.URL+"/audit.csv")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	// Python's csv module with encoding utf-8-sig: the BOM goes, the rest
	// is RFC 4180.
	raw, ok := bytes.CutPrefix([]byte(body), []byte("\xEF\xBB\xBF"))
	if !ok {
		t.Fatal("CSV without a BOM")
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("CSV: %d rows, %v", len(rows), err)
	}
	if rows[0][0] != "time_utc" || rows[2][1] != "ops-acme" || rows[2][6] != `{"note":"商户 王府井店"}` {
		t.Errorf("CSV rows: %q", rows)
	}
	if rows[1][1] != "'=cmd()" {
		t.Errorf("a formula-like actor is not neutralised: %q", rows[1][1])
	}
	if es := a.take(); len(es) != 2 {
		t.Errorf("reading the log wrote to it: %+v", es)
	}
}

// TestAuditImport: an import is recorded with its size, never the file's
// contents nor the secrets of the answer.
func TestAuditImport(t *testing.T) {
	reg, err := registry.Open(context.Background(), storetest.SQLite(t), registry.Options{HashMemoryKiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer users.Close()
	acme, _ := users.CreateToken(context.Background(), "acme", "acme")
	key, _ := users.SessionKey()
	a := &memAudit{}
	h, err := web.New(web.Options{Users: users, SessionKey: key, Provisioner: reg, Audit: a})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := "tenant,terminal,model,merchant,site,region,lat,lon\nacme,T-1,A920,王府井店,S,north,31,121\nacme,T-2,A920,M,S,north,,\n"
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/terminals/import", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+acme)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("import: %s", resp.Status)
	}
	e := a.only(t, "import")
	if e.Action != "import" || e.Tenant != "acme" || e.Outcome != "ok" || e.Detail != fmt.Sprintf(`{"bytes":%d,"lines":3}`, len(body)) {
		t.Errorf("import: %+v", e)
	}
}
