package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestSeqResetOnTerminalPage: a terminal that starts counting its seq from 1
// again (a wiped outbox) is stored, not silenced, and its page and API show
// the restart, with its rejections by reason.
func TestSeqResetOnTerminalPage(t *testing.T) {
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
	start := time.Now().UTC().Add(-time.Minute)
	hb := func(seq int, at time.Time) {
		publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, fmt.Sprintf(`{"seq":%d,"ts":%q,"battery_pct":80}`, seq, at.Format(time.RFC3339Nano)))
	}
	for seq := 1; seq <= 5; seq++ {
		hb(seq, start.Add(time.Duration(seq)*time.Second))
	}
	hb(1, start.Add(30*time.Second)) // the outbox was wiped: seq 1 again, later than anything sent
	hb(2, start.Add(31*time.Second))
	publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, `not json`)

	waitFor(t, "7 heartbeats stored", func() bool { return count(t, influx, "heartbeat", "seq") == 7 })

	code, b := apiCall(t, srv, token, "GET", "/api/v1/terminals/acme/T-0001", "")
	var detail struct {
		Messages struct {
			SeqResets int64            `json:"seq_resets"`
			Rejected  map[string]int64 `json:"rejected"`
		} `json:"messages"`
	}
	if code != 200 || json.Unmarshal(b, &detail) != nil {
		t.Fatalf("terminal: %d %s", code, b)
	}
	if detail.Messages.SeqResets != 1 || detail.Messages.Rejected["not_json"] != 1 {
		t.Errorf("messages = %+v, want 1 seq reset and 1 not_json rejection", detail.Messages)
	}

	web := signInWeb(t, "http://"+srv.HTTPAddr().String(), "ops-acme", "correct horse battery")
	resp, err := web.Get("http://" + srv.HTTPAddr().String() + "/terminals/acme/T-0001")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fact := func(id string) string {
		m := regexp.MustCompile(`data-testid="` + id + `"[^>]*>([^<]*)<`).FindSubmatch(page)
		if m == nil {
			t.Fatalf("no %s on the terminal page", id)
		}
		return strings.TrimSpace(string(m[1]))
	}
	if got := fact("msg-seq-resets"); got != "1" {
		t.Errorf("seq restarts shown as %q, want 1", got)
	}
	if got := fact("msg-rejected"); got != "1 (not_json 1)" {
		t.Errorf("rejected shown as %q", got)
	}
}
