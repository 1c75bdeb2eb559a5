package health

import (
	"time"

	"github.com/posfleet/posfleet"
)

// silent: online, but no sale during hours in which the terminal usually
// sells (hours.go has the baseline). It is an investigation, not a crew
// visit: the shop may be closed for a holiday, or its cashiers may have
// given up on the terminal and use another; someone calls the merchant.
//
// Raised when the terminal's baseline is known (Config.SilentMinHistory),
// it is online now (heard within OfflineAfter, no last will), the current
// hour is a usual one, and walking back from the last completed hour over
// hours in which it was heard and after its last sale, at least
// SilentMinHours usual hours passed and the chance of so many hours without
// a sale, the product of 1 - P(sale) over them, is at most SilentAlpha.
// Cleared by the next sale, when the current hour is not a usual one (the
// shop's closing time), or when the terminal goes offline (offline says it
// then).

// silentWalk is how many hours back silence is looked for.
const silentWalk = 48

// silentRun walks back from the hour before now's; stop ends the walk
// early once the rule holds (for decide). It returns the usual hours
// without a sale (newest first, when list), their count and their chance.
func (e *Engine) silentRun(s *termState, now int64, th *resolved, stop, list bool) (n int, chance float64, missed []int64) {
	h := s.Hours
	hour := now / hourMs
	sale := h.LastSale / hourMs
	chance = 1
	for g := hour - 1; g > sale && hour-g <= silentWalk && h.heard(g); g-- {
		usual, p := e.usual(h, g)
		if !usual {
			continue
		}
		n++
		chance *= 1 - p
		if list {
			missed = append(missed, g*hourMs)
		}
		if stop && n >= th.SilentMinHours && chance <= th.SilentAlpha {
			break
		}
	}
	return n, chance, missed
}

func (e *Engine) decideSilent(s *termState, now int64, th *resolved) verdict {
	h := s.Hours
	if !e.known(h, now) || s.WillAt != 0 || now-e.heardAt(s) > th.OfflineAfter.Milliseconds() {
		return verdict{}
	}
	if ok, _ := e.usual(h, now/hourMs); !ok {
		return verdict{}
	}
	n, chance, _ := e.silentRun(s, now, th, true, false)
	if n < th.SilentMinHours || chance > th.SilentAlpha {
		return verdict{}
	}
	return verdict{on: true, at: now / hourMs * hourMs}
}

func (e *Engine) explainSilent(s *termState, now int64, th *resolved) *posfleet.SilentEvidence {
	ev := &posfleet.SilentEvidence{MinimumHours: th.SilentMinHours, Threshold: th.SilentAlpha,
		Missed: []time.Time{}, Thresholds: th.appliedFor("silent")}
	h := s.Hours
	if h == nil {
		return ev
	}
	_, chance, missed := e.silentRun(s, now, th, false, true)
	ev.Chance = roundSig(chance)
	ev.LastSale = tm(h.LastSale)
	ev.Weeks = h.observed(now)
	for i := len(missed) - 1; i >= 0; i-- {
		ev.Missed = append(ev.Missed, tm(missed[i]))
	}
	return ev
}
