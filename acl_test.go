package posfleet_test

import (
	"testing"

	"github.com/posfleet/posfleet"
)

func TestMayPublish(t *testing.T) {
	me := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0001"}
	cases := []struct {
		name  string
		topic string
		want  bool
	}{
		{"own heartbeat", "fleet/v1/acme/T-0001/hb", true},
		{"own status", "fleet/v1/acme/T-0001/status", true},
		{"own unknown channel (rejected later as bad input)", "fleet/v1/acme/T-0001/other", true},
		{"own cmd", "fleet/v1/acme/T-0001/cmd", false},
		{"other terminal", "fleet/v1/acme/T-0002/hb", false},
		{"other tenant", "fleet/v1/other/T-0001/hb", false},
		{"deeper level", "fleet/v1/acme/T-0001/hb/x", false},
		{"wildcard", "fleet/v1/acme/+/hb", false},
		{"prefix only", "fleet/v1/acme/T-0001", false},
		{"other root", "fleet/v2/acme/T-0001/hb", false},
		{"empty", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := posfleet.MayPublish(me, c.topic); got != c.want {
				t.Errorf("MayPublish(%v, %q) = %v, want %v", me, c.topic, got, c.want)
			}
		})
	}
}

func TestMaySubscribe(t *testing.T) {
	me := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0001"}
	cases := []struct {
		name   string
		ref    posfleet.TerminalRef
		filter string
		want   bool
	}{
		{"own cmd", me, "fleet/v1/acme/T-0001/cmd", true},
		{"own hb", me, "fleet/v1/acme/T-0001/hb", false},
		{"own wildcard", me, "fleet/v1/acme/T-0001/#", false},
		{"everything", me, "#", false},
		{"other cmd", me, "fleet/v1/acme/T-0002/cmd", false},
		{"shared", me, "$share/posfleet/fleet/v1/acme/T-0001/cmd", false},
		{"invalid ref", posfleet.TerminalRef{Tenant: "a/b", Terminal: "c"}, "fleet/v1/a/b/c/cmd", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := posfleet.MaySubscribe(c.ref, c.filter); got != c.want {
				t.Errorf("MaySubscribe(%v, %q) = %v, want %v", c.ref, c.filter, got, c.want)
			}
		})
	}
}
