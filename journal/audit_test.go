package journal_test

import (
	"context"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestAuditLog: entries are appended and read back newest first, with
// every field; each filter selects, total counts past the page; pruning
// removes entries older than the audit retention only.
func TestAuditLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		entries := []posfleet.AuditEntry{
			{At: t0, Actor: "ops", ActorKind: posfleet.ActorUser, Action: "sign_in", Remote: "10.0.0.1"},
			{At: t0.Add(time.Minute), Actor: "ops", ActorKind: posfleet.ActorUser, Tenant: "acme", Action: "command", Target: "acme/T-1", Detail: `{"type":"reboot"}`, Remote: "10.0.0.1"},
			{At: t0.Add(2 * time.Minute), Actor: "script", ActorKind: posfleet.ActorToken, Tenant: "zeta", Action: "command", Target: "zeta/T-1", Outcome: "forbidden"},
			{At: t0.Add(3 * time.Minute), Actor: "cli:root", ActorKind: posfleet.ActorSystem, Action: "user_create", Target: "王芳", Detail: `{"tenant":"acme"}`},
		}
		for _, e := range entries {
			if err := journal.AppendAudit(ctx, db, e); err != nil {
				t.Fatal(err)
			}
		}
		all, total, err := journal.AuditLog(ctx, db, posfleet.AuditFilter{})
		if err != nil || total != 4 || len(all) != 4 {
			t.Fatalf("AuditLog = %d entries, total %d, %v", len(all), total, err)
		}
		if all[0].Target != "王芳" || all[0].ActorKind != posfleet.ActorSystem || !all[0].At.Equal(entries[3].At) || all[0].ID == "" {
			t.Errorf("newest = %+v", all[0])
		}
		if all[3].Outcome != posfleet.AuditOK || all[3].Remote != "10.0.0.1" {
			t.Errorf("an entry without an outcome is ok: %+v", all[3])
		}
		for _, c := range []struct {
			name  string
			f     posfleet.AuditFilter
			total int
			first string // the page's first entry's action/target
		}{
			{"tenant", posfleet.AuditFilter{Tenant: "acme"}, 1, "command acme/T-1"},
			{"actor", posfleet.AuditFilter{Actor: "ops"}, 2, "command acme/T-1"},
			{"action", posfleet.AuditFilter{Action: "command"}, 2, "command zeta/T-1"},
			{"from", posfleet.AuditFilter{From: t0.Add(2 * time.Minute)}, 2, "user_create 王芳"},
			{"to", posfleet.AuditFilter{To: t0.Add(2 * time.Minute)}, 2, "command acme/T-1"},
			{"page", posfleet.AuditFilter{Limit: 1, Offset: 2}, 4, "command acme/T-1"},
			{"none", posfleet.AuditFilter{Actor: "nobody"}, 0, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, total, err := journal.AuditLog(ctx, db, c.f)
				if err != nil || total != c.total {
					t.Fatalf("total = %d, %v; want %d", total, err, c.total)
				}
				first := ""
				if len(got) > 0 {
					first = got[0].Action + " " + got[0].Target
				}
				if first != c.first {
					t.Errorf("first = %q, want %q", first, c.first)
				}
			})
		}
		// A year and a day after the second entry: the first two go.
		r := journal.DefaultRetention()
		n, err := journal.Prune(ctx, db, r, t0.Add(time.Minute+journal.DefaultAuditRetention+time.Second))
		if err != nil || n != 2 {
			t.Fatalf("Prune = %d, %v; want 2 audit entries", n, err)
		}
		if _, total, _ := journal.AuditLog(ctx, db, posfleet.AuditFilter{}); total != 2 {
			t.Errorf("after pruning, total = %d", total)
		}
		r.AuditMaxAge = 24 * time.Hour
		if n, err := journal.Prune(ctx, db, r, t0.Add(26*time.Hour)); err != nil || n != 2 {
			t.Errorf("Prune with a day's retention = %d, %v", n, err)
		}
	})
}
