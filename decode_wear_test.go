package posfleet

import (
	"errors"
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
