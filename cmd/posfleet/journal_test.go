package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/web"
)

// TestJournalSurvivesRestart: a firmware update sent from the API and
// its acks, a rejected message, a refused CONNECT, a crew's visit and two
// policy versions are all there after `posfleet serve` restarts on the
// same data directory, in the API and on the pages.
func TestJournalSurvivesRestart(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	cfg.Collector.EventWindow = 100 * time.Millisecond
	provision(t, filepath.Join(dir, "registry.db"), cfg.Registry, 2)
	srv := startServer(t, cfg)
	ctx := context.Background()
	admin, err := srv.Users().CreateToken(ctx, "admin", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	acme, err := srv.Users().CreateToken(ctx, "acme-script", "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Users().AddUser(ctx, "ops-acme", "acme", "correct horse battery"); err != nil {
		t.Fatal(err)
	}

	// Two policy versions.
	policies := []string{
		"models:\n  A920:\n    target: 2.4.2\n    url: https://fw.example.com/a920-2.4.2.bin\n    sha256: " + strings.Repeat("a", 64) + "\n",
		"models:\n  A920:\n    target: 2.4.3\n    url: https://fw.example.com/a920-2.4.3.bin\n    sha256: " + strings.Repeat("b", 64) + "\n",
	}
	for _, p := range policies {
		if code, b := apiCall(t, srv, admin, "PUT", "/api/v1/policy", p); code != 200 {
			t.Fatalf("PUT policy: %d %s", code, b)
		}
	}

	// A terminal on an old version gets the update and acks it.
	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	got := make(chan posfleet.Command, 1)
	if tok := c.Subscribe("fleet/v1/acme/T-0001/cmd", 1, func(_ mqtt.Client, m mqtt.Message) {
		var cmd posfleet.Command
		json.Unmarshal(m.Payload(), &cmd)
		got <- cmd
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe", tok.Error())
	}
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	publish(t, c, "fleet/v1/acme/T-0001/fw", 1, true, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","firmware":"2.4.1"}`, ts(0)))
	publish(t, c, "fleet/v1/acme/T-0001/fault", 1, false, fmt.Sprintf(`{"seq":2,"ts":%q,"component":"printer","code":"PAPER_JAM","severity":"warning","state":"raised"}`, ts(0)))
	if code, b := apiCall(t, srv, acme, "POST", "/api/v1/terminals/acme/T-0001/commands", `{"type":"update_firmware"}`); code != http.StatusAccepted {
		t.Fatalf("update: %d %s", code, b)
	}
	var cmd posfleet.Command
	select {
	case cmd = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the command never reached the terminal")
	}
	publish(t, c, "fleet/v1/acme/T-0001/ack", 1, false, fmt.Sprintf(`{"seq":3,"ts":%q,"cmd_id":%q,"status":"accepted"}`, ts(time.Second), cmd.ID))
	publish(t, c, "fleet/v1/acme/T-0001/ack", 1, false, fmt.Sprintf(`{"seq":4,"ts":%q,"cmd_id":%q,"status":"done"}`, ts(2*time.Second), cmd.ID))
	// A rejected message and a refused CONNECT.
	publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, `not json`)
	if bad, err := connect(srv.MQTTAddr().String(), "acme:T-0002", "acme:T-0002", "not-the-secret"); err == nil {
		bad.Disconnect(0)
		t.Fatal("a wrong secret connected")
	}
	// The crew's visit.
	if code, b := apiCall(t, srv, acme, "POST", "/api/v1/terminals/acme/T-0001/serviced", `{"note":"printer cleaned"}`); code != 200 {
		t.Fatalf("serviced: %d %s", code, b)
	}

	commandsDone := func(srv *server.Server) bool {
		_, b := apiCall(t, srv, acme, "GET", "/api/v1/terminals/acme/T-0001", "")
		var d struct {
			Commands []struct {
				Status string
				Acks   []any
			}
		}
		json.Unmarshal(b, &d)
		return len(d.Commands) == 1 && d.Commands[0].Status == posfleet.AckDone && len(d.Commands[0].Acks) == 2
	}
	waitFor(t, "the acks in the command log", func() bool { return commandsDone(srv) })
	events := func(srv *server.Server) (rej, sec int) {
		r, _ := journal.RecentRejections(ctx, srv.DB(), "acme", 10)
		s, _ := journal.RecentSecurity(ctx, srv.DB(), "acme", 10)
		return len(r), len(s)
	}
	waitFor(t, "the events in the database", func() bool { r, s := events(srv); return r >= 1 && s >= 1 })

	c.Disconnect(100)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, cfg)
	base := "http://" + srv.HTTPAddr().String()

	if !commandsDone(srv) {
		_, b := apiCall(t, srv, acme, "GET", "/api/v1/terminals/acme/T-0001", "")
		t.Errorf("commands after the restart: %s", b)
	}
	code, b := apiCall(t, srv, admin, "GET", "/api/v1/policy/history", "")
	var hist struct{ Versions []web.PolicyVersion }
	if code != 200 || json.Unmarshal(b, &hist) != nil || len(hist.Versions) != 2 || hist.Versions[0].Version != 2 || hist.Versions[0].Body != policies[1] || hist.Versions[0].CreatedBy != "admin" {
		t.Errorf("policy history after the restart: %d %s", code, b)
	}
	if code, b := apiCall(t, srv, admin, "GET", "/api/v1/policy", ""); code != 200 || !strings.Contains(string(b), "2.4.3") {
		t.Errorf("policy after the restart: %d %s", code, b)
	}
	if r, s := events(srv); r < 1 || s < 1 {
		t.Errorf("after the restart: %d rejections, %d security events", r, s)
	}
	visits, err := journal.Visits(ctx, srv.DB(), posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0001"}, 10)
	if err != nil || len(visits) != 1 || visits[0].Note != "printer cleaned" || visits[0].By != "acme-script" || len(visits[0].Cleared) == 0 || visits[0].Applied.IsZero() {
		t.Errorf("visits after the restart: %+v, %v", visits, err)
	}

	// The pages.
	browser := signInWeb(t, base, "ops-acme", "correct horse battery")
	get := func(path string) string {
		resp, err := browser.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return string(b)
	}
	sec := get("/security")
	for _, want := range []string{`data-testid="security-row"`, "auth_failed", "acme:T-0002", `data-testid="rejection-row"`, "not_json"} {
		if !strings.Contains(sec, want) {
			t.Errorf("Security page after the restart lacks %s", want)
		}
	}
	term := get("/terminals/acme/T-0001")
	for _, want := range []string{cmd.ID, "done", `data-testid="service-row"`, "printer cleaned"} {
		if !strings.Contains(term, want) {
			t.Errorf("terminal page after the restart lacks %s", want)
		}
	}
	if fw := get("/firmware"); strings.Count(fw, `data-testid="policy-version"`) != 2 {
		t.Errorf("Firmware page after the restart: %d policy versions, want 2", strings.Count(fw, `data-testid="policy-version"`))
	}
}

// TestPolicyFileImported: the policy.yaml of an older release is version
// 1 of the database's history at the first start, by "import", and renamed.
func TestPolicyFileImported(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	body := "models:\n  A920:\n    target: 2.4.2\n"
	if err := writeFile(filepath.Join(dir, "policy.yaml"), body); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfg)
	h, err := journal.PolicyHistory(context.Background(), srv.DB(), 10)
	if err != nil || len(h) != 1 || h[0].Body != body || h[0].CreatedBy != journal.ImportedBy {
		t.Fatalf("history = %+v, %v", h, err)
	}
	if pol := srv.Health().Policy(); pol == nil || pol.Models["A920"].Target != "2.4.2" {
		t.Errorf("engine's policy = %+v", pol)
	}
	if !fileExists(filepath.Join(dir, "policy.yaml.imported")) || fileExists(filepath.Join(dir, "policy.yaml")) {
		t.Error("policy.yaml not renamed to policy.yaml.imported")
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o600) }

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

// TestWebReplicaShowsEvents: a web-only process on the same database
// shows on its Security page the refused CONNECT and the rejected message
// that the process with the broker and the collector recorded.
func TestWebReplicaShowsEvents(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	cfg.Collector.EventWindow = 100 * time.Millisecond
	provision(t, filepath.Join(dir, "registry.db"), cfg.Registry, 2)
	srv := startServer(t, cfg)

	wcfg := testConfig(t.TempDir(), influx)
	wcfg.Roles = server.Roles{Web: true}
	wcfg.DatabaseURL = "sqlite://" + filepath.Join(dir, "posfleet.db")
	replica := startServer(t, wcfg)
	if err := replica.Users().AddUser(context.Background(), "ops-acme", "acme", "correct horse battery"); err != nil {
		t.Fatal(err)
	}

	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, `not json`)
	if bad, err := connect(srv.MQTTAddr().String(), "acme:T-0002", "acme:T-0002", "not-the-secret"); err == nil {
		bad.Disconnect(0)
		t.Fatal("a wrong secret connected")
	}
	base := "http://" + replica.HTTPAddr().String()
	browser := signInWeb(t, base, "ops-acme", "correct horse battery")
	waitFor(t, "the events on the replica's Security page", func() bool {
		resp, err := browser.Get(base + "/security")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		page := string(b)
		return strings.Contains(page, `data-testid="security-row"`) && strings.Contains(page, "acme:T-0002") && strings.Contains(page, "not_json")
	})
}
