package posfleet

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDecodeWearAndHost: the wear counters in hb and host in txn are
// optional (README, "PROTOCOL extensions") and checked for range.
func TestDecodeWearAndHost(t *testing.T) {
	ref := TerminalRef{Tenant: "acme", Terminal: "T1"}
	const head = `{"seq":1,"ts":"2026-03-02T09:30:00Z"`
	m, err := Decode(ref, ChannelHeartbeat, []byte(head+`,"prints":149000,"card_insertions":12,"battery_cycles":310,"battery_health_pct":62}`), time.Now())
	if err != nil || *m.Heartbeat.Prints != 149000 || *m.Heartbeat.CardInsertions != 12 || *m.Heartbeat.BatteryCycles != 310 || *m.Heartbeat.BatteryHealthPct != 62 {
		t.Fatalf("with counters: %v %+v", err, m)
	}
	m, err = Decode(ref, ChannelHeartbeat, []byte(head+`}`), time.Now())
	if err != nil || m.Heartbeat.Prints != nil || m.Heartbeat.BatteryHealthPct != nil {
		t.Fatalf("without counters: %v %+v", err, m)
	}
	txn := `{"seq":2,"ts":"2026-03-02T09:30:00Z","id":"x1","type":"sale","result":"approved"`
	m, err = Decode(ref, ChannelTxn, []byte(txn+`,"host":"unionpay-sh.1"}`), time.Now())
	if err != nil || m.Txn.Host != "unionpay-sh.1" || m.Txn.ID != "x1" {
		t.Fatalf("with host: %v %+v", err, m)
	}
	m, err = Decode(ref, ChannelTxn, []byte(txn+`}`), time.Now())
	if err != nil || m.Txn.Host != "" {
		t.Fatalf("without host: %v %+v", err, m)
	}
	for _, c := range []struct {
		ch          Channel
		body, field string
		reason      Reason
	}{
		{ChannelHeartbeat, head + `,"prints":-1}`, "prints", ReasonOutOfRange},
		{ChannelHeartbeat, head + `,"card_insertions":1.5}`, "card_insertions", ReasonWrongType},
		{ChannelHeartbeat, head + `,"battery_cycles":"3"}`, "battery_cycles", ReasonWrongType},
		{ChannelHeartbeat, head + `,"battery_health_pct":101}`, "battery_health_pct", ReasonOutOfRange},
		{ChannelHeartbeat, head + `,"battery_health_pct":-1}`, "battery_health_pct", ReasonOutOfRange},
		{ChannelTxn, txn + `,"host":""}`, "host", ReasonOutOfRange},
		{ChannelTxn, txn + `,"host":"a b"}`, "host", ReasonOutOfRange},
		{ChannelTxn, txn + `,"host":"abcdefghijabcdefghijabcdefghijabc"}`, "host", ReasonOutOfRange},
		{ChannelTxn, txn + `,"host":7}`, "host", ReasonWrongType},
	} {
		_, err := Decode(ref, c.ch, []byte(c.body), time.Now())
		var rej *Rejection
		if !errors.As(err, &rej) || rej.Reason != c.reason || rej.Field != c.field {
			t.Errorf("%s: %v, want %s on %s", c.body, err, c.reason, c.field)
		}
	}
}

// TestKeysHoldNoCardData: the parser takes a key it expects without the
// card-data scan, which is right only because no key of any schema holds
// escapes or could hold card data.
func TestKeysHoldNoCardData(t *testing.T) {
	all := [][]string{hbKeys, faultKeys, fwKeys, updateKeys, txnKeys, statusKeys, ackKeys}
	for _, keys := range all {
		for _, k := range keys {
			if prescan(k) != clean || strings.ContainsAny(k, `"\`) {
				t.Errorf("key %q needs the scan", k)
			}
		}
	}
}

// TestReleaseReuses: a released message's block is decoded into again
// with nothing left of the message before; the strings of a released
// transaction stay as they were; releasing twice, or releasing a message
// Decode did not make, does nothing.
func TestReleaseReuses(t *testing.T) {
	ref := TerminalRef{Tenant: "acme", Terminal: "T1"}
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	full := `{"seq":1,"ts":"2026-11-22T10:00:00Z","uptime_s":5,"battery_pct":80,"charging":true,"temp_c":30.5,"signal_dbm":-70,"net":"4g","host_rtt_ms":300,"paper":"low","pending_txns":1,"lat":31.2,"lon":121.5,"prints":10,"card_insertions":11,"battery_cycles":12,"battery_health_pct":90}`
	bare := `{"seq":2,"ts":"2026-11-22T10:00:01Z"}`
	for range 3 { // the pool may drop what it is given: try more than once
		m, err := Decode(ref, ChannelHeartbeat, []byte(full), at)
		if err != nil {
			t.Fatal(err)
		}
		m.Release()
		m.Release()
		m, err = Decode(ref, ChannelHeartbeat, []byte(bare), at)
		if err != nil {
			t.Fatal(err)
		}
		want := Heartbeat{Header: Header{Seq: 2, TS: time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC)}}
		if !reflect.DeepEqual(*m.Heartbeat, want) || m.Txn != nil || m.Terminal != ref || m.Channel != ChannelHeartbeat {
			t.Fatalf("reused block holds %+v", *m.Heartbeat)
		}
		m.Release()
	}
	tx := `{"seq":3,"ts":"2026-11-22T10:00:02Z","id":"S-1","type":"sale","currency":"CNY","amount_entered":100,"result":"approved","rc":"00","host":"acq-1"}`
	m, err := Decode(ref, ChannelTxn, []byte(tx), at)
	if err != nil {
		t.Fatal(err)
	}
	id, host := m.Txn.ID, m.Txn.Host
	m.Release()
	other := strings.NewReplacer("S-1", "R-9", "acq-1", "acq-2", "CNY", "USD").Replace(tx)
	m2, err := Decode(ref, ChannelTxn, []byte(other), at)
	if err != nil {
		t.Fatal(err)
	}
	if id != "S-1" || host != "acq-1" || m2.Txn.ID != "R-9" || m2.Txn.AmountCharged != nil {
		t.Fatalf("strings of a released message changed: %q %q, new %+v", id, host, *m2.Txn)
	}
	// A rejected transaction leaves nothing behind either.
	if _, err := Decode(ref, ChannelTxn, []byte(`{"seq":4,"ts":"2026-11-22T10:00:02Z","id":"S-2","type":"sale","result":"maybe"}`), at); err == nil {
		t.Fatal("accepted")
	}
	made := &Message{Terminal: ref, Channel: ChannelStatus, Status: &Status{Online: true}}
	made.Release()
	if !made.Status.Online {
		t.Fatal("Release changed a message Decode did not make")
	}
}
