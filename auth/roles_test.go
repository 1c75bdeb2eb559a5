package auth_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestRoles: a user's role and regions and a token's scopes are kept on
// both engines, read back by sign-in, sessions and tokens, and validated.
func TestRoles(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := newStore(t, db, auth.Options{})
		ctx := context.Background()
		const pw = "correct horse battery"
		if err := s.NewUser(ctx, posfleet.User{Name: "crew-1", Tenant: "acme", Role: posfleet.RoleCrew, Regions: []string{"north", "east"}}, pw); err != nil {
			t.Fatal(err)
		}
		if err := s.AddUser(ctx, "old-ops", "acme", pw); err != nil {
			t.Fatal(err)
		}
		p, err := s.SignIn(ctx, "crew-1", pw)
		if err != nil || p.Role != posfleet.RoleCrew || !reflect.DeepEqual(p.Regions, []string{"north", "east"}) {
			t.Fatalf("SignIn = %+v, %v", p, err)
		}
		if !p.InRegion("North") || p.InRegion("south") {
			t.Errorf("crew of north, east: InRegion wrong")
		}
		old, err := s.SignIn(ctx, "old-ops", pw)
		if err != nil || old.Role != "" || old.EffectiveRole() != posfleet.RoleOperator {
			t.Errorf("a user without a role = %+v (%s), %v; want an operator", old, old.EffectiveRole(), err)
		}

		// A role changed counts at the next request of the same session.
		if err := s.SetRole(ctx, "crew-1", posfleet.RoleViewer, nil); err != nil {
			t.Fatal(err)
		}
		sp, err := s.Session(ctx, "crew-1", p.Epoch, "session-1")
		if err != nil || sp.Role != posfleet.RoleViewer || len(sp.Regions) != 0 || sp.Tenant != "acme" {
			t.Errorf("Session after SetRole = %+v, %v", sp, err)
		}
		users, err := s.Users(ctx)
		if err != nil || len(users) != 2 || users[0].Role != posfleet.RoleViewer {
			t.Errorf("Users = %+v, %v", users, err)
		}

		bad := []struct {
			tenant  string
			role    posfleet.Role
			regions []string
			code    string
		}{
			{"acme", "boss", nil, "bad_role"},
			{"acme", posfleet.RoleAdministrator, nil, "bad_role"},
			{auth.AllTenants, posfleet.RoleTenantAdmin, nil, "bad_role"},
			{"acme", posfleet.RoleCrew, nil, "bad_regions"},
			{"acme", posfleet.RoleOperator, []string{"north"}, "bad_regions"},
		}
		for i, b := range bad {
			err := s.NewUser(ctx, posfleet.User{Name: "bad" + string(rune('a'+i)), Tenant: b.tenant, Role: b.role, Regions: b.regions}, pw)
			if code(err) != b.code {
				t.Errorf("NewUser(%s, %s, %v) = %v, want %s", b.tenant, b.role, b.regions, err, b.code)
			}
		}
		if err := s.SetRole(ctx, "nobody", posfleet.RoleViewer, nil); posfleet.ErrorKind(err) != posfleet.NotFound {
			t.Errorf("SetRole of nobody = %v", err)
		}

		// Tokens: scopes kept; the creator's role comes along.
		if err := s.NewUser(ctx, posfleet.User{Name: "tadmin", Tenant: "acme", Role: posfleet.RoleTenantAdmin}, pw); err != nil {
			t.Fatal(err)
		}
		secret, tok, err := s.NewToken(ctx, auth.Token{Name: "reader", Tenant: "acme", CreatedBy: "tadmin", Scopes: []string{posfleet.ScopeRead}})
		if err != nil || !reflect.DeepEqual(tok.Scopes, []string{"read"}) {
			t.Fatalf("NewToken = %+v, %v", tok, err)
		}
		tp, err := s.VerifyToken(ctx, secret)
		if err != nil || tp.Role != posfleet.RoleTenantAdmin || !reflect.DeepEqual(tp.Scopes, []string{"read"}) || !tp.Token {
			t.Errorf("VerifyToken = %+v, %v", tp, err)
		}
		toks, err := s.Tokens(ctx)
		if err != nil || len(toks) != 1 || !reflect.DeepEqual(toks[0].Scopes, []string{"read"}) {
			t.Errorf("Tokens = %+v, %v", toks, err)
		}
		old2, err := s.CreateToken(ctx, "script", "acme")
		if err != nil {
			t.Fatal(err)
		}
		if op, err := s.VerifyToken(ctx, old2); err != nil || op.Role != "" || op.Scopes != nil || op.EffectiveRole() != posfleet.RoleOperator {
			t.Errorf("a token without creator or scopes = %+v, %v; want as before", op, err)
		}
		if _, _, err := s.NewToken(ctx, auth.Token{Name: "x", Tenant: "acme", Scopes: []string{"read", "root"}}); code(err) != "bad_scopes" {
			t.Errorf("NewToken with scope root = %v", err)
		}
	})
}

func code(err error) string {
	var e *posfleet.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
