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
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	firmwareclient "github.com/posfleet/posfleet/firmware-client"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/servertest"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// campaignRig is the real server with n real terminal clients on A920
// 2.4.1 and a package server for every version.
type campaignRig struct {
	t       *testing.T
	srv     *servertest.Server
	files   *httptest.Server
	token   string
	clients []*firmwareclient.Client
	stop    func()
}

func newCampaignRig(t *testing.T, n int) *campaignRig {
	t.Helper()
	r := &campaignRig{t: t}
	r.srv = servertest.Start(t, n, servertest.WithConfig(func(c *server.Config) {
		c.AllowHTTPFirmware = true
		c.Campaigns.MinSoak = 0
		c.CampaignInterval = 200 * time.Millisecond
	}))
	r.files = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { w.Write(pkgOf(req.URL.Path)) }))
	t.Cleanup(r.files.Close)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		ref := servertest.Ref(i)
		c, err := firmwareclient.New(firmwareclient.Config{Broker: r.srv.URL(), Tenant: ref.Tenant, Terminal: ref.Terminal, Secret: servertest.Secret(i),
			StoreDir:          t.TempDir(),
			Inventory:         posfleet.Inventory{Model: "A920", Serial: "S" + ref.Terminal, Firmware: "2.4.1", App: "1.0.0"},
			HeartbeatInterval: time.Second,
			Flash:             func(context.Context, firmwareclient.Update) error { return nil },
			ReconnectMax:      time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		r.clients = append(r.clients, c)
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	r.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(r.stop)
	servertest.Eventually(t, 20*time.Second, "every terminal online on 2.4.1", func() bool {
		for i := 1; i <= n; i++ {
			st, ok := r.srv.Health().FirmwareState(servertest.Ref(i))
			if !ok || !st.Online || st.Firmware != "2.4.1" {
				return false
			}
		}
		return true
	})
	tok, err := r.srv.Server().Users().CreateToken(t.Context(), "ops", "*")
	if err != nil {
		t.Fatal(err)
	}
	r.token = tok
	return r
}

// pkgOf is the package of the file at path, e.g. /2.5.2.bin.
func pkgOf(path string) []byte { return []byte("firmware package " + path) }

func (r *campaignRig) pkg(version string) string {
	sum := sha256.Sum256(pkgOf("/" + version + ".bin"))
	return fmt.Sprintf(`{"url":%q,"sha256":%q}`, r.files.URL+"/"+version+".bin", hex.EncodeToString(sum[:]))
}

func (r *campaignRig) do(method, path, body string) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(method, "http://"+r.srv.Server().HTTPAddr().String()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *campaignRig) create(spec string) string {
	r.t.Helper()
	code, body := r.do("POST", "/api/v1/campaigns", spec)
	if code != http.StatusCreated {
		r.t.Fatalf("create: %d %s", code, body)
	}
	var created struct{ Campaign posfleet.Campaign }
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		r.t.Fatal(err)
	}
	return created.Campaign.ID
}

func (r *campaignRig) get(id string) posfleet.Campaign {
	r.t.Helper()
	code, body := r.do("GET", "/api/v1/campaigns/"+id, "")
	var out struct{ Campaign posfleet.Campaign }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil {
		r.t.Fatalf("get: %d %s", code, body)
	}
	return out.Campaign
}

// TestCampaignEndToEnd: through the real server and real terminal
// clients, a campaign created on the API sends its canary, then the rest,
// each MaxInFlight at a time, follows the terminals' update reports,
// judges its gates and finishes; the commands are in each terminal's
// command log as the campaign's; the campaign, its terminals and its
// timeline survive a restart.
func TestCampaignEndToEnd(t *testing.T) {
	const n = 4
	r := newCampaignRig(t, n)
	spec := fmt.Sprintf(`{"tenant":"acme","name":"A920 to 2.5.2","model":"A920","target":"2.5.2","package":%s,
		"waves":[{"count":1,"soak":"1s"},{"percent":100,"soak":"1s"}],
		"max_in_flight":2,"window":{"mode":"any"}}`, r.pkg("2.5.2"))
	code, body := r.do("POST", "/api/v1/campaigns/preview", spec)
	if code != http.StatusOK || !strings.Contains(body, `"selected": 4`) {
		t.Fatalf("preview: %d %s", code, body)
	}
	id := r.create(spec)
	servertest.Eventually(t, 60*time.Second, "the campaign finished", func() bool { return r.get(id).State == posfleet.CampaignFinished })
	c := r.get(id)
	if len(c.Gates) != 2 || !c.Gates[0].Passed || c.Waves[0].Counts[posfleet.CTInstalled] != 1 || c.Waves[1].Counts[posfleet.CTInstalled] != 3 {
		t.Errorf("finished campaign: gates %+v waves %+v", c.Gates, c.Waves)
	}
	for i := 1; i <= n; i++ {
		ref := servertest.Ref(i)
		st, _ := r.srv.Health().FirmwareState(ref)
		if st.Firmware != "2.5.2" {
			t.Errorf("%s runs %s", ref, st.Firmware)
		}
	}
	check := func(when string) {
		t.Helper()
		code, body := r.do("GET", "/api/v1/terminals/acme/"+servertest.Ref(1).Terminal, "")
		if code != http.StatusOK || !strings.Contains(body, `"sent_by": "campaign `+id+`"`) {
			t.Errorf("%s: the terminal's command log has no command of the campaign: %d %.2000s", when, code, body)
		}
		code, body = r.do("GET", "/api/v1/campaigns/"+id+"/events", "")
		if code != http.StatusOK || !strings.Contains(body, `"finished"`) || !strings.Contains(body, `"gate_passed"`) {
			t.Errorf("%s: events %d %s", when, code, body)
		}
		code, body = r.do("GET", "/api/v1/campaigns/"+id+"/terminals?state=installed", "")
		if code != http.StatusOK || strings.Count(body, `"terminal"`) != n {
			t.Errorf("%s: installed terminals %d %s", when, code, body)
		}
	}
	check("before the restart")
	r.srv.StopBroker()
	r.srv.StartBroker()
	check("after a restart")
	if got := r.get(id); got.State != posfleet.CampaignFinished || len(got.Gates) != 2 {
		t.Errorf("after a restart: %s, %d gates", got.State, len(got.Gates))
	}
	code, body = r.do("GET", "/api/v1/audit?action=campaign_create", "")
	if code != http.StatusOK || !strings.Contains(body, "campaign_create") {
		t.Errorf("audit: %d %.500s", code, body)
	}
}

// TestCampaignGatePausesAndRollsBack: terminals on a version that adds a
// fee to what they charge fail the canary's gate: the campaign pauses
// with the mismatches in words, having updated only the canary, raises
// its alarm; a rollback returns the canary to 2.4.1 and resolves it.
func TestCampaignGatePausesAndRollsBack(t *testing.T) {
	// A canary of 3 and a baseline of 21: the gate judges no fewer
	// (campaign.DefaultGateRules).
	const n = 24
	r := newCampaignRig(t, n)
	// Every terminal sells continually; on 2.5.0 it charges 0.6% more.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, c := range r.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
				entered, charged := int64(10000), int64(10000)
				if c.Inventory().Firmware == "2.5.0" {
					charged = 10060
				}
				c.ReportTransaction(ctx, posfleet.Transaction{ID: fmt.Sprintf("tx-%d", k), Type: posfleet.TxnSale, Entry: posfleet.EntryChip,
					Currency: "CNY", AmountEntered: &entered, AmountCharged: &charged, Result: posfleet.ResultApproved, RC: "00",
					Receipt: posfleet.ReceiptPrinted})
			}
		}()
	}
	spec := fmt.Sprintf(`{"tenant":"acme","name":"A920 to 2.5.0","model":"A920","target":"2.5.0","package":%s,
		"waves":[{"count":3,"soak":"6s"},{"percent":100,"soak":"1s"}],
		"max_in_flight":3,"window":{"mode":"any"},
		"rollback":[{"version":"2.4.1","package":%s}]}`, r.pkg("2.5.0"), r.pkg("2.4.1"))
	id := r.create(spec)
	servertest.Eventually(t, 60*time.Second, "the campaign paused", func() bool { return r.get(id).State != posfleet.CampaignRunning })
	c := r.get(id)
	if c.State != posfleet.CampaignPaused || !strings.Contains(c.Reason, "amount_mismatch") || len(c.Gates) != 1 || c.Gates[0].Passed {
		t.Fatalf("paused? %s %q gates %+v", c.State, c.Reason, c.Gates)
	}
	if c.Waves[0].Counts[posfleet.CTInstalled] != 3 || c.Waves[1].Counts[posfleet.CTPending] != n-3 {
		t.Errorf("more than the canary updated: %+v", c.Waves)
	}
	code, body := r.do("GET", "/api/v1/alarms?kind=campaign_paused", "")
	if code != http.StatusOK || !strings.Contains(body, `"incident": "`+id+`"`) || !strings.Contains(body, "amount_mismatch") {
		t.Fatalf("campaign alarm: %d %.1500s", code, body)
	}
	code, body = r.do("POST", "/api/v1/campaigns/"+id+"/rollback", `{"note":"the fee bug"}`)
	if code != http.StatusOK {
		t.Fatalf("rollback: %d %s", code, body)
	}
	servertest.Eventually(t, 60*time.Second, "the campaign rolled back", func() bool { return r.get(id).State == posfleet.CampaignRolledBack })
	if got := r.get(id); got.Waves[0].Counts[posfleet.CTRolledBack] != 3 {
		t.Errorf("rolled back: %+v", got.Waves[0])
	}
	for i := 1; i <= n; i++ {
		if st, _ := r.srv.Health().FirmwareState(servertest.Ref(i)); st.Firmware != "2.4.1" {
			t.Errorf("%s runs %s after the rollback", servertest.Ref(i), st.Firmware)
		}
	}
	code, body = r.do("GET", "/api/v1/alarms?kind=campaign_paused&state=resolved", "")
	if code != http.StatusOK || !strings.Contains(body, `"resolved_by": "ops"`) {
		t.Errorf("the campaign's alarm is not resolved: %d %.1500s", code, body)
	}
}

// TestCampaignFromWebReplica: a campaign created on a web replica, which
// has no health engine (it chooses the terminals from the published health
// view), is run by the process holding the health lease; the replica
// shows its progress.
func TestCampaignFromWebReplica(t *testing.T) {
	dbURL := storetest.URL(t, store.SQLite)
	r := &campaignRig{t: t}
	r.srv = servertest.Start(t, 2, servertest.WithConfig(func(c *server.Config) {
		c.DatabaseURL = dbURL
		c.AllowHTTPFirmware = true
		c.Campaigns.MinSoak = 0
		c.CampaignInterval = 200 * time.Millisecond
	}))
	r.files = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { w.Write(pkgOf(req.URL.Path)) }))
	defer r.files.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := 1; i <= 2; i++ {
		ref := servertest.Ref(i)
		c, err := firmwareclient.New(firmwareclient.Config{Broker: r.srv.URL(), Tenant: ref.Tenant, Terminal: ref.Terminal, Secret: servertest.Secret(i),
			StoreDir: t.TempDir(), Inventory: posfleet.Inventory{Model: "A920", Serial: "S" + ref.Terminal, Firmware: "2.4.1"},
			HeartbeatInterval: time.Second, Flash: func(context.Context, firmwareclient.Update) error { return nil }, ReconnectMax: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	webCfg := servertest.Config(t.TempDir(), r.srv.Influx)
	webCfg.DatabaseURL = dbURL
	webCfg.Roles = server.Roles{Web: true}
	webCfg.AllowHTTPFirmware = true
	webCfg.Campaigns.MinSoak = 0
	replica := startServer(t, webCfg)
	tok, err := replica.Users().CreateToken(t.Context(), "ops", "*")
	if err != nil {
		t.Fatal(err)
	}
	r.token = tok
	on := func(addr string) func(method, path, body string) (int, string) {
		return func(method, path, body string) (int, string) {
			req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
	}
	onReplica := on(replica.HTTPAddr().String())
	spec := fmt.Sprintf(`{"tenant":"acme","model":"A920","target":"2.5.2","package":%s,
		"waves":[{"percent":100,"soak":"1s"}],"window":{"mode":"any"}}`, r.pkg("2.5.2"))
	// The replica knows the terminals once the box published them.
	servertest.Eventually(t, 20*time.Second, "both terminals on the replica", func() bool {
		code, body := onReplica("POST", "/api/v1/campaigns/preview", spec)
		return code == http.StatusOK && strings.Contains(body, `"selected": 2`)
	})
	code, body := onReplica("POST", "/api/v1/campaigns", spec)
	if code != http.StatusCreated {
		t.Fatalf("create on the replica: %d %s", code, body)
	}
	var created struct{ Campaign posfleet.Campaign }
	json.Unmarshal([]byte(body), &created)
	servertest.Eventually(t, 60*time.Second, "the campaign finished, seen on the replica", func() bool {
		code, body := onReplica("GET", "/api/v1/campaigns/"+created.Campaign.ID, "")
		return code == http.StatusOK && strings.Contains(body, `"state": "finished"`)
	})
	for i := 1; i <= 2; i++ {
		if st, _ := r.srv.Health().FirmwareState(servertest.Ref(i)); st.Firmware != "2.5.2" {
			t.Errorf("%s runs %s", servertest.Ref(i), st.Firmware)
		}
	}
}
