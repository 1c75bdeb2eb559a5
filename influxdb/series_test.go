package influxdb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/influxdb"
	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestTerminalSeries writes a day of one terminal's heartbeats and
// transactions (and another terminal's, which must not show) through the
// encoder into a real influxd and reads the chart series back.
func TestTerminalSeries(t *testing.T) {
	srv := influxtest.Start(t)
	st, err := influxdb.Open(influxdb.Config{URL: srv.URL, Bucket: influxtest.Bucket, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	end := time.Now().UTC().Truncate(time.Hour)
	me := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	other := posfleet.TerminalRef{Tenant: "other", Terminal: "T-1"}
	var lines []byte
	add := func(ref posfleet.TerminalRef, ch posfleet.Channel, payload string) {
		t.Helper()
		m, err := posfleet.Decode(ref, ch, []byte(payload), end)
		if err != nil {
			t.Fatalf("%s: %v", payload, err)
		}
		if lines, err = (influxdb.Encoder{}).AppendMessage(lines, m); err != nil {
			t.Fatal(err)
		}
	}
	seq := 0
	ts := func(ago time.Duration) string { seq++; return end.Add(-ago).Format(time.RFC3339) }
	// Heartbeats every 30 min over 10 h: battery falls 1 point each.
	for i := range 20 {
		add(me, posfleet.ChannelHeartbeat, fmt.Sprintf(`{"seq":%d,"ts":%q,"battery_pct":%d,"signal_dbm":-70,"host_rtt_ms":%d}`, seq+1, ts(time.Duration(20-i)*30*time.Minute), 80-i, 200+i))
	}
	add(other, posfleet.ChannelHeartbeat, fmt.Sprintf(`{"seq":%d,"ts":%q,"battery_pct":5,"signal_dbm":-100,"host_rtt_ms":9000}`, seq+1, ts(time.Hour)))
	// Three hours ago: 4 approved sales (one with a mismatch), 1 decline;
	// one hour ago: 2 timeouts.
	for i := range 4 {
		charged := 1000
		if i == 0 {
			charged = 10000
		}
		add(me, posfleet.ChannelTxn, fmt.Sprintf(`{"seq":%d,"ts":%q,"id":"tx-a%d","type":"sale","currency":"EUR","amount_entered":1000,"amount_charged":%d,"result":"approved","rc":"00","receipt":"printed"}`,
			seq+1, ts(3*time.Hour-time.Duration(i)*time.Minute), i, charged))
	}
	add(me, posfleet.ChannelTxn, fmt.Sprintf(`{"seq":%d,"ts":%q,"id":"tx-d","type":"sale","currency":"EUR","amount_entered":500,"result":"declined","rc":"51"}`, seq+1, ts(150*time.Minute)))
	for i := range 2 {
		add(me, posfleet.ChannelTxn, fmt.Sprintf(`{"seq":%d,"ts":%q,"id":"tx-t%d","type":"sale","currency":"EUR","amount_entered":700,"result":"timeout"}`, seq+1, ts(time.Hour-time.Duration(i)*time.Minute), i))
	}
	add(other, posfleet.ChannelTxn, fmt.Sprintf(`{"seq":%d,"ts":%q,"id":"tx-o","type":"sale","currency":"EUR","amount_entered":700,"result":"error"}`, seq+1, ts(time.Hour)))
	if err := st.WriteLines(ctx, lines); err != nil {
		t.Fatal(err)
	}

	t.Run("day", func(t *testing.T) {
		s, err := st.TerminalSeries(ctx, me.Tenant, me.Terminal, 24*time.Hour, end)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Battery) != 20 || len(s.Signal) != 20 || len(s.HostRTT) != 20 {
			t.Fatalf("heartbeat points: %d %d %d", len(s.Battery), len(s.Signal), len(s.HostRTT))
		}
		if s.Battery[0].Value != 80 || s.Battery[19].Value != 61 || s.Signal[5].Value != -70 || s.HostRTT[19].Value != 219 {
			t.Errorf("values: %v %v %v %v", s.Battery[0], s.Battery[19], s.Signal[5], s.HostRTT[19])
		}
		if !s.Battery[0].At.Before(s.Battery[1].At) {
			t.Error("heartbeat points out of order")
		}
		sum := func(p []influxdb.Point) (n float64) {
			for _, x := range p {
				n += x.Value
			}
			return n
		}
		if len(s.TxnsByResult["approved"]) != 24 || sum(s.TxnsByResult["approved"]) != 4 || sum(s.TxnsByResult["declined"]) != 1 ||
			sum(s.TxnsByResult["timeout"]) != 2 || sum(s.TxnsByResult["error"]) != 0 {
			t.Errorf("by result: %v", s.TxnsByResult)
		}
		if sum(s.Mismatches) != 1 || s.Mismatches[20].Value != 1 {
			t.Errorf("mismatches: %v", s.Mismatches)
		}
		if len(s.Recent) != 7 || s.Recent[0].Result != "timeout" || s.Recent[6].ID != "tx-a0" || !s.Recent[6].Mismatch() || *s.Recent[6].AmountCharged != 10000 {
			t.Errorf("recent: %+v", s.Recent)
		}
	})
	t.Run("week", func(t *testing.T) {
		s, err := st.TerminalSeries(ctx, me.Tenant, me.Terminal, 7*24*time.Hour, end)
		if err != nil {
			t.Fatal(err)
		}
		if s.Step != time.Hour || len(s.TxnsByResult["approved"]) != 28 || len(s.Battery) != 10 {
			t.Errorf("week: step %v, %d buckets, %d battery points", s.Step, len(s.TxnsByResult["approved"]), len(s.Battery))
		}
	})
	t.Run("counts", func(t *testing.T) {
		for _, tc := range []struct {
			tenant string
			want   map[string]int64
		}{
			{"acme", map[string]int64{"approved": 4, "declined": 1, "timeout": 2}},
			{"other", map[string]int64{"error": 1}},
			{"", map[string]int64{"approved": 4, "declined": 1, "timeout": 2, "error": 1}},
		} {
			got, err := st.TransactionCounts(ctx, tc.tenant, 24*time.Hour, end)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%q: %v, want %v", tc.tenant, got, tc.want)
			}
		}
	})
	t.Run("counts up to the nanosecond", func(t *testing.T) {
		// A transaction at a whole second is stored seq nanoseconds after
		// it; counted a moment later, within the same second, it must show.
		at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		m, err := posfleet.Decode(posfleet.TerminalRef{Tenant: "now", Terminal: "T-1"}, posfleet.ChannelTxn,
			fmt.Appendf(nil, `{"seq":7,"ts":%q,"id":"tx-n","type":"sale","currency":"EUR","amount_entered":700,"result":"approved","rc":"00"}`, at.Format(time.RFC3339)), at)
		if err != nil {
			t.Fatal(err)
		}
		line, err := (influxdb.Encoder{}).AppendMessage(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.WriteLines(ctx, line); err != nil {
			t.Fatal(err)
		}
		got, err := st.TransactionCounts(ctx, "now", 24*time.Hour, at.Add(500*time.Millisecond))
		if err != nil || got["approved"] != 1 {
			t.Errorf("counted in the same second: %v, %v; want 1 approved", got, err)
		}
	})
	t.Run("quoting", func(t *testing.T) {
		s, err := st.TerminalSeries(ctx, `ac"me`, `T-1${x}\`, 24*time.Hour, end)
		if err != nil || len(s.Battery) != 0 {
			t.Errorf("odd names: %v, %d points", err, len(s.Battery))
		}
	})
}
