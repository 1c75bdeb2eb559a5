package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server"
)

func TestParseRoles(t *testing.T) {
	cases := []struct {
		in      string
		want    server.Roles
		wantErr bool
	}{
		{"broker,collector,web", server.AllRoles, false},
		{"collector", server.Roles{Collector: true}, false},
		{"web, collector", server.Roles{Collector: true, Web: true}, false},
		{"web", server.Roles{Web: true}, false},
		{"health", server.Roles{Health: true}, false},
		{"web,health", server.Roles{Web: true, Health: true}, false},
		{"brokers", server.Roles{}, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := server.ParseRoles(strings.Split(c.in, ","))
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("ParseRoles(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.wantErr)
			}
			if err == nil && got.String() != strings.ReplaceAll(c.in, " ", "") && c.in != "web, collector" {
				t.Errorf("String() = %q", got.String())
			}
		})
	}
}

// TestRoleCombinations: which roles combine, with and without an external
// broker (see Roles).
func TestRoleCombinations(t *testing.T) {
	cases := []struct {
		roles  string
		source bool
		ok     bool
	}{
		{"broker,collector,web", false, true},
		{"collector", true, true},
		{"collector", false, false},
		{"broker", false, false},
		{"health", true, true},
		{"health,web", true, true},
		{"health", false, false},
		{"health,collector", true, false},
		{"health,broker,collector", false, false},
		{"web", true, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/source=%v", c.roles, c.source), func(t *testing.T) {
			roles, err := server.ParseRoles(strings.Split(c.roles, ","))
			if err != nil {
				t.Fatal(err)
			}
			cfg := server.DefaultConfig(t.TempDir())
			cfg.Roles, cfg.HealthClientID = roles, "posfleet-health-test"
			if c.source {
				cfg.Source.Broker, cfg.Source.ClientID = "tcp://127.0.0.1:1", "c"
			}
			if err := cfg.Validate(); (err == nil) != c.ok {
				t.Errorf("Validate() = %v, want ok %v", err, c.ok)
			}
		})
	}
}
