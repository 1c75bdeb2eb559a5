package health_test

import (
	"testing"

	"github.com/posfleet/posfleet/health"
)

// TestFirmwareStatus: the verdict the firmware page shows per version,
// from the same rule as the firmware flags.
func TestFirmwareStatus(t *testing.T) {
	pol, err := health.ParsePolicy([]byte("models:\n  A920:\n    target: 2.5.1\n    minimum: 2.4.0\n    blocked: [2.4.7]\n  V400m:\n    target: 1.0.0\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model, firmware string
		want            health.FirmwareStatus
	}{
		{"A920", "2.4.7", health.FirmwareBlocked},
		{"A920", "2.3.9", health.FirmwareBelowMinimum},
		{"A920", "2.4.9", health.FirmwareBehind},
		{"A920", "2.5.1", health.FirmwareOnTarget},
		{"A920", "v2.5.1", health.FirmwareOnTarget},
		{"A920", "2.6.0", health.FirmwareAhead},
		{"A920", "not-a-version", health.FirmwareUnknown},
		{"A920", "", health.FirmwareUnknown},
		{"V400m", "0.9.0", health.FirmwareBehind},
		{"P400", "1.0.0", health.FirmwareUnknown},
	} {
		t.Run(tc.model+"/"+tc.firmware, func(t *testing.T) {
			if got := pol.FirmwareStatus(tc.model, tc.firmware); got != tc.want {
				t.Errorf("FirmwareStatus = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("nil policy", func(t *testing.T) {
		if got := (*health.Policy)(nil).FirmwareStatus("A920", "2.5.1"); got != health.FirmwareUnknown {
			t.Errorf("FirmwareStatus = %q, want unknown", got)
		}
	})
	t.Run("hand-built policy with a bad version", func(t *testing.T) {
		p := &health.Policy{Models: map[string]health.ModelPolicy{"A920": {Target: "latest"}}}
		if got := p.FirmwareStatus("A920", "2.5.1"); got != health.FirmwareUnknown {
			t.Errorf("FirmwareStatus = %q, want unknown", got)
		}
	})
}
