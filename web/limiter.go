package web

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// SignInLimits bound password guessing. Three budgets apply to a sign-in:
//
//   - per client address: a few dozen tries, then one every few seconds
//     (an office behind one NAT address shares it);
//   - per address and user name: a handful of tries, then one every
//     12 s, so one address cannot guess one user's password quickly;
//   - per user name, over every address: a slow budget against guessing
//     spread over many addresses.
//
// A browser where the user signed in before (its signed device cookie
// names the user) has a budget of its own instead of these three, as
// large as the per-address-and-name one: a stranger guessing the user's
// password, from anywhere (even through the same proxy address), cannot
// spend it, so the user is never locked out of the devices it uses.
//
// A try is charged only when it fails: a correct password gets its tokens
// back. Budgets of names that are no user share one bucket, and the
// per-name budgets of existing users are never forgotten (there are few
// users). Only address entries are bounded, least recently used first; an
// entry is dropped only once its budgets are full again, so dropping it
// forgets nothing. When every entry is still draining, a new address is
// refused (fails closed) rather than anyone's budget reset.
type SignInLimits struct {
	// Address: per client address (IPv6 per /64).
	AddressEvery time.Duration
	AddressBurst int
	// AddressName: per address and user name.
	AddressNameEvery time.Duration
	AddressNameBurst int
	// Name: per user name, every address together.
	NameEvery time.Duration
	NameBurst int
	// UnknownEvery and UnknownBurst: the one bucket of names that are no
	// user; it bounds the password hashing that junk names cost.
	UnknownEvery time.Duration
	UnknownBurst int
	// Addresses is how many client addresses are remembered at most.
	Addresses int
}

// DefaultSignInLimits returns the defaults.
func DefaultSignInLimits() SignInLimits {
	return SignInLimits{
		AddressEvery: 6 * time.Second, AddressBurst: 20,
		AddressNameEvery: 12 * time.Second, AddressNameBurst: 5,
		// 10 tries, then 30 an hour: 720 guesses a day at most for one
		// user, however many addresses the guesser has.
		NameEvery: 2 * time.Minute, NameBurst: 10,
		UnknownEvery: time.Second, UnknownBurst: 60,
		// About 2 KiB each: 20 MiB at most.
		Addresses: 10000,
	}
}

// namesPerAddress bounds the per-name entries of one address; further
// names from it share one entry.
const namesPerAddress = 16

type addrEntry struct {
	key    string
	lim    *rate.Limiter
	byName map[string]*rate.Limiter
}

// signInLimiter keeps the budgets of SignInLimits.
type signInLimiter struct {
	cfg     SignInLimits
	now     func() time.Time
	mu      sync.Mutex
	lru     *list.List // of *addrEntry, most recent first
	byAddr  map[string]*list.Element
	names   map[string]*rate.Limiter // existing users' budgets: never dropped
	unknown *rate.Limiter
}

func newSignInLimiter(cfg SignInLimits, now func() time.Time) *signInLimiter {
	d := DefaultSignInLimits()
	pick := func(v *time.Duration, dv time.Duration) {
		if *v <= 0 {
			*v = dv
		}
	}
	pickN := func(v *int, dv int) {
		if *v <= 0 {
			*v = dv
		}
	}
	pick(&cfg.AddressEvery, d.AddressEvery)
	pick(&cfg.AddressNameEvery, d.AddressNameEvery)
	pick(&cfg.NameEvery, d.NameEvery)
	pick(&cfg.UnknownEvery, d.UnknownEvery)
	pickN(&cfg.AddressBurst, d.AddressBurst)
	pickN(&cfg.AddressNameBurst, d.AddressNameBurst)
	pickN(&cfg.NameBurst, d.NameBurst)
	pickN(&cfg.UnknownBurst, d.UnknownBurst)
	pickN(&cfg.Addresses, d.Addresses)
	return &signInLimiter{cfg: cfg, now: now, lru: list.New(), byAddr: map[string]*list.Element{},
		names: map[string]*rate.Limiter{}, unknown: rate.NewLimiter(rate.Every(cfg.UnknownEvery), cfg.UnknownBurst)}
}

// clientAddress is the budget key of a request's address: the IPv4
// address, or the /64 of an IPv6 one (one host usually holds a /64).
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// signInTry is one sign-in's claim on its budgets: refund gives the tokens
// back (a correct password).
type signInTry struct {
	res []*rate.Reservation
	at  time.Time
}

func (t *signInTry) refund() {
	for _, r := range t.res {
		r.CancelAt(t.at)
	}
}

// take claims one token of each limiter, or none when any is empty.
func take(now time.Time, lims ...*rate.Limiter) (*signInTry, bool) {
	t := &signInTry{at: now}
	for _, l := range lims {
		r := l.ReserveN(now, 1)
		if !r.OK() || r.DelayFrom(now) > 0 {
			r.CancelAt(now)
			t.refund()
			return nil, false
		}
		t.res = append(t.res, r)
	}
	return t, true
}

// full reports whether a limiter has its whole burst again: forgetting it
// forgets nothing.
func full(l *rate.Limiter, now time.Time) bool { return l.TokensAt(now) >= float64(l.Burst()) }

// try claims a sign-in's budgets: name is the name tried, exists whether it
// is a user, device the ID of the browser's device cookie when it signed
// in as name before ("" otherwise). It returns false when a budget is
// spent.
func (l *signInLimiter) try(addr, device, name string, exists bool) (*signInTry, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if device != "" {
		addr = "device " + device
	}
	el := l.byAddr[addr]
	if el == nil {
		if len(l.byAddr) >= l.cfg.Addresses {
			old := l.lru.Back()
			oe := old.Value.(*addrEntry)
			if !oe.idle(now) {
				return nil, false // fail closed: nobody's budget is reset
			}
			l.lru.Remove(old)
			delete(l.byAddr, oe.key)
		}
		el = l.lru.PushFront(&addrEntry{key: addr, lim: rate.NewLimiter(rate.Every(l.cfg.AddressEvery), l.cfg.AddressBurst), byName: map[string]*rate.Limiter{}})
		l.byAddr[addr] = el
	} else {
		l.lru.MoveToFront(el)
	}
	e := el.Value.(*addrEntry)
	nameKey := name
	if !exists {
		nameKey = "\x00unknown"
	}
	an := e.byName[nameKey]
	if an == nil {
		if len(e.byName) >= namesPerAddress {
			nameKey = "\x00more"
			an = e.byName[nameKey]
		}
		if an == nil {
			an = rate.NewLimiter(rate.Every(l.cfg.AddressNameEvery), l.cfg.AddressNameBurst)
			e.byName[nameKey] = an
		}
	}
	lims := []*rate.Limiter{e.lim, an}
	switch {
	case device != "":
		lims = []*rate.Limiter{an}
	case !exists:
		lims = append(lims, l.unknown)
	default:
		nl := l.names[name]
		if nl == nil {
			nl = rate.NewLimiter(rate.Every(l.cfg.NameEvery), l.cfg.NameBurst)
			l.names[name] = nl
		}
		lims = append(lims, nl)
	}
	return take(now, lims...)
}

// idle reports whether all of an address's budgets are full again.
func (e *addrEntry) idle(now time.Time) bool {
	if !full(e.lim, now) {
		return false
	}
	for _, l := range e.byName {
		if !full(l, now) {
			return false
		}
	}
	return true
}
