package health

import (
	"time"

	"github.com/posfleet/posfleet"
)

// The hour-of-week baseline: in which hours of the week a terminal usually
// sells, learned from its own sales. silent (flag_silent.go) reads it, and
// so does UsualSaleHours, which schedules firmware updates outside them.

const (
	hoursPerWeek = 7 * 24
	weekMs       = hoursPerWeek * hourMs
	// epochWeekday shifts Unix hours so that weeks start on Sunday 00:00
	// UTC: 1 January 1970 was a Thursday.
	epochWeekday = 4 * 24
	// baselineWeeks is how many past weeks the baseline judges an hour by:
	// the bits of a saleHours slot hold eight weeks, and an hour of the
	// week before the last sale's needs one more.
	baselineWeeks = 6
	// heardHours is how far back heard hours are known (the bits of Heard).
	heardHours = 64
)

// saleHours is a terminal's baseline, about 200 bytes, allocated with its
// first sale.
type saleHours struct {
	// Weeks has a byte per hour of the week (weekday*24 + hour, UTC,
	// Sunday 0): bit k is set when the terminal sold in that hour k weeks
	// before week Week.
	Weeks [hoursPerWeek]uint8
	Week  int32 // in weeks since the Sunday before the Unix epoch
	// First is the first sale learned, LastSale the latest (any sale, also
	// one stored offline), in Unix ms.
	First, LastSale int64
	// Heard has bit k set when a message was accepted in Unix hour
	// HeardHour-k.
	Heard     uint64
	HeardHour int32
}

func weekOf(hour int64) int32 { return int32((hour + epochWeekday) / hoursPerWeek) }
func slotOf(hour int64) int   { return int((hour + epochWeekday) % hoursPerWeek) }

// learn records a sale at Unix ms at; offline sales (sent later from the
// terminal's store) say the shop sold, not in which hour.
func (h *saleHours) learn(at int64, offline bool) {
	if h.First == 0 || at < h.First {
		h.First = at
	}
	h.LastSale = max(h.LastSale, at)
	if offline {
		return
	}
	hour := at / hourMs
	w := weekOf(hour)
	if d := w - h.Week; d > 0 {
		for i := range h.Weeks {
			if d >= 8 {
				h.Weeks[i] = 0
			} else {
				h.Weeks[i] <<= d
			}
		}
		h.Week = w
	}
	if d := h.Week - w; d < 8 {
		h.Weeks[slotOf(hour)] |= 1 << d
	}
}

// hear records a message accepted at Unix ms at.
func (h *saleHours) hear(at int64) {
	hour := int32(at / hourMs)
	if d := hour - h.HeardHour; d > 0 {
		if d >= heardHours {
			h.Heard = 0
		} else {
			h.Heard <<= d
		}
		h.HeardHour = hour
	}
	if d := h.HeardHour - hour; d < heardHours {
		h.Heard |= 1 << d
	}
}

func (h *saleHours) heard(hour int64) bool {
	d := int64(h.HeardHour) - hour
	return d >= 0 && d < heardHours && h.Heard&(1<<d) != 0
}

// observed is how many whole weeks of history the baseline has at now, at
// most baselineWeeks.
func (h *saleHours) observed(now int64) int {
	if h.First == 0 || now <= h.First {
		return 0
	}
	return int(min((now-h.First)/weekMs, baselineWeeks))
}

// observedAt is how many of the baselineWeeks weeks before Unix hour
// hour the baseline saw that hour of the week (those after its first
// sale's hour).
func (h *saleHours) observedAt(hour int64) int {
	if h.First == 0 {
		return 0
	}
	return int(max(min((hour-h.First/hourMs)/hoursPerWeek, baselineWeeks), 0))
}

// soldWeeks counts, of the obs weeks before the week of Unix hour hour,
// those with a sale in its hour of the week.
func (h *saleHours) soldWeeks(hour int64, obs int) int {
	slot := h.Weeks[slotOf(hour)]
	n := 0
	for j := 1; j <= obs; j++ {
		if k := int(h.Week-weekOf(hour)) + j; k >= 0 && k < 8 && slot&(1<<k) != 0 {
			n++
		}
	}
	return n
}

// usual tells whether the terminal usually sells in Unix hour hour, and
// the chance that it sells in it (by the weeks it did: (k+½)/(obs+1), so
// that even a week after week habit leaves room for chance).
func (e *Engine) usual(h *saleHours, hour int64) (bool, float64) {
	obs := h.observedAt(hour)
	if obs == 0 {
		return false, 0
	}
	k := h.soldWeeks(hour, obs)
	return k > 0 && float64(k) >= e.cfg.SilentUsualShare*float64(obs), (float64(k) + 0.5) / float64(obs+1)
}

// known tells whether the baseline has enough history to judge by.
func (e *Engine) known(h *saleHours, now int64) bool {
	return h != nil && h.First != 0 && now-h.First >= e.cfg.SilentMinHistory.Milliseconds() && h.observed(now) > 0
}

// observeSale feeds the baseline with a transaction: sales of any result
// (a shop whose every payment fails is trading; txn_failures tells that).
func (s *termState) observeSale(t *posfleet.Transaction, now int64) flagMask {
	if t.Type != posfleet.TxnSale {
		return 0
	}
	if s.Hours == nil {
		s.Hours = &saleHours{}
		s.Hours.hear(now)
	}
	s.Hours.learn(now, t.Offline)
	return mSilent
}

// UsualSaleHours returns the hours of the week in which ref usually sells,
// learned from its own transactions: index = UTC weekday*24 + UTC hour
// (Sunday 0). known is false while it has too little history.
func (e *Engine) UsualSaleHours(ref posfleet.TerminalRef) (hours [168]bool, known bool) {
	now := ms(e.cfg.Now())
	sh := e.shard(ref)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[ref]
	if s == nil || !e.known(s.Hours, now) {
		return hours, false
	}
	// The hours of the current week, judged by the weeks before it.
	week := int64(weekOf(now/hourMs))*hoursPerWeek - epochWeekday
	for i := range hours {
		hours[i], _ = e.usual(s.Hours, week+int64(i))
	}
	return hours, true
}

// LearnHistory feeds the baseline of ref, a terminal the engine has heard
// from, with what it did not hear itself: its sales and the times it was
// heard from (any message), from the time-series store's history when a
// server starts without a snapshot. Each sale counts as if it had arrived
// at its time; sales already learned must not be given again. It returns
// false, learning nothing, for a terminal not heard from yet.
func (e *Engine) LearnHistory(ref posfleet.TerminalRef, sales, heard []time.Time) bool {
	sh := e.shard(ref)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[ref]
	if s == nil {
		return false
	}
	if s.Hours == nil && len(sales) > 0 {
		s.Hours = &saleHours{}
		s.Hours.hear(s.LastSeen)
	}
	if s.Hours == nil {
		return true
	}
	for _, t := range sales {
		s.Hours.learn(ms(t), false)
		s.Hours.hear(ms(t))
	}
	for _, t := range heard {
		s.Hours.hear(ms(t))
	}
	return true
}
