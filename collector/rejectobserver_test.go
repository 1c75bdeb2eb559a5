package collector_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/collector"
)

// rejectRecorder is an Observer that is also a RejectionObserver.
type rejectRecorder struct {
	mu       sync.Mutex
	accepted int
	rejected []posfleet.RejectionEvent
}

func (r *rejectRecorder) Observe(*posfleet.Message) {
	r.mu.Lock()
	r.accepted++
	r.mu.Unlock()
}

func (r *rejectRecorder) ObserveRejection(ev posfleet.RejectionEvent) {
	r.mu.Lock()
	r.rejected = append(r.rejected, ev)
	r.mu.Unlock()
}

// TestRejectionObserver: an observer that wants rejections gets each one,
// at once, with its terminal, time and reason and never its payload;
// accepted messages go to Observe as before.
func TestRejectionObserver(t *testing.T) {
	rec := &rejectRecorder{}
	opts := collector.DefaultOptions()
	opts.SpoolDir = filepath.Join(t.TempDir(), "spool")
	opts.Observers = []collector.Observer{rec}
	c := newCollector(t, opts, &flakyWriter{})
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	ctx := context.Background()
	for _, p := range []string{`not json`, `not json`, `{"ts":"2026-03-02T09:30:00Z"}`} {
		var rej *posfleet.Rejection
		if err := c.Accept(ctx, ref, posfleet.ChannelHeartbeat, []byte(p)); !errors.As(err, &rej) {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if err := c.Accept(ctx, ref, posfleet.ChannelHeartbeat, hb(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.rejected) != 3 || rec.accepted != 1 {
		t.Fatalf("rejected %+v, accepted %d", rec.rejected, rec.accepted)
	}
	want := []posfleet.Reason{posfleet.ReasonNotJSON, posfleet.ReasonNotJSON, posfleet.ReasonMissingSeq}
	for i, ev := range rec.rejected {
		if ev.Terminal != ref || ev.Reason != want[i] || ev.Channel != posfleet.ChannelHeartbeat || ev.Time.IsZero() || ev.Count != 1 || ev.Field != "" {
			t.Errorf("rejection %d: %+v, want %s", i, ev, want[i])
		}
	}
}
