package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/influxdb"
	"github.com/posfleet/posfleet/web"
)

type nopWriter struct{}

func (nopWriter) WriteLines(context.Context, []byte) error { return nil }

type fixture struct {
	srv   *httptest.Server
	users *auth.Store
	col   *collector.Collector
	token string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	ctx := context.Background()
	if err := users.AddUser(ctx, "ops-acme", "acme", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	if err := users.AddUser(ctx, "root", auth.AllTenants, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	tok, err := users.CreateToken(ctx, "script", "acme")
	if err != nil {
		t.Fatal(err)
	}
	copts := collector.DefaultOptions()
	copts.SpoolDir = filepath.Join(dir, "spool")
	copts.IsKnown = func(posfleet.TerminalRef) bool { return true }
	col, err := collector.New(copts, influxdb.Encoder{}, nopWriter{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { col.Close() })
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key, Events: col})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, users: users, col: col, token: tok}
}

// browser is an HTTP client with a cookie jar that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// testIDs returns every data-testid in the page with the text under it.
func testIDs(t *testing.T, page string) map[string][]string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var text func(*html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if a.Key == "data-testid" {
					out[a.Val] = append(out[a.Val], strings.TrimSpace(text(n)))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

func attr(t *testing.T, page, name string) string {
	t.Helper()
	i := strings.Index(page, `name="`+name+`" value="`)
	if i < 0 {
		t.Fatalf("no field %s in page", name)
	}
	rest := page[i+len(`name="`+name+`" value="`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// postLogin signs in as a browser does: it loads the sign-in page (which
// sets the form's CSRF cookie) and posts the form with the token.
func postLogin(t *testing.T, base string, c *http.Client, form url.Values) (*http.Response, string) {
	t.Helper()
	_, page := get(t, c, base+"/login")
	form.Set("csrf", attr(t, page, "csrf"))
	return post(t, c, base+"/login", form)
}

func signIn(t *testing.T, f *fixture, c *http.Client, user string) string {
	t.Helper()
	resp, _ := postLogin(t, f.srv.URL, c, url.Values{"name": {user}, "password": {"correct horse battery"}, "next": {"/security"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/security" {
		t.Fatalf("sign in: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, page := get(t, c, f.srv.URL+"/security")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("security page: %s", resp.Status)
	}
	return page
}

func TestSignInFlow(t *testing.T) {
	f := newFixture(t)
	c := browser(t)
	resp, _ := get(t, c, f.srv.URL+"/security")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fsecurity" {
		t.Fatalf("unsigned: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, page := get(t, c, f.srv.URL+"/login?next=/security")
	ids := testIDs(t, page)
	if resp.StatusCode != 200 || len(ids["signin-name"]) != 1 || len(ids["signin-password"]) != 1 || len(ids["nav"]) != 0 {
		t.Fatalf("sign-in page: %s %v", resp.Status, ids)
	}
	resp, page = postLogin(t, f.srv.URL, c, url.Values{"name": {"ops-acme"}, "password": {"wrong password!!"}})
	if resp.StatusCode != http.StatusUnauthorized || len(testIDs(t, page)["signin-error"]) != 1 {
		t.Fatalf("wrong password: %s", resp.Status)
	}
	page = signIn(t, f, c, "ops-acme")
	ids = testIDs(t, page)
	if ids["user"][0] != "ops-acme" || ids["tenant"][0] != "tenant acme" || len(ids["security-events"]) != 1 {
		t.Errorf("security page: %v", ids)
	}
	for _, ck := range c.Jar.Cookies(mustURL(f.srv.URL)) {
		if ck.Name == "posfleet_session" && ck.Value == "" {
			t.Error("empty session cookie")
		}
	}
	// Sign out needs the session's CSRF token.
	resp, _ = post(t, c, f.srv.URL+"/logout", url.Values{})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF: %s", resp.Status)
	}
	resp, _ = post(t, c, f.srv.URL+"/logout", url.Values{"csrf": {attr(t, page, "csrf")}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	if resp, _ := get(t, c, f.srv.URL+"/security"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("still signed in after logout: %s", resp.Status)
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

func TestSessionCookieAttributes(t *testing.T) {
	f := newFixture(t)
	resp, _ := postLogin(t, f.srv.URL, browser(t), url.Values{"name": {"ops-acme"}, "password": {"correct horse battery"}})
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"posfleet_session=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %s", sc, want)
		}
	}
	// A tampered cookie is no session: another payload with the old
	// signature, or the last character of the signature changed.
	value := strings.SplitN(strings.TrimPrefix(sc, "posfleet_session="), ";", 2)[0]
	payload, sig, _ := strings.Cut(value, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for _, bad := range []string{flip(payload, 0) + "." + sig, payload + "." + flip(sig, len(sig)-1), payload + "." + sig[:len(sig)-1] + string(sig[len(sig)-1]^1)} {
		c := browser(t)
		c.Jar.SetCookies(mustURL(f.srv.URL), []*http.Cookie{{Name: "posfleet_session", Value: bad}})
		if resp, _ := get(t, c, f.srv.URL+"/security"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("tampered cookie %q accepted: %s", bad, resp.Status)
		}
	}
	// The untouched cookie works.
	c := browser(t)
	c.Jar.SetCookies(mustURL(f.srv.URL), []*http.Cookie{{Name: "posfleet_session", Value: value}})
	if resp, _ := get(t, c, f.srv.URL+"/security"); resp.StatusCode != http.StatusOK {
		t.Errorf("the real cookie: %s", resp.Status)
	}
}

func TestSignInRateLimited(t *testing.T) {
	f := newFixture(t)
	c := browser(t)
	var last *http.Response
	for range 7 {
		last, _ = postLogin(t, f.srv.URL, c, url.Values{"name": {"ops-acme"}, "password": {"guess guess guess"}})
	}
	if last.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("7th wrong attempt: %s, want 429", last.Status)
	}
	// Even the right password waits now: the limit is per user and address.
	if resp, _ := postLogin(t, f.srv.URL, c, url.Values{"name": {"ops-acme"}, "password": {"correct horse battery"}}); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password during the lock-out: %s", resp.Status)
	}
}

func TestOpenRedirectRefused(t *testing.T) {
	f := newFixture(t)
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "javascript:alert(1)"} {
		resp, _ := postLogin(t, f.srv.URL, browser(t), url.Values{"name": {"root"}, "password": {"correct horse battery"}, "next": {next}})
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Errorf("next=%q redirected to %q", next, loc)
		}
	}
}

func TestAPIAuthentication(t *testing.T) {
	f := newFixture(t)
	call := func(token, path string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, body := call("", "/api/v1/me"); code != 401 || body["error"].(map[string]any)["code"] != "unauthorized" {
		t.Errorf("no token: %d %v", code, body)
	}
	if code, _ := call("pft_0000_nope", "/api/v1/me"); code != 401 {
		t.Errorf("bad token: %d", code)
	}
	if code, body := call(f.token, "/api/v1/me"); code != 200 || body["tenant"] != "acme" || body["token"] != true {
		t.Errorf("good token: %d %v", code, body)
	}
	if code, body := call(f.token, "/api/v1/nothing"); code != 404 || body["error"].(map[string]any)["code"] != "not_found" {
		t.Errorf("unknown endpoint: %d %v", code, body)
	}
}

// TestSecurityPageShowsOnlyOwnTenant: a tenant's user sees its own
// terminals' events; an administrator sees all; payloads never appear, and
// what a client sent (a username) is escaped.
func TestSecurityPageShowsOnlyOwnTenant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	acme := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	other := posfleet.TerminalRef{Tenant: "other", Terminal: "T-9"}
	f.col.RecordSecurity(posfleet.SecurityEvent{Time: time.Now(), Kind: posfleet.SecurityAuthFailed, Terminal: acme, Username: `acme:T-1<script>alert(1)</script>`})
	f.col.RecordSecurity(posfleet.SecurityEvent{Time: time.Now(), Kind: posfleet.SecurityPublishDenied, Terminal: other, Username: "other:T-9", Topic: "fleet/v1/acme/T-1/hb"})
	f.col.Accept(ctx, acme, posfleet.ChannelHeartbeat, []byte(`{"seq":1,"ts":"2026-11-22T10:00:00Z","battery_pct":140}`))
	f.col.Accept(ctx, other, posfleet.ChannelTxn, []byte(`{"seq":1}`))

	page := signIn(t, f, browser(t), "ops-acme")
	ids := testIDs(t, page)
	if got := ids["security-row-kind"]; len(got) != 1 || got[0] != "auth_failed" {
		t.Errorf("acme sees security rows %v", got)
	}
	if got := ids["rejection-row-reason"]; len(got) != 1 || got[0] != "out_of_range" {
		t.Errorf("acme sees rejections %v", got)
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "other:T-9") || strings.Contains(page, "battery_pct\":140") {
		t.Error("page holds unescaped input, another tenant's data or a payload")
	}
	ids = testIDs(t, signIn(t, f, browser(t), "root"))
	if len(ids["security-row"]) != 2 || len(ids["rejection-row"]) != 2 || len(ids["security-kind"]) != 2 {
		t.Errorf("admin sees %d security rows, %d rejections", len(ids["security-row"]), len(ids["rejection-row"]))
	}
}

func TestHealthAndStatic(t *testing.T) {
	f := newFixture(t)
	resp, body := get(t, http.DefaultClient, f.srv.URL+"/healthz")
	if resp.StatusCode != 200 || !strings.Contains(body, "{") {
		t.Errorf("healthz: %s %s", resp.Status, body)
	}
	resp, body = get(t, http.DefaultClient, f.srv.URL+"/static/posfleet.css")
	if resp.StatusCode != 200 || !strings.Contains(body, "--accent") {
		t.Errorf("stylesheet: %s", resp.Status)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
}
