package server

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunStopsWhenAPartFails: a long-running part that fails (here the
// HTTP listener, closed under the server) stops Run with its error. Before
// the errgroup, Run waited for its context whatever became of the parts,
// and the errors of the engine's clock and the external source were dropped.
func TestRunStopsWhenAPartFails(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.Roles = Roles{Web: true}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Influx.URL = "http://127.0.0.1:1" // never asked: the web role answers nothing here
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.httpLn.Close()
	start := time.Now()
	err = s.wait(ctx)
	if err == nil || !strings.Contains(err.Error(), "serve: http") {
		t.Fatalf("Run returned %v, want the HTTP listener's error", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Run returned only after its context ended (%v)", time.Since(start))
	}
}
