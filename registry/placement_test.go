package registry_test

import (
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/registry"
)

// TestPlacement: a provisioned terminal's site, as the engine and the
// pages see it; coordinates only when both are given.
func TestPlacement(t *testing.T) {
	lat, lon := 48.85, -2.35
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	for _, tc := range []struct {
		name string
		t    registry.Terminal
		want posfleet.Site
	}{
		{"all", registry.Terminal{TerminalRef: ref, Model: "A920", Merchant: "M-1", Site: "Shop 1", Region: "north", Lat: &lat, Lon: &lon},
			posfleet.Site{Model: "A920", Merchant: "M-1", Site: "Shop 1", Region: "north", Lat: lat, Lon: lon}},
		{"latitude only", registry.Terminal{TerminalRef: ref, Model: "A920", Lat: &lat}, posfleet.Site{Model: "A920"}},
		{"nothing", registry.Terminal{TerminalRef: ref}, posfleet.Site{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.t.Placement(); got != tc.want {
				t.Errorf("Placement = %+v, want %+v", got, tc.want)
			}
		})
	}
}
