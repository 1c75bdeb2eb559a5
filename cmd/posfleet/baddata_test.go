package main

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestBadDataOverMQTT: a provisioned terminal that connects and publishes
// only messages the server rejects is neither "never connected" nor
// healthy: the API and its page show bad_data with the reasons, and its page
// lists its rejections without their payloads.
func TestBadDataOverMQTT(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	provision(t, filepath.Join(dir, "registry.db"), cfg.Registry, 1)
	srv := startServer(t, cfg)
	ctx := context.Background()
	token, err := srv.Users().CreateToken(ctx, "test", "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Users().AddUser(ctx, "ops-acme", "acme", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	defer c.Disconnect(100)
	for range 3 {
		publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, `not json`)
		publish(t, c, "fleet/v1/acme/T-0001/txn", 1, false, `{"ts":"2026-03-02T09:30:00Z","secret_marker":"xyzzy"}`)
	}
	var detail struct {
		Seen   bool `json:"seen"`
		Health struct {
			Online bool `json:"online"`
			Flags  []struct {
				Flag     string         `json:"flag"`
				Kind     string         `json:"kind"`
				Evidence map[string]any `json:"evidence"`
			} `json:"flags"`
		} `json:"health"`
	}
	last := ""
	defer func() {
		if t.Failed() {
			t.Logf("last answer: %.2000s", last)
		}
	}()
	waitFor(t, "bad_data raised", func() bool {
		code, b := apiCall(t, srv, token, "GET", "/api/v1/terminals/acme/T-0001", "")
		last = string(b)
		if code != 200 || json.Unmarshal(b, &detail) != nil {
			return false
		}
		return len(detail.Health.Flags) > 0 && detail.Health.Flags[0].Flag == "bad_data"
	})
	ev := detail.Health.Flags[0].Evidence
	if !detail.Seen || !detail.Health.Online || detail.Health.Flags[0].Kind != "investigate" || ev["count"] != float64(6) {
		t.Errorf("terminal %+v", detail)
	}
	if by, _ := ev["by_reason"].(map[string]any); by["not_json"] != float64(3) || by["missing_seq"] != float64(3) {
		t.Errorf("by_reason %v", ev["by_reason"])
	}

	web := signInWeb(t, "http://"+srv.HTTPAddr().String(), "ops-acme", "correct horse battery")
	resp, err := web.Get("http://" + srv.HTTPAddr().String() + "/terminals/acme/T-0001")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	for _, want := range []string{`data-testid="flag-bad_data"`, `data-testid="terminal-rejection-row"`, "missing_seq", "not_json"} {
		if !strings.Contains(page, want) {
			t.Errorf("terminal page lacks %s", want)
		}
	}
	for _, never := range []string{`data-testid="never-seen"`, `data-testid="no-flags"`, "xyzzy"} {
		if strings.Contains(page, never) {
			t.Errorf("terminal page shows %s", never)
		}
	}
}
