package registry_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// fleetFile is a provisioning file of n terminals of 20 tenants, site
// data varying with gen.
func fleetFile(n, gen int) string {
	var sb strings.Builder
	sb.Grow(n * 80)
	sb.WriteString(header + "\n")
	for i := range n {
		fmt.Fprintf(&sb, "tenant-%d,T-%06d,A920,Merchant %d,Site %d/%d,north,31.2,121.4\n", i%20, i, i%500, i%5000, gen)
	}
	return sb.String()
}

// BenchmarkImport100k provisions 100,000 terminals in one import on each
// engine, with the server's argon2id parameters and persisted verified
// credentials, and reports the time spent hashing and writing; then
// imports the file again with every site changed (no hashing: the SQL
// alone), and opens a registry on the result (the load at start).
//
//	go test ./registry -run '^$' -bench Import100k -benchtime 1x
func BenchmarkImport100k(b *testing.B) {
	const n = 100_000
	for _, engine := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		b.Run(engine.name, func(b *testing.B) {
			for range b.N {
				db := engine.open(b)
				opts := registry.Options{CacheKeyFile: filepath.Join(b.TempDir(), "cache.key"), SyncInterval: -1}
				r := openOn(b, db, opts)
				ctx := context.Background()
				start := time.Now()
				res, err := r.Import(ctx, strings.NewReader(fleetFile(n, 0)), nil)
				if err != nil || res.Added != n {
					b.Fatalf("import: %v, %+v", err, res.Added)
				}
				total := time.Since(start)
				hash, write := registry.LastImport(r)

				start = time.Now()
				res, err = r.Import(ctx, strings.NewReader(fleetFile(n, 1)), nil)
				if err != nil || res.Updated != n {
					b.Fatalf("reimport: %v, %+v", err, res.Updated)
				}
				again := time.Since(start)
				_, rewrite := registry.LastImport(r)

				start = time.Now()
				r2 := openOn(b, db, opts)
				load := time.Since(start)
				if c, _ := r2.Count(ctx); c != n {
					b.Fatalf("opened with %d terminals", c)
				}
				b.ReportMetric(total.Seconds(), "import-s")
				b.ReportMetric(hash.Seconds(), "hash-s")
				b.ReportMetric(write.Seconds(), "sql-s")
				b.ReportMetric(again.Seconds(), "reimport-s")
				b.ReportMetric(rewrite.Seconds(), "reimport-sql-s")
				b.ReportMetric(load.Seconds(), "open-s")
				b.Logf("%s: 100,000 new terminals in %v (argon2id %v, SQL %v); again with every site changed %v (SQL %v); Open loads them in %v",
					engine.name, total.Round(time.Millisecond), hash.Round(time.Millisecond), write.Round(time.Millisecond),
					again.Round(time.Millisecond), rewrite.Round(time.Millisecond), load.Round(time.Millisecond))
			}
		})
	}
}
