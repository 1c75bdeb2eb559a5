// Package commands keeps track of the commands sent to terminals and the
// acks they answered with, so the vendor sees on a terminal's page whether
// an update or a reboot was accepted, done or failed.
package commands

import (
	"sync"
	"time"

	"github.com/posfleet/posfleet"
)

// PerTerminal is how many commands are kept per terminal (the newest).
const PerTerminal = 20

// Record is one command and what became of it.
type Record struct {
	Command posfleet.Command `json:"command"`
	SentAt  time.Time        `json:"sent_at"`
	SentBy  string           `json:"sent_by"`
	// Status is the latest ack status ("" while none arrived: queued or in
	// flight), with its detail and time.
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
	AckAt  time.Time `json:"ack_at,omitzero"`
	// Acks are every ack in arrival order (accepted, then done or failed).
	Acks []Ack `json:"acks"`
}

// Ack is one answer of the terminal.
type Ack struct {
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Tracker remembers commands per terminal. It is safe for concurrent use.
type Tracker struct {
	mu   sync.Mutex
	byID map[posfleet.TerminalRef][]*Record
}

// New returns an empty Tracker.
func New() *Tracker { return &Tracker{byID: map[posfleet.TerminalRef][]*Record{}} }

// Sent records a command sent to ref.
func (t *Tracker) Sent(ref posfleet.TerminalRef, cmd posfleet.Command, by string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := append(t.byID[ref], &Record{Command: cmd, SentAt: at.UTC(), SentBy: by, Acks: []Ack{}})
	if len(list) > PerTerminal {
		list = list[len(list)-PerTerminal:]
	}
	t.byID[ref] = list
}

// Observe takes every accepted message and keeps the acks of known commands.
func (t *Tracker) Observe(m *posfleet.Message) {
	if m.Ack == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.byID[m.Terminal] {
		if r.Command.ID == m.Ack.CmdID {
			r.Acks = append(r.Acks, Ack{Status: m.Ack.Status, Detail: m.Ack.Detail, At: m.Ack.TS.UTC()})
			r.Status, r.Detail, r.AckAt = m.Ack.Status, m.Ack.Detail, m.Ack.TS.UTC()
			return
		}
	}
}

// List returns ref's commands, newest first.
func (t *Tracker) List(ref posfleet.TerminalRef) []Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.byID[ref]
	out := make([]Record, 0, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		r := *list[i]
		r.Acks = append([]Ack{}, r.Acks...)
		out = append(out, r)
	}
	return out
}
