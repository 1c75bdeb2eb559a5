package posfleet

import "time"

// Kinds of actor of an audit entry.
const (
	ActorUser   = "user"
	ActorToken  = "token"
	ActorSystem = "system"
)

// AuditOK is the outcome of an action that succeeded; a refused or failed
// one has its error kind (forbidden, invalid, not_found, ...).
const AuditOK = "ok"

// AuditEntry is one action in the audit log (PCI DSS 10.2): who did what,
// when, from where, to what, and how it ended. Detail never holds a
// secret (password, token, channel URL or secret).
type AuditEntry struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	ActorKind string    `json:"actor_kind"` // ActorUser, ActorToken, ActorSystem
	Tenant    string    `json:"tenant"`     // the tenant it concerned, "" for global
	Action    string    `json:"action"`     // sign_in, command, policy_change, ...
	Target    string    `json:"target"`     // terminal ref, user name, channel ID, ...
	Detail    string    `json:"detail"`
	Remote    string    `json:"remote"`
	Outcome   string    `json:"outcome"` // AuditOK or an error kind
}

// AuditFilter selects audit entries; zero fields select all. Limit 0 means
// the reader's default.
type AuditFilter struct {
	Tenant   string
	Actor    string
	Action   string
	From, To time.Time // From inclusive, To exclusive
	Limit    int
	Offset   int
}
