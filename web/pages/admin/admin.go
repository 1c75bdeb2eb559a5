package admin

import (
	"net/url"
	"strings"

	"github.com/posfleet/posfleet"
)

func tenantLabel(t string) string {
	if t == "*" {
		return "all tenants"
	}
	return t
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// userHref is the address of an action on a user; the name is escaped,
// since user names may hold characters a path may not.
func userHref(name, action string) string {
	return "/admin/users/" + url.PathEscape(name) + "/" + action
}

// stateAction is the action that flips a user's state.
func stateAction(disabled bool) string {
	if disabled {
		return "enable"
	}
	return "disable"
}

func stateLabel(disabled bool) string {
	if disabled {
		return "Enable"
	}
	return "Disable"
}

// roleLabel is a user's role as shown: its effective role, and a crew's
// regions.
func roleLabel(u posfleet.User) string {
	role := posfleet.Principal{Tenant: u.Tenant, Role: u.Role}.EffectiveRole()
	if len(u.Regions) > 0 {
		return string(role) + " (" + strings.Join(u.Regions, ", ") + ")"
	}
	return string(role)
}

func scopesLabel(scopes []string) string {
	if len(scopes) == 0 {
		return "all"
	}
	return strings.Join(scopes, ", ")
}
