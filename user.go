package posfleet

import "time"

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
}
