package journal_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestThresholdVersions: each document stored is the next version, the
// newest is in force, and the history lists them newest first with who and
// when.
func TestThresholdVersions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
		if _, ok, err := journal.LatestThresholds(ctx, db); ok || err != nil {
			t.Fatalf("empty store: %v %v", ok, err)
		}
		if v, err := journal.LatestThresholdsVersion(ctx, db); v != 0 || err != nil {
			t.Fatalf("empty store: version %d %v", v, err)
		}
		bodies := []string{`{"tenants":{}}`, `{"tenants":{"acme":{"txn_failures.rate":0.15}}}`, `{"tenants":{"acme":{"models":{"A920":{"txn_failures.rate":0.1}}}}}`}
		for i, b := range bodies {
			v, err := journal.AddThresholds(ctx, db, []byte(b), "ops-"+string(rune('a'+i)), t0.Add(time.Duration(i)*time.Minute), int64(i))
			if err != nil || v != int64(i+1) {
				t.Fatalf("add %d: version %d %v", i, v, err)
			}
		}
		latest, ok, err := journal.LatestThresholds(ctx, db)
		if err != nil || !ok || latest.Version != 3 || latest.Body != bodies[2] || latest.CreatedBy != "ops-c" || !latest.CreatedAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("latest %+v %v %v", latest, ok, err)
		}
		if v, err := journal.LatestThresholdsVersion(ctx, db); v != 3 || err != nil {
			t.Fatalf("version %d %v", v, err)
		}
		// A change made on version 2 would undo version 3.
		if _, err := journal.AddThresholds(ctx, db, []byte(bodies[0]), "late", t0, 2); !errors.Is(err, journal.ErrThresholdsChanged) {
			t.Fatalf("a change on an old version: %v", err)
		}
		h, err := journal.ThresholdsHistory(ctx, db, 2)
		if err != nil || len(h) != 2 || h[0].Version != 3 || h[1].Version != 2 || h[1].Body != bodies[1] {
			t.Fatalf("history %+v %v", h, err)
		}
	})
}
