package posfleet_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
)

// fullwidth writes the digits of s as fullwidth digits (U+FF10…).
func fullwidth(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r - '0' + '０'
		}
		return r
	}, s)
}

// fullwidthEscaped writes the digits of s as JSON escapes of fullwidth digits.
func fullwidthEscaped(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			fmt.Fprintf(&b, `\u%04x`, r-'0'+'０')
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cardForm is one layout of a card number.
type cardForm struct {
	name string
	make func(pan string) string
}

// bcd returns the digits of pan as the hex of BCD bytes, padded with F to
// whole bytes, as EMV writes tag 5A.
func bcd(pan string) string {
	if len(pan)%2 == 1 {
		return pan + "F"
	}
	return pan
}

// cardForms are the layouts of issue items 4–8: every one must be refused.
var cardForms = []cardForm{
	{"plain", func(p string) string { return p }},
	{"in text", func(p string) string { return "card " + p + " declined" }},
	{"4-4-4-4 spaces", func(p string) string { return groups(p, " ", 4) }},
	{"dots", func(p string) string { return groups(p, ".", 4) }},
	{"slashes", func(p string) string { return groups(p, "/", 4) }},
	{"commas", func(p string) string { return groups(p, ",", 4) }},
	{"underscores", func(p string) string { return groups(p, "_", 4) }},
	{"double spaces", func(p string) string { return groups(p, "  ", 4) }},
	{"no-break spaces", func(p string) string { return groups(p, "\u00a0", 4) }},
	{"tabs", func(p string) string { return groups(p, "\t", 4) }},
	{"comma and space", func(p string) string { return groups(p, ", ", 4) }},
	{"fullwidth digits", func(p string) string { return fullwidth(p) }},
	{"fullwidth, ideographic spaces", func(p string) string { return fullwidth(groups(p, "\u3000", 4)) }},
	{"zero-width space inside", func(p string) string { return p[:6] + "\u200b" + p[6:] }},
	{"zero-width spaces everywhere", func(p string) string { return groups(p, "\u200b", 1) }},
	{"soft hyphens", func(p string) string { return groups(p, "\u00ad", 3) }},
	{"8+8", func(p string) string { return p[:8] + " " + p[8:] }},
	{"6+rest", func(p string) string { return p[:6] + " " + p[6:] }},
	{"4-6-rest dots", func(p string) string { return p[:4] + "." + p[4:10] + "." + p[10:] }},
	{"EMV tag 5A", func(p string) string { return fmt.Sprintf("5A%02X%s", (len(p)+1)/2, bcd(p)) }},
	{"EMV tag 5A, spaced bytes", func(p string) string {
		return groups(fmt.Sprintf("5A%02X%s", (len(p)+1)/2, bcd(p)), " ", 2)
	}},
	{"EMV tag 57 track 2", func(p string) string {
		t2 := bcd(p + "D" + "2912" + "201" + "0000012345")
		return fmt.Sprintf("57%02X%s", len(t2)/2, t2)
	}},
	{"track 2 with =", func(p string) string { return ";" + p + "=29122010000012345?" }},
	{"ISO 8583 field 2", func(p string) string { return fmt.Sprintf("F2=%02d%s", len(p), p) }},
	{"ISO 8583 field 2 in a dump", func(p string) string { return fmt.Sprintf("MTI=0200 F2=%02d%s F3=000000", len(p), p) }},
	{"with expiry MMYY", func(p string) string { return p + "1229" }},
	{"with expiry YYMM", func(p string) string { return p + "2912" }},
	{"with expiry and service code", func(p string) string { return p + "2912201" }},
	{"hex-encoded ASCII", func(p string) string { return hex.EncodeToString([]byte(p)) }},
	{"hex-encoded ASCII, upper case, in text", func(p string) string {
		return "raw=" + strings.ToUpper(hex.EncodeToString([]byte(groups(p, " ", 4)))) + ";"
	}},
	{"Arabic-Indic digits", func(p string) string {
		return strings.Map(func(r rune) rune { return r - '0' + '\u0660' }, p)
	}},
}

// groups joins the digits of p in groups of n with sep.
func groups(p, sep string, n int) string {
	var parts []string
	for len(p) > n {
		parts = append(parts, p[:n])
		p = p[n:]
	}
	return strings.Join(append(parts, p), sep)
}

// cardNumbers are test card numbers of every length and of the networks
// with unusual layouts, built at runtime.
func cardNumbers() map[string]string {
	return map[string]string{
		"Visa 16":     pan16,
		"Visa 13":     pan13,
		"Diners 14":   pan14,
		"Amex 15":     pan15,
		"17 digits":   pan17,
		"18 digits":   pan18,
		"UnionPay 19": luhnComplete("622126" + "000000000010"[:12]),
		"Maestro 19":  pan19,
	}
}

func TestContainsCardDataCorpus(t *testing.T) {
	for pname, p := range cardNumbers() {
		for _, f := range cardForms {
			t.Run(pname+"/"+f.name, func(t *testing.T) {
				if skip := notCaught(f.name, len(p)); skip != "" {
					t.Skip(skip)
				}
				s := f.make(p)
				if !posfleet.ContainsCardData(s) {
					t.Errorf("%s of a %s card not refused", f.name, pname)
				}
				if posfleet.Redact(s) != posfleet.RedactedMarker {
					t.Errorf("Redact kept a %s", f.name)
				}
				// Decode refuses it in any JSON string, key or value.
				for _, pl := range []string{
					`{"online":true,"note":` + jsonString(s) + `}`,
					`{"online":true,` + jsonString(s) + `:1}`,
				} {
					if _, err := posfleet.Decode(testRef, posfleet.ChannelStatus, []byte(pl), testReceived); !isReason(err, posfleet.ReasonCardData) {
						t.Errorf("Decode of a payload with a %s: %v, want card_data", f.name, err)
					}
				}
			})
		}
	}
	// Amex printed 4-6-5 with dots, and Diners 4-6-4.
	for name, s := range map[string]string{
		"Amex 4.6.5":   grouped(pan15, ".", 4, 6, 5),
		"Diners 4/6/4": grouped(pan14, "/", 4, 6, 4),
		"19 4-4-4-4-3": grouped(pan19, "_", 4, 4, 4, 4, 3),
	} {
		if !posfleet.ContainsCardData(s) {
			t.Errorf("%s not refused", name)
		}
	}
}

// notCaught says why the guard lets a form of a card number of n digits
// through, or "" when it must refuse it.
func notCaught(form string, n int) string {
	switch {
	case (form == "8+8" || form == "6+rest") && n < 15:
		return "two groups of 13-14 digits are a date and a sequence number as often (T20261122-000187)"
	case strings.HasPrefix(form, "ISO 8583") && n == 17:
		return `"17" and 17 digits make 19 digits starting with 1: a Unix time in nanoseconds`
	}
	return ""
}

// jsonString quotes s for JSON, escaping only what JSON requires.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// realistic are values terminals, operators and policies send that are not
// card data; none may be refused.
var realistic = []string{
	"2026-11-22T10:15:30.123456789+08:00", "2026-11-22 10:15:30", "2026/11/22 10:15", "22.11.2026 10:15:30",
	"1763806530", "1763806530123", "1763806530123456789", "T20261122-000187", "0820123456", "PAX-A920-0820123456",
	"2.4.1", "2.4.1-rc.1+build.20261122", "pay-5.2.0", "12800", "128.00", "CNY 12,800.00", "1,234,567.89",
	"+86 138 0013 8000", "+8613800138000", "13800138000", "008613800138000", "+1 (415) 555-0100",
	"192.168.100.200", "2001:db8::8a2e:370:7334", "00:1a:2b:3c:4d:5e", "00-11-22-33-44-55",
	"550e8400-e29b-41d4-a716-446655440000", "rebooted", "paper roll empty", "flash <write> error & retry",
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "aGVsbG8gd29ybGQgMTIzNDU2Nzg5MA==",
	luhnComplete("35209900176148"), luhnComplete("86012345678901"), luhnComplete("01234567890123"),
	"fleet/v1/acme/t2/hb", "acme:t-0001", "Shop 42, Main Street 1200", "visit 2026-11-22: replaced printer, 3 rolls",
}

func TestContainsCardDataRealistic(t *testing.T) {
	for _, s := range realistic {
		if posfleet.ContainsCardData(s) {
			t.Errorf("ContainsCardData(%q) = true, want false", s)
		}
	}
}

// TestContainsCardDataFalsePositives measures how often the guard refuses
// generated realistic values that are not card data, and random digit
// strings, and holds the rates under bounds. go test -v prints them.
func TestContainsCardDataFalsePositives(t *testing.T) {
	const n = 20000
	rng := rand.New(rand.NewPCG(1, 2))
	digits := func(k int) string {
		b := make([]byte, k)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return string(b)
	}
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	when := func() time.Time { return base.Add(time.Duration(rng.Int64N(int64(12 * 365 * 24 * time.Hour)))) }
	randBytes := func(k int) []byte {
		b := make([]byte, k)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	categories := []struct {
		name string
		gen  func() string
		max  float64 // the highest refusal rate accepted
	}{
		{"RFC 3339 timestamp (ns)", func() string {
			return when().In(time.FixedZone("", 8*3600)).Format(time.RFC3339Nano)
		}, 0},
		{"date and time", func() string { return when().Format("2006-01-02 15:04:05.000") }, 0},
		{"Unix seconds", func() string { return fmt.Sprint(when().Unix()) }, 0},
		{"Unix milliseconds", func() string { return fmt.Sprint(when().UnixMilli()) }, 0},
		{"Unix nanoseconds", func() string { return fmt.Sprint(when().UnixNano()) }, 0},
		{"serial", func() string { return "08" + digits(8) }, 0},
		{"transaction ID", func() string { return "T" + when().Format("20060102") + "-" + digits(6) }, 0},
		{"amount in minor units", func() string { return fmt.Sprint(rng.Int64N(1e9)) }, 0},
		{"amount with thousands", func() string {
			v := rng.Int64N(1e9)
			return fmt.Sprintf("%d,%03d,%03d.%02d", v/1e6, v/1e3%1e3, v%1e3, rng.IntN(100))
		}, 0},
		{"semver", func() string { return fmt.Sprintf("%d.%d.%d", rng.IntN(20), rng.IntN(50), rng.IntN(200)) }, 0},
		{"UUID", func() string {
			b := randBytes(16)
			return fmt.Sprintf("%x-%x-%x-%x-%x", b[:4], b[4:6], b[6:8], b[8:10], b[10:])
		}, 0.001},
		{"IMEI (TAC 35/86/01)", func() string {
			tac := []string{"35", "86", "01"}[rng.IntN(3)]
			return luhnComplete(tac + digits(12))
		}, 0},
		{"IMEI printed AA-BBBBBB-CCCCCC-D", func() string {
			s := luhnComplete([]string{"35", "86", "01"}[rng.IntN(3)] + digits(12))
			return s[:2] + "-" + s[2:8] + "-" + s[8:14] + "-" + s[14:]
		}, 0},
		{"Chinese mobile +86 1xx xxxx xxxx", func() string { return "+86 1" + digits(2) + " " + digits(4) + " " + digits(4) }, 0},
		{"Chinese mobile +861xxxxxxxxxx", func() string { return "+861" + digits(10) }, 0},
		{"Chinese mobile 1xxxxxxxxxx", func() string { return "1" + digits(10) }, 0},
		{"Chinese mobile 00861xxxxxxxxxx", func() string { return "00861" + digits(10) }, 0},
		{"MAC address", func() string {
			b := randBytes(6)
			return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
		}, 0},
		{"IPv4", func() string {
			return fmt.Sprintf("%d.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256))
		}, 0},
		{"SHA-256 hex", func() string { h := sha256.Sum256(randBytes(8)); return hex.EncodeToString(h[:]) }, 0.001},
		{"base64 of 32 bytes", func() string { return base64.StdEncoding.EncodeToString(randBytes(32)) }, 0.001},
		{"four-digit numbers in a list", func() string {
			return fmt.Sprintf("%d, %d, %d, %d", 1000+rng.IntN(9000), 1000+rng.IntN(9000), 1000+rng.IntN(9000), 1000+rng.IntN(9000))
		}, 0.1},
	}
	for _, c := range categories {
		refused := 0
		for range n {
			if posfleet.ContainsCardData(c.gen()) {
				refused++
			}
		}
		rate := float64(refused) / n
		t.Logf("%-36s refused %5d of %d (%.3f%%)", c.name, refused, n, 100*rate)
		if rate > c.max {
			t.Errorf("%s: refused %.3f%%, want at most %.3f%%", c.name, 100*rate, 100*c.max)
		}
	}
	// Random digit strings: the price of the rule. A run of 14–19 random
	// digits passes Luhn one time in ten and is refused.
	for _, k := range []int{8, 12, 13, 16, 19, 20, 24, 32} {
		refused := 0
		for range n {
			if posfleet.ContainsCardData(digits(k)) {
				refused++
			}
		}
		t.Logf("random %2d digits                     refused %5d of %d (%.3f%%)", k, refused, n, 100*float64(refused)/n)
	}
}

func TestContainsCardDataAllocs(t *testing.T) {
	for _, s := range append(realistic[:20], basePayloads[posfleet.ChannelTxn], notLuhn(pan16)) {
		if n := testing.AllocsPerRun(50, func() { posfleet.ContainsCardData(s) }); n != 0 {
			t.Errorf("ContainsCardData(%q) allocates %v times", s, n)
		}
	}
}

func FuzzContainsCardData(f *testing.F) {
	for _, p := range cardNumbers() {
		for _, cf := range cardForms {
			f.Add(cf.make(p))
		}
	}
	for _, s := range realistic {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := posfleet.ContainsCardData(s)
		// The guard reads the same text the same way in a JSON payload.
		p := `{"online":true,"note":` + jsonString(strings.ToValidUTF8(s, "\ufffd")) + `}`
		if len(p) <= posfleet.MaxPayloadBytes {
			_, err := posfleet.Decode(testRef, posfleet.ChannelStatus, []byte(p), testReceived)
			if isReason(err, posfleet.ReasonCardData) != posfleet.ContainsCardData(strings.ToValidUTF8(s, "\ufffd")) {
				t.Fatalf("Decode and ContainsCardData disagree: %v", err)
			}
		}
		if posfleet.Redact(s) != s && !got {
			t.Fatalf("Redact changed a value without card data")
		}
	})
}

func BenchmarkContainsCardData(b *testing.B) {
	for _, bc := range []struct {
		name string
		text string
	}{
		{"timestamp", "2026-11-22T10:15:30.123456789+08:00"},
		{"topic", "fleet/v1/acme/t-0001/hb"},
		{"note", "visit 2026-11-22: replaced printer, 3 rolls"},
		{"non-ASCII note", "换了打印机 2026-11-22"},
		{"16KiB text", strings.Repeat("terminal 2026-11-22 10:15 ok; ", posfleet.MaxPayloadBytes/30)},
		{"16KiB card-like groups", strings.Repeat("1111 ", posfleet.MaxPayloadBytes/5)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.text)))
			for b.Loop() {
				if posfleet.ContainsCardData(bc.text) {
					b.Fatal("found card data")
				}
			}
		})
	}
}

// TestIdentifiersWithholdCardData: a card number as a terminal ID, a topic
// level, a username or a note never gets through as a value to store.
func TestIdentifiersWithholdCardData(t *testing.T) {
	dotted := groups(pan16, ".", 4)
	t.Run("ValidID", func(t *testing.T) {
		for _, id := range []string{pan16, dotted, "T-" + pan16, groups(pan16, "_", 4)} {
			if posfleet.ValidID(id) {
				t.Errorf("an ID holding a card number is valid")
			}
		}
		for _, id := range []string{"T-0001", "SN0820123456", "T20261122-000187"} {
			if !posfleet.ValidID(id) {
				t.Errorf("ValidID(%q) = false", id)
			}
		}
	})
	t.Run("ParseClientID", func(t *testing.T) {
		_, err := posfleet.ParseClientID("acme:" + pan16)
		if err == nil || strings.Contains(err.Error(), pan16) {
			t.Errorf("ParseClientID of a card number: %v (nil, or holding the digits)", err != nil)
		}
	})
	t.Run("ParseTopic terminal", func(t *testing.T) {
		if _, _, err := posfleet.ParseTopic("fleet/v1/acme/" + pan16 + "/hb"); err == nil {
			t.Error("a card number parsed as a terminal ID")
		}
	})
	t.Run("ParseTopic channel", func(t *testing.T) {
		for _, seg := range []string{pan16, dotted, fullwidth(pan16)} {
			_, ch, err := posfleet.ParseTopic("fleet/v1/acme/t2/" + seg)
			if err != nil {
				t.Fatal(err)
			}
			if string(ch) != posfleet.RedactedMarker {
				t.Errorf("a channel holding a card number came back as it was")
			}
		}
		if _, ch, _ := posfleet.ParseTopic("fleet/v1/acme/t2/gps"); ch != "gps" {
			t.Errorf("an unknown channel without card data came back as %q", ch)
		}
	})
	t.Run("SecurityEvent", func(t *testing.T) {
		ev := posfleet.SecurityEvent{
			Kind:     posfleet.SecurityAuthFailed,
			Terminal: posfleet.TerminalRef{Tenant: "acme", Terminal: pan16},
			Username: "acme:" + pan16,
			Topic:    "fleet/v1/acme/t2/" + dotted + "/#",
			Remote:   "127.0.0.1:4000",
		}.Redacted()
		if ev.Terminal != (posfleet.TerminalRef{}) || ev.Username != posfleet.RedactedMarker || ev.Topic != posfleet.RedactedMarker || ev.Remote != "127.0.0.1:4000" {
			t.Errorf("Redacted kept card data or lost the address: terminal zero %v, username %v, topic %v, remote %q",
				ev.Terminal == (posfleet.TerminalRef{}), ev.Username == posfleet.RedactedMarker, ev.Topic == posfleet.RedactedMarker, ev.Remote)
		}
	})
	t.Run("ValidateNote", func(t *testing.T) {
		for _, f := range cardForms {
			if err := posfleet.ValidateNote("visit: " + f.make(pan16)); !errors.Is(err, posfleet.ErrNoteCardData) {
				t.Errorf("a note with a %s: %v", f.name, err)
			}
		}
		if err := posfleet.ValidateNote(strings.Repeat("a", posfleet.MaxNoteLen+1)); !errors.Is(err, posfleet.ErrNoteTooLong) {
			t.Errorf("a long note: %v", err)
		}
		if err := posfleet.ValidateNote("replaced printer, 3 rolls, 2026-11-22 10:15"); err != nil {
			t.Errorf("a plain note: %v", err)
		}
	})
}
