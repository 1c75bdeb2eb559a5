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
