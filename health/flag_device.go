package health

import (
	"math"

	"github.com/posfleet/posfleet"
)

// weak_network, battery, clock_skew: what the terminal's heartbeats say.

// clockSkewWindow is how many of the latest live heartbeats clock_skew looks at.
const clockSkewWindow = 3

// weak_network: over at least WeakNetworkMinHeartbeats heartbeats, the
// median signal is below WeakSignalDBm or the 90th percentile of the round
// trips to the host above WeakRTTMs.

type networkReading struct {
	heartbeats       int
	median           float64
	hasMedian        bool
	p90              int
	hasP90           bool
	weakSignal, slow bool
	at               int64 // the latest heartbeat counted
}

func (e *Engine) readNetwork(s *termState, cut int64, th *resolved) networkReading {
	var r networkReading
	var sigBuf, rttBuf [HeartbeatRing]int
	sig, rtt := sigBuf[:0], rttBuf[:0]
	for i := range int(s.HBCount) {
		h := &s.HB[i]
		if h.At < cut {
			continue
		}
		r.heartbeats++
		if h.HasSignal {
			sig = append(sig, int(h.Signal))
		}
		if h.RTT >= 0 {
			rtt = append(rtt, int(h.RTT))
		}
		r.at = max(r.at, h.At)
	}
	if r.heartbeats < th.WeakNetworkMinHeartbeats {
		return r
	}
	r.median, r.hasMedian = median(sig)
	r.p90, r.hasP90 = percentile(rtt, 0.9)
	r.weakSignal = r.hasMedian && len(sig) >= th.WeakNetworkMinHeartbeats && r.median < float64(th.WeakSignalDBm)
	r.slow = r.hasP90 && len(rtt) >= th.WeakNetworkMinHeartbeats && r.p90 > th.WeakRTTMs
	return r
}

func (e *Engine) decideWeakNetwork(s *termState, cut int64, th *resolved) verdict {
	r := e.readNetwork(s, cut, th)
	return verdict{on: r.weakSignal || r.slow, at: r.at}
}

func (e *Engine) explainWeakNetwork(s *termState, cut int64, th *resolved) *posfleet.WeakNetworkEvidence {
	r := e.readNetwork(s, cut, th)
	ev := &posfleet.WeakNetworkEvidence{Heartbeats: r.heartbeats, SignalThresholdDBm: th.WeakSignalDBm,
		RTTThresholdMs: th.WeakRTTMs, WeakSignal: r.weakSignal, SlowHost: r.slow, Thresholds: th.appliedFor("weak_network")}
	if r.hasMedian {
		ev.MedianSignalDBm = &r.median
	}
	if r.hasP90 {
		ev.P90HostRTTMs = &r.p90
	}
	return ev
}

// battery: LowBatteryHeartbeats heartbeats in a row below LowBatteryPct and
// not charging, or the last heartbeat hotter than HotTempC.

func (e *Engine) lowBattery(s *termState, cut int64, th *resolved) bool {
	return int(s.LowBatStreak) >= th.LowBatteryHeartbeats && s.LowBatSince >= cut
}

func (e *Engine) hot(s *termState, cut int64, th *resolved) bool {
	return s.LastHB.HasTemp && float64(s.LastHB.TempC) > th.HotTempC && s.LastHB.At >= cut
}

func (e *Engine) decideBattery(s *termState, cut int64, th *resolved) verdict {
	var v verdict
	if e.lowBattery(s, cut, th) {
		v.on, v.at = true, s.LowBatSince
	}
	if e.hot(s, cut, th) {
		v.on = true
		if v.at == 0 {
			v.at = s.LastHB.At
		}
	}
	return v
}

func (e *Engine) explainBattery(s *termState, cut int64, th *resolved) *posfleet.BatteryEvidence {
	ev := &posfleet.BatteryEvidence{Thresholds: th.appliedFor("battery")}
	if e.lowBattery(s, cut, th) {
		pct, charging, streak, threshold := int(s.LastHB.Battery), false, int(s.LowBatStreak), th.LowBatteryPct
		ev.BatteryPct, ev.Charging, ev.LowHeartbeats, ev.ThresholdPct = &pct, &charging, &streak, &threshold
		ev.LowSince = tm(s.LowBatSince)
	}
	if e.hot(s, cut, th) {
		temp, limit := math.Round(float64(s.LastHB.TempC)*10)/10, th.HotTempC
		ev.TempC, ev.TempThresholdC, ev.ReportedAt = &temp, &limit, tm(s.LastHB.At)
	}
	return ev
}

// clock_skew: the clock's offset over the last few live heartbeats is more
// than ClockSkew.
//
// ts - received is the clock's offset minus the delivery delay, and the
// delay is never negative: the least delayed of the last few live
// heartbeats (liveHeartbeat) gives the offset, and a terminal that delivers
// old heartbeats from its outbox is not taken for a wrong clock. Nor is
// such a backlog taken for a right one: the live heartbeats are kept apart
// (termState.Clock), and a burst of replayed ones neither raises nor
// clears the flag.

type skewReading struct {
	heartbeats int
	skew       int64 // seconds
	at         int64 // the latest heartbeat counted
}

func (e *Engine) readSkew(s *termState, cut int64) skewReading {
	var r skewReading
	c := &s.Clock
	for j := range int(c.Count) {
		i := (int(c.Next) - 1 - j + 2*clockSkewWindow) % clockSkewWindow
		if c.At[i] < cut {
			continue
		}
		if off := int64(c.Off[i]); r.heartbeats == 0 || off > r.skew {
			r.skew = off
		}
		if r.heartbeats == 0 {
			r.at = c.At[i]
		}
		r.heartbeats++
	}
	return r
}

func (e *Engine) decideClockSkew(s *termState, cut int64, th *resolved) verdict {
	r := e.readSkew(s, cut)
	if r.heartbeats < th.ClockSkewHeartbeats {
		return verdict{}
	}
	return verdict{on: abs(r.skew) > int64(th.ClockSkew.Seconds()), at: r.at}
}

func (e *Engine) explainClockSkew(s *termState, cut int64, th *resolved) *posfleet.ClockSkewEvidence {
	r := e.readSkew(s, cut)
	return &posfleet.ClockSkewEvidence{SkewS: r.skew, Heartbeats: r.heartbeats, TerminalTS: tm(s.LastHB.TS),
		ServerTS: tm(s.LastHB.At), ThresholdS: int64(th.ClockSkew.Seconds()), Thresholds: th.appliedFor("clock_skew")}
}
