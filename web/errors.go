package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
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

// writeJSON answers with v as JSON. Empty lists and maps are [] and {},
// never null: clients iterate them without a nil check.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if v != nil {
		v = noNulls(reflect.ValueOf(v)).Interface()
	}
	enc.Encode(v)
}

// noNulls returns a copy of v in which every nil slice and map is an empty
// one. Values that marshal themselves (time.Time) are left as they are.
func noNulls(v reflect.Value) reflect.Value {
	if v.Type().Implements(marshalerType) && v.Kind() != reflect.Pointer && v.Kind() != reflect.Interface {
		return v
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(noNulls(v.Elem()))
		return p
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(noNulls(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := range v.NumField() {
			if f := out.Field(i); f.CanSet() {
				f.Set(noNulls(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v // []byte is a base64 string
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(noNulls(v.Index(i)))
		}
		return out
	case reflect.Map:
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out.SetMapIndex(iter.Key(), noNulls(iter.Value()))
		}
		return out
	}
	return v
}

var marshalerType = reflect.TypeFor[json.Marshaler]()
