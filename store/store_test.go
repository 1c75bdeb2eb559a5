package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/pgtest"
	"github.com/posfleet/posfleet/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestOpenMigratesBothEngines(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		v, err := db.Version(ctx)
		if err != nil || v < 1 {
			t.Fatalf("version %d, %v", v, err)
		}
		// Opening again applies nothing twice.
		again, err := store.Open(ctx, db.URL) // the test servers have no password

		if err != nil {
			t.Fatal(err)
		}
		again.Close()
		// $1 parameters, ON CONFLICT and BYTEA round trips on both.
		for i, val := range [][]byte{{0, 1, 2, 255}, {9}} {
			if _, err := db.ExecContext(ctx, `INSERT INTO settings (name, value, updated_ms) VALUES ($1, $2, $3)
				ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms`, "k", val, int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		var got []byte
		if err := db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, "k").Scan(&got); err != nil || string(got) != "\x09" {
			t.Fatalf("got %v, %v", got, err)
		}
		// A failed transaction leaves nothing.
		boom := errors.New("boom")
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value, updated_ms) VALUES ($1, $2, 0)`, "x", []byte("y")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		var n int
		db.QueryRowContext(ctx, `SELECT COUNT(*) FROM settings WHERE name = 'x'`).Scan(&n)
		if n != 0 {
			t.Fatal("rolled-back row is there")
		}
	})
}

func TestOpenRefusesUnknownScheme(t *testing.T) {
	_, err := store.Open(context.Background(), "mysql://u:secret@h/db")
	if err == nil || !strings.Contains(err.Error(), "want sqlite") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v", err)
	}
}

func TestTimeRoundTrip(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond).UTC()
	if !store.Time(store.Millis(now)).Equal(now) || !store.Time(store.Millis(time.Time{})).IsZero() {
		t.Fatal("time round trip")
	}
}

func TestValuesAndParams(t *testing.T) {
	for _, c := range []struct {
		d          store.Dialect
		vals, list string
	}{
		{store.Postgres, "($1, $2), ($3, $4)", "$1, $2, $3"},
		{store.SQLite, "(?, ?), (?, ?)", "?, ?, ?"},
	} {
		if got := c.d.Values(2, 2); got != c.vals {
			t.Errorf("%s Values = %q, want %q", c.d, got, c.vals)
		}
		if got := c.d.Params(3); got != c.list {
			t.Errorf("%s Params = %q, want %q", c.d, got, c.list)
		}
	}
}
