package posfleet_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/posfleet/posfleet"
)

// Card numbers are built here, never pasted: luhnComplete adds the check
// digit. Prefixes are those of public test numbers (4111..., 3782 8224 6310
// 005, 3056 9309 0259 04) or plainly artificial.
var (
	pan13 = luhnComplete("422222222222")
	pan14 = luhnComplete("3056930902590")
	pan15 = luhnComplete("37828224631000")
	pan16 = luhnComplete("411111111111111")
	pan17 = luhnComplete("6200000000000000")
	pan18 = luhnComplete("62000000000000000")
	pan19 = luhnComplete("620000000000000000")
)

// luhnComplete returns prefix followed by the digit that makes it pass Luhn.
func luhnComplete(prefix string) string {
	for d := '0'; d <= '9'; d++ {
		if s := prefix + string(d); luhnRef(s) {
			return s
		}
	}
	panic("unreachable")
}

// notLuhn returns pan with its last digit changed, so that it fails Luhn.
func notLuhn(pan string) string {
	last := pan[len(pan)-1]
	return pan[:len(pan)-1] + string('0'+(last-'0'+1)%10)
}

// grouped lays digits out in groups of the given sizes joined by sep.
func grouped(digits, sep string, sizes ...int) string {
	var parts []string
	for _, n := range sizes {
		parts = append(parts, digits[:n])
		digits = digits[n:]
	}
	if digits != "" {
		panic("sizes do not add up")
	}
	return strings.Join(parts, sep)
}

// escapedDigits writes every digit of s as a JSON \u00XX escape.
func escapedDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// luhnRef is the Luhn check as usually stated: from the right, double every
// second digit, add the digits of the products, and the sum must end in 0.
func luhnRef(digits string) bool {
	sum := 0
	for i := 0; i < len(digits); i++ {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			d = d/10 + d%10
		}
		sum += d
	}
	return sum%10 == 0
}

var (
	digitRun = regexp.MustCompile(`[0-9]+`)
	layouts  = [][]int{{4, 4, 4, 4}, {4, 4, 4, 4, 1}, {4, 4, 4, 4, 2}, {4, 4, 4, 4, 3}, {4, 6, 5}, {4, 6, 4}}
)

// containsPANRef is a plain reading of the rule documented in pan.go, for
// FuzzContainsPAN to compare ContainsPAN with: every maximal digit run of
// 13–19 digits, and every printed layout starting at a maximal digit run,
// each group a whole run, groups joined by one space or dash.
func containsPANRef(s string) bool {
	for _, loc := range digitRun.FindAllStringIndex(s, -1) {
		run := s[loc[0]:loc[1]]
		if len(run) >= 13 && len(run) <= 19 && luhnRef(run) {
			return true
		}
		for _, layout := range layouts {
			if digits, ok := layoutAt(s, loc[0], layout); ok && luhnRef(digits) {
				return true
			}
		}
	}
	return false
}

// layoutAt returns the digits of the groups of layout found at s[i:].
func layoutAt(s string, i int, layout []int) (string, bool) {
	var digits string
	for g, n := range layout {
		if g > 0 {
			if i >= len(s) || (s[i] != ' ' && s[i] != '-') {
				return "", false
			}
			i++
		}
		group := digitRun.FindStringIndex(s[i:])
		if group == nil || group[0] != 0 || group[1] != n {
			return "", false
		}
		digits += s[i : i+n]
		i += n
	}
	return digits, true
}

func TestContainsPAN(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want bool
	}{
		{"13 digits", pan13, true},
		{"14 digits", pan14, true},
		{"15 digits", pan15, true},
		{"16 digits", pan16, true},
		{"17 digits", pan17, true},
		{"18 digits", pan18, true},
		{"19 digits", pan19, true},
		{"in text", "card=" + pan16 + ";exp=12/29", true},
		{"between letters", "x" + pan16 + "y", true},
		{"negative number", "-" + pan16, true},
		{"fraction of a number", "0." + pan16, true},
		{"last of several numbers", "1 22 333 " + pan15, true},
		{"4-4-4-4 spaces", grouped(pan16, " ", 4, 4, 4, 4), true},
		{"4-4-4-4 dashes", grouped(pan16, "-", 4, 4, 4, 4), true},
		{"4-4-4-4 mixed separators", grouped(pan16[:8], " ", 4, 4) + "-" + grouped(pan16[8:], " ", 4, 4), true},
		{"4-4-4-4-1", grouped(pan17, " ", 4, 4, 4, 4, 1), true},
		{"4-4-4-4-2", grouped(pan18, "-", 4, 4, 4, 4, 2), true},
		{"4-4-4-4-3", grouped(pan19, " ", 4, 4, 4, 4, 3), true},
		{"4-6-5 Amex", grouped(pan15, " ", 4, 6, 5), true},
		{"4-6-4 Diners", grouped(pan14, "-", 4, 6, 4), true},
		{"printed, followed by expiry", grouped(pan16, " ", 4, 4, 4, 4) + " 1229", true},
		{"printed, preceded by a number", "12 " + grouped(pan16, " ", 4, 4, 4, 4), true},
		{"printed, in text", "PAN:" + grouped(pan16, "-", 4, 4, 4, 4) + ".", true},

		{"empty", "", false},
		{"non-Luhn 13", notLuhn(pan13), false},
		{"non-Luhn 16", notLuhn(pan16), false},
		{"non-Luhn 19", notLuhn(pan19), false},
		{"non-Luhn 4-4-4-4", grouped(notLuhn(pan16), " ", 4, 4, 4, 4), false},
		{"12 digits passing Luhn", luhnComplete("42222222222"), false},
		{"20 digits passing Luhn", luhnComplete("4111111111111111111"), false},
		{"20 digits holding a PAN", pan16 + "1234", false},
		{"20 digits holding a PAN at the end", "9876" + pan16, false},
		{"printed 4-4-4 passing Luhn", grouped(luhnComplete("42222222222"), " ", 4, 4, 4), false},
		{"double spaces", grouped(pan16, "  ", 4, 4, 4, 4), false},
		{"dots", grouped(pan16, ".", 4, 4, 4, 4), false},
		{"slashes", grouped(pan16, "/", 4, 4, 4, 4), false},
		{"tabs", grouped(pan16, "\t", 4, 4, 4, 4), false},
		{"groups of 8", grouped(pan16, " ", 8, 8), false},
		{"3-4-4-4-1 layout", grouped(pan16, " ", 3, 4, 4, 4, 1), false},
		{"date", "2026-11-22", false},
		{"dates", "2026-11-22 2026-11-23 2026-11-24", false},
		{"RFC 3339", "2026-11-22T10:15:30.123456789+08:00", false},
		{"date and time", "2026-11-22 10:15:30", false},
		{"time", "10:15:30", false},
		{"phone", "+86 138 0013 8000", false},
		{"IPv4", "192.168.100.200", false},
		{"version", "2.4.1-rc.1+build.20261122", false},
		{"unix seconds", "1763806530", false},
		{"fullwidth digits", "４１１１１１１１１１１１１１１１", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := posfleet.ContainsPAN([]byte(tc.text)); got != tc.want {
				t.Errorf("ContainsPAN(%q) = %v, want %v", tc.text, got, tc.want)
			}
			if got := containsPANRef(tc.text); got != tc.want {
				t.Errorf("reference(%q) = %v, want %v", tc.text, got, tc.want)
			}
		})
	}
}

func TestContainsPANAllocs(t *testing.T) {
	p := []byte(basePayloads[posfleet.ChannelTxn])
	if n := testing.AllocsPerRun(100, func() { posfleet.ContainsPAN(p) }); n != 0 {
		t.Errorf("ContainsPAN allocates %v times", n)
	}
}

func FuzzContainsPAN(f *testing.F) {
	for _, s := range []string{
		"", pan13, pan16, pan19, notLuhn(pan16), grouped(pan16, " ", 4, 4, 4, 4), grouped(pan15, "-", 4, 6, 5),
		grouped(pan14, " ", 4, 6, 4), grouped(pan19, " ", 4, 4, 4, 4, 3), "12 " + grouped(pan16, " ", 4, 4, 4, 4) + " 1229",
		"2026-11-22T10:15:30Z", pan16 + "1234", basePayloads[posfleet.ChannelTxn],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := containsPANRef(s)
		if got := posfleet.ContainsPAN([]byte(s)); got != want {
			t.Fatalf("ContainsPAN(%q) = %v, reference says %v", s, got, want)
		}
		// Decode must see the same number through JSON escapes: s with
		// every character escaped, in a field nobody checks.
		var esc strings.Builder
		for _, r := range strings.ToValidUTF8(s, "\ufffd") {
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				fmt.Fprintf(&esc, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(&esc, `\u%04x`, r)
			}
		}
		p := `{"online":true,"note":"` + esc.String() + `"}`
		if len(p) > posfleet.MaxPayloadBytes {
			return
		}
		want = posfleet.ContainsCardData(strings.ToValidUTF8(s, "\ufffd"))
		_, err := posfleet.Decode(testRef, posfleet.ChannelStatus, []byte(p), testReceived)
		if got := isReason(err, posfleet.ReasonCardData); got != want {
			t.Fatalf("Decode of %q escaped: %v, want card data %v", s, err, want)
		}
	})
}

func BenchmarkContainsPAN(b *testing.B) {
	for _, bc := range []struct {
		name string
		text []byte
	}{
		{"txn", []byte(basePayloads[posfleet.ChannelTxn])},
		{"hb", []byte(basePayloads[posfleet.ChannelHeartbeat])},
		{"16KiB text", []byte(strings.Repeat("terminal 2026-11-22 10:15 ok; ", posfleet.MaxPayloadBytes/30))},
		{"16KiB card-like groups", []byte(strings.Repeat("1111 ", posfleet.MaxPayloadBytes/5))}, // every 4-4-4-4 window, none passing Luhn
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.text)))
			for b.Loop() {
				if posfleet.ContainsPAN(bc.text) {
					b.Fatal("found a PAN")
				}
			}
		})
	}
}
