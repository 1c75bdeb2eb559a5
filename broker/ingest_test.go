package broker_test

import (
	"context"
	"io"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/broker"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/influxdb"
)

// ingestPayloads are a terminal's messages of each benchmarked channel,
// without their seq (BenchmarkIngest numbers them).
var ingestPayloads = map[posfleet.Channel]string{
	posfleet.ChannelHeartbeat: `"ts":"2026-11-22T10:15:30.123Z","uptime_s":86400,"battery_pct":76,"charging":false,"temp_c":38.5,"signal_dbm":-87,"net":"4g","host_rtt_ms":420,"paper":"ok","pending_txns":0}`,
	posfleet.ChannelTxn:       `"ts":"2026-11-22T10:17:45.5Z","id":"T20261122-000187","type":"sale","entry":"tap","currency":"CNY","amount_entered":12800,"amount_charged":12800,"result":"approved","rc":"00","host_ms":640,"receipt":"printed","offline":false}`,
	posfleet.ChannelFault:     `"ts":"2026-11-22T10:16:02Z","component":"printer","code":"PAPER_OUT","severity":"warning","state":"raised","detail":"paper roll empty"}`,
	posfleet.ChannelFirmware:  `"ts":"2026-11-22T06:00:00+08:00","model":"A920","serial":"0820123456","firmware":"2.4.1","app":"pay-5.2.0","boot_reason":"update","update":{"target":"2.4.1","status":"installed"}}`,
}

// The collector takes publishes through SubmitTo.
var _ broker.CompletingSubmitter = (*collector.Collector)(nil)

// discardWriter is a store that takes every batch at once.
type discardWriter struct{}

func (discardWriter) WriteLines(context.Context, []byte) error { return nil }

// BenchmarkIngest measures a terminal's QoS 1 publishes from the bytes on
// its socket to the spooled entry and the PUBACK: mochi's framing, the
// policy hook, decoding and validation, the duplicate filter, line protocol,
// the spool's group commit with fsync, the acknowledgement, and the drain of
// the spool into batches for a store that takes them at once; the broker
// has its session store (a data dir), as in posfleet serve. One terminal
// writes windows of 32 publishes at a time, as a terminal flushing its
// offline store does, and reads their PUBACKs. Per message: ns/op, allocs/op
// (the whole process: broker, collector and the client, which allocates
// nothing per message) and cpu-ns/msg (user+system CPU of the process).
//
//	go test ./broker -run '^$' -bench Ingest -benchtime 20000x
func BenchmarkIngest(b *testing.B) {
	for _, ch := range []posfleet.Channel{posfleet.ChannelHeartbeat, posfleet.ChannelTxn, posfleet.ChannelFault, posfleet.ChannelFirmware} {
		b.Run(string(ch), func(b *testing.B) { benchIngest(b, ch) })
	}
}

func benchIngest(b *testing.B, ch posfleet.Channel) {
	copts := collector.DefaultOptions()
	copts.SpoolDir = b.TempDir()
	col, err := collector.New(copts, influxdb.Encoder{}, discardWriter{})
	if err != nil {
		b.Fatal(err)
	}
	e := &env{auth: newFakeAuth()}
	o := testOptions()
	o.RatePerSecond = -1    // measure the path, not the limiter
	o.DataDir = b.TempDir() // the session store's hooks, as in posfleet serve
	br, err := broker.New(o, e.auth, col, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = br.Close()
		_ = col.Close()
	})
	rc := dialRaw(b, br.TCPAddr().String(), 4)
	rc.connect(termA)

	const window = 32
	topic := posfleet.Topic(termA, ch)
	rest := ingestPayloads[ch]
	var (
		out  = make([]byte, 0, window*512)
		acks = make([]byte, 4*window)
		seq  int64
		id   uint16
	)
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n := min(window, b.N-sent)
		out = out[:0]
		for range n {
			seq++
			id++
			if id == 0 {
				id = 1
			}
			out = appendPublish(out, topic, id, seq, rest)
		}
		if _, err := rc.c.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rc.r, acks[:4*n]); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if a := acks[4*i:]; a[0] != 0x40 || a[1] != 2 {
				b.Fatalf("not a PUBACK: % x", a[:4])
			}
		}
		sent += n
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/msg")
}

// appendPublish encodes an MQTT 3.1.1 QoS 1 PUBLISH of the message with
// the given seq, as a terminal sends it.
func appendPublish(b []byte, topic string, id uint16, seq int64, rest string) []byte {
	var num [20]byte
	seqText := strconv.AppendInt(num[:0], seq, 10)
	payload := len(`{"seq":,`) + len(seqText) + len(rest)
	remaining := 2 + len(topic) + 2 + payload
	b = append(b, 0x32) // PUBLISH, QoS 1
	for {
		d := byte(remaining % 128)
		remaining /= 128
		if remaining > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if remaining == 0 {
			break
		}
	}
	b = append(b, byte(len(topic)>>8), byte(len(topic)))
	b = append(b, topic...)
	b = append(b, byte(id>>8), byte(id))
	b = append(b, `{"seq":`...)
	b = append(b, seqText...)
	b = append(b, ',')
	return append(b, rest...)
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
