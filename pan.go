package posfleet

// What counts as a PAN-like number (PROTOCOL.md §1 "Bad input": 13–19 digits
// passing the Luhn check). ContainsPAN finds two shapes:
//
//   - Plain: a run of 13 to 19 ASCII digits that is not part of a longer run
//     (no digit right before or after it) and passes Luhn. A 20-digit run is
//     not a PAN, and neither is any 16 digits inside it: card numbers are at
//     most 19 digits, and a longer run is some other identifier.
//   - Printed: digit groups joined by a single space or dash, laid out the
//     way cards print their numbers: 4-4-4-4 (16 digits), 4-4-4-4-n with n
//     1..3 (17–19 digits: long Visa, UnionPay, Maestro), 4-6-5 (American
//     Express, 15) and 4-6-4 (Diners Club, 14), whose digits together pass
//     Luhn. Each group is a whole digit run, but the layout may sit inside a
//     longer chain of groups: "4111 1111 1111 1111 1229" (a card number
//     followed by its expiry) is caught through its first four groups.
//     Space and dash may be mixed.
//
// Dates (2026-11-22 is 4-2-2), times, RFC 3339 timestamps, phone numbers,
// versions and IP addresses never fit a printed layout, and their digit runs
// are short, so they pass. Only ASCII digits count: terminals and payment
// hosts write card numbers in ASCII.
//
// The rule errs on the side of refusing: a harmless message refused costs a
// counter, a stored card number costs a breach. In a JSON payload (Decode)
// every string, key or value, is scanned whole; of a JSON number only the
// integer part counts: the fraction and exponent of a measurement
// (36.599999999999994, an unrounded float) are not an identifier, while a
// card number sent as a number (4111111111111111 or 4111111111111111.0)
// is still caught.

// ContainsPAN reports whether b holds a PAN-like number: a run of 13–19
// digits passing the Luhn check, or a card-style number printed in groups
// separated by spaces or dashes (see the rules at the top of pan.go). It
// scans raw bytes and does not decode JSON escapes; Decode does that. It
// does not allocate.
func ContainsPAN(b []byte) bool {
	for i := 0; i < len(b); {
		if !isDigit(b[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		switch n := j - i; {
		case n >= 13 && n <= 19:
			if luhn(b[i:j]) {
				return true
			}
		case n == 4: // every printed layout starts with a group of four
			if printedPAN(b, i) {
				return true
			}
		}
		i = j
	}
	return false
}

// printedPAN reports whether a printed card layout starting with the
// four-digit group at b[start:] passes Luhn.
func printedPAN(b []byte, start int) bool {
	// The longest layout has five groups; collect up to five, stopping at
	// the first that is longer than any layout's group (6 digits).
	var lens, ends [5]int
	k := 0
	for i := start; k < len(lens); {
		j := i
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		lens[k], ends[k] = j-i, j
		k++
		if j-i > 6 || j+1 >= len(b) || (b[j] != ' ' && b[j] != '-') || !isDigit(b[j+1]) {
			break
		}
		i = j + 1
	}
	if k >= 4 && lens[1] == 4 && lens[2] == 4 && lens[3] == 4 {
		if luhn(b[start:ends[3]]) {
			return true
		}
		if k == 5 && lens[4] <= 3 && luhn(b[start:ends[4]]) {
			return true
		}
	}
	return k >= 3 && lens[1] == 6 && (lens[2] == 5 || lens[2] == 4) && luhn(b[start:ends[2]])
}

// luhn reports whether the digits of b pass the Luhn (mod 10) check; other
// bytes (the separators of a printed number) are skipped.
func luhn[T string | []byte](b T) bool {
	sum, double := 0, false
	for i := len(b) - 1; i >= 0; i-- {
		c := b[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
