package web_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/web"
)

// The user store keeps languages and time zones for the web side.
var _ web.Preferences = (*auth.Store)(nil)

// accountFixture is a server on a real user store (SQLite) with an audit
// log in memory: wang and li are acme's operators, boss its tenant
// administrator, root the administrator; script is acme's token.
type accountFixture struct {
	srv    *httptest.Server
	users  *auth.Store
	audit  *memAudit
	script string
}

func newAccountFixture(t *testing.T) *accountFixture {
	t.Helper()
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	ctx := context.Background()
	for _, u := range []posfleet.User{
		{Name: "wang", Tenant: "acme"},
		{Name: "li", Tenant: "acme"},
		{Name: "boss", Tenant: "acme", Role: posfleet.RoleTenantAdmin},
		{Name: "root", Tenant: auth.AllTenants},
	} {
		if err := users.NewUser(ctx, u, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := users.CreateToken(ctx, "script", "acme")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := users.SessionKey()
	a := &memAudit{}
	h, err := web.New(web.Options{Users: users, SessionKey: key, Audit: a})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &accountFixture{srv: srv, users: users, audit: a, script: tok}
}

// session signs user in (its browser sends no Accept-Language) and
// returns the browser and the forms' CSRF token.
func (f *accountFixture) session(t *testing.T, user string) (*http.Client, string) {
	t.Helper()
	c := browser(t)
	resp, _ := postLogin(t, f.srv.URL, c, url.Values{"name": {user}, "password": {"correct horse battery"}, "next": {"/account"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in %s: %s", user, resp.Status)
	}
	f.audit.take() // the sign-in's entry
	resp, page := get(t, c, f.srv.URL+"/account")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("account page: %s", resp.Status)
	}
	return c, attr(t, page, "csrf")
}

func (f *accountFixture) page(t *testing.T, c *http.Client, path string, status int) (string, map[string][]string) {
	t.Helper()
	resp, body := get(t, c, f.srv.URL+path)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %s, want %d: %.300s", path, resp.Status, status, body)
	}
	return body, testIDs(t, body)
}

// post sends a page's form and checks the status (and, for a redirect,
// where to).
func (f *accountFixture) post(t *testing.T, c *http.Client, csrf, path string, form url.Values, status int, location string) string {
	t.Helper()
	form.Set("csrf", csrf)
	resp, body := post(t, c, f.srv.URL+path, form)
	if resp.StatusCode != status || resp.Header.Get("Location") != location {
		t.Fatalf("POST %s: %s to %q, want %d to %q: %.300s", path, resp.Status, resp.Header.Get("Location"), status, location, body)
	}
	return body
}

func (f *accountFixture) user(t *testing.T, name string) posfleet.User {
	t.Helper()
	u, err := f.users.User(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func htmlLang(page string) string {
	_, rest, ok := strings.Cut(page, `<html lang="`)
	if !ok {
		return ""
	}
	lang, _, _ := strings.Cut(rest, `"`)
	return lang
}

// TestSignInPageFollowsTheBrowser: before anyone is known, the sign-in
// page and its errors are in the browser's language.
func TestSignInPageFollowsTheBrowser(t *testing.T) {
	f := newAccountFixture(t)
	for _, c := range []struct {
		accept, lang, title, wrong string
	}{
		{"", "en", "Sign in", "Wrong user name or password."},
		{"en-GB,en;q=0.9", "en", "Sign in", "Wrong user name or password."},
		{"zh-CN,zh;q=0.9,en;q=0.8", "zh-CN", "登录", "用户名或密码错误。"},
		{"zh-Hans", "zh-CN", "登录", "用户名或密码错误。"},
		{"fr-FR, zh-CN;q=0.7", "zh-CN", "登录", "用户名或密码错误。"},
	} {
		t.Run(c.accept, func(t *testing.T) {
			br := browser(t)
			req, _ := http.NewRequest("GET", f.srv.URL+"/login", nil)
			req.Header.Set("Accept-Language", c.accept)
			resp, err := br.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			page := string(b)
			if got := htmlLang(page); got != c.lang {
				t.Errorf("html lang %q, want %q", got, c.lang)
			}
			if h := testIDs(t, page)["signin-submit"]; len(h) != 1 || h[0] != c.title {
				t.Errorf("sign-in button %q, want %q", h, c.title)
			}
			form := url.Values{"name": {"wang"}, "password": {"not the password"}, "csrf": {attr(t, page, "csrf")}}
			req, _ = http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept-Language", c.accept)
			resp, err = br.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong password: %s", resp.Status)
			}
			if e := testIDs(t, string(b))["signin-error"]; len(e) != 1 || e[0] != c.wrong {
				t.Errorf("error %q, want %q", e, c.wrong)
			}
		})
	}
}

// TestAccountPreferences: a person who chooses Chinese and Asia/Shanghai
// reads the next page in Chinese with times in UTC+8; a bad time zone is
// refused with the field named and saves nothing; each change is audited.
func TestAccountPreferences(t *testing.T) {
	f := newAccountFixture(t)
	c, csrf := f.session(t, "boss")
	page, _ := f.page(t, c, "/account", 200)
	if htmlLang(page) != "en" || !strings.Contains(page, "Language and time zone") {
		t.Fatalf("before any choice the page is not in English: %.300s", page)
	}

	f.post(t, c, csrf, "/account", url.Values{"language": {"zh-CN"}, "time_zone": {"Asia/Shanghai"}}, http.StatusSeeOther, "/account?saved=1")
	if u := f.user(t, "boss"); u.Language != "zh-CN" || u.TimeZone != "Asia/Shanghai" {
		t.Fatalf("saved %q %q", u.Language, u.TimeZone)
	}
	e := f.audit.only(t, "preferences")
	if e.Action != "preferences_change" || e.Actor != "boss" || e.Outcome != posfleet.AuditOK ||
		!strings.Contains(e.Detail, `"language":"zh-CN"`) || !strings.Contains(e.Detail, `"time_zone":"Asia/Shanghai"`) {
		t.Errorf("audit entry: %+v", e)
	}
	f.audit.set(e) // for the audit page

	page, ids := f.page(t, c, "/account?saved=1", 200)
	if htmlLang(page) != "zh-CN" || one(t, ids, "account-saved") != "已保存。" || !strings.Contains(one(t, ids, "account-effective"), "Asia/Shanghai") {
		t.Errorf("the next page is not in Chinese: lang %q, %v", htmlLang(page), ids["account-effective"])
	}
	// The audit log: its entry's time in UTC+8, its words in Chinese.
	page, ids = f.page(t, c, "/audit", 200)
	if htmlLang(page) != "zh-CN" || !strings.Contains(page, "审计日志") || strings.Contains(page, "Times are UTC") {
		t.Errorf("audit page not in Chinese")
	}
	if got := ids["audit-action"]; len(got) != 1 || got[0] != "preferences_change" {
		t.Fatalf("audit entries %v", got)
	}
	if !strings.Contains(page, " UTC+8</td>") {
		t.Errorf("audit times are not in UTC+8")
	}
	// The users page: each user's language and zone, the times in UTC+8.
	page, ids = f.page(t, c, "/admin", 200)
	if !strings.Contains(page, "用户和 API 令牌") || !strings.Contains(page, " UTC+8</td>") {
		t.Errorf("users page not in Chinese or not in UTC+8")
	}
	if got := strings.Join(ids["user-language"], ","); got != "简体中文,跟随浏览器,跟随浏览器" {
		t.Errorf("languages listed: %s", got)
	}
	body := f.post(t, c, csrf, "/admin/users", url.Values{"name": {"wang"}, "tenant": {"acme"}, "password": {"correct horse battery"}}, http.StatusConflict, "")
	if msg := one(t, testIDs(t, body), "admin-error"); msg != "用户 wang 已存在。" {
		t.Errorf("refusal on the users page: %q", msg)
	}
	body = f.post(t, c, csrf, "/admin/users", url.Values{"name": {"zhao"}, "tenant": {"other"}, "password": {"correct horse battery"}}, http.StatusForbidden, "")
	if msg := one(t, testIDs(t, body), "admin-error"); !strings.Contains(msg, "租户管理员只能管理本租户") {
		t.Errorf("refusal on the users page: %q", msg)
	}
	f.audit.take()

	f.audit.take()
	// A bad time zone: 400, the field named, nothing saved (not even the
	// language given with it).
	body = f.post(t, c, csrf, "/account", url.Values{"language": {"en"}, "time_zone": {"Asia/Atlantis"}}, http.StatusBadRequest, "")
	ids = testIDs(t, body)
	if msg := one(t, ids, "account-error"); !strings.Contains(msg, "时区") || !strings.Contains(msg, "Asia/Atlantis") {
		t.Errorf("error %q does not name the field", msg)
	}
	if u := f.user(t, "boss"); u.Language != "zh-CN" || u.TimeZone != "Asia/Shanghai" {
		t.Errorf("a refused change was saved: %q %q", u.Language, u.TimeZone)
	}
	if e := f.audit.only(t, "refused preferences"); e.Action != "preferences_change" || e.Outcome == posfleet.AuditOK {
		t.Errorf("refused change audited as %+v", e)
	}
	body = f.post(t, c, csrf, "/account", url.Values{"language": {"tlh"}}, http.StatusBadRequest, "")
	if msg := one(t, testIDs(t, body), "account-error"); !strings.Contains(msg, "语言") || !strings.Contains(msg, "tlh") {
		t.Errorf("error %q does not name the field", msg)
	}
	f.audit.take()

	// Back to the browser's language and the tenant's zone.
	f.post(t, c, csrf, "/account", url.Values{"language": {""}, "time_zone": {""}}, http.StatusSeeOther, "/account?saved=1")
	if page, _ := f.page(t, c, "/account", 200); htmlLang(page) != "en" {
		t.Errorf("choice cleared, page in %q", htmlLang(page))
	}
}

// TestPreferencesAPI: a person reads and sets its language and zone
// through the API; a token, which has none, gets a clear error.
func TestPreferencesAPI(t *testing.T) {
	f := newAccountFixture(t)
	c, csrf := f.session(t, "wang")
	call := func(method, path, body, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		} else {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var got struct {
		Language string `json:"language"`
		TimeZone string `json:"time_zone"`
	}
	code, body := call("GET", "/api/v1/me/preferences", "", "")
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil || got.Language != "" || got.TimeZone != "" {
		t.Fatalf("GET before any choice: %d %s", code, body)
	}
	code, body = call("PUT", "/api/v1/me/preferences", `{"language":"zh-CN","time_zone":"Asia/Shanghai"}`, "")
	if code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if e := f.audit.only(t, "PUT preferences"); e.Action != "preferences_change" || e.Actor != "wang" || e.Outcome != posfleet.AuditOK {
		t.Errorf("audit entry: %+v", e)
	}
	code, body = call("GET", "/api/v1/me/preferences", "", "")
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil || got.Language != "zh-CN" || got.TimeZone != "Asia/Shanghai" {
		t.Errorf("GET after PUT: %d %s", code, body)
	}
	if page, _ := f.page(t, c, "/account", 200); htmlLang(page) != "zh-CN" {
		t.Errorf("after PUT the page is in %q", htmlLang(page))
	}
	for _, tc := range []struct{ body, code string }{
		{`{"language":"en","time_zone":"Europe/Atlantis"}`, "bad_time_zone"},
		{`{"language":"fr","time_zone":"UTC"}`, "bad_language"},
	} {
		if code, body := call("PUT", "/api/v1/me/preferences", tc.body, ""); code != 400 || !strings.Contains(body, tc.code) {
			t.Errorf("PUT %s: %d %s, want 400 %s", tc.body, code, body, tc.code)
		}
	}
	if u := f.user(t, "wang"); u.Language != "zh-CN" || u.TimeZone != "Asia/Shanghai" {
		t.Errorf("a refused PUT was saved: %q %q", u.Language, u.TimeZone)
	}
	f.audit.take()
	for _, method := range []string{"GET", "PUT"} {
		code, body := call(method, "/api/v1/me/preferences", `{"language":"en"}`, f.script)
		if code != 400 || !strings.Contains(body, "token_has_no_preferences") || !strings.Contains(body, "UTC and minor units") {
			t.Errorf("%s with a token: %d %s", method, code, body)
		}
	}
}

// TestTenantDefaults: a tenant administrator's defaults apply to its
// users who chose nothing, before their browser's language; a user's own
// choice wins; an operator may not set them.
func TestTenantDefaults(t *testing.T) {
	f := newAccountFixture(t)
	boss, bcsrf := f.session(t, "boss")
	wang, wcsrf := f.session(t, "wang")
	li, _ := f.session(t, "li")
	if err := f.users.SetPreferences(context.Background(), "li", "en", "Europe/London"); err != nil {
		t.Fatal(err)
	}

	f.post(t, wang, wcsrf, "/account/tenant", url.Values{"language": {"zh-CN"}, "time_zone": {"Asia/Shanghai"}}, http.StatusForbidden, "")
	f.audit.take()
	// A tenant administrator sets its own tenant's defaults, not another's.
	f.post(t, boss, bcsrf, "/account/tenant", url.Values{"language": {"zh-CN"}, "tenant": {"other"}}, http.StatusForbidden, "")
	if e := f.audit.only(t, "another tenant's defaults"); e.Tenant != "other" || e.Outcome != "forbidden" {
		t.Errorf("audit entry: %+v", e)
	}
	if ts, _ := f.users.TenantDefaults(context.Background(), "other"); ts.Language != "" {
		t.Errorf("a tenant administrator set another tenant's defaults: %+v", ts)
	}
	f.post(t, boss, bcsrf, "/account/tenant", url.Values{"language": {"zh-CN"}, "time_zone": {"Asia/Shanghai"}}, http.StatusSeeOther, "/account?saved=tenant")
	e := f.audit.only(t, "tenant defaults")
	if e.Action != "tenant_defaults_change" || e.Actor != "boss" || e.Tenant != "acme" || e.Outcome != posfleet.AuditOK || !strings.Contains(e.Detail, `"language":"zh-CN"`) {
		t.Errorf("audit entry: %+v", e)
	}

	// wang chose nothing: Chinese in UTC+8, even with an English browser.
	req, _ := http.NewRequest("GET", f.srv.URL+"/account", nil)
	req.Header.Set("Accept-Language", "en-US")
	resp, err := wang.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if htmlLang(page) != "zh-CN" || !strings.Contains(one(t, testIDs(t, page), "account-effective"), "Asia/Shanghai") {
		t.Errorf("the tenant's defaults do not apply: lang %q", htmlLang(page))
	}
	// li chose English and London: its choice wins.
	if page, _ := f.page(t, li, "/account", 200); htmlLang(page) != "en" || !strings.Contains(page, "Europe/London") {
		t.Errorf("li's own choice lost to the tenant's: lang %q", htmlLang(page))
	}
	// A bad default is refused with the field named.
	body := f.post(t, boss, bcsrf, "/account/tenant", url.Values{"language": {"zh-CN"}, "time_zone": {"Beijing"}}, http.StatusBadRequest, "")
	if msg := one(t, testIDs(t, body), "account-error"); !strings.Contains(msg, "Beijing") {
		t.Errorf("error %q", msg)
	}
	if ts, _ := f.users.TenantDefaults(context.Background(), "acme"); ts.TimeZone != "Asia/Shanghai" {
		t.Errorf("a refused default was saved: %+v", ts)
	}
}

// TestAdminSetsPreferences: the users page lists each user's language
// and zone, and an administrator or the tenant's administrator sets them.
func TestAdminSetsPreferences(t *testing.T) {
	f := newAccountFixture(t)
	c, csrf := f.session(t, "boss")
	_, ids := f.page(t, c, "/admin", 200)
	if got := strings.Join(ids["user-zone"], ","); got != "the tenant's,the tenant's,the tenant's" {
		t.Errorf("zones listed: %s", got)
	}
	if len(ids["user-set-preferences"]) != 3 {
		t.Errorf("%d preference forms, want one per user of acme", len(ids["user-set-preferences"]))
	}
	f.post(t, c, csrf, "/admin/users/wang/preferences", url.Values{"language": {"zh-CN"}, "time_zone": {"Asia/Shanghai"}}, http.StatusSeeOther, "/admin?done=user-preferences")
	if u := f.user(t, "wang"); u.Language != "zh-CN" || u.TimeZone != "Asia/Shanghai" {
		t.Errorf("saved %q %q", u.Language, u.TimeZone)
	}
	e := f.audit.only(t, "user preferences")
	if e.Action != "user_preferences" || e.Target != "wang" || e.Outcome != posfleet.AuditOK || !strings.Contains(e.Detail, `"time_zone":"Asia/Shanghai"`) {
		t.Errorf("audit entry: %+v", e)
	}
	_, ids = f.page(t, c, "/admin?done=user-preferences", 200)
	if !strings.Contains(one(t, ids, "notice"), "Language and time zone set") {
		t.Errorf("notice %v", ids["notice"])
	}
	row := -1
	for i, u := range []string{"boss", "li", "wang"} {
		if u == "wang" {
			row = i
		}
	}
	if ids["user-language"][row] != "简体中文" || ids["user-zone"][row] != "Asia/Shanghai" {
		t.Errorf("wang listed as %q %q", ids["user-language"][row], ids["user-zone"][row])
	}
	// Its own row too: a tenant administrator sets its own.
	f.post(t, c, csrf, "/admin/users/boss/preferences", url.Values{"language": {"en"}, "time_zone": {"Asia/Singapore"}}, http.StatusSeeOther, "/admin?done=user-preferences")
	f.audit.take()
	body := f.post(t, c, csrf, "/admin/users/wang/preferences", url.Values{"language": {"en"}, "time_zone": {"Moon/Base"}}, http.StatusBadRequest, "")
	if msg := one(t, testIDs(t, body), "admin-error"); !strings.Contains(msg, "Time zone") || !strings.Contains(msg, "Moon/Base") {
		t.Errorf("error %q", msg)
	}
	if u := f.user(t, "wang"); u.Language != "zh-CN" {
		t.Errorf("a refused change was saved: %q %q", u.Language, u.TimeZone)
	}
	// Another tenant's user is no user of a tenant administrator's.
	f.post(t, c, csrf, "/admin/users/root/preferences", url.Values{"language": {"en"}}, http.StatusNotFound, "")
	if u := f.user(t, "root"); u.Language != "" {
		t.Errorf("boss set root's language")
	}
	// An operator does not reach the page.
	w, wcsrf := f.session(t, "wang")
	f.post(t, w, wcsrf, "/admin/users/li/preferences", url.Values{"language": {"en"}}, http.StatusForbidden, "")
}

// filterAudit is an audit log in memory that keeps the last filter read.
type filterAudit struct {
	*memAudit
	last posfleet.AuditFilter
}

func (a *filterAudit) AuditLog(ctx context.Context, f posfleet.AuditFilter) ([]posfleet.AuditEntry, int, error) {
	a.last = f
	return a.memAudit.AuditLog(ctx, f)
}

// TestAuditInReadersZone: the audit page shows times in the reader's
// zone and reads its date filters as the reader's days; the API's stay
// UTC; the CSV export's header follows the language while its times stay
// RFC 3339 UTC.
func TestAuditInReadersZone(t *testing.T) {
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer users.Close()
	ctx := context.Background()
	if err := users.AddUser(ctx, "root", auth.AllTenants, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	if err := users.SetPreferences(ctx, "root", "zh-CN", "Asia/Shanghai"); err != nil {
		t.Fatal(err)
	}
	admin, _ := users.CreateToken(ctx, "admin", auth.AllTenants)
	key, _ := users.SessionKey()
	a := &filterAudit{memAudit: &memAudit{}}
	h, err := web.New(web.Options{Users: users, SessionKey: key, Audit: a})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := browser(t)
	if resp, _ := postLogin(t, srv.URL, c, url.Values{"name": {"root"}, "password": {"correct horse battery"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %s", resp.Status)
	}
	at := time.Date(2026, 3, 2, 1, 30, 0, 0, time.UTC) // 09:30 in Shanghai
	a.set(posfleet.AuditEntry{At: at, Actor: "王芳", ActorKind: posfleet.ActorUser, Tenant: "acme", Action: "command", Target: "acme:T-1", Outcome: "ok", ID: "1"})

	_, page := get(t, c, srv.URL+"/audit?from=2026-03-02&to=2026-03-02")
	if !strings.Contains(page, "2026-03-02 09:30:00 UTC+8") || !strings.Contains(page, "第 1–1 条，共 1 条") {
		t.Errorf("audit page: %.2000s", page)
	}
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	if !a.last.From.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, shanghai)) || !a.last.To.Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, shanghai)) {
		t.Errorf("the page's dates are not the reader's days: %v – %v", a.last.From, a.last.To)
	}

	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/audit?from=2026-03-02", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Accept-Language", "zh-CN")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"2026-03-02T01:30:00Z"`) {
		t.Errorf("API: %s %s", resp.Status, b)
	}
	if !a.last.From.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("the API's date is not UTC's day: %v", a.last.From)
	}

	resp, csvText := get(t, c, srv.URL+"/audit.csv")
	if resp.StatusCode != 200 || !strings.HasPrefix(csvText, "\uFEFF") {
		t.Fatalf("CSV: %s", resp.Status)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(csvText, "\uFEFF"))).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("CSV rows %q, %v", rows, err)
	}
	if rows[0][0] != "时间（UTC）" || rows[0][1] != "操作人" || rows[1][0] != "2026-03-02T01:30:00Z" || rows[1][1] != "王芳" || rows[1][4] != "command" {
		t.Errorf("CSV: %q", rows)
	}
	if _, page := get(t, c, srv.URL+"/audit?from=yesterday"); !strings.Contains(page, "起始日期") {
		t.Errorf("a bad date is not refused in Chinese: %.300s", page)
	}
}

// TestUserPreferencesAPI: an administrator or the tenant's administrator
// sets a user's language and zone through the API; another tenant's user
// is not found; a bad zone is refused; each call is audited.
func TestUserPreferencesAPI(t *testing.T) {
	f := newAccountFixture(t)
	root, err := f.users.CreateToken(context.Background(), "root-script", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	boss, csrf := f.session(t, "boss")
	call := func(token, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("PUT", f.srv.URL+path, strings.NewReader(body))
		c := http.DefaultClient
		if token == "boss" { // the tenant administrator's session
			c = boss
			req.Header.Set("X-CSRF-Token", csrf)
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name, token, path, body string
		status                  int
		want, outcome           string
	}{
		{"tenant administrator", "boss", "/api/v1/users/wang/preferences", `{"language":"zh-CN","time_zone":"Asia/Shanghai"}`, 200, `"time_zone": "Asia/Shanghai"`, "ok"},
		{"administrator", root, "/api/v1/users/li/preferences", `{"language":"en","time_zone":"Europe/London"}`, 200, `"language": "en"`, "ok"},
		{"bad zone", root, "/api/v1/users/li/preferences", `{"language":"en","time_zone":"Europe/Atlantis"}`, 400, "bad_time_zone", "bad_request"},
		{"another tenant's user", "boss", "/api/v1/users/root/preferences", `{"language":"en"}`, 404, "no such user", "not_found"},
		{"nobody", root, "/api/v1/users/nobody/preferences", `{"language":"en"}`, 404, "no such user", "not_found"},
		{"an operator's token", f.script, "/api/v1/users/wang/preferences", `{"language":"en"}`, 403, "may not manage users", "forbidden"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := call(c.token, c.path, c.body)
			if code != c.status || !strings.Contains(body, c.want) {
				t.Errorf("PUT %s: %d %s, want %d %s", c.path, code, body, c.status, c.want)
			}
			if e := f.audit.only(t, c.name); e.Action != "user_preferences" || e.Outcome != c.outcome {
				t.Errorf("audit entry: %+v", e)
			}
		})
	}
	if u := f.user(t, "wang"); u.Language != "zh-CN" || u.TimeZone != "Asia/Shanghai" {
		t.Errorf("wang: %q %q", u.Language, u.TimeZone)
	}
	if u := f.user(t, "li"); u.Language != "en" || u.TimeZone != "Europe/London" {
		t.Errorf("li: %q %q (a refused change saved?)", u.Language, u.TimeZone)
	}
	if u := f.user(t, "root"); u.Language != "" {
		t.Errorf("acme's administrator set root's language")
	}
}
