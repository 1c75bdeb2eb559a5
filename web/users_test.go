package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

// The user store is what the server gives the web side to manage.
var _ web.UserAdmin = (*auth.Store)(nil)

// newUsers is a user store on a new SQLite database of the test's own.
func newUsers(t testing.TB, opts auth.Options) (*auth.Store, error) {
	t.Helper()
	return auth.New(context.Background(), storetest.SQLite(t), opts)
}

// TestUsersAndTokensAPI: administrators create users and tokens, set
// passwords and revoke tokens through the API, with a clear status and
// message for each mistake; others may not.
func TestUsersAndTokensAPI(t *testing.T) {
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	admin, _ := users.CreateToken(ctx, "admin", auth.AllTenants)
	acme, _ := users.CreateToken(ctx, "acme-script", "acme")
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	call := func(token, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	for _, tc := range []struct {
		name, token, method, path, body string
		status                          int
		want                            string
	}{
		{"create a user", admin, "POST", "/api/v1/users", `{"name":"alice","tenant":"acme","password":"correct horse battery"}`, 201, `"alice"`},
		{"create an admin", admin, "POST", "/api/v1/users", `{"name":"root","tenant":"*","password":"staple staple staple"}`, 201, `"*"`},
		{"duplicate name", admin, "POST", "/api/v1/users", `{"name":"alice","tenant":"acme","password":"another long one"}`, 409, `user \"alice\" already exists`},
		{"short password", admin, "POST", "/api/v1/users", `{"name":"bob","tenant":"acme","password":"short"}`, 400, `password: want at least 12`},
		{"no password", admin, "POST", "/api/v1/users", `{"name":"bob","tenant":"acme"}`, 400, `password`},
		{"no name", admin, "POST", "/api/v1/users", `{"tenant":"acme","password":"correct horse battery"}`, 400, `name`},
		{"bad tenant", admin, "POST", "/api/v1/users", `{"name":"bob","tenant":"a b","password":"correct horse battery"}`, 400, `tenant`},
		{"misspelt field", admin, "POST", "/api/v1/users", `{"name":"bob","tenant":"acme","Password":"correct horse battery"}`, 400, `case-sensitive`},
		{"not an admin", acme, "POST", "/api/v1/users", `{"name":"bob","tenant":"acme","password":"correct horse battery"}`, 403, `forbidden`},
		{"set a password", admin, "POST", "/api/v1/users/alice/password", `{"password":"a new long password"}`, 200, `"password_changed": true`},
		{"weak new password", admin, "POST", "/api/v1/users/alice/password", `{"password":"short"}`, 400, `password`},
		{"password of nobody", admin, "POST", "/api/v1/users/nobody/password", `{"password":"a new long password"}`, 404, `no such user`},
		{"password, not an admin", acme, "POST", "/api/v1/users/alice/password", `{"password":"a new long password"}`, 403, `forbidden`},
		{"tokens, not an admin", acme, "GET", "/api/v1/tokens", ``, 403, `forbidden`},
		{"token without a name", admin, "POST", "/api/v1/tokens", `{"tenant":"acme"}`, 400, `name`},
		{"token without a tenant", admin, "POST", "/api/v1/tokens", `{"name":"x"}`, 400, `tenant`},
		{"token, not an admin", acme, "POST", "/api/v1/tokens", `{"name":"x","tenant":"acme"}`, 403, `forbidden`},
		{"revoke nothing", admin, "DELETE", "/api/v1/tokens/0123456789abcdef", ``, 404, `no such token`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(tc.token, tc.method, tc.path, tc.body)
			if code != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, body, tc.status, tc.want)
			}
		})
	}
	if _, err := users.SignIn(ctx, "alice", "a new long password"); err != nil {
		t.Errorf("alice's new password: %v", err)
	}

	code, body := call(admin, "POST", "/api/v1/tokens", `{"name":"grafana","description":"the NOC's dashboards","tenant":"acme"}`)
	var made web.NewTokenResponse
	if code != 201 || json.Unmarshal([]byte(body), &made) != nil || !strings.HasPrefix(made.Secret, "pft_"+made.Token.ID+"_") ||
		made.Token.CreatedBy != "admin" || made.Token.Description != "the NOC's dashboards" {
		t.Fatalf("create token: %d %s", code, body)
	}
	if code, body := call(made.Secret, "GET", "/api/v1/me", ""); code != 200 || !strings.Contains(body, `"grafana"`) {
		t.Errorf("the new token: %d %s", code, body)
	}
	code, body = call(admin, "GET", "/api/v1/tokens", "")
	if code != 200 || !strings.Contains(body, made.Token.ID) || strings.Contains(body, made.Secret[len("pft_"+made.Token.ID+"_"):]) {
		t.Errorf("token list: %d %s", code, body)
	}
	if code, body := call(admin, "DELETE", "/api/v1/tokens/"+made.Token.ID, ""); code != 200 || !strings.Contains(body, `"revoked": true`) {
		t.Errorf("revoke: %d %s", code, body)
	}
	if code, _ := call(made.Secret, "GET", "/api/v1/me", ""); code != 401 {
		t.Errorf("a revoked token: %d", code)
	}
	if code, _ := call(admin, "DELETE", "/api/v1/tokens/"+made.Token.ID, ""); code != 404 {
		t.Errorf("revoking twice: %d", code)
	}
}
