package main

import (
	"testing"

	"github.com/posfleet/posfleet/store/pgtest"
)

// TestMain stops the private PostgreSQL (store/pgtest) the tests that
// need one started.
func TestMain(m *testing.M) { pgtest.Main(m) }
