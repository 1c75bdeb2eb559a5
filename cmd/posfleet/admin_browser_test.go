package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestBrowserAdminPage: an administrator signs in with a real browser,
// follows the navigation to the users and tokens page, adds a crew
// account (which can sign in at once), creates an API token whose secret
// the page shows once and the running server accepts at once, and
// revokes it, after which the server refuses it.
func TestBrowserAdminPage(t *testing.T) {
	bctx := browser(t)
	influx := influxtest.Start(t)
	srv := testServer(t, influx, 1)
	ctx := context.Background()
	if err := srv.Users().AddUser(ctx, "root", auth.AllTenants, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.HTTPAddr().String()
	byID := func(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(byID(id)))
		if err != nil {
			t.Fatalf("text of %s: %v", id, err)
		}
		return strings.TrimSpace(s)
	}
	waitAt := func(part string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if loc, err := chromedp.Run(bctx, chromedp.Location()); err == nil && strings.Contains(loc, part) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the browser never got to %s", part)
	}

	do("sign in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(byID("signin")),
		chromedp.SendKeys(byID("signin-name"), "root"),
		chromedp.SendKeys(byID("signin-password"), "correct horse battery"),
		chromedp.Click(byID("signin-submit")),
		chromedp.WaitVisible(byID("nav-admin")),
		chromedp.Click(byID("nav-admin")),
		chromedp.WaitVisible(byID("user-create")),
	)
	do("add a user",
		chromedp.SendKeys(byID("user-create-name"), "crew-7"),
		chromedp.SendKeys(byID("user-create-tenant"), "acme"),
		chromedp.SendKeys(byID("user-create-password"), "a long crew password"),
		chromedp.Click(byID("user-create-submit")),
	)
	waitAt("done=user-added")
	do("the notice", chromedp.WaitVisible(byID("notice")))
	if _, err := srv.Users().SignIn(ctx, "crew-7", "a long crew password"); err != nil {
		t.Errorf("the user added on the page cannot sign in: %v", err)
	}
	do("create a token",
		chromedp.SendKeys(byID("token-create-name"), "grafana"),
		chromedp.SendKeys(byID("token-create-description"), "the NOC's wall"),
		chromedp.SendKeys(byID("token-create-tenant"), "acme"),
		chromedp.Click(byID("token-create-submit")),
		chromedp.WaitVisible(byID("token-secret")),
	)
	secret := text("token-secret")
	if code, b := apiCall(t, srv, secret, "GET", "/api/v1/me", ""); code != http.StatusOK || !strings.Contains(string(b), `"grafana"`) {
		t.Fatalf("the page's token on the API: %d %s", code, b)
	}
	shoot(t, bctx, "admin")
	do("revoke it", chromedp.Click(byID("token-revoke")))
	waitAt("done=token-revoked")
	do("the notice", chromedp.WaitVisible(byID("tokens-empty")))
	if code, _ := apiCall(t, srv, secret, "GET", "/api/v1/me", ""); code != http.StatusUnauthorized {
		t.Errorf("a token revoked on the page: %d", code)
	}
}
