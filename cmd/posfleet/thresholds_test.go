package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
)

// TestThresholdsChangeVerdictAtRunTime: on a running server, a PUT of the
// tenant's thresholds raises a flag its terminal's evidence did not raise
// under the defaults, within seconds, with the threshold named in the
// evidence; the administrator's model override clears it again; a version
// another replica writes to the database applies within seconds; the
// history and the audit log have the changes.
func TestThresholdsChangeVerdictAtRunTime(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	provision(t, filepath.Join(dir, "registry.db"), cfg.Registry, 1)
	srv := startServer(t, cfg)
	ctx := context.Background()
	// A tenant administrator's token.
	if err := srv.Users().NewUser(ctx, auth.User{Name: "acme-admin", Tenant: "acme", Role: posfleet.RoleTenantAdmin}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	acme, _, err := srv.Users().NewToken(ctx, auth.Token{Name: "acme-script", Tenant: "acme", CreatedBy: "acme-admin"})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := srv.Users().CreateToken(ctx, "admin", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	defer c.Disconnect(100)
	now := time.Now().UTC()
	publish(t, c, "fleet/v1/acme/T-0001/fw", 1, true, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","firmware":"2.4.1"}`, now.Format(time.RFC3339)))
	for i := range 3 {
		publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, fmt.Sprintf(`{"seq":%d,"ts":%q,"signal_dbm":-100,"host_rtt_ms":300}`, i+2, now.Format(time.RFC3339)))
	}
	terminal := func() string {
		_, b := apiCall(t, srv, acme, "GET", "/api/v1/terminals/acme/T-0001", "")
		return string(b)
	}
	waitFor(t, "the heartbeats", func() bool { return strings.Contains(terminal(), `"signal_dbm": -100`) })
	if strings.Contains(terminal(), "weak_network") {
		t.Fatal("weak_network at -100 dBm under the default -105")
	}

	start := time.Now()
	if code, b := apiCall(t, srv, acme, "PUT", "/api/v1/thresholds", `{"tenants":{"acme":{"weak_network.signal_dbm":-95}}}`); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, b)
	}
	waitFor(t, "weak_network under the tenant's -95 dBm", func() bool { return strings.Contains(terminal(), `"weak_network"`) })
	t.Logf("flag raised %v after the PUT", time.Since(start).Round(time.Millisecond))
	if b := terminal(); !strings.Contains(b, `"name": "weak_network.signal_dbm"`) || !strings.Contains(b, `"source": "tenant"`) {
		t.Errorf("evidence does not name the tenant's threshold: %s", b)
	}

	// The model's override wins over the tenant's.
	if code, b := apiCall(t, srv, admin, "PUT", "/api/v1/thresholds",
		`{"tenants":{"acme":{"weak_network.signal_dbm":-95,"models":{"A920":{"weak_network.signal_dbm":-110}}}}}`); code != http.StatusOK {
		t.Fatalf("admin PUT: %d %s", code, b)
	}
	waitFor(t, "weak_network cleared by the A920 override", func() bool { return !strings.Contains(terminal(), `"weak_network"`) })

	// Another replica's change, written to the database beside this
	// server, applies here within seconds (the engine polls for versions).
	db, err := store.Open(ctx, store.URLFor(cfg.DataDir, cfg.DatabaseURL))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start = time.Now()
	if _, err := journal.AddThresholds(ctx, db, []byte(`{"tenants":{"acme":{"weak_network.signal_dbm":-95}}}`), "replica-b", time.Now(), 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "another replica's thresholds applied", func() bool { return strings.Contains(terminal(), `"weak_network"`) })
	t.Logf("another replica's change applied after %v", time.Since(start).Round(time.Millisecond))
	code, b := apiCall(t, srv, acme, "GET", "/api/v1/thresholds/history", "")
	if code != http.StatusOK || !strings.Contains(string(b), `"created_by": "acme-script"`) || !strings.Contains(string(b), `"created_by": "admin"`) {
		t.Errorf("history: %d %s", code, b)
	}
	code, b = apiCall(t, srv, admin, "GET", "/api/v1/audit?action=thresholds_change", "")
	if code != http.StatusOK || strings.Count(string(b), `"action": "thresholds_change"`) != 2 {
		t.Errorf("audit: %d %s", code, b)
	}
}
