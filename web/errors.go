package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
)

// apiError is an error a client can act on: an HTTP status, a stable code
// and a message for people. Every error that reaches a client passes
// through writeError, the one place where errors become statuses.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

var (
	errUnauthorized = &apiError{http.StatusUnauthorized, "unauthorized", "sign in, or send an API token as Authorization: Bearer <token>"}
	errCSRF         = &apiError{http.StatusForbidden, "csrf", "the form is stale or came from another site; reload the page and try again"}
	errNotFound     = &apiError{http.StatusNotFound, "not_found", "no such page or terminal"}
	errTooMany      = &apiError{http.StatusTooManyRequests, "too_many_requests", "too many attempts; wait a minute and try again"}
)

// badRequest is a 400 with a message naming what is wrong.
func badRequest(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "bad_request", msg}
}

// writeError answers with the error as JSON: {"error":{"code","message"}}.
// Errors that are not apiErrors are logged in full and shown as a generic 500.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		log.Error("request failed", "err", err)
		ae = &apiError{http.StatusInternalServerError, "internal", "something went wrong on the server; it is logged"}
	}
	if ae.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="posfleet"`)
	}
	writeJSON(w, ae.Status, map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
