package campaign_test

import (
	"testing"

	"github.com/posfleet/posfleet/store/pgtest"
)

// TestMain starts the private PostgreSQL of storetest.Each.
func TestMain(m *testing.M) { pgtest.Main(m) }
