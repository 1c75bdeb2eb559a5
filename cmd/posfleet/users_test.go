package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/web"
)

// cliIn runs the posfleet CLI on the data directory dir and returns its
// exit code, standard output and standard error.
func cliIn(dir string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"--data-dir", dir}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestUsersDisableEnableDelete: the CLI disables, enables and deletes
// users, and a disabled user cannot sign in.
func TestUsersDisableEnableDelete(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("POSFLEET_PASSWORD", "correct horse battery")
	cli := func(args ...string) (int, string) {
		code, out, errs := cliIn(dir, append([]string{"users"}, args...)...)
		return code, out + errs
	}
	signIn := func() error {
		ctx := context.Background()
		db, err := store.Open(ctx, store.URLFor(dir, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		s, err := auth.New(ctx, db, auth.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.SignIn(ctx, "alice", "correct horse battery")
		return err
	}
	if code, out := cli("add", "alice", "--tenant", "acme"); code != 0 {
		t.Fatalf("add: %d %s", code, out)
	}
	if code, out := cli("add", "alice", "--tenant", "acme"); code == 0 || !strings.Contains(out, "already exists") {
		t.Errorf("adding alice twice: %d %s", code, out)
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
	if code, out := cli("delete", "alice"); code == 0 || !strings.Contains(out, "no user") {
		t.Errorf("deleting a missing user: %d %s", code, out)
	}
}

// TestUsersAndTokensWhileServing: with `posfleet serve` running on the
// data directory, the CLI works on its database (it used to refuse: the
// bbolt file was locked), and the server sees every change at its next
// request: a token made by the CLI is accepted at once, a token revoked
// stops at once, a user disabled loses its session at once.
func TestUsersAndTokensWhileServing(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	srv := startServer(t, testConfig(dir, influx))
	base := "http://" + srv.HTTPAddr().String()

	code, tok, errs := cliIn(dir, "tokens", "create", "grafana", "--tenant", "acme", "--description", "the Grafana dashboards")
	tok = strings.TrimSpace(tok)
	if code != 0 || !strings.HasPrefix(tok, "pft_") {
		t.Fatalf("tokens create while serving: %d %q %s", code, tok, errs)
	}
	if code, b := apiCall(t, srv, tok, "GET", "/api/v1/me", ""); code != http.StatusOK || !strings.Contains(string(b), `"grafana"`) {
		t.Fatalf("the running server refuses the CLI's token: %d %s", code, b)
	}
	code, list, errs := cliIn(dir, "tokens", "list")
	id := strings.Split(tok, "_")[1]
	if code != 0 || !strings.Contains(list, id) || !strings.Contains(list, "the Grafana dashboards") || strings.Contains(list, tok) {
		t.Errorf("tokens list: %d %s %s", code, list, errs)
	}
	if code, out, errs := cliIn(dir, "tokens", "revoke", id); code != 0 {
		t.Fatalf("tokens revoke: %d %s %s", code, out, errs)
	}
	if code, b := apiCall(t, srv, tok, "GET", "/api/v1/me", ""); code != http.StatusUnauthorized {
		t.Errorf("a token revoked by the CLI still works: %d %s", code, b)
	}

	t.Setenv("POSFLEET_PASSWORD", "correct horse battery")
	if code, out, errs := cliIn(dir, "users", "add", "alice", "--tenant", "acme"); code != 0 {
		t.Fatalf("users add while serving: %d %s %s", code, out, errs)
	}
	c := signInWeb(t, base, "alice", "correct horse battery")
	me := func() int {
		resp, err := c.Get(base + "/api/v1/me")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := me(); code != http.StatusOK {
		t.Fatalf("alice's session: %d", code)
	}
	if code, out, errs := cliIn(dir, "users", "disable", "alice"); code != 0 {
		t.Fatalf("users disable while serving: %d %s %s", code, out, errs)
	}
	if code := me(); code != http.StatusUnauthorized {
		t.Errorf("alice's next request after users disable: %d, want 401", code)
	}
}

// TestUsersImportedFromPreviousRelease: the CLI, run before the first
// `serve` of the new release, imports the previous release's users.db
// like serve would, and its users are listed.
func TestUsersImportedFromPreviousRelease(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "auth", "testdata", "users-v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cliIn(dir, "users", "list")
	if code != 0 || !strings.Contains(out, "ops-acme") || !strings.Contains(out, "gone") {
		t.Fatalf("users list: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "users.db.imported")); err != nil {
		t.Error(err)
	}
}

// TestReplicasShareUsers: two `posfleet serve` processes on one database
// (two web replicas) share people and scripts: a token made through one's
// API works on the other at once and stops on both when revoked on the
// other; a session signed in on one counts on the other (one session
// key) and ends on both when the user is disabled through either.
func TestReplicasShareUsers(t *testing.T) {
	influx := influxtest.Start(t)
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "shared.db")
	replica := func() *server.Server {
		cfg := testConfig(t.TempDir(), influx)
		cfg.DatabaseURL = dbURL
		return startServer(t, cfg)
	}
	one, two := replica(), replica()
	ctx := context.Background()
	admin, err := one.Users().CreateToken(ctx, "admin", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	code, b := apiCall(t, one, admin, "POST", "/api/v1/tokens", `{"name":"grafana","tenant":"acme"}`)
	var made web.NewTokenResponse
	if code != http.StatusCreated || json.Unmarshal(b, &made) != nil {
		t.Fatalf("create a token on one: %d %s", code, b)
	}
	if code, b := apiCall(t, two, made.Secret, "GET", "/api/v1/me", ""); code != http.StatusOK {
		t.Fatalf("the token made on one, on two: %d %s", code, b)
	}
	if code, b := apiCall(t, two, admin, "DELETE", "/api/v1/tokens/"+made.Token.ID, ""); code != http.StatusOK {
		t.Fatalf("revoke on two: %d %s", code, b)
	}
	for name, srv := range map[string]*server.Server{"one": one, "two": two} {
		if code, _ := apiCall(t, srv, made.Secret, "GET", "/api/v1/me", ""); code != http.StatusUnauthorized {
			t.Errorf("the revoked token on %s: %d", name, code)
		}
	}

	if code, b := apiCall(t, two, admin, "POST", "/api/v1/users", `{"name":"alice","tenant":"acme","password":"correct horse battery"}`); code != http.StatusCreated {
		t.Fatalf("add a user on two: %d %s", code, b)
	}
	c := signInWeb(t, "http://"+one.HTTPAddr().String(), "alice", "correct horse battery")
	me := func(srv *server.Server) int {
		resp, err := c.Get("http://" + srv.HTTPAddr().String() + "/api/v1/me")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := me(two); code != http.StatusOK {
		t.Fatalf("a session signed in on one, on two: %d", code)
	}
	if code, b := apiCall(t, two, admin, "POST", "/api/v1/users/alice/disable", ""); code != http.StatusOK {
		t.Fatalf("disable on two: %d %s", code, b)
	}
	if a, b := me(one), me(two); a != http.StatusUnauthorized || b != http.StatusUnauthorized {
		t.Errorf("the session of a user disabled on two: %d on one, %d on two", a, b)
	}
}

// TestUsersRolesAndScopes: the CLI adds a crew with regions, changes a
// role, refuses a crew without regions, and limits a token's scopes.
func TestUsersRolesAndScopes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("POSFLEET_PASSWORD", "correct horse battery")
	if code, out, errs := cliIn(dir, "users", "add", "wang", "--tenant", "acme", "--role", "crew", "--regions", "chengdu,mianyang"); code != 0 || !strings.Contains(out, "role crew") {
		t.Fatalf("add crew: %d %s %s", code, out, errs)
	}
	if code, out, errs := cliIn(dir, "users", "add", "li", "--tenant", "acme", "--role", "crew"); code == 0 || !strings.Contains(out+errs, "at least one region") {
		t.Errorf("a crew without regions: %d %s %s", code, out, errs)
	}
	if code, out, errs := cliIn(dir, "users", "role", "wang", "viewer"); code != 0 {
		t.Fatalf("role: %d %s %s", code, out, errs)
	}
	if code, out, _ := cliIn(dir, "users", "list"); code != 0 || !strings.Contains(out, "viewer") {
		t.Errorf("list after role: %d %s", code, out)
	}
	if code, _, errs := cliIn(dir, "tokens", "create", "grafana", "--tenant", "acme", "--scopes", "read"); code != 0 {
		t.Fatalf("token: %d %s", code, errs)
	}
	if code, out, _ := cliIn(dir, "tokens", "list"); code != 0 || !strings.Contains(out, "read") {
		t.Errorf("tokens list: %d %s", code, out)
	}
	if code, out, errs := cliIn(dir, "tokens", "create", "x", "--tenant", "acme", "--scopes", "root"); code == 0 {
		t.Errorf("a token of scope root: %d %s %s", code, out, errs)
	}
}
