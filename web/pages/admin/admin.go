package admin

import (
	"context"
	"net/url"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
)

func tenantLabel(ctx context.Context, t string) string {
	if t == posfleet.AllTenants {
		return locale.T(ctx, "nav.all_tenants")
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

func stateLabel(ctx context.Context, disabled bool) string {
	return locale.T(ctx, "admin."+stateAction(disabled))
}

// roleName is a role in the reader's language.
func roleName(ctx context.Context, r posfleet.Role) string {
	if !r.Valid() {
		return string(r)
	}
	return locale.T(ctx, "admin.roles."+string(r))
}

// roleLabel is a user's role as shown: its effective role, and a crew's
// regions.
func roleLabel(ctx context.Context, u posfleet.User) string {
	role := roleName(ctx, posfleet.Principal{Tenant: u.Tenant, Role: u.Role}.EffectiveRole())
	if len(u.Regions) > 0 {
		return locale.T(ctx, "admin.role_regions", "Role", role, "Regions", strings.Join(u.Regions, ", "))
	}
	return role
}

func scopesLabel(ctx context.Context, scopes []string) string {
	if len(scopes) == 0 {
		return locale.T(ctx, "admin.scopes_all")
	}
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = ScopeLabel(ctx, sc)
	}
	return strings.Join(names, locale.T(ctx, "admin.scope.separator"))
}

// ScopeLabel is a token scope's name in the reader's language.
func ScopeLabel(ctx context.Context, sc string) string {
	switch sc {
	case posfleet.ScopeRead, posfleet.ScopeAct, posfleet.ScopeProvision, posfleet.ScopeAdmin:
		return locale.T(ctx, "admin.scope."+sc)
	}
	return sc
}

// languageLabel is a user's chosen language, or that it follows its
// browser.
func languageLabel(ctx context.Context, lang string) string {
	if lang == "" {
		return locale.T(ctx, "admin.language_browser")
	}
	return locale.LanguageName(lang)
}

// zoneLabel is a user's chosen time zone, or that it is its tenant's.
func zoneLabel(ctx context.Context, zone string) string {
	if zone == "" {
		return locale.T(ctx, "admin.zone_default")
	}
	return zone
}
