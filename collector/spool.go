package collector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tidwall/wal"
)

// spool is the collector's durable queue: an append-only log (tidwall/wal)
// of encoded points, written before the broker acknowledges a publish and
// read by the writer, which advances the acknowledged index only after
// InfluxDB accepted a batch.
//
// Removing acknowledged entries from the front of a tidwall/wal log rewrites
// the rest of the first segment, so the spool does not do it per batch: the
// acknowledged index lives in a small file of its own ("acked"), and the
// log is truncated once a whole segment's worth of entries is acknowledged.
// After a crash the entries between the last saved "acked" and the real
// progress are written again; the measurement schema makes that idempotent
// (see influxdb.PointTime).
type spool struct {
	log       *wal.Log
	dir       string
	ackedFile string
	first     uint64        // first index physically in the log
	last      atomic.Uint64 // last index written; written by the committer only
	acked     uint64        // every index <= acked is in the store
	sinceTrim int64         // bytes acknowledged since the last truncation
	segment   int64
}

// spoolRecord is one entry: the terminal, seq and timestamp it came from
// (so that the duplicate filter can be rebuilt from the spool after a
// crash) and its line protocol.
//
//	uvarint len(ref) | ref | uvarint seq | [0x00 | varint ts] | line protocol...
//
// ts (Unix milliseconds) is there when seq > 0; the 0x00 before it tells it
// from the line protocol of records written before it existed, which
// starts with a measurement name.
type spoolRecord struct {
	Ref   string
	Seq   int64
	TS    int64 // Unix milliseconds; noTS when the record has none
	Lines []byte
}

// noTS is the timestamp of a record without one: later than any, so that
// the duplicate filter never takes a copy for a reset on its account.
const noTS = math.MaxInt64

func appendRecord(dst []byte, ref string, seq, tsMilli int64, lines []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ref)))
	dst = append(dst, ref...)
	dst = binary.AppendUvarint(dst, uint64(seq))
	if seq > 0 {
		dst = append(dst, 0)
		dst = binary.AppendVarint(dst, tsMilli)
	}
	return append(dst, lines...)
}

var errBadRecord = errors.New("spool: corrupt record")

func parseRecord(b []byte) (spoolRecord, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return spoolRecord{}, errBadRecord
	}
	ref := string(b[k : k+int(n)])
	b = b[k+int(n):]
	seq, k := binary.Uvarint(b)
	if k <= 0 || seq > math.MaxInt64 {
		return spoolRecord{}, errBadRecord
	}
	b = b[k:]
	ts := int64(noTS)
	if len(b) > 0 && b[0] == 0 {
		if ts, k = binary.Varint(b[1:]); k <= 0 {
			return spoolRecord{}, errBadRecord
		}
		b = b[1+k:]
	}
	return spoolRecord{Ref: ref, Seq: int64(seq), TS: ts, Lines: b}, nil
}

func openSpool(dir string, segmentBytes int, noSync bool) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	log, err := wal.Open(filepath.Join(dir, "log"), &wal.Options{
		NoSync:      noSync,
		SegmentSize: segmentBytes,
		LogFormat:   wal.Binary,
		// Entries are copied into a batch right away; no need for a copy per read.
		NoCopy:     true,
		AllowEmpty: true,
		DirPerms:   0o700,
		FilePerms:  0o600,
	})
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	s := &spool{log: log, dir: dir, ackedFile: filepath.Join(dir, "acked"), segment: int64(segmentBytes)}
	if s.first, err = log.FirstIndex(); err != nil {
		log.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	last, err := log.LastIndex()
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.last.Store(last)
	if s.first == 0 { // empty log: the next write gets last+1
		s.first = last + 1
	}
	s.acked = s.first - 1
	if b, err := os.ReadFile(s.ackedFile); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v >= s.acked && v <= last {
			s.acked = v
		}
	}
	return s, nil
}

// append writes records as consecutive entries in one batch (one fsync
// unless the log was opened with noSync) and returns the last index.
func (s *spool) append(b *wal.Batch, recs [][]byte) (uint64, error) {
	b.Clear()
	last := s.last.Load()
	idx := last
	for _, r := range recs {
		idx++
		b.Write(idx, r)
	}
	if err := s.log.WriteBatch(b); err != nil {
		return last, fmt.Errorf("spool: write: %w", err)
	}
	s.last.Store(idx)
	return idx, nil
}

func (s *spool) read(idx uint64) ([]byte, error) {
	b, err := s.log.Read(idx)
	if err != nil {
		return nil, fmt.Errorf("spool: read %d: %w", idx, err)
	}
	return b, nil
}

// ack records that every entry up to idx is stored, and trims the log when
// enough of it is.
func (s *spool) ack(idx uint64, bytes int64) error {
	s.acked = idx
	// A lost or torn "acked" file only means more entries are written again
	// after a crash, so it is written without fsync.
	if err := os.WriteFile(s.ackedFile, strconv.AppendUint(nil, idx, 10), 0o600); err != nil {
		return fmt.Errorf("spool: save progress: %w", err)
	}
	s.sinceTrim += bytes
	if s.sinceTrim < s.segment && idx != s.last.Load() {
		return nil
	}
	s.sinceTrim = 0
	if err := s.log.TruncateFront(idx + 1); err != nil {
		return fmt.Errorf("spool: trim: %w", err)
	}
	s.first = idx + 1
	return nil
}

func (s *spool) sync() error { return s.log.Sync() }

func (s *spool) close() error { return s.log.Close() }
