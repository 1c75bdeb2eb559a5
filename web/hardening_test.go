package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web"
)

// TestOpenRedirectTable: after sign-in, next= leads only to a path of this
// site; every hostile value sends the browser to "/".
func TestOpenRedirectTable(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ next, want string }{
		{"/terminals?flag=offline", "/terminals?flag=offline"},
		{"/security", "/security"},
		{"", "/"},
		{"https://evil.example/", "/"},
		{"//evil.example/x", "/"},
		{`/\127.0.0.1:22090/pwned`, "/"},
		{`/\evil.example`, "/"},
		{`/\/evil.example`, "/"},
		{`\\evil.example`, "/"},
		{`/x/../\evil.example`, "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/\r\nLocation: https://evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"http:/evil.example", "/"},
		{"evil.example", "/"},
		{"///evil.example", "/"},
	} {
		t.Run(tc.next, func(t *testing.T) {
			c := browser(t)
			form := url.Values{"name": {"root"}, "password": {"correct horse battery"}, "next": {tc.next}}
			resp, _ := postLogin(t, f.srv.URL, c, form)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != tc.want {
				t.Errorf("next=%q: %s to %q, want %q", tc.next, resp.Status, loc, tc.want)
			}
			// The sign-in page carries next= into its form the same way.
			_, page := get(t, c, f.srv.URL+"/login?next="+url.QueryEscape(tc.next))
			if got := attr(t, page, "next"); got != htmlEscape(tc.want) {
				t.Errorf("login page next field %q, want %q", got, tc.want)
			}
		})
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestWorkListCSVNeutralisesFormulas: text cells from outside that a
// spreadsheet would run as formulas get a leading quote; negative
// coordinates stay numbers.
func TestWorkListCSVNeutralisesFormulas(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	hostile := []string{`=HYPERLINK("https://evil.example","x")`, "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx", "=1+2"}
	var groups []health.WorkGroup
	for i, h := range hostile {
		groups = append(groups, health.WorkGroup{Region: h, Site: h, Items: []health.WorkItem{{
			Tenant: "acme", Terminal: "T-1", Firmware: h, LastSeen: now, Priority: i,
			Site:    health.Site{Model: h, Merchant: h, Site: h, Region: h, Lat: -33.8688, Lon: -151.2093},
			Reasons: []health.WorkReason{{Flag: "printer_fault", Since: now, Action: h}},
		}}})
	}
	var buf bytes.Buffer
	if err := web.WriteWorkListCSV(&buf, groups); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := rows[0]
	numeric := map[string]bool{"priority": true, "lat": true, "lon": true}
	for _, row := range rows[1:] {
		for i, cell := range row {
			if numeric[header[i]] {
				continue
			}
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("column %s starts with a formula character: %q", header[i], cell)
			}
		}
		if row[9] != "-33.8688" || row[10] != "-151.2093" {
			t.Errorf("lat, lon = %q, %q: want the negative numbers unchanged", row[9], row[10])
		}
	}
	if got := rows[1][4]; got != `'=HYPERLINK("https://evil.example","x")` {
		t.Errorf("merchant cell %q: want the value behind a single quote", got)
	}
}

const loginCSRF = "abcdefghijklmnopqrstuvwx" // 24 characters, as the server makes them

// loginFrom posts the sign-in form to h as a browser at addr would, with
// the form's CSRF cookie and any further cookies (a device cookie).
func loginFrom(h http.Handler, addr, name, password string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	form := url.Values{"name": {name}, "password": {password}, "csrf": {loginCSRF}}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = addr
	req.AddCookie(&http.Cookie{Name: "posfleet_login", Value: loginCSRF})
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func cookieOf(rec *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

const (
	right = "correct horse battery"
	wrong = "guess guess guess"
)

// TestSignInNoLockOut: guessing a user's password from one address does
// not lock the user out elsewhere; guessing from many addresses spends the
// user's own budget, which a correct password from a browser where the
// user signed in before still passes.
func TestSignInNoLockOut(t *testing.T) {
	f := newFixture(t)
	h := f.srv.Config.Handler
	// The real user signs in once from her laptop: it becomes known.
	rec := loginFrom(h, "192.0.2.50:4000", "ops-acme", right)
	device := cookieOf(rec, "posfleet_device")
	if rec.Code != http.StatusSeeOther || device == nil {
		t.Fatalf("first sign-in: %d, device cookie %v", rec.Code, device)
	}
	for i := range 7 {
		rec = loginFrom(h, "192.0.2.1:1000", "ops-acme", wrong)
		if i >= 5 && rec.Code != http.StatusTooManyRequests {
			t.Fatalf("guess %d from one address: %d, want 429", i+1, rec.Code)
		}
	}
	if rec := loginFrom(h, "192.0.2.1:1000", "ops-acme", right); rec.Code != http.StatusTooManyRequests {
		t.Errorf("right password from the guessing address: %d, want 429", rec.Code)
	}
	if rec := loginFrom(h, "192.0.2.2:1000", "ops-acme", right); rec.Code != http.StatusSeeOther {
		t.Errorf("right password from another address: %d, want 303", rec.Code)
	}
	// Behind one proxy address, the known device has a budget of its own.
	if rec := loginFrom(h, "192.0.2.1:1000", "ops-acme", right, device); rec.Code != http.StatusSeeOther {
		t.Errorf("right password from the known device at the guessing address: %d, want 303", rec.Code)
	}
	// Guesses spread over addresses spend the name's budget (10 tries).
	for i := range 12 {
		loginFrom(h, "198.51.100."+strconv.Itoa(i+1)+":1000", "ops-acme", wrong)
	}
	if rec := loginFrom(h, "203.0.113.9:1000", "ops-acme", wrong); rec.Code != http.StatusTooManyRequests {
		t.Errorf("guess from a fresh address after the name's budget is spent: %d, want 429", rec.Code)
	}
	if rec := loginFrom(h, "192.0.2.77:1000", "ops-acme", right, device); rec.Code != http.StatusSeeOther {
		t.Errorf("right password from the known device: %d, want 303", rec.Code)
	}
	// A device cookie of another user does not help.
	if rec := loginFrom(h, "192.0.2.78:1000", "root", wrong, device); rec.Code != http.StatusUnauthorized {
		t.Errorf("another user with ops-acme's device cookie: %d, want 401", rec.Code)
	}
}

// TestSignInLimiterEvictionKeepsBudgets: a flood of junk sign-ins from
// another address cannot make the limiter forget a spent budget.
func TestSignInLimiterEvictionKeepsBudgets(t *testing.T) {
	f := newFixture(t)
	h := f.srv.Config.Handler
	for range 6 {
		loginFrom(h, "192.0.2.1:1000", "root", wrong)
	}
	if rec := loginFrom(h, "192.0.2.1:1000", "root", wrong); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("after 6 guesses: %d, want 429", rec.Code)
	}
	for i := range 30000 {
		loginFrom(h, "192.0.2.2:1000", "junk-"+strconv.Itoa(i), wrong)
	}
	for i := range 5 {
		if rec := loginFrom(h, "192.0.2.1:1000", "root", wrong); rec.Code != http.StatusTooManyRequests {
			t.Fatalf("guess %d at root after the junk flood: %d, want 429", i+1, rec.Code)
		}
	}
}

// TestSignInLimiterFailsClosed: when every remembered address is still
// draining its budget, a new address is refused rather than one forgotten.
func TestSignInLimiterFailsClosed(t *testing.T) {
	f := newFixture(t)
	key, _ := f.users.SessionKey()
	h, err := web.New(web.Options{Users: f.users, SessionKey: key, SignInLimits: web.SignInLimits{Addresses: 3}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		loginFrom(h, "192.0.2."+strconv.Itoa(i+1)+":1000", "root", wrong)
	}
	if rec := loginFrom(h, "192.0.2.9:1000", "ops-acme", right); rec.Code != http.StatusTooManyRequests {
		t.Errorf("a fourth address while three are draining: %d, want 429", rec.Code)
	}
	if rec := loginFrom(h, "192.0.2.1:1000", "ops-acme", right); rec.Code != http.StatusSeeOther {
		t.Errorf("a remembered address: %d, want 303", rec.Code)
	}
}

// TestSignInFormCSRF: the sign-in form must echo its cookie's token.
func TestSignInFormCSRF(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name          string
		cookie, field string
		want          int
	}{
		{"no token", "", "", http.StatusForbidden},
		{"no cookie", "", loginCSRF, http.StatusForbidden},
		{"other token", loginCSRF, strings.Repeat("y", 24), http.StatusForbidden},
		{"matching", loginCSRF, loginCSRF, http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"name": {"root"}, "password": {right}}
			if tc.field != "" {
				form.Set("csrf", tc.field)
			}
			req, _ := http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: "posfleet_login", Value: tc.cookie})
			}
			resp, err := browser(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
			}
		})
	}
}

// session signs in name and returns the session cookie.
func sessionCookie(t *testing.T, h http.Handler, name string) *http.Cookie {
	t.Helper()
	rec := loginFrom(h, "192.0.2.200:1000", name, right)
	c := cookieOf(rec, "posfleet_session")
	if rec.Code != http.StatusSeeOther || c == nil {
		t.Fatalf("sign in %s: %d", name, rec.Code)
	}
	return c
}

func getWith(h http.Handler, path string, c *http.Cookie) int {
	req := httptest.NewRequest("GET", path, nil)
	req.AddCookie(c)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestSessionsEnd: signing out, a password change (across a restart),
// disabling and deleting a user end its sessions at once.
func TestSessionsEnd(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	h := f.srv.Config.Handler
	restart := func() http.Handler {
		key, _ := f.users.SessionKey()
		h, err := web.New(web.Options{Users: f.users, SessionKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	t.Run("sign out", func(t *testing.T) {
		c := browser(t)
		page := signIn(t, f, c, "ops-acme")
		var sess *http.Cookie
		for _, ck := range c.Jar.Cookies(mustURL(f.srv.URL)) {
			if ck.Name == "posfleet_session" {
				sess = ck
			}
		}
		if resp, _ := post(t, c, f.srv.URL+"/logout", url.Values{"csrf": {attr(t, page, "csrf")}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %s", resp.Status)
		}
		if code := getWith(h, "/security", sess); code != http.StatusSeeOther {
			t.Errorf("a copy of the signed-out cookie: %d, want 303 to sign in", code)
		}
		if code := getWith(restart(), "/security", sess); code != http.StatusSeeOther {
			t.Errorf("the signed-out cookie after a restart: %d", code)
		}
	})
	t.Run("password change", func(t *testing.T) {
		sess := sessionCookie(t, h, "ops-acme")
		if code := getWith(h, "/security", sess); code != http.StatusOK {
			t.Fatalf("fresh session: %d", code)
		}
		if err := f.users.SetPassword(ctx, "ops-acme", right); err != nil {
			t.Fatal(err)
		}
		if code := getWith(restart(), "/security", sess); code != http.StatusSeeOther {
			t.Errorf("session from before the password change, after a restart: %d", code)
		}
		if code := getWith(h, "/api/v1/me", sess); code != http.StatusUnauthorized {
			t.Errorf("session from before the password change, API: %d", code)
		}
		if code := getWith(h, "/security", sessionCookie(t, h, "ops-acme")); code != http.StatusOK {
			t.Errorf("a new session: %d", code)
		}
	})
	t.Run("disable and enable", func(t *testing.T) {
		sess := sessionCookie(t, h, "ops-acme")
		if err := f.users.SetDisabled(ctx, "ops-acme", true); err != nil {
			t.Fatal(err)
		}
		if code := getWith(h, "/security", sess); code != http.StatusSeeOther {
			t.Errorf("session of a disabled user: %d", code)
		}
		if rec := loginFrom(h, "192.0.2.201:1000", "ops-acme", right); rec.Code != http.StatusUnauthorized {
			t.Errorf("sign-in of a disabled user: %d", rec.Code)
		}
		if err := f.users.SetDisabled(ctx, "ops-acme", false); err != nil {
			t.Fatal(err)
		}
		if code := getWith(h, "/security", sess); code != http.StatusSeeOther {
			t.Errorf("the old session came back with enabling: %d", code)
		}
		sessionCookie(t, h, "ops-acme")
	})
	t.Run("delete", func(t *testing.T) {
		if err := f.users.AddUser(ctx, "temp", "acme", right); err != nil {
			t.Fatal(err)
		}
		sess := sessionCookie(t, h, "temp")
		if err := f.users.DeleteUser(ctx, "temp"); err != nil {
			t.Fatal(err)
		}
		if code := getWith(h, "/security", sess); code != http.StatusSeeOther {
			t.Errorf("session of a deleted user: %d", code)
		}
		// A new user of the same name does not inherit the old session.
		if err := f.users.AddUser(ctx, "temp", "acme", right); err != nil {
			t.Fatal(err)
		}
		if code := getWith(h, "/security", sess); code != http.StatusSeeOther {
			t.Errorf("session of a deleted user, name taken again: %d", code)
		}
	})
}

// TestUserAdminAPI: administrators disable, enable, list and delete users
// through the API while the server holds the store; others may not.
func TestUserAdminAPI(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin, err := f.users.CreateToken(ctx, "ops", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	call := func(token, method, path string) (int, string) {
		req, _ := http.NewRequest(method, f.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	h := f.srv.Config.Handler
	sess := sessionCookie(t, h, "ops-acme")
	for _, tc := range []struct {
		token, method, path string
		want                int
	}{
		{f.token, "POST", "/api/v1/users/ops-acme/disable", http.StatusForbidden},
		{f.token, "GET", "/api/v1/users", http.StatusForbidden},
		{admin, "GET", "/api/v1/users", http.StatusOK},
		{admin, "POST", "/api/v1/users/nobody/disable", http.StatusNotFound},
		{admin, "POST", "/api/v1/users/ops-acme/disable", http.StatusOK},
	} {
		if code, body := call(tc.token, tc.method, tc.path); code != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.want)
		}
	}
	if code := getWith(h, "/security", sess); code != http.StatusSeeOther {
		t.Errorf("session of a user disabled through the API: %d", code)
	}
	if _, body := call(admin, "GET", "/api/v1/users"); !strings.Contains(body, `"disabled": true`) {
		t.Errorf("user list: %s", body)
	}
	call(admin, "POST", "/api/v1/users/ops-acme/enable")
	sess = sessionCookie(t, h, "ops-acme")
	if code, body := call(admin, "DELETE", "/api/v1/users/ops-acme"); code != http.StatusOK {
		t.Errorf("delete: %d %s", code, body)
	}
	if code := getWith(h, "/security", sess); code != http.StatusSeeOther {
		t.Errorf("session of a user deleted through the API: %d", code)
	}
}

// TestBearerSchemeCaseInsensitive: RFC 6750 leaves the scheme's case free.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	f := newFixture(t)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/me", nil)
		req.Header.Set("Authorization", scheme+" "+f.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", scheme, resp.Status)
		}
	}
}

// TestAPIKeysAreCaseSensitive: Go's decoder would take {"Note":…} for
// note; every JSON body of the API refuses keys that match a field only
// in another case, and unknown keys.
func TestAPIKeysAreCaseSensitive(t *testing.T) {
	f := newAPIFixture(t)
	f.seed(t)
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/api/v1/terminals/acme/T-1/serviced", `{"Note":"fixed"}`, 400},
		{"/api/v1/terminals/acme/T-1/serviced", `{"NOTE":"fixed"}`, 400},
		{"/api/v1/terminals/acme/T-1/serviced", `{"note":"fixed","Note":"x"}`, 400},
		{"/api/v1/terminals/acme/T-1/serviced", `{"note":"fixed"}`, 200},
		{"/api/v1/terminals/acme/T-1/commands", `{"Type":"reboot"}`, 400},
		{"/api/v1/terminals/acme/T-1/commands", `{"type":"reboot","Target":""}`, 400},
		{"/api/v1/terminals/acme/T-1/commands", `{"type":"reboot"}`, 202},
	} {
		t.Run(tc.body, func(t *testing.T) {
			if code, b := f.call(t, f.acme, "POST", tc.path, tc.body); code != tc.want {
				t.Errorf("%s %s: %d %s, want %d", tc.path, tc.body, code, b, tc.want)
			}
		})
	}
}

// TestEMQXKeysAreCaseSensitive: the EMQX endpoints too.
func TestEMQXKeysAreCaseSensitive(t *testing.T) {
	h := web.EMQXHandler(web.EMQXOptions{Token: "t"})
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"Username":"acme:T-1","clientid":"acme:T-1","password":"x"}`, 400},
		{`{"username":"acme:T-1","ClientID":"acme:T-1","password":"x"}`, 400},
	} {
		req := httptest.NewRequest("POST", "/emqx/authn", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer t")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.body, rec.Code, tc.want)
		}
	}
}

// TestPolicyScopedToTenant: a tenant reads the policy entries of the
// models its terminals run, not other tenants' models, URLs or checksums.
func TestPolicyScopedToTenant(t *testing.T) {
	f := newAPIFixture(t)
	f.seed(t)
	o2 := posfleet.TerminalRef{Tenant: "other", Terminal: "T-2"}
	f.feed(t, o2, posfleet.ChannelFirmware, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"S300","firmware":"1.0.0"}`, f.now.Add(-time.Minute).Format(time.RFC3339)))
	both := policy + `  S300:
    target: 1.1.0
    url: https://secret.other.example/s300-1.1.0.bin
    sha256: ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
`
	if code, b := f.call(t, f.admin, "PUT", "/api/v1/policy", both); code != 200 {
		t.Fatalf("PUT policy: %d %s", code, b)
	}
	for _, path := range []string{"/api/v1/policy", "/api/v1/policy?format=yaml"} {
		_, b := f.call(t, f.acme, "GET", path, "")
		if bytes.Contains(b, []byte("S300")) || bytes.Contains(b, []byte("secret.other")) || !bytes.Contains(b, []byte("A920")) {
			t.Errorf("acme reads %s: %s", path, b)
		}
		_, b = f.call(t, f.other, "GET", path, "")
		if !bytes.Contains(b, []byte("S300")) || !bytes.Contains(b, []byte("A920")) {
			t.Errorf("other reads %s: %s", path, b)
		}
		_, b = f.call(t, f.admin, "GET", path, "")
		if !bytes.Contains(b, []byte("S300")) || !bytes.Contains(b, []byte("A920")) {
			t.Errorf("admin reads %s: %s", path, b)
		}
	}
}

// TestPolicyURLsChecked: a policy's package URLs must be https (http only
// with AllowHTTPFirmware).
func TestPolicyURLsChecked(t *testing.T) {
	f := newAPIFixture(t)
	withURL := func(u string) string {
		return "models:\n  A920:\n    target: 2.5.1\n    url: " + u + "\n    sha256: " + strings.Repeat("0", 64) + "\n"
	}
	for _, tc := range []struct {
		url  string
		want int
	}{
		{"javascript:alert(31)", 400},
		{"'javascript://x/%0aalert(31)'", 400},
		{"data:text/html,x", 400},
		{"file:///etc/passwd", 400},
		{"ftp://fw.example/a.bin", 400},
		{"http://fw.example/a.bin", 400},
		{"https://user:pw@fw.example/a.bin", 400},
		{"https:///a.bin", 400},
		{"/relative/a.bin", 400},
		{"https://fw.example/a.bin", 200},
		{"HTTPS://fw.example/a.bin", 200},
	} {
		t.Run(tc.url, func(t *testing.T) {
			if code, b := f.call(t, f.admin, "PUT", "/api/v1/policy", withURL(tc.url)); code != tc.want {
				t.Errorf("url %s: %d %s, want %d", tc.url, code, b, tc.want)
			}
		})
	}
	// With AllowHTTPFirmware, http is accepted; other schemes still not.
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer users.Close()
	admin, _ := users.CreateToken(context.Background(), "admin", auth.AllTenants)
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key, Health: f.engine, AllowHTTPFirmware: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url  string
		want int
	}{{"http://fw.example/a.bin", 200}, {"javascript:alert(31)", 400}} {
		req := httptest.NewRequest("PUT", "/api/v1/policy", strings.NewReader(withURL(tc.url)))
		req.Header.Set("Authorization", "Bearer "+admin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("AllowHTTPFirmware, url %s: %d %s, want %d", tc.url, rec.Code, rec.Body, tc.want)
		}
	}
}

// TestMetricsNeedCredentials: /metrics answers the metrics token or an
// administrator, nobody else; /healthz says status words, not errors.
func TestMetricsNeedCredentials(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin, _ := f.users.CreateToken(ctx, "ops", auth.AllTenants)
	key, _ := f.users.SessionKey()
	failing := func(context.Context) error {
		return fmt.Errorf("ping http://influx.internal.example:8086 bucket posfleet/autogen: connection refused")
	}
	h, err := web.New(web.Options{Users: f.users, SessionKey: key, MetricsToken: "metrics-secret-0123456789",
		Checks: map[string]web.Check{"timeseries": failing, "collector": func(context.Context) error { return nil }}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"tenant token", "Bearer " + f.token, http.StatusForbidden},
		{"admin token", "Bearer " + admin, http.StatusOK},
		{"metrics token", "Bearer metrics-secret-0123456789", http.StatusOK},
		{"metrics token, lower-case scheme", "bearer metrics-secret-0123456789", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
			}
			if tc.want == http.StatusOK && !strings.Contains(string(b), "# HELP") {
				t.Errorf("%s: no metrics in %.200s", tc.name, b)
			}
		})
	}
	resp, body := get(t, http.DefaultClient, srv.URL+"/healthz")
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "influx") || strings.Contains(body, "bucket") ||
		!strings.Contains(body, `"timeseries": "down"`) || !strings.Contains(body, `"collector": "ok"`) {
		t.Errorf("healthz: %s %s", resp.Status, body)
	}
}
