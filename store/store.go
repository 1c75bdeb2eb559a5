// Package store is posfleet's control plane in SQL: terminals, users and
// tokens, the firmware policy, commands and acks, service visits,
// incidents, flags and their history, security events and rejections.
//
// One schema serves two engines:
//
//   - SQLite (modernc.org/sqlite, pure Go: the binary stays static), one file
//     in the data directory: the default, for one box and the demo;
//   - PostgreSQL (pgx), for a cluster: --database-url postgres://...
//
// The schema is versioned SQL under migrations/, applied at start by goose
// (github.com/pressly/goose/v3: a well-kept migration library that speaks
// both dialects and records what it applied in goose_db_version). The SQL is
// written once, in the subset both engines accept: BIGINT times in Unix
// milliseconds, TEXT, BYTEA (SQLite keeps blobs under any declared type),
// BOOLEAN, $1-style parameters, INSERT ... ON CONFLICT, RETURNING; IDs are
// made by the application, never by a sequence.
//
// Consumers define the interfaces they need (registry, auth, commands,
// health, web); this package only implements them.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is the SQL engine behind a DB.
type Dialect int

const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// DB is the control-plane database.
type DB struct {
	*sql.DB
	Dialect Dialect
	// URL is where it is, with any password removed (for logs).
	URL string
}

// DefaultFile is the SQLite file in the data directory when no
// --database-url is given.
const DefaultFile = "posfleet.db"

// URLFor returns the database URL: dbURL when set, else the SQLite file
// in dataDir.
func URLFor(dataDir, dbURL string) string {
	if dbURL != "" {
		return dbURL
	}
	return "sqlite://" + filepath.Join(dataDir, DefaultFile)
}

// Open opens the database at rawURL and applies the migrations it lacks:
//
//	sqlite:///var/lib/posfleet/posfleet.db   (or a plain file path)
//	postgres://user:pass@host:5432/posfleet?sslmode=require
func Open(ctx context.Context, rawURL string) (*DB, error) {
	db, err := OpenNoMigrate(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// OpenNoMigrate opens the database without touching its schema.
func OpenNoMigrate(ctx context.Context, rawURL string) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		sqldb, err := sql.Open("pgx", rawURL)
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		sqldb.SetMaxOpenConns(16)
		sqldb.SetMaxIdleConns(8)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		db := &DB{DB: sqldb, Dialect: Postgres, URL: redact(rawURL)}
		return db, db.ping(ctx)
	case strings.Contains(rawURL, "://") && !strings.HasPrefix(rawURL, "sqlite://"):
		return nil, fmt.Errorf("database %q: want sqlite:///path/to/file.db or postgres://user:password@host/db", redact(rawURL))
	}
	path := strings.TrimPrefix(rawURL, "sqlite://")
	if path == "" {
		return nil, errors.New("database: an empty SQLite path")
	}
	// WAL: readers never wait for the writer; busy_timeout: writers of
	// other processes (the CLI beside a running server) wait their turn;
	// _txlock=immediate: a transaction takes the write lock at BEGIN, so
	// two that read then write cannot deadlock into SQLITE_BUSY.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	// One writer at a time in any case; a few connections let readers run
	// beside it.
	sqldb.SetMaxOpenConns(4)
	db := &DB{DB: sqldb, Dialect: SQLite, URL: "sqlite://" + path}
	return db, db.ping(ctx)
}

func (db *DB) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.DB.Close()
		return fmt.Errorf("database %s: %w", db.URL, err)
	}
	return nil
}

// redact removes the password from a database URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Migrate applies the migrations the database lacks. Several processes
// starting at once on PostgreSQL take turns (goose's session locker).
func (db *DB) Migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if db.Dialect == Postgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.DB, sub, opts...)
	if err != nil {
		return fmt.Errorf("database migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("database %s: migrating: %w", db.URL, err)
	}
	return nil
}

// Version is the schema version applied.
func (db *DB) Version(ctx context.Context) (int64, error) {
	var v sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT MAX(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v)
	return v.Int64, err
}

// Querier is a *DB or a *sql.Tx: what the packages keeping their own
// tables (alarm, campaign) write through, in a transaction or not.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ Querier = (*DB)(nil)
	_ Querier = (*sql.Tx)(nil)
)

// Strings reads rows of one text column and closes them.
func Strings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Tx runs fn in a transaction, committed when fn returns nil.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Millis is t in Unix milliseconds, the schema's time; the zero time is 0.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Time is the time of Unix milliseconds ms, in UTC; 0 is the zero time.
func Time(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Values returns the rows of a multi-row VALUES clause, rows of cols
// parameters each: "($1, $2), ($3, $4)" on PostgreSQL and "(?, ?), (?, ?)"
// on SQLite. Both take the arguments in order. SQLite looks every $N up in
// a list of the statement's parameter names, which is quadratic in their
// number (20,000 terminals in statements of 1,000 rows took 20 s to write
// with $N, 0.6 s with ?). The statement must have no other parameter.
func (d Dialect) Values(rows, cols int) string {
	var b strings.Builder
	p := 1
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			if d == Postgres {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(p))
			} else {
				b.WriteByte('?')
			}
			p++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Params returns n parameters, "$1, ..., $n" (SQLite "?, ..., ?"), for an
// IN list of a statement with no other parameter.
func (d Dialect) Params(n int) string {
	return strings.TrimSuffix(strings.TrimPrefix(d.Values(1, n), "("), ")")
}
