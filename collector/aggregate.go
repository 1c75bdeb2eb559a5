package collector

import (
	"sync"
	"time"
)

// aggregator folds repeated events of one key (a kind of event from one
// source) into one stored point per window, so that a flood of refused
// CONNECTs or bad messages costs the spool a few points instead of one each.
//
// The first event of a key is stored at once, so a single event shows
// without delay; what follows within the window is counted and stored as
// one point carrying the count when the window ends. A key quiet for a whole
// window is forgotten. The number of keys is bounded: an event whose key
// finds no room goes to its kind's catch-all key (see other), with its
// source details blanked.
type aggregator[K comparable, E any] struct {
	window time.Duration
	max    int
	// other returns the catch-all key and event for an event whose key
	// found no room. There must be few catch-all keys (one per kind): they
	// are kept beyond max.
	other func(K, E) (K, E)

	mu      sync.Mutex
	entries map[K]*aggregate[E]
}

// aggregate is one key's state.
type aggregate[E any] struct {
	last    E         // the latest event folded in, carried by the window's point
	pending int64     // events since the last stored point
	opened  time.Time // start of the current window
}

// summary is a point to store: an event and how many events it stands for.
type summary[E any] struct {
	ev    E
	count int64
}

func newAggregator[K comparable, E any](window time.Duration, max int, other func(K, E) (K, E)) *aggregator[K, E] {
	return &aggregator[K, E]{window: window, max: max, other: other, entries: make(map[K]*aggregate[E])}
}

// add folds ev in at now. It returns the event to store at once when ev
// opens a window (ev itself, or its catch-all form), and whether ev's key
// found no room.
func (a *aggregator[K, E]) add(k K, ev E, now time.Time) (out E, store, full bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entries[k]
	if e == nil && len(a.entries) >= a.max {
		k, ev = a.other(k, ev)
		full = true
		e = a.entries[k]
	}
	if e == nil {
		a.entries[k] = &aggregate[E]{opened: now}
		return ev, true, full
	}
	e.last = ev
	e.pending++
	return out, false, full
}

// due returns the points of windows that ended by now (all of them when
// all is set) and forgets keys that stayed quiet for a whole window.
func (a *aggregator[K, E]) due(now time.Time, all bool) []summary[E] {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []summary[E]
	for k, e := range a.entries {
		if !all && now.Sub(e.opened) < a.window {
			continue
		}
		if e.pending == 0 {
			delete(a.entries, k)
			continue
		}
		out = append(out, summary[E]{e.last, e.pending})
		var zero E
		e.last, e.pending, e.opened = zero, 0, now
	}
	return out
}
