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
	"github.com/posfleet/posfleet/collector/influxdb/influxtest"
	"github.com/posfleet/posfleet/web"
)

func apiCall(t *testing.T, srv *Server, token, method, path, body string) (int, []byte) {
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
	token, err := srv.users.CreateToken(context.Background(), "test", "acme")
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
