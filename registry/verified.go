package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/posfleet/posfleet"
)

// The persisted verified-credential cache (Options.CacheKeyFile).
//
// Each row of terminal_verified is (terminal, key_id) -> mac, tag: mac is
// the HMAC of the secret under the key file's key, as held in memory,
// key_id a digest naming that key, and tag the SHA-256 of the stored secret
// hash that the secret was verified against. The tag ties the entry to one
// secret: an entry whose terminal has another secret hash since is never
// used (and dropped at Open), so a secret changed by something that did not
// delete the entry never leaves its old secret accepted.

const (
	// cacheKeyLen is the size of the key file: 256 bits, as strong as
	// HMAC-SHA256 can use.
	cacheKeyLen = 32
	macLen      = sha256.Size
)

// minPersistedSecretLen is the shortest secret, in characters, whose
// verification is written to the database. Whoever holds both the database
// and the key file can test guesses against a persisted entry at HMAC speed
// instead of argon2id speed. That is harmless for a secret of 256 random bits
// (posfleet generates 43 base64url characters, the simulator 64 hex
// characters), but not for a short secret an operator may have made up, so
// those stay in memory only and are verified slowly once after every restart.
// Characters, not bytes: eleven characters of a non-Latin script are 33 bytes
// of UTF-8 but no stronger for it; for the ASCII secrets posfleet and the
// simulator make, the two agree. Length is a proxy for strength, not a proof:
// a 32-character secret chosen by a person is as weak as its choice, which is
// why operators should let posfleet generate secrets.
const minPersistedSecretLen = 32

// persistLinger is how long the writer waits after the first entry of a
// batch before writing. Without it, a reconnect storm on a fast disk commits
// every two or three entries (measured: about 5,800 commits for 15,000
// verifications), each commit costing two fsyncs and CPU taken from the
// verifications. At the ~550 verifications/s two cores sustain, 200 ms
// gathers about a hundred entries per commit; a crash loses at most those,
// and they are only verified slowly once more.
const persistLinger = 200 * time.Millisecond

// pendingEntry is a successful slow verification waiting to be written.
type pendingEntry struct {
	mac  [macLen]byte
	hash string // the stored secret hash the secret was verified against
}

// persister writes verified credentials in the background, so that
// Authenticate never waits for a disk sync. Entries wait in a map keyed by
// terminal, which bounds them by the fleet's size, and each write takes
// whatever has gathered meanwhile in one transaction: a reconnect storm of
// first-time verifications turns into a few fsyncs, not one per terminal.
// Entries lost at a crash are merely verified slowly once more.
type persister struct {
	mu      sync.Mutex
	pending map[posfleet.TerminalRef]pendingEntry

	wake chan struct{} // capacity 1: "there is something pending"
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newPersister() *persister {
	return &persister{
		pending: make(map[posfleet.TerminalRef]pendingEntry),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// add queues an entry and wakes the writer without blocking.
func (p *persister) add(ref posfleet.TerminalRef, e pendingEntry) {
	p.mu.Lock()
	p.pending[ref] = e
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // the writer is already due to run and will see this entry
	}
}

func (p *persister) take() map[posfleet.TerminalRef]pendingEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) == 0 {
		return nil
	}
	m := p.pending
	p.pending = make(map[posfleet.TerminalRef]pendingEntry)
	return m
}

// runPersister is the background writer; it returns after Close asked it to
// stop and the last entries are written.
func (r *Registry) runPersister() {
	p := r.persist
	defer close(p.done)
	for {
		select {
		case <-p.wake:
			if r.testHookBeforePersist != nil {
				r.testHookBeforePersist()
			}
			// Let a storm gather before writing; see persistLinger.
			select {
			case <-time.After(persistLinger):
			case <-p.stop:
			}
			r.writeVerified(p.take())
		case <-p.stop:
			r.writeVerified(p.take())
			return
		}
	}
}

// stopPersister writes what is pending and stops the writer; it is safe to
// call more than once.
func (r *Registry) stopPersister() {
	if r.persist == nil {
		return
	}
	r.persist.once.Do(func() { close(r.persist.stop) })
	<-r.persist.done
}

// writeVerified stores entries in one transaction. An entry is written only
// if its terminal still has the secret hash it was verified against,
// checked in the statement itself. A rotation that commits between that
// check and this commit can leave the entry written, but with the tag of the
// old hash, which no load accepts; and Import moves the epoch on, so this
// process does not cache it either.
func (r *Registry) writeVerified(entries map[posfleet.TerminalRef]pendingEntry) {
	if len(entries) == 0 {
		return
	}
	written := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := r.db.Tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO terminal_verified (tenant, terminal, key_id, mac, tag)
			SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM terminals WHERE tenant = $1 AND terminal = $2 AND secret_hash = $6)
			ON CONFLICT (tenant, terminal, key_id) DO UPDATE SET mac = excluded.mac, tag = excluded.tag`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for ref, e := range entries {
			tag := sha256.Sum256([]byte(e.hash))
			res, err := stmt.ExecContext(ctx, ref.Tenant, ref.Terminal, r.keyID, e.mac[:], tag[:], e.hash)
			if err != nil {
				return fmt.Errorf("store %s: %w", ref, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				written++
			}
		}
		return nil
	})
	if err != nil {
		// Nothing is lost but speed: these terminals are verified slowly
		// again after a restart.
		r.log.Warn("persist verified credentials", "entries", len(entries), "err", err)
		return
	}
	r.persistBatches.Add(1)
	r.log.Debug("persisted verified credentials", "entries", written, "skipped", len(entries)-written)
}

// loadCacheKey reads the key file at path, or creates it with a new random
// key if it does not exist; created reports the latter.
func loadCacheKey(path string) (key []byte, created bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createCacheKey(path)
		if !errors.Is(err, fs.ErrExist) {
			return key, err == nil, err
		}
		// Another process created it in between: use theirs.
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("credential cache key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("credential cache key: %w", err)
	}
	// Checked on the open file, not the path, so that the answer is about
	// the bytes read below.
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("credential cache key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, false, fmt.Errorf("credential cache key %s: mode %04o lets group or others read it; want 0600 (chmod 600 %s)", path, perm, path)
	}
	if fi.Size() != cacheKeyLen {
		return nil, false, fmt.Errorf("credential cache key %s: %d bytes, want %d; delete the file to make a new key (terminals are then verified slowly once more)", path, fi.Size(), cacheKeyLen)
	}
	key = make([]byte, cacheKeyLen)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, false, fmt.Errorf("credential cache key %s: %w", path, err)
	}
	return key, false, nil
}

// createCacheKey writes a new random key to path, which must not exist
// (O_EXCL: never overwrite a key another process may be using). A file left
// short by a crash is refused by the size check at the next Open, with a
// message saying to delete it.
func createCacheKey(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("credential cache key: create: %w", err)
	}
	key := make([]byte, cacheKeyLen)
	rand.Read(key) // never fails (crypto/rand docs)
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("credential cache key: write %s: %w", path, err)
	}
	return key, nil
}
