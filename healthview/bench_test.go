package healthview_test

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

// benchFleet is n terminals of tenant acme as a large fleet looks on a
// normal day, about 9 % flagged and 4 % on the work list: 3 % with a
// printer fault, 1 % offline, 0.1 % tampered (on the work list); 4 % on an
// old firmware, 1 % with an amount mismatch (not on it); and 1 % more
// provisioned that never connected.
func benchFleet(b *testing.B, n int) *fleet {
	f := newFleet(b)
	for i := range n {
		k := healthy
		switch m := i % 100; {
		case i%1000 == 3:
			k = tamper
		case m < 3:
			k = printer
		case m == 4:
			k = offline
		case m >= 5 && m < 9:
			k = outdated
		case m == 9:
			k = mismatch
		}
		f.add(ref("acme", i), k)
	}
	for i := range n / 100 {
		f.eng.Provision(ref("acme", n+i))
	}
	return f
}

// benchPaths are the pages of the target (at most 50 ms of server
// time each at 100,000 terminals), as a tenant's user and as an
// administrator ("root ": every tenant, no tenant in the queries), and
// two of the API (an administrator's token).
var benchPaths = []string{
	"/",
	"/terminals?flag=hardware_fault",
	"/worklist",
	"/terminals/acme/T0000003",
	"/terminals",
	"root /",
	"root /terminals?flag=hardware_fault",
	"root /worklist",
	"/api/v1/terminals?flag=hardware_fault",
	"/api/v1/worklist",
}

// BenchmarkPage measures the server time of the pages over 100,000
// terminals, through the real web handler without a network, signed in as
// a tenant's user: over the engine in memory, and over the Reader of the
// published view on SQLite and on PostgreSQL.
//
//	go test ./healthview -run '^$' -bench Page -benchtime 20x
func BenchmarkPage(b *testing.B) {
	const n = 100_000
	start := time.Now()
	f := benchFleet(b, n)
	batch := batchOf(f.eng, "acme")
	b.Logf("engine of %d terminals and its view built in %v", n, time.Since(start).Round(time.Millisecond))
	now := func() time.Time { return f.now }
	for _, where := range []string{"memory", "sqlite", "postgres"} {
		b.Run(where, func(b *testing.B) {
			var hs web.Health = f.eng
			if where != "memory" {
				var db *store.DB
				if where == "sqlite" {
					db = storetest.SQLite(b)
				} else {
					db = storetest.Postgres(b)
				}
				start := time.Now()
				publish(b, db, batch, 2000, f.now)
				b.Logf("%s: %d terminals published in %v", where, len(batch.Terminals), time.Since(start).Round(time.Millisecond))
				if db.Dialect == store.Postgres {
					// As autovacuum would after a load: the planner's statistics.
					if _, err := db.Exec(`ANALYZE`); err != nil {
						b.Fatal(err)
					}
				}
				savePolicy(b, db, policy, "")
				r := healthview.NewReader(db, nil)
				hs = r
			}
			s := newSite(b, hs, now)
			cookies := map[string]*http.Cookie{"": s.signIn(b, "ops-acme"), "root": s.signIn(b, "root")}
			for _, p := range benchPaths {
				user, p, ok := strings.Cut(p, " ")
				if !ok {
					user, p = "", user
				}
				cookie := cookies[user]
				name := strings.TrimPrefix(p, "/")
				if name == "" {
					name = "overview"
				}
				if user != "" {
					name = user + "_" + name
				}
				b.Run(strings.NewReplacer("/", "_", "?", "_").Replace(name), func(b *testing.B) {
					var ru0, ru1 syscall.Rusage
					syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
					for b.Loop() {
						var code int
						if strings.HasPrefix(p, "/api/") {
							code, _ = s.api(b, p)
						} else {
							code, _ = s.page(b, cookie, p)
						}
						if code != 200 {
							b.Fatalf("GET %s: %d", p, code)
						}
					}
					syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
					cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
					b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
					b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/op")
				})
			}
		})
	}
}
