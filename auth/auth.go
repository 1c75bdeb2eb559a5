// Package auth holds posfleet's users and API tokens: who may read which
// tenant's fleet. A user or a token belongs to one tenant, or to all of
// them (an administrator). Users sign in with a password (bcrypt); scripts
// send a token (Authorization: Bearer …), which is 256 random bits and so
// is stored as a SHA-256 hash.
//
// Everything lives in the control-plane database (store.DB) and is read
// from it on every request: a user disabled or a token revoked through one
// web replica, or by the CLI beside a running server, counts on every
// replica at once.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/bcrypt"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// AllTenants, Principal and User are root-owned values (posfleet.Principal
// and the rest), so that the web side needs them without this store.
const AllTenants = posfleet.AllTenants

type (
	Principal = posfleet.Principal
	User      = posfleet.User
	// Token is a token as listed (no secret).
	Token = posfleet.APIToken
)

// Errors of the store. Errors that name a user or token wrap these, so
// that errors.Is finds them.
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

// maxPasswordLen is bcrypt's limit: it ignores what follows.
const maxPasswordLen = 72

// Options configures a Store.
type Options struct {
	// BcryptCost is the cost of password hashes: about 60 ms per sign-in
	// at 10 on this class of machine, slow enough for offline guessing to be
	// costly, fast enough for people (sign-in is rate-limited anyway).
	BcryptCost int
	Now        func() time.Time
	// Rand is the source of token IDs and secrets, session epochs and the
	// session key; nil means crypto/rand (tests pass a fixed one for
	// answers that do not change between runs).
	Rand io.Reader
	// DataDir is where a previous release kept users.db: New imports it
	// into the database once (see Import). Empty: nothing to import.
	DataDir string
	Logger  *slog.Logger
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options { return Options{BcryptCost: 10} }

// Store keeps users, tokens, signed-out sessions and the session signing
// key in the control-plane database.
type Store struct {
	db   *store.DB
	opts Options
	key  []byte
	// dummy is a hash to compare against for unknown users, so that a
	// sign-in for a name that does not exist takes as long as a wrong password.
	dummy []byte
}

// settingSessionKey names the session signing key in the settings table.
const settingSessionKey = "session_key"

// New returns the store over db (migrated: store.Open), importing a
// previous release's users.db from opts.DataDir first, and making the
// session key if the database has none yet. Two processes starting at
// once end up with the same key. db stays the caller's to close.
func New(ctx context.Context, db *store.DB, opts Options) (*Store, error) {
	if opts.BcryptCost == 0 {
		opts.BcryptCost = DefaultOptions().BcryptCost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{db: db, opts: opts}
	if opts.DataDir != "" {
		if _, err := Import(ctx, db, opts.DataDir, opts.Logger); err != nil {
			return nil, err
		}
	}
	key, err := s.random(32)
	if err != nil {
		return nil, err
	}
	// Made once: whoever inserts first wins, everyone reads the winner's.
	if _, err := db.ExecContext(ctx, `INSERT INTO settings (name, value, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		settingSessionKey, key, store.Millis(opts.Now())); err != nil {
		return nil, fmt.Errorf("auth: session key: %w", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, settingSessionKey).Scan(&s.key); err != nil {
		return nil, fmt.Errorf("auth: session key: %w", err)
	}
	pw, err := s.random(16)
	if err != nil {
		return nil, err
	}
	if s.dummy, err = bcrypt.GenerateFromPassword(pw, opts.BcryptCost); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return s, nil
}

// Close does nothing: the database is the caller's. It is kept so that
// callers treat the store as a resource.
func (s *Store) Close() error { return nil }

func (s *Store) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.opts.Rand, b); err != nil {
		return nil, fmt.Errorf("auth: random: %w", err)
	}
	return b, nil
}

func invalid(code, format string, args ...any) error {
	return posfleet.Errorf(posfleet.Invalid, code, format, args...)
}

func validTenant(t string) error {
	if t == AllTenants || posfleet.ValidID(t) {
		return nil
	}
	return invalid("bad_tenant", "tenant %q: want a tenant ID or %q for all tenants", t, AllTenants)
}

func validName(n string) error {
	if n == "" || len(n) > 128 || strings.ContainsAny(n, " \t\r\n:") || strings.IndexFunc(n, unicode.IsControl) >= 0 {
		return invalid("bad_name", "name %q: want 1-128 characters without spaces or colons", n)
	}
	return nil
}

func validPassword(pw string) error {
	switch {
	case len(pw) < MinPasswordLen:
		return invalid("weak_password", "password: want at least %d characters", MinPasswordLen)
	case len(pw) > maxPasswordLen:
		return invalid("bad_password", "password: at most %d bytes (bcrypt's limit)", maxPasswordLen)
	}
	return nil
}

func userNotFound(name string) error {
	return &posfleet.Error{Kind: posfleet.NotFound, Code: "not_found", Message: fmt.Sprintf("no user %q", name), Err: ErrNotFound}
}

// AddUser creates a user of tenant (or AllTenants) with a password.
func (s *Store) AddUser(ctx context.Context, name, tenant, password string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := validTenant(tenant); err != nil {
		return err
	}
	if err := validPassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("auth: hash: %w", err)
	}
	// A random first epoch: a user removed and added again under the same
	// name does not take over the old user's sessions.
	e, err := s.random(8)
	if err != nil {
		return err
	}
	epoch := int64(binary.BigEndian.Uint64(e) >> 1)
	res, err := s.db.ExecContext(ctx, `INSERT INTO users (name, tenant, hash, created_ms, epoch, disabled) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
		name, tenant, hash, store.Millis(s.opts.Now()), epoch, false)
	if err != nil {
		return fmt.Errorf("auth: add user %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("auth: add user %q: %w", name, err)
	} else if n == 0 {
		return &posfleet.Error{Kind: posfleet.Conflict, Code: "exists", Message: fmt.Sprintf("user %q already exists", name), Err: ErrExists}
	}
	return nil
}

// SetPassword replaces a user's password; the user's sessions end.
func (s *Store) SetPassword(ctx context.Context, name, password string) error {
	if err := validPassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return fmt.Errorf("auth: hash: %w", err)
	}
	return s.updateUser(ctx, name, `UPDATE users SET hash = $2, epoch = epoch + 1 WHERE name = $1`, hash)
}

// updateUser runs an UPDATE of one user ($1 is the name).
func (s *Store) updateUser(ctx context.Context, name, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, query, append([]any{name}, args...)...)
	if err != nil {
		return fmt.Errorf("auth: update user %q: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("auth: update user %q: %w", name, err)
	}
	if n == 0 {
		return userNotFound(name)
	}
	return nil
}

// SetDisabled disables a user (it can no longer sign in, and its sessions
// end at once) or enables it again.
func (s *Store) SetDisabled(ctx context.Context, name string, disabled bool) error {
	if disabled {
		return s.updateUser(ctx, name, `UPDATE users SET epoch = CASE WHEN disabled THEN epoch ELSE epoch + 1 END, disabled = $2 WHERE name = $1`, true)
	}
	return s.updateUser(ctx, name, `UPDATE users SET disabled = $2 WHERE name = $1`, false)
}

// DeleteUser removes a user; its sessions end at once, since
// CheckSession finds no user.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.updateUser(ctx, name, `DELETE FROM users WHERE name = $1`)
}

// UserExists reports whether name is a user (enabled or not).
func (s *Store) UserExists(ctx context.Context, name string) bool {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = $1`, name).Scan(&one) == nil
}

// CheckSession reports whether a session of name, signed in at epoch and
// known by id, still counts: the user exists, is enabled, is at the same
// epoch, and the session was not signed out. ErrSessionEnded when not.
func (s *Store) CheckSession(ctx context.Context, name string, epoch uint64, id string) error {
	if id == "" {
		return ErrSessionEnded
	}
	var (
		cur      int64
		disabled bool
		ended    bool
	)
	err := s.db.QueryRowContext(ctx, `SELECT epoch, disabled, EXISTS (SELECT 1 FROM ended_sessions WHERE id = $2) FROM users WHERE name = $1`, name, id).
		Scan(&cur, &disabled, &ended)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrSessionEnded
	}
	if err != nil {
		return fmt.Errorf("auth: read session: %w", err)
	}
	if ended || disabled || uint64(cur) != epoch {
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
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM ended_sessions WHERE expires_ms < $1`, store.Millis(s.opts.Now())); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO ended_sessions (id, expires_ms) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET expires_ms = excluded.expires_ms`,
			id, store.Millis(expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("auth: end session: %w", err)
	}
	return nil
}

// SignIn checks a user's password. An unknown user costs as much as a
// wrong password and gets the same error.
func (s *Store) SignIn(ctx context.Context, name, password string) (Principal, error) {
	var (
		tenant   string
		hash     []byte
		epoch    int64
		disabled bool
	)
	err := s.db.QueryRowContext(ctx, `SELECT tenant, hash, epoch, disabled FROM users WHERE name = $1`, name).Scan(&tenant, &hash, &epoch, &disabled)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Principal{}, fmt.Errorf("auth: read user: %w", err)
	}
	if !found {
		hash = s.dummy
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !found || disabled {
		return Principal{}, ErrBadCredentials
	}
	return Principal{Name: name, Tenant: tenant, Epoch: uint64(epoch)}, nil
}

// Users lists the users by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, tenant, created_ms, disabled FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		var (
			u  User
			ms int64
		)
		if err := rows.Scan(&u.Name, &u.Tenant, &ms, &u.Disabled); err != nil {
			return nil, fmt.Errorf("auth: list users: %w", err)
		}
		u.Created = store.Time(ms)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	return out, nil
}

// tokenPrefix marks posfleet tokens, so that secret scanners can find one
// pasted where it should not be.
const tokenPrefix = "pft_"

// maxDescription bounds a token's description.
const maxDescription = 256

// CreateToken makes an API token for tenant (or AllTenants) and returns it;
// it is shown once and stored only as a hash.
func (s *Store) CreateToken(ctx context.Context, name, tenant string) (string, error) {
	secret, _, err := s.NewToken(ctx, Token{Name: name, Tenant: tenant})
	return secret, err
}

// NewToken makes an API token from spec's Name, Description, Tenant and
// CreatedBy, and returns its secret (shown once, stored only as a hash)
// and the token as listed.
func (s *Store) NewToken(ctx context.Context, spec Token) (string, Token, error) {
	if err := validName(spec.Name); err != nil {
		return "", Token{}, err
	}
	if err := validTenant(spec.Tenant); err != nil {
		return "", Token{}, err
	}
	if len(spec.Description) > maxDescription || strings.IndexFunc(spec.Description, unicode.IsControl) >= 0 {
		return "", Token{}, invalid("bad_description", "description: at most %d characters on one line", maxDescription)
	}
	b, err := s.random(8 + 32)
	if err != nil {
		return "", Token{}, err
	}
	tok := Token{
		ID:          hex.EncodeToString(b[:8]), // hex: no "_", which separates id and secret
		Name:        spec.Name,
		Description: spec.Description,
		Tenant:      spec.Tenant,
		CreatedBy:   spec.CreatedBy,
		Created:     store.Time(store.Millis(s.opts.Now())),
	}
	secret := base64.RawURLEncoding.EncodeToString(b[8:])
	sum := sha256.Sum256([]byte(secret))
	if _, err := s.db.ExecContext(ctx, `INSERT INTO api_tokens (id, name, description, tenant, hash, created_ms, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		tok.ID, tok.Name, tok.Description, tok.Tenant, sum[:], store.Millis(tok.Created), tok.CreatedBy); err != nil {
		return "", Token{}, fmt.Errorf("auth: save token: %w", err)
	}
	return tokenPrefix + tok.ID + "_" + secret, tok, nil
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
	var (
		name, tenant string
		hash         []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT name, tenant, hash FROM api_tokens WHERE id = $1`, id).Scan(&name, &tenant, &hash)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Principal{}, fmt.Errorf("auth: read token: %w", err)
	}
	sum := sha256.Sum256([]byte(secret))
	if !found || subtle.ConstantTimeCompare(sum[:], hash) != 1 {
		return Principal{}, ErrBadToken
	}
	return Principal{Name: name, Tenant: tenant, Token: true}, nil
}

// Tokens lists the tokens, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, description, tenant, created_by, created_ms FROM api_tokens ORDER BY created_ms, id`)
	if err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		var (
			t  Token
			ms int64
		)
		if err := rows.Scan(&t.ID, &t.Name, &t.Description, &t.Tenant, &t.CreatedBy, &ms); err != nil {
			return nil, fmt.Errorf("auth: list tokens: %w", err)
		}
		t.Created = store.Time(ms)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken deletes a token by its ID: it stops working at once.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM api_tokens WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("auth: revoke token %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("auth: revoke token %q: %w", id, err)
	}
	if n == 0 {
		return &posfleet.Error{Kind: posfleet.NotFound, Code: "not_found", Message: fmt.Sprintf("no token %q", id), Err: ErrNotFound}
	}
	return nil
}

// SessionKey returns the key that signs session cookies: made once in the
// database and shared by every process, so sessions survive a restart and
// count on every replica.
func (s *Store) SessionKey() ([]byte, error) {
	return append([]byte(nil), s.key...), nil
}
