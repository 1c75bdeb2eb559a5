package server

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
)

type observed []int64

func (o *observed) Observe(m *posfleet.Message) { *o = append(*o, m.Header().Seq) }

// TestHealthSinkDropsRedeliveries: the health role's sink hands each
// message to the engine once: a QoS 1 redelivery or a retained replay
// (same seq, same ts) is dropped, a terminal that starts its seqs again
// (later ts) is not.
func TestHealthSinkDropsRedeliveries(t *testing.T) {
	var got observed
	sink := newHealthSink(&got)
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	hb := func(seq int, ts string) []byte {
		return []byte(`{"seq":` + strconv.Itoa(seq) + `,"ts":"` + ts + `","uptime_s":5,"battery_pct":80}`)
	}
	for _, m := range []struct {
		seq int
		ts  string
	}{
		{1, "2026-03-02T08:00:00Z"},
		{2, "2026-03-02T08:01:00Z"},
		{1, "2026-03-02T08:00:00Z"}, // redelivered
		{2, "2026-03-02T08:01:00Z"}, // redelivered
		{3, "2026-03-02T08:02:00Z"},
		{1, "2026-03-02T09:00:00Z"}, // seqs start again after a reset
	} {
		if err := sink.Accept(context.Background(), ref, posfleet.ChannelHeartbeat, hb(m.seq, m.ts)); err != nil {
			t.Fatal(err)
		}
	}
	if want := []int64{1, 2, 3, 1}; len(got) != len(want) || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 1 {
		t.Fatalf("observed seqs %v, want %v", got, want)
	}
	var rej *posfleet.Rejection
	if err := sink.Accept(context.Background(), ref, posfleet.ChannelHeartbeat, []byte(`{`)); err == nil || !errors.As(err, &rej) {
		t.Fatalf("bad JSON: %v, want a rejection", err)
	}
}

// BenchmarkHealthSink measures the health role's path per message:
// decoding, the redelivery filter, the health engine (change feed on) and
// the command tracker, over 100,000 terminals sending a heartbeat and
// then sales, from as many goroutines as GOMAXPROCS (mqttsource's workers).
// It reports messages per second and the heap per terminal of the engine,
// the tracker and the filter together.
//
//	go test ./server -run '^$' -bench HealthSink -benchtime 1000000x -cpu 1,2
func BenchmarkHealthSink(b *testing.B) {
	const terminals = 100_000
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	eng := health.New(health.Config{})
	eng.TrackChanges(true)
	sink := newHealthSink(eng, commands.New())
	refs := make([]posfleet.TerminalRef, terminals)
	for i := range refs {
		refs[i] = posfleet.TerminalRef{Tenant: fmt.Sprintf("t%d", i%10), Terminal: fmt.Sprintf("T%07d", i)}
	}
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	payload := func(seq int) (posfleet.Channel, []byte) {
		ts := base.Add(time.Duration(seq) * 10 * time.Second).Format(time.RFC3339)
		if seq%10 == 1 {
			return posfleet.ChannelHeartbeat, fmt.Appendf(nil, `{"seq":%d,"ts":%q,"uptime_s":%d,"battery_pct":80,"signal_dbm":-80,"net":"4g","host_rtt_ms":400,"paper":"ok"}`, seq, ts, seq)
		}
		return posfleet.ChannelTxn, fmt.Appendf(nil, `{"seq":%d,"ts":%q,"id":"TX-%d","type":"sale","entry":"tap","currency":"CNY","amount_entered":1250,"amount_charged":1250,"result":"approved","rc":"00","host_ms":380,"receipt":"printed"}`, seq, ts, seq)
	}
	// Every terminal heard from once: the heap per terminal.
	for _, r := range refs {
		ch, p := payload(1)
		if err := sink.Accept(context.Background(), r, ch, p); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perTerminal := float64(after.HeapAlloc-before.HeapAlloc) / terminals
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := int(next.Add(1))
			r := refs[k%terminals]
			ch, p := payload(2 + k/terminals)
			if err := sink.Accept(context.Background(), r, ch, p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(perTerminal, "bytes/terminal")
}

// TestOneBoxPublishesHealthView: posfleet in one process (the default
// roles) publishes its health engine's view to its database, holding the
// lease itself; the lease is released at Close.
func TestOneBoxPublishesHealthView(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.HTTPAddr, cfg.Broker.TCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Influx.URL = "http://127.0.0.1:1" // the spool holds what it cannot write
	cfg.Publisher.Every = 50 * time.Millisecond
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	s.Health().Observe(&posfleet.Message{Terminal: ref, Channel: posfleet.ChannelFault, Received: time.Now(),
		Fault: &posfleet.Fault{Header: posfleet.Header{Seq: 1, TS: time.Now()}, Component: posfleet.ComponentPrinter,
			Code: "PRINTER_JAM", Severity: posfleet.SeverityWarning, State: posfleet.FaultRaised}})
	db := s.DB()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var flag string
		err := db.QueryRow(`SELECT flag FROM terminal_flags WHERE tenant = 'acme' AND terminal = 'T-1'`).Scan(&flag)
		if err == nil && flag == string(posfleet.FlagHardwareFault) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hardware_fault in terminal_flags: %q, %v", flag, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.Publisher() == nil || !s.Publisher().Held() {
		t.Fatal("one box does not hold the health lease")
	}
}
