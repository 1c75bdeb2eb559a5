package influxtest

import (
	"context"
	"errors"
	"testing"

	"github.com/posfleet/posfleet/internal/testport"
)

// An influxd that cannot bind its port (another test's influxd holds it)
// must not take the other one's answers for its own: a database created
// there vanishes when that test stops its server.
func TestStartDoesNotMistakeAnotherInfluxdForItsOwn(t *testing.T) {
	other := Start(t)
	bin, _ := Binary()
	s := &Server{Dir: t.TempDir(), bin: bin, port: other.port, rpc: testport.Port(t), URL: other.URL}
	err := s.start(context.Background())
	if err == nil {
		s.Stop()
		t.Fatal("start returned with another influxd answering on its port")
	}
	if !errors.Is(err, errExitedAtStart) {
		t.Fatalf("start: %v, want the bind failure reported as %v", err, errExitedAtStart)
	}
}

func TestCreateDatabaseReportsAStatementsError(t *testing.T) {
	s := Start(t)
	if err := s.CreateDatabase("no such name"); err == nil {
		t.Error("CREATE DATABASE with a space in the name: no error")
	}
}
