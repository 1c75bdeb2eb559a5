package commands_test

import (
	"errors"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
)

// TestBuild: a reboot takes no target; an update takes its package from the
// policy, refuses another target, and cannot be built for a model without a
// package.
func TestBuild(t *testing.T) {
	pol := &health.Policy{Models: map[string]health.ModelPolicy{
		"A920": {Target: "2.4.1", URL: "https://fw.example.com/a920-2.4.1.bin", SHA256: "ab"},
		"P2":   {Target: "1.0.0"},
	}}
	for _, tc := range []struct {
		name, typ, target, model string
		kind                     posfleet.Kind
		code                     string
	}{
		{"reboot", posfleet.CmdReboot, "", "A920", 0, ""},
		{"reboot with a target", posfleet.CmdReboot, "2.4.1", "A920", posfleet.Invalid, "bad_request"},
		{"update", posfleet.CmdUpdateFirmware, "", "A920", 0, ""},
		{"update to the policy's target", posfleet.CmdUpdateFirmware, "2.4.1", "A920", 0, ""},
		{"update to another target", posfleet.CmdUpdateFirmware, "2.5.0", "A920", posfleet.Invalid, "bad_request"},
		{"model without a package", posfleet.CmdUpdateFirmware, "", "P2", posfleet.Conflict, "no_policy"},
		{"model not in the policy", posfleet.CmdUpdateFirmware, "", "X9", posfleet.Conflict, "no_policy"},
		{"unknown type", "format_disk", "", "A920", posfleet.Invalid, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := commands.Build(tc.typ, tc.target, tc.model, pol)
			if tc.code == "" {
				if err != nil || cmd.ID == "" || cmd.Type != tc.typ {
					t.Fatalf("Build = %+v, %v", cmd, err)
				}
				if tc.typ == posfleet.CmdUpdateFirmware && (cmd.URL == "" || cmd.Target != "2.4.1") {
					t.Errorf("update without the policy's package: %+v", cmd)
				}
				return
			}
			var e *posfleet.Error
			if !errors.As(err, &e) || e.Kind != tc.kind || e.Code != tc.code {
				t.Fatalf("err = %v, want kind %v code %s", err, tc.kind, tc.code)
			}
		})
	}
}
