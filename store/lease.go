package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// ErrFenced is returned by a write made under a lease that another holder
// has taken since (Lease.Check inside the writing transaction).
var ErrFenced = errors.New("store: the lease has passed to another holder")

// Lease is one holder's claim on a named lease (the health role's
// writer): at most one holder at a time, for TTL after its last renewal.
// Every new holder gets a larger fence, and writes check it in their
// transaction, so a holder that stalled past its TTL (a long GC pause, a
// frozen VM) cannot overwrite what the next holder wrote.
type Lease struct {
	Name   string
	Holder string
	TTL    time.Duration
	// Fence is the fence of the last successful Acquire; 0 while not held.
	Fence int64
}

// Acquire takes or renews the lease: held reports whether this holder has
// it now. A lease whose holder let it expire (by now) is taken over.
func (db *DB) Acquire(ctx context.Context, l *Lease, now time.Time) (held bool, err error) {
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		var holder string
		var expires, fence int64
		err := tx.QueryRowContext(ctx, `SELECT holder, expires_ms, fence FROM leases WHERE name = $1`, l.Name).Scan(&holder, &expires, &fence)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			l.Fence = 1
			_, err = tx.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_ms, fence) VALUES ($1, $2, $3, $4)`,
				l.Name, l.Holder, Millis(now.Add(l.TTL)), l.Fence)
			held = err == nil
			return err
		case err != nil:
			return err
		case holder == l.Holder && fence == l.Fence:
			// Renewal.
		case expires > Millis(now):
			l.Fence, held = 0, false
			return nil
		default:
			l.Fence = fence + 1 // taking over an expired lease (or our own from before a restart)
		}
		_, err = tx.ExecContext(ctx, `UPDATE leases SET holder = $2, expires_ms = $3, fence = $4 WHERE name = $1`,
			l.Name, l.Holder, Millis(now.Add(l.TTL)), l.Fence)
		held = err == nil
		return err
	})
	if err != nil {
		l.Fence = 0
		return false, err
	}
	return held, nil
}

// Release gives the lease up (at shutdown), so that a standby takes over
// at its next Acquire rather than after the TTL.
func (db *DB) Release(ctx context.Context, l *Lease) error {
	if l.Fence == 0 {
		return nil
	}
	_, err := db.ExecContext(ctx, `UPDATE leases SET expires_ms = 0 WHERE name = $1 AND holder = $2 AND fence = $3`, l.Name, l.Holder, l.Fence)
	l.Fence = 0
	return err
}

// Check returns ErrFenced unless l is still held with its fence: call it
// inside the transaction that writes under the lease. (On PostgreSQL it
// locks the lease row for the transaction, so a takeover waits for it.)
func (l *Lease) Check(ctx context.Context, tx *sql.Tx, dialect Dialect) error {
	if l.Fence == 0 {
		return ErrFenced
	}
	q := `SELECT holder, fence FROM leases WHERE name = $1`
	if dialect == Postgres {
		q += ` FOR SHARE`
	}
	var holder string
	var fence int64
	if err := tx.QueryRowContext(ctx, q, l.Name).Scan(&holder, &fence); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrFenced
		}
		return err
	}
	if holder != l.Holder || fence != l.Fence {
		return ErrFenced
	}
	return nil
}
