package health

import (
	"slices"

	"github.com/posfleet/posfleet"
)

// bad_data: a connected terminal whose messages in the last BadDataWindow
// were rejected, at least BadDataMinRejected of them and at least
// BadDataShare of all (by default: five or more, none accepted). It clears
// when accepted messages come back or the rejections leave the window.
// Without it such a terminal read "never connected" and healthy: the
// collector refuses its messages before the engine hears of them.

// rejBuckets splits the window: rejections are counted per twelfth of
// BadDataWindow (5 minutes of the default hour), so a terminal that sends
// thousands of bad messages an hour costs a fixed few hundred bytes.
const rejBuckets = 12

// maxReasons bounds the rejection reasons counted apart; posfleet.Reasons
// must fit (init checks), with one slot left for a reason not among them.
const maxReasons = 12

func init() {
	if len(posfleet.Reasons) >= maxReasons {
		panic("health: more rejection reasons than maxReasons")
	}
}

// reasonIndex is r's slot in rejBucket.N; the last for an unknown reason.
func reasonIndex(r posfleet.Reason) int {
	if i := slices.Index(posfleet.Reasons, r); i >= 0 {
		return i
	}
	return maxReasons - 1
}

// otherReason names the last slot of rejBucket.N.
const otherReason posfleet.Reason = "other"

// rejBucket counts one stretch of the window.
type rejBucket struct {
	Start       int64 // 0: empty
	First, Last int64 // the first and last rejection in it
	Accepted    uint32
	N           [maxReasons]uint32
}

// rejLog is a terminal's rejections (and, from the first one on, its
// accepted messages) over the last BadDataWindow.
type rejLog struct {
	B [rejBuckets]rejBucket
}

// bucket returns the bucket of time at, emptied if it held an older
// stretch; width is the window's twelfth in ms.
func (l *rejLog) bucket(at, width int64) *rejBucket {
	start := at - at%width
	b := &l.B[(at/width)%rejBuckets]
	if b.Start != start {
		*b = rejBucket{Start: start}
	}
	return b
}

func (l *rejLog) reject(at, width int64, r posfleet.Reason) {
	b := l.bucket(at, width)
	if b.First == 0 || at < b.First {
		b.First = at
	}
	b.Last = max(b.Last, at)
	if n := &b.N[reasonIndex(r)]; *n < 1<<32-1 {
		*n++
	}
}

func (l *rejLog) accept(at, width int64) {
	if b := l.bucket(at, width); b.Accepted < 1<<32-1 {
		b.Accepted++
	}
}

// in calls f for each bucket that reaches into the window starting at from.
func (l *rejLog) in(from, width int64, f func(b *rejBucket)) {
	for i := range l.B {
		if b := &l.B[i]; b.Start != 0 && b.Start+width > from {
			f(b)
		}
	}
}

// window is the start of bad_data's window at now, and its buckets' width.
func (e *Engine) badDataWindow(now int64) (from, width int64) {
	w := e.cfg.BadDataWindow.Milliseconds()
	return now - w, max(w/rejBuckets, 1)
}

// ObserveRejection counts a message the collector refused (bad input) for
// bad_data and as the terminal heard: it is connected, whatever it says.
// It never sees the message, only its reason. A rejection without a
// terminal (an aggregator's catch-all) is ignored.
func (e *Engine) ObserveRejection(r posfleet.RejectionEvent) {
	if r.Terminal.Tenant == "" || r.Terminal.Terminal == "" {
		return
	}
	now := ms(r.Time)
	if now == 0 {
		now = ms(e.cfg.Now())
	}
	sh, s := e.lockedState(r.Terminal, now)
	defer sh.mu.Unlock()
	if now > s.LastSeen {
		s.LastSeen = now
	}
	if s.WillAt != 0 {
		s.WillAt = 0 // it publishes: connected
		sh.markDirty(s)
	}
	if s.Rejects == nil {
		s.Rejects = &rejLog{}
	}
	_, width := e.badDataWindow(now)
	s.Rejects.reject(now, width, r.Reason)
	e.reassess(sh, s, mOffline|mBadData, now, "")
}

// counts sums the window: rejections, accepted messages, the first and
// last rejection.
func (e *Engine) badDataCounts(s *termState, now int64) (rejected, accepted, first, last int64) {
	from, width := e.badDataWindow(now)
	s.Rejects.in(from, width, func(b *rejBucket) {
		var n int64
		for _, c := range b.N {
			n += int64(c)
		}
		if n > 0 {
			if first == 0 || b.First < first {
				first = b.First
			}
			last = max(last, b.Last)
		}
		rejected += n
		accepted += int64(b.Accepted)
	})
	return rejected, accepted, first, last
}

func (e *Engine) decideBadData(s *termState, now int64, th *resolved) verdict {
	if s.Rejects == nil {
		return verdict{}
	}
	rejected, accepted, first, _ := e.badDataCounts(s, now)
	if rejected < int64(th.BadDataMinRejected) {
		return verdict{}
	}
	if th.BadDataShare >= 1 {
		// Every message: the last accepted one is before the window.
		if from, _ := e.badDataWindow(now); s.AcceptedAt >= from {
			return verdict{}
		}
	} else if float64(rejected) < th.BadDataShare*float64(rejected+accepted) {
		return verdict{}
	}
	return verdict{on: true, at: first}
}

func (e *Engine) explainBadData(s *termState, now int64, th *resolved) *posfleet.BadDataEvidence {
	ev := &posfleet.BadDataEvidence{ByReason: map[posfleet.Reason]int64{}, Share: th.BadDataShare,
		Threshold: th.BadDataMinRejected, WindowS: int64(e.cfg.BadDataWindow.Seconds()), LastAccepted: tm(s.AcceptedAt),
		Thresholds: th.appliedFor("bad_data")}
	if s.Rejects == nil {
		return ev
	}
	rejected, accepted, first, last := e.badDataCounts(s, now)
	ev.Count, ev.Accepted, ev.FirstRejected, ev.LastRejected = rejected, accepted, tm(first), tm(last)
	from, width := e.badDataWindow(now)
	s.Rejects.in(from, width, func(b *rejBucket) {
		for i, c := range b.N {
			if c == 0 {
				continue
			}
			r := otherReason
			if i < len(posfleet.Reasons) {
				r = posfleet.Reasons[i]
			}
			ev.ByReason[r] += int64(c)
		}
	})
	return ev
}
