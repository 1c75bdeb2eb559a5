package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
)

// cliActor names who ran a command: "cli:" and the operating system's
// user, as far as it is known.
func cliActor() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}

// auditCLI appends the audit entry of a CLI command that changed
// something (users, tokens, terminal imports), as the web does for its
// requests. The change is made: a failure to record it is a warning, not
// the command's failure.
func auditCLI(ctx context.Context, g *Globals, action, tenant, target string, detail map[string]any) {
	e := posfleet.AuditEntry{At: time.Now(), Actor: cliActor(), ActorKind: posfleet.ActorSystem, Tenant: tenant,
		Action: action, Target: target, Remote: "local", Outcome: posfleet.AuditOK}
	if tenant == posfleet.AllTenants {
		e.Tenant = ""
	}
	if len(detail) > 0 {
		b, _ := json.Marshal(detail)
		e.Detail = string(b)
	}
	err := func() error {
		db, err := store.Open(ctx, store.URLFor(g.DataDir, g.DatabaseURL))
		if err != nil {
			return err
		}
		defer db.Close()
		return journal.AppendAudit(ctx, db, e)
	}()
	if err != nil {
		fmt.Fprintf(g.Stderr, "warning: done, but not recorded in the audit log: %v\n", err)
	}
}
