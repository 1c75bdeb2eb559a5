package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "posfleet.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigPrecedence: flags win over the environment, which wins over
// the YAML file, which wins over the defaults.
func TestConfigPrecedence(t *testing.T) {
	cfgFile := writeConfig(t, "data-dir: /from/yaml\nserve:\n  mqtt-addr: 127.0.0.1:1000\n  http-addr: 127.0.0.1:2000\n  batch-lines: 100\n")
	t.Setenv("POSFLEET_HTTP_ADDR", "127.0.0.1:3000")
	t.Setenv("POSFLEET_BATCH_LINES", "200")
	var out, errb bytes.Buffer
	cli, _, err := parse([]string{"--config", cfgFile, "serve", "--batch-lines", "300"}, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	s := cli.Serve
	if cli.DataDir != "/from/yaml" || s.MQTTAddr != "127.0.0.1:1000" || s.HTTPAddr != "127.0.0.1:3000" || s.BatchLines != 300 {
		t.Errorf("data-dir=%q mqtt=%q http=%q batch=%d; want yaml, yaml, env, flag", cli.DataDir, s.MQTTAddr, s.HTTPAddr, s.BatchLines)
	}
	if s.Fsync != "always" || s.BatchWait.String() != "200ms" {
		t.Errorf("defaults: fsync=%q batch-wait=%v", s.Fsync, s.BatchWait)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		args func(t *testing.T) []string
		want string
	}{
		{"unknown yaml key", func(t *testing.T) []string {
			return []string{"--config", writeConfig(t, "serve:\n  mqtt-adr: :1\n"), "serve"}
		}, "unknown keys: serve-mqtt-adr"},
		{"bad yaml", func(t *testing.T) []string {
			return []string{"--config", writeConfig(t, "serve: [\n"), "serve"}
		}, "config"},
		{"missing config file", func(t *testing.T) []string { return []string{"--config", "/nonexistent.yaml", "serve"} }, "nonexistent.yaml"},
		{"bad fsync", func(t *testing.T) []string { return []string{"serve", "--fsync", "never"} }, "--fsync"},
		{"bad duration", func(t *testing.T) []string { return []string{"serve", "--batch-wait", "soon"} }, "--batch-wait"},
		{"cert without key", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "serve", "--tls-cert", "c.pem"}
		}, "--tls-cert and --tls-key go together"},
		{"zero batch", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "serve", "--batch-lines", "0"}
		}, "must be positive"},
		{"zero event window", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "serve", "--event-window", "0s"}
		}, "collector: EventWindow 0s"},
		{"zero auth burst", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "serve", "--auth-source-burst", "0"}
		}, "registry: failure bursts"},
		{"zero auth rate", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "serve", "--auth-username-failures", "0"}
		}, "registry: failure rates"},
		{"zero rate limit", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "serve", "--rate-limit", "0"}
		}, "--rate-limit"},
		// Ranges checked once, by the component's Validate.
		{"receive maximum over MQTT's", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "serve", "--receive-maximum", "70000"}
		}, "ReceiveMaximum 70000: want 1..65535"},
		{"too many writers", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "serve", "--influx-writers", "65"}
		}, "Writers 65: want 1..64"},
		{"no HTTP connection", func(t *testing.T) []string {
			return []string{"--data-dir", t.TempDir(), "serve", "--http-max-connections", "0"}
		}, "MaxConns 0"},
		{"unknown command", func(t *testing.T) []string { return []string{"fly"} }, "unexpected argument fly"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args(t), &out, &errb)
			if code == 0 {
				t.Fatalf("exit 0; stderr: %s", errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Errorf("stderr %q does not mention %q", errb.String(), tc.want)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "--influx-url") {
		t.Errorf("help does not list --influx-url:\n%s", out.String())
	}
}

// TestImportCommand: bad lines are reported by line number and nothing is
// applied; a good file provisions and writes the secrets once.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("tenant,terminal,model,merchant,site,region,lat,lon\nacme,T-1,A920,M,S,north,31,121\nacme,T 2,A920,M,S,north,91,121\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"--data-dir", dir, "terminals", "import", bad, "--secrets-out", filepath.Join(dir, "s.csv")}, &out, &errb); code == 0 {
		t.Fatal("bad file imported")
	}
	if !strings.Contains(errb.String(), "line 3") {
		t.Errorf("stderr does not name line 3: %s", errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "s.csv")); err == nil {
		t.Error("secrets file written for a refused import")
	}
	good := filepath.Join(dir, "good.csv")
	os.WriteFile(good, []byte("tenant,terminal,model,merchant,site,region,lat,lon\nacme,T-1,A920,M,S,north,31,121\nacme,T-2,A920,M,S,north,,\n"), 0o600)
	out.Reset()
	errb.Reset()
	if code := run([]string{"--data-dir", dir, "terminals", "import", good, "--secrets-out", filepath.Join(dir, "s.csv")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	secrets, err := os.ReadFile(filepath.Join(dir, "s.csv"))
	if err != nil || strings.Count(string(secrets), "\n") != 3 {
		t.Fatalf("secrets file: %q %v", secrets, err)
	}
	// A second import of new terminals must not overwrite the secrets file.
	os.WriteFile(good, []byte("tenant,terminal,model,merchant,site,region,lat,lon\nacme,T-3,A920,M,S,north,31,121\n"), 0o600)
	errb.Reset()
	if code := run([]string{"--data-dir", dir, "terminals", "import", good, "--secrets-out", filepath.Join(dir, "s.csv")}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "exists") {
		t.Errorf("overwrote the secrets file? exit %d, %s", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"--data-dir", dir, "terminals", "list"}, &out, &errb); code != 0 {
		t.Fatalf("list: exit %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "T-1") || !strings.Contains(out.String(), "T-2") || strings.Contains(out.String(), "T-3") {
		t.Errorf("list:\n%s", out.String())
	}
}
