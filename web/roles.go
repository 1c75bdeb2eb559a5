package web

import (
	"context"
	"log/slog"
	"net/http"
	"slices"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web/pages/layout"
)

// perm is what a route needs of its caller. A role grants a set of them
// (rolePerms); a token's scopes narrow its creator's (scopePerms).
type perm uint8

const (
	// public routes need no sign-in (the sign-in form, /healthz, static
	// files) or check their caller themselves (/metrics).
	public perm = iota
	// read: look at the fleet, terminals, alarms, the policy.
	read
	// visit: "visit done" and comments on alarms, what a crew does.
	visit
	// act: commands, firmware updates, alarm actions.
	act
	// manageTenant: the users and tokens of the caller's own tenant.
	manageTenant
	// provision: import terminals (of the caller's tenant, unless it sees
	// every tenant: provision.go).
	provision
	// adminAll: what only an administrator of every tenant does: the
	// firmware policy (one document for every tenant), notification
	// channels and routes, /metrics.
	adminAll
	// campaigns: read firmware campaigns (everyone but a crew, whose
	// work is its region's terminals); acting on them needs act.
	campaigns
)

var permNames = map[perm]string{public: "public", read: "read", visit: "visit", act: "act",
	manageTenant: "manage_tenant", provision: "provision", adminAll: "admin", campaigns: "campaigns"}

func (p perm) String() string { return permNames[p] }

// rule is the policy of one route: the pattern exactly as it is
// registered, and the perm it needs. A pattern whose last segment is
// {action} may need another perm per action (byAction).
type rule struct {
	route    string
	need     perm
	byAction map[string]perm
}

// policy is THE policy: every route of the server, API and pages, and
// what it needs. A route missing here is refused to everyone (routes.Handle);
// TestEveryRouteHasARule keeps the two in step, and the role matrix test
// (roles_test.go) is generated from it.
var policy = []rule{
	// Public, or checked by the handler itself.
	{"GET /static/", public, nil},
	{"GET /login", public, nil},
	{"POST /login", public, nil},
	{"GET /healthz", public, nil},
	{"GET /metrics", public, nil}, // metricsAuth: the metrics token or an administrator
	{"/api/", public, nil},        // the API's 404
	{"POST /logout", read, nil},
	{"GET /account", read, nil},
	{"POST /account", read, nil},
	{"POST /account/tenant", manageTenant, nil},
	{"GET /api/v1/me/preferences", read, nil},
	{"PUT /api/v1/me/preferences", read, nil},

	// Pages.
	{"GET /{$}", read, nil},
	{"GET /security", read, nil},
	{"GET /terminals", read, nil},
	{"GET /terminals/{tenant}/{terminal}", read, nil},
	{"POST /terminals/{tenant}/{terminal}/commands", act, nil},
	{"POST /terminals/{tenant}/{terminal}/serviced", visit, nil},
	{"GET /firmware", read, nil},
	{"POST /firmware/policy", adminAll, nil},
	{"POST /firmware/update", act, nil},
	{"GET /worklist", read, nil},
	{"GET /worklist.csv", read, nil},
	{"POST /worklist/site-done", visit, nil},
	{"GET /audit", manageTenant, nil},
	{"GET /audit.csv", manageTenant, nil},
	{"GET /api/v1/audit", manageTenant, nil},
	{"GET /incidents", read, nil},
	{"GET /alarms", read, nil},
	{"POST /alarms/bulk", act, nil},
	{"GET /alarms/{id}", read, nil},
	{"POST /alarms/{id}/{action}", act, map[string]perm{"comment": visit}},
	{"GET /campaigns", campaigns, nil},
	{"GET /campaigns/new", act, nil},
	{"POST /campaigns/new", act, nil},
	{"GET /campaigns/{id}", campaigns, nil},
	{"POST /campaigns/{id}/{action}", act, nil},
	{"GET /notifications", read, nil},
	{"POST /notifications/channels", adminAll, nil},
	{"POST /notifications/channels/{id}", adminAll, nil},
	{"POST /notifications/channels/{id}/delete", adminAll, nil},
	{"POST /notifications/channels/{id}/test", adminAll, nil},
	{"POST /notifications/routes", adminAll, nil},
	{"POST /notifications/routes/{id}", adminAll, nil},
	{"POST /notifications/routes/{id}/delete", adminAll, nil},
	{"GET /admin", manageTenant, nil},
	{"POST /admin/users", manageTenant, nil},
	{"POST /admin/users/{name}/{action}", manageTenant, nil},
	{"POST /admin/tokens", manageTenant, nil},
	{"POST /admin/tokens/{id}/revoke", manageTenant, nil},
	{"GET /admin/thresholds", manageTenant, nil},
	{"POST /admin/thresholds", manageTenant, nil},

	// API.
	{"GET /api/v1/me", read, nil},
	{"GET /api/v1/fleet", read, nil},
	{"GET /api/v1/terminals", read, nil},
	{"GET /api/v1/terminals/{tenant}/{terminal}", read, nil},
	{"POST /api/v1/terminals/{tenant}/{terminal}/serviced", visit, nil},
	{"POST /api/v1/terminals/{tenant}/{terminal}/commands", act, nil},
	{"POST /api/v1/terminals/import", provision, nil},
	{"GET /api/v1/worklist", read, nil},
	{"GET /api/v1/incidents", read, nil},
	{"GET /api/v1/policy", read, nil},
	{"PUT /api/v1/policy", adminAll, nil},
	{"GET /api/v1/policy/history", read, nil},
	{"GET /api/v1/thresholds", read, nil},
	{"PUT /api/v1/thresholds", manageTenant, nil},
	{"GET /api/v1/thresholds/history", read, nil},
	{"GET /api/v1/alarms", read, nil},
	{"POST /api/v1/alarms/bulk", act, nil},
	{"GET /api/v1/alarms/{id}", read, nil},
	{"POST /api/v1/alarms/{id}/acknowledge", act, nil},
	{"POST /api/v1/alarms/{id}/assign", act, nil},
	{"POST /api/v1/alarms/{id}/comment", visit, nil},
	{"POST /api/v1/alarms/{id}/snooze", act, nil},
	{"POST /api/v1/alarms/{id}/resolve", act, nil},
	{"GET /api/v1/channels", read, nil},
	{"POST /api/v1/channels", adminAll, nil},
	{"PUT /api/v1/channels/{id}", adminAll, nil},
	{"DELETE /api/v1/channels/{id}", adminAll, nil},
	{"POST /api/v1/channels/{id}/test", adminAll, nil},
	{"GET /api/v1/routes", read, nil},
	{"POST /api/v1/routes", adminAll, nil},
	{"PUT /api/v1/routes/{id}", adminAll, nil},
	{"DELETE /api/v1/routes/{id}", adminAll, nil},
	{"GET /api/v1/notifications", read, nil},
	{"GET /api/v1/users", manageTenant, nil},
	{"POST /api/v1/users", manageTenant, nil},
	{"POST /api/v1/users/{name}/password", manageTenant, nil},
	{"POST /api/v1/users/{name}/disable", manageTenant, nil},
	{"POST /api/v1/users/{name}/enable", manageTenant, nil},
	{"PUT /api/v1/users/{name}/role", manageTenant, nil},
	{"PUT /api/v1/users/{name}/preferences", manageTenant, nil},
	{"DELETE /api/v1/users/{name}", manageTenant, nil},
	{"GET /api/v1/tokens", manageTenant, nil},
	{"POST /api/v1/tokens", manageTenant, nil},
	{"DELETE /api/v1/tokens/{id}", manageTenant, nil},
	{"GET /api/v1/campaigns", campaigns, nil},
	{"POST /api/v1/campaigns", act, nil},
	{"POST /api/v1/campaigns/preview", act, nil},
	{"GET /api/v1/campaigns/{id}", campaigns, nil},
	{"GET /api/v1/campaigns/{id}/terminals", campaigns, nil},
	{"GET /api/v1/campaigns/{id}/events", campaigns, nil},
	{"POST /api/v1/campaigns/{id}/pause", act, nil},
	{"POST /api/v1/campaigns/{id}/resume", act, nil},
	{"POST /api/v1/campaigns/{id}/abort", act, nil},
	{"POST /api/v1/campaigns/{id}/rollback", act, nil},
}

// rolePerms are the perms of each role.
var rolePerms = map[posfleet.Role][]perm{
	posfleet.RoleAdministrator: {read, visit, act, manageTenant, provision, adminAll, campaigns},
	posfleet.RoleTenantAdmin:   {read, visit, act, manageTenant, provision, campaigns},
	posfleet.RoleOperator:      {read, visit, act, provision, campaigns},
	posfleet.RoleCrew:          {read, visit},
	posfleet.RoleViewer:        {read, campaigns},
}

// scopePerms are the perms each token scope lets a token use, of those
// its creator's role grants.
var scopePerms = map[string][]perm{
	posfleet.ScopeRead:      {read, campaigns},
	posfleet.ScopeAct:       {visit, act},
	posfleet.ScopeProvision: {provision},
	posfleet.ScopeAdmin:     {manageTenant, adminAll},
}

// may reports whether p has perm n: its role grants it and, for a token
// with scopes, one of its scopes allows it.
func may(p posfleet.Principal, n perm) bool {
	if n == public {
		return true
	}
	if !slices.Contains(rolePerms[p.EffectiveRole()], n) {
		return false
	}
	if !p.Token || len(p.Scopes) == 0 {
		return true
	}
	for _, sc := range p.Scopes {
		if slices.Contains(scopePerms[sc], n) {
			return true
		}
	}
	return false
}

// pagePerms are the forms and buttons p's pages show: the same table.
func pagePerms(p posfleet.Principal) layout.Perms {
	return layout.Perms{Act: may(p, act), Visit: may(p, visit), Manage: may(p, manageTenant)}
}

var ruleKey = struct{ name string }{"rule"}

// routes is the server's mux with the policy attached: each route is
// registered with its rule, which s.api and s.page check once they know
// who is asking. A route with no rule is refused to everyone (fail closed).
type routes struct {
	*http.ServeMux
	log        *slog.Logger
	registered []string
}

func ruleFor(pattern string) (rule, bool) {
	for _, r := range policy {
		if r.route == pattern {
			return r, true
		}
	}
	return rule{}, false
}

// Handle registers h for pattern under the policy's rule for it.
func (m *routes) Handle(pattern string, h http.Handler) {
	m.registered = append(m.registered, pattern)
	ru, ok := ruleFor(pattern)
	if !ok {
		m.log.Error("route without a rule in the policy table: refused to everyone", "route", pattern)
		m.ServeMux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { writeError(w, m.log, errNoRule) })
		return
	}
	m.ServeMux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ruleKey, ru)))
	})
}

// HandleFunc registers h for pattern under the policy's rule for it.
func (m *routes) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

var (
	errNoRule = &posfleet.Error{Kind: posfleet.Forbidden, Code: "forbidden", Message: "this route has no rule in the role policy, so nobody may use it"}
)

// errRole is the refusal of a route p's role (or token scopes) does not allow.
func errRole(p posfleet.Principal, n perm) error {
	who := string(p.EffectiveRole())
	if who[0] == 'a' || who[0] == 'o' {
		who = "an " + who
	} else {
		who = "a " + who
	}
	if p.Token && len(p.Scopes) > 0 {
		who += " token with scopes " + joinComma(p.Scopes)
	}
	return &posfleet.Error{Kind: posfleet.Forbidden, Code: "forbidden",
		Message: "your role does not allow this: " + who + " may not " + permDoes[n]}
}

var permDoes = map[perm]string{
	read:         "read the fleet",
	visit:        "record visits or comment",
	act:          "send commands, update firmware or act on alarms",
	manageTenant: "manage users and tokens",
	provision:    "import terminals",
	adminAll:     "change what only an administrator of every tenant may change",
	campaigns:    "read firmware campaigns",
}

func joinComma(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// allowed checks r's route rule against its (authenticated) principal.
// A request that reached an authenticated handler without a rule is
// refused: fail closed.
func allowed(r *http.Request) error {
	ru, ok := r.Context().Value(ruleKey).(rule)
	if !ok {
		return errNoRule
	}
	p, _ := PrincipalFrom(r.Context())
	need := ru.need
	if n, ok := ru.byAction[r.PathValue("action")]; ok {
		need = n
	}
	if !may(p, need) {
		return errRole(p, need)
	}
	return nil
}

// inRegion refuses a crew a terminal outside its regions as "not found",
// as another tenant's terminal is: for every route with a terminal in its
// path (the terminal's page and API, its commands and visits).
func (s *Server) inRegion(r *http.Request) error {
	p, _ := PrincipalFrom(r.Context())
	if p.EffectiveRole() != posfleet.RoleCrew || r.PathValue("terminal") == "" || s.opts.Health == nil {
		return nil
	}
	return s.refInRegion(p, posfleet.TerminalRef{Tenant: r.PathValue("tenant"), Terminal: r.PathValue("terminal")})
}

// refInRegion is errNotFound when p is a crew and ref is not in its
// regions (or unknown).
func (s *Server) refInRegion(p posfleet.Principal, ref posfleet.TerminalRef) error {
	if p.EffectiveRole() != posfleet.RoleCrew || s.opts.Health == nil {
		return nil
	}
	site, ok := s.opts.Health.Site(ref)
	if !ok || !p.InRegion(site.Region) {
		return errNotFound
	}
	return nil
}

func mustPrincipal(r *http.Request) posfleet.Principal {
	p, _ := PrincipalFrom(r.Context())
	return p
}

// crewItems keeps the work items of p's regions: all of them for anyone
// but a crew.
func crewItems(p posfleet.Principal, items []health.WorkItem) []health.WorkItem {
	if p.EffectiveRole() != posfleet.RoleCrew {
		return items
	}
	out := []health.WorkItem{}
	for _, it := range items {
		if p.InRegion(it.Region) {
			out = append(out, it)
		}
	}
	return out
}

// crewFilter keeps a crew's terminal list to its regions: the region it
// asks for when that is one of its own, else its first. (The list filters
// by one region; a crew of several switches between them.)
func crewFilter(p posfleet.Principal, f *TerminalFilter) {
	if p.EffectiveRole() != posfleet.RoleCrew || len(p.Regions) == 0 {
		return
	}
	f.Region = crewRegion(p, f.Region)
}

// crewRegion is the region a list of p's shows when it asks for region:
// anyone but a crew gets what it asks; a crew its own region, or its first.
func crewRegion(p posfleet.Principal, region string) string {
	if p.EffectiveRole() != posfleet.RoleCrew || len(p.Regions) == 0 {
		return region
	}
	if region == "" || !p.InRegion(region) {
		return p.Regions[0]
	}
	return region
}
