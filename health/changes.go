package health

import (
	"time"

	"github.com/posfleet/posfleet"
)

// The change feed: what changed since the last Drain, for a publisher
// that writes the engine's view to a database (healthview). It is
// recorded on the message path without SQL and, in the steady state,
// without allocating: a dirty bit per terminal with a list of the dirty
// ones, and a buffer of flag transitions, per shard; Drain takes both.
//
// It is off until TrackChanges: an engine nobody drains (tests, tools)
// keeps nothing.

// maxTransitions bounds one shard's transition buffer between two Drains
// (64 shards: 262,144 in all). Past it transitions are dropped and the
// next Drain says Resync: the publisher then writes every terminal.
const maxTransitions = 4096

// Transition is one flag of one terminal raised or cleared.
type Transition struct {
	Ref    posfleet.TerminalRef
	Flag   posfleet.FlagName
	Raised bool
	// At is when: for a raising, the flag's since (the evidence that
	// raised it); for a clearing, the time of the message, tick or visit
	// that cleared it.
	At time.Time
	// Actor is "" for the engine's rules, else who marked the terminal
	// serviced (MarkServiced's by).
	Actor string
	// Evidence is the raised flag's evidence as of the Drain (nil for a
	// clearing, or when the flag was cleared again before the Drain):
	// building it on the message path would allocate.
	Evidence posfleet.Evidence
}

// Changes is what changed since the last Drain.
type Changes struct {
	// Terminals changed: flags raised or cleared, online or offline,
	// model or firmware, open faults, a new terminal heard from or
	// provisioned. Each once, in no particular order. A provisioned
	// terminal never heard from has no Terminal (it is never connected).
	Terminals []posfleet.TerminalRef
	// Transitions, in order per terminal.
	Transitions []Transition
	// Resync says that changes were lost (a full transition buffer, a
	// restored snapshot, the feed just turned on): the reader should
	// publish every terminal rather than only these.
	Resync bool
}

// transition is a Transition on the message path: no evidence, the flag
// as its index.
type transition struct {
	s      *termState
	at     int64
	actor  string
	flag   uint8
	raised bool
}

// TrackChanges turns the change feed on (or off, dropping what it held).
// The first Drain after turning it on says Resync.
func (e *Engine) TrackChanges(on bool) {
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		sh.clearChanges()
		sh.track = on
		sh.lost = on
		sh.mu.Unlock()
	}
}

// clearChanges forgets the shard's changes, keeping the buffers' capacity.
func (sh *shard) clearChanges() {
	for _, s := range sh.dirty {
		s.dirty = false
	}
	clear(sh.dirty)
	sh.dirty = sh.dirty[:0]
	clear(sh.trans)
	sh.trans = sh.trans[:0]
	sh.provDirty = nil
}

// markDirty records that s changed; under the shard's lock.
func (sh *shard) markDirty(s *termState) {
	if !sh.track || s.dirty {
		return
	}
	s.dirty = true
	sh.dirty = append(sh.dirty, s)
}

// noteTransition records flag f of s raised or cleared; under the
// shard's lock.
func (sh *shard) noteTransition(s *termState, f int, raised bool, at int64, actor string) {
	if !sh.track {
		return
	}
	sh.markDirty(s)
	if len(sh.trans) >= maxTransitions {
		sh.lost = true
		return
	}
	sh.trans = append(sh.trans, transition{s: s, at: at, actor: actor, flag: uint8(f), raised: raised})
}

// Drain returns what changed since the last Drain and forgets it. The
// evidence of raised flags is built here, off the message path.
func (e *Engine) Drain() Changes {
	var c Changes
	now := ms(e.cfg.Now())
	pol, view := e.policy.Load(), e.incView.Load()
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		if !sh.track {
			sh.mu.Unlock()
			continue
		}
		c.Resync = c.Resync || sh.lost
		sh.lost = false
		for _, s := range sh.dirty {
			c.Terminals = append(c.Terminals, s.Ref)
		}
		c.Terminals = append(c.Terminals, sh.provDirty...)
		for _, t := range sh.trans {
			tr := Transition{Ref: t.s.Ref, Flag: posfleet.FlagNames[t.flag], Raised: t.raised, At: tm(t.at), Actor: t.actor}
			if t.raised && t.s.raised[t.flag] == t.at {
				tr.Evidence = e.explain(t.s, int(t.flag), max(now, t.at), e.resolve(t.s), pol, view)
			}
			c.Transitions = append(c.Transitions, tr)
		}
		sh.clearChanges()
		sh.mu.Unlock()
	}
	return c
}

// Refs returns every terminal the engine knows: those heard from, and the
// provisioned ones never heard from (a full resync of a published view).
func (e *Engine) Refs() (heard, neverConnected []posfleet.TerminalRef) {
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for ref := range sh.m {
			heard = append(heard, ref)
		}
		for ref := range sh.prov {
			if _, ok := sh.m[ref]; !ok {
				neverConnected = append(neverConnected, ref)
			}
		}
		sh.mu.Unlock()
	}
	return heard, neverConnected
}

// WorkItem returns the work-list item of one terminal, false when it is
// not on the work list (no maintenance flag) or unknown.
func (e *Engine) WorkItem(ref posfleet.TerminalRef) (WorkItem, bool) {
	now := ms(e.cfg.Now())
	pol, view := e.policy.Load(), e.incView.Load()
	sh := e.shard(ref)
	sh.mu.Lock()
	s, ok := sh.m[ref]
	var it WorkItem
	if ok {
		it, ok = e.workItem(s, now, pol, view)
	}
	sh.mu.Unlock()
	if ok {
		h := TerminalHealth{Ref: it.Ref, Site: it.Site}
		e.site(&h)
		it.Site = h.Site
	}
	return it, ok
}
