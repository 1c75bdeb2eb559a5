package posfleet_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/posfleet/posfleet"
)

func FuzzDecodeHeartbeat(f *testing.F) { fuzzDecode(f, posfleet.ChannelHeartbeat) }
func FuzzDecodeFault(f *testing.F)     { fuzzDecode(f, posfleet.ChannelFault) }
func FuzzDecodeFirmware(f *testing.F)  { fuzzDecode(f, posfleet.ChannelFirmware) }
func FuzzDecodeTxn(f *testing.F)       { fuzzDecode(f, posfleet.ChannelTxn) }
func FuzzDecodeStatus(f *testing.F)    { fuzzDecode(f, posfleet.ChannelStatus) }
func FuzzDecodeAck(f *testing.F)       { fuzzDecode(f, posfleet.ChannelAck) }

// fuzzDecode checks, for any payload on channel ch: Decode never panics;
// it refuses with a *Rejection naming a known reason and one of the
// channel's fields; it calls a payload not_json exactly when encoding/json
// does not see a UTF-8 JSON object; and what it accepts, marshalled again as
// the terminal library would, decodes to the same values.
func fuzzDecode(f *testing.F, ch posfleet.Channel) {
	f.Add([]byte(basePayloads[ch]))
	for name, v := range roundTrips() {
		if strings.HasPrefix(name, string(ch)+"/") {
			f.Add(marshal(f, v))
		}
	}
	for _, r := range ruleTable() {
		if r.ch == ch {
			f.Add(payload(f, ch, r.edits...))
		}
	}
	for _, fx := range fixtures(f) {
		if fx.ch == ch && len(fx.payload) <= posfleet.MaxPayloadBytes {
			f.Add(fx.payload)
		}
	}

	fields := fieldNames(ch)
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := posfleet.Decode(testRef, ch, p, testReceived)
		if err != nil {
			var rej *posfleet.Rejection
			if !errors.As(err, &rej) {
				t.Fatalf("error %v (%T) is no *Rejection", err, err)
			}
			if !slices.Contains(posfleet.Reasons, rej.Reason) {
				t.Fatalf("unknown reason %q", rej.Reason)
			}
			if rej.Field != "" && !slices.Contains(fields, rej.Field) {
				t.Fatalf("field %q is none of %s's", rej.Field, ch)
			}
			if rej.Reason == posfleet.ReasonTooLarge || rej.Reason == posfleet.ReasonCardData {
				return // checked before the syntax
			}
			if wellFormed(p) == (rej.Reason == posfleet.ReasonNotJSON) {
				t.Fatalf("rejected %s, encoding/json says well-formed = %v", rej, wellFormed(p))
			}
			return
		}
		if !wellFormed(p) {
			t.Fatalf("accepted what encoding/json refuses")
		}
		assertMessage(t, m, ch)
		assertRoundTrip(t, m)
	})
}

// wellFormed reports whether p is a UTF-8 JSON object by encoding/json's
// reading.
func wellFormed(p []byte) bool {
	t := bytes.TrimLeft(p, " \t\r\n")
	return utf8.Valid(p) && json.Valid(p) && len(t) > 0 && t[0] == '{'
}

// fieldNames lists the names a rejection on ch may give as its field.
func fieldNames(ch posfleet.Channel) []string {
	var names []string
	if ch != posfleet.ChannelStatus {
		names = append(names, "seq", "ts")
	}
	switch ch {
	case posfleet.ChannelHeartbeat:
		return append(names, "uptime_s", "battery_pct", "charging", "temp_c", "signal_dbm", "net", "host_rtt_ms", "paper", "pending_txns")
	case posfleet.ChannelFault:
		return append(names, "component", "code", "severity", "state", "detail")
	case posfleet.ChannelFirmware:
		return append(names, "model", "serial", "firmware", "app", "boot_reason", "update", "update.target", "update.status", "update.error")
	case posfleet.ChannelTxn:
		return append(names, "id", "type", "entry", "currency", "amount_entered", "amount_charged", "original_id",
			"original_amount", "result", "rc", "host_ms", "receipt", "offline")
	case posfleet.ChannelAck:
		return append(names, "cmd_id", "status", "detail")
	}
	return append(names, "online")
}
