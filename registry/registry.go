// Package registry is the durable store of provisioned terminals: who may
// connect (tenant, terminal ID, secret hash) and where each terminal stands
// (model, merchant, site, region, coordinates). See PROTOCOL.md §1 "Identity"
// and §4 "Provisioning".
//
// The store is one bbolt file. bbolt holds an exclusive file lock while the
// file is open, so a second posfleet process (for example `posfleet terminals
// import` while the server runs) gets a clear "in use" error instead of
// corrupting it; such changes go through the running server's API.
package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posfleet/posfleet"
)

// Options configures a Registry. A zero field takes its value from
// DefaultOptions.
type Options struct {
	// HashTime, HashMemoryKiB and HashThreads are the argon2id parameters
	// (passes, memory in KiB, lanes) for new secret hashes. Each hash records
	// its own parameters, so changing them affects only secrets set afterwards.
	HashTime      uint32
	HashMemoryKiB uint32
	HashThreads   uint8

	// MaxConcurrentVerify bounds simultaneous slow hash verifications so a
	// reconnect storm or a flood of wrong secrets queues instead of thrashing
	// the CPU and the memory (each verification holds HashMemoryKiB). One
	// source address (see AuthenticateFrom) gets half of them at most, so
	// that others always find one.
	MaxConcurrentVerify int

	// SourceFailuresPerSecond and SourceFailureBurst are the budget of
	// failed slow verifications per source address (per /64 for IPv6), a
	// token bucket: a source over it is refused at once, without a
	// verification, until the bucket refills. Verifications under way count
	// against the burst, and successes cost nothing. A negative rate removes
	// the bound. Only callers that give the source (AuthenticateFrom) are
	// bound by it.
	SourceFailuresPerSecond float64
	SourceFailureBurst      int
	// UsernameFailuresPerSecond and UsernameFailureBurst are the same
	// budget per username, against guessing one terminal's secret from
	// many sources. A terminal whose credentials are cached (it connected
	// since the start, or with CacheKeyFile ever) is never refused by it.
	UsernameFailuresPerSecond float64
	UsernameFailureBurst      int
	// MaxBudgetKeys bounds the sources and usernames tracked, each; past
	// it, new ones share one budget.
	MaxBudgetKeys int

	// CacheKeyFile, when set, makes the cache of verified credentials survive
	// restarts, so that a fleet reconnecting after a restart is not held up
	// by one slow argon2id verification per terminal. Import stores the entry
	// of every secret it sets, so a fleet provisioned and then connecting all
	// at once skips argon2id too. It is the path of a
	// file holding the cache's HMAC key (32 random bytes), created with mode
	// 0600 if missing; Open refuses a key file of another size or readable
	// by group or others. The entries themselves are stored in the registry
	// file; a new key file (for example after deleting it) drops them.
	//
	// The key lives outside the registry file on purpose: a copy of the
	// registry alone, such as a backup, must not let anyone test guesses at
	// a secret faster than argon2id allows. Whoever has both files can test
	// guesses at HMAC speed against persisted entries, so only secrets of at
	// least 32 characters are persisted (posfleet generates 256-bit random
	// ones of 43 characters); shorter ones, possibly chosen by an operator
	// and weak, stay in memory only and are verified slowly once after each
	// restart.
	//
	// "" keeps the cache in memory only, under a key that changes with every
	// process.
	CacheKeyFile string

	// Logger receives import summaries and storage problems; nil discards.
	Logger *slog.Logger
}

// DefaultOptions returns the options used for zero fields of Options.
func DefaultOptions() Options {
	return Options{
		// One verification must be cheap enough that every terminal of a large
		// fleet can reconnect soon after a server restart: 15,000 terminals
		// within 60 s on 2 cores allows 8 ms per verification, and the broker
		// needs CPU too. Measured on the 2-core build machine (Go 1.26,
		// amd64), t=1 m=4 MiB p=1 takes 2.9 ms alone and 3.6 ms with both
		// cores verifying (about 550 verifications/s, so 15,000 in ~27 s);
		// t=1 m=8 MiB took 5.5 ms and t=2 m=4 MiB 5.3 ms, over budget.
		// BenchmarkAuthenticate/cold measures the whole refusal-or-accept
		// path at 3.2-4.6 ms (the spread is other load on the machine).
		// 4 MiB per guess still makes offline guessing memory-bound, and the
		// secrets posfleet generates are 256-bit random, so the hash guards
		// operator-chosen secrets only.
		HashTime:      1,
		HashMemoryKiB: 4 * 1024,
		// One lane: under a reconnect storm every core is busy verifying
		// another terminal anyway, so parallel lanes add no throughput, only
		// goroutine overhead.
		HashThreads: 1,
		// One slow verification per core keeps each at full speed; more would
		// only share the cores and multiply the memory held at once.
		MaxConcurrentVerify: runtime.NumCPU(),
		// One wrong secret a second per address, in bursts of 5: a flood
		// from one address spends at most 5 verifications at once and then
		// one a second, while terminals behind one NAT with a wrong
		// secret, retrying every few seconds, still get their answer.
		// Successes are free, so a NAT full of good terminals reconnecting
		// is never held back. The burst is small because each verification
		// under a flood costs far more than its 4 ms alone: its 4 MiB make
		// the garbage collector scan every connection's stack; with bursts
		// of 10-20 a terminal connecting during a flood of 1,000 CONNECTs
		// waited 0.7-1.2 s, with 1-5 about 0.2-0.4 s (TestWrongPasswordFlood).
		SourceFailuresPerSecond: 1,
		SourceFailureBurst:      5,
		// Five wrong secrets in a row, then one every ten seconds: a
		// terminal misprovisioned and retrying every 10 s still gets
		// "bad username or password", and guessing one terminal's secret
		// from a botnet goes at 8,640 guesses a day.
		UsernameFailuresPerSecond: 0.1,
		UsernameFailureBurst:      5,
		// About 200 bytes each: 100,000 keys are 20 MiB per budget at most.
		MaxBudgetKeys: 100_000,
	}
}

// Validate reports the first option out of its range, checking o as given
// (Open fills zero fields with their defaults before it checks).
func (o Options) Validate() error {
	switch {
	case o.SourceFailureBurst < 1 || o.UsernameFailureBurst < 1:
		return fmt.Errorf("registry: failure bursts must be at least 1")
	case o.SourceFailuresPerSecond == 0 || o.UsernameFailuresPerSecond == 0:
		return fmt.Errorf("registry: failure rates must not be zero (negative: no bound)")
	case o.MaxBudgetKeys < 1:
		return fmt.Errorf("registry: MaxBudgetKeys %d: want at least 1", o.MaxBudgetKeys)
	}
	return nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.HashTime == 0 {
		o.HashTime = d.HashTime
	}
	if o.HashMemoryKiB == 0 {
		o.HashMemoryKiB = d.HashMemoryKiB
	}
	if o.HashThreads == 0 {
		o.HashThreads = d.HashThreads
	}
	if o.MaxConcurrentVerify <= 0 {
		o.MaxConcurrentVerify = d.MaxConcurrentVerify
	}
	if o.SourceFailuresPerSecond == 0 {
		o.SourceFailuresPerSecond = d.SourceFailuresPerSecond
	}
	if o.SourceFailureBurst == 0 {
		o.SourceFailureBurst = d.SourceFailureBurst
	}
	if o.UsernameFailuresPerSecond == 0 {
		o.UsernameFailuresPerSecond = d.UsernameFailuresPerSecond
	}
	if o.UsernameFailureBurst == 0 {
		o.UsernameFailureBurst = d.UsernameFailureBurst
	}
	if o.MaxBudgetKeys == 0 {
		o.MaxBudgetKeys = d.MaxBudgetKeys
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// Terminal is a provisioned terminal as stored in the registry
// (posfleet.RegisteredTerminal, a root-owned value).
type Terminal = posfleet.RegisteredTerminal

// ErrNotFound is returned by Get for a terminal that is not provisioned.
var ErrNotFound = posfleet.KindError(posfleet.NotFound, "terminal not found")

// ErrBadCredentials is returned by Authenticate for an unknown terminal, a
// wrong secret or a malformed username alike, so that callers cannot tell
// which (MQTT "bad username or password").
var ErrBadCredentials = errors.New("bad username or password")

// ErrInUse is returned by Open when another process holds the registry file.
var ErrInUse = errors.New("in use by another posfleet process")

// schemaVersion is the layout of the file; Open refuses a newer one rather
// than misreading it after a downgrade.
const schemaVersion = 1

var (
	bucketMeta      = []byte("meta")
	bucketTerminals = []byte("terminals")
	keySchema       = []byte("schema")
)

// lockTimeout is how long Open waits for the file lock. Long enough to ride
// out a previous process that is just exiting, short enough that a user
// running a second command sees the error at once.
const lockTimeout = time.Second

// Registry is an open terminal registry. It is safe for concurrent use.
type Registry struct {
	db   *bolt.DB
	path string
	opts Options
	log  *slog.Logger

	// verifySem bounds the slow argon2id verifications.
	verifySem chan struct{}
	// sources and usernames bound the failed verifications per source
	// address and per username (nil: no bound).
	sources, usernames *budget
	// dummyHash is verified for unknown terminals so that their refusal takes
	// as long as a wrong secret for a known one.
	dummyHash string

	// importMu serialises imports: an import reads the current state,
	// hashes secrets outside the write transaction, then applies.
	importMu sync.Mutex

	cacheMu sync.Mutex
	// cacheKey is the HMAC key of the cache, from Options.CacheKeyFile or
	// else process-random; the cache never holds secrets.
	cacheKey []byte
	cache    map[posfleet.TerminalRef][macLen]byte
	// cacheEpoch changes whenever a secret changes, so that a verification
	// that read the old hash cannot cache its result after the change.
	cacheEpoch uint64

	// persist writes verified credentials to disk; nil without
	// Options.CacheKeyFile.
	persist *persister

	// slowVerifies counts argon2id verifications and persistBatches the
	// writer's transactions, so that tests can tell a cache hit from a
	// verification, and see the batching, without timing.
	slowVerifies, persistBatches atomic.Int64
	// testHookBeforePersist, when set by a test, runs in the writer before
	// it takes the pending entries.
	testHookBeforePersist func()
}

// Open opens the registry file at path, creating it (mode 0600) if needed.
// It fails with ErrInUse when another process has the file open.
func Open(path string, opts Options) (*Registry, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("registry %s is %w", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketTerminals); err != nil {
			return err
		}
		// Created even without a key file, so that Import can always delete
		// the entry of a secret it changes (an import from the command line
		// opens the registry without the server's key file). An older
		// posfleet ignores the bucket; entries it left stale are dropped by
		// their hash tag at load.
		if _, err := tx.CreateBucketIfNotExists(bucketVerified); err != nil {
			return err
		}
		if v := meta.Get(keySchema); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil || n > schemaVersion {
				return fmt.Errorf("schema version %q is newer than this posfleet understands (%d)", v, schemaVersion)
			}
			return nil
		}
		return meta.Put(keySchema, []byte(strconv.Itoa(schemaVersion)))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("registry: open %s: %w", path, err)
	}

	r := &Registry{
		db:        db,
		path:      path,
		opts:      opts,
		log:       opts.Logger.With("component", "registry"),
		verifySem: make(chan struct{}, opts.MaxConcurrentVerify),
		sources:   newBudget(opts.SourceFailuresPerSecond, opts.SourceFailureBurst, opts.MaxBudgetKeys, max(1, opts.MaxConcurrentVerify/2)),
		usernames: newBudget(opts.UsernameFailuresPerSecond, opts.UsernameFailureBurst, opts.MaxBudgetKeys, 0),
		cache:     make(map[posfleet.TerminalRef][macLen]byte),
	}
	if opts.CacheKeyFile == "" {
		r.cacheKey = make([]byte, cacheKeyLen)
		rand.Read(r.cacheKey) // never fails (crypto/rand docs)
	} else {
		// After the file lock, so that two processes never race to create
		// the key of one registry.
		key, created, err := loadCacheKey(opts.CacheKeyFile)
		if err == nil {
			r.cacheKey = key
			err = r.loadVerified(created)
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("registry: open %s: %w", path, err)
		}
		if created {
			r.log.Info("new credential cache key; terminals are verified slowly once", "key_file", opts.CacheKeyFile)
		}
		r.persist = newPersister()
		go r.runPersister()
	}
	r.dummyHash = r.hashSecret([]byte(generateSecret()))
	return r, nil
}

// Close writes the verified credentials still pending, then releases the
// file and its lock.
func (r *Registry) Close() error {
	r.stopPersister()
	if err := r.db.Close(); err != nil {
		return fmt.Errorf("registry: close %s: %w", r.path, err)
	}
	return nil
}

// record is the stored form of a terminal. JSON keeps the file readable with
// bbolt tools and lets fields be added without a migration.
type record struct {
	Model      string    `json:"model,omitempty"`
	Merchant   string    `json:"merchant,omitempty"`
	Site       string    `json:"site,omitempty"`
	Region     string    `json:"region,omitempty"`
	Lat        *float64  `json:"lat,omitempty"`
	Lon        *float64  `json:"lon,omitempty"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	SecretHash string    `json:"secret_hash"`
}

func (rec *record) terminal(ref posfleet.TerminalRef) Terminal {
	return Terminal{
		TerminalRef: ref,
		Model:       rec.Model, Merchant: rec.Merchant, Site: rec.Site, Region: rec.Region,
		Lat: rec.Lat, Lon: rec.Lon,
		Created: rec.Created, Updated: rec.Updated,
	}
}

// key orders terminals by tenant, then terminal ID: NUL sorts below every ID
// character, so tenant "a" comes before tenant "a-b" (a ':' separator would
// not, as '-' < ':').
func key(ref posfleet.TerminalRef) []byte {
	k := make([]byte, 0, len(ref.Tenant)+1+len(ref.Terminal))
	k = append(k, ref.Tenant...)
	k = append(k, 0)
	return append(k, ref.Terminal...)
}

func refFromKey(k []byte) posfleet.TerminalRef {
	tenant, terminal, _ := bytes.Cut(k, []byte{0})
	return posfleet.TerminalRef{Tenant: string(tenant), Terminal: string(terminal)}
}

func getRecord(b *bolt.Bucket, ref posfleet.TerminalRef) (*record, error) {
	v := b.Get(key(ref))
	if v == nil {
		return nil, nil
	}
	var rec record
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode %s: %w", ref, err)
	}
	return &rec, nil
}

// Get returns one terminal, or an error wrapping ErrNotFound.
func (r *Registry) Get(ctx context.Context, ref posfleet.TerminalRef) (Terminal, error) {
	if err := ctx.Err(); err != nil {
		return Terminal{}, fmt.Errorf("registry: get %s: %w", ref, err)
	}
	if err := ref.Validate(); err != nil {
		return Terminal{}, fmt.Errorf("registry: get: %w", err)
	}
	var t Terminal
	err := r.db.View(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx.Bucket(bucketTerminals), ref)
		if err != nil {
			return err
		}
		if rec == nil {
			return ErrNotFound
		}
		t = rec.terminal(ref)
		return nil
	})
	if err != nil {
		return Terminal{}, fmt.Errorf("registry: get %s: %w", ref, err)
	}
	return t, nil
}

// List returns the terminals of one tenant, or of all tenants when tenant is
// "", sorted by tenant and terminal ID.
func (r *Registry) List(ctx context.Context, tenant string) ([]Terminal, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("registry: list: %w", err)
	}
	if tenant != "" && !posfleet.ValidID(tenant) {
		return nil, fmt.Errorf("registry: list: tenant %q: %w", tenant, posfleet.ErrInvalidID)
	}
	var prefix []byte
	if tenant != "" {
		prefix = append([]byte(tenant), 0)
	}
	var out []Terminal
	err := r.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTerminals).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			// A large fleet takes a while to decode; stop when the caller
			// has gone.
			if len(out)%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			ref := refFromKey(k)
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode %s: %w", ref, err)
			}
			out = append(out, rec.terminal(ref))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry: list: %w", err)
	}
	return out, nil
}

// Refs returns the IDs of every provisioned terminal, sorted by tenant and
// terminal ID. It reads only the keys: the health engine takes the whole
// fleet's IDs at start (100,000 terminals) and needs nothing else.
func (r *Registry) Refs(ctx context.Context) ([]posfleet.TerminalRef, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("registry: refs: %w", err)
	}
	var out []posfleet.TerminalRef
	err := r.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTerminals).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			out = append(out, refFromKey(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry: refs: %w", err)
	}
	return out, nil
}

// Count returns the number of provisioned terminals.
func (r *Registry) Count(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("registry: count: %w", err)
	}
	var n int
	err := r.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketTerminals).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("registry: count: %w", err)
	}
	return n, nil
}
