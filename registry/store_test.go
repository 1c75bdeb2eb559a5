package registry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/pgtest"
	"github.com/posfleet/posfleet/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestEngines: the registry on SQLite and PostgreSQL: import, lookups in
// the order of the old file (tenant "a" before "a-b"), coordinates kept
// or absent, times to the millisecond, and everything again from a second
// registry opened on the same database.
func TestEngines(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := openOn(t, db, registry.Options{HashMemoryKiB: 64})
		res := importFile(t, r, "good.csv")
		if _, err := importString(r, header+"\na,T-1,A920,M,S,north,,\na-b,T-1,A920,M,S,north,1.5,-2.25\n"); err != nil {
			t.Fatal(err)
		}
		want := []string{"a:T-1", "a-b:T-1", "acme:T-0001", "acme:T-0002", "acme:T-0003", "beta.retail:POS_17", "beta.retail:POS_18"}
		if got := refs(list(t, r, "")); !slices.Equal(got, want) {
			t.Errorf("List = %v, want %v", got, want)
		}
		if got := refs(list(t, r, "acme")); !slices.Equal(got, want[2:5]) {
			t.Errorf("List(acme) = %v, want %v", got, want[2:5])
		}
		before := list(t, r, "")

		r2 := openOn(t, db, registry.Options{HashMemoryKiB: 64})
		after := list(t, r2, "")
		if len(after) != len(before) {
			t.Fatalf("second registry lists %d terminals, want %d", len(after), len(before))
		}
		for i := range before {
			b, a := before[i], after[i]
			eqf := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
			if a.TerminalRef != b.TerminalRef || a.Model != b.Model || a.Merchant != b.Merchant || a.Site != b.Site ||
				a.Region != b.Region || !eqf(a.Lat, b.Lat) || !eqf(a.Lon, b.Lon) || !a.Created.Equal(b.Created) || !a.Updated.Equal(b.Updated) {
				t.Errorf("terminal %d read back as %+v, written %+v", i, a, b)
			}
		}
		if tm, err := r2.Get(ctx, ref("acme", "T-0003")); err != nil || tm.Lat != nil || tm.Lon != nil || tm.Site != "Station Mall" {
			t.Errorf("Get acme:T-0003 = %+v, %v; want Station Mall without coordinates", tm, err)
		}
		for _, c := range res.Credentials {
			if err := auth(r2, c.TerminalRef, c.Secret); err != nil {
				t.Errorf("Authenticate %v on the second registry: %v", c.TerminalRef, err)
			}
		}
		if _, err := r2.Get(ctx, ref("acme", "T-9999")); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Get unknown: %v, want ErrNotFound", err)
		}
		// A bad file changes nothing, on either.
		if _, err := importString(r, header+"\nacme,T-0001,A920,Changed,S,north,,\nacme,bad id,A920,M,S,north,,\n"); err == nil {
			t.Fatal("bad file imported")
		}
		if err := r2.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if tm, _ := r2.Get(ctx, ref("acme", "T-0001")); tm.Merchant != "Noodle House" {
			t.Errorf("merchant after a refused file: %q", tm.Merchant)
		}
	})
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestReplicas: two registries on one database, as two replicas of a
// cluster (or the server and the command line): a terminal imported
// through one is known to the other within the sync interval, without
// a lookup of the missing name; rotated on one, its old secret stops
// working on the other, which had it cached, after the sync.
func TestReplicas(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const interval = 200 * time.Millisecond
		opts := registry.Options{HashMemoryKiB: 64, SyncInterval: interval}
		a, b := openOn(t, db, opts), openOn(t, db, opts)

		creds := importFile(t, a, "good.csv").Credentials
		took := waitUntil(t, 5*interval, "terminals imported on A counted on B", func() bool {
			n, _ := b.Count(ctx)
			return n == len(creds)
		})
		t.Logf("known on B after %v", took)
		if n := registry.MissQueries(b); n != 0 {
			t.Errorf("B looked up %d missing names, want 0 (the sync brings them)", n)
		}
		for _, c := range creds {
			if err := auth(b, c.TerminalRef, c.Secret); err != nil {
				t.Errorf("Authenticate %v on B: %v", c.TerminalRef, err)
			}
		}
		t1 := ref("acme", "T-0001")
		old := secrets(creds)[t1]
		// Cached on B now: the next one is no verification.
		if n, err := authCounting(b, t1, old); err != nil || n != 0 {
			t.Fatalf("cached Authenticate on B: %v, %d slow verifications", err, n)
		}
		rotateT1(t, a, rotatedSecret)
		if err := auth(a, t1, old); !errors.Is(err, registry.ErrBadCredentials) {
			t.Errorf("old secret on A after rotating there: %v", err)
		}
		took = waitUntil(t, 5*interval, "old secret refused on B", func() bool {
			return errors.Is(auth(b, t1, old), registry.ErrBadCredentials)
		})
		t.Logf("old secret refused on B after %v", took)
		if err := auth(b, t1, rotatedSecret); err != nil {
			t.Errorf("new secret on B: %v", err)
		}
		// Site data changed on B reach A.
		if _, err := importString(b, header+"\nacme,T-0002,A920,New Merchant,Pier 9,south,,\n"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*interval, "merchant changed on B seen on A", func() bool {
			tm, err := a.Get(ctx, ref("acme", "T-0002"))
			return err == nil && tm.Merchant == "New Merchant"
		})
	})
}

// TestMissingNameLookups: a name missing from memory is looked up in the
// database (a terminal provisioned elsewhere a moment ago is known at
// once), but once per name and at most MissLookups names between syncs.
func TestMissingNameLookups(t *testing.T) {
	db := storetest.SQLite(t)
	ctx := context.Background()
	opts := registry.Options{HashMemoryKiB: 64, SyncInterval: -1}
	a, b := openOn(t, db, opts), openOn(t, db, opts)
	creds := importFile(t, a, "good.csv").Credentials
	// b never syncs by itself: found by the lookup.
	c := creds[0]
	if _, err := b.Get(ctx, c.TerminalRef); err != nil {
		t.Fatalf("Get of a terminal imported elsewhere: %v", err)
	}
	if err := auth(b, creds[1].TerminalRef, creds[1].Secret); err != nil {
		t.Fatalf("Authenticate a terminal imported elsewhere: %v", err)
	}
	base := registry.MissQueries(b)
	for range 5 {
		b.Get(ctx, ref("acme", "unknown"))
	}
	if n := registry.MissQueries(b) - base; n != 1 {
		t.Errorf("5 Gets of one unknown name made %d queries, want 1", n)
	}
	for i := range 3 * registry.MissLookups {
		b.Get(ctx, ref("flood", fmt.Sprintf("T-%d", i)))
	}
	if n := registry.MissQueries(b); n > registry.MissLookups {
		t.Errorf("a flood of %d unknown names made %d queries, want at most %d", 3*registry.MissLookups, n, registry.MissLookups)
	}
	// A sync lets names be looked up again.
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	base = registry.MissQueries(b)
	b.Get(ctx, ref("acme", "unknown"))
	if n := registry.MissQueries(b) - base; n != 1 {
		t.Errorf("after a sync: %d queries, want 1", n)
	}
}

// The terminals of testdata/registry-v1.db, written by the bbolt registry
// of the previous release (acme:T-0002's secret rotated once).
var upgradeTerminals = []struct {
	ref               posfleet.TerminalRef
	secret, oldSecret string
	merchant, site    string
	hasCoordinates    bool
}{
	{ref("acme", "T-0001"), "upgrade-acme-T-0001-secret-0123456789", "", "Noodle House", "12 Harbour Rd, Shop 3", true},
	{ref("acme", "T-0002"), "upgrade-acme-T-0002-new-secret-ghijkl", "upgrade-acme-T-0002-old-secret-abcdef", "Noodle House", "12 Harbour Rd, Shop 3", true},
	{ref("acme", "T-0003"), "short-sec-0003xy", "", "Book Corner", "Station Mall", false},
	{ref("beta.retail", "POS_17"), "upgrade-beta-POS_17-secret-9876543210", "", "Beta Market", "Main St 1", true},
	{ref("beta.retail", "POS_18"), "upgrade-beta-POS_18-secret-zyxwvutsrq", "", "Beta Market", "Main St 2", true},
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeFromRegistryFile: a data directory of the previous release:
// its registry.db is copied into the database once, every terminal
// authenticates with its old secret and keeps its merchant and site, the
// file is renamed, and another replica's file is left alone.
func TestUpgradeFromRegistryFile(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		file := filepath.Join(dir, registry.LegacyFile)
		copyFile(t, filepath.Join("testdata", "registry-v1.db"), file)

		n, err := registry.ImportFile(ctx, db, file, "", nil)
		if err != nil || n != len(upgradeTerminals) {
			t.Fatalf("ImportFile = %d, %v; want %d", n, err, len(upgradeTerminals))
		}
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("registry.db still there after the import: %v", err)
		}
		if _, err := os.Stat(file + ".imported"); err != nil {
			t.Errorf("registry.db.imported: %v", err)
		}
		r := openOn(t, db, registry.Options{})
		if got, _ := r.Count(ctx); got != len(upgradeTerminals) {
			t.Errorf("Count = %d, want %d", got, len(upgradeTerminals))
		}
		for _, u := range upgradeTerminals {
			if err := auth(r, u.ref, u.secret); err != nil {
				t.Errorf("Authenticate %v with its secret of the previous release: %v", u.ref, err)
			}
			if u.oldSecret != "" {
				if err := auth(r, u.ref, u.oldSecret); !errors.Is(err, registry.ErrBadCredentials) {
					t.Errorf("Authenticate %v with the secret it had before its rotation: %v, want ErrBadCredentials", u.ref, err)
				}
			}
			tm, err := r.Get(ctx, u.ref)
			if err != nil {
				t.Errorf("Get %v: %v", u.ref, err)
				continue
			}
			if tm.Merchant != u.merchant || tm.Site != u.site || (tm.Lat != nil) != u.hasCoordinates || tm.Created.IsZero() {
				t.Errorf("%v imported as %+v, want merchant %q site %q", u.ref, tm, u.merchant, u.site)
			}
		}

		// Once per database: another data directory's file (a second
		// replica) is neither imported nor renamed.
		other := filepath.Join(t.TempDir(), registry.LegacyFile)
		copyFile(t, filepath.Join("testdata", "registry-v1.db"), other)
		if n, err := registry.ImportFile(ctx, db, other, "", nil); err != nil || n != 0 {
			t.Errorf("second ImportFile = %d, %v; want 0, nil", n, err)
		}
		if _, err := os.Stat(other); err != nil {
			t.Errorf("another replica's file was moved: %v", err)
		}
		// The same file found again (a crash before the rename) is renamed.
		if err := os.Rename(file+".imported", file); err != nil {
			t.Fatal(err)
		}
		if n, err := registry.ImportFile(ctx, db, file, "", nil); err != nil || n != 0 {
			t.Errorf("ImportFile of the file already imported = %d, %v; want 0, nil", n, err)
		}
		if _, err := os.Stat(file + ".imported"); err != nil {
			t.Errorf("the file already imported was not renamed: %v", err)
		}
		// No file: nothing to do.
		if n, err := registry.ImportFile(ctx, db, filepath.Join(t.TempDir(), registry.LegacyFile), "", nil); err != nil || n != 0 {
			t.Errorf("ImportFile without a file = %d, %v", n, err)
		}
	})
}

// TestImportWholeOrNothing: an import that fails in the database (here
// the secrets could not be written by the caller) leaves no terminal,
// on either engine.
func TestImportWholeOrNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := openOn(t, db, registry.Options{HashMemoryKiB: 64})
		var sb strings.Builder
		sb.WriteString(header + "\n")
		for i := range 2500 { // several multi-row statements
			fmt.Fprintf(&sb, "acme,T-%d,A920,Shop,Pier 1,north,,\n", i)
		}
		_, err := r.Import(context.Background(), strings.NewReader(sb.String()), func([]registry.Credential) error {
			return errors.New("disk full")
		})
		if err == nil {
			t.Fatal("Import succeeded")
		}
		r2 := openOn(t, db, registry.Options{HashMemoryKiB: 64})
		if n, _ := r2.Count(context.Background()); n != 0 {
			t.Errorf("%d terminals in the database after a failed import, want 0", n)
		}
		if n, _ := r.Count(context.Background()); n != 0 {
			t.Errorf("%d terminals in memory after a failed import, want 0", n)
		}
	})
}

// TestOnProvisioned: terminals imported by another process are handed to
// the hook (the health engine's never-connected list) after a sync, once.
func TestOnProvisioned(t *testing.T) {
	db := storetest.SQLite(t)
	opts := registry.Options{HashMemoryKiB: 64, SyncInterval: 50 * time.Millisecond}
	a, b := openOn(t, db, opts), openOn(t, db, opts)
	got := make(chan []posfleet.TerminalRef, 10)
	b.OnProvisioned(func(refs []posfleet.TerminalRef) { got <- refs })
	creds := importFile(t, a, "good.csv").Credentials
	var seen []posfleet.TerminalRef
	deadline := time.After(5 * time.Second)
	for len(seen) < len(creds) {
		select {
		case refs := <-got:
			seen = append(seen, refs...)
		case <-deadline:
			t.Fatalf("hook got %v, want the %d imported terminals", seen, len(creds))
		}
	}
	rotateT1(t, a, rotatedSecret)
	select {
	case refs := <-got:
		t.Errorf("hook got %v for a rotation", refs)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestUpgradeKeepsVerifiedCredentials: a data directory of the previous
// release with its credential cache (testdata/registry-v1-cached.db and
// its key file, written by the bbolt registry): the entries come along,
// so that the fleet reconnecting after the upgrade skips argon2id; the
// short secret, never persisted, and the rotated-away one are verified
// slowly as before.
func TestUpgradeKeepsVerifiedCredentials(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		file, key := filepath.Join(dir, registry.LegacyFile), filepath.Join(dir, "credential-cache.key")
		copyFile(t, filepath.Join("testdata", "registry-v1-cached.db"), file)
		copyFile(t, filepath.Join("testdata", "registry-v1-cached.key"), key)
		if n, err := registry.ImportFile(ctx, db, file, key, nil); err != nil || n != len(upgradeTerminals) {
			t.Fatalf("ImportFile = %d, %v", n, err)
		}
		r := openOn(t, db, registry.Options{CacheKeyFile: key})
		for _, u := range upgradeTerminals {
			want := int64(0)
			if len(u.secret) < registry.MinPersistedSecretLen {
				want = 1
			}
			if n, err := authCounting(r, u.ref, u.secret); err != nil || n != want {
				t.Errorf("Authenticate %v after the upgrade: %v, %d slow verifications; want %d", u.ref, err, n, want)
			}
			if u.oldSecret != "" {
				if err := auth(r, u.ref, u.oldSecret); !errors.Is(err, registry.ErrBadCredentials) {
					t.Errorf("secret of %v before its rotation: %v", u.ref, err)
				}
			}
		}
	})
}
