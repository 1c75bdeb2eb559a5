package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// The registry file of releases before the control-plane database: one
// bbolt file, registry.db in the data directory. Only read here, once, to
// copy its terminals into the database (ImportFile).

// LegacyFile is the name of that file in a data directory.
const LegacyFile = "registry.db"

// importedMarker is the settings row saying that a previous release's file
// was imported: its value is JSON of importedFile.
const importedMarker = "registry.file_imported"

type importedFile struct {
	File      string `json:"file"`
	Terminals int    `json:"terminals"`
	At        int64  `json:"at_ms"`
}

// legacyRecord is the JSON of a terminal in the file.
type legacyRecord struct {
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

// ImportFile copies the terminals of a previous release's registry file at
// path into db, secret hashes included, so that they keep connecting with
// the same secrets, then renames the file to path+".imported". It does so
// once per database: the first import sets a marker (in settings), and a
// file found later, such as another replica's copy, is left alone with a
// warning. A missing file is no error. It returns how many terminals it
// copied.
//
// The copy is one transaction: all or nothing. A terminal already in the
// database (provisioned before the import) is kept as it is. The verified
// credentials the file kept under the key in cacheKeyFile (the data
// directory's credential-cache.key, which stays where it is) are copied
// too, so that the fleet reconnecting after the upgrade skips argon2id as
// after any restart; without the key file ("" or missing) they are left
// behind and each terminal is verified slowly once.
func ImportFile(ctx context.Context, db *store.DB, path, cacheKeyFile string, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "registry")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("registry: previous release's file: %w", err)
	}
	var prev importedFile
	if done, err := importedBefore(ctx, db, &prev); err != nil {
		return 0, err
	} else if done {
		return 0, finishImported(path, prev, log)
	}

	terms, verified, err := readLegacy(path)
	if err != nil {
		return 0, err
	}
	var key []byte
	if cacheKeyFile != "" && len(verified) > 0 {
		if _, err := os.Stat(cacheKeyFile); err == nil {
			if key, _, err = loadCacheKey(cacheKeyFile); err != nil {
				return 0, fmt.Errorf("registry: import %s: %w", path, err)
			}
		}
	}
	n := 0
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		v, err := nextVersion(ctx, tx)
		if err != nil {
			return err
		}
		// Under the version lock: two processes starting at once on one
		// database import once.
		var raw []byte
		err = tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, importedMarker).Scan(&raw)
		if err == nil {
			return errAlreadyImported
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := upsertTerminals(ctx, db.Dialect, tx, terms, v, true); err != nil {
			return err
		}
		if key != nil {
			if err := putVerified(ctx, db.Dialect, tx, keyID(key), verified); err != nil {
				return err
			}
		}
		mark, _ := json.Marshal(importedFile{File: path, Terminals: len(terms), At: store.Millis(time.Now())})
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value, updated_ms) VALUES ($1, $2, $3)`,
			importedMarker, mark, store.Millis(time.Now())); err != nil {
			return fmt.Errorf("mark imported: %w", err)
		}
		n = len(terms)
		return nil
	})
	if errors.Is(err, errAlreadyImported) {
		if _, err := importedBefore(ctx, db, &prev); err != nil {
			return 0, err
		}
		return 0, finishImported(path, prev, log)
	}
	if err != nil {
		return 0, fmt.Errorf("registry: import %s: %w", path, err)
	}
	if err := os.Rename(path, path+".imported"); err != nil {
		return n, fmt.Errorf("registry: imported %s but cannot rename it: %w", path, err)
	}
	log.Info("imported the terminals of the previous release's registry file", "file", path, "terminals", n, "renamed_to", path+".imported")
	return n, nil
}

var errAlreadyImported = errors.New("already imported")

// importedBefore reads the marker.
func importedBefore(ctx context.Context, db *store.DB, into *importedFile) (bool, error) {
	var raw []byte
	err := db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, importedMarker).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("registry: read import marker: %w", err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return false, fmt.Errorf("registry: read import marker: %w", err)
	}
	return true, nil
}

// finishImported deals with a file found after an import: the same file
// (a crash between the commit and the rename) is renamed; another is left
// alone, with a warning.
func finishImported(path string, prev importedFile, log *slog.Logger) error {
	if prev.File == path {
		if err := os.Rename(path, path+".imported"); err != nil {
			return fmt.Errorf("registry: rename imported %s: %w", path, err)
		}
		return nil
	}
	log.Warn("previous release's registry file not imported: the database already holds the terminals of another one; move it away",
		"file", path, "imported", prev.File, "imported_at", store.Time(prev.At))
	return nil
}

// readLegacy reads every terminal of the file, read-only, and the verified
// credentials that match their secret hash.
func readLegacy(path string) ([]storedTerminal, []verifiedRow, error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, nil, fmt.Errorf("registry: %s is in use by a posfleet of the previous release: stop it first", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("registry: open previous release's file %s: %w", path, err)
	}
	defer db.Close()
	var out []storedTerminal
	var verified []verifiedRow
	err = db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket([]byte("meta")); meta != nil {
			if v := meta.Get([]byte("schema")); v != nil {
				if n, err := strconv.Atoi(string(v)); err != nil || n != 1 {
					return fmt.Errorf("schema version %q: want 1", v)
				}
			}
		}
		b := tx.Bucket([]byte("terminals"))
		if b == nil {
			return nil
		}
		// Entries of the verified bucket: key -> mac || SHA-256(hash).
		vb := tx.Bucket([]byte("verified"))
		return b.ForEach(func(k, v []byte) error {
			tenant, terminal, _ := bytes.Cut(k, []byte{0})
			ref := posfleet.TerminalRef{Tenant: string(tenant), Terminal: string(terminal)}
			if err := ref.Validate(); err != nil {
				return fmt.Errorf("terminal %q: %w", k, err)
			}
			var rec legacyRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode %s: %w", ref, err)
			}
			if rec.SecretHash == "" {
				return fmt.Errorf("%s has no secret hash", ref)
			}
			t := Terminal{TerminalRef: ref, Model: rec.Model, Merchant: rec.Merchant, Site: rec.Site, Region: rec.Region,
				Lat: rec.Lat, Lon: rec.Lon, Created: rec.Created.UTC(), Updated: rec.Updated.UTC()}
			out = append(out, storedTerminal{t: t, hash: rec.SecretHash})
			if vb != nil {
				e := vb.Get(k)
				tag := sha256.Sum256([]byte(rec.SecretHash))
				if len(e) == 2*macLen && bytes.Equal(e[macLen:], tag[:]) {
					verified = append(verified, verifiedRow{ref: ref, mac: [macLen]byte(e[:macLen]), hash: rec.SecretHash})
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("registry: read previous release's file %s: %w", path, err)
	}
	return out, verified, nil
}
