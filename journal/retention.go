package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/posfleet/posfleet/store"
)

// Retention bounds the security events and rejections kept, each table on
// its own: rows older than MaxAge go, and the oldest beyond MaxRows. Audit
// entries go by age only, after AuditMaxAge.
type Retention struct {
	MaxAge  time.Duration
	MaxRows int64
	// AuditMaxAge is how long audit entries are kept; 0 means
	// DefaultAuditRetention. No count bounds them: an audit log that lost
	// its oldest entries to a burst would fail its purpose.
	AuditMaxAge time.Duration
	// Interval is how often Run prunes.
	Interval time.Duration
}

// DefaultRetention returns the defaults.
func DefaultRetention() Retention {
	return Retention{
		// A month: long enough to look back on last month's attack or a
		// firmware that sent bad messages, short enough to stay small.
		MaxAge: 30 * 24 * time.Hour,
		// A million rows (about 200 MB on PostgreSQL with the indexes per
		// table): with the aggregation windows, a fleet of 100,000 misbehaving
		// terminals for a day.
		MaxRows: 1_000_000,
		// A year: PCI DSS 10.5.1.
		AuditMaxAge: DefaultAuditRetention,
		// A few minutes: each pass deletes at most pruneChunk*pruneChunks
		// rows a table, in short transactions.
		Interval: 5 * time.Minute,
	}
}

// Validate reports an option out of its range.
func (r Retention) Validate() error {
	switch {
	case r.MaxAge < time.Hour:
		return fmt.Errorf("journal: event retention %v: want at least 1h", r.MaxAge)
	case r.MaxRows < 1000:
		return fmt.Errorf("journal: event max rows %d: want at least 1000", r.MaxRows)
	case r.AuditMaxAge != 0 && r.AuditMaxAge < 24*time.Hour:
		return fmt.Errorf("journal: audit retention %v: want at least 24h", r.AuditMaxAge)
	case r.Interval <= 0:
		return errors.New("journal: the pruning interval must be positive")
	}
	return nil
}

// Bounds of one pruning pass: chunks of pruneChunk rows, at most
// pruneChunks of them a table and rule, so that no DELETE holds a lock
// long and a pass after a long stop catches up over a few passes.
const (
	pruneChunk  = 5000
	pruneChunks = 40
)

// prunedTables are the tables under Retention.
var prunedTables = []string{"security_events", "rejections"}

// Prune deletes the security events, rejections and audit entries that
// Retention lets go at now, in bounded DELETEs, and returns how many rows
// went.
func Prune(ctx context.Context, db *store.DB, r Retention, now time.Time) (int64, error) {
	audit := r.AuditMaxAge
	if audit <= 0 {
		audit = DefaultAuditRetention
	}
	total, err := deleteBefore(ctx, db, "audit_log", store.Millis(now.Add(-audit)), false)
	if err != nil {
		return total, err
	}
	for _, table := range prunedTables {
		n, err := deleteBefore(ctx, db, table, store.Millis(now.Add(-r.MaxAge)), false)
		total += n
		if err != nil {
			return total, err
		}
		// The time of the newest row beyond MaxRows: it and the older go
		// (rows of the same millisecond as the MaxRows-th may go too).
		var cut int64
		err = db.QueryRowContext(ctx, `SELECT at_ms FROM `+table+` ORDER BY at_ms DESC LIMIT 1 OFFSET $1`, r.MaxRows).Scan(&cut)
		if err == nil {
			n, err = deleteBefore(ctx, db, table, cut, true)
			total += n
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return total, fmt.Errorf("journal: pruning %s: %w", table, err)
		}
	}
	return total, nil
}

// deleteBefore deletes table's rows with at_ms < cut (<= with inclusive),
// pruneChunk at a time, at most pruneChunks times.
func deleteBefore(ctx context.Context, db *store.DB, table string, cut int64, inclusive bool) (int64, error) {
	op := "<"
	if inclusive {
		op = "<="
	}
	q := `DELETE FROM ` + table + ` WHERE id IN (SELECT id FROM ` + table + ` WHERE at_ms ` + op + ` $1 LIMIT $2)`
	var total int64
	for range pruneChunks {
		res, err := db.ExecContext(ctx, q, cut, pruneChunk)
		if err != nil {
			return total, fmt.Errorf("journal: pruning %s: %w", table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneChunk {
			break
		}
	}
	return total, nil
}

// RunPruner prunes every r.Interval until ctx ends. Every process may run
// it: concurrent passes delete the same rows once.
func RunPruner(ctx context.Context, db *store.DB, r Retention, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		n, err := Prune(ctx, db, r, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("security events, rejections and audit entries not pruned", "err", err)
		case n > 0:
			log.Info("security events, rejections and audit entries pruned", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
