package auth_test

import (
	"context"
	"testing"

	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// BenchmarkRequest is what authentication costs each request now that
// users and tokens are read from the database every time: a token's
// lookup, and a session's check (user, epoch, signed-out sessions).
func BenchmarkRequest(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			var db *store.DB
			if d == store.Postgres {
				db = storetest.Postgres(b)
			} else {
				db = storetest.SQLite(b)
			}
			ctx := context.Background()
			s, err := auth.New(ctx, db, auth.Options{BcryptCost: 4})
			if err != nil {
				b.Fatal(err)
			}
			tok, _ := s.CreateToken(ctx, "grafana", "acme")
			if err := s.AddUser(ctx, "alice", "acme", "correct horse battery"); err != nil {
				b.Fatal(err)
			}
			p, _ := s.SignIn(ctx, "alice", "correct horse battery")
			b.Run("VerifyToken", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.VerifyToken(ctx, tok); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("CheckSession", func(b *testing.B) {
				for b.Loop() {
					if err := s.CheckSession(ctx, "alice", p.Epoch, "s1"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
