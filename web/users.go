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
	admin := func(h http.HandlerFunc) http.HandlerFunc { return s.api(s.adminOnly(h)) }
	s.mux.HandleFunc("GET /api/v1/users", admin(func(w http.ResponseWriter, r *http.Request) {
		users, err := ua.Users(r.Context())
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": users})
	}))
	s.mux.HandleFunc("POST /api/v1/users", admin(func(w http.ResponseWriter, r *http.Request) {
		var req NewUserRequest
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		if err := ua.AddUser(r.Context(), req.Name, req.Tenant, req.Password); err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("user added", "user", req.Name, "tenant", req.Tenant, "by", principal(r).name)
		writeJSON(w, http.StatusCreated, map[string]any{"name": req.Name, "tenant": req.Tenant, "disabled": false})
	}))
	s.mux.HandleFunc("POST /api/v1/users/{name}/password", admin(func(w http.ResponseWriter, r *http.Request) {
		var req PasswordRequest
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		name := r.PathValue("name")
		if err := userErr(ua.SetPassword(r.Context(), name, req.Password)); err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("password set", "user", name, "by", principal(r).name)
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "password_changed": true})
	}))
	setDisabled := func(disabled bool) http.HandlerFunc {
		return admin(func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("name")
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
		writeJSON(w, http.StatusOK, map[string]any{"tokens": toks})
	}))
	s.mux.HandleFunc("POST /api/v1/tokens", admin(func(w http.ResponseWriter, r *http.Request) {
		var req NewTokenRequest
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		secret, tok, err := ua.NewToken(r.Context(), posfleet.APIToken{Name: req.Name, Description: req.Description, Tenant: req.Tenant, CreatedBy: principal(r).name})
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("token created", "token_id", tok.ID, "name", tok.Name, "tenant", tok.Tenant, "by", principal(r).name)
		writeJSON(w, http.StatusCreated, NewTokenResponse{Token: tok, Secret: secret})
	}))
	s.mux.HandleFunc("DELETE /api/v1/tokens/{id}", admin(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := ua.RevokeToken(r.Context(), id); err != nil {
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

// adminOnly refuses callers that are not administrators.
func (s *Server) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !principal(r).admin {
			writeError(w, s.log, errAdminOnly)
			return
		}
		h(w, r)
	}
}
