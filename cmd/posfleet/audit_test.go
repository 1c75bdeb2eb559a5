package main

import (
	"context"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
)

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
