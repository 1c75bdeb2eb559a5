package registry

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// querier is what reads need: the database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// loadedRow is a terminal as read from the database, with the verified
// credential of this process's key, if any.
type loadedRow struct {
	t        Terminal
	hash     string
	version  int64
	mac, tag []byte
}

const selectColumns = `t.tenant, t.terminal, t.model, t.merchant, t.site, t.region, t.lat, t.lon,
	t.address, t.contact, t.phone, t.opening_hours, t.secret_hash, t.created_ms, t.updated_ms, t.version, v.mac, v.tag
	FROM terminals t LEFT JOIN terminal_verified v
	ON v.tenant = t.tenant AND v.terminal = t.terminal AND v.key_id = $1`

func scanRows(rows *sql.Rows) ([]loadedRow, error) {
	defer rows.Close()
	var out []loadedRow
	for rows.Next() {
		var l loadedRow
		var lat, lon sql.NullFloat64
		var created, updated int64
		if err := rows.Scan(&l.t.Tenant, &l.t.Terminal, &l.t.Model, &l.t.Merchant, &l.t.Site, &l.t.Region,
			&lat, &lon, &l.t.Address, &l.t.Person, &l.t.Phone, &l.t.OpeningHours, &l.hash, &created, &updated, &l.version, &l.mac, &l.tag); err != nil {
			return nil, fmt.Errorf("read terminals: %w", err)
		}
		if lat.Valid && lon.Valid {
			l.t.Lat, l.t.Lon = &lat.Float64, &lon.Float64
		}
		l.t.Created, l.t.Updated = store.Time(created), store.Time(updated)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read terminals: %w", err)
	}
	return out, nil
}

// changedSince reads the terminals written with a change version above
// since (all of them for 0).
func (r *Registry) changedSince(ctx context.Context, q querier, since int64) ([]loadedRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+selectColumns+` WHERE t.version > $2`, r.keyID, since)
	if err != nil {
		return nil, fmt.Errorf("read terminals: %w", err)
	}
	return scanRows(rows)
}

// getRow reads one terminal, nil when it is not provisioned.
func (r *Registry) getRow(ctx context.Context, ref posfleet.TerminalRef) (*loadedRow, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT `+selectColumns+` WHERE t.tenant = $2 AND t.terminal = $3`, r.keyID, ref.Tenant, ref.Terminal)
	if err != nil {
		return nil, fmt.Errorf("read terminal: %w", err)
	}
	out, err := scanRows(rows)
	if err != nil || len(out) == 0 {
		return nil, err
	}
	return &out[0], nil
}

// nextVersion bumps the change counter in tx and returns the version of
// the transaction's writes. It also makes the other writers wait until tx
// ends (see terminal_version in the migration).
func nextVersion(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `UPDATE terminal_version SET version = version + 1 WHERE id = 1 RETURNING version`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("next change version: %w", err)
	}
	return v, nil
}

// storedTerminal is a row to write.
type storedTerminal struct {
	t    Terminal
	hash string
}

// rowsPerInsert keeps a multi-row INSERT under both engines' limits on
// parameters (SQLite 32,766, PostgreSQL 65,535) with room to spare; larger
// statements gain nothing measurable.
const rowsPerInsert = 1000

// upsertTerminals writes ts with change version v, a multi-row statement
// per rowsPerInsert rows. With keep, terminals already in the database are
// left as they are (the import of a previous release's file).
func upsertTerminals(ctx context.Context, d store.Dialect, tx *sql.Tx, ts []storedTerminal, v int64, keep bool) error {
	const cols = 16
	conflict := ` ON CONFLICT (tenant, terminal) DO UPDATE SET model = excluded.model, merchant = excluded.merchant,
		site = excluded.site, region = excluded.region, lat = excluded.lat, lon = excluded.lon,
		address = excluded.address, contact = excluded.contact, phone = excluded.phone, opening_hours = excluded.opening_hours,
		secret_hash = excluded.secret_hash, updated_ms = excluded.updated_ms, version = excluded.version`
	if keep {
		conflict = ` ON CONFLICT (tenant, terminal) DO NOTHING`
	}
	args := make([]any, 0, cols*rowsPerInsert)
	for len(ts) > 0 {
		n := min(len(ts), rowsPerInsert)
		args = args[:0]
		for _, s := range ts[:n] {
			var lat, lon any
			if s.t.Lat != nil && s.t.Lon != nil {
				lat, lon = *s.t.Lat, *s.t.Lon
			}
			args = append(args, s.t.Tenant, s.t.Terminal, s.t.Model, s.t.Merchant, s.t.Site, s.t.Region,
				lat, lon, s.t.Address, s.t.Person, s.t.Phone, s.t.OpeningHours, s.hash, store.Millis(s.t.Created), store.Millis(s.t.Updated), v)
		}
		q := `INSERT INTO terminals (tenant, terminal, model, merchant, site, region, lat, lon, address, contact, phone, opening_hours, secret_hash, created_ms, updated_ms, version) VALUES ` +
			d.Values(n, cols) + conflict
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store terminals: %w", err)
		}
		ts = ts[n:]
	}
	return nil
}

// verifiedRow is a persisted verified credential.
type verifiedRow struct {
	ref  posfleet.TerminalRef
	mac  [macLen]byte
	hash string
}

// putVerified stores entries under key, a multi-row statement per
// rowsPerInsert rows.
func putVerified(ctx context.Context, d store.Dialect, tx *sql.Tx, key []byte, es []verifiedRow) error {
	const cols = 5
	args := make([]any, 0, cols*rowsPerInsert)
	for len(es) > 0 {
		n := min(len(es), rowsPerInsert)
		args = args[:0]
		for _, e := range es[:n] {
			tag := sha256.Sum256([]byte(e.hash))
			args = append(args, e.ref.Tenant, e.ref.Terminal, key, e.mac[:], tag[:])
		}
		q := `INSERT INTO terminal_verified (tenant, terminal, key_id, mac, tag) VALUES ` + d.Values(n, cols) +
			` ON CONFLICT (tenant, terminal, key_id) DO UPDATE SET mac = excluded.mac, tag = excluded.tag`
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store verified credentials: %w", err)
		}
		es = es[n:]
	}
	return nil
}

// dropVerified deletes the verified credentials of refs under every key:
// their secret changes in the same transaction.
func dropVerified(ctx context.Context, tx *sql.Tx, refs []posfleet.TerminalRef) error {
	if len(refs) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `DELETE FROM terminal_verified WHERE tenant = $1 AND terminal = $2`)
	if err != nil {
		return fmt.Errorf("drop verified credentials: %w", err)
	}
	defer stmt.Close()
	for _, ref := range refs {
		if _, err := stmt.ExecContext(ctx, ref.Tenant, ref.Terminal); err != nil {
			return fmt.Errorf("drop verified credential of %s: %w", ref, err)
		}
	}
	return nil
}

// dropStaleVerified deletes this key's entries whose terminal has another
// secret hash since, or is gone.
func (r *Registry) dropStaleVerified(ctx context.Context) error {
	rows, err := r.db.QueryContext(ctx, `SELECT v.tenant, v.terminal, v.tag, t.secret_hash FROM terminal_verified v
		LEFT JOIN terminals t ON t.tenant = v.tenant AND t.terminal = v.terminal WHERE v.key_id = $1`, r.keyID)
	if err != nil {
		return fmt.Errorf("read verified credentials: %w", err)
	}
	var stale []posfleet.TerminalRef
	for rows.Next() {
		var ref posfleet.TerminalRef
		var tag []byte
		var hash sql.NullString
		if err := rows.Scan(&ref.Tenant, &ref.Terminal, &tag, &hash); err != nil {
			rows.Close()
			return fmt.Errorf("read verified credentials: %w", err)
		}
		want := sha256.Sum256([]byte(hash.String))
		if !hash.Valid || !hmac.Equal(tag, want[:]) {
			stale = append(stale, ref)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read verified credentials: %w", err)
	}
	if len(stale) == 0 {
		return nil
	}
	err = r.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, ref := range stale {
			if _, err := tx.ExecContext(ctx, `DELETE FROM terminal_verified WHERE tenant = $1 AND terminal = $2 AND key_id = $3`, ref.Tenant, ref.Terminal, r.keyID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop stale verified credentials: %w", err)
	}
	r.log.Info("dropped verified credentials of changed secrets", "entries", len(stale))
	return nil
}

// keyID names a cache key in terminal_verified without revealing it.
func keyID(key []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("posfleet credential cache key id"))
	return h.Sum(nil)[:16]
}

var errChanged = errors.New("changed by another process during the import; run it again")
