package admin

import "net/url"

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
