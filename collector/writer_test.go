package collector_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
)

// orderWriter is a store that takes each write a few random milliseconds,
// applies it at the end, as a database does, and records the highest
// number of writes it had at once and every terminal's seqs in the order
// they were applied.
type orderWriter struct {
	inFlight, most atomic.Int32

	mu     sync.Mutex
	seqs   map[string][]int64
	writes int
}

var lineTerminalSeq = regexp.MustCompile(`terminal=([^, ]+).*[ ,]seq=(\d+)i`)

func (w *orderWriter) WriteLines(_ context.Context, lines []byte) error {
	n := w.inFlight.Add(1)
	defer w.inFlight.Add(-1)
	for m := w.most.Load(); n > m && !w.most.CompareAndSwap(m, n); m = w.most.Load() {
	}
	time.Sleep(time.Duration(1+rand.IntN(4)) * time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	for _, l := range strings.Split(strings.TrimSuffix(string(lines), "\n"), "\n") {
		m := lineTerminalSeq.FindStringSubmatch(l)
		if m == nil {
			return fmt.Errorf("line without terminal or seq: %q", l)
		}
		seq, _ := strconv.ParseInt(m[2], 10, 64)
		w.seqs[m[1]] = append(w.seqs[m[1]], seq)
	}
	return nil
}

// TestWritesAtOnceAndInOrder: at most Options.Writers writes are under way
// at once (there was one more: a batch waiting for its acknowledgement
// freed its slot before it was stored), and each terminal's points reach
// the store in the order it sent them, with writes side by side (InfluxDB
// sorts every series whose points arrive out of order).
func TestWritesAtOnceAndInOrder(t *testing.T) {
	for _, writers := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("writers=%d", writers), func(t *testing.T) {
			w := &orderWriter{seqs: map[string][]int64{}}
			opts := testOptions(t)
			opts.Writers, opts.BatchLines, opts.BatchWait = writers, 8, 2*time.Millisecond
			c := newCollector(t, opts, w)
			const terminals, perTerminal = 12, 60
			base := time.Now().Add(-time.Hour)
			var wg sync.WaitGroup
			for i := range terminals {
				ref := posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%04d", i)}
				wg.Go(func() {
					for seq := int64(1); seq <= perTerminal; seq++ {
						if err := c.Accept(context.Background(), ref, posfleet.ChannelHeartbeat, hb(seq, base.Add(time.Duration(seq)*time.Second))); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			deadline := time.Now().Add(10 * time.Second)
			for c.Stats().SpoolEntries > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if len(w.seqs) != terminals {
				t.Fatalf("%d terminals stored, want %d", len(w.seqs), terminals)
			}
			for term, seqs := range w.seqs {
				if len(seqs) != perTerminal {
					t.Errorf("%s: %d points, want %d", term, len(seqs), perTerminal)
				}
				for i := 1; i < len(seqs); i++ {
					if seqs[i] <= seqs[i-1] {
						t.Errorf("%s: seq %d stored after %d", term, seqs[i], seqs[i-1])
						break
					}
				}
			}
			if most := int(w.most.Load()); most > writers {
				t.Errorf("%d writes at once, want at most %d", most, writers)
			}
			t.Logf("%d writes, at most %d at once", w.writes, w.most.Load())
		})
	}
}
