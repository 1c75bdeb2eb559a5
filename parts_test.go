package posfleet_test

import (
	"slices"
	"testing"

	"github.com/posfleet/posfleet"
)

// TestPartsFor: what a crew brings for each flag, and for a hardware
// fault what its components need, each part once.
func TestPartsFor(t *testing.T) {
	hf := func(components ...string) posfleet.Evidence {
		ev := &posfleet.HardwareFaultEvidence{}
		for _, c := range components {
			ev.Faults = append(ev.Faults, posfleet.RaisedFault{Component: c, Code: "X", Severity: posfleet.SeverityCritical})
		}
		return ev
	}
	tests := []struct {
		flag posfleet.FlagName
		ev   posfleet.Evidence
		want string // a part that must be among them
	}{
		{posfleet.FlagReceiptFailures, nil, "paper rolls"},
		{posfleet.FlagBattery, nil, "battery"},
		{posfleet.FlagTamper, nil, "spare terminal"},
		{posfleet.FlagWeakNetwork, nil, "spare SIM card"},
		{posfleet.FlagWeakNetwork, nil, "external antenna"},
		{posfleet.FlagUpdateFailed, nil, "firmware package on USB"},
		{posfleet.FlagOffline, nil, "power adapter"},
		{posfleet.FlagClockSkew, nil, "clock battery"},
		{posfleet.FlagHardwareFault, hf(posfleet.ComponentICC), "chip reader"},
		{posfleet.FlagHardwareFault, hf(posfleet.ComponentPrinter), "paper rolls"},
		{posfleet.FlagHardwareFault, hf(posfleet.ComponentSecureElement), "spare terminal"},
	}
	for _, tt := range tests {
		t.Run(string(tt.flag)+"/"+tt.want, func(t *testing.T) {
			got := posfleet.PartsFor(tt.flag, tt.ev)
			if !slices.Contains(got, tt.want) {
				t.Errorf("PartsFor = %q, want %q among them", got, tt.want)
			}
			seen := map[string]bool{}
			for _, p := range got {
				if seen[p] {
					t.Errorf("%q twice in %q", p, got)
				}
				seen[p] = true
			}
		})
	}
	// Two components needing the same part: once.
	got := posfleet.PartsFor(posfleet.FlagHardwareFault, hf(posfleet.ComponentICC, posfleet.ComponentMSR))
	if want := []string{"cleaning card", "chip reader", "stripe reader"}; !slices.Equal(got, want) {
		t.Errorf("ICC and MSR faults: %q, want %q", got, want)
	}
	// Every maintenance flag has something to bring.
	for _, spec := range posfleet.FlagSpecs {
		if spec.Kind == posfleet.KindMaintenance && len(posfleet.FlagParts[spec.Name]) == 0 {
			t.Errorf("maintenance flag %s has no parts", spec.Name)
		}
	}
	if got := posfleet.MergeParts([]string{"a", "b"}, "b", "c"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("MergeParts = %q", got)
	}
}
