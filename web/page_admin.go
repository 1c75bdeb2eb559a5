package web

import (
	"cmp"
	"errors"
	"net/http"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/account"
	"github.com/posfleet/posfleet/web/pages/admin"
	"github.com/posfleet/posfleet/web/pages/layout"
)

// adminNotices are the messages (catalogue IDs) of the administrators'
// page after a redirect (?done=): fixed texts, so that a link cannot make
// the page say anything else.
var adminNotices = map[string]string{
	"user-added":       "admin.done.user_added",
	"user-disable":     "admin.done.user_disable",
	"user-enable":      "admin.done.user_enable",
	"user-delete":      "admin.done.user_delete",
	"user-password":    "admin.done.user_password",
	"user-role":        "admin.done.user_role",
	"user-preferences": "admin.done.user_preferences",
	"token-revoked":    "admin.done.token_revoked",
}

// mountAdminPage adds the administrators' page of users and tokens.
func (s *Server) mountAdminPage(ua UserAdmin) {
	s.mux.HandleFunc("GET /admin", s.page(s.adminOnlyPage(func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		v := admin.View{Frame: frame}
		if id, ok := adminNotices[r.URL.Query().Get("done")]; ok {
			v.Notice = locale.T(r.Context(), id)
		}
		s.renderAdmin(w, r, http.StatusOK, ua, v)
	})))
	s.mux.HandleFunc("POST /admin/users", s.page(s.adminOnlyPage(func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		name, tenant := strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("tenant"))
		role, regions := posfleet.Role(r.PostFormValue("role")), posfleet.SplitList(r.PostFormValue("regions"))
		err := mayGrant(r, tenant, role)
		if err == nil {
			err = ua.NewUser(r.Context(), posfleet.User{Name: name, Tenant: tenant, Role: role, Regions: regions}, r.PostFormValue("password"))
		}
		if err != nil {
			s.adminRefused(w, r, ua, admin.View{Frame: frame, UserName: name, UserTenant: tenant, UserRole: string(role), UserRegions: r.PostFormValue("regions")}, err)
			return
		}
		s.log.Info("user added", "user", name, "tenant", tenant, "role", role, "by", principal(r).name)
		http.Redirect(w, r, "/admin?done=user-added", http.StatusSeeOther)
	})))
	s.mux.HandleFunc("POST /admin/users/{name}/{action}", s.page(s.adminOnlyPage(func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		name, action := r.PathValue("name"), r.PathValue("action")
		if name == frame.User && action != "password" && action != "preferences" {
			// An administrator locking themselves out is a slip, not a wish.
			s.adminRefused(w, r, ua, admin.View{Frame: frame}, posfleet.Errorf(posfleet.Conflict, "self", "%s", locale.T(r.Context(), "admin.self")))
			return
		}
		var err error
		p, _ := PrincipalFrom(r.Context())
		if !p.Admin() {
			if u, uerr := ua.User(r.Context(), name); uerr != nil || u.Tenant != p.Tenant {
				s.adminRefused(w, r, ua, admin.View{Frame: frame}, userErr(posfleet.Errorf(posfleet.NotFound, "not_found", "no such user")))
				return
			}
		}
		switch action {
		case "role":
			role := posfleet.Role(r.PostFormValue("role"))
			if err = mayGrant(r, "", role); err == nil {
				err = ua.SetRole(r.Context(), name, role, posfleet.SplitList(r.PostFormValue("regions")))
			}
		case "disable", "enable":
			err = ua.SetDisabled(r.Context(), name, action == "disable")
		case "delete":
			err = ua.DeleteUser(r.Context(), name)
		case "password":
			err = ua.SetPassword(r.Context(), name, r.PostFormValue("password"))
		case "preferences":
			pr, ok := ua.(Preferences)
			if !ok {
				s.renderError(w, r, errNotFound)
				return
			}
			err = pr.SetPreferences(r.Context(), name, strings.TrimSpace(r.PostFormValue("language")), strings.TrimSpace(r.PostFormValue("time_zone")))
		default:
			s.renderError(w, r, errNotFound)
			return
		}
		if err != nil {
			s.adminRefused(w, r, ua, admin.View{Frame: frame}, userErr(err))
			return
		}
		s.log.Info("user changed", "user", name, "action", action, "by", principal(r).name)
		http.Redirect(w, r, "/admin?done=user-"+action, http.StatusSeeOther)
	})))
	s.mux.HandleFunc("POST /admin/tokens", s.page(s.adminOnlyPage(func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		spec := posfleet.APIToken{
			Name:        strings.TrimSpace(r.PostFormValue("name")),
			Description: strings.TrimSpace(r.PostFormValue("description")),
			Tenant:      strings.TrimSpace(r.PostFormValue("tenant")),
			CreatedBy:   principal(r).name,
			Scopes:      r.PostForm["scopes"],
		}
		err := mayGrant(r, spec.Tenant, "")
		var (
			secret string
			tok    posfleet.APIToken
		)
		if err == nil {
			secret, tok, err = ua.NewToken(r.Context(), spec)
		}
		if err != nil {
			s.adminRefused(w, r, ua, admin.View{Frame: frame, TokenName: spec.Name, TokenDescription: spec.Description, TokenTenant: spec.Tenant}, err)
			return
		}
		s.log.Info("token created", "token_id", tok.ID, "name", tok.Name, "tenant", tok.Tenant, "by", principal(r).name)
		// The secret is in this answer only: no redirect, so that it never
		// sits in a URL or the browser's history.
		s.renderAdmin(w, r, http.StatusOK, ua, admin.View{Frame: frame, NewToken: tok, NewSecret: secret})
	})))
	s.mux.HandleFunc("POST /admin/tokens/{id}/revoke", s.page(s.adminOnlyPage(func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		id := r.PathValue("id")
		err := ownToken(r, ua, id)
		if err == nil {
			err = ua.RevokeToken(r.Context(), id)
		}
		if err != nil {
			s.adminRefused(w, r, ua, admin.View{Frame: frame}, err)
			return
		}
		s.log.Info("token revoked", "token_id", id, "by", principal(r).name)
		http.Redirect(w, r, "/admin?done=token-revoked", http.StatusSeeOther)
	})))
}

// adminOnlyPage titles the page of users and tokens: the role policy
// (roles.go) lets administrators and tenant administrators in, and the
// handlers keep the latter to their own tenant.
func (s *Server) adminOnlyPage(h func(http.ResponseWriter, *http.Request, layout.Page)) func(http.ResponseWriter, *http.Request, layout.Page) {
	return func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		frame.Title = locale.T(r.Context(), "nav.admin")
		h(w, r, frame)
	}
}

// renderAdmin renders the page with the users and tokens of now.
func (s *Server) renderAdmin(w http.ResponseWriter, r *http.Request, status int, ua UserAdmin, v admin.View) {
	var err error
	if v.Users, err = ua.Users(r.Context()); err != nil {
		s.renderError(w, r, err)
		return
	}
	if v.Tokens, err = ua.Tokens(r.Context()); err != nil {
		s.renderError(w, r, err)
		return
	}
	v.Users = ownTenant(r, v.Users, func(u posfleet.User) string { return u.Tenant })
	v.Tokens = ownTenant(r, v.Tokens, func(t posfleet.APIToken) string { return t.Tenant })
	v.AllTenants = principal(r).admin
	if _, ok := ua.(Preferences); ok {
		v.Preferences, v.Zones = true, account.CommonZones
	}
	s.render(w, r, status, admin.Page(v))
}

// adminRefused shows why an action was refused on the page, with the
// error's status; a failure of the server's own is a plain error page.
func (s *Server) adminRefused(w http.ResponseWriter, r *http.Request, ua UserAdmin, v admin.View, err error) {
	status, msg, ok := s.actionRefused(err)
	if !ok {
		s.renderError(w, r, err)
		return
	}
	v.Error = adminProblem(r, err, msg)
	s.renderAdmin(w, r, status, ua, v)
}

// adminProblem is why a change on the page was refused, in the reader's
// language where the error's code says it well enough; the store's
// message (English) otherwise.
func adminProblem(r *http.Request, err error, msg string) string {
	ctx := r.Context()
	if errors.Is(err, errGrant) {
		return locale.T(ctx, "admin.err.grant")
	}
	var e *posfleet.Error
	if !errors.As(err, &e) {
		return msg
	}
	name := cmp.Or(r.PathValue("name"), strings.TrimSpace(r.PostFormValue("name")))
	switch e.Code {
	case "not_found":
		if r.PathValue("id") != "" {
			return locale.T(ctx, "admin.err.no_token")
		}
		return locale.T(ctx, "admin.err.no_user")
	case "exists":
		return locale.T(ctx, "admin.err.exists", "Name", name)
	case "bad_name":
		return locale.T(ctx, "admin.err.bad_name", "Name", name)
	case "bad_tenant":
		return locale.T(ctx, "admin.err.bad_tenant", "Tenant", strings.TrimSpace(r.PostFormValue("tenant")))
	case "bad_language", "bad_time_zone":
		return prefsProblem(r, err, msg)
	}
	return msg
}
