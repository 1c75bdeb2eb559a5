package web

import (
	"context"
	"net/http"

	"github.com/posfleet/posfleet"
)

// UserAdmin manages people and scripts while the server runs: users and
// API tokens live in the control-plane database, so a change made through
// one replica counts on every replica at its next request.
type UserAdmin interface {
	Users(ctx context.Context) ([]posfleet.User, error)
	AddUser(ctx context.Context, name, tenant, password string) error
	// NewUser adds u (Name, Tenant, Role, Regions) with a password.
	NewUser(ctx context.Context, u posfleet.User, password string) error
	// User returns one user; an unknown one is posfleet.NotFound.
	User(ctx context.Context, name string) (posfleet.User, error)
	// SetRole changes a user's role and regions.
	SetRole(ctx context.Context, name string, role posfleet.Role, regions []string) error
	SetPassword(ctx context.Context, name, password string) error
	SetDisabled(ctx context.Context, name string, disabled bool) error
	DeleteUser(ctx context.Context, name string) error
	Tokens(ctx context.Context) ([]posfleet.APIToken, error)
	// NewToken makes a token from spec's Name, Description, Tenant and
	// CreatedBy and returns its secret, shown once.
	NewToken(ctx context.Context, spec posfleet.APIToken) (string, posfleet.APIToken, error)
	RevokeToken(ctx context.Context, id string) error
}

// NewUserRequest is the body of POST /api/v1/users.
type NewUserRequest struct {
	Name     string `json:"name"`
	Tenant   string `json:"tenant"` // a tenant ID, or "*" for an administrator
	Password string `json:"password"`
	// Role is one of administrator, tenant_admin, operator, crew, viewer;
	// empty keeps the rule of users made before roles (an administrator
	// of "*", an operator of a tenant). Regions are a crew's.
	Role    posfleet.Role `json:"role"`
	Regions []string      `json:"regions"`
}

// RoleRequest is the body of PUT /api/v1/users/{name}/role.
type RoleRequest struct {
	Role    posfleet.Role `json:"role"`
	Regions []string      `json:"regions"`
}

// PasswordRequest is the body of POST /api/v1/users/{name}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// NewTokenRequest is the body of POST /api/v1/tokens.
type NewTokenRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Tenant      string `json:"tenant"` // a tenant ID, or "*" for all tenants
	// Scopes limit the token (read, act, provision, admin); none is every
	// scope its creator's role allows.
	Scopes []string `json:"scopes"`
}

// NewTokenResponse answers POST /api/v1/tokens: the token as listed, and
// its secret, which is never shown again.
type NewTokenResponse struct {
	Token  posfleet.APIToken `json:"token"`
	Secret string            `json:"secret"`
}

// mountUserAdmin adds the administrators' endpoints for users and tokens,
// and their page (page_admin.go).
func (s *Server) mountUserAdmin(ua UserAdmin) {
	// The role policy (roles.go) lets administrators and tenant
	// administrators in; manages() keeps the latter to their own tenant.
	admin := func(h http.HandlerFunc) http.HandlerFunc { return s.api(h) }
	// ownUser refuses a user of another tenant to a tenant administrator
	// as "not found", as another tenant's terminal is.
	ownUser := func(r *http.Request) error {
		p, _ := PrincipalFrom(r.Context())
		if p.Admin() {
			return nil
		}
		u, err := ua.User(r.Context(), r.PathValue("name"))
		if err != nil {
			return userErr(err)
		}
		if u.Tenant != p.Tenant {
			return userErr(posfleet.Errorf(posfleet.NotFound, "not_found", "no such user"))
		}
		return nil
	}
	s.mux.HandleFunc("GET /api/v1/users", admin(func(w http.ResponseWriter, r *http.Request) {
		users, err := ua.Users(r.Context())
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": ownTenant(r, users, func(u posfleet.User) string { return u.Tenant })})
	}))
	s.mux.HandleFunc("POST /api/v1/users", admin(func(w http.ResponseWriter, r *http.Request) {
		var req NewUserRequest
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		if err := mayGrant(r, req.Tenant, req.Role); err != nil {
			writeError(w, s.log, err)
			return
		}
		if err := ua.NewUser(r.Context(), posfleet.User{Name: req.Name, Tenant: req.Tenant, Role: req.Role, Regions: req.Regions}, req.Password); err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("user added", "user", req.Name, "tenant", req.Tenant, "role", req.Role, "by", principal(r).name)
		writeJSON(w, http.StatusCreated, map[string]any{"name": req.Name, "tenant": req.Tenant, "disabled": false, "role": req.Role, "regions": req.Regions})
	}))
	s.mux.HandleFunc("PUT /api/v1/users/{name}/role", admin(func(w http.ResponseWriter, r *http.Request) {
		var req RoleRequest
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		name := r.PathValue("name")
		err := ownUser(r)
		if err == nil {
			err = mayGrant(r, "", req.Role)
		}
		if err == nil {
			err = userErr(ua.SetRole(r.Context(), name, req.Role, req.Regions))
		}
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("role set", "user", name, "role", req.Role, "regions", req.Regions, "by", principal(r).name)
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "role": req.Role, "regions": req.Regions})
	}))
	s.mux.HandleFunc("POST /api/v1/users/{name}/password", admin(func(w http.ResponseWriter, r *http.Request) {
		var req PasswordRequest
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		name := r.PathValue("name")
		if err := ownUser(r); err != nil {
			writeError(w, s.log, err)
			return
		}
		if err := userErr(ua.SetPassword(r.Context(), name, req.Password)); err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("password set", "user", name, "by", principal(r).name)
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "password_changed": true})
	}))
	s.mux.HandleFunc("PUT /api/v1/users/{name}/preferences", admin(func(w http.ResponseWriter, r *http.Request) {
		pr, ok := ua.(Preferences)
		if !ok {
			writeError(w, s.log, errNotFound)
			return
		}
		var req prefsJSON
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		name := r.PathValue("name")
		err := ownUser(r)
		if err == nil {
			err = userErr(pr.SetPreferences(r.Context(), name, req.Language, req.TimeZone))
		}
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("preferences set", "user", name, "language", req.Language, "time_zone", req.TimeZone, "by", principal(r).name)
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "language": req.Language, "time_zone": req.TimeZone})
	}))
	setDisabled := func(disabled bool) http.HandlerFunc {
		return admin(func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("name")
			if err := ownUser(r); err != nil {
				writeError(w, s.log, err)
				return
			}
			if err := userErr(ua.SetDisabled(r.Context(), name, disabled)); err != nil {
				writeError(w, s.log, err)
				return
			}
			s.log.Info("user changed", "user", name, "disabled", disabled, "by", principal(r).name)
			writeJSON(w, http.StatusOK, map[string]any{"name": name, "disabled": disabled})
		})
	}
	s.mux.HandleFunc("POST /api/v1/users/{name}/disable", setDisabled(true))
	s.mux.HandleFunc("POST /api/v1/users/{name}/enable", setDisabled(false))
	s.mux.HandleFunc("DELETE /api/v1/users/{name}", admin(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := ownUser(r); err != nil {
			writeError(w, s.log, err)
			return
		}
		if err := userErr(ua.DeleteUser(r.Context(), name)); err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("user deleted", "user", name, "by", principal(r).name)
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "deleted": true})
	}))

	s.mux.HandleFunc("GET /api/v1/tokens", admin(func(w http.ResponseWriter, r *http.Request) {
		toks, err := ua.Tokens(r.Context())
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"tokens": ownTenant(r, toks, func(t posfleet.APIToken) string { return t.Tenant })})
	}))
	s.mux.HandleFunc("POST /api/v1/tokens", admin(func(w http.ResponseWriter, r *http.Request) {
		var req NewTokenRequest
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		if err := mayGrant(r, req.Tenant, ""); err != nil {
			writeError(w, s.log, err)
			return
		}
		secret, tok, err := ua.NewToken(r.Context(), posfleet.APIToken{Name: req.Name, Description: req.Description, Tenant: req.Tenant, CreatedBy: principal(r).name, Scopes: req.Scopes})
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("token created", "token_id", tok.ID, "name", tok.Name, "tenant", tok.Tenant, "by", principal(r).name)
		writeJSON(w, http.StatusCreated, NewTokenResponse{Token: tok, Secret: secret})
	}))
	s.mux.HandleFunc("DELETE /api/v1/tokens/{id}", admin(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := ownToken(r, ua, id)
		if err == nil {
			err = ua.RevokeToken(r.Context(), id)
		}
		if err != nil {
			if posfleet.ErrorKind(err) == posfleet.NotFound {
				err = &posfleet.Error{Kind: posfleet.NotFound, Code: "not_found", Message: "no such token", Err: err}
			}
			writeError(w, s.log, err)
			return
		}
		s.log.Info("token revoked", "token_id", id, "by", principal(r).name)
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true})
	}))
	s.mountAdminPage(ua)
}

func userErr(err error) error {
	if posfleet.ErrorKind(err) == posfleet.NotFound { // auth.ErrNotFound
		return &posfleet.Error{Kind: posfleet.NotFound, Code: "not_found", Message: "no such user", Err: err}
	}
	return err
}

// ownTenant keeps the items of the caller's tenant, or all of them for an
// administrator.
func ownTenant[T any](r *http.Request, items []T, tenant func(T) string) []T {
	p, _ := PrincipalFrom(r.Context())
	if p.Admin() {
		return items
	}
	out := []T{}
	for _, it := range items {
		if tenant(it) == p.Tenant {
			out = append(out, it)
		}
	}
	return out
}

var errGrant = &posfleet.Error{Kind: posfleet.Forbidden, Code: "forbidden",
	Message: "a tenant administrator manages the users and tokens of its own tenant only, and makes no administrators"}

// mayGrant checks that the caller may make a user or token of tenant
// ("" for the user's own, checked by ownUser) with role: an
// administrator may make anything; a tenant administrator only in its own
// tenant and no administrator.
func mayGrant(r *http.Request, tenant string, role posfleet.Role) error {
	p, _ := PrincipalFrom(r.Context())
	if p.Admin() {
		return nil
	}
	if (tenant != "" && tenant != p.Tenant) || role == posfleet.RoleAdministrator {
		return errGrant
	}
	return nil
}

// ownToken refuses another tenant's token to a tenant administrator as
// "not found".
func ownToken(r *http.Request, ua UserAdmin, id string) error {
	p, _ := PrincipalFrom(r.Context())
	if p.Admin() {
		return nil
	}
	toks, err := ua.Tokens(r.Context())
	if err != nil {
		return err
	}
	for _, t := range toks {
		if t.ID == id && t.Tenant == p.Tenant {
			return nil
		}
	}
	return posfleet.Errorf(posfleet.NotFound, "not_found", "no such token")
}
