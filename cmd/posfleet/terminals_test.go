package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestTerminalsImportWhileServing: `posfleet terminals import` beside a
// running `posfleet serve` on the same data directory (once refused: the
// registry file was the server's alone) provisions a terminal that the
// server knows within its sync interval and that connects to its broker
// with the secret the command wrote; `terminals list` and `mosquitto acl`
// work meanwhile too.
func TestTerminalsImportWhileServing(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	srv := startServer(t, cfg)

	fleet := filepath.Join(t.TempDir(), "fleet.csv")
	os.WriteFile(fleet, []byte("tenant,terminal,model,merchant,site,region,lat,lon\nacme,T-0042,A920,Late Shop,Pier 4,north,31.2,121.4\n"), 0o600)
	secretsFile := filepath.Join(t.TempDir(), "secrets.csv")
	var out, errb bytes.Buffer
	if code := run([]string{"--data-dir", dir, "terminals", "import", fleet, "--secrets-out", secretsFile}, &out, &errb); code != 0 {
		t.Fatalf("terminals import beside the server: exit %d: %s", code, errb.String())
	}
	imported := time.Now()
	f, err := os.Open(secretsFile)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 2 {
		t.Fatalf("secrets file: %v %v", rows, err)
	}
	secret := rows[1][2]

	// The server's sync brings it (Count reads memory only, no lookup).
	for {
		n, _ := srv.Registry().Count(context.Background())
		if n == 1 {
			break
		}
		if time.Since(imported) > cfg.Registry.SyncInterval+3*time.Second {
			t.Fatalf("the server does not know the terminal %v after the import", time.Since(imported))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("known to the server %v after the import", time.Since(imported).Round(time.Millisecond))
	c, err := connect(srv.MQTTAddr().String(), "acme:T-0042", "acme:T-0042", secret)
	if err != nil {
		t.Fatalf("connect with the secret of the import: %v", err)
	}
	c.Disconnect(100)
	if tm, err := srv.Registry().Get(context.Background(), posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0042"}); err != nil || tm.Merchant != "Late Shop" {
		t.Errorf("server's Get = %+v, %v", tm, err)
	}

	out.Reset()
	errb.Reset()
	if code := run([]string{"--data-dir", dir, "terminals", "list"}, &out, &errb); code != 0 || !bytes.Contains(out.Bytes(), []byte("T-0042")) {
		t.Errorf("terminals list beside the server: exit %d, %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"--data-dir", dir, "mosquitto", "acl"}, &out, &errb); code != 0 || !bytes.Contains(out.Bytes(), []byte("user acme:T-0042")) {
		t.Errorf("mosquitto acl beside the server: exit %d, %s %s", code, out.String(), errb.String())
	}
}
