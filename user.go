package posfleet

import (
	"strings"
	"time"
)

// AllTenants is the tenant of an administrator.
const AllTenants = "*"

// Principal is who is asking: a user or a token, and the tenant it sees.
type Principal struct {
	Name   string
	Tenant string // a tenant ID, or AllTenants
	Token  bool   // authenticated by an API token rather than a password
	// Epoch is the user's session generation when it signed in: a session
	// cookie carries it, and a password change, disabling or removal moves
	// the user's epoch on, which ends every older session at once.
	Epoch uint64
	// Role is what p may do; "" is a user stored before roles
	// (EffectiveRole).
	Role Role
	// Regions are a crew's regions: it sees only their terminals.
	Regions []string
	// Scopes limit a token (ScopeRead…); nil is every scope.
	Scopes []string
	// Language and TimeZone are what the user chose, else its tenant's
	// default ("" for neither: the browser's language, the language's
	// zone; package locale).
	Language, TimeZone string
}

// Sees reports whether p may see tenant's terminals.
func (p Principal) Sees(tenant string) bool { return p.Tenant == AllTenants || p.Tenant == tenant }

// Admin reports whether p sees every tenant.
func (p Principal) Admin() bool { return p.Tenant == AllTenants }

// User is a user as listed (no hash).
type User struct {
	Name     string    `json:"name"`
	Tenant   string    `json:"tenant"`
	Created  time.Time `json:"created"`
	Disabled bool      `json:"disabled"`
	// Role is "" for a user stored before roles (Principal.EffectiveRole).
	Role    Role     `json:"role"`
	Regions []string `json:"regions,omitempty"`
	// Language ("en", "zh-CN") and TimeZone (IANA) the user chose; "" is
	// the browser's language and the tenant's zone.
	Language string `json:"language,omitempty"`
	TimeZone string `json:"time_zone,omitempty"`
}

// APIToken is an API token as listed: what it is for and whom it serves,
// never its secret (shown once, when it is made).
type APIToken struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Tenant      string    `json:"tenant"`
	CreatedBy   string    `json:"created_by"`
	Created     time.Time `json:"created"`
	// Scopes limit the token; empty is every scope (a token made before
	// scopes existed).
	Scopes []string `json:"scopes,omitempty"`
}

// Role is what a user may do within the tenants it sees.
type Role string

// The roles, from most to least powerful. A user stored without a role
// (before roles existed) is RoleAdministrator when it sees every tenant and
// RoleOperator otherwise: what it could do then (Principal.EffectiveRole).
const (
	// RoleAdministrator does everything, in every tenant it sees.
	RoleAdministrator Role = "administrator"
	// RoleTenantAdmin manages its tenant's users, tokens, firmware policy
	// and notification channels and routes, and acts as an operator.
	RoleTenantAdmin Role = "tenant_admin"
	// RoleOperator acts: commands, firmware updates, alarm actions, visits.
	RoleOperator Role = "operator"
	// RoleCrew visits sites in its regions: the work list, those
	// terminals' pages, "visit done" with a note, comments on alarms.
	RoleCrew Role = "crew"
	// RoleViewer only reads.
	RoleViewer Role = "viewer"
)

// Roles lists the roles, most powerful first.
var Roles = []Role{RoleAdministrator, RoleTenantAdmin, RoleOperator, RoleCrew, RoleViewer}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// The scopes an API token may be limited to. A token's rights are its
// creator's role's rights that its scopes allow; a token with no scopes
// recorded (made before scopes existed) has all of them.
const (
	ScopeRead      = "read"      // GET the fleet, terminals, alarms, policy
	ScopeAct       = "act"       // commands, firmware updates, alarm actions, visits
	ScopeProvision = "provision" // import terminals
	ScopeAdmin     = "admin"     // users, tokens, policy, channels and routes
)

// Scopes lists the token scopes.
var Scopes = []string{ScopeRead, ScopeAct, ScopeProvision, ScopeAdmin}

// EffectiveRole is p's role, with the rule for users stored before roles:
// an administrator when p sees every tenant, an operator otherwise.
func (p Principal) EffectiveRole() Role {
	if p.Role != "" {
		return p.Role
	}
	if p.Admin() {
		return RoleAdministrator
	}
	return RoleOperator
}

// InRegion reports whether p may see a terminal of region: everyone but a
// crew sees every region of its tenants; a crew only its own.
func (p Principal) InRegion(region string) bool {
	if p.EffectiveRole() != RoleCrew {
		return true
	}
	for _, r := range p.Regions {
		if strings.EqualFold(r, region) {
			return true
		}
	}
	return false
}

// SplitList splits a comma-separated list (regions, scopes) into its
// trimmed, non-empty items.
func SplitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// TenantSettings are a tenant's defaults for its users and its mail:
// language ("en", "zh-CN"; "" for the browser's) and IANA time zone.
type TenantSettings struct {
	Tenant   string `json:"tenant"`
	Language string `json:"language"`
	TimeZone string `json:"time_zone"`
}
