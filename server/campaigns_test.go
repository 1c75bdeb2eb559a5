package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	firmwareclient "github.com/posfleet/posfleet/firmware-client"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/servertest"
)

// TestCampaignEndToEnd: through the real server and real terminal
// clients, a campaign created on the API sends its canary, then the rest,
// each MaxInFlight at a time, follows the terminals' update reports,
// judges its gates and finishes; the commands are in each terminal's
// command log as the campaign's; the campaign, its terminals and its
// timeline survive a restart.
func TestCampaignEndToEnd(t *testing.T) {
	const n = 4
	srv := servertest.Start(t, n, servertest.WithConfig(func(c *server.Config) {
		c.AllowHTTPFirmware = true
		c.Campaigns.MinSoak = 0
		c.CampaignInterval = 200 * time.Millisecond
	}))
	pkg := []byte("firmware 2.5.2 for the A920")
	sum := sha256.Sum256(pkg)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(pkg) }))
	defer files.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{}, n)
	for i := 1; i <= n; i++ {
		ref := servertest.Ref(i)
		c, err := firmwareclient.New(firmwareclient.Config{Broker: srv.URL(), Tenant: ref.Tenant, Terminal: ref.Terminal, Secret: servertest.Secret(i),
			StoreDir:          t.TempDir(),
			Inventory:         posfleet.Inventory{Model: "A920", Serial: "S" + ref.Terminal, Firmware: "2.4.1", App: "1.0.0"},
			HeartbeatInterval: time.Second,
			Flash:             func(context.Context, firmwareclient.Update) error { return nil },
			ReconnectMax:      time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		go func() { c.Run(ctx); done <- struct{}{} }()
	}
	defer func() {
		cancel()
		for range n {
			<-done
		}
	}()
	servertest.Eventually(t, 20*time.Second, "every terminal online on 2.4.1", func() bool {
		for i := 1; i <= n; i++ {
			st, ok := srv.Health().FirmwareState(servertest.Ref(i))
			if !ok || !st.Online || st.Firmware != "2.4.1" {
				return false
			}
		}
		return true
	})

	tok, err := srv.Server().Users().CreateToken(t.Context(), "ops", "*")
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+srv.Server().HTTPAddr().String()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	spec := fmt.Sprintf(`{"tenant":"acme","name":"A920 to 2.5.2","model":"A920","target":"2.5.2",
		"package":{"url":%q,"sha256":%q},
		"waves":[{"count":1,"soak":"1s"},{"percent":100,"soak":"1s"}],
		"max_in_flight":2,"window":{"mode":"any"}}`, files.URL+"/2.5.2.bin", hex.EncodeToString(sum[:]))
	code, body := do("POST", "/api/v1/campaigns/preview", spec)
	if code != http.StatusOK || !strings.Contains(body, `"selected": 4`) {
		t.Fatalf("preview: %d %s", code, body)
	}
	code, body = do("POST", "/api/v1/campaigns", spec)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var created struct{ Campaign posfleet.Campaign }
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	id := created.Campaign.ID
	get := func() posfleet.Campaign {
		t.Helper()
		code, body := do("GET", "/api/v1/campaigns/"+id, "")
		var out struct{ Campaign posfleet.Campaign }
		if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("get: %d %s", code, body)
		}
		return out.Campaign
	}
	servertest.Eventually(t, 60*time.Second, "the campaign finished", func() bool { return get().State == posfleet.CampaignFinished })
	c := get()
	if len(c.Gates) != 2 || !c.Gates[0].Passed || c.Waves[0].Counts[posfleet.CTInstalled] != 1 || c.Waves[1].Counts[posfleet.CTInstalled] != 3 {
		t.Errorf("finished campaign: gates %+v waves %+v", c.Gates, c.Waves)
	}
	for i := 1; i <= n; i++ {
		ref := servertest.Ref(i)
		st, _ := srv.Health().FirmwareState(ref)
		if st.Firmware != "2.5.2" {
			t.Errorf("%s runs %s", ref, st.Firmware)
		}
	}
	check := func(when string) {
		t.Helper()
		code, body := do("GET", "/api/v1/terminals/acme/"+servertest.Ref(1).Terminal, "")
		if code != http.StatusOK || !strings.Contains(body, `"sent_by": "campaign `+id+`"`) {
			t.Errorf("%s: the terminal's command log has no command of the campaign: %d %.2000s", when, code, body)
		}
		code, body = do("GET", "/api/v1/campaigns/"+id+"/events", "")
		if code != http.StatusOK || !strings.Contains(body, `"finished"`) || !strings.Contains(body, `"gate_passed"`) {
			t.Errorf("%s: events %d %s", when, code, body)
		}
		code, body = do("GET", "/api/v1/campaigns/"+id+"/terminals?state=installed", "")
		if code != http.StatusOK || strings.Count(body, `"terminal"`) != n {
			t.Errorf("%s: installed terminals %d %s", when, code, body)
		}
	}
	check("before the restart")
	srv.StopBroker()
	srv.StartBroker()
	check("after a restart")
	if got := get(); got.State != posfleet.CampaignFinished || len(got.Gates) != 2 {
		t.Errorf("after a restart: %s, %d gates", got.State, len(got.Gates))
	}
	code, body = do("GET", "/api/v1/audit?action=campaign_create", "")
	if code != http.StatusOK || !strings.Contains(body, "campaign_create") {
		t.Errorf("audit: %d %.500s", code, body)
	}
}
