package registry

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posfleet/posfleet"
	"golang.org/x/crypto/argon2"
)

// Secret lengths accepted in a provisioning file, in characters.
const (
	minSecretLen = 16
	maxSecretLen = 256
)

const (
	saltLen = 16 // RFC 9106 recommends 128 bits
	keyLen  = 32
)

// generateSecret returns 256 random bits, base64url without padding, so that
// the secret fits a terminal's config file and an MQTT password as is.
func generateSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand docs)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret returns secret's argon2id hash in the PHC string format
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash), which records the parameters so
// that they can change later without invalidating stored hashes.
func (r *Registry) hashSecret(secret []byte) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	o := r.opts
	h := argon2.IDKey(secret, salt, o.HashTime, o.HashMemoryKiB, o.HashThreads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		o.HashMemoryKiB, o.HashTime, o.HashThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(h))
}

// maxHashMemoryKiB caps the memory a stored hash may ask for, so that a
// damaged file cannot make every verification allocate gigabytes.
const maxHashMemoryKiB = 1 << 20

// verifySecret reports whether secret matches encoded, a hash from hashSecret.
func verifySecret(encoded string, secret []byte) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errors.New("secret hash: not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("secret hash: unsupported version %q", parts[2])
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil ||
		t == 0 || p == 0 || m < 8*uint32(p) || m > maxHashMemoryKiB {
		return false, fmt.Errorf("secret hash: bad parameters %q", parts[3])
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("secret hash: salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, fmt.Errorf("secret hash: key: %v", err)
	}
	got := argon2.IDKey(secret, salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Authenticate checks an MQTT CONNECT's username "{tenant}:{terminal}" and
// password (the terminal's secret) and returns the terminal.
//
// A malformed username, an unknown terminal and a wrong secret all return an
// error wrapping ErrBadCredentials. An unknown terminal is checked against a
// dummy hash so that it takes as long as a wrong secret and existence cannot
// be probed by timing. Any other error (storage, ctx) means the answer is
// unknown; the caller refuses the connection either way.
//
// A successful slow verification is remembered as an HMAC of the secret under
// the cache key, so that reconnects skip argon2id; the entry is dropped when
// Import changes the terminal's secret. With Options.CacheKeyFile the entry
// is also written to the database in the background (see persister), so
// that the cache survives a restart: the moment every terminal reconnects at
// once. Only secrets of at least minPersistedSecretLen characters are
// written: whoever steals both the key file and the database can test guesses
// against a written entry at HMAC speed, which is hopeless against the 256
// random bits of a generated secret but not against a short secret an
// operator chose.
func (r *Registry) Authenticate(ctx context.Context, username string, password []byte) (posfleet.TerminalRef, error) {
	return r.AuthenticateFrom(ctx, username, password, netip.Addr{})
}

// AuthenticateFrom is Authenticate for an attempt from source (an invalid
// Addr when unknown), which bounds the argon2id work spent on failures per
// source and per username: an attempt over either budget (see
// Options.SourceFailuresPerSecond) is refused at once with an error
// wrapping ErrThrottled, without a verification, so that a flood of wrong
// secrets from one place neither takes the CPU nor keeps other terminals
// waiting for a verification slot. A terminal whose credentials are cached
// is let in whatever the budgets say.
func (r *Registry) AuthenticateFrom(ctx context.Context, username string, password []byte, source netip.Addr) (ref posfleet.TerminalRef, err error) {
	ref, err = posfleet.ParseClientID(username)
	if err != nil {
		return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate: %w (%v)", ErrBadCredentials, err)
	}
	// No stored secret can match a password outside these lengths (in
	// bytes, a character being 1-4 of them), so refuse it without hashing:
	// that costs the same for every terminal, revealing nothing, and stops a
	// 64 KiB password from being fed to the hash.
	if len(password) < minSecretLen || len(password) > 4*maxSecretLen {
		return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate %s: %w", ref, ErrBadCredentials)
	}

	mac := r.mac(password)
	r.cacheMu.Lock()
	cached, isCached := r.cache[ref]
	// Read before the stored hash: see cacheEpoch.
	epoch := r.cacheEpoch
	r.cacheMu.Unlock()
	if isCached && subtle.ConstantTimeCompare(cached[:], mac[:]) == 1 {
		return ref, nil
	}
	// A cache miss on a cached terminal is a wrong secret, but answering it
	// fast would tell a prober that the terminal exists and recently
	// connected; take the slow path like everyone else.

	// The budgets apply alike to known and unknown terminals, so that a
	// refusal for being over one tells nothing about existence either.
	now := time.Now()
	failed := false // set when the verification ran and refused
	var src *budgetEntry
	if source.IsValid() {
		var ok bool
		src, ok = r.sources.start(sourceKey(source), now)
		if !ok {
			return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate %s: %w", ref, &throttledError{"source " + sourceKey(source)})
		}
		defer func() { r.sources.done(src, failed, time.Now()) }()
	}
	usr, ok := r.usernames.start(ref.String(), now)
	if !ok {
		return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate %s: %w", ref, &throttledError{"username"})
	}
	defer func() { r.usernames.done(usr, failed, time.Now()) }()

	var hash string
	e, err := r.lookup(ctx, ref)
	if err != nil {
		r.log.Error("authenticate: read terminal", "terminal", ref.String(), "err", err)
		return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate %s: %w", ref, err)
	}
	if e != nil {
		hash = e.hash
	}
	known := hash != ""
	if !known {
		hash = r.dummyHash
	}

	// select picks at random among ready cases; check first so that a
	// caller that has gone never costs a verification.
	if err := ctx.Err(); err != nil {
		return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate %s: %w", ref, err)
	}
	release, err := r.sources.run(ctx, src)
	if err != nil {
		return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate %s: waiting to verify: %w", ref, err)
	}
	select {
	case r.verifySem <- struct{}{}:
	case <-ctx.Done():
		release()
		return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate %s: waiting to verify: %w", ref, ctx.Err())
	}
	r.slowVerifies.Add(1)
	match, err := verifySecret(hash, password)
	<-r.verifySem
	release()
	if err != nil {
		r.log.Error("authenticate: stored secret hash unusable", "terminal", ref.String(), "err", err)
		return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate %s: %w", ref, err)
	}
	if !known || !match {
		failed = true
		return posfleet.TerminalRef{}, fmt.Errorf("registry: authenticate %s: %w", ref, ErrBadCredentials)
	}

	r.cacheMu.Lock()
	// The same epoch check guards the disk: an entry that is not cached
	// after a change is not queued either. (The writer checks the stored
	// hash again in its own transaction, for a change that commits after
	// this point.)
	if r.cacheEpoch == epoch {
		r.cache[ref] = mac
		if r.persist != nil && utf8.RuneCount(password) >= minPersistedSecretLen {
			r.persist.add(ref, pendingEntry{mac: mac, hash: hash})
		}
	}
	r.cacheMu.Unlock()
	return ref, nil
}

func (r *Registry) mac(secret []byte) [macLen]byte {
	h := hmac.New(sha256.New, r.cacheKey)
	h.Write(secret)
	var out [macLen]byte
	h.Sum(out[:0])
	return out
}

// forget drops the cached credentials of terminals whose secret changed and
// moves the epoch on, so that a verification in flight against an old hash
// does not cache (or queue for the disk) its result. Call it after the change
// is committed; the persisted entries must be deleted in the transaction of
// the change itself.
func (r *Registry) forget(refs []posfleet.TerminalRef) {
	if len(refs) == 0 {
		return
	}
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	for _, ref := range refs {
		delete(r.cache, ref)
	}
	r.cacheEpoch++
}
