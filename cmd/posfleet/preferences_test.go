package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestServePreferences: on `posfleet serve` with either database, a
// tenant administrator who chooses Chinese and Asia/Shanghai reads the
// next pages in Chinese with times in UTC+8; a bad time zone is refused
// and saves nothing; the tenant's defaults reach a user who chose
// nothing; the sign-in page follows the browser; each change is in the
// database's audit log.
func TestServePreferences(t *testing.T) {
	influx := influxtest.Start(t)
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			cfg := testConfig(t.TempDir(), influx)
			cfg.DatabaseURL = storetest.URL(t, d)
			srv := startServer(t, cfg)
			ctx := context.Background()
			for _, u := range []posfleet.User{{Name: "boss", Tenant: "acme", Role: posfleet.RoleTenantAdmin}, {Name: "wang", Tenant: "acme"}} {
				if err := srv.Users().NewUser(ctx, u, "correct horse battery"); err != nil {
					t.Fatal(err)
				}
			}
			admin, err := srv.Users().CreateToken(ctx, "admin", auth.AllTenants)
			if err != nil {
				t.Fatal(err)
			}
			base := "http://" + srv.HTTPAddr().String()
			csrfRE := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
			get := func(c *http.Client, path, acceptLanguage string) (int, string) {
				t.Helper()
				req, _ := http.NewRequest("GET", base+path, nil)
				if acceptLanguage != "" {
					req.Header.Set("Accept-Language", acceptLanguage)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			postForm := func(c *http.Client, path string, form url.Values) (int, string) {
				t.Helper()
				_, page := get(c, "/account", "")
				m := csrfRE.FindStringSubmatch(page)
				if m == nil {
					t.Fatal("no CSRF token on /account")
				}
				form.Set("csrf", m[1])
				resp, err := c.PostForm(base+path, form)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}

			// The sign-in page follows the browser's language.
			if _, page := get(http.DefaultClient, "/login", "zh-CN,zh;q=0.9"); !strings.Contains(page, `<html lang="zh-CN"`) || !strings.Contains(page, "登录") {
				t.Errorf("sign-in page with Accept-Language zh-CN: %.300s", page)
			}
			if _, page := get(http.DefaultClient, "/login", "en-US"); !strings.Contains(page, `<html lang="en"`) || !strings.Contains(page, "Sign in") {
				t.Errorf("sign-in page with Accept-Language en-US: %.300s", page)
			}

			boss := signInWeb(t, base, "boss", "correct horse battery")
			if code, page := postForm(boss, "/account", url.Values{"language": {"zh-CN"}, "time_zone": {"Asia/Shanghai"}}); code != 200 ||
				!strings.Contains(page, `<html lang="zh-CN"`) || !strings.Contains(page, "已保存") {
				t.Fatalf("after choosing Chinese: %d %.300s", code, page)
			}
			if code, page := get(boss, "/admin", ""); code != 200 || !strings.Contains(page, "用户和 API 令牌") || !strings.Contains(page, " UTC+8</td>") {
				t.Errorf("users page: %d, not in Chinese or not in UTC+8", code)
			}
			if code, page := get(boss, "/audit", ""); code != 200 || !strings.Contains(page, "审计日志") || !strings.Contains(page, " UTC+8</td>") || strings.Contains(page, "Times are UTC") {
				t.Errorf("audit page: %d, not in Chinese or not in UTC+8", code)
			}
			code, page := postForm(boss, "/account", url.Values{"language": {"en"}, "time_zone": {"Asia/Atlantis"}})
			if code != http.StatusBadRequest || !strings.Contains(page, "时区“Asia/Atlantis”无效") {
				t.Errorf("a bad time zone: %d %.300s", code, page)
			}
			if u, err := srv.Users().User(ctx, "boss"); err != nil || u.Language != "zh-CN" || u.TimeZone != "Asia/Shanghai" {
				t.Errorf("after a refused change: %+v %v", u, err)
			}

			// The tenant's defaults reach wang, who chose nothing, whatever
			// its browser's language.
			if code, _ := postForm(boss, "/account/tenant", url.Values{"language": {"zh-CN"}, "time_zone": {"Asia/Shanghai"}}); code != 200 {
				t.Fatalf("tenant defaults: %d", code)
			}
			wang := signInWeb(t, base, "wang", "correct horse battery")
			if _, page := get(wang, "/account", "en-US"); !strings.Contains(page, `<html lang="zh-CN"`) || !strings.Contains(page, "Asia/Shanghai") {
				t.Errorf("wang does not get its tenant's defaults: %.300s", page)
			}

			// The audit log holds each change, with what was asked.
			for _, c := range []struct {
				action   string
				outcomes []string
			}{
				{"preferences_change", []string{"bad_request", "ok"}},
				{"tenant_defaults_change", []string{"ok"}},
			} {
				code, b := apiCall(t, srv, admin, "GET", "/api/v1/audit?action="+c.action, "")
				var got struct{ Entries []posfleet.AuditEntry }
				if code != 200 || json.Unmarshal(b, &got) != nil {
					t.Fatalf("GET /api/v1/audit: %d %s", code, b)
				}
				var outcomes []string
				for _, e := range got.Entries {
					if e.Actor != "boss" || e.Tenant != "acme" || !strings.Contains(e.Detail, `"language"`) {
						t.Errorf("%s entry: %+v", c.action, e)
					}
					outcomes = append(outcomes, e.Outcome)
				}
				if strings.Join(outcomes, ",") != strings.Join(c.outcomes, ",") {
					t.Errorf("%s entries: outcomes %v, want %v (newest first)", c.action, outcomes, c.outcomes)
				}
			}
		})
	}
}
