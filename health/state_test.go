package health

import (
	"testing"

	"github.com/posfleet/posfleet"
)

// TestFlagIndicesFollowSpecs checks that the indices and masks the rules
// use are the positions of their flags in posfleet.FlagSpecs.
func TestFlagIndicesFollowSpecs(t *testing.T) {
	var all flagMask
	for i, spec := range posfleet.FlagSpecs {
		t.Run(string(spec.Name), func(t *testing.T) {
			if got := flagIndex(spec.Name); got != i {
				t.Errorf("flagIndex = %d, want %d", got, i)
			}
			if m := maskOf(spec.Name); m != 1<<i {
				t.Errorf("maskOf = %b, want bit %d", m, i)
			}
		})
		all |= maskOf(spec.Name)
	}
	if all != mAll {
		t.Errorf("mAll = %b, the flags' bits %b", mAll, all)
	}
	if flagIndex(posfleet.FlagOffline) != fOffline || maskOf(posfleet.FlagOffline) != mOffline {
		t.Error("offline's index or mask does not follow FlagSpecs")
	}
}

// TestLiveClockFromAnOlderSnapshot: a terminal restored from a snapshot
// written before the live heartbeats were kept apart takes them from its
// heartbeat ring, so that clock_skew judges as it did before the restart.
func TestLiveClockFromAnOlderSnapshot(t *testing.T) {
	s := &termState{}
	offs := []struct {
		off  int32
		live bool
	}{{-1200, true}, {-1300, false}, {-1190, true}, {-1500, false}, {-1210, true}, {-4000, false}}
	for i, o := range offs {
		s.HB[s.HBNext] = hbSample{At: int64(1000 * (i + 1)), Off: o.off, Live: o.live}
		s.HBNext = (s.HBNext + 1) % HeartbeatRing
		s.HBCount++
	}
	s.fillLiveClock()
	e := &Engine{}
	r := e.readSkew(s, 0)
	if r.heartbeats != 3 || r.skew != -1190 || r.at != 5000 {
		t.Errorf("after restore: %+v, want the three live heartbeats (skew -1190 s, latest at 5000)", r)
	}
	if r := e.readSkew(s, 2000); r.heartbeats != 2 || r.skew != -1190 {
		t.Errorf("after a visit at 2000: %+v, want the two live heartbeats since", r)
	}
	s.fillLiveClock() // kept apart already: no change
	if s.Clock.Count != 3 {
		t.Errorf("Clock.Count = %d after a second fill, want 3", s.Clock.Count)
	}
}
