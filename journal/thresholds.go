package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// ThresholdsVersion is one thresholds document accepted (the overrides
// per tenant and model of health.Thresholds): the newest is in force.
type ThresholdsVersion struct {
	Version   int64
	Body      string // JSON, as accepted
	CreatedAt time.Time
	CreatedBy string // the user or token, or ImportedBy
}

// ErrThresholdsChanged: another version was stored since the one a change
// was made on (AddThresholds' base).
var ErrThresholdsChanged = &posfleet.Error{Kind: posfleet.Conflict, Code: "conflict", Message: "the thresholds changed meanwhile; reload and try again"}

// AddThresholds stores body as the next version (the newest + 1) and
// returns its number. With base >= 0, the newest must still be base (0:
// none), else ErrThresholdsChanged: a change made on an older version
// would undo the ones after it. Two replicas adding at once both get
// theirs when base < 0: the loser of the race on the number tries again.
func AddThresholds(ctx context.Context, db *store.DB, body []byte, by string, at time.Time, base int64) (int64, error) {
	var v int64
	var err error
	for range 5 {
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			var newest int64
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM threshold_versions`).Scan(&newest); err != nil {
				return err
			}
			if base >= 0 && newest != base {
				return ErrThresholdsChanged
			}
			return tx.QueryRowContext(ctx, `INSERT INTO threshold_versions (version, body, created_ms, created_by)
VALUES ($1, $2, $3, $4) RETURNING version`, newest+1, string(body), store.Millis(at), by).Scan(&v)
		})
		if err == nil {
			return v, nil
		}
		if errors.Is(err, ErrThresholdsChanged) {
			return 0, err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return 0, fmt.Errorf("journal: thresholds: %w", err)
}

// LatestThresholds returns the document in force; ok is false when none
// was ever stored.
func LatestThresholds(ctx context.Context, db *store.DB) (v ThresholdsVersion, ok bool, err error) {
	l, err := ThresholdsHistory(ctx, db, 1)
	if err != nil || len(l) == 0 {
		return v, false, err
	}
	return l[0], true, nil
}

// LatestThresholdsVersion is the newest version's number, 0 for none: a
// cheap poll for the processes that apply new versions.
func LatestThresholdsVersion(ctx context.Context, db *store.DB) (int64, error) {
	var v int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM threshold_versions`).Scan(&v); err != nil {
		return 0, fmt.Errorf("journal: thresholds version: %w", err)
	}
	return v, nil
}

// ThresholdsHistory returns the newest n versions, newest first.
func ThresholdsHistory(ctx context.Context, db *store.DB, n int) ([]ThresholdsVersion, error) {
	rows, err := db.QueryContext(ctx, `SELECT version, body, created_ms, created_by FROM threshold_versions ORDER BY version DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("journal: thresholds history: %w", err)
	}
	defer rows.Close()
	out := []ThresholdsVersion{}
	for rows.Next() {
		var v ThresholdsVersion
		var ms int64
		if err := rows.Scan(&v.Version, &v.Body, &ms, &v.CreatedBy); err != nil {
			return nil, fmt.Errorf("journal: thresholds history: %w", err)
		}
		v.CreatedAt = store.Time(ms)
		out = append(out, v)
	}
	return out, rows.Err()
}
