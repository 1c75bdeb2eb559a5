package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestEveryChannelOverMQTT publishes one message of every channel from a
// real MQTT client over TCP and reads each back from InfluxDB with Flux.
func TestEveryChannelOverMQTT(t *testing.T) {
	influx := influxtest.Start(t)
	srv := testServer(t, influx, 3)
	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	base := "fleet/v1/acme/T-0001/"
	publish(t, c, base+"status", 1, true, `{"online":true}`)
	publish(t, c, base+"fw", 1, true, `{"seq":1,"ts":"2026-11-22T08:00:00Z","model":"A920","serial":"SN-1","firmware":"2.4.1","app":"7.1.0","boot_reason":"power_on"}`)
	publish(t, c, base+"hb", 1, false, `{"seq":2,"ts":"2026-11-22T08:01:00Z","uptime_s":60,"battery_pct":77,"charging":true,"temp_c":41.5,"signal_dbm":-88,"net":"4g","host_rtt_ms":950,"paper":"low","pending_txns":2}`)
	publish(t, c, base+"fault", 1, false, `{"seq":3,"ts":"2026-11-22T08:02:00Z","component":"icc","code":"READ_ERROR","severity":"warning","state":"raised","detail":"chip read failed 3 times"}`)
	publish(t, c, base+"txn", 1, false, `{"seq":4,"ts":"2026-11-22T08:03:00Z","id":"TX-77","type":"refund","entry":"fallback","currency":"CNY","amount_entered":5000,"amount_charged":5000,"original_id":"TX-70","original_amount":4500,"result":"declined","rc":"13","host_ms":1200,"receipt":"skipped","offline":true}`)
	publish(t, c, base+"ack", 1, false, `{"seq":5,"ts":"2026-11-22T08:04:00Z","cmd_id":"CMD-1","status":"accepted"}`)
	publish(t, c, base+"hb", 0, false, `{"seq":6,"ts":"2026-11-22T08:05:00Z","uptime_s":360}`)

	waitFor(t, "all points", func() bool { return count(t, influx, "heartbeat", "seq") == 2 && count(t, influx, "ack", "seq") == 1 })
	want := map[string]map[string]string{
		"status":    {"online": "true"},
		"firmware":  {"model": "A920", "serial": "SN-1", "firmware": "2.4.1", "app": "7.1.0", "boot_reason": "power_on", "seq": "1"},
		"fault":     {"component": "icc", "code": "READ_ERROR", "severity": "warning", "state": "raised", "detail": "chip read failed 3 times", "seq": "3"},
		"txn":       {"id": "TX-77", "type": "refund", "entry": "fallback", "currency": "CNY", "amount_entered": "5000", "amount_charged": "5000", "original_id": "TX-70", "original_amount": "4500", "result": "declined", "rc": "13", "host_ms": "1200", "receipt": "skipped", "offline": "true", "seq": "4"},
		"ack":       {"cmd_id": "CMD-1", "status": "accepted", "seq": "5"},
		"heartbeat": {"uptime_s": "60", "battery_pct": "77", "charging": "true", "temp_c": "41.5", "signal_dbm": "-88", "net": "4g", "host_rtt_ms": "950", "paper": "low", "pending_txns": "2", "seq": "2"},
	}
	for m, fields := range want {
		t.Run(m, func(t *testing.T) {
			rows := flux(t, influx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == %q and r.terminal == "T-0001")`, influxtest.Bucket, m))
			// The first point of the measurement, fields and tags alike.
			first := ""
			for _, r := range rows {
				if first == "" || r["_time"] < first {
					first = r["_time"]
				}
			}
			got := map[string]string{}
			for _, r := range rows {
				if r["_time"] != first {
					continue
				}
				got[r["_field"]] = r["_value"]
				for _, tag := range []string{"tenant", "net", "paper", "component", "severity", "state", "model", "type", "entry", "result", "receipt", "status"} {
					if r[tag] != "" {
						got[tag] = r[tag]
					}
				}
			}
			if len(got) == 0 {
				t.Fatal("no point")
			}
			for k, v := range fields {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if got["tenant"] != "acme" {
				t.Errorf("tenant = %q", got["tenant"])
			}
		})
	}
}

// TestAuthRefusals: unknown terminal, wrong secret and a client ID that is
// not the username are refused at CONNECT and counted.
func TestAuthRefusals(t *testing.T) {
	influx := influxtest.Start(t)
	srv := testServer(t, influx, 2)
	addr := srv.MQTTAddr().String()
	cases := []struct{ name, clientID, username, password string }{
		{"unknown terminal", "acme:T-9999", "acme:T-9999", secretOf(1)},
		{"wrong secret", "acme:T-0001", "acme:T-0001", secretOf(2)},
		{"client id is not username", "acme:T-0002", "acme:T-0001", secretOf(1)},
		{"no tenant", "T-0001", "T-0001", secretOf(1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := connect(addr, tc.clientID, tc.username, tc.password)
			if err == nil {
				c.Disconnect(0)
				t.Fatal("connected")
			}
			if !strings.Contains(strings.ToLower(err.Error()), "bad user name or password") && !strings.Contains(strings.ToLower(err.Error()), "not authorized") {
				t.Errorf("error = %v, want bad username or password", err)
			}
		})
	}
	waitFor(t, "auth failures counted", func() bool {
		return metric(t, srv, `posfleet_security_events_total{kind="auth_failed"}`) == float64(len(cases))
	})
	// Stored as security events; the provisioned ones under their terminal,
	// the made-up one under _unknown.
	waitFor(t, "security events stored", func() bool { return count(t, influx, "security", "count") == int64(len(cases)) })
	rows := flux(t, influx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "security" and r._field == "count") |> group(columns: ["terminal"]) |> count()`, influxtest.Bucket))
	got := map[string]string{}
	for _, r := range rows {
		got[r["terminal"]] = r["_value"]
	}
	if got["T-0001"] != "2" || got["_unknown"] != "2" {
		t.Errorf("security events by terminal = %v, want T-0001:2 _unknown:2", got)
	}
}

// TestACLDenials: publishing as another terminal and subscribing to
// another's commands are denied and counted, and the connection goes on.
func TestACLDenials(t *testing.T) {
	influx := influxtest.Start(t)
	srv := testServer(t, influx, 2)
	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	ts := time.Now().UTC().Format(time.RFC3339)
	publish(t, c, "fleet/v1/acme/T-0002/hb", 1, false, fmt.Sprintf(`{"seq":1,"ts":%q}`, ts))
	publish(t, c, "fleet/v1/other/T-0001/txn", 1, false, fmt.Sprintf(`{"seq":1,"ts":%q,"id":"x","type":"sale","result":"approved"}`, ts))
	tok := c.Subscribe("fleet/v1/acme/T-0002/cmd", 1, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	// The same connection still publishes as itself.
	publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, fmt.Sprintf(`{"seq":1,"ts":%q}`, ts))
	waitFor(t, "own heartbeat stored", func() bool { return count(t, influx, "heartbeat", "seq") == 1 })
	rows := flux(t, influx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "heartbeat")`, influxtest.Bucket))
	for _, r := range rows {
		if r["terminal"] != "T-0001" {
			t.Errorf("stored a heartbeat for %s", r["terminal"])
		}
	}
	if n := count(t, influx, "txn", "seq"); n != 0 {
		t.Errorf("stored %d foreign transactions", n)
	}
	waitFor(t, "denials counted", func() bool {
		return metric(t, srv, `posfleet_security_events_total{kind="acl_publish_denied"}`) == 2 &&
			metric(t, srv, `posfleet_security_events_total{kind="acl_subscribe_denied"}`) == 1
	})
	waitFor(t, "denials stored", func() bool { return count(t, influx, "security", "count") == 3 })
}

// TestBadInputOverMQTT: every bad-input case of PROTOCOL §1 is refused,
// counted with its reason, stores nothing, and the same connection goes on.
func TestBadInputOverMQTT(t *testing.T) {
	influx := influxtest.Start(t)
	srv := testServer(t, influx, 1)
	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	base := "fleet/v1/acme/T-0001/"
	ts := time.Now().UTC().Format(time.RFC3339)
	cases := []struct{ name, channel, payload, reason string }{
		{"not json", "hb", `{"seq":1,"ts":`, "not_json"},
		{"json array", "hb", `[1,2]`, "not_json"},
		{"missing seq", "hb", fmt.Sprintf(`{"ts":%q}`, ts), "missing_seq"},
		{"missing ts", "fault", `{"seq":2,"component":"printer","code":"X","severity":"info","state":"raised"}`, "missing_ts"},
		{"wrong type", "txn", fmt.Sprintf(`{"seq":3,"ts":%q,"id":"a","type":"sale","result":"approved","amount_entered":"12.00"}`, ts), "wrong_type"},
		{"out of range", "hb", fmt.Sprintf(`{"seq":4,"ts":%q,"battery_pct":140}`, ts), "out_of_range"},
		{"bad enum", "fault", fmt.Sprintf(`{"seq":5,"ts":%q,"component":"toaster","code":"X","severity":"info","state":"raised"}`, ts), "out_of_range"},
		{"missing field", "ack", fmt.Sprintf(`{"seq":6,"ts":%q,"status":"done"}`, ts), "missing_field"},
		{"too large", "fault", fmt.Sprintf(`{"seq":7,"ts":%q,"component":"app","code":"X","severity":"info","state":"raised","detail":"%s"}`, ts, strings.Repeat("a", 17<<10)), "too_large"},
		{"unknown channel", "gps", fmt.Sprintf(`{"seq":8,"ts":%q}`, ts), "unknown_channel"},
		{"card number", "txn", fmt.Sprintf(`{"seq":9,"ts":%q,"id":"a","type":"sale","result":"approved","note":{"x":["4111 1111 1111 1111"]}}`, ts), "card_data"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			publish(t, c, base+tc.channel, 1, false, tc.payload)
			sample := fmt.Sprintf(`posfleet_messages_rejected_total{reason=%q}`, tc.reason)
			want := 0
			for _, other := range cases[:i+1] {
				if other.reason == tc.reason {
					want++
				}
			}
			waitFor(t, sample, func() bool { return metric(t, srv, sample) == float64(want) })
			// The same connection goes on publishing valid messages.
			publish(t, c, base+"hb", 1, false, fmt.Sprintf(`{"seq":%d,"ts":%q}`, 100+i, ts))
		})
	}
	waitFor(t, "valid heartbeats", func() bool { return count(t, influx, "heartbeat", "seq") == int64(len(cases)) })
	waitFor(t, "rejections stored", func() bool { return count(t, influx, "rejected", "count") == int64(len(cases)) })
	for _, m := range []string{"txn", "fault", "ack"} {
		if n := count(t, influx, m, "seq"); n != 0 {
			t.Errorf("%s: %d points stored from bad input", m, n)
		}
	}
	if !c.IsConnectionOpen() {
		t.Error("connection dropped")
	}
}
