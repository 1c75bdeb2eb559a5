package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/server"
)

// TestRoleCombinations: combinations that would take data with nowhere to
// put it, or collect nothing, are refused at start with a message naming
// the fix.
func TestRoleCombinations(t *testing.T) {
	cases := []struct {
		name, roles, source, wantErr string
	}{
		{"broker without collector", "broker,web", "", "needs the collector role"},
		{"collector alone without a source", "collector", "", "needs --mqtt-source"},
		{"source without collector", "web", "tcp://127.0.0.1:1", "needs the collector or the health role"},
		{"health without a source", "health", "", "needs --mqtt-source"},
		{"health with collector", "health,collector", "tcp://127.0.0.1:1", "runs without broker and collector"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"--data-dir", t.TempDir(), "serve", "--roles", c.roles, "--http-addr", "127.0.0.1:0"}
			if c.source != "" {
				args = append(args, "--mqtt-source", c.source)
			}
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			if code == 0 || !strings.Contains(errb.String(), c.wantErr) {
				t.Errorf("exit %d, stderr %q; want an error containing %q", code, errb.String(), c.wantErr)
			}
		})
	}
}

// TestWebRoleAlone: a web-only process serves HTTP and has no MQTT listener
// and no collector; its /healthz checks only what it runs.
func TestWebRoleAlone(t *testing.T) {
	influx := influxtest.Start(t)
	cfg := server.DefaultConfig(t.TempDir())
	cfg.Roles = server.Roles{Web: true}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Influx.URL, cfg.Influx.Bucket = influx.URL, influxtest.Bucket
	cfg.EMQXToken = "t"
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.MQTTAddr() != nil {
		t.Errorf("web role listens for MQTT at %v", srv.MQTTAddr())
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + srv.HTTPAddr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(body.String(), "broker") || strings.Contains(body.String(), "collector") {
		t.Errorf("/healthz: %d %s", resp.StatusCode, body.String())
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.HTTPAddr().String()+"/emqx/authz", strings.NewReader(`{"username":"acme:T-0001","clientid":"acme:T-0001","topic":"fleet/v1/acme/T-0001/hb","action":"publish"}`))
	req.Header.Set("Authorization", "Bearer t")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body.Reset()
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(body.String(), `"allow"`) {
		t.Errorf("/emqx/authz on the web role: %d %s", resp.StatusCode, body.String())
	}
}
