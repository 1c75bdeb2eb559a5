package collector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/wal"
)

// This file repairs the spool's log on disk, below tidwall/wal, which
// refuses to open a log whose last segment ends in a torn entry ("log
// corrupt") and cannot read past a torn entry in an earlier one.
//
// The format is wal's binary one: a segment file is named after the index
// of its first entry (20 digits) and holds entries one after another, each
// uvarint(len(data)) | data. Indexes are positions, so segment i+1 must
// start where segment i ends.

// segmentFile is one segment of the log on disk.
type segmentFile struct {
	path  string
	index uint64
}

// listSegments returns the log's segments in index order. It lets wal
// finish an interrupted truncation first (.START or .END files), as
// wal.Open would.
func listSegments(logDir string, opts *wal.Options) ([]segmentFile, error) {
	ents, err := os.ReadDir(logDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var segs []segmentFile
	pending := false
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || len(name) < 20 {
			continue
		}
		idx, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || idx == 0 {
			continue
		}
		switch {
		case len(name) == 20:
			segs = append(segs, segmentFile{filepath.Join(logDir, name), idx})
		case strings.HasSuffix(name, ".START"), strings.HasSuffix(name, ".END"):
			pending = true
		}
	}
	if pending {
		// wal renames and deletes what the interrupted truncation left
		// before it loads the last segment, so this works even when that
		// segment is torn.
		if l, err := wal.Open(logDir, opts); err == nil {
			l.Close()
		}
		return listSegments(logDir, nil)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].index < segs[j].index })
	return segs, nil
}

// nextEntry returns the length of the entry at the start of b and its
// data, or ok false when b does not start with a whole entry holding a
// spool record. strict also asks that the record look like one the
// collector writes, for finding entries again after damage.
func nextEntry(b []byte, strict bool) (n int, data []byte, ok bool) {
	size, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < size {
		return 0, nil, false
	}
	data = b[k : k+int(size)]
	r, err := parseRecord(data)
	if err != nil || len(r.Lines) == 0 || r.Lines[len(r.Lines)-1] != '\n' {
		return 0, nil, false
	}
	if !plausibleRef(r.Ref) || strict && !plausibleLines(r.Lines) {
		return 0, nil, false
	}
	return k + int(size), data, true
}

// plausibleRef tells a terminal name the collector wrote (ID characters
// around one ':', or just ':' for events without a terminal) from bytes
// that only happen to parse as one.
func plausibleRef(ref string) bool {
	if strings.Count(ref, ":") != 1 {
		return false
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		if !(c == ':' || c == '.' || c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// plausibleLines asks more of line protocol found after damage: UTF-8
// without control characters, which the framing of the entries around
// (uvarint lengths) is made of. A terminal's own text may hold control
// characters; such a record found after damage is set aside with it.
func plausibleLines(b []byte) bool {
	if len(b) > 1<<20 || !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\n' || c == 0x7f {
			return false
		}
	}
	return true
}

// spoolDamage is what a repair found and did.
type spoolDamage struct {
	Regions  int    // torn or unreadable stretches, or breaks in the index sequence
	Bytes    int64  // bytes set aside as unreadable
	Salvaged int    // intact entries found after damage and kept
	Dir      string // where the damaged segments went
	From     uint64 // first index that may have changed; entries before it are as they were
}

// repairLog checks every segment of the log and, when it finds damage,
// rewrites the log from the first damaged segment on with every intact
// entry it can find, renumbered without holes, and moves the original
// segments into dir/damaged-<time>/. It returns nil when the log is
// intact.
func repairLog(dir, logDir string, segmentBytes int) (*spoolDamage, error) {
	if err := finishRepairs(dir, logDir); err != nil {
		return nil, fmt.Errorf("spool: finish an interrupted repair: %w", err)
	}
	segs, err := listSegments(logDir, &wal.Options{AllowEmpty: true, LogFormat: wal.Binary, SegmentSize: segmentBytes, DirPerms: 0o700, FilePerms: 0o600})
	if err != nil {
		return nil, err
	}
	// Find the first damage: a segment that does not parse to its end, or
	// that does not end where the next one starts.
	from, keep, next := -1, 0, uint64(0)
	for i, sg := range segs {
		if i > 0 && sg.index != next {
			from, keep = i, 0
			break
		}
		b, err := os.ReadFile(sg.path)
		if err != nil {
			return nil, err
		}
		off, n := 0, uint64(0)
		for off < len(b) {
			k, _, ok := nextEntry(b[off:], false)
			if !ok {
				break
			}
			off += k
			n++
		}
		if off < len(b) {
			from, keep = i, off
			break
		}
		next = sg.index + n
	}
	if from < 0 {
		return nil, nil
	}
	start := segs[from].index
	if from > 0 && keep == 0 {
		start = next // a break in the sequence: renumber from where it should be
	}
	d := &spoolDamage{Dir: filepath.Join(dir, "damaged-"+time.Now().UTC().Format("20060102T150405.000000000Z")), From: start}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: repair: %w", err)
	}
	if from > 0 && keep == 0 {
		d.Regions++
	}

	// Write the intact entries of segments from..end as new segments in
	// the damaged directory, then swap them in.
	rb := &rebuilder{dir: d.Dir, index: start, max: segmentBytes}
	afterDamage := false // entries after the first damage are salvaged ones
	werr := func() error {
		for i, sg := range segs[from:] {
			b, err := os.ReadFile(sg.path)
			if err != nil {
				return err
			}
			off, inDamage := 0, false
			if d.Regions > 0 {
				afterDamage = true
			}
			if i == 0 {
				if err := rb.add(b[:keep], countEntries(b[:keep])); err != nil {
					return err
				}
				off = keep
			}
			for off < len(b) {
				// Before damage, trust the framing; after it, ask for a
				// plausible record so as not to take stray bytes for one.
				k, _, ok := nextEntry(b[off:], inDamage)
				if !ok {
					if !inDamage {
						d.Regions++
						inDamage, afterDamage = true, true
					}
					d.Bytes++
					off++
					continue
				}
				if afterDamage {
					d.Salvaged++
				}
				if err := rb.add(b[off:off+k], 1); err != nil {
					return err
				}
				inDamage = false
				off += k
			}
		}
		return rb.finish()
	}()
	if werr == nil {
		// The rebuilt segments are on disk; from here on the swap is
		// written down, so that a crash in the middle of it is finished
		// at the next start (finishRepairs) instead of leaving the log
		// without its tail.
		names := make([]string, len(rb.files))
		for i, p := range rb.files {
			names[i] = strings.TrimSuffix(filepath.Base(p), ".rebuilt")
		}
		if werr = writeMarker(d.Dir, start, names); werr == nil {
			if err := finishSwap(d.Dir, logDir, start, names); err != nil {
				return nil, fmt.Errorf("spool: repair: %w", err)
			}
			return d, nil
		}
		os.Remove(filepath.Join(d.Dir, markerName))
	}
	// No room (the disk that caused the damage may still be full): set
	// aside the damaged segments whole, so the log opens, and keep
	// everything in the damaged directory.
	for _, p := range rb.files {
		os.Remove(p)
	}
	d.Salvaged = 0
	for _, sg := range segs[from:] {
		if err := moveAside(sg.path, d.Dir); err != nil {
			return nil, fmt.Errorf("spool: repair: set aside %s: %w", sg.path, err)
		}
	}
	// An empty segment keeps the index where it was: the log goes on from
	// start, not from 1.
	if err := emptySegment(logDir, start); err != nil {
		return nil, fmt.Errorf("spool: repair: %w", err)
	}
	syncDir(logDir)
	syncDir(d.Dir)
	return d, fmt.Errorf("spool: repair: intact entries kept only in %s: %w", d.Dir, werr)
}

// markerName is the file in a damaged directory that says its rebuilt
// segments are complete and are to replace the log's from an index on:
// the index on the first line, then the segments' names.
const markerName = "REBUILT"

func writeMarker(dmgDir string, start uint64, names []string) error {
	body := strconv.FormatUint(start, 10) + "\n" + strings.Join(names, "\n")
	f, err := os.OpenFile(filepath.Join(dmgDir, markerName), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	syncDir(dmgDir)
	return nil
}

// finishRepairs completes the swaps of repairs a crash interrupted.
func finishRepairs(dir, logDir string) error {
	dirs, _ := filepath.Glob(filepath.Join(dir, "damaged-*"))
	sort.Strings(dirs)
	for _, dmg := range dirs {
		b, err := os.ReadFile(filepath.Join(dmg, markerName))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		lines := strings.Split(string(b), "\n")
		start, err := strconv.ParseUint(lines[0], 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dmg, markerName), err)
		}
		var names []string
		for _, l := range lines[1:] {
			if l != "" {
				names = append(names, l)
			}
		}
		if err := finishSwap(dmg, logDir, start, names); err != nil {
			return err
		}
	}
	return nil
}

// finishSwap moves the log's segments from start on into dmgDir and the
// rebuilt ones (names, each waiting as <name>.rebuilt in dmgDir) into the
// log, then removes the marker. Run again after a crash, it does what is
// left: a segment in the log is an original as long as its rebuilt
// namesake is still waiting, or when it has no rebuilt namesake at all.
func finishSwap(dmgDir, logDir string, start uint64, names []string) error {
	rebuilt := make(map[string]bool, len(names))
	for _, n := range names {
		rebuilt[n] = true
	}
	segs, err := listSegments(logDir, nil)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		base := filepath.Base(sg.path)
		if sg.index < start {
			continue
		}
		if _, err := os.Stat(filepath.Join(dmgDir, base+".rebuilt")); err == nil || !rebuilt[base] {
			if err := moveAside(sg.path, dmgDir); err != nil {
				return err
			}
		}
	}
	for _, n := range names {
		err := os.Rename(filepath.Join(dmgDir, n+".rebuilt"), filepath.Join(logDir, n))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if len(names) == 0 {
		if err := emptySegment(logDir, start); err != nil {
			return err
		}
	}
	syncDir(logDir)
	syncDir(dmgDir)
	if err := os.Remove(filepath.Join(dmgDir, markerName)); err != nil {
		return err
	}
	syncDir(dmgDir)
	return nil
}

// moveAside renames a segment into dmgDir without replacing a file of the
// same name there.
func moveAside(path, dmgDir string) error {
	dst := filepath.Join(dmgDir, filepath.Base(path))
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = filepath.Join(dmgDir, fmt.Sprintf("%s.%d", filepath.Base(path), i))
	}
	return os.Rename(path, dst)
}

// emptySegment creates an empty segment starting at index, unless there is one.
func emptySegment(logDir string, index uint64) error {
	f, err := os.OpenFile(filepath.Join(logDir, fmt.Sprintf("%020d", index)), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

func countEntries(b []byte) int {
	n := 0
	for len(b) > 0 {
		k, _, ok := nextEntry(b, false)
		if !ok {
			break
		}
		b = b[k:]
		n++
	}
	return n
}

// rebuilder writes entries into new segment files of about max bytes.
type rebuilder struct {
	dir   string
	index uint64 // index of the next entry
	max   int
	f     *os.File
	size  int
	files []string
}

func (r *rebuilder) add(entries []byte, n int) error {
	if len(entries) == 0 {
		return nil
	}
	if r.f == nil || r.size >= r.max {
		if err := r.closeFile(); err != nil {
			return err
		}
		p := filepath.Join(r.dir, fmt.Sprintf("%020d.rebuilt", r.index))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		r.f, r.size = f, 0
		r.files = append(r.files, p)
	}
	if _, err := r.f.Write(entries); err != nil {
		return err
	}
	r.size += len(entries)
	r.index += uint64(n)
	return nil
}

func (r *rebuilder) closeFile() error {
	if r.f == nil {
		return nil
	}
	f := r.f
	r.f = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *rebuilder) finish() error { return r.closeFile() }

// truncateLog cuts the log on disk back to its entries up to last: after a
// failed write, whatever the write left (a torn entry, part of a batch, a
// new segment) goes, so that the next write starts at a clean boundary.
func truncateLog(logDir string, last uint64, opts *wal.Options) error {
	segs, err := listSegments(logDir, opts)
	if err != nil {
		return err
	}
	// The segment that holds last, or the empty one that starts after it.
	j := -1
	for i, sg := range segs {
		if sg.index <= last+1 {
			j = i
		}
	}
	if j < 0 {
		return fmt.Errorf("spool: no segment holds entry %d", last)
	}
	for _, sg := range segs[j+1:] {
		if err := os.Remove(sg.path); err != nil {
			return err
		}
	}
	sg := segs[j]
	b, err := os.ReadFile(sg.path)
	if err != nil {
		return err
	}
	want := last + 1 - sg.index
	off := 0
	for n := uint64(0); n < want; n++ {
		k, _, ok := nextEntry(b[off:], false)
		if !ok {
			return fmt.Errorf("spool: entry %d lost: %w", sg.index+n, wal.ErrCorrupt)
		}
		off += k
	}
	if off == len(b) {
		return nil
	}
	f, err := os.OpenFile(sg.path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(int64(off)); err != nil {
		return err
	}
	return f.Sync()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
