package influxdb

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/posfleet/posfleet"
)

// referenceAppendMessage is AppendMessage written with lineprotocol.Encoder
// (lax, as AppendMessage was before it wrote line protocol itself): the
// reference its output must match byte for byte.
func referenceAppendMessage(dst []byte, m *posfleet.Message) ([]byte, error) {
	var e lineprotocol.Encoder
	e.SetBuffer(dst)
	e.SetLax(true)
	tag := func(k, v string) {
		if v != "" {
			e.AddTag(k, v)
		}
	}
	str := func(k, v string) {
		if v == "" {
			return
		}
		if sv, ok := lineprotocol.StringValue(v); ok {
			e.AddField(k, sv)
		}
	}
	intp := func(k string, v *int) {
		if v != nil {
			e.AddField(k, lineprotocol.IntValue(int64(*v)))
		}
	}
	int64p := func(k string, v *int64) {
		if v != nil {
			e.AddField(k, lineprotocol.IntValue(*v))
		}
	}
	float := func(k string, v float64) {
		if fv, ok := lineprotocol.FloatValue(v); ok {
			e.AddField(k, fv)
		}
	}
	ref := m.Terminal
	switch {
	case m.Heartbeat != nil:
		hb := m.Heartbeat
		e.StartLine(MeasurementHeartbeat)
		tag("net", hb.Net)
		tag("paper", hb.Paper)
		tag("tenant", ref.Tenant)
		tag("terminal", ref.Terminal)
		int64p("battery_cycles", hb.BatteryCycles)
		intp("battery_health_pct", hb.BatteryHealthPct)
		intp("battery_pct", hb.BatteryPct)
		int64p("card_insertions", hb.CardInsertions)
		if hb.Charging != nil {
			e.AddField("charging", lineprotocol.BoolValue(*hb.Charging))
		}
		e.AddField("clock_skew_ms", lineprotocol.IntValue(hb.TS.Sub(m.Received).Milliseconds()))
		intp("host_rtt_ms", hb.HostRTTMs)
		if hb.Lat != nil && hb.Lon != nil {
			float("lat", *hb.Lat)
			float("lon", *hb.Lon)
		}
		intp("pending_txns", hb.PendingTxns)
		int64p("prints", hb.Prints)
		e.AddField("seq", lineprotocol.IntValue(hb.Seq))
		intp("signal_dbm", hb.SignalDBm)
		if hb.TempC != nil {
			float("temp_c", *hb.TempC)
		}
		int64p("uptime_s", hb.UptimeS)
		e.EndLine(PointTime(hb.Header))
	case m.Fault != nil:
		f := m.Fault
		e.StartLine(MeasurementFault)
		tag("component", f.Component)
		tag("severity", f.Severity)
		tag("state", f.State)
		tag("tenant", ref.Tenant)
		tag("terminal", ref.Terminal)
		str("code", f.Code)
		str("detail", f.Detail)
		e.AddField("seq", lineprotocol.IntValue(f.Seq))
		e.EndLine(PointTime(f.Header))
	case m.Inventory != nil:
		inv := m.Inventory
		e.StartLine(MeasurementFirmware)
		tag("model", inv.Model)
		tag("tenant", ref.Tenant)
		tag("terminal", ref.Terminal)
		str("app", inv.App)
		str("boot_reason", inv.BootReason)
		str("firmware", inv.Firmware)
		e.AddField("seq", lineprotocol.IntValue(inv.Seq))
		str("serial", inv.Serial)
		if u := inv.Update; u != nil {
			str("update_error", u.Error)
			str("update_status", u.Status)
			str("update_target", u.Target)
		}
		e.EndLine(PointTime(inv.Header))
	case m.Txn != nil:
		t := m.Txn
		e.StartLine(MeasurementTxn)
		tag("entry", t.Entry)
		tag("host", t.Host)
		tag("receipt", t.Receipt)
		tag("result", t.Result)
		tag("tenant", ref.Tenant)
		tag("terminal", ref.Terminal)
		tag("type", t.Type)
		int64p("amount_charged", t.AmountCharged)
		int64p("amount_entered", t.AmountEntered)
		str("currency", t.Currency)
		intp("host_ms", t.HostMs)
		str("id", t.ID)
		e.AddField("offline", lineprotocol.BoolValue(t.Offline))
		int64p("original_amount", t.OriginalAmount)
		str("original_id", t.OriginalID)
		str("rc", t.RC)
		e.AddField("seq", lineprotocol.IntValue(t.Seq))
		e.EndLine(PointTime(t.Header))
	case m.Status != nil:
		e.StartLine(MeasurementStatus)
		tag("tenant", ref.Tenant)
		tag("terminal", ref.Terminal)
		e.AddField("online", lineprotocol.BoolValue(m.Status.Online))
		e.EndLine(m.Received)
	case m.Ack != nil:
		a := m.Ack
		e.StartLine(MeasurementAck)
		tag("status", a.Status)
		tag("tenant", ref.Tenant)
		tag("terminal", ref.Terminal)
		str("cmd_id", a.CmdID)
		str("detail", a.Detail)
		e.AddField("seq", lineprotocol.IntValue(a.Seq))
		e.EndLine(PointTime(a.Header))
	}
	return e.Bytes(), e.Err()
}

// TestEncoderMatchesLineprotocol: AppendMessage writes, for messages of
// every channel with every optional field absent or present and values
// that need escapes, exactly the line lineprotocol.Encoder writes, after
// what dst already holds; and fails where it fails, leaving dst as it was.
func TestEncoderMatchesLineprotocol(t *testing.T) {
	ts := time.Date(2026, 11, 22, 10, 15, 30, 123456789, time.UTC)
	received := ts.Add(1500 * time.Millisecond)
	i64 := func(v int64) *int64 { return &v }
	in := func(v int) *int { return &v }
	f64 := func(v float64) *float64 { return &v }
	bl := func(v bool) *bool { return &v }
	texts := []string{"", "plain", `a "quoted" \ back\`, "line\nbreak\rcr\ttab", "tag,with=all kinds", "汉字 ok", "bad \xff utf8", "=", " ", ","}
	refs := []posfleet.TerminalRef{{Tenant: "acme", Terminal: "T-0001"}, {Tenant: "a b", Terminal: "t,1=x"}}
	var msgs []*posfleet.Message
	for k, s := range texts {
		h := posfleet.Header{Seq: int64(k*1_000_003 + 1), TS: ts.Add(time.Duration(k) * time.Hour)}
		ref := refs[k%2]
		msgs = append(msgs,
			&posfleet.Message{Terminal: ref, Received: received, Heartbeat: &posfleet.Heartbeat{Header: h, Net: s, Paper: s}},
			&posfleet.Message{Terminal: ref, Received: received, Heartbeat: &posfleet.Heartbeat{Header: h,
				UptimeS: i64(int64(k) * 86400), BatteryPct: in(k), Charging: bl(k%2 == 0), TempC: f64(36.599999999999994 + float64(k)),
				SignalDBm: in(-87), Net: "4g", HostRTTMs: in(420), Paper: "ok", PendingTxns: in(0), Lat: f64(31.2304), Lon: f64(-121.4737),
				Prints: i64(12345), CardInsertions: i64(0), BatteryCycles: i64(321), BatteryHealthPct: in(88)}},
			&posfleet.Message{Terminal: ref, Received: received, Heartbeat: &posfleet.Heartbeat{Header: h, TempC: f64(math.NaN()), Lat: f64(math.Inf(1)), Lon: f64(0)}},
			&posfleet.Message{Terminal: ref, Received: received, Heartbeat: &posfleet.Heartbeat{Header: h, Lat: f64(1)}},
			&posfleet.Message{Terminal: ref, Received: received, Fault: &posfleet.Fault{Header: h, Component: s, Code: s, Severity: "warning", State: s, Detail: s}},
			&posfleet.Message{Terminal: ref, Received: received, Inventory: &posfleet.Inventory{Header: h, Model: s, Serial: s, Firmware: "2.4.1", App: s, BootReason: s}},
			&posfleet.Message{Terminal: ref, Received: received, Inventory: &posfleet.Inventory{Header: h, Model: "A920", Firmware: s,
				Update: &posfleet.UpdateAttempt{Target: s, Status: "failed", Error: s}}},
			&posfleet.Message{Terminal: ref, Received: received, Txn: &posfleet.Transaction{Header: h, ID: s, Type: "sale", Result: s}},
			&posfleet.Message{Terminal: ref, Received: received, Txn: &posfleet.Transaction{Header: h, ID: "S-T-0001-000187", Type: "refund",
				Entry: s, Currency: "CNY", AmountEntered: i64(12800), AmountCharged: i64(-1), OriginalID: s, OriginalAmount: i64(math.MaxInt64),
				Result: "approved", RC: "00", HostMs: in(640), Receipt: s, Offline: k%2 == 1, Host: s}},
			&posfleet.Message{Terminal: ref, Received: received, Status: &posfleet.Status{Online: k%2 == 0}},
			&posfleet.Message{Terminal: ref, Received: received, Ack: &posfleet.Ack{Header: h, CmdID: s, Status: s, Detail: s}},
		)
	}
	// Times at and past the ends of what line protocol holds, and none.
	for _, at := range []time.Time{{}, time.Unix(0, math.MaxInt64), time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64).Add(time.Millisecond),
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		msgs = append(msgs,
			&posfleet.Message{Terminal: refs[0], Received: at, Status: &posfleet.Status{Online: true}},
			&posfleet.Message{Terminal: refs[0], Received: received, Ack: &posfleet.Ack{Header: posfleet.Header{Seq: 7, TS: at}, CmdID: "c-1", Status: "done"}},
		)
	}
	prefix := []byte("earlier line\n")
	for k, m := range msgs {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			want, wantErr := referenceAppendMessage(bytes.Clone(prefix), m)
			got, err := Encoder{}.AppendMessage(bytes.Clone(prefix), m)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("error %v, lineprotocol's %v", err, wantErr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("line\n%q\nlineprotocol's\n%q", got, want)
			}
		})
	}
}

// FuzzEncoderMatchesLineprotocol: for any texts, numbers and times in any
// field, AppendMessage writes what lineprotocol.Encoder writes.
func FuzzEncoderMatchesLineprotocol(f *testing.F) {
	f.Add("acme", "T-0001", "tx 1", `a "b" \c`+"\n", int64(12800), 36.5, int64(1_795_000_000_000_000_000), true)
	f.Add("a b", "t,1=x", "", "汉字", int64(-1), math.Inf(1), int64(math.MinInt64), false)
	f.Fuzz(func(t *testing.T, tenant, terminal, s1, s2 string, n int64, fl float64, ns int64, flag bool) {
		ref := posfleet.TerminalRef{Tenant: tenant, Terminal: terminal}
		h := posfleet.Header{Seq: n, TS: time.Unix(0, ns).UTC()}
		received := time.Unix(0, ns/2)
		in := int(n)
		msgs := []*posfleet.Message{
			{Terminal: ref, Received: received, Heartbeat: &posfleet.Heartbeat{Header: h, UptimeS: &n, BatteryPct: &in, Charging: &flag,
				TempC: &fl, Net: s1, Paper: s2, Lat: &fl, Lon: &fl, Prints: &n}},
			{Terminal: ref, Received: received, Fault: &posfleet.Fault{Header: h, Component: s1, Code: s2, Severity: s1, State: s2, Detail: s1 + s2}},
			{Terminal: ref, Received: received, Inventory: &posfleet.Inventory{Header: h, Model: s1, Serial: s2, Firmware: s1, App: s2,
				Update: &posfleet.UpdateAttempt{Target: s1, Status: s2, Error: s1}}},
			{Terminal: ref, Received: received, Txn: &posfleet.Transaction{Header: h, ID: s1, Type: s2, Entry: s1, Currency: s2,
				AmountEntered: &n, Result: s1, RC: s2, HostMs: &in, Receipt: s1, Offline: flag, Host: s2, OriginalID: s1}},
			{Terminal: ref, Received: h.TS, Status: &posfleet.Status{Online: flag}},
			{Terminal: ref, Received: received, Ack: &posfleet.Ack{Header: h, CmdID: s1, Status: s2, Detail: s1}},
		}
		for _, m := range msgs {
			want, wantErr := referenceAppendMessage([]byte("x\n"), m)
			got, err := Encoder{}.AppendMessage([]byte("x\n"), m)
			if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
				t.Fatalf("line %q (%v), lineprotocol's %q (%v)", got, err, want, wantErr)
			}
		}
	})
}
