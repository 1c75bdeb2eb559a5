package collector_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/influxdb"
)

var errDown = errors.New("connection refused")

// downWriter is a store that is never reachable.
var downWriter = writerFunc(func(context.Context, []byte) error { return errDown })

// storedSeqs returns how many lines of each seq w stored.
func storedSeqs(w *flakyWriter) map[int64]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[int64]int{}
	for _, l := range w.stored {
		i := strings.Index(l, "seq=")
		if i < 0 {
			continue
		}
		var seq int64
		fmt.Sscanf(l[i+4:], "%di", &seq)
		out[seq]++
	}
	return out
}

// drain waits until c has written its whole spool.
func drain(t *testing.T, c *collector.Collector) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().SpoolEntries > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spool not drained: %d entries left", c.Stats().SpoolEntries)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) > 0 {
			m := mf.Metric[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return -1
}

// segments returns the spool's segment files in order.
func segments(t *testing.T, spoolDir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(spoolDir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if len(e.Name()) == 20 {
			out = append(out, filepath.Join(spoolDir, "log", e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// entryBounds returns the offsets where the entries of a segment file end.
func entryBounds(b []byte) []int {
	var ends []int
	for off := 0; off < len(b); {
		size, k := binary.Uvarint(b[off:])
		off += k + int(size)
		ends = append(ends, off)
	}
	return ends
}

// TestSpoolTornWritesRepairedAtOpen: a spool with a torn tail, or with a
// torn entry in the middle of a segment and intact entries after it (what
// a failed write left under earlier versions), opens: every intact entry
// is written to the store, the damage is moved aside and counted.
func TestSpoolTornWritesRepairedAtOpen(t *testing.T) {
	const n = 60
	cases := []struct {
		name    string
		segment int
		tear    func(t *testing.T, segs []string) (lost int)
	}{
		{"torn tail", 1 << 20, func(t *testing.T, segs []string) int {
			p := segs[len(segs)-1]
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()-7); err != nil {
				t.Fatal(err)
			}
			return 1
		}},
		{"torn entry mid-segment, entries after it", 1 << 20, func(t *testing.T, segs []string) int {
			return tearEntry(t, segs[len(segs)-1], 20)
		}},
		{"torn entry in an earlier segment", 2048, func(t *testing.T, segs []string) int {
			if len(segs) < 3 {
				t.Fatalf("%d segments, want several", len(segs))
			}
			return tearEntry(t, segs[0], 3)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.SegmentBytes = tc.segment
			opts.FlushTimeout = 10 * time.Millisecond
			c1, err := collector.New(opts, influxdb.Encoder{}, downWriter)
			if err != nil {
				t.Fatal(err)
			}
			ts := time.Now().Add(-time.Hour)
			for seq := int64(1); seq <= n; seq++ {
				if err := c1.Accept(context.Background(), term, posfleet.ChannelHeartbeat, hb(seq, ts.Add(time.Duration(seq)*time.Second))); err != nil {
					t.Fatal(err)
				}
			}
			c1.Close()
			lost := tc.tear(t, segments(t, opts.SpoolDir))

			w := &flakyWriter{}
			reg := prometheus.NewRegistry()
			opts.Metrics = reg
			c2, err := collector.New(opts, influxdb.Encoder{}, w)
			if err != nil {
				t.Fatalf("spool does not open: %v", err)
			}
			t.Cleanup(func() { c2.Close() })
			drain(t, c2)
			got := storedSeqs(w)
			if len(got) != n-lost {
				t.Errorf("stored %d distinct seqs, want %d (all but the torn one)", len(got), n-lost)
			}
			for seq, k := range got {
				if k != 1 {
					t.Errorf("seq %d stored %d times", seq, k)
				}
			}
			if d := gauge(t, reg, "posfleet_spool_damaged_total"); d < 1 {
				t.Errorf("posfleet_spool_damaged_total = %v, want >= 1", d)
			}
			dirs, _ := filepath.Glob(filepath.Join(opts.SpoolDir, "damaged-*"))
			if len(dirs) != 1 {
				t.Errorf("damaged directories %v, want one", dirs)
			}
			// The duplicate filter was rebuilt from what was kept.
			if err := c2.Accept(context.Background(), term, posfleet.ChannelHeartbeat, hb(1, ts.Add(time.Second))); err != nil {
				t.Fatal(err)
			}
			if d := c2.Counters(term).Duplicates; d != 1 {
				t.Errorf("a copy of seq 1 after the repair: duplicates = %d, want 1", d)
			}
		})
	}
}

// tearEntry cuts entry k of a segment file in half, keeping what follows,
// as a write that failed half-way and was written after would.
func tearEntry(t *testing.T, path string, k int) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ends := entryBounds(b)
	if len(ends) < k+2 {
		t.Fatalf("%d entries in %s, want more than %d", len(ends), path, k+1)
	}
	start, end := ends[k-1], ends[k]
	torn := append(append(append([]byte{}, b[:start]...), b[start:start+(end-start)/2]...), b[end:]...)
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	return 1
}

// TestSpoolWriteFailureRefusesAndRollsBack fills the "disk" under the
// spool while the store is down: a file-size limit (RLIMIT_FSIZE, which
// needs no privileges and tears writes exactly as a full disk does) stops
// the segment from growing. Writes that fail are refused, not
// acknowledged; once there is room again writes go on; and after a
// restart every acknowledged message reaches the store exactly once.
//
// The limit applies to the whole process, the test log `go test` keeps for
// its cache included, so the test runs in a child process of its own.
func TestSpoolWriteFailureRefusesAndRollsBack(t *testing.T) {
	if os.Getenv("POSFLEET_FSIZE_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolWriteFailureRefusesAndRollsBack$", "-test.v")
		cmd.Env = append(os.Environ(), "POSFLEET_FSIZE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("%s", out)
		return
	}
	opts := testOptions(t)
	opts.FlushTimeout = 10 * time.Millisecond
	c1, err := collector.New(opts, influxdb.Encoder{}, downWriter)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	ctx := context.Background()
	ts := time.Now().Add(-time.Hour)
	acked, refused := map[int64]bool{}, 0
	send := func(seq int64) error {
		err := c1.Accept(ctx, term, posfleet.ChannelHeartbeat, hb(seq, ts.Add(time.Duration(seq)*time.Second)))
		if err == nil {
			acked[seq] = true
		}
		return err
	}
	seq := int64(1)
	for ; seq <= 100; seq++ {
		if err := send(seq); err != nil {
			t.Fatal(err)
		}
	}
	segs := segments(t, opts.SpoolDir)
	fi, err := os.Stat(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	// Room for a few more entries, then a torn one.
	full := syscall.Rlimit{Cur: uint64(fi.Size()) + 1000, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &full); err != nil {
		t.Skipf("cannot limit file sizes: %v", err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	for ; seq <= 150; seq++ {
		if err := send(seq); err != nil {
			refused++
		}
	}
	if err := c1.Healthy(); err == nil {
		t.Error("collector healthy while its spool cannot be written")
	}
	restore()
	if refused < 40 {
		t.Fatalf("%d of 50 messages refused with the disk full, want nearly all", refused)
	}
	// Room again: the refused ones come again (as a terminal resends
	// them), and new ones follow.
	for s := int64(101); s <= 200; s++ {
		if acked[s] {
			continue
		}
		if err := send(s); err != nil {
			t.Fatalf("seq %d after the disk has room again: %v", s, err)
		}
	}
	c1.Close()

	w := &flakyWriter{}
	c2 := newCollector(t, opts, w)
	drain(t, c2)
	got := storedSeqs(w)
	for s := range acked {
		if got[s] != 1 {
			t.Errorf("acknowledged seq %d stored %d times, want once", s, got[s])
		}
	}
	if len(got) != len(acked) || len(acked) != 200 {
		t.Errorf("stored %d seqs, acknowledged %d, want 200", len(got), len(acked))
	}
	t.Logf("%d refused while full, then sent again; all 200 stored once", refused)
}
