package collector

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tidwall/wal"
)

// dirFiles returns the regular files of dir, by name.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestRepairInterruptedSwapIsFinished: a crash while a repair swaps the
// rebuilt segments in must not leave the log without its tail; the next
// start finishes the swap.
func TestRepairInterruptedSwapIsFinished(t *testing.T) {
	for _, crash := range []string{"before the originals were moved", "after the originals were moved", "half-way through the rebuilt ones"} {
		t.Run(crash, func(t *testing.T) {
			dir := t.TempDir()
			logDir := filepath.Join(dir, "log")
			opts := &wal.Options{SegmentSize: 512, LogFormat: wal.Binary, AllowEmpty: true}
			l, err := wal.Open(logDir, opts)
			if err != nil {
				t.Fatal(err)
			}
			const n = 60
			for i := uint64(1); i <= n; i++ {
				if err := l.Write(i, appendRecord(nil, "acme:T-1", int64(i), 1000, fmt.Appendf(nil, "hb f=%di %d\n", i, i))); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			// Tear entry 4 (seq 4) of the first segment.
			segs, _ := listSegments(logDir, nil)
			if len(segs) < 3 {
				t.Fatalf("%d segments", len(segs))
			}
			b, _ := os.ReadFile(segs[0].path)
			var ends []int
			for off := 0; off < len(b); {
				size, k := binary.Uvarint(b[off:])
				off += k + int(size)
				ends = append(ends, off)
			}
			torn := append(append(append([]byte{}, b[:ends[2]]...), b[ends[2]:ends[2]+5]...), b[ends[3]:]...)
			os.WriteFile(segs[0].path, torn, 0o600)

			d, err := repairLog(dir, logDir, 512)
			if err != nil || d == nil {
				t.Fatalf("repair: %+v, %v", d, err)
			}
			want := dirFiles(t, logDir)
			var rebuilt []string
			for name := range want {
				if idx := segmentIndex(name); idx >= d.From {
					rebuilt = append(rebuilt, name)
				}
			}
			sort.Strings(rebuilt)
			// Put things back as a crash would have left them.
			for i, name := range rebuilt {
				if crash == "half-way through the rebuilt ones" && i == 0 {
					continue // moved in already
				}
				if err := os.Rename(filepath.Join(logDir, name), filepath.Join(d.Dir, name+".rebuilt")); err != nil {
					t.Fatal(err)
				}
			}
			if crash == "before the originals were moved" {
				for name := range dirFiles(t, d.Dir) {
					if len(name) == 20 {
						os.Rename(filepath.Join(d.Dir, name), filepath.Join(logDir, name))
					}
				}
			}
			if err := writeMarker(d.Dir, d.From, rebuilt); err != nil {
				t.Fatal(err)
			}

			d2, err := repairLog(dir, logDir, 512)
			if err != nil || d2 != nil {
				t.Fatalf("second start: damage %+v, %v; want the swap finished and no damage", d2, err)
			}
			got := dirFiles(t, logDir)
			if len(got) != len(want) {
				t.Fatalf("log files %d, want %d", len(got), len(want))
			}
			for name, b := range want {
				if !bytes.Equal(got[name], b) {
					t.Errorf("segment %s differs from the finished repair", name)
				}
			}
			if _, err := os.Stat(filepath.Join(d.Dir, markerName)); err == nil {
				t.Error("marker left behind")
			}
			// Every entry but the torn one, readable through wal.
			l, err = wal.Open(logDir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			first, _ := l.FirstIndex()
			last, _ := l.LastIndex()
			var lines []string
			for i := first; i <= last; i++ {
				e, err := l.Read(i)
				if err != nil {
					t.Fatal(err)
				}
				r, err := parseRecord(e)
				if err != nil {
					t.Fatal(err)
				}
				lines = append(lines, strings.TrimSpace(string(r.Lines)))
			}
			if len(lines) != n-1 || strings.Contains(strings.Join(lines, ","), "hb f=4i 4,") {
				t.Errorf("%d entries after the repair, want %d without the torn seq 4", len(lines), n-1)
			}
		})
	}
}

func segmentIndex(name string) uint64 {
	var idx uint64
	fmt.Sscanf(name, "%d", &idx)
	return idx
}
