package posfleet

import (
	"errors"
	"fmt"
)

// Kind is the class of an error, as a caller acts on it: not found,
// invalid input, a conflict with the current state, and so on. The web
// side maps each kind to one HTTP status (web/errors.go); other packages
// attach a kind to their errors and never name a status.
type Kind uint8

// The kinds of errors. Internal, the zero value, is a failure on the
// server's side: its detail is logged, never shown.
const (
	Internal        Kind = iota // a failure of the server's own: logged, shown as a generic message
	Invalid                     // the request or its input is malformed or breaks a rule
	Unauthorized                // no or unknown credentials
	Forbidden                   // credentials that may not do this
	NotFound                    // no such terminal, user or page
	Conflict                    // the request contradicts the current state (no session, no policy)
	TooLarge                    // the request body is over its limit
	TooManyRequests             // a rate limit refused the request
	Unavailable                 // a part needed for the request is not running here
)

var kindNames = [...]string{
	Internal:        "internal",
	Invalid:         "invalid",
	Unauthorized:    "unauthorized",
	Forbidden:       "forbidden",
	NotFound:        "not found",
	Conflict:        "conflict",
	TooLarge:        "too large",
	TooManyRequests: "too many requests",
	Unavailable:     "unavailable",
}

// String names the kind in words.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error is posfleet's error with a kind (Upspin's errors.E, wtf's Error).
// Code is a stable machine-readable word for API clients ("not_reachable");
// empty means the kind's own. Message is for the person who sees it;
// empty means the kind's generic one. Err is the detail behind it, for
// logs and errors.Is/As.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Err     error
}

// Error returns the message, then the detail, or the kind when neither is set.
func (e *Error) Error() string {
	switch {
	case e.Message != "" && e.Err != nil:
		return e.Message + ": " + e.Err.Error()
	case e.Message != "":
		return e.Message
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Kind.String()
}

// Unwrap returns the detail.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an error of kind with a code and a message for people.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// KindError returns a sentinel error of kind whose text is detail: the
// message people see is the kind's generic one, the detail goes to logs.
func KindError(kind Kind, detail string) *Error {
	return &Error{Kind: kind, Err: errors.New(detail)}
}

// ErrorKind returns the kind of the first *Error in err's chain; Internal
// when there is none.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
