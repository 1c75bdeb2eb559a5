package broker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"testing"
	"unsafe"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/broker"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/influxdb"
)

// manyAuth admits every terminal of tenant "acme" whose secret is its name.
type manyAuth struct{}

func (manyAuth) Authenticate(_ context.Context, username string, password []byte) (posfleet.TerminalRef, error) {
	ref, err := posfleet.ParseClientID(username)
	if err != nil || string(password) != ref.Terminal {
		return posfleet.TerminalRef{}, fmt.Errorf("refused")
	}
	return ref, nil
}

// BenchmarkConnectionMemory measures what one connected terminal costs the
// broker and the collector: b.N terminals connect (MQTT 3.1.1, clean
// session), subscribe to their cmd topic and publish a heartbeat each, as a
// fleet does; then, after two garbage collections (which shrink goroutine
// stacks), it reports per terminal the goroutine stack bytes, the live heap
// bytes and the goroutines. The client side is raw sockets without
// goroutines, so nearly all of it is the server's. heap-B/conn includes
// fixed costs shared by all terminals, such as the spool's tail-segment
// buffer (a segment, 8 MiB, once something is spooled): 4 KiB of it at
// 2,000 terminals, 0.5 KiB at 15,000.
//
//	go test ./broker -run '^$' -bench ConnectionMemory -benchtime 2000x
//
// With POSFLEET_CONNMEM_HEAPPROFILE=PATH it also writes the live heap while
// the terminals are connected, sampled finely, for
// go tool pprof -sample_index=inuse_space -top PATH.
func BenchmarkConnectionMemory(b *testing.B) {
	heapProfile := os.Getenv("POSFLEET_CONNMEM_HEAPPROFILE")
	if heapProfile != "" {
		runtime.MemProfileRate = 64
	}
	addr := startFleetBroker(b)

	before := memNow()
	b.ResetTimer()
	conns, refs := connectFleet(b, addr, b.N)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	buf := make([]byte, 64)
	// Every terminal publishes a heartbeat, the garbage collector off so
	// that no stack is shrunk meanwhile: the stacks as a publish leaves them.
	connected := memNow()
	gc := debug.SetGCPercent(-1)
	for i, c := range conns {
		pub := appendPublish(nil, posfleet.Topic(refs[i], posfleet.ChannelHeartbeat), 1, 1, ingestPayloads[posfleet.ChannelHeartbeat])
		if _, err := c.Write(pub); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:4]); err != nil || buf[0] != 0x40 {
			b.Fatalf("PUBACK % x: %v", buf[:4], err)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.SetGCPercent(gc)
	b.StopTimer()
	after := memNow()
	n := float64(b.N)
	// Stacks grow while a packet is handled and shrink only at a garbage
	// collection that finds them mostly unused: what an idle fleet holds
	// lies between stack-B/conn and stack-B/conn-after-publish, depending
	// on how often the heap is collected compared with how often
	// terminals publish.
	b.ReportMetric(float64(connected.stack-before.stack)/n, "stack-B/conn-connected")
	b.ReportMetric(float64(ms.StackInuse-before.stack)/n, "stack-B/conn-after-publish")
	b.ReportMetric(float64(after.stack-before.stack)/n, "stack-B/conn")
	b.ReportMetric(float64(after.heap-before.heap)/n, "heap-B/conn")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/n, "goroutines/conn")
	if heapProfile != "" {
		// The live heap by allocation site, the terminals still connected:
		// go tool pprof -sample_index=inuse_space -top PATH
		f, err := os.Create(heapProfile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIdleConnectionStack: an idle plain TCP connection's goroutine, parked
// in mochi's read loop, fits a 4 KiB stack after garbage collections (the
// collector halves a stack only when less than a quarter is in use, so a few
// hundred bytes more in the frames under the read loop double it), and a
// connection has one goroutine.
func TestIdleConnectionStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation makes frames larger")
	}
	addr := startFleetBroker(t)
	const n = 300
	before := memNow()
	conns, _ := connectFleet(t, addr, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	after := memNow()
	perConn := float64(after.stack-before.stack) / n
	t.Logf("stack per idle connection: %.0f bytes", perConn)
	if perConn > 5*1024 {
		t.Errorf("stack per idle connection %.0f bytes, want 4 KiB", perConn)
	}
	if g := float64(after.goroutines-before.goroutines) / n; g > 1.05 {
		t.Errorf("%.2f goroutines per connection, want 1", g)
	}
}

// startFleetBroker starts a broker with a collector that spools to a
// store taking everything, and returns its TCP address.
func startFleetBroker(tb testing.TB) string {
	tb.Helper()
	copts := collector.DefaultOptions()
	copts.SpoolDir = tb.TempDir()
	col, err := collector.New(copts, influxdb.Encoder{}, discardWriter{})
	if err != nil {
		tb.Fatal(err)
	}
	o := testOptions()
	o.DataDir = tb.TempDir()
	br, err := broker.New(o, manyAuth{}, col, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := br.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = br.Close()
		_ = col.Close()
	})
	return br.TCPAddr().String()
}

// connectFleet connects n terminals (MQTT 3.1.1, clean session), each
// subscribed to its cmd topic, through raw sockets.
func connectFleet(tb testing.TB, addr string, n int) ([]net.Conn, []posfleet.TerminalRef) {
	tb.Helper()
	conns := make([]net.Conn, 0, n)
	refs := make([]posfleet.TerminalRef, n)
	buf := make([]byte, 64)
	for i := range n {
		ref := posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%06d", i)}
		refs[i] = ref
		c, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
		connect := encode(tb, connectPacket(4, ref.String(), ref.String(), ref.Terminal, true))
		if _, err := c.Write(connect); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:4]); err != nil || buf[3] != 0 {
			tb.Fatalf("CONNACK % x: %v", buf[:4], err)
		}
		// SUBSCRIBE to the cmd topic, QoS 1.
		topic := posfleet.Topic(ref, posfleet.ChannelCommand)
		sub := append([]byte{0x82, byte(2 + 2 + len(topic) + 1), 0, 1, 0, byte(len(topic))}, topic...)
		sub = append(sub, 1)
		if _, err := c.Write(sub); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:5]); err != nil || buf[0] != 0x90 {
			tb.Fatalf("SUBACK % x: %v", buf[:5], err)
		}
	}
	return conns, refs
}

type memFigures struct {
	stack, heap uint64
	goroutines  int
}

// memNow collects garbage twice (the second shrinks the stacks the first
// found oversized) and returns the stack and live heap in use.
func memNow() memFigures {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{stack: ms.StackInuse, heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine()}
}

// refSink records where the strings of each ref and channel it is given
// point.
type refSink struct {
	mu   sync.Mutex
	ptrs [][3]*byte
}

func (s *refSink) Accept(_ context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, _ []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ptrs = append(s.ptrs, [3]*byte{unsafe.StringData(ref.Tenant), unsafe.StringData(ref.Terminal), unsafe.StringData(string(ch))})
	return nil
}

// TestSinkStringsNotFromThePacket: the terminal and channel handed to the
// Sink are not slices of the packet's buffer (mochi decodes the topic
// without copying), which the Sink would keep alive by keeping them, as the
// collector does with the terminal, as a map key, for as long as the
// terminal is known: the same strings come with every message.
func TestSinkStringsNotFromThePacket(t *testing.T) {
	sink := &refSink{}
	o := testOptions()
	br, err := broker.New(o, newFakeAuth(), sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	rc := dialRaw(t, br.TCPAddr().String(), 4)
	rc.connect(termA)
	for i := range 2 {
		rc.write(appendPublish(nil, posfleet.Topic(termA, posfleet.ChannelHeartbeat), uint16(i+1), int64(i+1), ingestPayloads[posfleet.ChannelHeartbeat]))
		rc.expect(packets.Puback)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.ptrs) != 2 {
		t.Fatalf("sink got %d messages, want 2", len(sink.ptrs))
	}
	if sink.ptrs[0] != sink.ptrs[1] {
		t.Errorf("the strings of the two messages differ (%v, %v): slices of each packet", sink.ptrs[0], sink.ptrs[1])
	}
}
