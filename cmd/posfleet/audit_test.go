package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
)

// TestServeAudit: `posfleet serve` records API requests in its database's
// audit log, the policy's new version included, and serves them on
// /api/v1/audit to an administrator only.
func TestServeAudit(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	provision(t, filepath.Join(dir, "registry.db"), cfg.Registry, 1)
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
	pol := "models:\n  A920:\n    target: 2.4.2\n    url: https://fw.example.com/a920-2.4.2.bin\n    sha256: " + strings.Repeat("a", 64) + "\n"
	if code, b := apiCall(t, srv, admin, "PUT", "/api/v1/policy", pol); code != 200 {
		t.Fatalf("PUT policy: %d %s", code, b)
	}
	if code, _ := apiCall(t, srv, acme, "PUT", "/api/v1/policy", pol); code != 403 {
		t.Fatalf("tenant PUT policy: %d", code)
	}
	if code, _ := apiCall(t, srv, acme, "GET", "/api/v1/audit", ""); code != 403 {
		t.Errorf("tenant GET /api/v1/audit: %d", code)
	}
	code, b := apiCall(t, srv, admin, "GET", "/api/v1/audit?action=policy_change", "")
	var got struct {
		Entries []posfleet.AuditEntry
		Total   int
	}
	if code != 200 || json.Unmarshal(b, &got) != nil || got.Total != 2 {
		t.Fatalf("GET /api/v1/audit: %d %s", code, b)
	}
	// Both may be of the same millisecond: in either order.
	for _, e := range got.Entries {
		switch {
		case e.Actor == "admin" && e.ActorKind == "token" && e.Outcome == "ok" && e.Detail == `{"version":1}`:
		case e.Actor == "acme-script" && e.Tenant == "acme" && e.Outcome == "forbidden":
		default:
			t.Errorf("policy change: %+v", e)
		}
	}
}

// TestCLIAudit: the CLI's user and token commands leave audit entries by
// "cli:<user>", without the password or the token.
func TestCLIAudit(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("POSFLEET_PASSWORD", "correct horse battery")
	if code, out, errs := cliIn(dir, "users", "add", "alice", "--tenant", "acme"); code != 0 {
		t.Fatalf("users add: %d %s %s", code, out, errs)
	}
	code, tok, errs := cliIn(dir, "tokens", "create", "erp", "--tenant", "acme")
	if code != 0 {
		t.Fatalf("tokens create: %d %s", code, errs)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, store.URLFor(dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es, total, err := journal.AuditLog(ctx, db, posfleet.AuditFilter{})
	if err != nil || total != 2 {
		t.Fatalf("audit log: %d entries, %v", total, err)
	}
	if e := es[1]; e.Action != "user_create" || e.Target != "alice" || e.Tenant != "acme" || e.ActorKind != posfleet.ActorSystem || !strings.HasPrefix(e.Actor, "cli:") {
		t.Errorf("users add: %+v", e)
	}
	if e := es[0]; e.Action != "token_create" || e.Target != "erp" || strings.Contains(e.Detail, strings.TrimSpace(tok)) {
		t.Errorf("tokens create: %+v", e)
	}
	for _, e := range es {
		if strings.Contains(e.Detail, "correct horse") {
			t.Errorf("the password is in %+v", e)
		}
	}
}
