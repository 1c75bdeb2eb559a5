package auth_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// The fixture testdata/users-v1.db, written by the previous release's own
// code (testdata/README.md says what it holds).
const (
	fixtureToken      = "pft_bbc91e1921bd01ec_vBltOhowevx_f05XYrKzJaz2eZ7p4J-oDSilIViaYkw"
	fixtureEpoch      = 9163155702968469868
	fixtureSessionKey = "549b3ed94fc1ec08007a8c4e85acd1dd1e1b47b948bbe1bb4b6af129ca069b51"
)

// copyFixture puts the previous release's users.db into a new data directory.
func copyFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "users-v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, auth.LegacyFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestImportPreviousRelease: the users.db of the previous release is
// imported at first start: users sign in with their passwords, the
// disabled one stays disabled, the token verifies, a signed-out session
// stays out, a session signed in before the upgrade still counts (same
// key, same epoch), and the file is renamed so it is not imported twice.
func TestImportPreviousRelease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		dir := copyFixture(t)
		ctx := context.Background()
		s := newStore(t, db, auth.Options{DataDir: dir})
		for _, u := range []struct{ name, password, tenant string }{
			{"ops-acme", "correct horse battery", "acme"},
			{"root", "staple staple staple", auth.AllTenants},
		} {
			p, err := s.SignIn(ctx, u.name, u.password)
			if err != nil || p.Tenant != u.tenant {
				t.Errorf("%s signs in: %+v, %v", u.name, p, err)
			}
		}
		if _, err := s.SignIn(ctx, "gone", "disabled user password"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("the disabled user signs in: %v", err)
		}
		users, err := s.Users(ctx)
		if err != nil || len(users) != 3 || !users[0].Disabled || users[0].Name != "gone" || users[1].Created.IsZero() {
			t.Errorf("Users = %+v, %v", users, err)
		}
		p, err := s.VerifyToken(ctx, fixtureToken)
		if err != nil || p.Name != "grafana" || p.Tenant != "acme" {
			t.Errorf("the token of the previous release: %+v, %v", p, err)
		}
		if err := s.CheckSession(ctx, "ops-acme", fixtureEpoch, "a-session-from-before"); err != nil {
			t.Errorf("a session signed in before the upgrade: %v", err)
		}
		if err := s.CheckSession(ctx, "ops-acme", fixtureEpoch, "ended-session-1"); !errors.Is(err, auth.ErrSessionEnded) {
			t.Errorf("a session signed out before the upgrade: %v", err)
		}
		key, _ := s.SessionKey()
		if hex.EncodeToString(key) != fixtureSessionKey {
			t.Errorf("session key %x, want the previous release's", key)
		}
		if _, err := os.Stat(filepath.Join(dir, "users.db")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("users.db still there: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "users.db.imported")); err != nil {
			t.Errorf("users.db.imported: %v", err)
		}

		// Changes made since are not undone by a second users.db (another
		// replica's, or the file put back): it is left alone.
		if err := s.SetPassword(ctx, "ops-acme", "a newer password"); err != nil {
			t.Fatal(err)
		}
		again := copyFixture(t)
		s2 := newStore(t, db, auth.Options{DataDir: again})
		if _, err := s2.SignIn(ctx, "ops-acme", "a newer password"); err != nil {
			t.Errorf("a second import undid a password change: %v", err)
		}
		if _, err := os.Stat(filepath.Join(again, "users.db")); err != nil {
			t.Errorf("a users.db not imported was moved: %v", err)
		}
	})
}

// TestImportKeepsExistingSessionKey: a database that already has a
// session key (another replica started first) keeps it, so that the
// replicas agree.
func TestImportKeepsExistingSessionKey(t *testing.T) {
	db := storetest.SQLite(t)
	first := newStore(t, db, auth.Options{})
	k1, _ := first.SessionKey()
	s := newStore(t, db, auth.Options{DataDir: copyFixture(t)})
	k2, _ := s.SessionKey()
	if string(k1) != string(k2) {
		t.Error("the import replaced a session key in use")
	}
	if _, err := s.VerifyToken(context.Background(), fixtureToken); err != nil {
		t.Errorf("token not imported: %v", err)
	}
}
