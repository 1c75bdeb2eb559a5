package health

import (
	"math"
	"time"

	"github.com/posfleet/posfleet"
)

// fallback_rate and moved: signals PROTOCOL §2 does not read, compatible
// extensions documented in the README ("PROTOCOL extensions"). A terminal
// that never sends a chip transaction or a location never raises them.

// FallbackRing is how many chip transactions (entry chip or fallback) a
// terminal keeps for fallback_rate; Config.FallbackWindow uses at most it.
const FallbackRing = 50

// chipLog is the terminal's last FallbackRing card-present chip
// transactions: when each arrived (Unix seconds) and whether it fell back
// to the stripe. About 220 bytes, allocated with the first chip
// transaction; the samples with the first fallback.
type chipLog struct {
	At       [FallbackRing]uint32
	Fallback uint64 // bit i: entry i of At fell back
	Next     uint8
	Count    uint8
	// Samples keeps the latest fallbacks (transaction ID and time).
	Samples *evRing
}

// observeChip records a chip or fallback transaction.
func (s *termState) observeChip(t *posfleet.Transaction, now int64) flagMask {
	fallback := t.Entry == posfleet.EntryFallback
	if !fallback && t.Entry != posfleet.EntryChip {
		return 0
	}
	if s.Chip == nil {
		s.Chip = &chipLog{}
	}
	c := s.Chip
	c.At[c.Next] = uint32(max(now/1000, 0))
	if fallback {
		c.Fallback |= 1 << c.Next
		if c.Samples == nil {
			c.Samples = &evRing{}
		}
		c.Samples.add(evt{At: now, ID: t.ID})
	} else {
		c.Fallback &^= 1 << c.Next
	}
	c.Next = (c.Next + 1) % FallbackRing
	if c.Count < FallbackRing {
		c.Count++
	}
	return mFallbackRate
}

// tallyFallbacks counts the last FallbackWindow chip transactions that
// arrived at or after cut (a crew visit) and the fallbacks among them.
func (e *Engine) tallyFallbacks(s *termState, cut int64, th *resolved) (total, fallbacks int, first int64) {
	c := s.Chip
	if c == nil {
		return 0, 0, 0
	}
	for i := 1; i <= min(th.FallbackWindow, int(c.Count)); i++ {
		j := (int(c.Next) - i + FallbackRing) % FallbackRing
		at := int64(c.At[j]) * 1000
		if at < cut { // to the second: one in the visit's second is old
			break
		}
		total++
		if c.Fallback&(1<<j) != 0 {
			fallbacks++
			first = at
		}
	}
	return total, fallbacks, first
}

func (e *Engine) decideFallbackRate(s *termState, cut int64, th *resolved) verdict {
	total, n, first := e.tallyFallbacks(s, cut, th)
	on := n >= th.FallbackMinimum && float64(n) >= th.FallbackRate*float64(total)
	return verdict{on: on, at: first}
}

func (e *Engine) explainFallbackRate(s *termState, cut int64, th *resolved) *posfleet.FallbackRateEvidence {
	total, n, _ := e.tallyFallbacks(s, cut, th)
	ev := &posfleet.FallbackRateEvidence{Count: n, Total: total, Minimum: th.FallbackMinimum,
		Threshold: th.FallbackRate, Window: th.FallbackWindow, Latest: []posfleet.FallbackTxn{}, Thresholds: th.appliedFor("fallback_rate")}
	if total > 0 {
		ev.Rate = math.Round(float64(n)/float64(total)*1000) / 1000
	}
	if s.Chip != nil {
		for _, x := range s.Chip.Samples.since(max(cut, 1)) {
			ev.Latest = append(ev.Latest, posfleet.FallbackTxn{ID: x.ID, At: tm(x.At)})
		}
	}
	return ev
}

// siteRefresh is how long the provisioned site of a terminal that reports
// its location is trusted before Config.Site is asked again (a re-sited
// terminal's new site, entered in the registry, counts within it).
const siteRefresh = 10 * time.Minute

// locState is a terminal's reported location and its provisioned site.
type locState struct {
	Lat, Lon         float64 // the last reported location
	SiteLat, SiteLon float64
	HasSite          bool
	SiteAt           int64 // when Config.Site was last asked
	// Away and Home count the heartbeats in a row away from the site and
	// at it; AwaySince is the first heartbeat of the current run away.
	Away, Home uint8
	AwaySince  int64
	// Moved is the flag's state (raised after MovedHeartbeats away, cleared
	// after as many at the site), MovedSince when it was raised.
	Moved      bool
	MovedSince int64
	DistanceM  float64
}

// siteLookup is a provisioned site read from Config.Site outside the
// shard's lock.
type siteLookup struct {
	lat, lon float64
	ok       bool
}

// lookupSite asks Config.Site for the site of m's terminal when m is a
// heartbeat with a location and the site it knows is older than
// siteRefresh; nil otherwise. It runs before Observe locks the shard: the
// lookup may read the registry.
func (e *Engine) lookupSite(m *posfleet.Message, now int64) *siteLookup {
	hb := m.Heartbeat
	if hb == nil || hb.Lat == nil || hb.Lon == nil || e.cfg.Site == nil {
		return nil
	}
	sh := e.shard(m.Terminal)
	sh.mu.Lock()
	s := sh.m[m.Terminal]
	fresh := s != nil && s.Loc != nil && s.Loc.SiteAt != 0 && now-s.Loc.SiteAt < siteRefresh.Milliseconds()
	sh.mu.Unlock()
	if fresh {
		return nil
	}
	st, ok := e.cfg.Site(m.Terminal)
	// The registry has no location as 0, 0 (the Gulf of Guinea).
	return &siteLookup{lat: st.Lat, lon: st.Lon, ok: ok && (st.Lat != 0 || st.Lon != 0)}
}

// observeLocation updates moved's state from a heartbeat with a location;
// site is a fresh lookup of the provisioned site or nil.
func (e *Engine) observeLocation(s *termState, hb *posfleet.Heartbeat, site *siteLookup, now int64, th *resolved) flagMask {
	if hb.Lat == nil || hb.Lon == nil {
		return 0 // no reading: the state stands
	}
	if s.Loc == nil {
		s.Loc = &locState{}
	}
	l := s.Loc
	if site != nil {
		l.SiteLat, l.SiteLon, l.HasSite, l.SiteAt = site.lat, site.lon, site.ok, now
	}
	l.Lat, l.Lon = *hb.Lat, *hb.Lon
	if !l.HasSite {
		*l = locState{Lat: l.Lat, Lon: l.Lon, SiteAt: l.SiteAt}
		return mMoved
	}
	l.DistanceM = distanceM(l.Lat, l.Lon, l.SiteLat, l.SiteLon)
	if l.DistanceM > th.MovedDistanceM {
		if l.Away == 0 {
			l.AwaySince = now
		}
		l.Away, l.Home = min(l.Away+1, 255), 0
	} else {
		l.Away, l.Home = 0, min(l.Home+1, 255)
	}
	n := uint8(min(th.MovedHeartbeats, 255))
	switch {
	case !l.Moved && l.Away >= n:
		l.Moved, l.MovedSince = true, l.AwaySince
	case l.Moved && l.Home >= n:
		l.Moved, l.MovedSince = false, 0
	}
	return mMoved
}

func decideMoved(s *termState) verdict {
	if s.Loc == nil || !s.Loc.Moved {
		return verdict{}
	}
	return verdict{on: true, at: s.Loc.MovedSince}
}

func (e *Engine) explainMoved(s *termState, th *resolved) *posfleet.MovedEvidence {
	l := s.Loc
	if l == nil {
		return &posfleet.MovedEvidence{}
	}
	return &posfleet.MovedEvidence{DistanceM: int64(math.Round(l.DistanceM)), Heartbeats: th.MovedHeartbeats,
		Lat: l.Lat, Lon: l.Lon, SiteLat: l.SiteLat, SiteLon: l.SiteLon, Since: tm(l.MovedSince),
		ThresholdM: int64(math.Round(th.MovedDistanceM)), Thresholds: th.appliedFor("moved")}
}

// earthRadiusM is the mean radius of the Earth.
const earthRadiusM = 6371008.8

// distanceM is the great-circle distance between two points, in metres
// (the haversine formula: exact enough at a kilometre's threshold).
func distanceM(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusM * math.Asin(math.Sqrt(min(a, 1)))
}
