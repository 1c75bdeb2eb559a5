package registry

import (
	"context"
	"time"

	"github.com/posfleet/posfleet"
)

// MinPersistedSecretLen exposes the shortest secret whose verification is
// written to disk.
const MinPersistedSecretLen = minPersistedSecretLen

// SlowVerifications returns how many argon2id verifications r has run, so
// that tests can tell a cache hit from a verification without timing.
func SlowVerifications(r *Registry) int64 { return r.slowVerifies.Load() }

// PersistBatches returns how many transactions the background writer has
// committed.
func PersistBatches(r *Registry) int64 { return r.persistBatches.Load() }

// MissQueries returns how many database lookups of names missing from
// memory r has made.
func MissQueries(r *Registry) int64 { return r.missQueries.Load() }

// Syncs returns how many syncs r has made.
func Syncs(r *Registry) int64 { return r.syncs.Load() }

// MissLookups is the bound of lookups per sync.
const MissLookups = missLookups

// SetPersistHook makes the background writer call hook before it takes the
// pending entries. Call it before the first Authenticate.
func SetPersistHook(r *Registry, hook func()) { r.testHookBeforePersist = hook }

// Persisted returns the terminals that have a verified credential of r's
// key stored in the database.
func Persisted(r *Registry) ([]posfleet.TerminalRef, error) {
	rows, err := r.db.QueryContext(context.Background(), `SELECT tenant, terminal FROM terminal_verified WHERE key_id = $1`, r.keyID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []posfleet.TerminalRef
	for rows.Next() {
		var ref posfleet.TerminalRef
		if err := rows.Scan(&ref.Tenant, &ref.Terminal); err != nil {
			return nil, err
		}
		out = append(out, ref)
	}
	return out, rows.Err()
}

// LastImport returns how long r's last import spent hashing secrets and
// writing to the database (and memory).
func LastImport(r *Registry) (hash, write time.Duration) {
	r.importMu.Lock()
	defer r.importMu.Unlock()
	return r.lastImport[0], r.lastImport[1]
}
