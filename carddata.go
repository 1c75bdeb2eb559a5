package posfleet

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The card-data guard (ContainsCardData) every value from outside passes
// before it is stored, logged, spooled or shown. It is wider than
// ContainsPAN, which keeps its narrower contract for raw bytes.
//
// First the text is normalised, so that what a reader would see as digits
// counts as digits:
//
//   - Unicode NFKC (fullwidth ４, mathematical 𝟒, no-break and ideographic
//     spaces become ASCII); any other decimal digit (Arabic-Indic, Devanagari,
//     …) becomes its ASCII digit;
//   - invisible characters are dropped: format characters (zero-width space
//     and joiners, soft hyphen, BOM, word joiner), combining marks, and ASCII
//     control characters other than tab, newline and carriage return;
//   - every other letter stays a letter (it ends a number), every other
//     character is a separator.
//
// Plain ASCII text (no control characters but tab, newline and carriage
// return) is not copied: a pre-scan lets through, in one pass, text whose
// digits cannot make a card number under any rule, and the rules run on
// the rest in place, without allocating. Only text with a non-ASCII byte
// or a control character takes the normalising copy.
//
// Then, on the normalised text, where a "run" is a maximal run of digits, a
// "gap" is 1 to 3 separators (no letter, no digit) between two runs, and a
// "long" run has 4 digits or more:
//
//  1. Plain: a run of 13–19 digits passing Luhn whose first digits are
//     issued for its length (see issuable: not 0; 1 only for 15 digits; 13
//     digits start with 4, 5 or 6; 15 digits not with 35, 86 or 99, which
//     are IMEIs). Every candidate card number of the rules below passes the
//     same check.
//  2. Grouped: 2 to 4 long runs joined by gaps, optionally followed by one
//     run of 1–3 digits joined by a gap, 13–19 digits together (15–19 when
//     there are only two groups: a date and a sequence number,
//     "20261122-000187", make 14), passing Luhn: 4-4-4-4 and 4-4-4-4-n with
//     any separators ("4111.1111…", "/", ",", "_", double spaces, tabs),
//     8+8, 6+13, 4-6-5, 4-6-4, 4-6-3, and the same layouts inside a longer
//     chain of groups or after other numbers. The first and last group must
//     not touch a letter: such a group is part of a word (a UUID).
//  3. Glued: a run that is a card number with something run into it —
//     a length or tag in front: two digits equal to the PAN's length (ISO
//     8583 LLVAR: "F2=16…", "2" and "=" being a letter and a gap) or a BCD
//     length byte "0N", N = half the PAN's length rounded up (EMV tag 5A,
//     "5A08…"), three digits "0NN" (LLLVAR), four digits starting "57" (EMV
//     tag 57 with its length byte, track-2 equivalent "5713…D…"); or an
//     expiry behind: 4 digits holding a month 01–12 (MMYY or YYMM), or 7
//     (YYMM and a service code starting 1, 2, 5 or 6). The candidate PAN
//     must start with 2–6 (the major networks). A run of 19 digits starting
//     with 1 is a Unix time in nanoseconds, not "17" and a 17-digit PAN.
//     A run of more than 26 digits is not read (it would hold a Luhn-valid
//     window almost always).
//
// Rules 1 and 3 do not apply to a digit run inside a hex word of 32
// characters or more with letters in it (a hash, a key), unless it follows
// an EMV tag and length ("5A08", "57", "5A0A"): the digit runs of a SHA-256
// are random.
//
//  4. Byte dumps: runs of exactly 2 digits joined by single separators
//     ("5A 08 41 11 …", "41:11:…") are read as one run, to which rules 1 and
//     3 apply.
//  5. Hex-encoded text: a run of 26 or more hex digits is decoded byte by
//     byte (at both alignments); every stretch of 13 or more printable ASCII
//     bytes is checked by rules 1–4 ("3431313131…" is "4111…").
//
// What passes: dates, times and RFC 3339 timestamps (their groups are 2
// digits, which end a grouped number), versions, IP and MAC addresses,
// UUIDs and hex hashes (letters split them, and their bytes do not decode to
// text), phone numbers (fewer than 13 digits, or groups of 3), amounts,
// base64, and IMEIs. Not caught: a card number split by letters, groups of
// 1–3 digits other than byte dumps, a 13- or 14-digit card number in two
// groups, "17" glued to a 17-digit card number, a card number inside a run
// of more than 26 digits, base64 or other encodings of a card number.
//
// The rule errs on the side of refusing: a list of four-digit numbers
// ("2024, 2025, 2026, 2027") that happens to pass Luhn is refused, one time
// in ten.

// ContainsCardData reports whether s, a text from outside posfleet (a topic
// segment, a username or client ID, a note, a provisioning or policy field,
// a JSON string of a payload), holds a card number in any layout described
// at the top of carddata.go. Every such value passes it before it is
// stored, logged, spooled or shown. It does not allocate for ASCII text
// without control characters.
func ContainsCardData(s string) bool {
	switch prescan(s) {
	case clean:
		return false
	case suspicious:
		return cardText(s, true)
	}
	return cardText(normalise([]byte(s)), true)
}

// containsCardDataBytes is ContainsCardData for bytes.
func containsCardDataBytes(b []byte) bool {
	switch prescan(b) {
	case clean:
		return false
	case suspicious:
		return cardText(b, true)
	}
	return cardText(normalise(b), true)
}

// What prescan found.
const (
	clean      = iota // plain ASCII that no rule can match
	suspicious        // plain ASCII that the rules must read
	nonASCII          // text to normalise first
)

// prescan tells in one pass whether b needs the rules at all. Plain ASCII
// (see plainASCII) can only match when its runs of 4 digits or more hold
// 10 digits together (rules 1–3: a grouped number is long runs and a tail
// of 3 at most), or its 2-digit runs hold 13 (rule 4), or it has a hex run
// of 26 (rule 5). Timestamps, versions and IDs have none of these.
func prescan[T string | []byte](b T) int {
	long, two, run, hexRun, maxHex := 0, 0, 0, 0, 0
	for i := 0; i < len(b); i++ {
		k := scanClass[b[i]]
		if k&clOdd != 0 {
			return nonASCII
		}
		if k&clHex != 0 {
			hexRun++
		} else {
			maxHex = max(maxHex, hexRun)
			hexRun = 0
		}
		if k&clDigit != 0 {
			run++
			continue
		}
		if run >= 4 {
			long += run
		} else if run == 2 {
			two += 2
		}
		run = 0
	}
	if run >= 4 {
		long += run
	} else if run == 2 {
		two += 2
	}
	if long >= 10 || two >= 13 || max(maxHex, hexRun) >= 26 {
		return suspicious
	}
	return clean
}

// scanClass is the class of every byte for prescan: clDigit, clHex, and
// clOdd for what takes the normalising copy (not ASCII, DEL, and control
// characters other than tab, newline and carriage return).
var scanClass = byteClasses(func(c byte) uint8 {
	if c >= 0x7f || c < ' ' && c != '\t' && c != '\n' && c != '\r' {
		return clOdd
	}
	return 0
})

// byteClasses returns a table of every byte's class: special's, when it
// gives one, else clDigit|clHex for digits and clHex for hex letters.
func byteClasses(special func(c byte) uint8) (t [256]uint8) {
	for i := range t {
		c := byte(i)
		switch {
		case special(c) != 0:
			t[c] = special(c)
		case isDigit(c):
			t[c] = clDigit | clHex
		case isHex(c):
			t[c] = clHex
		}
	}
	return t
}

// Redact returns s when it holds no card data, and otherwise a fixed marker
// that keeps none of its digits, safe to log, store and show.
func Redact(s string) string {
	if ContainsCardData(s) {
		return RedactedMarker
	}
	return s
}

// RedactedMarker stands in for a value withheld because it looked like card
// data.
const RedactedMarker = "(withheld: looked like card data)"

// normalise returns b as ASCII text for the rules: NFKC, decimal digits as
// ASCII digits, invisible characters dropped, other letters as 'x' and
// everything else as a space.
func normalise(b []byte) []byte {
	b = norm.NFKC.Bytes(b)
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			out = append(out, byte(r))
		case r < ' ' || r == 0x7f:
			// an invisible control character
		case r < 0x7f:
			out = append(out, byte(r))
		case unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me, unicode.Cc):
			// invisible
		case unicode.Is(unicode.Nd, r):
			out = append(out, '0'+digitValue(r))
		case unicode.IsLetter(r) && r != utf8.RuneError:
			out = append(out, 'x')
		default:
			out = append(out, ' ')
		}
	}
	return out
}

// digitValue returns the value of r, a decimal digit (Unicode Nd). Decimal
// digits come in runs of ten, zero first; runs may follow each other.
func digitValue(r rune) byte {
	n := 0
	for n < 60 && unicode.Is(unicode.Nd, r-rune(n)-1) {
		n++
	}
	return byte(n % 10)
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isHex(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

// cardText applies the rules to b, normalised text (see the top of the
// file); hex says whether rule 5 applies (it does not to decoded text).
func cardText[T string | []byte](b T, hex bool) bool {
	var (
		// the long runs of the current chain: start and end of each, the
		// last four at most
		longStart, longEnd [4]int
		nLong              int
		// the current byte dump: its digits, and the end of its last run
		dump    [64]byte
		nDump   int
		dumpEnd = -2
		prevEnd = -10 // end of the previous run
	)
	for i := 0; i < len(b); {
		c := b[i]
		if hex && isHex(c) && (i == 0 || !isHex(b[i-1])) {
			if j := hexEnd(b, i); j-i >= 26 && hexText(b[i:j]) {
				return true
			}
		}
		if !isDigit(c) {
			i++
			continue
		}
		j := i + 1
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		n := j - i
		joined := gapAt(b, prevEnd, i)

		// Rules 1 and 3 on the run itself; inside a long hex word only
		// after an EMV tag.
		if n >= 13 && n <= 26 && (!inHexWord(b, i, j) || afterEMVTag(b, i, j)) && cardRun(b[i:j]) {
			return true
		}

		// Rule 4: byte dumps.
		continues := nDump > 0 && dumpEnd == i-1 && !isLetter(b[i-1]) && nDump+2 <= len(dump)
		if continues && n == 2 {
			nDump += copy(dump[nDump:], b[i:j])
		} else if continues && n == 1 && j < len(b) && b[j]|0x20 == 'f' {
			// the last digit of an odd-length PAN, padded with F
			nDump += copy(dump[nDump:], b[i:j])
			if cardRun(dump[:nDump]) {
				return true
			}
			nDump = 0
		} else {
			if nDump >= 13 && cardRun(dump[:nDump]) {
				return true
			}
			nDump = 0
			if n == 2 {
				nDump = copy(dump[:], b[i:j])
			}
		}
		dumpEnd = j

		// Rule 2: grouped.
		if !joined {
			nLong = 0
		}
		if n >= 4 {
			if nLong == len(longStart) {
				copy(longStart[:], longStart[1:])
				copy(longEnd[:], longEnd[1:])
				nLong--
			}
			longStart[nLong], longEnd[nLong] = i, j
			nLong++
			if groupedPAN(b, longStart[:nLong], longEnd[:nLong], j) {
				return true
			}
		} else {
			if nLong > 0 && groupedPAN(b, longStart[:nLong], longEnd[:nLong], j) {
				return true
			}
			nLong = 0 // a short run ends a grouped number
		}
		prevEnd = j
		i = j
	}
	return nDump >= 13 && cardRun(dump[:nDump])
}

// gapAt reports whether b[prevEnd:start] is a gap: 1 to 3 separators.
func gapAt[T string | []byte](b T, prevEnd, start int) bool {
	if prevEnd < 0 || start-prevEnd < 1 || start-prevEnd > 3 {
		return false
	}
	for k := prevEnd; k < start; k++ {
		if isLetter(b[k]) {
			return false
		}
	}
	return true
}

// groupedPAN reports whether the long runs b[starts[k]:ends[k]], joined by
// gaps (the last one possibly followed by a gap and a short run ending at
// end), taken from the last backwards, two runs or more, make 13–19 digits
// passing Luhn.
func groupedPAN[T string | []byte](b T, starts, ends []int, end int) bool {
	last := len(starts) - 1
	tail := 0
	// the digits from starts[k] to end: the runs' lengths, gaps have none
	digits := ends[last] - starts[last]
	if end != ends[last] {
		tail = 1
		digits += countDigits(b[ends[last]:end])
	}
	for k := last; k >= 0; k-- {
		if k < last {
			digits += ends[k] - starts[k]
		}
		if digits > 19 {
			break
		}
		groups := last - k + 1 + tail
		// Two groups must make 15 digits at least (8+8, 6+13, 6+9): a
		// date and a sequence number ("20261122-000187") make 14. A group
		// touching a letter is part of a word (a UUID, a hex string).
		if groups >= 2 && (groups > 2 || digits >= 15) && digits >= 13 &&
			(starts[k] == 0 || !isLetter(b[starts[k]-1])) && (end == len(b) || !isLetter(b[end])) &&
			issuable(b[starts[k]], b[starts[k]+1], digits) && luhn(b[starts[k]:end]) {
			return true
		}
	}
	return false
}

func countDigits[T string | []byte](b T) int {
	n := 0
	for i := 0; i < len(b); i++ {
		if isDigit(b[i]) {
			n++
		}
	}
	return n
}

// cardRun applies rules 1 and 3 to d, a run of digits.
func cardRun[T string | []byte](d T) bool {
	n := len(d)
	if n < 13 || n > 26 {
		return false
	}
	if n <= 19 && pan(d) {
		return true
	}
	if n == 19 && d[0] == '1' {
		return false // a Unix time in nanoseconds ("17" is also an LLVAR length)
	}
	// A length or tag in front.
	for _, p := range [...]int{2, 3, 4} {
		m := n - p
		if m < 13 || m > 19 || !gluedPAN(d[p:]) {
			continue
		}
		switch p {
		case 2:
			if num(d[:2]) == m || (d[0] == '0' && num(d[1:2]) == (m+1)/2) {
				return true
			}
		case 3:
			if num(d[:3]) == m {
				return true
			}
		case 4:
			if d[0] == '5' && d[1] == '7' {
				return true
			}
		}
	}
	// An expiry behind.
	if m := n - 4; m >= 13 && m <= 19 && expiry(d[m:]) && gluedPAN(d[:m]) {
		return true
	}
	if m := n - 7; m >= 13 && m <= 19 && expiry(d[m:m+4]) && serviceCode(d[m+4]) && gluedPAN(d[:m]) {
		return true
	}
	return false
}

// pan reports whether d, 13–19 digits, can be a card number: it passes
// Luhn and its first digits are issued for its length (issuable).
func pan[T string | []byte](d T) bool {
	return issuable(d[0], d[1], len(d)) && luhn(d)
}

// gluedPAN is pan for a number with something run into it: only the major
// networks' first digits (2–6) count.
func gluedPAN[T string | []byte](d T) bool {
	return d[0] >= '2' && d[0] <= '6' && pan(d)
}

// inHexWord reports whether the digit run b[i:j] is part of a hex word of
// 32 characters or more with letters in it: a hash, a key, an EMV dump.
func inHexWord[T string | []byte](b T, i, j int) bool {
	hs, he := i, j
	for hs > 0 && i-hs < 32 && isHex(b[hs-1]) {
		hs--
	}
	for he < len(b) && he-j < 32 && isHex(b[he]) {
		he++
	}
	return he-hs >= 32 && (hs < i || he > j)
}

// afterEMVTag reports whether the digit run b[i:j] follows the tag and
// length of an EMV card number (5A) or track-2 equivalent (57), or starts
// with the track-2 tag itself.
func afterEMVTag[T string | []byte](b T, i, j int) bool {
	tag := func(k int) bool {
		return k >= 0 && b[k] == '5' && (b[k+1]|0x20 == 'a' || b[k+1] == '7')
	}
	return tag(i-2) || tag(i-4) || (j-i > 2 && b[i] == '5' && b[i+1] == '7')
}

// issuable reports whether a card number of n digits (13–19) can start
// with the digits d0 d1 (ISO/IEC 7812 major industry identifiers as the
// card networks use them). It lets through what is plainly something else:
//
//   - 0 is no network's first digit: serials and zero-padded numbers;
//   - 1 is UATP's, whose numbers have 15 digits: Unix times in milliseconds
//     (13 digits) and nanoseconds (19) start with 1 until 2033;
//   - 13 digits are Visa (4) or Maestro (5, 6): a Chinese mobile number
//     with its country code (86 1xx xxxx xxxx) is 13 digits starting 8;
//   - 15 digits starting 35, 86 or 99 are IMEIs (GSMA reporting bodies; a
//     15-digit card is Amex 34/37, UATP 1 or enRoute 2014/2149).
func issuable(d0, d1 byte, n int) bool {
	switch {
	case d0 == '0':
		return false
	case d0 == '1':
		return n == 15
	case n == 13:
		return d0 >= '4' && d0 <= '6'
	case n == 15:
		p := (d0-'0')*10 + d1 - '0'
		return p != 35 && p != 86 && p != 99
	}
	return true
}

// expiry reports whether the 4 digits of d hold a month: MMYY or YYMM.
func expiry[T string | []byte](d T) bool {
	month := func(v int) bool { return v >= 1 && v <= 12 }
	return month(num(d[:2])) || month(num(d[2:4]))
}

// serviceCode reports whether c can start a card's service code.
func serviceCode(c byte) bool { return c == '1' || c == '2' || c == '5' || c == '6' }

// num returns the value of d, a few digits.
func num[T string | []byte](d T) int {
	v := 0
	for i := 0; i < len(d); i++ {
		v = v*10 + int(d[i]-'0')
	}
	return v
}

// hexEnd returns the end of the run of hex digits starting at b[i].
func hexEnd[T string | []byte](b T, i int) int {
	for i < len(b) && isHex(b[i]) {
		i++
	}
	return i
}

// hexText applies rule 5 to h, a run of hex digits: decoded at both
// alignments, every stretch of 13 or more printable ASCII bytes is text
// for rules 1–4.
func hexText[T string | []byte](h T) bool {
	var buf [128]byte
	for align := 0; align < 2; align++ {
		n := 0
		for k := align; k+1 < len(h); k += 2 {
			c := hexVal(h[k])<<4 | hexVal(h[k+1])
			if c < ' ' || c > '~' {
				if n >= 13 && cardText(buf[:n], false) {
					return true
				}
				n = 0
				continue
			}
			if n == len(buf) {
				// Keep the last 32 bytes: a number across the cut is
				// still seen whole.
				if cardText(buf[:n], false) {
					return true
				}
				n = copy(buf[:], buf[n-32:n])
			}
			buf[n] = c
			n++
		}
		if n >= 13 && cardText(buf[:n], false) {
			return true
		}
	}
	return false
}

func hexVal(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// jsonCardData reports whether the JSON text b holds card data: every
// string, key or value, with its escapes decoded, passes ContainsCardData;
// of a number only the integer part counts (rules 1 and 3): the fraction
// and exponent of a measurement (36.599999999999994, an unrounded float)
// are not an identifier, while a card number sent as a number
// (4111111111111111 or 4111111111111111.0) is still caught. On invalid JSON
// it still scans every byte, as a string or as a number. It allocates only
// for a string with escapes or non-ASCII text.
func jsonCardData(b []byte) bool {
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			j, esc := i+1, false
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					esc = true
					j++
				}
				j++
			}
			j = min(j, len(b))
			s := b[i+1 : j]
			if esc {
				s = unescape(s)
			}
			if containsCardDataBytes(s) {
				return true
			}
			i = j + 1
		case isDigit(c):
			j := i
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			if cardRun(b[i:j]) {
				return true
			}
			// The fraction and exponent belong to the same number.
			for j < len(b) && (isDigit(b[j]) || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
				j++
			}
			i = j
		default:
			i++
		}
	}
	return false
}

// unescape decodes the escapes of s, the inside of a JSON string; an
// invalid escape is kept as it is, a lone surrogate becomes U+FFFD.
func unescape(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			out = append(out, c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok {
				out = append(out, '\\', e)
				continue
			}
			i += 4
			if utf16.IsSurrogate(r) && i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				if r2, ok := hex4(s[i+3:]); ok {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					}
				}
			}
			out = utf8.AppendRune(out, r)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default: // \" \\ \/ stand for themselves; anything else is invalid, kept
			if e != '"' && e != '\\' && e != '/' {
				out = append(out, '\\')
			}
			out = append(out, e)
		}
	}
	return out
}
