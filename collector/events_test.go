package collector_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/collector"
)

// storedCounts returns the count field of every stored line of a measurement.
func (w *flakyWriter) counts(measurement string) []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int64
	for _, l := range w.stored {
		if !strings.HasPrefix(l, measurement+",") {
			continue
		}
		m := countField.FindStringSubmatch(l)
		if m == nil {
			out = append(out, -1)
			continue
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		out = append(out, n)
	}
	return out
}

var countField = regexp.MustCompile(` count=(\d+)i`)

func sum(ns []int64) (s int64) {
	for _, n := range ns {
		s += n
	}
	return s
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func wrongPassword(i int, user string) posfleet.SecurityEvent {
	ref, _ := posfleet.ParseClientID(user)
	return posfleet.SecurityEvent{Time: time.Now(), Kind: posfleet.SecurityAuthFailed, Terminal: ref, Username: user, Remote: fmt.Sprintf("192.0.2.7:%d", 10000+i%50000)}
}

// TestSecurityEventsAggregated: a flood of one source is stored as its first
// event at once and one point with the count of the rest per window, and
// the latest-events list shows the same; Close stores an open window.
func TestSecurityEventsAggregated(t *testing.T) {
	opts := testOptions(t)
	opts.EventWindow = 200 * time.Millisecond
	w := &flakyWriter{}
	c := newCollector(t, opts, w)
	const n = 2000
	for i := range n {
		c.RecordSecurity(wrongPassword(i, "acme:T-0001"))
	}
	waitFor(t, "the window's point", func() bool { return len(w.counts("security")) >= 2 })
	time.Sleep(2 * opts.EventWindow) // nothing more comes
	if got := w.counts("security"); len(got) != 2 || got[0] != 1 || got[1] != n-1 {
		t.Fatalf("stored security counts %v, want [1 %d]", got, n-1)
	}
	recent := c.RecentSecurity("", 10)
	if len(recent) != 2 || recent[0].Count != n-1 || recent[1].Count != 1 {
		t.Fatalf("recent security events %+v, want the window's (count %d) and the first", recent, n-1)
	}

	// A new burst opens a window again; Close stores it.
	for i := range 5 {
		c.RecordSecurity(wrongPassword(i, "acme:T-0001"))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Two writers store batches at once, so the burst's first event and
	// its window's point may reach the store in either order.
	got := w.counts("security")
	if len(got) != 4 || sum(got) != n+5 || !slices.Contains(got[2:], 4) {
		t.Fatalf("after Close: stored security counts %v, want 4 points summing to %d, the last two 1 and 4", got, n+5)
	}
}

// TestRejectionsAggregated: a burst of one terminal's bad messages costs the
// spool two points, not one each.
func TestRejectionsAggregated(t *testing.T) {
	opts := testOptions(t)
	opts.EventWindow = 200 * time.Millisecond
	w := &flakyWriter{}
	c := newCollector(t, opts, w)
	const n = 750
	for range n {
		if err := c.Accept(context.Background(), term, posfleet.ChannelHeartbeat, []byte(`{"seq":1,`)); err == nil {
			t.Fatal("garbage accepted")
		}
	}
	waitFor(t, "the window's point", func() bool { return len(w.counts("rejected")) >= 2 })
	time.Sleep(2 * opts.EventWindow)
	if got := w.counts("rejected"); len(got) != 2 || sum(got) != n {
		t.Fatalf("stored rejection counts %v, want 2 points summing to %d", got, n)
	}
	if got := c.Counters(term).Rejected[posfleet.ReasonNotJSON]; got != n {
		t.Errorf("terminal counter %d, want %d", got, n)
	}
}

// TestEventsBoundedBySpoolCap: with the store down and the spool over its
// cap, security events and rejections are counted and dropped like
// publishes are refused, from any number of sources.
func TestEventsBoundedBySpoolCap(t *testing.T) {
	opts := testOptions(t)
	opts.MaxSpoolBytes = 2000
	opts.FlushTimeout = 100 * time.Millisecond // the store stays down
	reg := prometheus.NewRegistry()
	opts.Metrics = reg
	down := writerFunc(func(context.Context, []byte) error { return errors.New("connection refused") })
	c := newCollector(t, opts, down)
	ctx := context.Background()
	var err error
	for seq := int64(1); seq < 100 && err == nil; seq++ {
		err = c.Accept(ctx, term, posfleet.ChannelHeartbeat, hb(seq, time.Now()))
	}
	if !errors.Is(err, collector.ErrSpoolFull) {
		t.Fatalf("Accept with a full spool = %v, want ErrSpoolFull", err)
	}
	full := c.Stats().SpoolEntries

	const n = 2000 // each from another name: no aggregation helps
	for i := range n {
		c.RecordSecurity(wrongPassword(i, fmt.Sprintf("acme:X-%d", i)))
	}
	other := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0002"}
	for i := range 10 {
		_ = c.Accept(ctx, other, posfleet.Channel(fmt.Sprintf("c%d", i)), []byte(`{}`))
	}
	// Give the committer time to write anything it was handed.
	time.Sleep(200 * time.Millisecond)
	if got := c.Stats().SpoolEntries; got != full {
		t.Fatalf("spool grew from %d to %d entries past its cap", full, got)
	}
	if got := metricValue(t, reg, "posfleet_security_events_dropped_total", map[string]string{"reason": "spool_full"}); got != n {
		t.Errorf("security events dropped (spool_full) = %v, want %d", got, n)
	}
	if got := metricValue(t, reg, "posfleet_rejections_dropped_total", map[string]string{"reason": "spool_full"}); got != 10 {
		t.Errorf("rejections dropped (spool_full) = %v, want 10", got)
	}
	if got := metricValue(t, reg, "posfleet_security_events_total", map[string]string{"kind": "auth_failed"}); got != n {
		t.Errorf("security events counted = %v, want %d", got, n)
	}
}

// TestEventAggregatorBounded: past MaxEventKeys sources, events are kept
// per kind without their source, and counted as such.
func TestEventAggregatorBounded(t *testing.T) {
	opts := testOptions(t)
	opts.EventWindow = 200 * time.Millisecond
	opts.MaxEventKeys = 10
	reg := prometheus.NewRegistry()
	opts.Metrics = reg
	w := &flakyWriter{}
	c := newCollector(t, opts, w)
	const n = 100
	for i := range n {
		c.RecordSecurity(wrongPassword(i, fmt.Sprintf("acme:X-%d", i)))
	}
	// 10 sources and the catch-all at once; the catch-all's window later.
	waitFor(t, "the catch-all's window", func() bool { return len(w.counts("security")) >= 12 })
	time.Sleep(2 * opts.EventWindow)
	if got := w.counts("security"); len(got) != 12 || sum(got) != n {
		t.Fatalf("stored security counts %v, want 12 points summing to %d", got, n)
	}
	if got := metricValue(t, reg, "posfleet_security_events_dropped_total", map[string]string{"reason": "aggregator_full"}); got != n-10 {
		t.Errorf("aggregator_full = %v, want %d", got, n-10)
	}
}

func TestEventOptionsValidated(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*collector.Options)
	}{
		{"window too short", func(o *collector.Options) { o.EventWindow = time.Nanosecond }},
		{"window too long", func(o *collector.Options) { o.EventWindow = 48 * time.Hour }},
		{"negative keys", func(o *collector.Options) { o.MaxEventKeys = -1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t)
			tt.mod(&opts)
			if c, err := collector.New(opts, nil, &flakyWriter{}); err == nil {
				c.Close()
				t.Fatal("New accepted the options")
			}
		})
	}
}

// sinkRecorder is an EventSink that keeps what it is given.
type sinkRecorder struct {
	mu  sync.Mutex
	rej []posfleet.RejectionEvent
	sec []posfleet.SecurityRecord
}

func (s *sinkRecorder) Rejection(ev posfleet.RejectionEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rej = append(s.rej, ev)
}

func (s *sinkRecorder) Security(rec posfleet.SecurityRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sec = append(s.sec, rec)
}

func (s *sinkRecorder) counts() (rej, sec []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rej {
		rej = append(rej, r.Count)
	}
	for _, r := range s.sec {
		sec = append(sec, r.Count)
	}
	return rej, sec
}

// TestEventSink: the sink is given what the store is given, single events
// and windows' summaries with their counts, redacted; Close hands over the
// open windows.
func TestEventSink(t *testing.T) {
	opts := testOptions(t)
	opts.EventWindow = 200 * time.Millisecond
	sink := &sinkRecorder{}
	opts.EventSink = sink
	c := newCollector(t, opts, &flakyWriter{})
	for i := range 10 {
		c.RecordSecurity(wrongPassword(i, "acme:T-0001"))
		c.Accept(context.Background(), term, posfleet.ChannelHeartbeat, []byte(`{"seq":1,`))
	}
	waitFor(t, "the windows' summaries", func() bool { r, s := sink.counts(); return len(r) == 2 && len(s) == 2 })
	if r, s := sink.counts(); r[0] != 1 || r[1] != 9 || s[0] != 1 || s[1] != 9 {
		t.Errorf("counts: rejections %v, security %v", r, s)
	}
	pan := "4" + strings.Repeat("1", 14)
	for d := '0'; d <= '9'; d++ { // the digit that makes it pass Luhn: one of them is a card number
		c.RecordSecurity(wrongPassword(0, "acme:"+pan+string(d)))
	}
	c.RecordSecurity(wrongPassword(1, "acme:T-0002"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.sec) < 5 {
		t.Fatalf("security records after Close: %d", len(sink.sec))
	}
	for _, r := range sink.sec {
		if strings.Contains(r.Username, pan) && posfleet.ContainsCardData(r.Username) {
			t.Errorf("card data given to the sink: %+v", r)
		}
	}
}
