package registry_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/registry"
)

// persistedSetup is a registry directory with a credential cache key file.
// Small argon2 parameters keep the many verifications of these tests fast;
// the cache does not depend on them.
type persistedSetup struct {
	db, keyFile string
}

func newPersistedSetup(t testing.TB) persistedSetup {
	dir := t.TempDir()
	return persistedSetup{db: filepath.Join(dir, "posfleet.db"), keyFile: filepath.Join(dir, "credential-cache.key")}
}

func (s persistedSetup) opts() registry.Options {
	return registry.Options{HashMemoryKiB: 64, CacheKeyFile: s.keyFile}
}

func (s persistedSetup) open(t testing.TB) *registry.Registry {
	t.Helper()
	return openAt(t, s.db, s.opts())
}

// reopen closes r, which writes what is pending, and opens the registry again.
func (s persistedSetup) reopen(t testing.TB, r *registry.Registry) *registry.Registry {
	t.Helper()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return s.open(t)
}

func persisted(t testing.TB, r *registry.Registry) []string {
	t.Helper()
	refs, err := registry.Persisted(r)
	if err != nil {
		t.Fatalf("Persisted: %v", err)
	}
	var out []string
	for _, rf := range refs {
		out = append(out, rf.String())
	}
	slices.Sort(out)
	return out
}

// authCounting authenticates and returns how many slow verifications it took.
func authCounting(r *registry.Registry, rf posfleet.TerminalRef, secret string) (int64, error) {
	before := registry.SlowVerifications(r)
	err := auth(r, rf, secret)
	return registry.SlowVerifications(r) - before, err
}

func TestCacheKeyFile(t *testing.T) {
	t.Run("created private with 32 bytes and reused", func(t *testing.T) {
		s := newPersistedSetup(t)
		r := s.open(t)
		fi, err := os.Stat(s.keyFile)
		if err != nil {
			t.Fatalf("key file: %v", err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("key file mode %04o, want 0600", perm)
		}
		if fi.Size() != 32 {
			t.Errorf("key file has %d bytes, want 32", fi.Size())
		}
		key, _ := os.ReadFile(s.keyFile)
		r.Close()
		s.open(t)
		if again, _ := os.ReadFile(s.keyFile); string(again) != string(key) {
			t.Error("reopen changed an existing key")
		}
	})

	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string // substring of Open's error
	}{
		{"empty", func(t *testing.T, path string) { write(t, path, 0, 0o600) }, "0 bytes, want 32"},
		{"31 bytes", func(t *testing.T, path string) { write(t, path, 31, 0o600) }, "31 bytes, want 32"},
		{"33 bytes", func(t *testing.T, path string) { write(t, path, 33, 0o600) }, "33 bytes, want 32"},
		{"group readable", func(t *testing.T, path string) { write(t, path, 32, 0o640) }, "mode 0640 lets group or others read it; want 0600"},
		{"others readable", func(t *testing.T, path string) { write(t, path, 32, 0o604) }, "mode 0604 lets group or others read it"},
		{"world writable", func(t *testing.T, path string) { write(t, path, 32, 0o622) }, "mode 0622"},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"missing directory", func(t *testing.T, path string) {}, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPersistedSetup(t)
			if tt.name == "missing directory" {
				s.keyFile = filepath.Join(filepath.Dir(s.keyFile), "no", "key")
			}
			tt.setup(t, s.keyFile)
			before, _ := os.ReadFile(s.keyFile)
			r, err := registry.Open(context.Background(), openDB(t, s.db), s.opts())
			if err == nil {
				r.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "credential cache key") {
				t.Errorf("error %q, want one about the credential cache key saying %q", err, tt.want)
			}
			if after, _ := os.ReadFile(s.keyFile); string(after) != string(before) {
				t.Error("Open changed a key file it refused")
			}
			// The refusal leaves the database usable.
			openAt(t, s.db, registry.Options{HashMemoryKiB: 64})
		})
	}
}

func write(t *testing.T, path string, size int, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, size), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is subject to the umask.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestPersistedCache(t *testing.T) {
	t.Run("verified terminals skip argon2id after reopen; wrong secrets still refused", func(t *testing.T) {
		s := newPersistedSetup(t)
		r := s.open(t)
		creds := importFile(t, r, "good.csv").Credentials
		for _, c := range creds {
			if n, err := authCounting(r, c.TerminalRef, c.Secret); err != nil || n != 1 {
				t.Fatalf("first Authenticate %v: %v, %d slow verifications; want 1", c.TerminalRef, err, n)
			}
		}
		r = s.reopen(t, r)
		if got := persisted(t, r); len(got) != len(creds) {
			t.Errorf("persisted %v, want all %d terminals", got, len(creds))
		}
		for _, c := range creds {
			if n, err := authCounting(r, c.TerminalRef, c.Secret); err != nil || n != 0 {
				t.Errorf("Authenticate %v after reopen: %v, %d slow verifications; want 0", c.TerminalRef, err, n)
			}
		}
		for _, c := range creds {
			wrong := c.Secret[:len(c.Secret)-1] + "x"
			n, err := authCounting(r, c.TerminalRef, wrong)
			if !errors.Is(err, registry.ErrBadCredentials) {
				t.Errorf("wrong secret of %v after reopen: %v, want ErrBadCredentials", c.TerminalRef, err)
			}
			if n != 1 {
				t.Errorf("wrong secret of a cached %v took %d slow verifications, want 1 (as for any terminal)", c.TerminalRef, n)
			}
		}
	})

	t.Run("a new key file drops the persisted entries", func(t *testing.T) {
		s := newPersistedSetup(t)
		r := s.open(t)
		creds := importFile(t, r, "good.csv").Credentials
		for _, c := range creds {
			auth(r, c.TerminalRef, c.Secret)
		}
		r.Close()
		oldKey, _ := os.ReadFile(s.keyFile)
		if err := os.Remove(s.keyFile); err != nil {
			t.Fatal(err)
		}
		r = s.open(t)
		if newKey, _ := os.ReadFile(s.keyFile); len(newKey) != 32 || string(newKey) == string(oldKey) {
			t.Fatal("no new key made")
		}
		if got := persisted(t, r); len(got) != 0 {
			t.Errorf("persisted after a new key: %v, want none", got)
		}
		for _, c := range creds {
			if n, err := authCounting(r, c.TerminalRef, c.Secret); err != nil || n != 1 {
				t.Errorf("Authenticate %v under a new key: %v, %d slow verifications; want 1", c.TerminalRef, err, n)
			}
		}
	})

	t.Run("only secrets of at least 32 characters are persisted", func(t *testing.T) {
		tests := []struct {
			secret  string
			persist bool
		}{
			{strings.Repeat("s", 16), false},
			{"operator-chosen-secret-0201", false},
			{strings.Repeat("s", registry.MinPersistedSecretLen-1), false},
			{strings.Repeat("s", registry.MinPersistedSecretLen), true},
			{strings.Repeat("秘", 16), false},              // 48 bytes, but 16 characters
			{strings.Repeat("0123456789abcdef", 4), true}, // the simulator's 64 hex characters
		}
		s := newPersistedSetup(t)
		r := s.open(t)
		var csv strings.Builder
		csv.WriteString(header + ",secret\n")
		for i, tt := range tests {
			fmt.Fprintf(&csv, "acme,T-%d,A920,Shop,Pier 1,north,,,%s\n", i, tt.secret)
		}
		if _, err := importString(r, csv.String()); err != nil {
			t.Fatal(err)
		}
		for i, tt := range tests {
			if err := auth(r, ref("acme", fmt.Sprint("T-", i)), tt.secret); err != nil {
				t.Fatal(err)
			}
		}
		r = s.reopen(t, r)
		stored := persisted(t, r)
		for i, tt := range tests {
			t.Run(fmt.Sprintf("%d characters %d bytes", utf8.RuneCountInString(tt.secret), len(tt.secret)), func(t *testing.T) {
				rf := ref("acme", fmt.Sprint("T-", i))
				if got := slices.Contains(stored, rf.String()); got != tt.persist {
					t.Errorf("persisted = %v, want %v", got, tt.persist)
				}
				want := int64(1)
				if tt.persist {
					want = 0
				}
				if n, err := authCounting(r, rf, tt.secret); err != nil || n != want {
					t.Errorf("Authenticate after reopen: %v, %d slow verifications; want %d", err, n, want)
				}
			})
		}
	})

	t.Run("import stores the entry of the secret it sets, replacing the old one", func(t *testing.T) {
		s := newPersistedSetup(t)
		r := s.open(t)
		creds := secrets(importFile(t, r, "good.csv").Credentials)
		t1, t2 := ref("acme", "T-0001"), ref("acme", "T-0002")
		r = s.reopen(t, r)
		// Generated secrets are 43 characters: a freshly provisioned fleet
		// connects without argon2id.
		if n, err := authCounting(r, t2, creds[t2]); err != nil || n != 0 {
			t.Errorf("imported T-0002 after reopen: %v, %d slow verifications; want 0", err, n)
		}

		const newSecret = rotatedSecret
		rotateT1(t, r, newSecret)
		if err := auth(r, t1, creds[t1]); !errors.Is(err, registry.ErrBadCredentials) {
			t.Errorf("old secret after rotation: %v, want ErrBadCredentials", err)
		}
		r = s.reopen(t, r)
		if err := auth(r, t1, creds[t1]); !errors.Is(err, registry.ErrBadCredentials) {
			t.Errorf("old secret after rotation and reopen: %v, want ErrBadCredentials", err)
		}
		if n, err := authCounting(r, t1, newSecret); err != nil || n != 0 {
			t.Errorf("new secret: %v, %d slow verifications; want 0 (stored by the import)", err, n)
		}
		if n, err := authCounting(r, t2, creds[t2]); err != nil || n != 0 {
			t.Errorf("untouched T-0002: %v, %d slow verifications; want 0", err, n)
		}

		// A secret too short to persist: the import deletes the entry.
		const short = "short-secret-17ch"
		rotateT1(t, r, short)
		if got := persisted(t, r); slices.Contains(got, t1.String()) || !slices.Contains(got, t2.String()) {
			t.Errorf("persisted after rotating T-0001 to a short secret: %v, want T-0002 and not T-0001", got)
		}
		r = s.reopen(t, r)
		if err := auth(r, t1, newSecret); !errors.Is(err, registry.ErrBadCredentials) {
			t.Errorf("previous secret after the second rotation: %v, want ErrBadCredentials", err)
		}
		if n, err := authCounting(r, t1, short); err != nil || n != 1 {
			t.Errorf("short secret: %v, %d slow verifications; want 1", err, n)
		}
	})

	t.Run("import without the key file still deletes the entry", func(t *testing.T) {
		// `posfleet terminals import` opens the registry without the
		// server's key file.
		s := newPersistedSetup(t)
		r := s.open(t)
		creds := secrets(importFile(t, r, "good.csv").Credentials)
		t1 := ref("acme", "T-0001")
		auth(r, t1, creds[t1])
		r.Close()

		plain := openAt(t, s.db, registry.Options{HashMemoryKiB: 64})
		if n, err := authCounting(plain, t1, creds[t1]); err != nil || n != 1 {
			t.Errorf("without a key file: %v, %d slow verifications; want 1 (memory only)", err, n)
		}
		rotateT1(t, plain, rotatedSecret)
		if got := persisted(t, plain); slices.Contains(got, t1.String()) {
			t.Errorf("persisted after rotation: %v", got)
		}
		plain.Close()

		r = s.open(t)
		if err := auth(r, t1, creds[t1]); !errors.Is(err, registry.ErrBadCredentials) {
			t.Errorf("old secret: %v, want ErrBadCredentials", err)
		}
	})

	t.Run("an entry left by a change that did not delete it is dropped", func(t *testing.T) {
		// As an older posfleet, which does not know the entries, would do:
		// rotate the secret and leave the old entry in place.
		s := newPersistedSetup(t)
		r := s.open(t)
		creds := secrets(importFile(t, r, "good.csv").Credentials)
		t1 := ref("acme", "T-0001")
		auth(r, t1, creds[t1])
		r.Close()
		old := rawVerified(t, s.db, t1, nil)
		if old == nil {
			t.Fatal("no entry persisted")
		}
		plain := openAt(t, s.db, registry.Options{HashMemoryKiB: 64})
		rotateT1(t, plain, rotatedSecret)
		plain.Close()
		rawVerified(t, s.db, t1, old)

		r = s.open(t)
		if err := auth(r, t1, creds[t1]); !errors.Is(err, registry.ErrBadCredentials) {
			t.Errorf("old secret with its stale entry: %v, want ErrBadCredentials", err)
		}
		if got := persisted(t, r); slices.Contains(got, t1.String()) {
			t.Errorf("stale entry kept: %v", got)
		}
	})

	t.Run("the writer does not store a secret changed after its verification", func(t *testing.T) {
		s := newPersistedSetup(t)
		r := s.open(t)
		creds := secrets(importFile(t, r, "good.csv").Credentials)
		t1 := ref("acme", "T-0001")
		held, release := holdWriter(t, r)
		if err := auth(r, t1, creds[t1]); err != nil {
			t.Fatal(err)
		}
		// The verification is queued and the writer held: the rotation
		// commits between the two.
		waitFor(t, held)
		rotateT1(t, r, rotatedSecret)
		release()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		// The import stored the new secret's entry. Had the writer put the
		// old one over it afterwards, Open would drop it by its tag (the
		// second line of defence) and the new secret would need argon2id.
		r = s.open(t)
		if err := auth(r, t1, creds[t1]); !errors.Is(err, registry.ErrBadCredentials) {
			t.Errorf("old secret: %v, want ErrBadCredentials", err)
		}
		if n, err := authCounting(r, t1, rotatedSecret); err != nil || n != 0 {
			t.Errorf("new secret: %v, %d slow verifications; want 0: its entry was overwritten", err, n)
		}
	})

	t.Run("concurrent first verifications are all kept", func(t *testing.T) {
		const n = 200
		s := newPersistedSetup(t)
		r := s.open(t)
		creds := provisionN(t, r, n)
		authAll(t, r, creds, 8)
		r = s.reopen(t, r)
		if got := persisted(t, r); len(got) != n {
			t.Errorf("%d persisted, want %d", len(got), n)
		}
		for _, c := range creds {
			if k, err := authCounting(r, c.TerminalRef, c.Secret); err != nil || k != 0 {
				t.Errorf("Authenticate %v after reopen: %v, %d slow verifications; want 0", c.TerminalRef, err, k)
			}
		}
	})

	t.Run("a storm of first verifications is written in one transaction", func(t *testing.T) {
		const n = 200
		s := newPersistedSetup(t)
		r := s.open(t)
		creds := provisionN(t, r, n)
		// Hold the writer until every verification is done, as a slow
		// disk would under a storm: all must go out in one commit.
		held, release := holdWriter(t, r)
		authAll(t, r, creds, 8)
		waitFor(t, held)
		release()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if b := registry.PersistBatches(r); b != 1 {
			t.Errorf("%d write transactions for %d verifications, want 1", b, n)
		}
		r = s.open(t)
		if got := persisted(t, r); len(got) != n {
			t.Errorf("%d persisted, want %d", len(got), n)
		}
	})
}

// rawVerified reads (and, with set non-nil, writes back) rf's entry in the
// database directly, as another program would: its key ID, mac and tag.
func rawVerified(t *testing.T, path string, rf posfleet.TerminalRef, set []byte) []byte {
	t.Helper()
	db := openDB(t, path)
	defer db.Close()
	ctx := context.Background()
	if set != nil {
		_, err := db.ExecContext(ctx, `INSERT INTO terminal_verified (tenant, terminal, key_id, mac, tag) VALUES ($1, $2, $3, $4, $5)`,
			rf.Tenant, rf.Terminal, set[:16], set[16:48], set[48:])
		if err != nil {
			t.Fatal(err)
		}
		return nil
	}
	var keyID, mac, tag []byte
	err := db.QueryRowContext(ctx, `SELECT key_id, mac, tag FROM terminal_verified WHERE tenant = $1 AND terminal = $2`, rf.Tenant, rf.Terminal).Scan(&keyID, &mac, &tag)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return slices.Concat(keyID, mac, tag)
}

// holdWriter stops r's background writer the first time it wakes: held is
// closed when it is stopped, and release lets it go on (also at cleanup, so
// that a failing test does not leave Close waiting for it).
func holdWriter(t *testing.T, r *registry.Registry) (held <-chan struct{}, release func()) {
	h, rel := make(chan struct{}), make(chan struct{})
	var holdOnce, releaseOnce sync.Once
	registry.SetPersistHook(r, func() {
		holdOnce.Do(func() { close(h) })
		<-rel
	})
	release = func() { releaseOnce.Do(func() { close(rel) }) }
	t.Cleanup(release)
	return h, release
}

func waitFor(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
}

// provisionN imports n terminals with generated secrets.
func provisionN(t testing.TB, r *registry.Registry, n int) []registry.Credential {
	t.Helper()
	var sb strings.Builder
	sb.WriteString(header + "\n")
	for i := range n {
		fmt.Fprintf(&sb, "acme,T-%d,A920,Shop,Pier 1,north,,\n", i)
	}
	res, err := importString(r, sb.String())
	if err != nil {
		t.Fatal(err)
	}
	return res.Credentials
}

// authAll authenticates every credential once from workers goroutines.
func authAll(t testing.TB, r *registry.Registry, creds []registry.Credential, workers int) {
	t.Helper()
	next := make(chan registry.Credential)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range next {
				if err := auth(r, c.TerminalRef, c.Secret); err != nil {
					t.Errorf("Authenticate %v: %v", c.TerminalRef, err)
				}
			}
		})
	}
	for _, c := range creds {
		next <- c
	}
	close(next)
	wg.Wait()
}

// BenchmarkOpenPersisted measures Open with a fleet's worth of persisted
// entries to load: the time a restart adds before terminals can connect.
func BenchmarkOpenPersisted(b *testing.B) {
	const n = 15000
	s := newPersistedSetup(b)
	r := s.open(b)
	creds := provisionN(b, r, n)
	authAll(b, r, creds, 4)
	if err := r.Close(); err != nil {
		b.Fatal(err)
	}
	db := openDB(b, s.db)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, err := registry.Open(context.Background(), db, s.opts())
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

// rotatedSecret is what rotateT1 usually sets: long enough to be persisted.
const rotatedSecret = "a-rotated-secret-of-more-than-32-bytes"

// rotateT1 gives acme:T-0001 a new secret through an import.
func rotateT1(t *testing.T, r *registry.Registry, secret string) {
	t.Helper()
	if _, err := importString(r, header+",secret\nacme,T-0001,A920,Shop,Pier 1,north,,,"+secret+"\n"); err != nil {
		t.Fatal(err)
	}
}
