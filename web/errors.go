package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"reflect"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// errorStatus is what a client sees of an error of one kind: the HTTP
// status, the code of the JSON body and the message when the error has
// none of its own.
type errorStatus struct {
	Status  int
	Code    string
	Message string
}

// errorStatuses is the one table from error kinds to HTTP statuses, used
// by writeError (JSON) and renderError (HTML) alike. An error's own Code
// and Message (posfleet.Error) take the place of the kind's.
var errorStatuses = map[posfleet.Kind]errorStatus{
	posfleet.Internal:        {http.StatusInternalServerError, "internal", "something went wrong on the server; it is logged"},
	posfleet.Invalid:         {http.StatusBadRequest, "bad_request", "the request is malformed"},
	posfleet.Unauthorized:    {http.StatusUnauthorized, "unauthorized", "sign in, or send an API token as Authorization: Bearer <token>"},
	posfleet.Forbidden:       {http.StatusForbidden, "forbidden", "only an administrator (a user or token of all tenants) may do this"},
	posfleet.NotFound:        {http.StatusNotFound, "not_found", "no such page or terminal"},
	posfleet.Conflict:        {http.StatusConflict, "conflict", "the request conflicts with the current state"},
	posfleet.TooLarge:        {http.StatusRequestEntityTooLarge, "too_large", "the request is too large"},
	posfleet.TooManyRequests: {http.StatusTooManyRequests, "too_many_requests", "too many attempts; wait a minute and try again"},
	posfleet.Unavailable:     {http.StatusServiceUnavailable, "unavailable", "a part of posfleet this needs is not running here"},
}

// statusOf returns what a client sees of err, and false when err is a
// server failure (no kind, or Internal) whose detail only the log gets.
func statusOf(err error) (errorStatus, bool) {
	var e *posfleet.Error
	if !errors.As(err, &e) || e.Kind == posfleet.Internal {
		return errorStatuses[posfleet.Internal], false
	}
	st, ok := errorStatuses[e.Kind]
	if !ok {
		return errorStatuses[posfleet.Internal], false
	}
	if e.Code != "" {
		st.Code = e.Code
	}
	if e.Message != "" {
		st.Message = e.Message
	}
	return st, true
}

var (
	errUnauthorized = &posfleet.Error{Kind: posfleet.Unauthorized, Code: "unauthorized", Message: "sign in, or send an API token as Authorization: Bearer <token>"}
	errCSRF         = &posfleet.Error{Kind: posfleet.Forbidden, Code: "csrf", Message: "the form is stale or came from another site; reload the page and try again"}
	errNotFound     = &posfleet.Error{Kind: posfleet.NotFound, Code: "not_found", Message: "no such page or terminal"}
	errTooMany      = &posfleet.Error{Kind: posfleet.TooManyRequests, Code: "too_many_requests", Message: "too many attempts; wait a minute and try again"}
	errAdminOnly    = &posfleet.Error{Kind: posfleet.Forbidden, Code: "forbidden", Message: "only an administrator (a user or token of all tenants) may do this"}
	errNoBroker     = &posfleet.Error{Kind: posfleet.Unavailable, Code: "no_broker", Message: "this posfleet process runs no broker; send commands through one that does"}
)

// badRequest is a 400 with a message naming what is wrong.
func badRequest(msg string) *posfleet.Error {
	return &posfleet.Error{Kind: posfleet.Invalid, Code: "bad_request", Message: msg}
}

// writeError answers with the error as JSON: {"error":{"code","message"}},
// with the line of a refused firmware policy. Errors without a kind are
// logged in full and shown as a generic 500.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	st, ok := statusOf(err)
	if !ok {
		log.Error("request failed", "err", err)
	}
	if st.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="posfleet"`)
	}
	body := map[string]any{"code": st.Code, "message": st.Message}
	var pe *health.PolicyError
	if ok && errors.As(err, &pe) {
		body["line"] = pe.Line
	}
	writeJSON(w, st.Status, map[string]any{"error": body})
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
