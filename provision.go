package posfleet

import (
	"fmt"
	"strings"
	"time"
)

// RegisteredTerminal is a provisioned terminal as the registry stores it
// (PROTOCOL.md §4). Its secret hash is stored but never returned.
type RegisteredTerminal struct {
	TerminalRef
	Model, Merchant, Site, Region string
	Lat, Lon                      *float64 // nil when not given
	// Contact holds the optional columns address, contact, phone and
	// opening_hours ("" when not given).
	Contact
	Created, Updated time.Time
}

// Placement returns the terminal's provisioned model and place as the root
// Site the engine and the pages use; zero coordinates when not given.
func (t RegisteredTerminal) Placement() Site {
	st := Site{Model: t.Model, Merchant: t.Merchant, Site: t.Site, Region: t.Region, Contact: t.Contact}
	if t.Lat != nil && t.Lon != nil {
		st.Lat, st.Lon = *t.Lat, *t.Lon
	}
	return st
}

// Credential is a terminal's secret in clear, as handed to whoever installs
// the terminal. It exists only between Import and the credentials file.
type Credential struct {
	TerminalRef
	Secret string
}

// ImportResult counts what an Import did.
type ImportResult struct {
	Added, Updated, Unchanged int
	// Credentials holds every secret this import set, in file order: those
	// of new terminals (generated or taken from the file) and those rotated
	// by a secret column. Secrets of terminals left as they were are not
	// known to the registry and never appear.
	Credentials []Credential
}

// LineError is one problem in a provisioning file.
type LineError struct {
	Line   int    // 1-based line of the CSV file
	Column string // the column at fault, "" when the whole line is
	Err    error
}

// Error implements error.
func (e LineError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("line %d: %s: %v", e.Line, e.Column, e.Err)
}

// Unwrap returns the underlying error.
func (e LineError) Unwrap() error { return e.Err }

// ImportError is returned by Import for a provisioning file with bad lines.
// It lists every problem found, so that a file can be fixed in one go;
// nothing of the file has been applied.
type ImportError struct {
	Errors []LineError
}

// Error implements error; it lists every bad line, one per line of text.
func (e *ImportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "provisioning file has %d error(s), nothing imported:", len(e.Errors))
	for _, le := range e.Errors {
		b.WriteString("\n")
		b.WriteString(le.Error())
	}
	return b.String()
}
