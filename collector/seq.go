package collector

// seqFilter is one terminal's duplicate filter. It knows exactly which seqs
// in [floor, high] it has seen, and takes every other seq below high as new
// unless the rule below says it cannot be a copy, so that nothing is
// acknowledged and dropped unless it really is a copy of a stored message.
//
// The rule, for a message with seq s and timestamp ts (to the millisecond),
// high the highest seq seen and highTS the ts of that message:
//
//   - nothing seen yet, or s > high: new (s > high+1 leaves a gap of
//     s-high-1 seqs, counted: messages the terminal never delivered).
//   - s <= high - seqWindowSize: a reset. The terminal's outbox holds at
//     most seqWindowSize messages and sends them in seq order, so a copy
//     cannot lie that far below the newest message; a terminal whose outbox
//     was wiped (factory reset, replaced storage, re-provisioning) starts
//     again at 1. Also what lets a terminal recover from one bogus seq far
//     above its real ones. The filter starts again from s.
//   - floor <= s <= high and s was never seen (a gap filled late, out of
//     order): new.
//   - s < floor (below what the filter knows exactly: the first message
//     after a server restart with the spool drained, or runs of missing
//     seqs given up to stay within maxMissingRuns): new. At worst a real
//     copy is stored twice, which the store takes as one point (see
//     influxdb.PointTime), whereas dropping it could lose a message.
//   - s was seen but ts is later than highTS: a reset. A copy carries the
//     timestamp of its original, which is not later than the newest
//     message's while the terminal's clock runs forwards; a wiped terminal
//     starting again at 1 stamps its messages with the time now. (A clock
//     set backwards between the original and the newest message can make a
//     copy look like a reset: it is then stored again, harmlessly.)
//   - otherwise s was seen: a duplicate (an MQTT redelivery).
//
// Memory: a filter is 56 bytes plus 16 bytes per run of missing seqs
// between floor and high, at most maxMissingRuns runs (4 KiB). A terminal
// delivering in order has no runs; each gap adds one until it is filled or
// falls out of the window.
type seqFilter struct {
	high    int64 // highest seq seen; 0: none yet
	highTS  int64 // ts of the message with seq high, Unix milliseconds
	floor   int64 // every seq in [floor, high] not in missing was seen
	missing []seqRun
}

// seqRun is a run of seqs not seen, lo..hi inclusive.
type seqRun struct{ lo, hi int64 }

// seqVerdict is what the filter says about a seq.
type seqVerdict uint8

const (
	seqNew seqVerdict = iota
	seqDuplicate
	seqReset // new, and the terminal started counting again
)

const (
	// seqWindowSize is how far below the highest seq a copy can be: the
	// terminal library's outbox capacity (firmware-client Limits.MaxMessages,
	// 50,000 by default).
	seqWindowSize = 50_000
	// maxMissingRuns bounds the memory of one terminal's filter. Past it the
	// oldest runs are given up: their seqs, and the seen ones among them,
	// count as new.
	maxMissingRuns = 256
)

// check says whether seq is new, a duplicate or a reset, and how many seqs
// it skips over. It does not change the filter.
func (f *seqFilter) check(seq, tsMilli int64) (v seqVerdict, gap int64) {
	switch {
	case f.high == 0:
		return seqNew, 0
	case seq > f.high:
		return seqNew, seq - f.high - 1
	case seq <= f.high-seqWindowSize:
		return seqReset, 0
	case seq < f.floor || f.isMissing(seq):
		return seqNew, 0
	case tsMilli > f.highTS:
		return seqReset, 0
	}
	return seqDuplicate, 0
}

// mark records seq as seen with the verdict check gave; call it only for a
// new seq or a reset whose message is durable.
func (f *seqFilter) mark(seq, tsMilli int64, v seqVerdict) {
	switch {
	case v == seqDuplicate:
		return
	case v == seqReset || f.high == 0:
		*f = seqFilter{high: seq, highTS: tsMilli, floor: seq, missing: f.missing[:0]}
	case seq > f.high:
		if seq > f.high+1 {
			f.missing = append(f.missing, seqRun{f.high + 1, seq - 1})
		}
		f.high, f.highTS = seq, tsMilli
	case seq < f.floor:
		// What lies between is unknown, which the filter takes as not seen.
		if seq+1 <= f.floor-1 {
			f.missing = append([]seqRun{{seq + 1, f.floor - 1}}, f.missing...)
		}
		f.floor = seq
	default:
		f.unmiss(seq)
	}
	f.trim()
}

// observe is check and mark in one, for rebuilding the filter from the spool.
func (f *seqFilter) observe(seq, tsMilli int64) seqVerdict {
	v, _ := f.check(seq, tsMilli)
	f.mark(seq, tsMilli, v)
	return v
}

// run returns the index of the run holding seq, or -1.
func (f *seqFilter) run(seq int64) int {
	// Runs are few and sorted; the newest are the likeliest to be filled.
	for i := len(f.missing) - 1; i >= 0; i-- {
		r := f.missing[i]
		if seq > r.hi {
			return -1
		}
		if seq >= r.lo {
			return i
		}
	}
	return -1
}

func (f *seqFilter) isMissing(seq int64) bool { return f.run(seq) >= 0 }

// unmiss takes seq out of its run of missing seqs.
func (f *seqFilter) unmiss(seq int64) {
	i := f.run(seq)
	if i < 0 {
		return
	}
	r := f.missing[i]
	switch {
	case r.lo == r.hi:
		f.missing = append(f.missing[:i], f.missing[i+1:]...)
	case seq == r.lo:
		f.missing[i].lo++
	case seq == r.hi:
		f.missing[i].hi--
	default:
		f.missing = append(f.missing, seqRun{})
		copy(f.missing[i+2:], f.missing[i+1:])
		f.missing[i] = seqRun{r.lo, seq - 1}
		f.missing[i+1] = seqRun{seq + 1, r.hi}
	}
}

// trim keeps the filter within the window and within maxMissingRuns.
func (f *seqFilter) trim() {
	if lo := f.high - seqWindowSize + 1; f.floor < lo {
		f.floor = lo
	}
	if n := len(f.missing) - maxMissingRuns; n > 0 {
		f.floor = max(f.floor, f.missing[n-1].hi+1)
	}
	drop := 0
	for drop < len(f.missing) && f.missing[drop].hi < f.floor {
		drop++
	}
	if drop > 0 {
		f.missing = append(f.missing[:0], f.missing[drop:]...)
	}
	if len(f.missing) > 0 && f.missing[0].lo < f.floor {
		f.missing[0].lo = f.floor
	}
}
