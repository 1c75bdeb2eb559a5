// Package storetest runs a test against each engine of the store: a
// fresh SQLite file and a fresh database on the test binary's private
// PostgreSQL (pgtest). Packages that use it call pgtest.Main from TestMain.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/pgtest"
)

// Each runs fn as subtests "sqlite" and "postgres", each on an empty,
// migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite opens a migrated database in a new SQLite file.
func SQLite(t testing.TB) *store.DB {
	t.Helper()
	return open(t, "sqlite://"+filepath.Join(t.TempDir(), store.DefaultFile))
}

// Postgres opens a migrated, empty database on the private PostgreSQL.
func Postgres(t testing.TB) *store.DB {
	t.Helper()
	return open(t, pgtest.Database(t))
}

// URL returns the URL of a new empty database of the dialect, unmigrated.
func URL(t testing.TB, d store.Dialect) string {
	if d == store.Postgres {
		return pgtest.Database(t)
	}
	return "sqlite://" + filepath.Join(t.TempDir(), store.DefaultFile)
}

func open(t testing.TB, url string) *store.DB {
	db, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
