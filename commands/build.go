package commands

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// Build makes a command of type typ for a terminal of the given model, with
// a fresh ID. An update takes its package (URL and SHA-256) from the
// firmware policy: a target, when given, must be the policy's; a model
// without a package in the policy cannot be updated (Conflict, no_policy).
// Bad requests are Invalid, bad_request.
func Build(typ, target, model string, pol *health.Policy) (posfleet.Command, error) {
	id := make([]byte, 8)
	rand.Read(id)
	cmd := posfleet.Command{ID: "cmd-" + hex.EncodeToString(id), Type: typ}
	invalid := func(msg string) error {
		return &posfleet.Error{Kind: posfleet.Invalid, Code: "bad_request", Message: msg}
	}
	switch typ {
	case posfleet.CmdReboot:
		if target != "" {
			return cmd, invalid("target: only for update_firmware")
		}
	case posfleet.CmdUpdateFirmware:
		mp, ok := health.ModelPolicy{}, false
		if pol != nil {
			mp, ok = pol.Models[model]
		}
		if !ok || mp.URL == "" || mp.SHA256 == "" {
			return cmd, posfleet.Errorf(posfleet.Conflict, "no_policy", "the firmware policy has no update package (url and sha256) for model %q; set it with PUT /api/v1/policy", model)
		}
		if target != "" && target != mp.Target {
			return cmd, invalid(fmt.Sprintf("target: the policy's package for %s is %s; send that target or none", model, mp.Target))
		}
		cmd.Target, cmd.URL, cmd.SHA256 = mp.Target, mp.URL, mp.SHA256
	default:
		return cmd, invalid(fmt.Sprintf("type %q: want %s or %s", typ, posfleet.CmdUpdateFirmware, posfleet.CmdReboot))
	}
	return cmd, nil
}
