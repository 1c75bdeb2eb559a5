package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/web"
)

// TestAdminPage: an administrator adds a user, disables, enables, resets
// and deletes it, creates a token (its secret shown once, working at once)
// and revokes it, all from the page; mistakes are shown on the page with
// their status; a tenant's user neither sees the page nor its link.
func TestAdminPage(t *testing.T) {
	var users *auth.Store
	f := newUIFixture(t, func(o *web.Options) { users = o.Users.(*auth.Store) })
	acme, acmeCSRF := f.session(t, "ops-acme")
	root, csrf := f.session(t, "root")
	ctx := context.Background()

	_, ids := f.page(t, acme, "/", 200)
	if len(ids["nav-admin"]) != 0 {
		t.Error("a tenant's user sees the administrators' link")
	}
	f.page(t, acme, "/admin", 403)
	if resp, _ := post(t, acme, f.srv.URL+"/admin/users", url.Values{"csrf": {acmeCSRF}, "name": {"mallory"}, "tenant": {"*"}, "password": {"correct horse battery"}}); resp.StatusCode != 403 || users.UserExists(ctx, "mallory") {
		t.Errorf("a tenant's user adds an administrator: %s", resp.Status)
	}
	_, ids = f.page(t, root, "/", 200)
	if one(t, ids, "nav-admin") != "Users & tokens" {
		t.Errorf("nav: %v", ids["nav-admin"])
	}
	_, ids = f.page(t, root, "/admin", 200)
	if len(ids["user-row"]) != 3 || len(ids["tokens-empty"]) != 1 || len(ids["user-create"]) != 1 || len(ids["token-create"]) != 1 {
		t.Errorf("admin page: %v", ids)
	}
	// root cannot lock itself out from here.
	if n := strings.Count(strings.Join(ids["user-delete"], "|"), "Delete"); n != 2 {
		t.Errorf("%d delete buttons, want 2 (not root's own)", n)
	}

	form := func(kv ...string) url.Values {
		v := url.Values{"csrf": {csrf}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	redirects := func(path string, v url.Values, want string) {
		t.Helper()
		resp, body := post(t, root, f.srv.URL+path, v)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Fatalf("POST %s: %s to %q: %.300s", path, resp.Status, resp.Header.Get("Location"), body)
		}
		if _, ids := f.page(t, root, want, 200); len(ids["notice"]) != 1 {
			t.Errorf("no notice after POST %s", path)
		}
	}
	refused := func(path string, v url.Values, status int, want string) {
		t.Helper()
		resp, body := post(t, root, f.srv.URL+path, v)
		if resp.StatusCode != status {
			t.Fatalf("POST %s: %s, want %d", path, resp.Status, status)
		}
		if msg := one(t, testIDs(t, body), "admin-error"); !strings.Contains(msg, want) {
			t.Errorf("POST %s: %q, want %q", path, msg, want)
		}
	}

	redirects("/admin/users", form("name", "crew-7", "tenant", "acme", "password", "correct horse battery"), "/admin?done=user-added")
	refused("/admin/users", form("name", "crew-7", "tenant", "acme", "password", "correct horse battery"), 409, "already exists")
	refused("/admin/users", form("name", "crew-8", "tenant", "acme", "password", "short"), 400, "password")
	refused("/admin/users", form("name", "crew 8", "tenant", "acme", "password", "correct horse battery"), 400, "Name")
	refused("/admin/users", form("name", "crew-8", "tenant", "", "password", "correct horse battery"), 400, "tenant")
	refused("/admin/users/root/disable", form(), 409, "signed in as")
	if resp, _ := post(t, root, f.srv.URL+"/admin/users", url.Values{"name": {"x"}, "tenant": {"acme"}, "password": {"correct horse battery"}}); resp.StatusCode != 403 {
		t.Errorf("a form without its CSRF token: %s", resp.Status)
	}
	if _, err := users.SignIn(ctx, "crew-7", "correct horse battery"); err != nil {
		t.Fatalf("the new user cannot sign in: %v", err)
	}
	redirects("/admin/users/crew-7/disable", form(), "/admin?done=user-disable")
	if _, err := users.SignIn(ctx, "crew-7", "correct horse battery"); err == nil {
		t.Error("a disabled user signs in")
	}
	_, ids = f.page(t, root, "/admin", 200)
	if !strings.Contains(strings.Join(ids["user-state"], " "), "disabled") || len(ids["user-enable"]) != 1 {
		t.Errorf("the disabled user on the page: %v %v", ids["user-state"], ids["user-enable"])
	}
	redirects("/admin/users/crew-7/enable", form(), "/admin?done=user-enable")
	redirects("/admin/users/crew-7/password", form("password", "a brand new password"), "/admin?done=user-password")
	refused("/admin/users/crew-7/password", form("password", "short"), 400, "password")
	if _, err := users.SignIn(ctx, "crew-7", "a brand new password"); err != nil {
		t.Errorf("the new password: %v", err)
	}
	redirects("/admin/users/crew-7/delete", form(), "/admin?done=user-delete")
	refused("/admin/users/crew-7/delete", form(), 404, "No such user")

	// A token: the secret is on the answer to the form, once.
	refused("/admin/tokens", form("name", "", "tenant", "acme"), 400, "Name")
	resp, body := post(t, root, f.srv.URL+"/admin/tokens", form("name", "grafana", "description", "the NOC's wall", "tenant", "acme"))
	ids = testIDs(t, body)
	secret := one(t, ids, "token-secret")
	if resp.StatusCode != 200 || !strings.HasPrefix(secret, "pft_") || len(ids["token-row"]) != 1 {
		t.Fatalf("token created: %s %v", resp.Status, ids)
	}
	p, err := users.VerifyToken(ctx, secret)
	if err != nil || p.Tenant != "acme" || p.Name != "grafana" {
		t.Fatalf("the page's token: %+v %v", p, err)
	}
	page, ids := f.page(t, root, "/admin", 200)
	if strings.Contains(page, secret) || len(ids["token-secret"]) != 0 || !strings.Contains(one(t, ids, "token-row"), "the NOC's wall") {
		t.Errorf("the secret is shown again, or the token is not listed: %v", ids["token-row"])
	}
	id := strings.Split(secret, "_")[1]
	redirects("/admin/tokens/"+id+"/revoke", form(), "/admin?done=token-revoked")
	if _, err := users.VerifyToken(ctx, secret); err == nil {
		t.Error("a token revoked on the page still works")
	}
	refused("/admin/tokens/"+id+"/revoke", form(), 404, "No such token")
}
