package journal

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Bounds of AuditLog's page.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 10_000
)

// DefaultAuditRetention is how long audit entries are kept: PCI DSS 10.5.1
// asks for at least a year of audit history.
const DefaultAuditRetention = 365 * 24 * time.Hour

// AppendAudit adds e to the audit log (table audit_log), making its ID
// when it has none. The log is append-only: nothing here updates a row,
// and only Prune deletes them, by age.
func AppendAudit(ctx context.Context, db Execer, e posfleet.AuditEntry) error {
	if e.ID == "" {
		e.ID = newID()
	}
	if e.Outcome == "" {
		e.Outcome = posfleet.AuditOK
	}
	_, err := db.ExecContext(ctx, `INSERT INTO audit_log (id, at_ms, actor, actor_kind, tenant, action, target, detail, remote, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.ID, store.Millis(e.At), e.Actor, e.ActorKind, e.Tenant, e.Action, e.Target, e.Detail, e.Remote, e.Outcome)
	if err != nil {
		return fmt.Errorf("journal: audit entry %s by %s: %w", e.Action, e.Actor, err)
	}
	return nil
}

// AuditLog returns the entries f selects, newest first, one page of them
// (f.Limit, f.Offset), and how many f selects in all.
func AuditLog(ctx context.Context, db *store.DB, f posfleet.AuditFilter) ([]posfleet.AuditEntry, int, error) {
	var (
		conds []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.Tenant != "" {
		add("tenant = $%d", f.Tenant)
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if !f.From.IsZero() {
		add("at_ms >= $%d", store.Millis(f.From))
	}
	if !f.To.IsZero() {
		add("at_ms < $%d", store.Millis(f.To))
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var total int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("journal: audit log: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	args = append(args, limit, max(f.Offset, 0))
	q := fmt.Sprintf(`SELECT id, at_ms, actor, actor_kind, tenant, action, target, detail, remote, outcome FROM audit_log%s ORDER BY at_ms DESC, id DESC LIMIT $%d OFFSET $%d`, where, len(args)-1, len(args))
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("journal: audit log: %w", err)
	}
	defer rows.Close()
	out := []posfleet.AuditEntry{}
	for rows.Next() {
		var (
			e  posfleet.AuditEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.ActorKind, &e.Tenant, &e.Action, &e.Target, &e.Detail, &e.Remote, &e.Outcome); err != nil {
			return nil, 0, fmt.Errorf("journal: audit log: %w", err)
		}
		e.At = store.Time(at)
		out = append(out, e)
	}
	return out, total, rows.Err()
}
