package collector

// seqWindow is a terminal's duplicate filter: the highest seq seen and a
// bitmap of the 64 before it. A seq inside the window that was seen, or
// older than the window, is a duplicate (an MQTT redelivery, or a store
// sent twice); a seq more than one above the highest leaves a gap, counted
// because it means messages the terminal never delivered.
type seqWindow struct {
	high int64
	seen uint64 // bit i: high-1-i was seen
}

const seqWindowSize = 64

// check reports whether seq is new, and how many seqs it skips over.
func (w *seqWindow) check(seq int64) (isNew bool, gap int64) {
	switch {
	case w.high == 0:
		return true, 0
	case seq > w.high:
		return true, seq - w.high - 1
	case seq == w.high:
		return false, 0
	}
	d := w.high - seq
	if d > seqWindowSize {
		return false, 0
	}
	return w.seen&(1<<(d-1)) == 0, 0
}

// mark records seq as seen; call only after check said it is new and the
// message is durable.
func (w *seqWindow) mark(seq int64) {
	if seq > w.high {
		shift := seq - w.high
		if w.high == 0 || shift > seqWindowSize {
			w.seen = 0
		} else {
			w.seen = w.seen<<shift | 1<<(shift-1)
		}
		w.high = seq
		return
	}
	d := w.high - seq
	if d >= 1 && d <= seqWindowSize {
		w.seen |= 1 << (d - 1)
	}
}
