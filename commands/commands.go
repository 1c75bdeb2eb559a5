// Package commands keeps track of the commands sent to terminals and the
// acks they answered with, so the vendor sees on a terminal's page whether
// an update or a reboot was accepted, done or failed.
package commands

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/posfleet/posfleet"
)

// PerTerminal is how many commands are listed per terminal (the newest).
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

// Supersedes reports whether an ack with status at time at becomes a
// command's status, over its current status cur, acked at curAt ("" before
// any ack). The terminal's later ack wins, and so does the later arrival
// at the same time, except that "accepted" never replaces a final status
// (done, failed, rejected) of the same time: terminals stamp acks to the
// second, and an "accepted" that arrived before its command was recorded
// (by another process: a web replica's queued command) is kept again, by
// the Tracker's retry, after the "done" that followed it. Times compare to
// the millisecond, as the journal keeps them.
func Supersedes(status string, at time.Time, cur string, curAt time.Time) bool {
	if cur == "" {
		return true
	}
	switch n, c := at.UnixMilli(), curAt.UnixMilli(); {
	case n != c:
		return n > c
	default:
		return status != posfleet.AckAccepted || cur == posfleet.AckAccepted
	}
}

// TerminalAck is an ack as it arrived, with the terminal that sent it.
type TerminalAck struct {
	Terminal posfleet.TerminalRef
	CmdID    string
	Ack      Ack
	// first is when the tracker first tried to keep it (see Tracker.run).
	first time.Time
}

// Store keeps commands and their acks: the journal's tables in posfleet
// serve (package journal), so that they survive a restart and every web
// replica lists the same.
type Store interface {
	// AddCommand keeps a command sent to ref.
	AddCommand(ctx context.Context, ref posfleet.TerminalRef, r Record) error
	// RemoveCommand forgets a command of ref that could not be sent, with
	// any ack kept for it.
	RemoveCommand(ctx context.Context, ref posfleet.TerminalRef, id string) error
	// AddAcks keeps acks in order. An ack of a command the store does not
	// know for that terminal is returned in unknown, not kept.
	AddAcks(ctx context.Context, acks []TerminalAck) (unknown []TerminalAck, err error)
	// Commands returns ref's newest n commands, newest first, each with
	// its acks in arrival order.
	Commands(ctx context.Context, ref posfleet.TerminalRef, n int) ([]Record, error)
}

// Tracker remembers commands per terminal. It is safe for concurrent use.
//
// New keeps them in memory; NewStored writes them through to a Store: Sent
// writes at once, acks are queued by Observe (called for every message on
// the collector's path, so it neither blocks nor allocates for the others)
// and written in batches by a goroutine of the tracker, which Close stops.
type Tracker struct {
	st  Store
	mem *memStore // st when in memory: acks are applied at once
	log *slog.Logger

	acks chan TerminalAck
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Bounds of the ack queue and its writer.
const (
	// ackQueue is how many acks may wait for the writer; acks are one or
	// two per command, so only a stalled database fills it (then they are
	// dropped and logged).
	ackQueue = 4096
	// ackBatch is the most acks written in one transaction.
	ackBatch = 256
	// unknownRetry and unknownTTL: an ack of a command not yet in the
	// store (the terminal answered before Sent's insert was committed, or
	// another process sent it) is tried again every unknownRetry for
	// unknownTTL, then dropped.
	unknownRetry = time.Second
	unknownTTL   = time.Minute
	// maxUnknown bounds the acks kept for a retry: a terminal making up
	// command IDs must not grow it.
	maxUnknown = 1024
	// storeTimeout bounds one call to the store.
	storeTimeout = 10 * time.Second
)

// New returns an empty Tracker that keeps PerTerminal commands per terminal
// in memory.
func New() *Tracker {
	m := &memStore{byID: map[posfleet.TerminalRef][]*Record{}}
	return &Tracker{st: m, mem: m, log: slog.New(slog.DiscardHandler)}
}

// NewStored returns a Tracker writing through to st; log may be nil.
// Close stops its ack writer.
func NewStored(st Store, log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{st: st, log: log.With("component", "commands"), acks: make(chan TerminalAck, ackQueue), stop: make(chan struct{}), done: make(chan struct{})}
	go t.run()
	return t
}

// Sent records a command sent to ref. The sender calls it before it
// publishes the command, so that a terminal's first ack always finds it,
// and Unsent when the command could not be published.
func (t *Tracker) Sent(ref posfleet.TerminalRef, cmd posfleet.Command, by string, at time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := t.st.AddCommand(ctx, ref, Record{Command: cmd, SentAt: at.UTC(), SentBy: by, Acks: []Ack{}}); err != nil {
		t.log.Error("command not recorded", "terminal", ref.String(), "id", cmd.ID, "err", err)
	}
}

// Unsent forgets a command recorded by Sent that could not be published
// (no session for the terminal, the broker closing).
func (t *Tracker) Unsent(ref posfleet.TerminalRef, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := t.st.RemoveCommand(ctx, ref, id); err != nil {
		t.log.Error("unsent command not removed", "terminal", ref.String(), "id", id, "err", err)
	}
}

// Observe takes every accepted message and keeps the acks of known commands.
func (t *Tracker) Observe(m *posfleet.Message) {
	if m.Ack == nil {
		return
	}
	a := TerminalAck{Terminal: m.Terminal, CmdID: m.Ack.CmdID, Ack: Ack{Status: m.Ack.Status, Detail: m.Ack.Detail, At: m.Ack.TS.UTC()}}
	if t.mem != nil {
		t.mem.AddAcks(context.Background(), []TerminalAck{a})
		return
	}
	select {
	case t.acks <- a:
	default:
		t.log.Warn("ack dropped: the command log is behind", "terminal", m.Terminal.String(), "id", a.CmdID, "status", a.Ack.Status)
	}
}

// List returns ref's newest PerTerminal commands, newest first.
func (t *Tracker) List(ref posfleet.TerminalRef) []Record {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	out, err := t.st.Commands(ctx, ref, PerTerminal)
	if err != nil {
		t.log.Error("commands not listed", "terminal", ref.String(), "err", err)
		return []Record{}
	}
	return out
}

// Close writes the acks still queued and stops the writer. A Tracker made
// by New has nothing to close.
func (t *Tracker) Close() {
	if t.mem != nil {
		return
	}
	t.once.Do(func() { close(t.stop) })
	<-t.done
}

// run writes queued acks in batches until Close, and retries those of
// commands the store did not know yet.
func (t *Tracker) run() {
	defer close(t.done)
	tick := time.NewTicker(unknownRetry)
	defer tick.Stop()
	var pending, unknown []TerminalAck
	for {
		select {
		case a := <-t.acks:
			pending = append(pending[:0], a)
		gather:
			for len(pending) < ackBatch {
				select {
				case a := <-t.acks:
					pending = append(pending, a)
				default:
					break gather
				}
			}
			unknown = t.keepUnknown(unknown, t.write(pending))
		case <-tick.C:
			if len(unknown) == 0 {
				continue
			}
			retry := unknown
			unknown = nil
			now := time.Now()
			for _, a := range t.write(retry) {
				if now.Sub(a.first) < unknownTTL {
					unknown = append(unknown, a)
				} else {
					t.log.Info("ack of an unknown command dropped", "terminal", a.Terminal.String(), "id", a.CmdID, "status", a.Ack.Status)
				}
			}
		case <-t.stop:
			// What is queued, and one more try for the unknown.
			for len(t.acks) > 0 {
				pending = pending[:0]
				for len(pending) < ackBatch && len(t.acks) > 0 {
					pending = append(pending, <-t.acks)
				}
				unknown = append(unknown, t.write(pending)...)
			}
			if len(unknown) > 0 {
				t.write(unknown)
			}
			return
		}
	}
}

// keepUnknown adds more to unknown, up to maxUnknown.
func (t *Tracker) keepUnknown(unknown, more []TerminalAck) []TerminalAck {
	if room := maxUnknown - len(unknown); len(more) > room {
		t.log.Info("acks of unknown commands dropped", "acks", len(more)-max(room, 0))
		more = more[:max(room, 0)]
	}
	return append(unknown, more...)
}

// write keeps acks and returns those of commands not (yet) known. A store
// error keeps them for a retry too.
func (t *Tracker) write(acks []TerminalAck) []TerminalAck {
	now := time.Now()
	for i := range acks {
		if acks[i].first.IsZero() {
			acks[i].first = now
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	unknown, err := t.st.AddAcks(ctx, acks)
	if err != nil {
		t.log.Error("acks not recorded; retrying", "acks", len(acks), "err", err)
		return append([]TerminalAck(nil), acks...)
	}
	return append([]TerminalAck(nil), unknown...)
}

// memStore is the Store of New: PerTerminal commands per terminal.
type memStore struct {
	mu   sync.Mutex
	byID map[posfleet.TerminalRef][]*Record
}

func (s *memStore) AddCommand(_ context.Context, ref posfleet.TerminalRef, r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := append(s.byID[ref], &r)
	if len(list) > PerTerminal {
		list = list[len(list)-PerTerminal:]
	}
	s.byID[ref] = list
	return nil
}

func (s *memStore) RemoveCommand(_ context.Context, ref posfleet.TerminalRef, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.byID[ref]
	for i, r := range list {
		if r.Command.ID == id {
			s.byID[ref] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(s.byID[ref]) == 0 {
		delete(s.byID, ref)
	}
	return nil
}

func (s *memStore) AddAcks(_ context.Context, acks []TerminalAck) ([]TerminalAck, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var unknown []TerminalAck
next:
	for _, a := range acks {
		for _, r := range s.byID[a.Terminal] {
			if r.Command.ID == a.CmdID {
				r.Acks = append(r.Acks, a.Ack)
				if Supersedes(a.Ack.Status, a.Ack.At, r.Status, r.AckAt) {
					r.Status, r.Detail, r.AckAt = a.Ack.Status, a.Ack.Detail, a.Ack.At
				}
				continue next
			}
		}
		unknown = append(unknown, a)
	}
	return unknown, nil
}

func (s *memStore) Commands(_ context.Context, ref posfleet.TerminalRef, n int) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.byID[ref]
	out := make([]Record, 0, min(len(list), n))
	for i := len(list) - 1; i >= 0 && len(out) < n; i-- {
		r := *list[i]
		r.Acks = append([]Ack{}, r.Acks...)
		out = append(out, r)
	}
	return out, nil
}
