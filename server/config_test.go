package server_test

import (
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server"
)

// TestConfigValidate: the server's own options and every component's are
// checked by Config.Validate, which New calls.
func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*server.Config)
		want string // "" for valid
	}{
		{"defaults", func(*server.Config) {}, ""},
		{"no data directory", func(c *server.Config) { c.DataDir = "" }, "no data directory"},
		{"no HTTP connection", func(c *server.Config) { c.HTTP.MaxConns = 0 }, "MaxConns"},
		{"short metrics token", func(c *server.Config) { c.MetricsToken = "short" }, "shorter than 16"},
		{"no role", func(c *server.Config) { c.Roles = server.Roles{} }, "no role"},
		{"broker", func(c *server.Config) { c.Broker.ReceiveMaximum = 65536 }, "broker: ReceiveMaximum"},
		{"collector", func(c *server.Config) { c.Collector.Writers = 65 }, "collector: Writers"},
		{"registry", func(c *server.Config) { c.Registry.SourceFailureBurst = 0 }, "registry:"},
		{"health", func(c *server.Config) { c.Health.IncidentShare = 2 }, "health: IncidentShare"},
		{"source without client ID", func(c *server.Config) { c.Source.Broker = "tcp://127.0.0.1:1" }, "mqttsource: no client ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := server.DefaultConfig(t.TempDir())
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
			if _, nerr := server.New(cfg); (nerr == nil) != (err == nil) {
				t.Errorf("New: %v, Validate: %v", nerr, err)
			}
		})
	}
}
