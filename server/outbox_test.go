package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/servertest"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestCommandFromWebReplica: a command asked for on a web replica, which
// reaches no terminal, is queued in the database and sent by the process
// holding the health lease (here a box with the embedded broker); the
// terminal gets it, its ack shows on the replica. Before, a web replica
// answered every command with 503 (no broker).
func TestCommandFromWebReplica(t *testing.T) {
	dbURL := storetest.URL(t, store.SQLite)
	box := servertest.Start(t, 1, servertest.WithConfig(func(c *server.Config) { c.DatabaseURL = dbURL }))
	webCfg := servertest.Config(t.TempDir(), box.Influx)
	webCfg.DatabaseURL = dbURL
	webCfg.Roles = server.Roles{Web: true}
	replica := startServer(t, webCfg)

	ref := servertest.Ref(1)
	id := ref.Tenant + ":" + ref.Terminal
	got := make(chan posfleet.Command, 4)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(box.URL()).SetClientID(id).SetUsername(id).SetPassword(servertest.Secret(1)).
		SetCleanSession(false).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe(posfleet.Topic(ref, posfleet.ChannelCommand), 1, func(_ mqtt.Client, m mqtt.Message) {
		var cmd posfleet.Command
		if json.Unmarshal(m.Payload(), &cmd) == nil {
			got <- cmd
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := func(ch posfleet.Channel, body string) {
		t.Helper()
		if tok := c.Publish(posfleet.Topic(ref, ch), 1, false, body); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", ch, tok.Error())
		}
	}
	now := time.Now().UTC()
	pub(posfleet.ChannelFirmware, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","serial":"S1","firmware":"2.4.1","app":"1.0.0"}`, now.Format(time.RFC3339)))

	tok, err := replica.Users().CreateToken(t.Context(), "ops", "*")
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+replica.HTTPAddr().String()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	path := "/api/v1/terminals/" + ref.Tenant + "/" + ref.Terminal
	// The replica knows the terminal once the box published it.
	servertest.Eventually(t, 10*time.Second, "the terminal on the replica", func() bool {
		code, _ := do("GET", path, "")
		return code == http.StatusOK
	})
	code, body := do("POST", path+"/commands", `{"type":"reboot"}`)
	if code != http.StatusAccepted {
		t.Fatalf("command on the replica: %d %s", code, body)
	}
	var sent struct {
		Command posfleet.Command `json:"command"`
	}
	if err := json.Unmarshal([]byte(body), &sent); err != nil || sent.Command.ID == "" {
		t.Fatalf("answer %s: %v", body, err)
	}
	select {
	case cmd := <-got:
		if cmd.ID != sent.Command.ID || cmd.Type != posfleet.CmdReboot {
			t.Fatalf("terminal got %+v, want %s", cmd, sent.Command.ID)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the queued command did not reach the terminal within 15 s")
	}
	pub(posfleet.ChannelAck, fmt.Sprintf(`{"seq":2,"ts":%q,"cmd_id":%q,"status":"done","detail":"rebooted"}`, time.Now().UTC().Format(time.RFC3339), sent.Command.ID))
	defer func() {
		if t.Failed() {
			_, b := do("GET", path, "")
			t.Logf("terminal on the replica: %s", b)
		}
	}()
	servertest.Eventually(t, 10*time.Second, "the ack on the replica", func() bool {
		_, b := do("GET", path, "")
		var compact bytes.Buffer
		json.Compact(&compact, []byte(b))
		return strings.Contains(compact.String(), `"sent_by":"ops","status":"done"`)
	})
	// Sent once: marked published, not sent again.
	time.Sleep(2 * time.Second)
	select {
	case cmd := <-got:
		t.Fatalf("the command came twice: %+v", cmd)
	default:
	}
}
