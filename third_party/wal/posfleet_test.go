package wal

// posfleet patch: tests of WriteEntries, ReadFunc, TruncateFrontSegments
// and the reuse of segment buffers.

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"testing"
)

func posfleetOpts() *Options {
	return &Options{SegmentSize: 4096, LogFormat: Binary, NoCopy: true, AllowEmpty: true, NoSync: true}
}

func entry(i uint64) []byte {
	return []byte(fmt.Sprintf("entry %05d: %s", i, bytes.Repeat([]byte{'x'}, int(i%97))))
}

// writeN appends entries first..first+n-1 with WriteEntries, in groups of
// eight.
func writeN(t *testing.T, l *Log, first uint64, n int) {
	t.Helper()
	var group [][]byte
	for i := first; i < first+uint64(n); i++ {
		group = append(group, entry(i))
		if len(group) == 8 || i == first+uint64(n)-1 {
			if err := l.WriteEntries(i-uint64(len(group))+1, group); err != nil {
				t.Fatal(err)
			}
			group = group[:0]
		}
	}
}

func checkEntries(t *testing.T, l *Log, first, last uint64) {
	t.Helper()
	for i := first; i <= last; i++ {
		var got []byte
		if err := l.ReadFunc(i, func(b []byte) { got = append(got[:0], b...) }); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !bytes.Equal(got, entry(i)) {
			t.Fatalf("entry %d: %q, want %q", i, got, entry(i))
		}
	}
}

// TestWriteEntries writes the same entries as WriteBatch, across segments,
// and they read back the same after a reopen.
func TestWriteEntries(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, posfleetOpts())
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, l, 1, 500)
	if err := l.WriteEntries(600, [][]byte{entry(600)}); err != ErrOutOfOrder {
		t.Fatalf("gap: %v, want ErrOutOfOrder", err)
	}
	checkEntries(t, l, 1, 500)
	if len(l.segments) < 5 {
		t.Fatalf("%d segments, want several", len(l.segments))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, posfleetOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkEntries(t, l, 1, 500)

	// The same files as WriteBatch writes.
	dir2 := t.TempDir()
	l2, err := Open(dir2, posfleetOpts())
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i := uint64(1); i <= 500; i++ {
		b.Write(i, entry(i))
		if i%8 == 0 || i == 500 {
			if err := l2.WriteBatch(&b); err != nil {
				t.Fatal(err)
			}
		}
	}
	l2.Close()
	for _, s := range l.segments {
		a, _ := os.ReadFile(s.path)
		b, err := os.ReadFile(dir2 + "/" + segmentName(s.index))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("segment %d differs from WriteBatch's (%v)", s.index, err)
		}
	}
}

// TestSegmentBuffersReused: once the cache is full, a new tail segment
// takes the buffer of the segment that fell out of it (upstream allocated
// a new one, as many bytes as the log wrote), and reads still see the
// right entries.
func TestSegmentBuffersReused(t *testing.T) {
	l, err := Open(t.TempDir(), posfleetOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	writeN(t, l, 1, 400) // several segments: the cache is full
	const n = 400
	entries := make([][]byte, n)
	written := 0
	for i := range entries {
		entries[i] = entry(401 + uint64(i))
		written += len(entries[i])
	}
	segs := len(l.segments)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i += 8 {
		if err := l.WriteEntries(401+uint64(i), entries[i:i+8]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if len(l.segments) < segs+5 {
		t.Fatalf("%d new segments, want several", len(l.segments)-segs)
	}
	// What is left: a segment struct, its name and file handle per cycle.
	if got := after.TotalAlloc - before.TotalAlloc; got > uint64(written)/4 {
		t.Errorf("%d bytes allocated writing %d bytes across %d segments, want a fraction", got, written, len(l.segments)-segs)
	}
	checkEntries(t, l, 1, 400+n)
}

// TestTruncateFrontSegments removes whole segments only, keeps the
// segment holding the index, and a reopened log starts where it did.
func TestTruncateFrontSegments(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, posfleetOpts())
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, l, 1, 500)
	mid := l.segments[2]
	index := mid.index + 3
	first, err := l.TruncateFrontSegments(index)
	if err != nil {
		t.Fatal(err)
	}
	if first != mid.index {
		t.Fatalf("first %d, want %d (the segment holding %d)", first, mid.index, index)
	}
	if fi, _ := l.FirstIndex(); fi != first {
		t.Fatalf("FirstIndex %d, want %d", fi, first)
	}
	if _, err := os.Stat(mid.path); err != nil {
		t.Fatalf("segment holding the index: %v", err)
	}
	checkEntries(t, l, first, 500)
	if err := l.ReadFunc(first-1, func([]byte) {}); err != ErrNotFound {
		t.Fatalf("entry before the first: %v, want ErrNotFound", err)
	}
	// Again at the same place: nothing to do.
	if f, err := l.TruncateFrontSegments(index); err != nil || f != first {
		t.Fatalf("again: %d, %v", f, err)
	}
	// Everything written: the tail stays, with its entries.
	tail := l.segments[len(l.segments)-1].index
	if first, err = l.TruncateFrontSegments(501); err != nil || first != tail {
		t.Fatalf("all: first %d, %v; want the tail's %d", first, err, tail)
	}
	writeN(t, l, 501, 20)
	checkEntries(t, l, tail, 520)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, posfleetOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if fi, _ := l.FirstIndex(); fi != tail {
		t.Fatalf("reopened: first %d, want %d", fi, tail)
	}
	checkEntries(t, l, tail, 520)
	if _, err := l.TruncateFrontSegments(600); err != ErrOutOfRange {
		t.Fatalf("past the end: %v, want ErrOutOfRange", err)
	}
}
