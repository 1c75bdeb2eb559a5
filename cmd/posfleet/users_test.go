package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/auth"
)

// TestUsersDisableEnableDelete: the CLI disables, enables and deletes
// users, and a disabled user cannot sign in.
func TestUsersDisableEnableDelete(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("POSFLEET_PASSWORD", "correct horse battery")
	cli := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"--data-dir", dir, "users"}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	signIn := func() error {
		s, err := auth.Open(filepath.Join(dir, "users.db"), auth.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.SignIn(context.Background(), "alice", "correct horse battery")
		return err
	}
	if code, out := cli("add", "alice", "--tenant", "acme"); code != 0 {
		t.Fatalf("add: %d %s", code, out)
	}
	if code, out := cli("disable", "alice"); code != 0 || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: %d %s", code, out)
	}
	if err := signIn(); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("sign-in of a disabled user: %v", err)
	}
	if _, out := cli("list"); !strings.Contains(out, "disabled") {
		t.Errorf("list does not show the state: %s", out)
	}
	if code, out := cli("enable", "alice"); code != 0 {
		t.Fatalf("enable: %d %s", code, out)
	}
	if err := signIn(); err != nil {
		t.Errorf("sign-in after enable: %v", err)
	}
	if code, out := cli("delete", "alice"); code != 0 {
		t.Fatalf("delete: %d %s", code, out)
	}
	if code, out := cli("delete", "alice"); code == 0 || !strings.Contains(out, "not found") {
		t.Errorf("deleting a missing user: %d %s", code, out)
	}
}
