package store_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

func TestLeaseOneHolderAndFence(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Unix(1_800_000_000, 0)
		a := &store.Lease{Name: "health", Holder: "a", TTL: 10 * time.Second}
		b := &store.Lease{Name: "health", Holder: "b", TTL: 10 * time.Second}
		if held, err := db.Acquire(ctx, a, now); !held || err != nil {
			t.Fatalf("a: %v %v", held, err)
		}
		if held, err := db.Acquire(ctx, b, now.Add(time.Second)); held || err != nil {
			t.Fatalf("b took a held lease: %v %v", held, err)
		}
		if held, _ := db.Acquire(ctx, a, now.Add(5*time.Second)); !held {
			t.Fatal("a could not renew")
		}
		check := func(l *store.Lease) error {
			return db.Tx(ctx, func(tx *sql.Tx) error { return l.Check(ctx, tx, db.Dialect) })
		}
		if err := check(a); err != nil {
			t.Fatal(err)
		}
		// a stalls past its TTL: b takes over, and a's writes are fenced off.
		if held, _ := db.Acquire(ctx, b, now.Add(16*time.Second)); !held {
			t.Fatal("b did not take over an expired lease")
		}
		if err := check(a); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("stale holder's check: %v", err)
		}
		if held, _ := db.Acquire(ctx, a, now.Add(17*time.Second)); held {
			t.Fatal("a took the lease back from b")
		}
		// b releases at shutdown: a takes over at once.
		if err := db.Release(ctx, b); err != nil {
			t.Fatal(err)
		}
		if held, _ := db.Acquire(ctx, a, now.Add(18*time.Second)); !held || a.Fence != 3 {
			t.Fatalf("a after release: held %v fence %d", held, a.Fence)
		}
	})
}
