package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/servertest"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/pgtest"
	"github.com/posfleet/posfleet/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const webPolicy = `models:
  A920:
    target: 2.5.1
    url: https://fw.example.com/a920-2.5.1.bin
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
`

func startServer(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// published is what a publisher writes of the engine's state.
func published(eng *health.Engine) healthview.Batch {
	b := healthview.Batch{Summaries: map[string]health.FleetSummary{"": eng.FleetSummary(""), "acme": eng.FleetSummary("acme")},
		Incidents: eng.Incidents("")}
	work := map[posfleet.TerminalRef]health.WorkItem{}
	for _, it := range eng.WorkList("") {
		work[it.Ref] = it
	}
	for _, r := range eng.Rows("", "") {
		if r.NeverConnected {
			st, _ := eng.Site(r.Ref)
			b.Terminals = append(b.Terminals, healthview.TerminalRow{NeverConnected: true, Merchant: st.Merchant, Region: st.Region,
				Health: health.TerminalHealth{Ref: r.Ref, Tenant: r.Ref.Tenant, Terminal: r.Ref.Terminal, Site: st}})
			continue
		}
		h, _ := eng.Terminal(r.Ref)
		row := healthview.TerminalRow{Health: h, Merchant: h.Site.Merchant, Region: h.Site.Region}
		if it, ok := work[r.Ref]; ok {
			row.Work = &it
		}
		b.Terminals = append(b.Terminals, row)
	}
	return b
}

// TestWebReplicaReadsTheHealthView: a web-only process on the database of
// a full one answers the fleet, a flag's terminals, the work list, a
// terminal and the incidents with the same JSON, once the full one's
// health view is published; before this, it had no health at all (its
// API answered only /api/v1/me).
func TestWebReplicaReadsTheHealthView(t *testing.T) {
	influx := influxtest.Start(t)
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			dbURL := storetest.URL(t, d)
			fullCfg := servertest.Config(t.TempDir(), influx)
			fullCfg.DatabaseURL = dbURL
			full := startServer(t, fullCfg)
			webCfg := servertest.Config(t.TempDir(), influx)
			webCfg.DatabaseURL = dbURL
			webCfg.Roles = server.Roles{Web: true}
			replica := startServer(t, webCfg)
			if replica.Health() != nil {
				t.Fatal("a web-only process runs a health engine")
			}

			eng := full.Health()
			if err := eng.SetPolicy([]byte(webPolicy)); err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			for i := 1; i <= 6; i++ {
				ref := posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%d", i)}
				fw := "2.5.1"
				if i%3 == 0 {
					fw = "2.4.1"
				}
				eng.Observe(&posfleet.Message{Terminal: ref, Channel: posfleet.ChannelFirmware, Received: now,
					Inventory: &posfleet.Inventory{Header: posfleet.Header{Seq: 1, TS: now}, Model: "A920", Serial: "S", Firmware: fw, App: "1.2.0"}})
				if i%2 == 1 {
					eng.Observe(&posfleet.Message{Terminal: ref, Channel: posfleet.ChannelFault, Received: now,
						Fault: &posfleet.Fault{Header: posfleet.Header{Seq: 2, TS: now}, Component: posfleet.ComponentPrinter, Code: "PAPER_JAM",
							Severity: posfleet.SeverityWarning, State: posfleet.FaultRaised}})
				}
			}
			eng.Provision(posfleet.TerminalRef{Tenant: "acme", Terminal: "T-9"})
			ctx := context.Background()
			if err := healthview.Publish(ctx, full.DB(), nil, published(eng), now); err != nil {
				t.Fatal(err)
			}
			if err := healthview.NewReader(replica.DB(), nil).SetPolicy([]byte(webPolicy)); err != nil {
				t.Fatal(err)
			}

			get := func(srv *server.Server, token, method, path string) (int, string) {
				t.Helper()
				req, _ := http.NewRequest(method, "http://"+srv.HTTPAddr().String()+path, strings.NewReader(`{"note":"jam cleared"}`))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			token := func(srv *server.Server) string {
				tok, err := srv.Users().CreateToken(ctx, "ops", auth.AllTenants)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			fullTok, webTok := token(full), token(replica)
			for _, path := range []string{"/api/v1/fleet", "/api/v1/terminals?flag=hardware_fault", "/api/v1/terminals?flag=firmware_outdated",
				"/api/v1/terminals", "/api/v1/worklist", "/api/v1/terminals/acme/T-1", "/api/v1/terminals/acme/T-3", "/api/v1/incidents"} {
				fc, fb := get(full, fullTok, "GET", path)
				wc, wb := get(replica, webTok, "GET", path)
				// The message counters are the collector's, in the full
				// process only.
				fb, wb = withoutKey(t, fb, "messages"), withoutKey(t, wb, "messages")
				if fc != 200 || wc != fc || wb != fb {
					t.Errorf("GET %s:\nfull    %d %.1500s\nreplica %d %.1500s", path, fc, fb, wc, wb)
				}
			}
			if _, b := get(replica, webTok, "GET", "/api/v1/terminals?flag=hardware_fault"); !strings.Contains(withoutKey(t, b, ""), `"total":3`) {
				t.Errorf("the replica shows no flags: %s", b)
			}
			// A visit recorded on the replica waits for the health engine.
			code, b := get(replica, webTok, "POST", "/api/v1/terminals/acme/T-1/serviced")
			if code != 200 || withoutKey(t, b, "") != `{"cleared":["hardware_fault"]}` {
				t.Errorf("visit on the replica: %d %s", code, b)
			}
			var pending int
			if err := full.DB().QueryRow(`SELECT COUNT(*) FROM service_visits WHERE tenant = 'acme' AND terminal = 'T-1' AND applied_ms = 0`).Scan(&pending); err != nil || pending != 1 {
				t.Errorf("pending visits: %d, %v", pending, err)
			}
		})
	}
}

// withoutKey removes key from a JSON object (a body that is not one is
// returned as it is).
func withoutKey(t *testing.T, body, key string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return body
	}
	delete(m, key)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPolicyOnWebReplicaStoredOnce: a policy saved through a web replica
// is one new version of the history (the replica's reader checks it, the
// journal stores it); the merged code stored it twice.
func TestPolicyOnWebReplicaStoredOnce(t *testing.T) {
	influx := influxtest.Start(t)
	webCfg := servertest.Config(t.TempDir(), influx)
	webCfg.DatabaseURL = storetest.URL(t, store.SQLite)
	webCfg.Roles = server.Roles{Web: true}
	replica := startServer(t, webCfg)
	tok, err := replica.Users().CreateToken(t.Context(), "root", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", "http://"+replica.HTTPAddr().String()+"/api/v1/policy?format=yaml", strings.NewReader(webPolicy))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /api/v1/policy on the replica: %d %s", resp.StatusCode, b)
	}
	var n int
	if err := replica.DB().QueryRow(`SELECT COUNT(*) FROM policy_versions`).Scan(&n); err != nil || n != 1 {
		t.Errorf("policy versions after one PUT: %d, %v", n, err)
	}
}
