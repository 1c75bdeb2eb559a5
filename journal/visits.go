package journal

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Visit is a crew's visit as recorded: "visit done" from the work list or
// POST /api/v1/terminals/{tenant}/{terminal}/serviced.
//
// A process that runs the health engine marks the terminal serviced at
// once and records the visit applied (Applied = now, Cleared = the flags
// it cleared). A web-only replica of a cluster has no engine: it records
// the visit with a zero Applied, and the health engine that holds the
// lease applies it: PendingVisits, then its own MarkServiced, then
// MarkVisitApplied with what it cleared.
type Visit struct {
	ID       string // made by AddVisit when empty
	Terminal posfleet.TerminalRef
	At       time.Time
	By       string
	Note     string
	Cleared  []posfleet.FlagName
	Applied  time.Time // zero until the health engine applied it
}

// AddVisit records a visit and returns its ID.
func AddVisit(ctx context.Context, db *store.DB, v Visit) (string, error) {
	if v.ID == "" {
		v.ID = newID()
	}
	_, err := db.ExecContext(ctx, `INSERT INTO service_visits (id, tenant, terminal, at_ms, by_user, note, cleared, applied_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		v.ID, v.Terminal.Tenant, v.Terminal.Terminal, store.Millis(v.At), v.By, v.Note, joinFlags(v.Cleared), store.Millis(v.Applied))
	if err != nil {
		return "", fmt.Errorf("journal: visit of %s: %w", v.Terminal, err)
	}
	return v.ID, nil
}

// PendingVisits returns at most n visits not applied yet, oldest first.
func PendingVisits(ctx context.Context, db *store.DB, n int) ([]Visit, error) {
	return queryVisits(ctx, db, `WHERE applied_ms = 0 ORDER BY at_ms, id LIMIT $1`, n)
}

// VisitsToApply returns the visits not applied yet and those applied since
// since (a standby health engine applies those too, so that its state is
// the holder's), oldest first.
func VisitsToApply(ctx context.Context, db *store.DB, since time.Time) ([]Visit, error) {
	return queryVisits(ctx, db, `WHERE applied_ms = 0 OR applied_ms >= $1 ORDER BY at_ms, id`, store.Millis(since))
}

// Execer is a *store.DB, or a *sql.Tx for a write checked under a lease.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// MarkVisitApplied records that the health engine applied visit id at at,
// clearing cleared. It reports false when the visit was applied already
// (by another holder of the lease) or does not exist.
func MarkVisitApplied(ctx context.Context, db Execer, id string, cleared []posfleet.FlagName, at time.Time) (bool, error) {
	res, err := db.ExecContext(ctx, `UPDATE service_visits SET applied_ms = $2, cleared = $3 WHERE id = $1 AND applied_ms = 0`, id, max(store.Millis(at), 1), joinFlags(cleared))
	if err != nil {
		return false, fmt.Errorf("journal: visit %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Visits returns ref's newest n visits, newest first.
func Visits(ctx context.Context, db *store.DB, ref posfleet.TerminalRef, n int) ([]Visit, error) {
	return queryVisits(ctx, db, `WHERE tenant = $2 AND terminal = $3 ORDER BY at_ms DESC, id DESC LIMIT $1`, n, ref.Tenant, ref.Terminal)
}

func queryVisits(ctx context.Context, db *store.DB, where string, args ...any) ([]Visit, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, tenant, terminal, at_ms, by_user, note, cleared, applied_ms FROM service_visits `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("journal: visits: %w", err)
	}
	defer rows.Close()
	out := []Visit{}
	for rows.Next() {
		var (
			v           Visit
			cleared     string
			at, applied int64
		)
		if err := rows.Scan(&v.ID, &v.Terminal.Tenant, &v.Terminal.Terminal, &at, &v.By, &v.Note, &cleared, &applied); err != nil {
			return nil, fmt.Errorf("journal: visits: %w", err)
		}
		v.At, v.Applied, v.Cleared = store.Time(at), store.Time(applied), splitFlags(cleared)
		out = append(out, v)
	}
	return out, rows.Err()
}

func joinFlags(fs []posfleet.FlagName) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}

func splitFlags(s string) []posfleet.FlagName {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := make([]posfleet.FlagName, len(parts))
	for i, p := range parts {
		out[i] = posfleet.FlagName(p)
	}
	return out
}
