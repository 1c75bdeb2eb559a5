package auth

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posfleet/posfleet/store"
)

// LegacyFile is the bbolt file in which releases before the SQL store kept
// users, tokens, signed-out sessions and the session key.
const LegacyFile = "users.db"

// settingImported marks the database as holding the import of a users.db.
const settingImported = "users_imported"

// Imported is what Import copied.
type Imported struct {
	File                         string
	Users, Tokens, EndedSessions int
	SessionKey                   bool
}

// Import copies the users.db of a previous release in dataDir into db, in
// one transaction, and renames the file to users.db.imported: users keep
// their password hashes (and sign in as before), tokens their hashes (and
// keep working), signed-out sessions stay signed out, and the session key
// is kept when the database has none yet (sessions survive the upgrade).
// It does nothing when there is no users.db, and leaves the file alone
// (with a warning) when the database already holds an import: of this
// file by another process that started at the same time, or of another
// replica's. A users.db still locked by a running older release is an error.
func Import(ctx context.Context, db *store.DB, dataDir string, log *slog.Logger) (Imported, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dataDir, LegacyFile)
	out := Imported{File: path}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return out, nil
	} else if err != nil {
		return out, fmt.Errorf("auth: import %s: %w", path, err)
	}
	var marker []byte
	err := db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, settingImported).Scan(&marker)
	if err == nil {
		log.Warn("users.db not imported: the database already holds an import of users; move the file away to silence this", "file", path, "import", string(marker))
		return out, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return out, fmt.Errorf("auth: import %s: %w", path, err)
	}
	old, err := readLegacy(path)
	if err != nil {
		return out, err
	}
	now := time.Now()
	done := false
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		mark, _ := json.Marshal(map[string]any{"file": path, "users": len(old.users), "tokens": len(old.tokens), "at": now.UTC()})
		res, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`, settingImported, mark, store.Millis(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // another process imported meanwhile
		}
		done = true
		for _, u := range old.users {
			res, err := tx.ExecContext(ctx, `INSERT INTO users (name, tenant, hash, created_ms, epoch, disabled) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
				u.Name, u.Tenant, u.Hash, store.Millis(u.Created), int64(u.Epoch), u.Disabled) // epoch bit for bit: cookies carry it
			if err != nil {
				return fmt.Errorf("user %q: %w", u.Name, err)
			}
			out.Users += rowsAffected(res)
		}
		for _, t := range old.tokens {
			res, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (id, name, description, tenant, hash, created_ms, created_by) VALUES ($1, $2, '', $3, $4, $5, '') ON CONFLICT (id) DO NOTHING`,
				t.ID, t.Name, t.Tenant, t.Hash, store.Millis(t.Created))
			if err != nil {
				return fmt.Errorf("token %q: %w", t.ID, err)
			}
			out.Tokens += rowsAffected(res)
		}
		for id, exp := range old.ended {
			if exp.Before(now) {
				continue
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO ended_sessions (id, expires_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, store.Millis(exp))
			if err != nil {
				return fmt.Errorf("ended session: %w", err)
			}
			out.EndedSessions += rowsAffected(res)
		}
		if len(old.sessionKey) >= 16 {
			res, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`, settingSessionKey, old.sessionKey, store.Millis(now))
			if err != nil {
				return fmt.Errorf("session key: %w", err)
			}
			out.SessionKey = rowsAffected(res) == 1
		}
		return nil
	})
	if err != nil {
		return Imported{File: path}, fmt.Errorf("auth: import %s: %w", path, err)
	}
	if !done {
		log.Warn("users.db not imported: another process imported users meanwhile", "file", path)
		return Imported{File: path}, nil
	}
	if err := os.Rename(path, path+".imported"); err != nil {
		// Imported all the same; the marker keeps it from happening twice.
		log.Warn("users.db imported but not renamed", "file", path, "err", err)
	}
	log.Info("users.db of the previous release imported into the database", "file", path, "users", out.Users, "tokens", out.Tokens,
		"ended_sessions", out.EndedSessions, "session_key", out.SessionKey, "renamed_to", path+".imported")
	return out, nil
}

func rowsAffected(res sql.Result) int {
	n, _ := res.RowsAffected()
	return int(n)
}

// legacy is the content of a previous release's users.db.
type legacy struct {
	users      []legacyUser
	tokens     []legacyToken
	ended      map[string]time.Time
	sessionKey []byte
}

// legacyUser and legacyToken are the JSON records of the previous release.
type legacyUser struct {
	Name     string    `json:"name"`
	Tenant   string    `json:"tenant"`
	Hash     []byte    `json:"hash"`
	Created  time.Time `json:"created"`
	Epoch    uint64    `json:"epoch,omitempty"`
	Disabled bool      `json:"disabled,omitempty"`
}

type legacyToken struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Tenant  string    `json:"tenant"`
	Hash    []byte    `json:"hash"`
	Created time.Time `json:"created"`
}

// readLegacy reads a previous release's users.db, read-only.
func readLegacy(path string) (legacy, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return legacy{}, fmt.Errorf("auth: import %s: the file is in use (is a posfleet of the previous release still running?)", path)
		}
		return legacy{}, fmt.Errorf("auth: import %s: %w", path, err)
	}
	defer db.Close()
	out := legacy{ended: map[string]time.Time{}}
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("users")); b != nil {
			if err := b.ForEach(func(k, v []byte) error {
				var u legacyUser
				if err := json.Unmarshal(v, &u); err != nil {
					return fmt.Errorf("user %q: %w", k, err)
				}
				out.users = append(out.users, u)
				return nil
			}); err != nil {
				return err
			}
		}
		if b := tx.Bucket([]byte("tokens")); b != nil {
			if err := b.ForEach(func(k, v []byte) error {
				var t legacyToken
				if err := json.Unmarshal(v, &t); err != nil {
					return fmt.Errorf("token %q: %w", k, err)
				}
				out.tokens = append(out.tokens, t)
				return nil
			}); err != nil {
				return err
			}
		}
		if b := tx.Bucket([]byte("ended-sessions")); b != nil {
			b.ForEach(func(k, v []byte) error {
				if len(v) == 8 {
					out.ended[string(k)] = time.Unix(int64(binary.BigEndian.Uint64(v)), 0)
				}
				return nil
			})
		}
		if b := tx.Bucket([]byte("meta")); b != nil {
			out.sessionKey = append([]byte(nil), b.Get([]byte("session-key"))...)
		}
		return nil
	})
	if err != nil {
		return legacy{}, fmt.Errorf("auth: import %s: %w", path, err)
	}
	return out, nil
}
