package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestValidPreferences: a language is "" or one posfleet speaks, a time
// zone "" or an IANA name; anything else is refused with a code naming
// the field.
func TestValidPreferences(t *testing.T) {
	for _, c := range []struct {
		lang, zone, code string
	}{
		{"", "", ""},
		{"en", "UTC", ""},
		{"zh-CN", "Asia/Shanghai", ""},
		{"", "America/Sao_Paulo", ""},
		{"zh-CN", "", ""},
		{"fr", "", "bad_language"},
		{"zh", "", "bad_language"},
		{"ZH-cn", "", "bad_language"},
		{"en", "Mars/Olympus_Mons", "bad_time_zone"},
		{"en", "Local", "bad_time_zone"},
		{"en", "UTC+8", "bad_time_zone"},
		{"en", "../../etc/passwd", "bad_time_zone"},
		{"en", "Asia/" + strings.Repeat("x", 80), "bad_time_zone"},
	} {
		err := auth.ValidPreferences(c.lang, c.zone)
		if code(err) != c.code || (c.code == "") != (err == nil) {
			t.Errorf("ValidPreferences(%q, %q) = %v, want code %q", c.lang, c.zone, err, c.code)
		}
		if err != nil && posfleet.ErrorKind(err) != posfleet.Invalid {
			t.Errorf("ValidPreferences(%q, %q): kind %v, want Invalid", c.lang, c.zone, posfleet.ErrorKind(err))
		}
	}
	err := auth.ValidPreferences("en", "Nowhere/Town")
	if err == nil || !strings.Contains(err.Error(), "time zone") || !strings.Contains(err.Error(), "Nowhere/Town") {
		t.Errorf("the error does not name the field and the value: %v", err)
	}
}

// TestPreferences: a user's language and time zone are kept, listed and
// cleared; a bad one changes nothing; a session's principal carries the
// user's choice, else its tenant's default.
func TestPreferences(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := newStore(t, db, auth.Options{})
		ctx := context.Background()
		const pw = "correct horse battery"
		for _, u := range []struct{ name, tenant string }{{"wang", "acme"}, {"li", "acme"}, {"root", auth.AllTenants}} {
			if err := s.AddUser(ctx, u.name, u.tenant, pw); err != nil {
				t.Fatal(err)
			}
		}
		user := func(name string) posfleet.User {
			t.Helper()
			u, err := s.User(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		if u := user("wang"); u.Language != "" || u.TimeZone != "" {
			t.Errorf("a new user chose %q %q", u.Language, u.TimeZone)
		}
		if err := s.SetPreferences(ctx, "wang", "zh-CN", "Asia/Shanghai"); err != nil {
			t.Fatal(err)
		}
		if u := user("wang"); u.Language != "zh-CN" || u.TimeZone != "Asia/Shanghai" {
			t.Errorf("after SetPreferences: %q %q", u.Language, u.TimeZone)
		}
		// A bad value is refused, and the other value is not saved either.
		for _, c := range []struct{ lang, zone, code string }{
			{"en", "Asia/Nowhere", "bad_time_zone"},
			{"klingon", "UTC", "bad_language"},
		} {
			if err := s.SetPreferences(ctx, "wang", c.lang, c.zone); code(err) != c.code {
				t.Errorf("SetPreferences(%q, %q) = %v, want %s", c.lang, c.zone, err, c.code)
			}
		}
		if u := user("wang"); u.Language != "zh-CN" || u.TimeZone != "Asia/Shanghai" {
			t.Errorf("a refused change was saved: %q %q", u.Language, u.TimeZone)
		}
		if err := s.SetPreferences(ctx, "nobody", "en", "UTC"); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("SetPreferences of nobody: %v", err)
		}
		users, err := s.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			want := ""
			if u.Name == "wang" {
				want = "zh-CN"
			}
			if u.Language != want {
				t.Errorf("Users: %s's language %q, want %q", u.Name, u.Language, want)
			}
		}

		// The tenant's defaults: none at first, then set, then changed.
		ts, err := s.TenantDefaults(ctx, "acme")
		if err != nil || ts != (auth.TenantSettings{Tenant: "acme"}) {
			t.Fatalf("TenantDefaults before any: %+v, %v", ts, err)
		}
		if err := s.SetTenantDefaults(ctx, auth.TenantSettings{Tenant: "acme", Language: "zh-CN", TimeZone: "Asia/Shanghai"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetTenantDefaults(ctx, auth.TenantSettings{Tenant: "acme", Language: "en", TimeZone: "Asia/Singapore"}); err != nil {
			t.Fatal(err)
		}
		if ts, err := s.TenantDefaults(ctx, "acme"); err != nil || ts != (auth.TenantSettings{Tenant: "acme", Language: "en", TimeZone: "Asia/Singapore"}) {
			t.Errorf("TenantDefaults after two sets: %+v, %v", ts, err)
		}
		for _, c := range []struct {
			ts   auth.TenantSettings
			code string
		}{
			{auth.TenantSettings{Tenant: "", Language: "en"}, "bad_tenant"},
			{auth.TenantSettings{Tenant: auth.AllTenants, Language: "en"}, "bad_tenant"},
			{auth.TenantSettings{Tenant: "acme", Language: "de"}, "bad_language"},
			{auth.TenantSettings{Tenant: "acme", TimeZone: "Beijing"}, "bad_time_zone"},
		} {
			if err := s.SetTenantDefaults(ctx, c.ts); code(err) != c.code {
				t.Errorf("SetTenantDefaults(%+v) = %v, want %s", c.ts, err, c.code)
			}
		}
		if ts, _ := s.TenantDefaults(ctx, "acme"); ts.Language != "en" || ts.TimeZone != "Asia/Singapore" {
			t.Errorf("a refused default was saved: %+v", ts)
		}
		if ts, err := s.TenantDefaults(ctx, "other"); err != nil || ts.Language != "" || ts.TimeZone != "" {
			t.Errorf("another tenant's defaults: %+v, %v", ts, err)
		}

		// A session carries the user's own choice, field by field, else
		// the tenant's default; an administrator has no tenant's default.
		session := func(name string) auth.Principal {
			t.Helper()
			p, err := s.SignIn(ctx, name, pw)
			if err != nil {
				t.Fatal(err)
			}
			p, err = s.Session(ctx, name, p.Epoch, "sess-"+name)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		if p := session("wang"); p.Language != "zh-CN" || p.TimeZone != "Asia/Shanghai" {
			t.Errorf("wang's session: %q %q, want its own choice", p.Language, p.TimeZone)
		}
		if p := session("li"); p.Language != "en" || p.TimeZone != "Asia/Singapore" {
			t.Errorf("li's session: %q %q, want the tenant's defaults", p.Language, p.TimeZone)
		}
		if err := s.SetPreferences(ctx, "li", "", "Europe/London"); err != nil {
			t.Fatal(err)
		}
		if p := session("li"); p.Language != "en" || p.TimeZone != "Europe/London" {
			t.Errorf("li's session with a zone of its own: %q %q", p.Language, p.TimeZone)
		}
		if err := s.SetPreferences(ctx, "wang", "", ""); err != nil {
			t.Fatal(err)
		}
		if p := session("wang"); p.Language != "en" || p.TimeZone != "Asia/Singapore" {
			t.Errorf("wang, its choice cleared: %q %q, want the tenant's", p.Language, p.TimeZone)
		}
		if p := session("root"); p.Language != "" || p.TimeZone != "" {
			t.Errorf("the administrator's session: %q %q, want none", p.Language, p.TimeZone)
		}
	})
}
