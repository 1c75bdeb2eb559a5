package posfleet_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/posfleet/posfleet"
)

func TestError(t *testing.T) {
	sentinel := posfleet.KindError(posfleet.NotFound, "store: no such thing")
	for _, tc := range []struct {
		name string
		err  error
		kind posfleet.Kind
		text string
	}{
		{"nil", nil, posfleet.Internal, ""},
		{"plain", errors.New("boom"), posfleet.Internal, "boom"},
		{"errorf", posfleet.Errorf(posfleet.Invalid, "bad_request", "note: over %d characters", 10), posfleet.Invalid, "note: over 10 characters"},
		{"sentinel", sentinel, posfleet.NotFound, "store: no such thing"},
		{"wrapped sentinel", fmt.Errorf("get x: %w", sentinel), posfleet.NotFound, "get x: store: no such thing"},
		{"message and detail", &posfleet.Error{Kind: posfleet.Conflict, Message: "busy", Err: errors.New("lock held")}, posfleet.Conflict, "busy: lock held"},
		{"kind only", &posfleet.Error{Kind: posfleet.Unavailable}, posfleet.Unavailable, "unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if k := posfleet.ErrorKind(tc.err); k != tc.kind {
				t.Errorf("ErrorKind = %v, want %v", k, tc.kind)
			}
			if tc.err != nil && tc.err.Error() != tc.text {
				t.Errorf("Error() = %q, want %q", tc.err.Error(), tc.text)
			}
		})
	}
	if !errors.Is(fmt.Errorf("x: %w", sentinel), sentinel) {
		t.Error("a wrapped sentinel is not found by errors.Is")
	}
	var e *posfleet.Error
	if !errors.As(fmt.Errorf("x: %w", sentinel), &e) || e != sentinel {
		t.Error("errors.As does not find the sentinel")
	}
}
