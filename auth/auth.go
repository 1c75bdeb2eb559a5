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
	"cmp"
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
	"github.com/posfleet/posfleet/locale"
	"io"
	"log/slog"
	"slices"
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

// AddUser creates a user of tenant (or AllTenants) with a password and no
// role recorded: an administrator of AllTenants, an operator of a tenant
// (posfleet.Principal.EffectiveRole).
func (s *Store) AddUser(ctx context.Context, name, tenant, password string) error {
	return s.NewUser(ctx, User{Name: name, Tenant: tenant}, password)
}

// ValidRole checks a role and regions for a user of tenant: a known role
// (or "" for the rule of users stored before roles), an administrator only
// of AllTenants, a tenant administrator and a crew only of one tenant,
// regions for a crew (at least one) and nobody else.
func ValidRole(tenant string, role posfleet.Role, regions []string) error {
	switch {
	case role != "" && !role.Valid():
		return invalid("bad_role", "role %q: want one of administrator, tenant_admin, operator, crew, viewer", role)
	case role == posfleet.RoleAdministrator && tenant != AllTenants:
		return invalid("bad_role", "an administrator sees every tenant: its tenant is %q", AllTenants)
	case (role == posfleet.RoleTenantAdmin || role == posfleet.RoleCrew) && tenant == AllTenants:
		return invalid("bad_role", "a %s belongs to one tenant, not %q", role, AllTenants)
	case role == posfleet.RoleCrew && len(regions) == 0:
		return invalid("bad_regions", "a crew needs at least one region")
	case role != posfleet.RoleCrew && len(regions) > 0:
		return invalid("bad_regions", "only a crew has regions")
	}
	for _, r := range regions {
		if len(r) > 128 || strings.ContainsAny(r, ",") || strings.IndexFunc(r, unicode.IsControl) >= 0 {
			return invalid("bad_regions", "region %q: want at most 128 characters without commas", r)
		}
	}
	return nil
}

// NewUser creates u (Name, Tenant, Role, Regions) with a password.
func (s *Store) NewUser(ctx context.Context, u User, password string) error {
	name, tenant := u.Name, u.Tenant
	if err := validName(name); err != nil {
		return err
	}
	if err := validTenant(tenant); err != nil {
		return err
	}
	if err := ValidRole(tenant, u.Role, u.Regions); err != nil {
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
	res, err := s.db.ExecContext(ctx, `INSERT INTO users (name, tenant, hash, created_ms, epoch, disabled, role, regions) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING`,
		name, tenant, hash, store.Millis(s.opts.Now()), epoch, false, string(u.Role), strings.Join(u.Regions, ","))
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

// User returns one user as listed.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	var (
		u       User
		ms      int64
		role    string
		regions string
	)
	err := s.db.QueryRowContext(ctx, `SELECT name, tenant, created_ms, disabled, role, regions, language, time_zone FROM users WHERE name = $1`, name).
		Scan(&u.Name, &u.Tenant, &ms, &u.Disabled, &role, &regions, &u.Language, &u.TimeZone)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, userNotFound(name)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: read user %q: %w", name, err)
	}
	u.Created, u.Role, u.Regions = store.Time(ms), posfleet.Role(role), posfleet.SplitList(regions)
	return u, nil
}

// SetRole changes a user's role and regions; it counts at the user's next
// request (a session reads the role from the database every time).
func (s *Store) SetRole(ctx context.Context, name string, role posfleet.Role, regions []string) error {
	u, err := s.User(ctx, name)
	if err != nil {
		return err
	}
	if err := ValidRole(u.Tenant, role, regions); err != nil {
		return err
	}
	return s.updateUser(ctx, name, `UPDATE users SET role = $2, regions = $3 WHERE name = $1`, string(role), strings.Join(regions, ","))
}

// ValidPreferences checks a language ("" or one of locale.Languages) and a
// time zone ("" or an IANA name).
func ValidPreferences(lang, zone string) error {
	if lang != "" && !locale.Supported(lang) {
		return invalid("bad_language", "language %q: want one of %s", lang, strings.Join(locale.Languages, ", "))
	}
	if zone != "" {
		if _, err := time.LoadLocation(zone); err != nil || zone == "Local" || len(zone) > 64 {
			return invalid("bad_time_zone", "time zone %q: want an IANA name such as Asia/Shanghai or UTC", zone)
		}
	}
	return nil
}

// SetPreferences sets a user's language and time zone ("" for the
// browser's language, the tenant's zone); it counts at the next request.
func (s *Store) SetPreferences(ctx context.Context, name, lang, zone string) error {
	if err := ValidPreferences(lang, zone); err != nil {
		return err
	}
	return s.updateUser(ctx, name, `UPDATE users SET language = $2, time_zone = $3 WHERE name = $1`, lang, zone)
}

// TenantSettings are a tenant's defaults for its users and its mail.
type TenantSettings = posfleet.TenantSettings

// TenantDefaults is a tenant's defaults ("" for none set).
func (s *Store) TenantDefaults(ctx context.Context, tenant string) (TenantSettings, error) {
	ts := TenantSettings{Tenant: tenant}
	err := s.db.QueryRowContext(ctx, `SELECT language, time_zone FROM tenant_settings WHERE tenant = $1`, tenant).Scan(&ts.Language, &ts.TimeZone)
	if errors.Is(err, sql.ErrNoRows) {
		return ts, nil
	}
	if err != nil {
		return ts, fmt.Errorf("auth: read tenant settings: %w", err)
	}
	return ts, nil
}

// SetTenantDefaults sets a tenant's default language and time zone.
func (s *Store) SetTenantDefaults(ctx context.Context, ts TenantSettings) error {
	if ts.Tenant == "" || ts.Tenant == posfleet.AllTenants {
		return invalid("bad_tenant", "defaults are set for one tenant")
	}
	if err := ValidPreferences(ts.Language, ts.TimeZone); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO tenant_settings (tenant, language, time_zone) VALUES ($1, $2, $3)
ON CONFLICT (tenant) DO UPDATE SET language = excluded.language, time_zone = excluded.time_zone`, ts.Tenant, ts.Language, ts.TimeZone)
	if err != nil {
		return fmt.Errorf("auth: set tenant settings: %w", err)
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
	_, err := s.Session(ctx, name, epoch, id)
	return err
}

// Session is CheckSession that also returns the user as it is now: its
// tenant, role and regions, so that a role changed counts at once.
func (s *Store) Session(ctx context.Context, name string, epoch uint64, id string) (Principal, error) {
	if id == "" {
		return Principal{}, ErrSessionEnded
	}
	var (
		cur           int64
		disabled      bool
		ended         bool
		tenant        string
		role, regions string
		lang, zone    string
		tlang, tzone  string
	)
	err := s.db.QueryRowContext(ctx, `SELECT u.epoch, u.disabled, EXISTS (SELECT 1 FROM ended_sessions WHERE id = $2), u.tenant, u.role, u.regions, u.language, u.time_zone, COALESCE(ts.language, ''), COALESCE(ts.time_zone, '') FROM users u LEFT JOIN tenant_settings ts ON ts.tenant = u.tenant WHERE u.name = $1`, name, id).
		Scan(&cur, &disabled, &ended, &tenant, &role, &regions, &lang, &zone, &tlang, &tzone)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, ErrSessionEnded
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: read session: %w", err)
	}
	if ended || disabled || uint64(cur) != epoch {
		return Principal{}, ErrSessionEnded
	}
	return Principal{Name: name, Tenant: tenant, Epoch: epoch, Role: posfleet.Role(role), Regions: posfleet.SplitList(regions),
		Language: cmp.Or(lang, tlang), TimeZone: cmp.Or(zone, tzone)}, nil
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
		role     string
		regions  string
	)
	err := s.db.QueryRowContext(ctx, `SELECT tenant, hash, epoch, disabled, role, regions FROM users WHERE name = $1`, name).Scan(&tenant, &hash, &epoch, &disabled, &role, &regions)
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
	return Principal{Name: name, Tenant: tenant, Epoch: uint64(epoch), Role: posfleet.Role(role), Regions: posfleet.SplitList(regions)}, nil
}

// Users lists the users by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, tenant, created_ms, disabled, role, regions, language, time_zone FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		var (
			u             User
			ms            int64
			role, regions string
		)
		if err := rows.Scan(&u.Name, &u.Tenant, &ms, &u.Disabled, &role, &regions, &u.Language, &u.TimeZone); err != nil {
			return nil, fmt.Errorf("auth: list users: %w", err)
		}
		u.Created, u.Role, u.Regions = store.Time(ms), posfleet.Role(role), posfleet.SplitList(regions)
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

// NewToken makes an API token from spec's Name, Description, Tenant,
// CreatedBy and Scopes (none: every scope), and returns its secret (shown
// once, stored only as a hash) and the token as listed.
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
	if err := ValidScopes(spec.Scopes); err != nil {
		return "", Token{}, err
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
		Scopes:      spec.Scopes,
	}
	secret := base64.RawURLEncoding.EncodeToString(b[8:])
	sum := sha256.Sum256([]byte(secret))
	if _, err := s.db.ExecContext(ctx, `INSERT INTO api_tokens (id, name, description, tenant, hash, created_ms, created_by, scopes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		tok.ID, tok.Name, tok.Description, tok.Tenant, sum[:], store.Millis(tok.Created), tok.CreatedBy, strings.Join(tok.Scopes, ",")); err != nil {
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
		name, tenant, scopes string
		hash                 []byte
		role, regions        sql.NullString
	)
	// The token acts with its creator's role as it is now (a user demoted
	// takes its tokens down with it); a token of nobody known (made by the
	// CLI, or its creator since removed) has the role of a user of its
	// tenant stored before roles.
	err := s.db.QueryRowContext(ctx, `SELECT t.name, t.tenant, t.hash, t.scopes, u.role, u.regions FROM api_tokens t LEFT JOIN users u ON u.name = t.created_by AND u.tenant = t.tenant WHERE t.id = $1`, id).
		Scan(&name, &tenant, &hash, &scopes, &role, &regions)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Principal{}, fmt.Errorf("auth: read token: %w", err)
	}
	sum := sha256.Sum256([]byte(secret))
	if !found || subtle.ConstantTimeCompare(sum[:], hash) != 1 {
		return Principal{}, ErrBadToken
	}
	return Principal{Name: name, Tenant: tenant, Token: true, Role: posfleet.Role(role.String),
		Regions: posfleet.SplitList(regions.String), Scopes: posfleet.SplitList(scopes)}, nil
}

// Tokens lists the tokens, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, description, tenant, created_by, created_ms, scopes FROM api_tokens ORDER BY created_ms, id`)
	if err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		var (
			t      Token
			ms     int64
			scopes string
		)
		if err := rows.Scan(&t.ID, &t.Name, &t.Description, &t.Tenant, &t.CreatedBy, &ms, &scopes); err != nil {
			return nil, fmt.Errorf("auth: list tokens: %w", err)
		}
		t.Created, t.Scopes = store.Time(ms), posfleet.SplitList(scopes)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	return out, nil
}

// ValidScopes checks a token's scopes: each one of posfleet.Scopes, once.
func ValidScopes(scopes []string) error {
	seen := map[string]bool{}
	for _, sc := range scopes {
		if !slices.Contains(posfleet.Scopes, sc) || seen[sc] {
			return invalid("bad_scopes", "scope %q: want each of read, act, provision, admin at most once", sc)
		}
		seen[sc] = true
	}
	return nil
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
