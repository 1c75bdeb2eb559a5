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
	"sync"
	"sync/atomic"

	"github.com/tidwall/wal"

	"github.com/posfleet/posfleet"
)

// spool is the collector's durable queue: an append-only log (tidwall/wal)
// of encoded points, written before the broker acknowledges a publish and
// read by the writer, which advances the acknowledged index only after
// InfluxDB accepted a batch.
//
// The acknowledged index lives in a small file of its own ("acked"), and
// the log drops only whole segments whose entries are all acknowledged
// (wal.Log.TruncateFrontSegments): removing entries from the middle of a
// segment would rewrite the rest of it. The log therefore starts up to a
// segment before the first entry to write. After a crash the entries
// between the last saved "acked" and the real progress are written again;
// the measurement schema makes that idempotent (see influxdb.PointTime).
type spool struct {
	// mu guards log, which a failed write replaces (see rollback); nil
	// while the log could not be reopened, and append tries again.
	mu        sync.RWMutex
	log       *wal.Log
	opts      wal.Options
	dir       string
	logDir    string
	ackedFile string
	first     uint64        // first index physically in the log
	last      atomic.Uint64 // last index written; written by the committer only
	acked     uint64        // every index <= acked is in the store
	// damage is what openSpool found and repaired, for the collector to
	// log and count; nil when the log was intact.
	damage *spoolDamage
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
	return appendRecordRest(dst, seq, tsMilli, lines)
}

// appendTerminalRecord is appendRecord(dst, ref.String(), seq, tsMilli,
// nil) without building ref.String(): past 32 bytes (names are up to 64
// bytes each), that is an allocation per message.
func appendTerminalRecord(dst []byte, ref posfleet.TerminalRef, seq, tsMilli int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ref.Tenant)+1+len(ref.Terminal)))
	dst = append(dst, ref.Tenant...)
	dst = append(dst, ':')
	dst = append(dst, ref.Terminal...)
	return appendRecordRest(dst, seq, tsMilli, nil)
}

// appendRecordRest appends what follows the terminal in a record.
func appendRecordRest(dst []byte, seq, tsMilli int64, lines []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(seq))
	if seq > 0 {
		dst = append(dst, 0)
		dst = binary.AppendVarint(dst, tsMilli)
	}
	return append(dst, lines...)
}

var errBadRecord = errors.New("spool: corrupt record")

func parseRecord(b []byte) (spoolRecord, error) {
	ref, seq, ts, lines, err := splitRecord(b)
	if err != nil {
		return spoolRecord{}, err
	}
	return spoolRecord{Ref: string(ref), Seq: seq, TS: ts, Lines: lines}, nil
}

// splitRecord is parseRecord without copying the terminal's name: the
// writer reads every record for its lines only.
func splitRecord(b []byte) (ref []byte, seq, ts int64, lines []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, 0, 0, nil, errBadRecord
	}
	ref = b[k : k+int(n)]
	b = b[k+int(n):]
	useq, k := binary.Uvarint(b)
	if k <= 0 || useq > math.MaxInt64 {
		return nil, 0, 0, nil, errBadRecord
	}
	b = b[k:]
	ts = noTS
	if len(b) > 0 && b[0] == 0 {
		if ts, k = binary.Varint(b[1:]); k <= 0 {
			return nil, 0, 0, nil, errBadRecord
		}
		b = b[1+k:]
	}
	return ref, int64(useq), ts, b, nil
}

// openSpool opens the spool in dir. A log damaged by a torn write (a crash
// in the middle of one, or a full disk under an older version) is
// repaired first: every intact entry stays, the damage is moved to
// dir/damaged-<time>/ and reported in s.damage. Only an error reading or
// renaming files keeps it from opening.
func openSpool(dir string, segmentBytes int, noSync bool) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &spool{
		dir:       dir,
		logDir:    filepath.Join(dir, "log"),
		ackedFile: filepath.Join(dir, "acked"),
		opts: wal.Options{
			NoSync:      noSync,
			SegmentSize: segmentBytes,
			LogFormat:   wal.Binary,
			// Entries are copied into a batch right away (readFunc); no
			// need for a copy per read.
			NoCopy:     true,
			AllowEmpty: true,
			DirPerms:   0o700,
			FilePerms:  0o600,
		},
	}
	damage, err := repairLog(dir, s.logDir, segmentBytes)
	if damage == nil && err != nil {
		return nil, fmt.Errorf("spool: check %s: %w", dir, err)
	}
	// With damage and an error, the damaged segments are set aside and the
	// log opens without them: the server starts, the error is logged.
	s.damage = damage
	log, err := wal.Open(s.logDir, &s.opts)
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	s.log = log
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
	maxAcked := last
	if damage != nil && damage.From > 0 {
		// Entries from damage.From on may have moved: write them again
		// rather than take them as stored.
		maxAcked = min(last, damage.From-1)
	}
	if b, err := os.ReadFile(s.ackedFile); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v >= s.acked && v <= maxAcked {
			s.acked = v
		}
	}
	return s, nil
}

// errSpoolBroken is returned while the log could not be reopened after a
// failed write.
var errSpoolBroken = errors.New("spool: log unavailable after a failed write")

// append writes records as consecutive entries in one batch (one fsync
// unless the log was opened with noSync) and returns the last index.
//
// A failed write or fsync fails the whole batch, and the log is cut back
// to the entries before it (rollback) before anything else is written:
// tidwall/wal keeps the failed entries in memory and a torn entry in the
// file, and would write the next batch after them. An fsync error is
// never retried: the kernel may have dropped the pages it could not
// write, so a later fsync could succeed without them on disk.
func (s *spool) append(recs [][]byte) (uint64, error) {
	last := s.last.Load()
	s.mu.RLock()
	log := s.log
	s.mu.RUnlock()
	if log == nil {
		s.mu.Lock()
		err := s.rollback(last)
		s.mu.Unlock()
		if err != nil {
			return last, err
		}
		log = s.log
	}
	if err := log.WriteEntries(last+1, recs); err != nil {
		werr := fmt.Errorf("spool: write: %w", err)
		s.mu.Lock()
		if rerr := s.rollback(last); rerr != nil {
			werr = errors.Join(werr, rerr)
		}
		s.mu.Unlock()
		return last, werr
	}
	idx := last + uint64(len(recs))
	s.last.Store(idx)
	return idx, nil
}

// rollback closes the log, cuts the files back to entry last and opens
// them again. Callers hold s.mu.
func (s *spool) rollback(last uint64) error {
	if s.log != nil {
		// Close fsyncs first and fails (leaving the file open) when the
		// disk does; the handle is given up either way.
		s.log.Close()
		s.log = nil
	}
	if err := truncateLog(s.logDir, last, &s.opts); err != nil {
		return fmt.Errorf("%w: cut back to %d: %w", errSpoolBroken, last, err)
	}
	log, err := wal.Open(s.logDir, &s.opts)
	if err != nil {
		return fmt.Errorf("%w: reopen: %w", errSpoolBroken, err)
	}
	if li, err := log.LastIndex(); err != nil || li != last {
		log.Close()
		return fmt.Errorf("%w: reopened at %d, want %d (%v)", errSpoolBroken, li, last, err)
	}
	if fi, err := log.FirstIndex(); err == nil && fi > s.first {
		s.first = fi
	}
	s.log = log
	return nil
}

// read returns an entry, valid until the log is next written: only for
// recovery, before the committer starts (see readFunc).
func (s *spool) read(idx uint64) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.log == nil {
		return nil, errSpoolBroken
	}
	b, err := s.log.Read(idx)
	if err != nil {
		return nil, fmt.Errorf("spool: read %d: %w", idx, err)
	}
	return b, nil
}

// readFunc calls fn with an entry, valid only while fn runs: the log
// reuses its buffers.
func (s *spool) readFunc(idx uint64, fn func([]byte)) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.log == nil {
		return errSpoolBroken
	}
	if err := s.log.ReadFunc(idx, fn); err != nil {
		return fmt.Errorf("spool: read %d: %w", idx, err)
	}
	return nil
}

// ack records that every entry up to idx is stored, and removes the
// segments it completes from the log.
func (s *spool) ack(idx uint64) error {
	s.acked = idx
	// A lost or torn "acked" file only means more entries are written again
	// after a crash, so it is written without fsync.
	if err := os.WriteFile(s.ackedFile, strconv.AppendUint(nil, idx, 10), 0o600); err != nil {
		return fmt.Errorf("spool: save progress: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.log == nil {
		return nil // trimmed once the log is back
	}
	first, err := s.log.TruncateFrontSegments(idx + 1)
	if first > s.first {
		s.first = first
	}
	if err != nil {
		// The segments not removed stay in the log, which the next trim
		// tries again.
		return fmt.Errorf("spool: trim: %w", err)
	}
	return nil
}

func (s *spool) sync() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.log == nil {
		return errSpoolBroken
	}
	return s.log.Sync()
}

func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return nil
	}
	err := s.log.Close()
	s.log = nil
	return err
}
