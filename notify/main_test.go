package notify_test

import (
	"testing"

	"github.com/posfleet/posfleet/store/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
