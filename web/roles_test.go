package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web"
)

// roleFixture is the whole web side (API, pages, alarms, notifications,
// users, import) over a real health engine, with a user and a token of
// every role: root (administrator, every tenant) and acme's
// tenant_admin, operator, crew (region north) and viewer. acme/T-1 is in
// north, acme/T-2 in south; other/T-1 is another tenant's.
type roleFixture struct {
	srv    *httptest.Server
	h      *web.Server
	users  *auth.Store
	tokens map[string]string // by principal name
	who    map[string]posfleet.Principal
	sent   []posfleet.Command
	now    time.Time
	engine *health.Engine
	audit  *memAudit
	// otherToken and acmeToken are token IDs to revoke.
	otherToken string
}

func (f *roleFixture) SendCommand(_ context.Context, _ posfleet.TerminalRef, cmd posfleet.Command) error {
	f.sent = append(f.sent, cmd)
	return nil
}

type noImport struct{}

func (noImport) Import(context.Context, io.Reader, func([]posfleet.Credential) error) (posfleet.ImportResult, error) {
	return posfleet.ImportResult{}, nil
}

// principals of the matrix, administrator last: its changes (a user
// deleted, a token revoked) must not change what the others meet.
var matrixPrincipals = []string{"acme-tenant_admin", "acme-operator", "acme-crew", "acme-viewer", "acme-read-token", "root"}

func newRoleFixture(t *testing.T) *roleFixture {
	t.Helper()
	f := &roleFixture{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), tokens: map[string]string{}, who: map[string]posfleet.Principal{}}
	clock := func() time.Time { return f.now }
	cfg := health.DefaultConfig()
	cfg.Now = clock
	cfg.Merchant = func(r posfleet.TerminalRef) string { return "M-" + r.Terminal }
	cfg.Site = func(r posfleet.TerminalRef) (health.Site, bool) {
		region := "north"
		if r.Terminal == "T-2" {
			region = "south"
		}
		return health.Site{Model: "A920", Merchant: "M-" + r.Terminal, Site: "Shop " + r.Terminal, Region: region}, true
	}
	f.engine = health.New(cfg)
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	f.users = users
	ctx := context.Background()
	const pw = "correct horse battery"
	add := func(u posfleet.User) {
		t.Helper()
		if err := users.NewUser(ctx, u, pw); err != nil {
			t.Fatal(err)
		}
	}
	add(posfleet.User{Name: "root", Tenant: auth.AllTenants, Role: posfleet.RoleAdministrator})
	for _, r := range []posfleet.Role{posfleet.RoleTenantAdmin, posfleet.RoleOperator, posfleet.RoleCrew, posfleet.RoleViewer} {
		u := posfleet.User{Name: "acme-" + string(r), Tenant: "acme", Role: r}
		if r == posfleet.RoleCrew {
			u.Regions = []string{"north"}
		}
		add(u)
	}
	add(posfleet.User{Name: "victim-acme", Tenant: "acme"})
	add(posfleet.User{Name: "victim-other", Tenant: "other"})
	token := func(name, tenant, by string, scopes ...string) string {
		t.Helper()
		secret, _, err := users.NewToken(ctx, posfleet.APIToken{Name: name, Tenant: tenant, CreatedBy: by, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		p, err := users.VerifyToken(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		f.who[name] = p
		return secret
	}
	f.tokens["root"] = token("root", auth.AllTenants, "root")
	for _, n := range []string{"acme-tenant_admin", "acme-operator", "acme-crew", "acme-viewer"} {
		f.tokens[n] = token(n, "acme", n)
	}
	f.tokens["acme-read-token"] = token("acme-read-token", "acme", "acme-operator", posfleet.ScopeRead)
	token("other-script", "other", "")
	toks, _ := users.Tokens(ctx)
	for _, tk := range toks {
		if tk.Name == "other-script" {
			f.otherToken = tk.ID
		}
	}
	key, _ := users.SessionKey()
	af := &alarmFixture{now: f.now, alarms: newFakeAlarms(clock)}
	af.seed()
	f.audit = &memAudit{}
	f.h, err = web.New(web.Options{Users: users, SessionKey: key, Health: f.engine, Commander: f, Commands: commands.New(),
		Alarms: af.alarms, Notifications: newFakeNotifications(clock), Provisioner: noImport{}, Now: clock, Audit: f.audit,
		Campaigns: newFakeCampaigns(), Thresholds: newMemThresholds(f.engine)})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.h)
	t.Cleanup(f.srv.Close)
	ts := func(d time.Duration) string { return f.now.Add(d).Format(time.RFC3339) }
	for i, ref := range []posfleet.TerminalRef{{Tenant: "acme", Terminal: "T-1"}, {Tenant: "acme", Terminal: "T-2"}, {Tenant: "other", Terminal: "T-1"}} {
		for _, m := range []struct {
			ch      posfleet.Channel
			payload string
		}{
			{posfleet.ChannelFirmware, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","firmware":"2.4.%d"}`, ts(-time.Minute), i)},
			{posfleet.ChannelHeartbeat, fmt.Sprintf(`{"seq":2,"ts":%q,"battery_pct":5,"paper":"out","signal_dbm":-70,"host_rtt_ms":300}`, ts(-30*time.Second))},
		} {
			msg, err := posfleet.Decode(ref, m.ch, []byte(m.payload), f.now)
			if err != nil {
				t.Fatal(err)
			}
			f.engine.Observe(msg)
		}
	}
	return f
}

func (f *roleFixture) do(t *testing.T, who, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.tokens[who])
	if strings.HasPrefix(path, "/api/") {
		req.Header.Set("Content-Type", "application/json")
	} else if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// matrixCall is one route of the policy filled in for a tenant: own
// (acme) or other.
type matrixCall struct {
	method, path, body string
	need               string
	// tenanted: the other-tenant call names another tenant's thing
	// (terminal, alarm, user, token): refused unless the caller sees
	// every tenant.
	tenanted bool
}

// fill makes a concrete request of a policy route for tenant "acme" or
// "other"; several for a route whose action varies its perm.
func (f *roleFixture) fill(rule web.PolicyRule, tenant string) []matrixCall {
	method, pattern, ok := strings.Cut(rule.Route, " ")
	if !ok {
		method, pattern = "GET", rule.Route+"nothing"
	}
	own := tenant == "acme"
	path := strings.ReplaceAll(pattern, "{$}", "")
	tenanted := false
	if strings.Contains(path, "{tenant}/{terminal}") {
		path = strings.ReplaceAll(path, "{tenant}/{terminal}", tenant+"/T-1")
		tenanted = true
	}
	body := ""
	switch {
	case strings.Contains(path, "/alarms/{id}"):
		id := "a-tamper"
		if !own {
			id = "o-tamper"
		}
		path, tenanted = strings.ReplaceAll(path, "{id}", id), true
	case strings.Contains(path, "/campaigns/{id}"):
		id := "c-acme"
		if !own {
			id = "c-other"
		}
		path, tenanted = strings.ReplaceAll(path, "{id}", id), true
	case strings.Contains(path, "/tokens/{id}"):
		id := "none"
		if !own {
			id = f.otherToken
		}
		path, tenanted = strings.ReplaceAll(path, "{id}", id), true
	case strings.Contains(path, "{id}"):
		path = strings.ReplaceAll(path, "{id}", "none")
	}
	if strings.Contains(path, "{name}") {
		path, tenanted = strings.ReplaceAll(path, "{name}", "victim-"+tenant), true
	}
	switch {
	case rule.Route == "POST /api/v1/users":
		body, tenanted = fmt.Sprintf(`{"name":"new-%s","tenant":%q,"password":"correct horse battery","role":"viewer"}`, tenant, tenant), true
	case rule.Route == "POST /api/v1/tokens":
		body, tenanted = fmt.Sprintf(`{"name":"new","tenant":%q}`, tenant), true
	case rule.Route == "POST /admin/users" || rule.Route == "POST /admin/tokens":
		body, tenanted = url.Values{"name": {"form-" + tenant}, "tenant": {tenant}, "password": {"correct horse battery"}}.Encode(), true
	case rule.Route == "PUT /api/v1/users/{name}/role":
		body = `{"role":"viewer"}`
	case strings.HasSuffix(rule.Route, "/snooze"):
		body = `{"for":"1h"}`
	case strings.HasPrefix(path, "/api/") && method != "GET" && method != "DELETE":
		body = `{}`
	}
	if strings.Contains(path, "{action}") {
		var out []matrixCall
		actions := []string{"acknowledge"}
		if strings.HasPrefix(path, "/admin/") {
			actions = []string{"disable"}
		}
		for a := range rule.ByAction {
			actions = append(actions, a)
		}
		for _, a := range actions {
			need := rule.Need
			if n, ok := rule.ByAction[a]; ok {
				need = n
			}
			out = append(out, matrixCall{method, strings.ReplaceAll(path, "{action}", a), body, need, tenanted})
		}
		return out
	}
	return []matrixCall{{method, path, body, rule.Need, tenanted}}
}

const roleRefusal = "your role does not allow this"

// TestRoleMatrix: every route of the policy table, API and pages, called
// by every role (and a read-scoped token) on its own tenant and another's,
// through the real handler. The expected answer comes from the table:
// refused by the role → 403 with the role's message; allowed on its own
// tenant → neither 401 nor 403 nor a server error; allowed on another
// tenant's terminal, alarm, user or token → 404 or a tenancy 403, unless
// the caller sees every tenant.
func TestRoleMatrix(t *testing.T) {
	f := newRoleFixture(t)
	var matrix []string
	for _, who := range matrixPrincipals {
		p := f.who[who]
		for _, rule := range web.Policy() {
			for _, tenant := range []string{"acme", "other"} {
				for _, c := range f.fill(rule, tenant) {
					if tenant == "other" && !c.tenanted {
						continue // the same request as on its own tenant
					}
					f.audit.mu.Lock()
					before := len(f.audit.entries)
					f.audit.mu.Unlock()
					status, body := f.do(t, who, c.method, c.path, c.body)
					f.audit.mu.Lock()
					added := f.audit.entries[before:]
					f.audit.mu.Unlock()
					// Every action the matrix exercises, allowed or refused,
					// leaves one audit entry naming who; reads leave none.
					if mutating := c.method != http.MethodGet; mutating && c.need != "public" {
						if len(added) != 1 || added[0].Actor != p.Name {
							t.Errorf("%s %s %s: audit entries %+v, want one by %s", who, c.method, c.path, added, p.Name)
						}
					} else if !mutating && len(added) != 0 {
						t.Errorf("%s %s %s: a read left audit entries %+v", who, c.method, c.path, added)
					}
					allowed := web.May(p, c.need)
					refusedByRole := status == http.StatusForbidden && strings.Contains(body, roleRefusal)
					want := "allowed"
					switch {
					case c.need == "public":
						want = "public"
						if refusedByRole {
							t.Errorf("%s %s %s (public): refused by role: %s", who, c.method, c.path, body)
						}
					case !allowed:
						want = "403"
						if !refusedByRole {
							t.Errorf("%s %s %s (needs %s): %d %.200s; want 403 %q", who, c.method, c.path, c.need, status, body, roleRefusal)
						}
					case tenant == "other" && !p.Admin():
						want = "404/403 tenant"
						if (status != http.StatusNotFound && status != http.StatusForbidden) || refusedByRole {
							t.Errorf("%s %s %s (another tenant's): %d %.200s; want 404, or 403 for the tenant", who, c.method, c.path, status, body)
						}
					default:
						if status == http.StatusUnauthorized || status == http.StatusForbidden || status >= 500 {
							t.Errorf("%s %s %s (needs %s, allowed): %d %.200s", who, c.method, c.path, c.need, status, body)
						}
					}
					matrix = append(matrix, fmt.Sprintf("%-18s %-6s %-50s %-6s %-14s -> %d", who, c.method, c.path, tenant, want, status))
					// A crew (region north) on its tenant's terminal of
					// another region (acme/T-2, south): as another tenant's.
					if p.EffectiveRole() == posfleet.RoleCrew && strings.Contains(c.path, "/acme/T-1") {
						path := strings.Replace(c.path, "/acme/T-1", "/acme/T-2", 1)
						status, body := f.do(t, who, c.method, path, c.body)
						want := "404 region"
						if !allowed {
							want = "403"
						}
						if (allowed && status != http.StatusNotFound) || (!allowed && !strings.Contains(body, roleRefusal)) {
							t.Errorf("%s %s %s (another region's): %d %.200s; want %s", who, c.method, path, status, body, want)
						}
						matrix = append(matrix, fmt.Sprintf("%-18s %-6s %-50s %-6s %-14s -> %d", who, c.method, path, "south", want, status))
					}
				}
			}
		}
	}
	if testing.Verbose() {
		t.Log("role matrix:\n" + strings.Join(matrix, "\n"))
	}
}

// TestEveryRouteHasARule: the server registers no route the policy table
// does not know (it would be refused to everyone), and the table names no
// route the server does not register.
func TestEveryRouteHasARule(t *testing.T) {
	f := newRoleFixture(t)
	inTable := map[string]bool{}
	for _, r := range web.Policy() {
		inTable[r.Route] = true
	}
	registered := map[string]bool{}
	for _, r := range web.Routes(f.h) {
		registered[r] = true
		if !inTable[r] {
			t.Errorf("route %q has no rule in the policy table", r)
		}
	}
	var stale []string
	for r := range inTable {
		if !registered[r] {
			stale = append(stale, r)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("rules for routes the server does not register: %v", stale)
	}
}

// TestCrewRegions: a crew sees its region's terminal and not another
// region's (404, as another tenant's), may record a visit there, and may
// not send a command anywhere.
func TestCrewRegions(t *testing.T) {
	f := newRoleFixture(t)
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/api/v1/terminals/acme/T-1", "", 200},
		{"GET", "/api/v1/terminals/acme/T-2", "", 404},
		{"GET", "/terminals/acme/T-1", "", 200},
		{"GET", "/terminals/acme/T-2", "", 404},
		{"POST", "/api/v1/terminals/acme/T-2/serviced", `{"note":"paper"}`, 404},
		{"POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"reboot"}`, 403},
		{"POST", "/terminals/acme/T-1/commands", "type=reboot", 403},
	} {
		if status, body := f.do(t, "acme-crew", c.method, c.path, c.body); status != c.want {
			t.Errorf("crew %s %s: %d %.200s; want %d", c.method, c.path, status, body, c.want)
		}
	}
	if len(f.sent) != 0 {
		t.Errorf("a crew's command was sent: %v", f.sent)
	}
	// Lists: the crew's region only; an operator's: both regions.
	for _, path := range []string{"/api/v1/worklist", "/api/v1/terminals", "/worklist", "/terminals", "/terminals?region=south"} {
		_, crew := f.do(t, "acme-crew", "GET", path, "")
		_, ops := f.do(t, "acme-operator", "GET", strings.TrimSuffix(path, "?region=south"), "")
		if !strings.Contains(crew, "T-1") || strings.Contains(crew, "T-2") {
			t.Errorf("crew's %s: want T-1 (north) and not T-2 (south): %.400s", path, crew)
		}
		if !strings.Contains(ops, "T-2") {
			t.Errorf("operator's %s lacks T-2: %.400s", path, ops)
		}
	}
	// Alarms: its region's; another region's alarm is 404.
	if status, _ := f.do(t, "acme-crew", "GET", "/api/v1/alarms/a-offline", ""); status != http.StatusNotFound {
		t.Errorf("crew GET another region's alarm: %d, want 404", status)
	}
	for _, path := range []string{"/api/v1/alarms", "/alarms"} {
		if _, body := f.do(t, "acme-crew", "GET", path, ""); !strings.Contains(body, "a-tamper") || strings.Contains(body, "a-offline") {
			t.Errorf("crew's %s: want a-tamper (north), not a-offline (south): %.300s", path, body)
		}
	}
	if status, body := f.do(t, "acme-crew", "POST", "/api/v1/terminals/acme/T-1/serviced", `{"note":"paper rolls replaced"}`); status != 200 {
		t.Errorf("crew's visit done in its region: %d %.200s", status, body)
	}
}

// TestReadScopedToken: a token with scope read reads but cannot POST,
// though its creator (an operator) may.
func TestReadScopedToken(t *testing.T) {
	f := newRoleFixture(t)
	if status, body := f.do(t, "acme-read-token", "GET", "/api/v1/terminals/acme/T-1", ""); status != 200 {
		t.Errorf("read token GET: %d %.200s", status, body)
	}
	status, body := f.do(t, "acme-read-token", "POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"reboot"}`)
	if status != 403 || !strings.Contains(body, "scopes read") {
		t.Errorf("read token POST command: %d %.200s; want 403 naming its scopes", status, body)
	}
	var e struct{ Error struct{ Code string } }
	if json.Unmarshal([]byte(body), &e); e.Error.Code != "forbidden" {
		t.Errorf("code %q, want forbidden", e.Error.Code)
	}
	if status, body := f.do(t, "acme-operator", "POST", "/api/v1/terminals/acme/T-1/commands", `{"type":"reboot"}`); status != http.StatusAccepted {
		t.Errorf("operator POST command: %d %.200s", status, body)
	}
}

var postForm = regexp.MustCompile(`(?s)<form[^>]*method="post"[^>]*>.*?</form>`)

// actionForms are the forms of a page that change something: a POST form
// with a submit button, other than signing out.
func actionForms(page string) []string {
	var out []string
	for _, f := range postForm.FindAllString(page, -1) {
		if strings.Contains(f, `action="/logout"`) || !strings.Contains(f, `type="submit"`) {
			continue
		}
		out = append(out, f)
	}
	return out
}

// TestViewerSeesNoActions: a viewer's pages (terminal, work list,
// firmware, alarms, an alarm, notifications) show no form that would
// act, and its POSTs are refused; an operator's terminal page has them,
// a crew's has "visit done" but no command.
func TestViewerSeesNoActions(t *testing.T) {
	f := newRoleFixture(t)
	pages := []string{"/terminals/acme/T-1", "/worklist", "/firmware", "/alarms", "/alarms/a-tamper", "/notifications", "/", "/terminals", "/incidents"}
	for _, path := range pages {
		status, body := f.do(t, "acme-viewer", "GET", path, "")
		if status != 200 {
			t.Errorf("viewer GET %s: %d", path, status)
			continue
		}
		if forms := actionForms(body); len(forms) > 0 {
			t.Errorf("viewer's %s shows %d action forms: %.300s", path, len(forms), forms[0])
		}
	}
	for _, path := range []string{"/terminals/acme/T-1/commands", "/terminals/acme/T-1/serviced", "/firmware/update", "/alarms/a-tamper/comment"} {
		if status, _ := f.do(t, "acme-viewer", "POST", path, "type=reboot"); status != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", path, status)
		}
	}
	// A viewer of every tenant: no channel or route forms either.
	if err := f.users.NewUser(context.Background(), posfleet.User{Name: "auditor", Tenant: auth.AllTenants, Role: posfleet.RoleViewer}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	secret, _, err := f.users.NewToken(context.Background(), posfleet.APIToken{Name: "auditor", Tenant: auth.AllTenants, CreatedBy: "auditor"})
	if err != nil {
		t.Fatal(err)
	}
	f.tokens["auditor"] = secret
	for _, path := range append(pages, "/security") {
		status, body := f.do(t, "auditor", "GET", path, "")
		if forms := actionForms(body); status != 200 || len(forms) > 0 {
			t.Errorf("viewer of every tenant: %s: %d, %d action forms", path, status, len(forms))
		}
	}
	_, op := f.do(t, "acme-operator", "GET", "/terminals/acme/T-1", "")
	for _, id := range []string{`data-testid="send-reboot"`, `data-testid="mark-serviced"`} {
		if !strings.Contains(op, id) {
			t.Errorf("operator's terminal page lacks %s", id)
		}
	}
	_, crew := f.do(t, "acme-crew", "GET", "/terminals/acme/T-1", "")
	if strings.Contains(crew, `data-testid="send-reboot"`) || !strings.Contains(crew, `data-testid="mark-serviced"`) {
		t.Errorf("crew's terminal page: want visit done and no reboot")
	}
	_, crewAlarm := f.do(t, "acme-crew", "GET", "/alarms/a-tamper", "")
	if strings.Contains(crewAlarm, `id="resolve"`) || !strings.Contains(crewAlarm, `id="comment"`) {
		t.Errorf("crew's alarm page: want a comment form and no resolve")
	}
}

// TestSessionRole: a crew signed in with a password (a session, not a
// token) has its role: "visit done" and no reboot on its terminal's page,
// its command POST refused; a role changed counts at its next request.
func TestSessionRole(t *testing.T) {
	f := newRoleFixture(t)
	c := browser(t)
	resp, _ := postLogin(t, f.srv.URL, c, url.Values{"name": {"acme-crew"}, "password": {"correct horse battery"}, "next": {"/terminals/acme/T-1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %s", resp.Status)
	}
	resp, page := get(t, c, f.srv.URL+"/terminals/acme/T-1")
	if resp.StatusCode != 200 || strings.Contains(page, `data-testid="send-reboot"`) || !strings.Contains(page, `data-testid="mark-serviced"`) {
		t.Fatalf("crew's terminal page: %s; want visit done and no reboot", resp.Status)
	}
	if resp, _ := get(t, c, f.srv.URL+"/terminals/acme/T-2"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("crew's session on another region's terminal: %s, want 404", resp.Status)
	}
	csrf := attr(t, page, "csrf")
	resp, body := post(t, c, f.srv.URL+"/terminals/acme/T-1/commands", url.Values{"csrf": {csrf}, "type": {"reboot"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, roleRefusal) {
		t.Errorf("crew's reboot form: %s %.200s; want 403", resp.Status, body)
	}
	if err := f.users.SetRole(context.Background(), "acme-crew", posfleet.RoleViewer, nil); err != nil {
		t.Fatal(err)
	}
	_, page = get(t, c, f.srv.URL+"/terminals/acme/T-1")
	if strings.Contains(page, `data-testid="mark-serviced"`) {
		t.Errorf("a crew made viewer still sees visit done")
	}
	if len(f.sent) != 0 {
		t.Errorf("commands sent: %v", f.sent)
	}
}

// The auth store is what the server passes as Users: it reads sessions'
// roles and manages users with roles.
var (
	_ web.SessionReader = (*auth.Store)(nil)
	_ web.UserAdmin     = (*auth.Store)(nil)
)
