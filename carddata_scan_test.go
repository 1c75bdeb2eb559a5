package posfleet

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2026, 11, 22, 10, 15, 31, 0, time.UTC)

// testPAN returns prefix completed with the digit that makes it pass Luhn:
// a test number (the networks' published test ranges), never a card.
func testPAN(prefix string) string {
	for d := byte('0'); d <= '9'; d++ {
		if s := prefix + string(d); luhn(s) {
			return s
		}
	}
	panic("unreachable")
}

// scanSeeds are payloads with card-like numbers in every place the parser
// meets them: keys, values, numbers, escapes, nested values, broken JSON.
func scanSeeds() []string {
	p16, p15 := testPAN("411111111111111"), testPAN("37828224631000")
	spaced := p16[:4] + " " + p16[4:8] + " " + p16[8:12] + " " + p16[12:]
	var esc, wide strings.Builder
	for _, c := range p16 {
		esc.WriteString(`\u003` + string(c))
		wide.WriteRune('０' + c - '0')
	}
	return []string{
		`{"seq":1042,"ts":"2026-11-22T10:15:30.123Z","uptime_s":86400,"battery_pct":76,"net":"4g","paper":"ok"}`,
		`{"seq":1044,"ts":"2026-11-22T10:17:45.5Z","id":"T20261122-000187","type":"sale","result":"approved"}`,
		`{"seq":1,"ts":"2026-11-22T10:17:45Z","id":"` + spaced + `","type":"sale","result":"approved"}`,
		`{"seq":1,"ts":"2026-11-22T10:17:45Z","note":{"x":["` + p15 + `"]},"online":true}`,
		`{"seq":` + p16 + `,"ts":"2026-11-22T10:17:45Z"}`,
		`{"seq":1,"ts":"2026-11-22T10:17:45Z","amount":-` + p16 + `.5e3}`,
		`{"seq":1,"ts":"2026-11-22T10:17:45Z","temp_c":36.` + p16 + `}`,
		`{"` + p16 + `":1,"online":true}`,
		`{"online":true,"id":"` + esc.String() + `"}`,
		`{"online":true,"id":"` + wide.String() + `" }`,
		`{"online":true,"id":"` + p16 + `"`,
		`["` + p16 + `"]`,
		`{"online":true,"x":"5A08` + p16 + `"}`,
		`{"online":true,"x":"` + p16 + `=2512101"}`,
	}
}

// FuzzDecodeCardScan: Decode, which looks for card data while it parses,
// refuses exactly the payloads the separate scan (jsonCardData) finds card
// data in, on every channel, whether the payload parses or not.
func FuzzDecodeCardScan(f *testing.F) {
	for _, s := range scanSeeds() {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, p []byte, n uint8) {
		if len(p) > MaxPayloadBytes {
			return
		}
		ch := UplinkChannels[int(n)%len(UplinkChannels)]
		_, err := Decode(TerminalRef{Tenant: "acme", Terminal: "T1"}, ch, p, testTime)
		var rej *Rejection
		refused := errors.As(err, &rej) && rej.Reason == ReasonCardData
		if want := jsonCardData(p); refused != want {
			t.Fatalf("Decode refuses for card data: %v, jsonCardData: %v", refused, want)
		}
	})
}

// TestDecodeCardScanSeeds runs the seeds on every channel, and checks that
// the ones built with a number do hold card data.
func TestDecodeCardScanSeeds(t *testing.T) {
	for k, s := range scanSeeds() {
		for _, ch := range UplinkChannels {
			_, err := Decode(TerminalRef{Tenant: "acme", Terminal: "T1"}, ch, []byte(s), testTime)
			var rej *Rejection
			refused := errors.As(err, &rej) && rej.Reason == ReasonCardData
			if want := jsonCardData([]byte(s)); refused != want {
				t.Errorf("seed %d on %s: Decode refuses %v, jsonCardData %v", k, ch, refused, want)
			}
			if k >= 2 && k != 6 && !refused { // the others hold a number, 6 in a fraction
				t.Errorf("seed %d on %s: accepted (%v)", k, ch, err)
			}
		}
	}
}
