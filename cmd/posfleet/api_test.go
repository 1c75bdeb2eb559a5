package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/web"
)

func apiCall(t *testing.T, srv *server.Server, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+srv.HTTPAddr().String()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestHealthOverMQTTAndRestart: a terminal's fault over MQTT raises a flag
// the API shows with its evidence; a reboot command reaches the terminal,
// whose ack shows on the terminal; after a restart the flag is back.
func TestHealthOverMQTTAndRestart(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	provision(t, filepath.Join(dir, "registry.db"), cfg.Registry, 2)
	srv := startServer(t, cfg)
	token, err := srv.Users().CreateToken(context.Background(), "test", "acme")
	if err != nil {
		t.Fatal(err)
	}
	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	got := make(chan posfleet.Command, 1)
	sub := c.Subscribe("fleet/v1/acme/T-0001/cmd", 1, func(_ mqtt.Client, m mqtt.Message) {
		var cmd posfleet.Command
		json.Unmarshal(m.Payload(), &cmd)
		got <- cmd
	})
	if !sub.WaitTimeout(5*time.Second) || sub.Error() != nil {
		t.Fatal("subscribe", sub.Error())
	}
	now := time.Now().UTC()
	publish(t, c, "fleet/v1/acme/T-0001/fw", 1, true, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","firmware":"2.4.1"}`, now.Format(time.RFC3339)))
	publish(t, c, "fleet/v1/acme/T-0001/fault", 1, false, fmt.Sprintf(`{"seq":2,"ts":%q,"component":"secure_element","code":"TAMPER","severity":"critical","state":"raised"}`, now.Format(time.RFC3339)))

	code, b := apiCall(t, srv, token, "GET", "/api/v1/terminals?flag=tamper", "")
	var page web.TerminalPage
	if code != 200 || json.Unmarshal(b, &page) != nil || page.Total != 1 || page.Terminals[0].Terminal != "T-0001" || page.Terminals[0].Site.Merchant != "Merchant 1" {
		t.Fatalf("tamper list: %d %s", code, b)
	}
	code, b = apiCall(t, srv, token, "GET", "/api/v1/worklist?format=csv", "")
	if code != 200 || !strings.Contains(string(b), "T-0001") || !strings.Contains(string(b), "tamper") {
		t.Errorf("work list CSV: %d %s", code, b)
	}

	code, b = apiCall(t, srv, token, "POST", "/api/v1/terminals/acme/T-0001/commands", `{"type":"reboot"}`)
	if code != http.StatusAccepted {
		t.Fatalf("reboot: %d %s", code, b)
	}
	var cmd posfleet.Command
	select {
	case cmd = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the command never reached the terminal")
	}
	if cmd.Type != posfleet.CmdReboot || cmd.ID == "" {
		t.Fatalf("command = %+v", cmd)
	}
	publish(t, c, "fleet/v1/acme/T-0001/ack", 1, false, fmt.Sprintf(`{"seq":3,"ts":%q,"cmd_id":%q,"status":"done"}`, time.Now().UTC().Format(time.RFC3339), cmd.ID))
	waitFor(t, "the ack on the terminal", func() bool {
		_, b := apiCall(t, srv, token, "GET", "/api/v1/terminals/acme/T-0001", "")
		return strings.Contains(string(b), `"status": "done"`)
	})
	// Another tenant's terminal does not exist for this token.
	if code, _ := apiCall(t, srv, token, "GET", "/api/v1/terminals/other/T-0001", ""); code != 404 {
		t.Errorf("other tenant's terminal: %d", code)
	}

	// Restart on the same data directory: the flag comes back from the snapshot.
	c.Disconnect(100)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv = startServer(t, cfg)
	code, b = apiCall(t, srv, token, "GET", "/api/v1/terminals?flag=tamper", "")
	if code != 200 || json.Unmarshal(b, &page) != nil || page.Total != 1 {
		t.Fatalf("after restart: %d %s", code, b)
	}
	t.Logf("restarted and serving the restored flags in %v", time.Since(start).Round(time.Millisecond))
}

// TestNeverConnectedFromRegistry: `posfleet serve` counts the provisioned
// terminals that never connected, from the registry at start and from
// imports through the API, until their first message, and again after a
// restart.
func TestNeverConnectedFromRegistry(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	provision(t, filepath.Join(dir, "registry.db"), cfg.Registry, 2) // acme:T-0001, acme:T-0002, other:T-0001
	srv := startServer(t, cfg)
	token, err := srv.Users().CreateToken(context.Background(), "test", "acme")
	if err != nil {
		t.Fatal(err)
	}
	fleet := func(srv *server.Server) (total, online, never int) {
		t.Helper()
		code, b := apiCall(t, srv, token, "GET", "/api/v1/fleet", "")
		var fs struct {
			Total, Online  int
			NeverConnected int `json:"never_connected"`
		}
		if code != 200 || json.Unmarshal(b, &fs) != nil {
			t.Fatalf("fleet: %d %s", code, b)
		}
		return fs.Total, fs.Online, fs.NeverConnected
	}
	if total, online, never := fleet(srv); total != 2 || online != 0 || never != 2 {
		t.Errorf("at start: total %d online %d never connected %d, want 2 0 2", total, online, never)
	}

	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, fmt.Sprintf(`{"seq":1,"ts":%q}`, time.Now().UTC().Format(time.RFC3339)))
	waitFor(t, "T-0001 online", func() bool { _, online, _ := fleet(srv); return online == 1 })
	if total, _, never := fleet(srv); total != 2 || never != 1 {
		t.Errorf("after T-0001's heartbeat: total %d never connected %d, want 2 1", total, never)
	}

	req, _ := http.NewRequest("POST", "http://"+srv.HTTPAddr().String()+"/api/v1/terminals/import",
		strings.NewReader("tenant,terminal,model,merchant,site,region,lat,lon\nacme,T-0009,A920,Merchant 9,Shop 9,north,31.2,121.4\n"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("import: %s", resp.Status)
	}
	if total, _, never := fleet(srv); total != 3 || never != 2 {
		t.Errorf("after importing T-0009: total %d never connected %d, want 3 2", total, never)
	}
	code, b := apiCall(t, srv, token, "GET", "/api/v1/terminals?state=never_connected", "")
	var page web.TerminalPage
	if code != 200 || json.Unmarshal(b, &page) != nil || page.Total != 2 || page.Terminals[0].Terminal != "T-0002" ||
		page.Terminals[1].Terminal != "T-0009" || page.Terminals[1].Site.Merchant != "Merchant 9" {
		t.Errorf("never-connected list: %d %s", code, b)
	}

	c.Disconnect(100)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, cfg)
	if total, _, never := fleet(srv); total != 3 || never != 2 {
		t.Errorf("after a restart: total %d never connected %d, want 3 2", total, never)
	}
}
