// Package registry is the store of provisioned terminals: who may connect
// (tenant, terminal ID, secret hash) and where each terminal stands (model,
// merchant, site, region, coordinates). See PROTOCOL.md §1 "Identity" and §4
// "Provisioning".
//
// The terminals live in the control-plane database (store: the table
// terminals), shared by every process of a cluster and by the command line
// beside a running server. Each Registry keeps all of them in memory, so
// that authentication and the collector's per-message check never query:
// it loads them at Open and then reads, every SyncInterval, only the rows
// changed since (a change version), and at once after its own writes.
package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
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
	// by group or others. The entries themselves are stored in the database
	// (terminal_verified), under a digest of the key: processes with other
	// keys neither use nor drop them, and a new key file (for example after
	// deleting it) starts with none.
	//
	// The key lives outside the database on purpose: a copy of the database
	// alone, such as a backup, must not let anyone test guesses at a secret
	// faster than argon2id allows. Whoever has both can test
	// guesses at HMAC speed against persisted entries, so only secrets of at
	// least 32 characters are persisted (posfleet generates 256-bit random
	// ones of 43 characters); shorter ones, possibly chosen by an operator
	// and weak, stay in memory only and are verified slowly once after each
	// restart.
	//
	// "" keeps the cache in memory only, under a key that changes with every
	// process.
	CacheKeyFile string

	// SyncInterval is how often the terminals changed by other processes
	// (another replica, the command line beside the server) are read from
	// the database: a terminal provisioned or rotated elsewhere is known
	// here, and an old secret refused, within about this long. Negative:
	// only at Open and after this process's own changes (a short-lived
	// command).
	SyncInterval time.Duration

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
		// A few seconds, as the issue asks of a terminal provisioned on
		// another replica. The look is one indexed query answering no rows
		// when nothing changed: negligible even on a busy PostgreSQL.
		SyncInterval: 2 * time.Second,
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
	if o.SyncInterval == 0 {
		o.SyncInterval = d.SyncInterval
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

// missLookups bounds the database lookups of names missing from memory
// between two syncs (see lookup): a terminal provisioned elsewhere a moment
// ago is found at once, but a flood of unknown names costs at most this many
// queries per SyncInterval, and a name looked up once waits for the sync.
const missLookups = 100

// Registry is an open terminal registry. It is safe for concurrent use.
type Registry struct {
	db   *store.DB
	opts Options
	log  *slog.Logger

	// idx holds every terminal of the database as of the last sync (plus
	// the rows this process wrote or looked up since).
	idxMu sync.RWMutex
	idx   map[posfleet.TerminalRef]*entry

	// syncMu serialises syncs and the part of an import that reads the
	// changes under the version lock; synced is the highest change version
	// applied to idx, everything at or below it is in idx.
	syncMu sync.Mutex
	synced int64

	// missed holds the names looked up in the database since the last
	// sync (see missLookups).
	missMu sync.Mutex
	missed map[posfleet.TerminalRef]struct{}

	// onAdded, when set, receives the terminals new to idx (see
	// OnProvisioned); added holds them until the sync loop hands them on.
	onAdded atomic.Pointer[func([]posfleet.TerminalRef)]
	addedMu sync.Mutex
	added   []posfleet.TerminalRef

	stopSync chan struct{}
	syncDone chan struct{}
	// syncs counts syncs, so that tests can wait for one.
	syncs atomic.Int64

	// verifySem bounds the slow argon2id verifications.
	verifySem chan struct{}
	// sources and usernames bound the failed verifications per source
	// address and per username (nil: no bound).
	sources, usernames *budget
	// dummyHash is verified for unknown terminals so that their refusal takes
	// as long as a wrong secret for a known one.
	dummyHash string

	// importMu serialises this process's imports: an import reads the
	// current state, hashes secrets outside the write transaction, then
	// applies (other processes are checked under the version lock).
	importMu sync.Mutex
	// lastImport is how long the last import took hashing and writing
	// (under importMu), for the benchmark.
	lastImport [2]time.Duration

	cacheMu sync.Mutex
	// cacheKey is the HMAC key of the cache, from Options.CacheKeyFile or
	// else process-random; the cache never holds secrets. keyID names it in
	// terminal_verified.
	cacheKey []byte
	keyID    []byte
	cache    map[posfleet.TerminalRef][macLen]byte
	// cacheEpoch changes whenever a secret changes, so that a verification
	// that read the old hash cannot cache its result after the change.
	cacheEpoch uint64

	// persist writes verified credentials to the database; nil without
	// Options.CacheKeyFile.
	persist *persister

	// slowVerifies counts argon2id verifications, persistBatches the
	// writer's transactions and missQueries the lookups of missing names,
	// so that tests can tell a cache hit from a verification, and see the
	// batching and the bound, without timing.
	slowVerifies, persistBatches, missQueries atomic.Int64
	// testHookBeforePersist, when set by a test, runs in the writer before
	// it takes the pending entries.
	testHookBeforePersist func()
}

// entry is a terminal as held in memory.
type entry struct {
	t    Terminal
	hash string
}

// Open opens the registry in db (migrated by store.Open) and loads every
// terminal into memory. Close stops its background work; db stays open,
// the caller's to close after.
func Open(ctx context.Context, db *store.DB, opts Options) (*Registry, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	r := &Registry{
		db:        db,
		opts:      opts,
		log:       opts.Logger.With("component", "registry"),
		idx:       make(map[posfleet.TerminalRef]*entry),
		missed:    make(map[posfleet.TerminalRef]struct{}),
		verifySem: make(chan struct{}, opts.MaxConcurrentVerify),
		sources:   newBudget(opts.SourceFailuresPerSecond, opts.SourceFailureBurst, opts.MaxBudgetKeys, max(1, opts.MaxConcurrentVerify/2)),
		usernames: newBudget(opts.UsernameFailuresPerSecond, opts.UsernameFailureBurst, opts.MaxBudgetKeys, 0),
		cache:     make(map[posfleet.TerminalRef][macLen]byte),
	}
	if opts.CacheKeyFile == "" {
		r.cacheKey = make([]byte, cacheKeyLen)
		rand.Read(r.cacheKey) // never fails (crypto/rand docs)
	} else {
		key, created, err := loadCacheKey(opts.CacheKeyFile)
		if err != nil {
			return nil, fmt.Errorf("registry: open: %w", err)
		}
		r.cacheKey = key
		if created {
			r.log.Info("new credential cache key; terminals are verified slowly once", "key_file", opts.CacheKeyFile)
		}
	}
	r.keyID = keyID(r.cacheKey)
	if err := r.sync(ctx); err != nil {
		return nil, fmt.Errorf("registry: open: %w", err)
	}
	if opts.CacheKeyFile != "" {
		if err := r.dropStaleVerified(ctx); err != nil {
			return nil, fmt.Errorf("registry: open: %w", err)
		}
		r.persist = newPersister()
		go r.runPersister()
	}
	r.dummyHash = r.hashSecret([]byte(generateSecret()))
	r.stopSync, r.syncDone = make(chan struct{}), make(chan struct{})
	if opts.SyncInterval > 0 {
		go r.runSync()
	} else {
		close(r.syncDone)
	}
	return r, nil
}

// Close stops the sync and writes the verified credentials still pending.
// It does not close the database.
func (r *Registry) Close() error {
	select {
	case <-r.stopSync:
	default:
		close(r.stopSync)
	}
	<-r.syncDone
	r.stopPersister()
	return nil
}

// runSync reads the changes of other processes every SyncInterval (this
// process's own are applied by Import as it commits).
func (r *Registry) runSync() {
	defer close(r.syncDone)
	t := time.NewTicker(r.opts.SyncInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-r.stopSync:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(10*time.Second, r.opts.SyncInterval))
		err := r.sync(ctx)
		cancel()
		// Logged once per outage, not every interval: what is in memory
		// keeps serving meanwhile.
		switch {
		case err != nil && !failing:
			r.log.Error("read terminal changes; serving those known", "err", err)
		case err == nil && failing:
			r.log.Info("reading terminal changes again")
		}
		failing = err != nil
		r.handOnAdded()
	}
}

// OnProvisioned makes fn receive, from now on, the terminals that appear
// in the registry, whether imported by this process or another: after each
// sync, from the sync's goroutine (never under a lock of the registry, and
// never from Get or Authenticate, so fn may call them). The health engine
// counts them as never connected until their first message.
func (r *Registry) OnProvisioned(fn func([]posfleet.TerminalRef)) {
	r.onAdded.Store(&fn)
}

func (r *Registry) handOnAdded() {
	fn := r.onAdded.Load()
	if fn == nil {
		return
	}
	r.addedMu.Lock()
	added := r.added
	r.added = nil
	r.addedMu.Unlock()
	if len(added) > 0 {
		(*fn)(added)
	}
}

// Sync reads the terminals changed in the database since the last look
// (by other processes: this one's own changes are in memory at once). The
// background loop does it every SyncInterval; commands and tests may call
// it to be sure.
func (r *Registry) Sync(ctx context.Context) error {
	if err := r.sync(ctx); err != nil {
		return fmt.Errorf("registry: sync: %w", err)
	}
	return nil
}

func (r *Registry) sync(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	rows, err := r.changedSince(ctx, r.db, r.synced)
	if err != nil {
		return err
	}
	r.apply(rows)
	for _, row := range rows {
		r.synced = max(r.synced, row.version)
	}
	// Names missing before this sync are either here now or still missing:
	// let them be looked up again.
	r.missMu.Lock()
	clear(r.missed)
	r.missMu.Unlock()
	r.syncs.Add(1)
	return nil
}

// apply puts rows read from the database into memory. A terminal whose
// secret hash changed loses its cached credential; a verified entry of this
// process's key that matches the row's hash is cached.
func (r *Registry) apply(rows []loadedRow) {
	if len(rows) == 0 {
		return
	}
	var rotated, added []posfleet.TerminalRef
	notify := r.onAdded.Load() != nil
	r.idxMu.Lock()
	for i := range rows {
		row := &rows[i]
		old := r.idx[row.t.TerminalRef]
		if old != nil && old.hash != row.hash {
			rotated = append(rotated, row.t.TerminalRef)
		}
		if old == nil && notify {
			added = append(added, row.t.TerminalRef)
		}
		r.idx[row.t.TerminalRef] = &entry{t: row.t, hash: row.hash}
	}
	r.idxMu.Unlock()
	if len(added) > 0 {
		r.addedMu.Lock()
		r.added = append(r.added, added...)
		r.addedMu.Unlock()
	}
	r.forget(rotated)
	r.cacheMu.Lock()
	for i := range rows {
		row := &rows[i]
		if len(row.mac) != macLen {
			continue
		}
		if tag := sha256.Sum256([]byte(row.hash)); subtle.ConstantTimeCompare(tag[:], row.tag) == 1 {
			r.cache[row.t.TerminalRef] = [macLen]byte(row.mac)
		}
	}
	r.cacheMu.Unlock()
}

// lookup returns the terminal's entry, or nil when it is not provisioned.
// A name missing from memory is looked up in the database, so that a
// terminal provisioned elsewhere a moment ago is known at once, but only
// once per name and missLookups names per sync: a flood of unknown names
// cannot become a flood of queries.
func (r *Registry) lookup(ctx context.Context, ref posfleet.TerminalRef) (*entry, error) {
	r.idxMu.RLock()
	e := r.idx[ref]
	r.idxMu.RUnlock()
	if e != nil {
		return e, nil
	}
	r.missMu.Lock()
	_, seen := r.missed[ref]
	full := len(r.missed) >= missLookups
	if !seen && !full {
		r.missed[ref] = struct{}{}
	}
	r.missMu.Unlock()
	if seen || full {
		return nil, nil
	}
	r.missQueries.Add(1)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	row, err := r.getRow(ctx, ref)
	if err != nil || row == nil {
		return nil, err
	}
	r.apply([]loadedRow{*row})
	return &entry{t: row.t, hash: row.hash}, nil
}

// Get returns one terminal, or an error wrapping ErrNotFound.
func (r *Registry) Get(ctx context.Context, ref posfleet.TerminalRef) (Terminal, error) {
	if err := ctx.Err(); err != nil {
		return Terminal{}, fmt.Errorf("registry: get %s: %w", ref, err)
	}
	if err := ref.Validate(); err != nil {
		return Terminal{}, fmt.Errorf("registry: get: %w", err)
	}
	e, err := r.lookup(ctx, ref)
	if err != nil {
		return Terminal{}, fmt.Errorf("registry: get %s: %w", ref, err)
	}
	if e == nil {
		return Terminal{}, fmt.Errorf("registry: get %s: %w", ref, ErrNotFound)
	}
	return e.t, nil
}

// less orders terminals by tenant, then terminal ID.
func less(a, b posfleet.TerminalRef) int {
	if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
		return c
	}
	return strings.Compare(a.Terminal, b.Terminal)
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
	r.idxMu.RLock()
	out := make([]Terminal, 0, len(r.idx))
	for ref, e := range r.idx {
		if tenant == "" || ref.Tenant == tenant {
			out = append(out, e.t)
		}
	}
	r.idxMu.RUnlock()
	slices.SortFunc(out, func(a, b Terminal) int { return less(a.TerminalRef, b.TerminalRef) })
	return out, nil
}

// Refs returns the IDs of every provisioned terminal, sorted by tenant and
// terminal ID: the health engine takes the whole fleet's IDs at start.
func (r *Registry) Refs(ctx context.Context) ([]posfleet.TerminalRef, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("registry: refs: %w", err)
	}
	r.idxMu.RLock()
	out := make([]posfleet.TerminalRef, 0, len(r.idx))
	for ref := range r.idx {
		out = append(out, ref)
	}
	r.idxMu.RUnlock()
	slices.SortFunc(out, less)
	return out, nil
}

// Count returns the number of provisioned terminals.
func (r *Registry) Count(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("registry: count: %w", err)
	}
	r.idxMu.RLock()
	defer r.idxMu.RUnlock()
	return len(r.idx), nil
}
