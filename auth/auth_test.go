package auth_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/pgtest"
	"github.com/posfleet/posfleet/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(t *testing.T, db *store.DB, opts auth.Options) *auth.Store {
	t.Helper()
	if opts.BcryptCost == 0 {
		opts.BcryptCost = 4
	}
	s, err := auth.New(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openURL opens (and migrates) the database at url once more: another
// process, or another replica, on the same database.
func openURL(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestUsers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := newStore(t, db, auth.Options{})
		ctx := context.Background()
		if err := s.AddUser(ctx, "ops-acme", "acme", "correct horse battery"); err != nil {
			t.Fatal(err)
		}
		if err := s.AddUser(ctx, "root", auth.AllTenants, "staple staple staple"); err != nil {
			t.Fatal(err)
		}
		bad := []struct{ name, tenant, password, want string }{
			{"ops-acme", "acme", "another long password", "already exists"},
			{"x", "acme", "short", "at least 12"},
			{"with space", "acme", "correct horse battery", "name"},
			{"y", "bad tenant!", "correct horse battery", "tenant"},
			{"z", "acme", strings.Repeat("p", 73), "72"},
		}
		for _, b := range bad {
			if err := s.AddUser(ctx, b.name, b.tenant, b.password); err == nil || !strings.Contains(err.Error(), b.want) {
				t.Errorf("AddUser(%q, %q) = %v, want error with %q", b.name, b.tenant, err, b.want)
			}
		}
		if err := s.AddUser(ctx, "ops-acme", "acme", "another long password"); !errors.Is(err, auth.ErrExists) {
			t.Errorf("duplicate: %v, want ErrExists", err)
		}
		p, err := s.SignIn(ctx, "ops-acme", "correct horse battery")
		if err != nil || p.Tenant != "acme" || p.Admin() || !p.Sees("acme") || p.Sees("other") || p.Token {
			t.Fatalf("SignIn = %+v, %v", p, err)
		}
		root, err := s.SignIn(ctx, "root", "staple staple staple")
		if err != nil || !root.Admin() || !root.Sees("anything") {
			t.Fatalf("admin SignIn = %+v, %v", root, err)
		}
		for _, c := range [][2]string{{"ops-acme", "wrong password!!"}, {"nobody", "correct horse battery"}, {"", ""}} {
			if _, err := s.SignIn(ctx, c[0], c[1]); !errors.Is(err, auth.ErrBadCredentials) {
				t.Errorf("SignIn(%q) = %v, want ErrBadCredentials", c[0], err)
			}
		}
		if err := s.SetPassword(ctx, "ops-acme", "a new long password"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SignIn(ctx, "ops-acme", "correct horse battery"); err == nil {
			t.Error("old password still works")
		}
		if _, err := s.SignIn(ctx, "ops-acme", "a new long password"); err != nil {
			t.Error(err)
		}
		if err := s.SetPassword(ctx, "nobody", "a new long password"); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("SetPassword of nobody: %v", err)
		}
		users, err := s.Users(ctx)
		if err != nil || len(users) != 2 || users[0].Name != "ops-acme" || users[1].Name != "root" || users[1].Tenant != auth.AllTenants {
			t.Fatalf("Users = %v, %v", users, err)
		}
	})
}

func TestUnknownUserTakesAsLongAsWrongPassword(t *testing.T) {
	s := newStore(t, storetest.SQLite(t), auth.Options{BcryptCost: 10})
	ctx := context.Background()
	if err := s.AddUser(ctx, "ops", "acme", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.SignIn(ctx, "nobody", "whatever whatever")
	if d := time.Since(start); d < 10*time.Millisecond {
		t.Errorf("unknown user answered in %v: existence shows by timing", d)
	}
}

func TestTokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := newStore(t, db, auth.Options{})
		ctx := context.Background()
		tok, err := s.CreateToken(ctx, "grafana", "acme")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, "pft_") {
			t.Errorf("token %q lacks its prefix", tok)
		}
		p, err := s.VerifyToken(ctx, tok)
		if err != nil || p.Tenant != "acme" || !p.Token || p.Name != "grafana" {
			t.Fatalf("VerifyToken = %+v, %v", p, err)
		}
		for _, bad := range []string{"", "pft_", "pft_x_y", tok + "x", strings.Replace(tok, "pft_", "pfx_", 1), tok[:len(tok)-1]} {
			if _, err := s.VerifyToken(ctx, bad); !errors.Is(err, auth.ErrBadToken) {
				t.Errorf("VerifyToken(%q) = %v, want ErrBadToken", bad, err)
			}
		}
		secret, made, err := s.NewToken(ctx, auth.Token{Name: "deploy", Description: "the deploy pipeline's", Tenant: auth.AllTenants, CreatedBy: "root"})
		if err != nil || !strings.HasPrefix(secret, "pft_"+made.ID+"_") {
			t.Fatalf("NewToken = %q, %+v, %v", secret, made, err)
		}
		if _, _, err := s.NewToken(ctx, auth.Token{Name: "x", Tenant: "acme", Description: "two\nlines"}); err == nil || !strings.Contains(err.Error(), "description") {
			t.Errorf("a description with a newline: %v", err)
		}
		toks, err := s.Tokens(ctx)
		if err != nil || len(toks) != 2 {
			t.Fatalf("Tokens = %v, %v", toks, err)
		}
		var listed auth.Token
		for _, tk := range toks {
			if tk.ID == made.ID {
				listed = tk
			}
		}
		if !reflect.DeepEqual(listed, made) || listed.Description != "the deploy pipeline's" || listed.CreatedBy != "root" {
			t.Errorf("listed %+v, made %+v", listed, made)
		}
		// The database holds the secret's hash, never the secret.
		var n int
		secretPart := tok[strings.LastIndex(tok, "_")+1:]
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens WHERE hash = $1 OR name = $2 OR id = $2`, []byte(secretPart), secretPart).Scan(&n); err != nil || n != 0 {
			t.Errorf("the secret is stored in clear (%d rows, %v)", n, err)
		}
		id := strings.Split(tok, "_")[1]
		if err := s.RevokeToken(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyToken(ctx, tok); !errors.Is(err, auth.ErrBadToken) {
			t.Errorf("revoked token still verifies: %v", err)
		}
		if err := s.RevokeToken(ctx, id); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("second revoke = %v", err)
		}
		// The session key survives a new store over the same database.
		k1, _ := s.SessionKey()
		k2, _ := newStore(t, db, auth.Options{}).SessionKey()
		if len(k1) != 32 || string(k1) != string(k2) {
			t.Error("session key changed across a reopen")
		}
	})
}

func TestManyTokensVerify(t *testing.T) {
	s := newStore(t, storetest.SQLite(t), auth.Options{})
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		tok, err := s.CreateToken(ctx, "t", "acme")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyToken(ctx, tok); err != nil {
			t.Fatalf("token %q does not verify: %v", tok, err)
		}
	}
}

// TestSessionsEndInStore: a session counts while its user exists, is
// enabled and at the same epoch, and the session was not ended; ended
// sessions are kept only until their expiry.
func TestSessionsEndInStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		s := newStore(t, db, auth.Options{Now: func() time.Time { return now }})
		ctx := context.Background()
		const pw = "correct horse battery"
		if err := s.AddUser(ctx, "alice", "acme", pw); err != nil {
			t.Fatal(err)
		}
		signIn := func() auth.Principal {
			t.Helper()
			p, err := s.SignIn(ctx, "alice", pw)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		p := signIn()
		check := func(epoch uint64, id string) error { return s.CheckSession(ctx, "alice", epoch, id) }
		if err := check(p.Epoch, "s1"); err != nil {
			t.Fatalf("fresh session: %v", err)
		}
		for _, tc := range []struct {
			name  string
			epoch uint64
			id    string
		}{{"other epoch", p.Epoch + 1, "s1"}, {"no id", p.Epoch, ""}} {
			if err := check(tc.epoch, tc.id); !errors.Is(err, auth.ErrSessionEnded) {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
		if err := s.EndSession(ctx, "s1", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := check(p.Epoch, "s1"); !errors.Is(err, auth.ErrSessionEnded) {
			t.Errorf("ended session: %v", err)
		}
		if err := check(p.Epoch, "s2"); err != nil {
			t.Errorf("another session of the same user: %v", err)
		}
		if err := s.SetPassword(ctx, "alice", pw); err != nil {
			t.Fatal(err)
		}
		if err := check(p.Epoch, "s2"); !errors.Is(err, auth.ErrSessionEnded) {
			t.Errorf("session from before a password change: %v", err)
		}
		p = signIn()
		if err := s.SetDisabled(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		if err := check(p.Epoch, "s3"); !errors.Is(err, auth.ErrSessionEnded) {
			t.Errorf("session of a disabled user: %v", err)
		}
		if _, err := s.SignIn(ctx, "alice", pw); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("sign-in of a disabled user: %v", err)
		}
		if err := s.SetDisabled(ctx, "alice", false); err != nil {
			t.Fatal(err)
		}
		if err := check(p.Epoch, "s3"); !errors.Is(err, auth.ErrSessionEnded) {
			t.Errorf("a session from before disabling, after enabling again: %v", err)
		}
		p = signIn()
		if err := s.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if err := check(p.Epoch, "s4"); !errors.Is(err, auth.ErrSessionEnded) {
			t.Errorf("session of a deleted user: %v", err)
		}
		if s.UserExists(ctx, "alice") {
			t.Error("deleted user still exists")
		}
		if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("deleting twice: %v", err)
		}
		if err := s.SetDisabled(ctx, "alice", true); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("disabling nobody: %v", err)
		}
		// Ended sessions are dropped once past their expiry: s1 is gone after
		// another sign-out two hours later, so the set stays small.
		now = now.Add(2 * time.Hour)
		if err := s.EndSession(ctx, "s5", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.AddUser(ctx, "alice", "acme", pw); err != nil {
			t.Fatal(err)
		}
		p = signIn()
		if err := check(p.Epoch, "s1"); err != nil {
			t.Errorf("an ID ended and expired long ago: %v (want it forgotten)", err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ended_sessions`).Scan(&n); err != nil || n != 1 {
			t.Errorf("%d ended sessions kept (%v), want 1", n, err)
		}
	})
}

// TestReplicas: two stores on one database, as two web replicas (or the
// CLI beside a running server) have: what one does counts on the other at
// once, with no cache in between.
func TestReplicas(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			url := storetest.URL(t, d)
			one := newStore(t, openURL(t, url), auth.Options{})
			two := newStore(t, openURL(t, url), auth.Options{})
			ctx := context.Background()
			k1, _ := one.SessionKey()
			k2, _ := two.SessionKey()
			if string(k1) != string(k2) {
				t.Error("the replicas sign sessions with different keys")
			}
			tok, err := one.CreateToken(ctx, "grafana", "acme")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := two.VerifyToken(ctx, tok); err != nil {
				t.Errorf("a token made on one does not verify on two: %v", err)
			}
			if err := one.RevokeToken(ctx, strings.Split(tok, "_")[1]); err != nil {
				t.Fatal(err)
			}
			if _, err := two.VerifyToken(ctx, tok); !errors.Is(err, auth.ErrBadToken) {
				t.Errorf("a token revoked on one still verifies on two: %v", err)
			}
			const pw = "correct horse battery"
			if err := two.AddUser(ctx, "alice", "acme", pw); err != nil {
				t.Fatal(err)
			}
			p, err := one.SignIn(ctx, "alice", pw)
			if err != nil {
				t.Fatalf("a user added on two cannot sign in on one: %v", err)
			}
			if err := one.SetDisabled(ctx, "alice", true); err != nil {
				t.Fatal(err)
			}
			if _, err := two.SignIn(ctx, "alice", pw); !errors.Is(err, auth.ErrBadCredentials) {
				t.Errorf("a user disabled on one signs in on two: %v", err)
			}
			if err := two.CheckSession(ctx, "alice", p.Epoch, "s1"); !errors.Is(err, auth.ErrSessionEnded) {
				t.Errorf("the session of a user disabled on one counts on two: %v", err)
			}
		})
	}
}

// TestSessionKeyMadeOnce: processes starting together on an empty
// database end up with one session key.
func TestSessionKeyMadeOnce(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			url := storetest.URL(t, d)
			dbs := make([]*store.DB, 4)
			for i := range dbs {
				dbs[i] = openURL(t, url)
			}
			keys := make([][]byte, len(dbs))
			var wg sync.WaitGroup
			for i, db := range dbs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := auth.New(context.Background(), db, auth.Options{BcryptCost: 4})
					if err != nil {
						t.Error(err)
						return
					}
					keys[i], _ = s.SessionKey()
				}()
			}
			wg.Wait()
			for i := range keys {
				if len(keys[i]) != 32 || string(keys[i]) != string(keys[0]) {
					t.Fatalf("key %d is %x, key 0 %x", i, keys[i], keys[0])
				}
			}
		})
	}
}
