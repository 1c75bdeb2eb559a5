package admin_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/admin"
	"github.com/posfleet/posfleet/web/pages/layout"
)

// TestPage: users with the actions their state allows (none that would
// lock the signed-in administrator out), tokens without secrets, and a
// new token's secret only when one was just made.
func TestPage(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	v := admin.View{
		Frame: layout.Page{User: "root", Tenant: "*", CSRF: "csrf-token", Perms: layout.Perms{Act: true, Visit: true, Manage: true}},
		Users: []posfleet.User{
			{Name: "root", Tenant: "*", Created: at},
			{Name: "ops acme/1", Tenant: "acme", Created: at, Disabled: true},
		},
		Tokens: []posfleet.APIToken{{ID: "0123456789abcdef", Name: "grafana", Description: "NOC wall", Tenant: "acme", Created: at}},
	}
	render := func(v admin.View) string {
		var b bytes.Buffer
		if err := admin.Page(v).Render(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	page := render(v)
	for _, tc := range []struct {
		testid string
		n      int
	}{
		{"user-row", 2}, {"user-enable", 1}, {"user-disable", 0}, {"user-delete", 1},
		{"user-set-password", 2}, {"token-row", 1}, {"token-revoke", 1}, {"token-secret", 0}, {"nav-admin", 1},
	} {
		t.Run(tc.testid, func(t *testing.T) {
			if n := strings.Count(page, `data-testid="`+tc.testid+`"`); n != tc.n {
				t.Errorf("%d elements %s, want %d", n, tc.testid, tc.n)
			}
		})
	}
	if !strings.Contains(page, `action="/admin/users/ops%20acme%2F1/enable"`) {
		t.Error("a user's name is not escaped in its form's address")
	}
	if strings.Count(page, `name="csrf" value="csrf-token"`) < 7 {
		t.Error("a form lacks the CSRF token")
	}
	v.NewSecret, v.NewToken = "pft_0123456789abcdef_secret", v.Tokens[0]
	if page := render(v); strings.Count(page, `data-testid="token-secret"`) != 1 || !strings.Contains(page, "pft_0123456789abcdef_secret") {
		t.Error("the new token's secret is not shown")
	}
}

// TestPageInChinese: the page in Chinese, each user's language and zone
// listed, a form to set them, role names in Chinese with their codes as
// the values sent.
func TestPageInChinese(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	v := admin.View{
		Frame: layout.Page{User: "boss", Tenant: "acme", CSRF: "csrf-token", Perms: layout.Perms{Manage: true}},
		Users: []posfleet.User{
			{Name: "boss", Tenant: "acme", Created: at, Role: posfleet.RoleTenantAdmin, Language: "zh-CN", TimeZone: "Asia/Shanghai"},
			{Name: "wang", Tenant: "acme", Created: at, Role: posfleet.RoleCrew, Regions: []string{"chengdu", "mianyang"}},
		},
		Preferences: true, Zones: []string{"Asia/Shanghai", "UTC"},
	}
	ctx := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	var b bytes.Buffer
	if err := admin.Page(v).Render(ctx, &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"用户和 API 令牌", "租户管理员", "外勤人员（chengdu, mianyang）", "简体中文", "跟随浏览器", "租户默认",
		"2026-03-02 17:30:00 UTC+8", `action="/admin/users/wang/preferences"`, `<option value="crew" selected>外勤人员</option>`, "还没有 API 令牌。"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(page, `data-testid="user-set-preferences"`); n != 2 {
		t.Errorf("%d preference forms, want 2", n)
	}
	if m := locale.Missing(); len(m) > 0 {
		t.Errorf("untranslated: %v", m)
	}
}
