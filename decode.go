package posfleet

import "time"

// Decode validates one uplink payload of terminal ref on channel ch and
// returns the decoded message, or a *Rejection saying why it was refused.
func Decode(ref TerminalRef, ch Channel, payload []byte, received time.Time) (*Message, error) {
	panic("not implemented yet")
}
