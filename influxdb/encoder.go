// Package influxdb is the InfluxDB adapter of the collector: it encodes
// posfleet's messages as line protocol (the measurement schema documented in
// docs/schema.md) and writes batches through the InfluxDB v2 API with
// influxdb-client-go. It is the only package that imports an InfluxDB library.
package influxdb

import (
	"fmt"
	"time"

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
func (Encoder) AppendMessage(dst []byte, m *posfleet.Message) ([]byte, error) {
	var e lineprotocol.Encoder
	e.SetBuffer(dst)
	// Measurement names and keys below are constants in the order line
	// protocol wants (TestEncoderKeysValid checks them strictly); values are
	// still escaped. Skipping the checks is a tenth of the encoding's CPU.
	e.SetLax(true)
	ref := m.Terminal
	switch {
	case m.Heartbeat != nil:
		hb := m.Heartbeat
		e.StartLine(MeasurementHeartbeat)
		addTag(&e, "net", hb.Net)
		addTag(&e, "paper", hb.Paper)
		addTag(&e, "tenant", ref.Tenant)
		addTag(&e, "terminal", ref.Terminal)
		// battery_cycles, battery_health_pct, card_insertions and prints:
		// the optional wear counters (README, "PROTOCOL extensions").
		addInt64(&e, "battery_cycles", hb.BatteryCycles)
		addInt(&e, "battery_health_pct", hb.BatteryHealthPct)
		addInt(&e, "battery_pct", hb.BatteryPct)
		addInt64(&e, "card_insertions", hb.CardInsertions)
		if hb.Charging != nil {
			e.AddField("charging", lineprotocol.BoolValue(*hb.Charging))
		}
		// clock_skew_ms: how far the terminal's clock is from the server's
		// when the message arrived; a terminal that was offline sends old
		// heartbeats, so only recent ones say anything about its clock.
		e.AddField("clock_skew_ms", lineprotocol.IntValue(hb.TS.Sub(m.Received).Milliseconds()))
		addInt(&e, "host_rtt_ms", hb.HostRTTMs)
		// lat and lon: the optional location (README, "PROTOCOL extensions").
		if hb.Lat != nil && hb.Lon != nil {
			if lat, ok := lineprotocol.FloatValue(*hb.Lat); ok {
				e.AddField("lat", lat)
			}
			if lon, ok := lineprotocol.FloatValue(*hb.Lon); ok {
				e.AddField("lon", lon)
			}
		}
		addInt(&e, "pending_txns", hb.PendingTxns)
		addInt64(&e, "prints", hb.Prints)
		e.AddField("seq", lineprotocol.IntValue(hb.Seq))
		addInt(&e, "signal_dbm", hb.SignalDBm)
		if hb.TempC != nil {
			if v, ok := lineprotocol.FloatValue(*hb.TempC); ok {
				e.AddField("temp_c", v)
			}
		}
		if hb.UptimeS != nil {
			e.AddField("uptime_s", lineprotocol.IntValue(*hb.UptimeS))
		}
		e.EndLine(PointTime(hb.Header))
	case m.Fault != nil:
		f := m.Fault
		e.StartLine(MeasurementFault)
		addTag(&e, "component", f.Component)
		addTag(&e, "severity", f.Severity)
		addTag(&e, "state", f.State)
		addTag(&e, "tenant", ref.Tenant)
		addTag(&e, "terminal", ref.Terminal)
		addString(&e, "code", f.Code)
		addString(&e, "detail", f.Detail)
		e.AddField("seq", lineprotocol.IntValue(f.Seq))
		e.EndLine(PointTime(f.Header))
	case m.Inventory != nil:
		inv := m.Inventory
		e.StartLine(MeasurementFirmware)
		addTag(&e, "model", inv.Model)
		addTag(&e, "tenant", ref.Tenant)
		addTag(&e, "terminal", ref.Terminal)
		addString(&e, "app", inv.App)
		addString(&e, "boot_reason", inv.BootReason)
		addString(&e, "firmware", inv.Firmware)
		e.AddField("seq", lineprotocol.IntValue(inv.Seq))
		addString(&e, "serial", inv.Serial)
		if u := inv.Update; u != nil {
			addString(&e, "update_error", u.Error)
			addString(&e, "update_status", u.Status)
			addString(&e, "update_target", u.Target)
		}
		e.EndLine(PointTime(inv.Header))
	case m.Txn != nil:
		t := m.Txn
		e.StartLine(MeasurementTxn)
		addTag(&e, "entry", t.Entry)
		// host: the optional acquirer or switch (README, "PROTOCOL
		// extensions"), a tag: incidents are looked at per host.
		addTag(&e, "host", t.Host)
		addTag(&e, "receipt", t.Receipt)
		addTag(&e, "result", t.Result)
		addTag(&e, "tenant", ref.Tenant)
		addTag(&e, "terminal", ref.Terminal)
		addTag(&e, "type", t.Type)
		addInt64(&e, "amount_charged", t.AmountCharged)
		addInt64(&e, "amount_entered", t.AmountEntered)
		addString(&e, "currency", t.Currency)
		addInt(&e, "host_ms", t.HostMs)
		addString(&e, "id", t.ID)
		e.AddField("offline", lineprotocol.BoolValue(t.Offline))
		addInt64(&e, "original_amount", t.OriginalAmount)
		addString(&e, "original_id", t.OriginalID)
		addString(&e, "rc", t.RC)
		e.AddField("seq", lineprotocol.IntValue(t.Seq))
		e.EndLine(PointTime(t.Header))
	case m.Status != nil:
		e.StartLine(MeasurementStatus)
		addTag(&e, "tenant", ref.Tenant)
		addTag(&e, "terminal", ref.Terminal)
		e.AddField("online", lineprotocol.BoolValue(m.Status.Online))
		e.EndLine(m.Received)
	case m.Ack != nil:
		a := m.Ack
		e.StartLine(MeasurementAck)
		addTag(&e, "status", a.Status)
		addTag(&e, "tenant", ref.Tenant)
		addTag(&e, "terminal", ref.Terminal)
		addString(&e, "cmd_id", a.CmdID)
		addString(&e, "detail", a.Detail)
		e.AddField("seq", lineprotocol.IntValue(a.Seq))
		e.EndLine(PointTime(a.Header))
	default:
		return dst, fmt.Errorf("influxdb: encode: message of %s has no payload", m.Terminal)
	}
	if err := e.Err(); err != nil {
		return dst, fmt.Errorf("influxdb: encode %s message of %s: %w", m.Channel, m.Terminal, err)
	}
	return e.Bytes(), nil
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
