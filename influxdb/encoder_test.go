package influxdb_test

import (
	"slices"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/influxdb"
)

// TestEncoderKeysValid checks what the encoder's lax mode no longer checks
// itself: every line, with every optional field present, has a valid
// measurement, tag keys in order and valid field keys, read back by the
// strict decoder; and values needing escapes still get them.
func TestEncoderKeysValid(t *testing.T) {
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0001"}
	payloads := []struct {
		ch      posfleet.Channel
		payload string
	}{
		{posfleet.ChannelHeartbeat, `{"seq":1,"ts":"2026-11-22T10:42:07Z","battery_pct":80,"signal_dbm":-71,"net":"4g","host_rtt_ms":420,"paper":"ok","uptime_s":3600,"charging":false,"temp_c":36.5,"pending_txns":2}`},
		{posfleet.ChannelFault, `{"seq":2,"ts":"2026-11-22T10:42:08Z","component":"printer","code":"PAPER_OUT","severity":"warning","state":"raised","detail":"roll \"empty\", see\\manual"}`},
		{posfleet.ChannelFirmware, `{"seq":3,"ts":"2026-11-22T10:42:09Z","model":"A920 Pro","serial":"SN=123","firmware":"2.4.1","app":"7.1","boot_reason":"update","update":{"target":"2.4.1","status":"failed","error":"checksum, retry"}}`},
		{posfleet.ChannelTxn, `{"seq":4,"ts":"2026-11-22T10:42:10Z","id":"tx-1","type":"refund","entry":"chip","currency":"CNY","amount_entered":1999,"amount_charged":2011,"result":"approved","rc":"00","host_ms":830,"receipt":"printed","offline":true,"original_id":"tx 0","original_amount":1999}`},
		{posfleet.ChannelAck, `{"seq":5,"ts":"2026-11-22T10:42:11Z","cmd_id":"c-1","status":"done","detail":"rebooted"}`},
		{posfleet.ChannelStatus, `{"online":true}`},
	}
	var enc influxdb.Encoder
	for _, p := range payloads {
		t.Run(string(p.ch), func(t *testing.T) {
			m, err := posfleet.Decode(ref, p.ch, []byte(p.payload), time.Date(2026, 11, 22, 10, 43, 0, 0, time.UTC))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			line, err := enc.AppendMessage(nil, m)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			dec := lineprotocol.NewDecoderWithBytes(line)
			if !dec.Next() {
				t.Fatalf("no line in %q", line)
			}
			if _, err := dec.Measurement(); err != nil {
				t.Fatalf("measurement of %q: %v", line, err)
			}
			var keys []string
			tags := map[string]string{}
			for {
				k, v, err := dec.NextTag()
				if err != nil {
					t.Fatalf("tag of %q: %v", line, err)
				}
				if k == nil {
					break
				}
				keys = append(keys, string(k))
				tags[string(k)] = string(v)
			}
			if !slices.IsSorted(keys) {
				t.Errorf("tag keys %v not in order in %q", keys, line)
			}
			if tags["tenant"] != "acme" || tags["terminal"] != "T-0001" {
				t.Errorf("tags %v of %q", tags, line)
			}
			fields := map[string]string{}
			for {
				k, v, err := dec.NextField()
				if err != nil {
					t.Fatalf("field of %q: %v", line, err)
				}
				if k == nil {
					break
				}
				if v.Kind() == lineprotocol.String {
					fields[string(k)] = v.StringV()
				} else {
					fields[string(k)] = v.String()
				}
			}
			if _, err := dec.Time(lineprotocol.Nanosecond, time.Time{}); err != nil {
				t.Fatalf("time of %q: %v", line, err)
			}
			if dec.Next() {
				t.Errorf("more than one line in %q", line)
			}
			if len(fields) == 0 {
				t.Errorf("no fields in %q", line)
			}
			switch p.ch {
			case posfleet.ChannelFault:
				if fields["detail"] != `roll "empty", see\manual` || fields["code"] != "PAPER_OUT" {
					t.Errorf("escaped fields read back as %q", fields)
				}
			case posfleet.ChannelFirmware:
				if tags["model"] != "A920 Pro" || fields["serial"] != "SN=123" {
					t.Errorf("escaped values read back as tags %q fields %q", tags, fields)
				}
			}
		})
	}
}

// benchPayloads are a terminal's messages as posbench and the simulator
// send them (a sale, a heartbeat), and the rarer channels.
var benchPayloads = []struct {
	ch      posfleet.Channel
	payload string
}{
	{posfleet.ChannelTxn, `{"seq":1044,"ts":"2026-11-22T10:17:45.500Z","id":"S-T-0001-000187","type":"sale","entry":"tap","currency":"CNY","amount_entered":12800,"amount_charged":12800,"result":"approved","rc":"00","host_ms":640,"receipt":"printed","offline":false}`},
	{posfleet.ChannelHeartbeat, `{"seq":1042,"ts":"2026-11-22T10:15:30.123Z","uptime_s":86400,"battery_pct":76,"charging":false,"temp_c":38.5,"signal_dbm":-87,"net":"4g","host_rtt_ms":420,"paper":"ok","pending_txns":0}`},
	{posfleet.ChannelFault, `{"seq":1043,"ts":"2026-11-22T10:16:02Z","component":"printer","code":"PAPER_OUT","severity":"warning","state":"raised","detail":"paper roll empty"}`},
	{posfleet.ChannelFirmware, `{"seq":1,"ts":"2026-11-22T06:00:00+08:00","model":"A920","serial":"0820123456","firmware":"2.4.1","app":"pay-5.2.0","boot_reason":"update","update":{"target":"2.4.1","status":"installed"}}`},
	{posfleet.ChannelAck, `{"seq":1045,"ts":"2026-11-22T10:20:00Z","cmd_id":"cmd-7f3a","status":"done","detail":"rebooted"}`},
	{posfleet.ChannelStatus, `{"online":true}`},
}

// BenchmarkEncode encodes a decoded message of every channel as line
// protocol into a reused buffer, as the collector does for every message.
func BenchmarkEncode(b *testing.B) {
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-00001"}
	received := time.Date(2026, 11, 22, 10, 43, 0, 0, time.UTC)
	for _, p := range benchPayloads {
		b.Run(string(p.ch), func(b *testing.B) {
			m, err := posfleet.Decode(ref, p.ch, []byte(p.payload), received)
			if err != nil {
				b.Fatal(err)
			}
			var enc influxdb.Encoder
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = enc.AppendMessage(buf[:0], m); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkDecodeEncode is a message's whole cost in the collector's
// Submit that this package and the decoder share: decode, then encode.
func BenchmarkDecodeEncode(b *testing.B) {
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-00001"}
	received := time.Date(2026, 11, 22, 10, 43, 0, 0, time.UTC)
	for _, p := range benchPayloads[:2] {
		b.Run(string(p.ch), func(b *testing.B) {
			payload := []byte(p.payload)
			var enc influxdb.Encoder
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				m, err := posfleet.Decode(ref, p.ch, payload, received)
				if err != nil {
					b.Fatal(err)
				}
				if buf, err = enc.AppendMessage(buf[:0], m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
