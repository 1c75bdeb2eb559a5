package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

func TestAPIImport(t *testing.T) {
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
	ctx := context.Background()
	acme, _ := users.CreateToken(ctx, "acme", "acme")
	admin, _ := users.CreateToken(ctx, "admin", auth.AllTenants)
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key, Provisioner: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(token, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/terminals/import", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	const header = "tenant,terminal,model,merchant,site,region,lat,lon\n"
	code, m := post(acme, header+"acme,T-1,A920,M,S,north,31,121\nother,T-1,A920,M,S,north,31,121\n")
	if code != 403 || !strings.Contains(m["error"].(map[string]any)["message"].(string), "line 3") {
		t.Errorf("another tenant's row: %d %v", code, m)
	}
	code, m = post(acme, header+"acme,T-1,A920,M,S,north,31,121\nacme,T 2,A920,M,S,north,95,121\n")
	if code != 400 || len(m["error"].(map[string]any)["lines"].([]any)) < 2 {
		t.Errorf("bad lines: %d %v", code, m)
	}
	if n, _ := reg.Count(ctx); n != 0 {
		t.Fatalf("a refused file provisioned %d terminals", n)
	}
	code, m = post(acme, header+"acme,T-1,A920,M,S,north,31,121\nacme,T-2,A920,M,S,north,,\n")
	creds, _ := m["credentials"].([]any)
	if code != 200 || m["added"].(float64) != 2 || len(creds) != 2 {
		t.Fatalf("import: %d %v", code, m)
	}
	secret := creds[0].(map[string]any)["secret"].(string)
	if _, err := reg.Authenticate(ctx, "acme:T-1", []byte(secret)); err != nil {
		t.Errorf("the returned secret does not authenticate: %v", err)
	}
	// Re-import updates the site and keeps the secret.
	code, m = post(admin, header+"acme,T-1,A920,M,New site,south,31,121\n")
	if code != 200 || m["updated"].(float64) != 1 {
		t.Fatalf("re-import: %d %v", code, m)
	}
	if got, _ := reg.Get(ctx, posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}); got.Site != "New site" {
		t.Errorf("site = %q", got.Site)
	}
	if _, err := reg.Authenticate(ctx, "acme:T-1", []byte(secret)); err != nil {
		t.Errorf("secret lost by a re-import: %v", err)
	}
}
