package posfleet

import (
	"errors"
	"fmt"
)

// MaxNoteLen is the longest crew-visit note, in bytes.
const MaxNoteLen = 2000

// The reasons ValidateNote refuses a note.
var (
	ErrNoteTooLong  = fmt.Errorf("note: want at most %d characters", MaxNoteLen)
	ErrNoteCardData = errors.New("note: looks like it holds a card number; card data is never stored")
)

// ValidateNote checks a crew-visit note, free text from a user that is
// stored with the visit and shown on the pages: at most MaxNoteLen bytes
// and no card data (ContainsCardData). It is the one rule for notes; the API,
// the pages and the health engine all call it.
func ValidateNote(note string) error {
	if len(note) > MaxNoteLen {
		return ErrNoteTooLong
	}
	if ContainsCardData(note) {
		return ErrNoteCardData
	}
	return nil
}
