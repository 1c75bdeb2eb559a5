package web

import (
	"context"
	"net/http"

	"github.com/posfleet/posfleet"
)

// UserAdmin manages users while the server holds the user store (the
// CLI cannot open it then: bbolt locks the file).
type UserAdmin interface {
	Users(ctx context.Context) ([]posfleet.User, error)
	SetDisabled(ctx context.Context, name string, disabled bool) error
	DeleteUser(ctx context.Context, name string) error
}

// mountUserAdmin adds the administrators' user endpoints.
func (s *Server) mountUserAdmin(ua UserAdmin) {
	s.mux.HandleFunc("GET /api/v1/users", s.api(s.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		users, err := ua.Users(r.Context())
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": users})
	})))
	setDisabled := func(disabled bool) http.HandlerFunc {
		return s.api(s.adminOnly(func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("name")
			if err := userErr(ua.SetDisabled(r.Context(), name, disabled)); err != nil {
				writeError(w, s.log, err)
				return
			}
			s.log.Info("user changed", "user", name, "disabled", disabled, "by", principal(r).name)
			writeJSON(w, http.StatusOK, map[string]any{"name": name, "disabled": disabled})
		}))
	}
	s.mux.HandleFunc("POST /api/v1/users/{name}/disable", setDisabled(true))
	s.mux.HandleFunc("POST /api/v1/users/{name}/enable", setDisabled(false))
	s.mux.HandleFunc("DELETE /api/v1/users/{name}", s.api(s.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := userErr(ua.DeleteUser(r.Context(), name)); err != nil {
			writeError(w, s.log, err)
			return
		}
		s.log.Info("user deleted", "user", name, "by", principal(r).name)
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "deleted": true})
	})))
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
