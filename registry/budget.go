package registry

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrThrottled is wrapped by the error Authenticate returns when the
// source address or the username is over its budget of failed
// verifications: the attempt was refused without checking the secret. The
// error also has a method Throttled() bool returning true, for callers that
// must not import this package (the broker).
var ErrThrottled = errors.New("too many failed attempts, try again later")

// throttledError is the error of a throttled attempt; scope says which
// budget ran out ("source" or "username"), for logs.
type throttledError struct{ scope string }

func (e *throttledError) Error() string        { return e.scope + ": " + ErrThrottled.Error() }
func (e *throttledError) Is(target error) bool { return target == ErrThrottled }

// Throttled reports that the attempt was refused for being over a budget.
func (e *throttledError) Throttled() bool { return true }

// budget bounds the failed slow verifications per key (a source address or
// a username) with a token bucket each: a failure takes a token, and a
// verification may start only while the key's bucket holds a token for it
// and for every verification of the key still under way, so that a
// thousand concurrent attempts from one source cost no more than its
// burst. A success costs nothing: terminals behind one NAT reconnecting
// after a restart are not held back.
//
// The number of keys is bounded: when the map is full, keys whose bucket is
// full again and that have nothing under way are dropped (they carry no
// information); if none can be, new keys share one overflow bucket.
//
// With slots > 0, a key also has at most that many verifications running
// at once; more wait for their turn. A source then never holds every
// verification slot of the registry, so a terminal connecting from
// elsewhere during a flood gets one at once instead of queuing behind the
// flood's, which crawl while the CPU handles the flood's connections.
type budget struct {
	limit rate.Limit
	burst int
	max   int
	slots int

	mu        sync.Mutex
	keys      map[string]*budgetEntry
	overflow  *budgetEntry
	lastSweep time.Time
}

type budgetEntry struct {
	lim     *rate.Limiter
	pending int           // verifications under way
	running chan struct{} // with slots: the key's verifications running
}

func (b *budget) newEntry() *budgetEntry {
	e := &budgetEntry{lim: rate.NewLimiter(b.limit, b.burst)}
	if b.slots > 0 {
		e.running = make(chan struct{}, b.slots)
	}
	return e
}

// newBudget returns a budget of perSecond failures a second with bursts of
// burst, or nil (no bound) when perSecond is negative.
func newBudget(perSecond float64, burst, max, slots int) *budget {
	if perSecond < 0 {
		return nil
	}
	b := &budget{
		limit: rate.Limit(perSecond),
		burst: burst,
		max:   max,
		slots: slots,
		keys:  make(map[string]*budgetEntry),
	}
	b.overflow = b.newEntry()
	return b
}

// start reports whether a verification for key may start now. If it may,
// the caller must call done with its outcome once it is over.
func (b *budget) start(key string, now time.Time) (*budgetEntry, bool) {
	if b == nil {
		return nil, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.keys[key]
	if e == nil {
		if len(b.keys) >= b.max {
			b.sweep(now)
		}
		if len(b.keys) >= b.max {
			e = b.overflow
		} else {
			e = b.newEntry()
			b.keys[key] = e
		}
	}
	if e.lim.TokensAt(now) < float64(e.pending+1) {
		return nil, false
	}
	e.pending++
	return e, true
}

// run waits for one of e's slots (none without slots) and returns the
// function that gives it back.
func (b *budget) run(ctx context.Context, e *budgetEntry) (release func(), err error) {
	if b == nil || e == nil || e.running == nil {
		return func() {}, nil
	}
	select {
	case e.running <- struct{}{}:
		return func() { <-e.running }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// done ends a verification start allowed; a failure takes a token.
func (b *budget) done(e *budgetEntry, failed bool, now time.Time) {
	if b == nil || e == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e.pending--
	if failed {
		e.lim.AllowN(now, 1)
	}
}

// sweep drops the keys that carry no information; at most once a second,
// so that a map full of active keys does not cost a scan per attempt.
func (b *budget) sweep(now time.Time) {
	if now.Sub(b.lastSweep) < time.Second {
		return
	}
	b.lastSweep = now
	for k, e := range b.keys {
		if e.pending == 0 && e.lim.TokensAt(now) >= float64(b.burst) {
			delete(b.keys, k)
		}
	}
}

// sourceKey is the budget key of a source address: the address, or its
// /64 for IPv6, since one host commonly holds a whole /64.
func sourceKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return a.String()
}
