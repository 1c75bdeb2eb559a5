package collector

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
)

// step is one message through the filter: seq, ts (ms) and the verdict and
// gap expected.
type step struct {
	seq, ts int64
	want    seqVerdict
	gap     int64
}

func (v seqVerdict) String() string {
	return [...]string{"new", "duplicate", "reset"}[v]
}

// TestSeqFilterRule walks the filter through the edges of its rule (see
// seqFilter), one sequence of messages per case.
func TestSeqFilterRule(t *testing.T) {
	const W = seqWindowSize
	cases := []struct {
		name  string
		steps []step
	}{
		{"in order, redelivery, gap filled late", []step{
			{1, 10, seqNew, 0}, {2, 20, seqNew, 0}, {2, 20, seqDuplicate, 0}, {5, 50, seqNew, 2},
			{3, 30, seqNew, 0}, {3, 30, seqDuplicate, 0}, {4, 40, seqNew, 0}, {1, 10, seqDuplicate, 0},
		}},
		{"far below the first seq seen (server knows nothing below it)", []step{
			{20000, 1000, seqNew, 0}, {20099, 1099, seqNew, 98},
			{19990, 990, seqNew, 0}, {19950, 950, seqNew, 0}, {19900, 900, seqNew, 0}, {19800, 800, seqNew, 0},
			{19800, 800, seqDuplicate, 0}, {19950, 950, seqDuplicate, 0}, {20000, 1000, seqDuplicate, 0},
		}},
		{"gaps far apart inside the window are exact", []step{
			{1, 1, seqNew, 0}, {W - 10, 2, seqNew, W - 12}, {2, 0, seqNew, 0}, {2, 0, seqDuplicate, 0},
			{W - 11, 1, seqNew, 0}, {W - 11, 1, seqDuplicate, 0}, {1, 1, seqDuplicate, 0},
		}},
		{"one bogus seq far above does not silence the terminal", []step{
			{1, 10, seqNew, 0}, {2, 20, seqNew, 0}, {900001, 30, seqNew, 899998},
			{3, 40, seqReset, 0}, {4, 50, seqNew, 0}, {5, 60, seqNew, 0}, {4, 50, seqDuplicate, 0},
		}},
		{"restart from 1 long after the window: reset", []step{
			{W + 5, 100, seqNew, 0}, {1, 200, seqReset, 0}, {2, 210, seqNew, 0}, {1, 200, seqDuplicate, 0},
		}},
		{"exactly one window below the high mark is a reset, one less is not", []step{
			{W + 10, 100, seqNew, 0}, {11, 50, seqNew, 0}, {10, 50, seqReset, 0},
		}},
		{"restart from 1 within the window, later clock: reset", []step{
			{1, 1000, seqNew, 0}, {2, 2000, seqNew, 0}, {3, 3000, seqNew, 0},
			{1, 90000, seqReset, 0}, {2, 91000, seqNew, 0}, {3, 92000, seqNew, 0}, {4, 93000, seqNew, 0},
			{2, 91000, seqDuplicate, 0},
		}},
		{"a copy stamped as its original, or earlier than the newest, is a duplicate", []step{
			{1, 1000, seqNew, 0}, {2, 2000, seqNew, 0}, {1, 1000, seqDuplicate, 0}, {1, 2000, seqDuplicate, 0}, {2, 2000, seqDuplicate, 0},
		}},
		{"the newest seq again with a later clock: reset", []step{
			{7, 1000, seqNew, 0}, {7, 5000, seqReset, 0}, {7, 5000, seqDuplicate, 0}, {8, 6000, seqNew, 0},
		}},
		{"unknown timestamp (old spool record) never makes a reset", []step{
			{1, noTS, seqNew, 0}, {1, 5000, seqDuplicate, 0},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f seqFilter
			for i, s := range tc.steps {
				v, gap := f.check(s.seq, s.ts)
				if v != s.want || gap != s.gap {
					t.Fatalf("step %d: seq %d ts %d: %v gap %d, want %v gap %d", i, s.seq, s.ts, v, gap, s.want, s.gap)
				}
				f.mark(s.seq, s.ts, v)
			}
		})
	}
}

// TestSeqFilterBounded: a terminal that leaves a gap after every other
// message keeps at most maxMissingRuns runs; the seqs of runs given up are
// taken as new, never dropped.
func TestSeqFilterBounded(t *testing.T) {
	var f seqFilter
	for seq := int64(1); seq <= 4*maxMissingRuns; seq += 2 {
		f.observe(seq, seq)
	}
	if len(f.missing) > maxMissingRuns {
		t.Fatalf("%d runs kept, want at most %d", len(f.missing), maxMissingRuns)
	}
	for _, seq := range []int64{2, 4} { // in runs given up
		if v, _ := f.check(seq, seq); v != seqNew {
			t.Errorf("seq %d in a run given up: %v, want new", seq, v)
		}
	}
	if v, _ := f.check(4*maxMissingRuns-2, 0); v != seqNew { // in a run still kept
		t.Errorf("missing seq in a kept run: %v, want new", v)
	}
	if v, _ := f.check(4*maxMissingRuns-1, 0); v != seqDuplicate {
		t.Errorf("seen seq in the kept part: %v, want duplicate", v)
	}
	// The window moves with the high mark: runs below it go.
	f.observe(10*seqWindowSize, 1<<40)
	if len(f.missing) != 1 || f.floor != 9*seqWindowSize+1 {
		t.Errorf("after a jump: floor %d runs %v", f.floor, f.missing)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		ref     string
		seq, ts int64
	}{{"acme:T-1", 1, 1764000000000}, {"acme:T-1", 1 << 40, -5}, {"x:y", 0, 0}} {
		t.Run(fmt.Sprint(tc.seq), func(t *testing.T) {
			b := appendRecord(nil, tc.ref, tc.seq, tc.ts, []byte("hb,a=b f=1i 1\n"))
			r, err := parseRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			wantTS := tc.ts
			if tc.seq == 0 {
				wantTS = noTS
			}
			if r.Ref != tc.ref || r.Seq != tc.seq || r.TS != wantTS || string(r.Lines) != "hb,a=b f=1i 1\n" {
				t.Errorf("round trip = %+v", r)
			}
		})
	}
	// A record written before timestamps were spooled reads with noTS.
	old := []byte("\x08acme:T-1\x05hb,a=b f=1i 1\n")
	if r, err := parseRecord(old); err != nil || r.Seq != 5 || r.TS != noTS || string(r.Lines) != "hb,a=b f=1i 1\n" {
		t.Errorf("old record = %+v, %v", r, err)
	}
}

// TestTerminalRecord: a terminal's record is appendRecord's with the
// terminal's name, written without building the name (up to 129 bytes: a
// string over 32 bytes was an allocation per message).
func TestTerminalRecord(t *testing.T) {
	long := posfleet.TerminalRef{Tenant: strings.Repeat("t", posfleet.MaxIDLen), Terminal: strings.Repeat("T", posfleet.MaxIDLen)}
	for _, ref := range []posfleet.TerminalRef{{Tenant: "acme", Terminal: "T-1"}, long} {
		for _, seq := range []int64{0, 7} {
			got := appendTerminalRecord([]byte("x"), ref, seq, 1764000000000)
			want := appendRecord([]byte("x"), ref.String(), seq, 1764000000000, nil)
			if !bytes.Equal(got, want) {
				t.Errorf("%v seq %d: % x, want % x", ref, seq, got, want)
			}
		}
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = appendTerminalRecord(buf[:0], long, 7, 1764000000000) }); n != 0 {
		t.Errorf("%.0f allocations per record, want none", n)
	}
}
