package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/posfleet/posfleet/store"
)

// PolicyVersion is one firmware policy accepted: the newest is in force.
type PolicyVersion struct {
	Version   int64
	Body      string // YAML, as accepted
	CreatedAt time.Time
	CreatedBy string // the user or token, or ImportedBy
}

// ImportedBy is the author of a policy imported from a policy.yaml file.
const ImportedBy = "import"

// AddPolicy stores body as the next version (the newest + 1) and returns
// its number. Two replicas adding at once both get theirs: the loser of
// the race on the number tries again.
func AddPolicy(ctx context.Context, db *store.DB, body []byte, by string, at time.Time) (int64, error) {
	var v int64
	var err error
	for range 5 {
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, `INSERT INTO policy_versions (version, body, created_ms, created_by)
SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3 FROM policy_versions RETURNING version`, string(body), store.Millis(at), by).Scan(&v)
		})
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return 0, fmt.Errorf("journal: policy: %w", err)
}

// LatestPolicy returns the policy in force; ok is false when none was
// ever stored.
func LatestPolicy(ctx context.Context, db *store.DB) (p PolicyVersion, ok bool, err error) {
	l, err := PolicyHistory(ctx, db, 1)
	if err != nil || len(l) == 0 {
		return p, false, err
	}
	return l[0], true, nil
}

// PolicyHistory returns the newest n policy versions, newest first.
func PolicyHistory(ctx context.Context, db *store.DB, n int) ([]PolicyVersion, error) {
	rows, err := db.QueryContext(ctx, `SELECT version, body, created_ms, created_by FROM policy_versions ORDER BY version DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("journal: policy history: %w", err)
	}
	defer rows.Close()
	out := []PolicyVersion{}
	for rows.Next() {
		var p PolicyVersion
		var ms int64
		if err := rows.Scan(&p.Version, &p.Body, &ms, &p.CreatedBy); err != nil {
			return nil, fmt.Errorf("journal: policy history: %w", err)
		}
		p.CreatedAt = store.Time(ms)
		out = append(out, p)
	}
	return out, rows.Err()
}

// ImportPolicyFile makes the policy file of an older release (policy.yaml
// in the data directory) version 1, by ImportedBy, when the database holds
// no policy yet, and renames the file to path + ".imported" so that it is
// not imported again. check, if set, must accept the body first (the
// engine's parser): a policy the engine refuses stays where it is and the
// error says why. A missing file is nothing to import.
func ImportPolicyFile(ctx context.Context, db *store.DB, path string, check func([]byte) error, at time.Time) (imported bool, err error) {
	body, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("journal: policy file: %w", err)
	}
	if _, ok, err := LatestPolicy(ctx, db); err != nil || ok {
		// The database's policy wins; the file is left for the operator.
		return false, err
	}
	if check != nil {
		if err := check(body); err != nil {
			return false, fmt.Errorf("journal: policy file %s: %w", path, err)
		}
	}
	if _, err := AddPolicy(ctx, db, body, ImportedBy, at); err != nil {
		return false, err
	}
	if err := os.Rename(path, path+".imported"); err != nil {
		return true, fmt.Errorf("journal: policy file imported, but not renamed: %w", err)
	}
	return true, nil
}
