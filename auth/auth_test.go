package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/auth"
)

func open(t *testing.T) (*auth.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.db")
	s, err := auth.Open(path, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestUsers(t *testing.T) {
	s, _ := open(t)
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
	users, err := s.Users(ctx)
	if err != nil || len(users) != 2 {
		t.Fatalf("Users = %v, %v", users, err)
	}
}

func TestUnknownUserTakesAsLongAsWrongPassword(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	s, err := auth.Open(path, auth.Options{BcryptCost: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
	s, path := open(t)
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
	toks, err := s.Tokens(ctx)
	if err != nil || len(toks) != 1 {
		t.Fatalf("Tokens = %v, %v", toks, err)
	}
	if err := s.RevokeToken(ctx, toks[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyToken(ctx, tok); !errors.Is(err, auth.ErrBadToken) {
		t.Errorf("revoked token still verifies: %v", err)
	}
	if err := s.RevokeToken(ctx, toks[0].ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("second revoke = %v", err)
	}
	// The session key survives a reopen.
	k1, _ := s.SessionKey()
	s.Close()
	s2, err := auth.Open(path, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	k2, _ := s2.SessionKey()
	if len(k1) != 32 || string(k1) != string(k2) {
		t.Error("session key changed across a reopen")
	}
}

func TestManyTokensVerify(t *testing.T) {
	s, _ := open(t)
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
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "users.db")
	s, err := auth.Open(path, auth.Options{BcryptCost: 4, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
}
