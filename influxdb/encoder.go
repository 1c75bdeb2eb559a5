// Package influxdb is the InfluxDB adapter of the collector: it encodes
// posfleet's messages as line protocol (the measurement schema documented in
// docs/schema.md) and writes batches through the InfluxDB v2 API with
// influxdb-client-go. It is the only package that imports an InfluxDB library.
package influxdb

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/collector"
)

// Measurement names of the schema.
const (
	MeasurementHeartbeat = "heartbeat"
	MeasurementFault     = "fault"
	MeasurementFirmware  = "firmware"
	MeasurementTxn       = "txn"
	MeasurementStatus    = "status"
	MeasurementAck       = "ack"
	MeasurementRejected  = "rejected"
	MeasurementSecurity  = "security"
)

// UnknownTerminal is the terminal tag of security events whose username did
// not name a provisioned terminal: an attacker's made-up names must not
// create series of their own.
const UnknownTerminal = "_unknown"

var _ collector.PointEncoder = Encoder{}

// Encoder turns messages into line protocol. The zero value is ready to use.
type Encoder struct{}

// PointTime is the timestamp of a message's point: the terminal's ts
// truncated to the millisecond, with seq mod 10^6 as its nanoseconds. Two
// messages of one terminal therefore never share a timestamp (a shop's two
// sales in one second stay two points), and a message stored twice — a
// redelivery after a crash — overwrites itself: writes are idempotent.
func PointTime(h posfleet.Header) time.Time {
	return h.TS.Truncate(time.Millisecond).Add(time.Duration(h.Seq % 1_000_000))
}

// AppendMessage appends the line of one accepted message to dst.
//
// It writes line protocol straight from the message, without
// lineprotocol.Encoder's per-call state and checks: measurement names and
// keys are constants in the order line protocol wants
// (TestEncoderKeysValid reads every line back strictly), values are escaped
// as lineprotocol escapes them, and TestEncoderMatchesLineprotocol checks
// that every line is byte for byte what lineprotocol.Encoder writes. It does
// not allocate when dst has room.
func (Encoder) AppendMessage(dst []byte, m *posfleet.Message) ([]byte, error) {
	ref := m.Terminal
	l := line{b: dst, start: len(dst)}
	var at time.Time
	switch {
	case m.Heartbeat != nil:
		hb := m.Heartbeat
		l.measurement(MeasurementHeartbeat)
		l.tag("net", hb.Net)
		l.tag("paper", hb.Paper)
		l.tag("tenant", ref.Tenant)
		l.tag("terminal", ref.Terminal)
		// battery_cycles, battery_health_pct, card_insertions and prints:
		// the optional wear counters (README, "PROTOCOL extensions").
		l.int64p("battery_cycles", hb.BatteryCycles)
		l.intp("battery_health_pct", hb.BatteryHealthPct)
		l.intp("battery_pct", hb.BatteryPct)
		l.int64p("card_insertions", hb.CardInsertions)
		if hb.Charging != nil {
			l.bool("charging", *hb.Charging)
		}
		// clock_skew_ms: how far the terminal's clock is from the server's
		// when the message arrived; a terminal that was offline sends old
		// heartbeats, so only recent ones say anything about its clock.
		l.int("clock_skew_ms", hb.TS.Sub(m.Received).Milliseconds())
		l.intp("host_rtt_ms", hb.HostRTTMs)
		// lat and lon: the optional location (README, "PROTOCOL extensions").
		if hb.Lat != nil && hb.Lon != nil {
			l.float("lat", *hb.Lat)
			l.float("lon", *hb.Lon)
		}
		l.intp("pending_txns", hb.PendingTxns)
		l.int64p("prints", hb.Prints)
		l.int("seq", hb.Seq)
		l.intp("signal_dbm", hb.SignalDBm)
		if hb.TempC != nil {
			l.float("temp_c", *hb.TempC)
		}
		l.int64p("uptime_s", hb.UptimeS)
		at = PointTime(hb.Header)
	case m.Fault != nil:
		f := m.Fault
		l.measurement(MeasurementFault)
		l.tag("component", f.Component)
		l.tag("severity", f.Severity)
		l.tag("state", f.State)
		l.tag("tenant", ref.Tenant)
		l.tag("terminal", ref.Terminal)
		l.string("code", f.Code)
		l.string("detail", f.Detail)
		l.int("seq", f.Seq)
		at = PointTime(f.Header)
	case m.Inventory != nil:
		inv := m.Inventory
		l.measurement(MeasurementFirmware)
		l.tag("model", inv.Model)
		l.tag("tenant", ref.Tenant)
		l.tag("terminal", ref.Terminal)
		l.string("app", inv.App)
		l.string("boot_reason", inv.BootReason)
		l.string("firmware", inv.Firmware)
		l.int("seq", inv.Seq)
		l.string("serial", inv.Serial)
		if u := inv.Update; u != nil {
			l.string("update_error", u.Error)
			l.string("update_status", u.Status)
			l.string("update_target", u.Target)
		}
		at = PointTime(inv.Header)
	case m.Txn != nil:
		t := m.Txn
		l.measurement(MeasurementTxn)
		l.tag("entry", t.Entry)
		// host: the optional acquirer or switch (README, "PROTOCOL
		// extensions"), a tag: incidents are looked at per host.
		l.tag("host", t.Host)
		l.tag("receipt", t.Receipt)
		l.tag("result", t.Result)
		l.tag("tenant", ref.Tenant)
		l.tag("terminal", ref.Terminal)
		l.tag("type", t.Type)
		l.int64p("amount_charged", t.AmountCharged)
		l.int64p("amount_entered", t.AmountEntered)
		l.string("currency", t.Currency)
		l.intp("host_ms", t.HostMs)
		l.string("id", t.ID)
		l.bool("offline", t.Offline)
		l.int64p("original_amount", t.OriginalAmount)
		l.string("original_id", t.OriginalID)
		l.string("rc", t.RC)
		l.int("seq", t.Seq)
		at = PointTime(t.Header)
	case m.Status != nil:
		l.measurement(MeasurementStatus)
		l.tag("tenant", ref.Tenant)
		l.tag("terminal", ref.Terminal)
		l.bool("online", m.Status.Online)
		at = m.Received
	case m.Ack != nil:
		a := m.Ack
		l.measurement(MeasurementAck)
		l.tag("status", a.Status)
		l.tag("tenant", ref.Tenant)
		l.tag("terminal", ref.Terminal)
		l.string("cmd_id", a.CmdID)
		l.string("detail", a.Detail)
		l.int("seq", a.Seq)
		at = PointTime(a.Header)
	default:
		return dst, fmt.Errorf("influxdb: encode: message of %s has no payload", m.Terminal)
	}
	if err := l.end(at); err != nil {
		return dst, fmt.Errorf("influxdb: encode %s message of %s: %w", m.Channel, m.Terminal, err)
	}
	return l.b, nil
}

// line appends one line of line protocol, as lineprotocol.Encoder in lax
// mode does: the measurement and keys, constants, are written as they are;
// tag values and string field values are escaped.
type line struct {
	b      []byte
	start  int  // where the line starts in b
	fields bool // a field was written
}

func (l *line) measurement(name string) { l.b = append(l.b, name...) }

// tag adds a tag; line protocol has no empty tag values: absent means empty.
func (l *line) tag(k, v string) {
	if v == "" {
		return
	}
	l.b = append(l.b, ',')
	l.b = append(l.b, k...)
	l.b = append(l.b, '=')
	l.b = appendTagValue(l.b, v)
}

// key starts a field.
func (l *line) key(k string) {
	if l.fields {
		l.b = append(l.b, ',')
	} else {
		l.b = append(l.b, ' ')
		l.fields = true
	}
	l.b = append(l.b, k...)
	l.b = append(l.b, '=')
}

func (l *line) int(k string, v int64) {
	l.key(k)
	l.b = strconv.AppendInt(l.b, v, 10)
	l.b = append(l.b, 'i')
}

func (l *line) intp(k string, v *int) {
	if v != nil {
		l.int(k, int64(*v))
	}
}

func (l *line) int64p(k string, v *int64) {
	if v != nil {
		l.int(k, *v)
	}
}

func (l *line) bool(k string, v bool) {
	l.key(k)
	if v {
		l.b = append(l.b, "true"...)
	} else {
		l.b = append(l.b, "false"...)
	}
}

// float adds a float field; NaN and infinities have no line protocol and
// are left out.
func (l *line) float(k string, v float64) {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return
	}
	l.key(k)
	l.b = strconv.AppendFloat(l.b, v, 'g', -1, 64)
}

// string adds a string field, left out when empty or not UTF-8.
func (l *line) string(k, v string) {
	if v == "" || !utf8.ValidString(v) {
		return
	}
	l.key(k)
	l.b = append(l.b, '"')
	l.b = appendFieldString(l.b, v)
	l.b = append(l.b, '"')
}

// The time range line protocol can hold: nanoseconds in an int64.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// end adds the timestamp (none for the zero time) and the newline; on an
// error the line is taken back out of b.
func (l *line) end(t time.Time) error {
	if !l.fields {
		l.b = l.b[:l.start]
		return errors.New("timestamp must be added after adding at least one field")
	}
	if t.IsZero() {
		l.b = append(l.b, '\n')
		return nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		l.b = l.b[:l.start]
		return fmt.Errorf("timestamp %s: %w", t.Format(time.RFC3339), lineprotocol.ErrValueOutOfRange)
	}
	l.b = append(l.b, ' ')
	l.b = strconv.AppendInt(l.b, t.UnixNano(), 10)
	l.b = append(l.b, '\n')
	return nil
}

// appendTagValue appends v with line protocol's tag value escapes: a
// backslash before comma, space and equals sign.
func appendTagValue(b []byte, v string) []byte {
	last := 0
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == ',' || c == ' ' || c == '=' {
			b = append(b, v[last:i]...)
			b = append(b, '\\', c)
			last = i + 1
		}
	}
	return append(b, v[last:]...)
}

// appendFieldString appends v with line protocol's string field escapes:
// backslash, double quote, newline, carriage return and tab.
func appendFieldString(b []byte, v string) []byte {
	last := 0
	for i := 0; i < len(v); i++ {
		var e byte
		switch v[i] {
		case '\\':
			e = '\\'
		case '"':
			e = '"'
		case '\n':
			e = 'n'
		case '\r':
			e = 'r'
		case '\t':
			e = 't'
		default:
			continue
		}
		b = append(b, v[last:i]...)
		b = append(b, '\\', e)
		last = i + 1
	}
	return append(b, v[last:]...)
}

// AppendRejection appends the line that counts rejected messages (one, or a
// window's worth: RejectionEvent.Count). The
// payload is never stored: it may hold card data.
func (Encoder) AppendRejection(dst []byte, r collector.RejectionEvent) ([]byte, error) {
	var e lineprotocol.Encoder
	e.SetBuffer(dst)
	e.StartLine(MeasurementRejected)
	addTag(&e, "channel", string(r.Channel))
	addTag(&e, "reason", string(r.Reason))
	addTag(&e, "tenant", r.Terminal.Tenant)
	addTag(&e, "terminal", r.Terminal.Terminal)
	e.AddField("count", lineprotocol.IntValue(max(r.Count, 1)))
	addString(&e, "field", r.Field)
	e.EndLine(r.Time)
	if err := e.Err(); err != nil {
		return dst, fmt.Errorf("influxdb: encode rejection: %w", err)
	}
	return e.Bytes(), nil
}

// AppendSecurity appends the line of a security event (one, or a window's
// worth: SecurityRecord.Count).
func (Encoder) AppendSecurity(dst []byte, ev collector.SecurityRecord) ([]byte, error) {
	var e lineprotocol.Encoder
	e.SetBuffer(dst)
	e.StartLine(MeasurementSecurity)
	addTag(&e, "kind", string(ev.Kind))
	tenant, terminal := ev.Terminal.Tenant, ev.Terminal.Terminal
	if !ev.Known {
		tenant, terminal = UnknownTerminal, UnknownTerminal
	}
	addTag(&e, "tenant", tenant)
	addTag(&e, "terminal", terminal)
	e.AddField("count", lineprotocol.IntValue(max(ev.Count, 1)))
	addString(&e, "remote", ev.Remote)
	addString(&e, "topic", ev.Topic)
	addString(&e, "username", ev.Username)
	e.EndLine(ev.Time)
	if err := e.Err(); err != nil {
		return dst, fmt.Errorf("influxdb: encode security event: %w", err)
	}
	return e.Bytes(), nil
}

func addTag(e *lineprotocol.Encoder, k, v string) {
	if v != "" { // line protocol has no empty tag values: absent means empty
		e.AddTag(k, v)
	}
}

func addString(e *lineprotocol.Encoder, k, v string) {
	if v == "" {
		return
	}
	if sv, ok := lineprotocol.StringValue(v); ok {
		e.AddField(k, sv)
	}
}

func addInt(e *lineprotocol.Encoder, k string, v *int) {
	if v != nil {
		e.AddField(k, lineprotocol.IntValue(int64(*v)))
	}
}

func addInt64(e *lineprotocol.Encoder, k string, v *int64) {
	if v != nil {
		e.AddField(k, lineprotocol.IntValue(*v))
	}
}
