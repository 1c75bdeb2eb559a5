package registry

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/posfleet/posfleet"
)

// Credential, ImportResult, LineError and ImportError are the root-owned
// values of a provisioning import (posfleet.Credential and the rest).
type (
	Credential   = posfleet.Credential
	ImportResult = posfleet.ImportResult
	LineError    = posfleet.LineError
	ImportError  = posfleet.ImportError
)

// The columns of a provisioning file (PROTOCOL.md §4).
const (
	colTenant   = "tenant"
	colTerminal = "terminal"
	colModel    = "model"
	colMerchant = "merchant"
	colSite     = "site"
	colRegion   = "region"
	colLat      = "lat"
	colLon      = "lon"
	colSecret   = "secret"

	// The optional columns of the crew's job sheet (a compatible
	// extension of PROTOCOL.md §4: a file without them imports as before
	// and leaves them empty).
	colAddress      = "address"
	colContact      = "contact"
	colPhone        = "phone"
	colOpeningHours = "opening_hours"
)

var optionalColumns = []string{colSecret, colAddress, colContact, colPhone, colOpeningHours}

// Bounds of the job-sheet columns, in characters: a full street address
// with building and floor, a name with a role, an international number
// with an extension, a week's hours written out.
const (
	maxAddressLen = 256
	maxContactLen = 128
	maxPhoneLen   = 32
	maxHoursLen   = 128
)

var requiredColumns = []string{colTenant, colTerminal, colModel, colMerchant, colSite, colRegion, colLat, colLon}

// maxTextLen bounds model, merchant, site and region, in characters: enough
// for a street address, small enough for a work-list column.
const maxTextLen = 128

// row is one valid line of a provisioning file.
type row struct {
	line                          int
	ref                           posfleet.TerminalRef
	model, merchant, site, region string
	lat, lon                      *float64
	contact                       posfleet.Contact
	secret                        string // "" keeps (or, for a new terminal, generates) the secret
}

// parseFile reads and validates a whole provisioning file. It returns an
// *ImportError listing every bad line, or another error if in cannot be read.
func parseFile(in io.Reader) ([]row, error) {
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = -1 // checked per line, so that one short line does not hide the others
	var errs []LineError
	bad := func(line int, col string, format string, args ...any) {
		errs = append(errs, LineError{Line: line, Column: col, Err: fmt.Errorf(format, args...)})
	}

	header, err := cr.Read()
	if err == io.EOF {
		return nil, &ImportError{Errors: []LineError{{Line: 1, Err: fmt.Errorf("empty file: want the header %s", strings.Join(requiredColumns, ","))}}}
	}
	var perr *csv.ParseError
	if errors.As(err, &perr) {
		return nil, &ImportError{Errors: []LineError{{Line: perr.Line, Err: perr.Err}}}
	}
	if err != nil {
		return nil, fmt.Errorf("read provisioning file: %w", err)
	}
	headerLine, _ := cr.FieldPos(0)
	col := map[string]int{}
	var unknown []string
	for i, name := range header {
		if i == 0 {
			// Spreadsheets often save CSV with a byte order mark.
			name = strings.TrimPrefix(name, "\uFEFF")
		}
		name = strings.ToLower(strings.TrimSpace(name))
		switch {
		case !slices.Contains(requiredColumns, name) && !slices.Contains(optionalColumns, name):
			unknown = append(unknown, strconv.Quote(name))
		case col[name] != 0:
			bad(headerLine, name, "column appears twice")
		default:
			col[name] = i + 1 // +1 so that 0 means absent
		}
	}
	if len(unknown) > 0 {
		bad(headerLine, "", "unknown column(s) %s; want %s and optionally %s",
			strings.Join(unknown, ", "), strings.Join(requiredColumns, ","), strings.Join(optionalColumns, ","))
	}
	var missing []string
	for _, name := range requiredColumns {
		if col[name] == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		bad(headerLine, "", "missing column(s) %s", strings.Join(missing, ", "))
	}
	if len(errs) > 0 {
		return nil, &ImportError{Errors: errs}
	}

	var rows []row
	seen := map[posfleet.TerminalRef]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if errors.As(err, &perr) {
			bad(perr.Line, "", "%v", perr.Err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read provisioning file: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			bad(line, "", "want %d fields as in the header, got %d", len(header), len(rec))
			continue
		}
		field := func(name string) string {
			if i := col[name]; i != 0 {
				return strings.TrimSpace(rec[i-1])
			}
			return ""
		}
		nErrs := len(errs)
		r := row{line: line}
		r.ref.Tenant = field(colTenant)
		if !posfleet.ValidID(r.ref.Tenant) {
			bad(line, colTenant, "%q: %v", posfleet.Redact(r.ref.Tenant), posfleet.ErrInvalidID)
		}
		r.ref.Terminal = field(colTerminal)
		if !posfleet.ValidID(r.ref.Terminal) {
			bad(line, colTerminal, "%q: %v", posfleet.Redact(r.ref.Terminal), posfleet.ErrInvalidID)
		}
		for _, t := range []struct {
			name string
			dst  *string
		}{{colModel, &r.model}, {colMerchant, &r.merchant}, {colSite, &r.site}, {colRegion, &r.region}} {
			*t.dst = field(t.name)
			if err := checkText(*t.dst); err != nil {
				bad(line, t.name, "%v", err)
			}
		}
		for _, t := range []struct {
			name string
			max  int
			dst  *string
		}{{colAddress, maxAddressLen, &r.contact.Address}, {colContact, maxContactLen, &r.contact.Person},
			{colPhone, maxPhoneLen, &r.contact.Phone}, {colOpeningHours, maxHoursLen, &r.contact.OpeningHours}} {
			*t.dst = field(t.name)
			if err := checkTextLen(*t.dst, t.max); err != nil {
				bad(line, t.name, "%v", err)
			} else if t.name == colPhone && !validPhone(*t.dst) {
				bad(line, t.name, "want digits, spaces, +, - and parentheses only")
			}
		}
		lat, lon := field(colLat), field(colLon)
		if lat != "" || lon != "" {
			var ok bool
			if r.lat, ok = parseCoord(lat, 90); !ok {
				bad(line, colLat, "want a number in -90..90 (or lat and lon both empty)")
			}
			if r.lon, ok = parseCoord(lon, 180); !ok {
				bad(line, colLon, "want a number in -180..180 (or lat and lon both empty)")
			}
		}
		r.secret = field(colSecret)
		// The value itself never goes into a message: it is a credential.
		if n := utf8.RuneCountInString(r.secret); r.secret != "" && (n < minSecretLen || n > maxSecretLen) {
			bad(line, colSecret, "want %d..%d characters, got %d", minSecretLen, maxSecretLen, n)
		} else if r.secret != "" && !utf8.ValidString(r.secret) {
			bad(line, colSecret, "want valid UTF-8")
		}
		if len(errs) > nErrs {
			continue
		}
		if first, dup := seen[r.ref]; dup {
			bad(line, colTerminal, "%s already appears on line %d", r.ref, first)
			continue
		}
		seen[r.ref] = line
		rows = append(rows, r)
	}
	if len(errs) > 0 {
		return nil, &ImportError{Errors: errs}
	}
	return rows, nil
}

// checkText accepts what can be shown in a page, a CSV work list and a log
// line as is, and holds no card data.
func checkText(s string) error { return checkTextLen(s, maxTextLen) }

// checkTextLen is checkText with a bound of max characters.
func checkTextLen(s string, max int) error {
	if posfleet.ContainsCardData(s) {
		return errors.New("looks like it holds a card number; card data is never stored")
	}
	if !utf8.ValidString(s) {
		return errors.New("want valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("want at most %d characters, got %d", max, n)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return errors.New("want no control characters")
	}
	return nil
}

// validPhone accepts a phone number as people write it: digits, spaces,
// +, - and parentheses ("+86 (28) 8661-2345"); "" when not given. The
// page turns it into a tel: link, so nothing else may get through.
func validPhone(s string) bool {
	for _, c := range s {
		if ('0' > c || c > '9') && !strings.ContainsRune(" +-()", c) {
			return false
		}
	}
	return true
}

// parseCoord parses a latitude (limit 90) or longitude (limit 180).
func parseCoord(s string, limit float64) (*float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < -limit || v > limit {
		return nil, false
	}
	return &v, true
}

// Import reads a provisioning CSV file (PROTOCOL.md §4) and provisions its
// terminals.
//
// The whole file is validated first; if any line is bad, Import returns an
// *ImportError listing every problem and changes nothing. Otherwise all rows
// are applied in one transaction: new terminals are added with a generated
// secret (or the file's), known terminals get their site data updated and
// keep their secret and creation time unless the row carries a secret, which
// replaces the old one.
//
// emit, unless nil, is called once with the secrets this import sets, before
// the change is committed, so that the caller can store them first; if emit
// returns an error, nothing is committed. The secrets are not recoverable
// afterwards: only their hashes are stored.
func (r *Registry) Import(ctx context.Context, in io.Reader, emit func([]Credential) error) (ImportResult, error) {
	rows, err := parseFile(in)
	if err != nil {
		var ie *ImportError
		if errors.As(err, &ie) {
			return ImportResult{}, ie
		}
		return ImportResult{}, fmt.Errorf("registry: import: %w", err)
	}

	r.importMu.Lock()
	defer r.importMu.Unlock()

	// Find the new terminals first, so that their secrets can be hashed
	// outside the write transaction: hashing thousands takes minutes,
	// during which authentication and other writers must go on.
	if err := r.sync(ctx); err != nil {
		return ImportResult{}, fmt.Errorf("registry: import: %w", err)
	}
	isNew := make([]bool, len(rows))
	r.idxMu.RLock()
	for i, row := range rows {
		isNew[i] = r.idx[row.ref] == nil
	}
	r.idxMu.RUnlock()
	var creds []Credential
	var toHash []int // index into rows, parallel to creds
	for i := range rows {
		if rows[i].secret == "" && isNew[i] {
			rows[i].secret = generateSecret()
		}
		if rows[i].secret != "" {
			creds = append(creds, Credential{TerminalRef: rows[i].ref, Secret: rows[i].secret})
			toHash = append(toHash, i)
		}
	}
	hashStart := time.Now()
	hashes, err := r.hashAll(ctx, creds)
	if err != nil {
		return ImportResult{}, fmt.Errorf("registry: import: %w", err)
	}
	hashTime := time.Since(hashStart)
	hashOf := make(map[int]string, len(toHash))
	for j, i := range toHash {
		hashOf[i] = hashes[j]
	}

	var res ImportResult
	var rotated []posfleet.TerminalRef
	// Stored times are milliseconds: the same in memory.
	now := time.Now().UTC().Truncate(time.Millisecond)
	writeStart := time.Now()
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	var written []storedTerminal
	var newVersion int64
	var caught []loadedRow
	err = r.db.Tx(ctx, func(tx *sql.Tx) error {
		// The version lock first: from here on no other process writes
		// terminals until this transaction ends, so what it reads next is
		// what it writes over.
		v, err := nextVersion(ctx, tx)
		if err != nil {
			return err
		}
		newVersion = v
		// Changes committed by others since the sync above.
		caught, err = r.changedSince(ctx, tx, r.synced)
		if err != nil {
			return err
		}
		current := make(map[posfleet.TerminalRef]*entry, len(caught))
		for i := range caught {
			current[caught[i].t.TerminalRef] = &entry{t: caught[i].t, hash: caught[i].hash}
		}
		var verified []verifiedRow
		var secretSet []posfleet.TerminalRef
		r.idxMu.RLock()
		for i, row := range rows {
			prev := current[row.ref]
			if prev == nil {
				prev = r.idx[row.ref]
			}
			if (prev == nil) != isNew[i] {
				// Another process provisioned it since this import
				// decided whether to make it a secret.
				r.idxMu.RUnlock()
				return posfleet.KindError(posfleet.Conflict, fmt.Sprintf("%s %v", row.ref, errChanged))
			}
			st := storedTerminal{t: Terminal{TerminalRef: row.ref, Created: now}}
			if prev != nil {
				st = storedTerminal{t: prev.t, hash: prev.hash}
			}
			st.t.Model, st.t.Merchant, st.t.Site, st.t.Region = row.model, row.merchant, row.site, row.region
			st.t.Lat, st.t.Lon = row.lat, row.lon
			st.t.Contact = row.contact
			if h, ok := hashOf[i]; ok {
				st.hash = h
				// In this transaction, not after it: a persisted entry of
				// the old secret must not outlive the change, even by a
				// crash. The import knows the new secret, so it stores the
				// new one's entry right away where it may (see
				// minPersistedSecretLen): a fleet provisioned and then
				// connecting all at once skips argon2id as after a
				// restart.
				if prev != nil {
					secretSet = append(secretSet, row.ref)
				}
				if r.persist != nil && utf8.RuneCountInString(row.secret) >= minPersistedSecretLen {
					verified = append(verified, verifiedRow{ref: row.ref, mac: r.mac([]byte(row.secret)), hash: h})
				}
			}
			switch {
			case prev == nil:
				res.Added++
			case row.secret != "":
				rotated = append(rotated, row.ref)
				res.Updated++
			case sameSite(&prev.t, &st.t):
				res.Unchanged++
				continue
			default:
				res.Updated++
			}
			st.t.Updated = now
			written = append(written, st)
		}
		r.idxMu.RUnlock()
		if err := upsertTerminals(ctx, r.db.Dialect, tx, written, v, false); err != nil {
			return err
		}
		if err := dropVerified(ctx, tx, secretSet); err != nil {
			return err
		}
		if err := putVerified(ctx, r.db.Dialect, tx, r.keyID, verified); err != nil {
			return err
		}
		if emit != nil {
			if err := emit(creds); err != nil {
				return fmt.Errorf("emit credentials: %w", err)
			}
		}
		// The last chance to back out: after this the change is durable.
		return ctx.Err()
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("registry: import: %w", err)
	}
	// Into memory at once: what others changed before this import, then
	// this import. Nothing else was written in between (the version lock),
	// so everything up to newVersion is known.
	r.apply(caught)
	mine := make([]loadedRow, len(written))
	for i, st := range written {
		mine[i] = loadedRow{t: st.t, hash: st.hash, version: newVersion}
	}
	r.apply(mine)
	r.forget(rotated)
	r.synced = newVersion
	res.Credentials = creds
	writeTime := time.Since(writeStart)
	r.lastImport = [2]time.Duration{hashTime, writeTime}
	r.log.Info("import", "added", res.Added, "updated", res.Updated, "unchanged", res.Unchanged, "rotated", len(rotated),
		"hash_seconds", hashTime.Seconds(), "write_seconds", writeTime.Seconds())
	return res, nil
}

// sameSite reports whether a and b hold the same site data.
func sameSite(a, b *Terminal) bool {
	eq := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Model == b.Model && a.Merchant == b.Merchant && a.Site == b.Site && a.Region == b.Region &&
		eq(a.Lat, b.Lat) && eq(a.Lon, b.Lon) && a.Contact == b.Contact
}

// hashAll hashes the secrets on every core: a first import of a whole fleet
// hashes thousands of them.
func (r *Registry) hashAll(ctx context.Context, creds []Credential) ([]string, error) {
	hashes := make([]string, len(creds))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), len(creds)) {
		wg.Go(func() {
			for i := range next {
				hashes[i] = r.hashSecret([]byte(creds[i].Secret))
			}
		})
	}
	var err error
feed:
	for i := range creds {
		select {
		case next <- i:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("hash secrets: %w", err)
	}
	return hashes, nil
}

// WriteCredentials writes creds as CSV with the header tenant,terminal,secret.
func WriteCredentials(w io.Writer, creds []Credential) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{colTenant, colTerminal, colSecret}); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	for _, c := range creds {
		if err := cw.Write([]string{c.Tenant, c.Terminal, c.Secret}); err != nil {
			return fmt.Errorf("write credentials: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}
