// Package auth holds posfleet's users and API tokens: who may read which
// tenant's fleet. A user or a token belongs to one tenant, or to all of
// them (an administrator). Users sign in with a password (bcrypt); scripts
// send a token (Authorization: Bearer …), which is 256 random bits and so
// is stored as a SHA-256 hash.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/posfleet/posfleet"
)

// AllTenants, Principal and User are root-owned values (posfleet.Principal
// and the rest), so that the web side needs them without this store.
const AllTenants = posfleet.AllTenants

type (
	Principal = posfleet.Principal
	User      = posfleet.User
)

// Errors of the store.
var (
	ErrBadCredentials = posfleet.KindError(posfleet.Unauthorized, "auth: bad name or password")
	ErrBadToken       = posfleet.KindError(posfleet.Unauthorized, "auth: unknown or revoked token")
	ErrExists         = posfleet.KindError(posfleet.Conflict, "auth: already exists")
	ErrNotFound       = posfleet.KindError(posfleet.NotFound, "auth: not found")
	// ErrSessionEnded is a session cookie that no longer counts: signed
	// out, or its user's password changed, disabled or removed since.
	ErrSessionEnded = posfleet.KindError(posfleet.Unauthorized, "auth: session ended")
)

// MinPasswordLen is the shortest password a user may have.
const MinPasswordLen = 12

// Options configures a Store.
type Options struct {
	// BcryptCost is the cost of password hashes: about 60 ms per sign-in
	// at 10 on this class of machine, slow enough for offline guessing to be
	// costly, fast enough for people (sign-in is rate-limited anyway).
	BcryptCost int
	Now        func() time.Time
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options { return Options{BcryptCost: 10} }

// Store keeps users, tokens and the session signing key in a bbolt file.
type Store struct {
	db   *bolt.DB
	opts Options
	// dummy is a hash to compare against for unknown users, so that a
	// sign-in for a name that does not exist takes as long as a wrong password.
	dummy []byte
}

var (
	bucketUsers  = []byte("users")
	bucketTokens = []byte("tokens")
	bucketMeta   = []byte("meta")
	keySession   = []byte("session-key")
	// bucketEnded holds the IDs of signed-out sessions until the time
	// their cookie would have expired anyway.
	bucketEnded = []byte("ended-sessions")
)

type userRecord struct {
	Name    string    `json:"name"`
	Tenant  string    `json:"tenant"`
	Hash    []byte    `json:"hash"`
	Created time.Time `json:"created"`
	// Epoch is the session generation: sessions signed in at another epoch
	// are over.
	Epoch    uint64 `json:"epoch,omitempty"`
	Disabled bool   `json:"disabled,omitempty"`
}

type tokenRecord struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Tenant  string    `json:"tenant"`
	Hash    []byte    `json:"hash"` // SHA-256 of the secret part
	Created time.Time `json:"created"`
}

// Open opens (or creates) the store at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.BcryptCost == 0 {
		opts.BcryptCost = DefaultOptions().BcryptCost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("auth: %s is in use by another posfleet process", path)
		}
		return nil, fmt.Errorf("auth: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsers, bucketTokens, bucketMeta, bucketEnded} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keySession) == nil {
			return meta.Put(keySession, random(32))
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("auth: init %s: %w", path, err)
	}
	dummy, err := bcrypt.GenerateFromPassword(random(16), opts.BcryptCost)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Store{db: db, opts: opts, dummy: dummy}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func random(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return b
}

func validTenant(t string) error {
	if t == AllTenants || posfleet.ValidID(t) {
		return nil
	}
	return fmt.Errorf("auth: tenant %q: want a tenant ID or %q for all tenants", t, AllTenants)
}

func validName(n string) error {
	if n == "" || len(n) > 128 || strings.ContainsAny(n, " \t\r\n:") {
		return fmt.Errorf("auth: name %q: want 1-128 characters without spaces or colons", n)
	}
	return nil
}

// AddUser creates a user of tenant (or AllTenants) with a password.
func (s *Store) AddUser(ctx context.Context, name, tenant, password string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := validTenant(tenant); err != nil {
		return err
	}
	if len(password) < MinPasswordLen {
		return fmt.Errorf("auth: password: want at least %d characters", MinPasswordLen)
	}
	if len(password) > 72 {
		return errors.New("auth: password: at most 72 bytes (bcrypt's limit)")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("auth: hash: %w", err)
	}
	// A random first epoch: a user removed and added again under the same
	// name does not take over the old user's sessions.
	rec := userRecord{Name: name, Tenant: tenant, Hash: hash, Created: s.opts.Now().UTC(), Epoch: binary.BigEndian.Uint64(random(8)) >> 1}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("auth: user %q: %w", name, ErrExists)
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), v)
	})
}

// SetPassword replaces a user's password.
func (s *Store) SetPassword(ctx context.Context, name, password string) error {
	if len(password) < MinPasswordLen || len(password) > 72 {
		return fmt.Errorf("auth: password: want %d to 72 characters", MinPasswordLen)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("auth: hash: %w", err)
	}
	return s.updateUser(name, func(rec *userRecord) { rec.Hash = hash; rec.Epoch++ })
}

// updateUser changes a user's record in one transaction.
func (s *Store) updateUser(name string, change func(*userRecord)) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		v := b.Get([]byte(name))
		if v == nil {
			return fmt.Errorf("auth: user %q: %w", name, ErrNotFound)
		}
		var rec userRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		change(&rec)
		nv, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), nv)
	})
}

// SetDisabled disables a user (it can no longer sign in, and its sessions
// end at once) or enables it again.
func (s *Store) SetDisabled(ctx context.Context, name string, disabled bool) error {
	return s.updateUser(name, func(rec *userRecord) {
		if disabled && !rec.Disabled {
			rec.Epoch++
		}
		rec.Disabled = disabled
	})
}

// DeleteUser removes a user; its sessions end at once, since
// CheckSession finds no user.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("auth: user %q: %w", name, ErrNotFound)
		}
		return b.Delete([]byte(name))
	})
}

// UserExists reports whether name is a user (enabled or not).
func (s *Store) UserExists(ctx context.Context, name string) bool {
	found := false
	s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketUsers).Get([]byte(name)) != nil
		return nil
	})
	return found
}

// CheckSession reports whether a session of name, signed in at epoch and
// known by id, still counts: the user exists, is enabled, is at the same
// epoch, and the session was not signed out. ErrSessionEnded when not.
func (s *Store) CheckSession(ctx context.Context, name string, epoch uint64, id string) error {
	if id == "" {
		return ErrSessionEnded
	}
	ended := false
	var rec userRecord
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		ended = tx.Bucket(bucketEnded).Get([]byte(id)) != nil
		v := tx.Bucket(bucketUsers).Get([]byte(name))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return fmt.Errorf("auth: read session: %w", err)
	}
	if ended || !found || rec.Disabled || rec.Epoch != epoch {
		return ErrSessionEnded
	}
	return nil
}

// EndSession records that the session id was signed out; it is kept until
// expires, when the cookie would no longer count anyway. Expired entries
// are dropped on the way.
func (s *Store) EndSession(ctx context.Context, id string, expires time.Time) error {
	if id == "" {
		return nil
	}
	now := s.opts.Now().Unix()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEnded)
		var old [][]byte
		b.ForEach(func(k, v []byte) error {
			if len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < now {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return b.Put([]byte(id), binary.BigEndian.AppendUint64(nil, uint64(expires.Unix())))
	})
	if err != nil {
		return fmt.Errorf("auth: end session: %w", err)
	}
	return nil
}

// SignIn checks a user's password. An unknown user costs as much as a
// wrong password and gets the same error.
func (s *Store) SignIn(ctx context.Context, name, password string) (Principal, error) {
	var rec userRecord
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketUsers).Get([]byte(name))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return Principal{}, fmt.Errorf("auth: read user: %w", err)
	}
	hash := s.dummy
	if found {
		hash = rec.Hash
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !found || rec.Disabled {
		return Principal{}, ErrBadCredentials
	}
	return Principal{Name: rec.Name, Tenant: rec.Tenant, Epoch: rec.Epoch}, nil
}

// Users lists the users.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	out := []User{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(_, v []byte) error {
			var rec userRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, User{Name: rec.Name, Tenant: rec.Tenant, Created: rec.Created, Disabled: rec.Disabled})
			return nil
		})
	})
	return out, err
}

// tokenPrefix marks posfleet tokens, so that secret scanners can find one
// pasted where it should not be.
const tokenPrefix = "pft_"

// CreateToken makes an API token for tenant (or AllTenants) and returns it;
// it is shown once and stored only as a hash.
func (s *Store) CreateToken(ctx context.Context, name, tenant string) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	if err := validTenant(tenant); err != nil {
		return "", err
	}
	id := hex.EncodeToString(random(8)) // hex: no "_", which separates id and secret
	secret := base64.RawURLEncoding.EncodeToString(random(32))
	sum := sha256.Sum256([]byte(secret))
	rec := tokenRecord{ID: id, Name: name, Tenant: tenant, Hash: sum[:], Created: s.opts.Now().UTC()}
	err := s.db.Update(func(tx *bolt.Tx) error {
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketTokens).Put([]byte(id), v)
	})
	if err != nil {
		return "", fmt.Errorf("auth: save token: %w", err)
	}
	return tokenPrefix + id + "_" + secret, nil
}

// VerifyToken returns the principal of a token.
func (s *Store) VerifyToken(ctx context.Context, token string) (Principal, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return Principal{}, ErrBadToken
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" {
		return Principal{}, ErrBadToken
	}
	var rec tokenRecord
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return Principal{}, fmt.Errorf("auth: read token: %w", err)
	}
	sum := sha256.Sum256([]byte(secret))
	if !found || subtle.ConstantTimeCompare(sum[:], rec.Hash) != 1 {
		return Principal{}, ErrBadToken
	}
	return Principal{Name: rec.Name, Tenant: rec.Tenant, Token: true}, nil
}

// Token is a token as listed (no secret).
type Token struct {
	ID, Name, Tenant string
	Created          time.Time
}

// Tokens lists the tokens.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	var out []Token
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(_, v []byte) error {
			var rec tokenRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, Token{ID: rec.ID, Name: rec.Name, Tenant: rec.Tenant, Created: rec.Created})
			return nil
		})
	})
	return out, err
}

// RevokeToken deletes a token by its ID.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("auth: token %q: %w", id, ErrNotFound)
		}
		return b.Delete([]byte(id))
	})
}

// SessionKey returns the key that signs session cookies; it is made once
// and kept, so sessions survive a restart.
func (s *Store) SessionKey() ([]byte, error) {
	var key []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		key = append([]byte(nil), tx.Bucket(bucketMeta).Get(keySession)...)
		return nil
	})
	return key, err
}
