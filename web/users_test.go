package web_test

import (
	"context"
	"testing"

	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/store/storetest"
)

// newUsers is a user store on a new SQLite database of the test's own.
func newUsers(t testing.TB, opts auth.Options) (*auth.Store, error) {
	t.Helper()
	return auth.New(context.Background(), storetest.SQLite(t), opts)
}
