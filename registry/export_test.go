package registry

import (
	"github.com/posfleet/posfleet"
	bolt "go.etcd.io/bbolt"
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

// SetPersistHook makes the background writer call hook before it takes the
// pending entries. Call it before the first Authenticate.
func SetPersistHook(r *Registry, hook func()) { r.testHookBeforePersist = hook }

// Persisted returns the terminals that have a verified credential stored in
// the registry file.
func Persisted(r *Registry) ([]posfleet.TerminalRef, error) {
	var out []posfleet.TerminalRef
	err := r.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVerified).ForEach(func(k, _ []byte) error {
			out = append(out, refFromKey(k))
			return nil
		})
	})
	return out, err
}
