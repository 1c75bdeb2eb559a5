package health

import (
	"math"

	"github.com/posfleet/posfleet"
)

// wear_due: a part forecast to wear out within Config.WearHorizon, from the
// optional lifetime counters of hb (README, "PROTOCOL extensions"), so
// that a crew brings the part on a visit already planned. The trend is a
// least-squares line through samples taken once per WearSampleEvery (the
// last WearRing, and the latest reading); a forecast needs three of them
// spanning WearMinSpan. A part already past its rated life is due at once.
// The counters only grow while the terminal runs (battery health only
// falls): a counter that goes down (battery health that rises by 10
// points) after a restart (uptime_s lower than before, or not sent) is a
// new part, fitted while the terminal was off: its samples start again,
// and the flag clears. Within one boot (uptime_s still growing) such a
// reading is a glitch and is ignored. Like every
// maintenance flag, a crew visit clears it until samples after the visit
// show it again.

// WearRing is how many samples a terminal keeps per wear counter.
const WearRing = 16

// The wear counters, in hb's order.
const (
	wPrints = iota
	wInsertions
	wCycles
	wHealth
	nWear
)

var wearCounter = [nWear]struct{ name, part string }{
	{"prints", posfleet.WearPrinterHead},
	{"card_insertions", posfleet.WearChipReader},
	{"battery_cycles", posfleet.WearBattery},
	{"battery_health_pct", posfleet.WearBattery},
}

// wearSeries is one counter's samples: 136 bytes, allocated with the first
// reading of the counter.
type wearSeries struct {
	T           [WearRing]uint32 // Unix seconds
	V           [WearRing]uint32
	Next, Count uint8
	// Last and LastAt are the latest reading, sampled or not.
	Last, LastAt uint32
}

// wearState holds a terminal's wear counters; nil until it sends one. A
// field per counter, not an array: gob writes no nil array element.
// Uptime is the uptime_s of the last heartbeat with a counter (-1: none
// sent), which tells a restart from a running terminal.
type wearState struct {
	Prints, Insertions, Cycles, Health *wearSeries
	Uptime                             int64
}

// series returns the counters by index (wPrints...).
func (w *wearState) series() [nWear]**wearSeries {
	return [nWear]**wearSeries{&w.Prints, &w.Insertions, &w.Cycles, &w.Health}
}

func (w *wearSeries) latest() int { return (int(w.Next) - 1 + WearRing) % WearRing }

func (e *Engine) observeWear(s *termState, hb *posfleet.Heartbeat, now int64) flagMask {
	if hb.Prints == nil && hb.CardInsertions == nil && hb.BatteryCycles == nil && hb.BatteryHealthPct == nil {
		return 0
	}
	uptime := int64(-1)
	if hb.UptimeS != nil {
		uptime = *hb.UptimeS
	}
	if s.Wear == nil {
		s.Wear = &wearState{Uptime: -1}
	}
	running := uptime >= 0 && s.Wear.Uptime >= 0 && uptime >= s.Wear.Uptime
	s.Wear.Uptime = uptime
	var mask flagMask
	for i, p := range [nWear]*int64{hb.Prints, hb.CardInsertions, hb.BatteryCycles, intPtr64(hb.BatteryHealthPct)} {
		if p == nil {
			continue
		}
		ws := s.Wear.series()[i]
		if *ws == nil {
			*ws = &wearSeries{}
		}
		e.addWear(*ws, i == wHealth, running, uint32(min(max(*p, 0), math.MaxUint32)), now)
		mask = mWearDue
	}
	return mask
}

func intPtr64(p *int) *int64 {
	if p == nil {
		return nil
	}
	v := int64(*p)
	return &v
}

func (e *Engine) addWear(w *wearSeries, health, running bool, v uint32, now int64) {
	at := uint32(max(now/1000, 0))
	if w.Count > 0 && (!health && v < w.Last || health && v >= w.Last+10) {
		if running {
			return // a glitch: parts are not replaced in a running terminal
		}
		*w = wearSeries{} // a new part
	}
	w.Last, w.LastAt = v, at
	if w.Count > 0 && int64(at)-int64(w.T[w.latest()]) < int64(e.cfg.WearSampleEvery.Seconds()) {
		return
	}
	w.T[w.Next], w.V[w.Next] = at, v
	w.Next = (w.Next + 1) % WearRing
	if w.Count < WearRing {
		w.Count++
	}
}

// rated is counter i's rated life.
func (e *Engine) rated(i int, th *resolved) int64 {
	switch i {
	case wPrints:
		return th.WearPrinterPrints
	case wInsertions:
		return th.WearChipInsertions
	case wCycles:
		return th.WearBatteryCycles
	}
	return int64(th.WearBatteryHealthPct)
}

// forecast is counter i's forecast from the samples at or after cut (Unix
// ms); ok is false without a reading since cut.
func (e *Engine) forecast(w *wearSeries, i int, cut int64, th *resolved) (fc posfleet.WearForecast, due, ok bool) {
	if w == nil || int64(w.LastAt)*1000 < cut || w.LastAt == 0 && w.Count == 0 {
		return fc, false, false
	}
	rated := e.rated(i, th)
	fc = posfleet.WearForecast{Counter: wearCounter[i].name, Part: wearCounter[i].part, RatedLife: rated,
		Value: int64(w.Last), DaysLeft: -1}
	// Least squares over the samples since cut and the latest reading, in
	// days from the first.
	var n, t0, st, sv, stt, stv float64
	first, last := 0.0, 0.0
	point := func(t uint32, v uint32) {
		if int64(t)*1000 < cut {
			return
		}
		if n == 0 {
			t0 = float64(t)
		}
		x := (float64(t) - t0) / 86400
		n++
		st += x
		sv += float64(v)
		stt += x * x
		stv += x * float64(v)
		if n == 1 {
			first = x
		}
		last = x
	}
	for k := int(w.Count); k > 0; k-- {
		j := (int(w.Next) - k + WearRing) % WearRing
		point(w.T[j], w.V[j])
	}
	if w.Count == 0 || w.LastAt > w.T[w.latest()] {
		point(w.LastAt, w.Last)
	}
	fc.Samples = int(n)
	slope := 0.0
	if d := n*stt - st*st; n >= 3 && d > 0 {
		slope = (n*stv - st*sv) / d
		fc.PerDay = math.Round(slope*100) / 100
	}
	spanOK := n >= 3 && (last-first)*86400 >= th.WearMinSpan.Seconds()
	left := float64(rated) - float64(w.Last) // to go
	if i == wHealth {
		left, slope = -left, -slope
	}
	switch {
	case left <= 0:
		fc.DaysLeft = 0
	case spanOK && slope > 0:
		fc.DaysLeft = math.Round(left/slope*10) / 10
	default:
		return fc, false, true
	}
	return fc, fc.DaysLeft <= th.WearHorizon.Hours()/24, true
}

func (e *Engine) decideWearDue(s *termState, now, cut int64, th *resolved) verdict {
	if s.Wear == nil {
		return verdict{}
	}
	for i, w := range s.Wear.series() {
		if _, due, _ := e.forecast(*w, i, cut, th); due {
			return verdict{on: true}
		}
	}
	return verdict{}
}

func (e *Engine) explainWearDue(s *termState, now, cut int64, th *resolved) *posfleet.WearDueEvidence {
	ev := &posfleet.WearDueEvidence{HorizonDays: math.Round(th.WearHorizon.Hours()/24*100) / 100, Parts: []posfleet.WearForecast{},
		Thresholds: th.appliedFor("wear_due")}
	if s.Wear == nil {
		return ev
	}
	for i, w := range s.Wear.series() {
		if fc, due, _ := e.forecast(*w, i, cut, th); due {
			ev.Parts = append(ev.Parts, fc)
		}
	}
	return ev
}
