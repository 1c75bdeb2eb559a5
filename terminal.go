package posfleet

import (
	"errors"
	"fmt"
	"strings"
)

// MaxIDLen is the longest tenant or terminal ID the protocol allows.
const MaxIDLen = 64

// ErrInvalidID is returned for a tenant or terminal ID outside the protocol's
// alphabet (A-Z a-z 0-9 . _ -) or length (1–64), or holding card data.
var ErrInvalidID = errors.New("invalid id: want 1-64 characters of A-Z a-z 0-9 . _ -, no card number")

// ValidID reports whether s is a valid tenant or terminal ID. An ID that
// holds card data (ContainsCardData) is not: IDs are stored, logged and
// shown everywhere, as tags, spool keys and page text.
func ValidID(s string) bool {
	return validIDChars(s) && !ContainsCardData(s)
}

func validIDChars(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// TerminalRef identifies one terminal: its tenant and its terminal ID.
// Its JSON keys are lower case like the rest of the API's.
type TerminalRef struct {
	Tenant   string `json:"tenant"`
	Terminal string `json:"terminal"`
}

// String returns the terminal's MQTT client ID and username, "{tenant}:{terminal}".
func (r TerminalRef) String() string { return r.Tenant + ":" + r.Terminal }

// Validate returns an error when either ID is invalid.
func (r TerminalRef) Validate() error {
	if !ValidID(r.Tenant) {
		return fmt.Errorf("tenant %q: %w", Redact(r.Tenant), ErrInvalidID)
	}
	if !ValidID(r.Terminal) {
		return fmt.Errorf("terminal %q: %w", Redact(r.Terminal), ErrInvalidID)
	}
	return nil
}

// ParseClientID parses "{tenant}:{terminal}", the form of a terminal's MQTT
// client ID and username.
func ParseClientID(s string) (TerminalRef, error) {
	tenant, terminal, ok := strings.Cut(s, ":")
	if !ok {
		return TerminalRef{}, fmt.Errorf("client id %q: want {tenant}:{terminal}", Redact(s))
	}
	r := TerminalRef{Tenant: tenant, Terminal: terminal}
	if err := r.Validate(); err != nil {
		return TerminalRef{}, err
	}
	return r, nil
}
