package broker_test

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/broker"
)

// nopSink accepts everything at once.
type nopSink struct{}

func (nopSink) Accept(context.Context, posfleet.TerminalRef, posfleet.Channel, []byte) error {
	return nil
}

// BenchmarkConnect measures a CONNECT and CONNACK round trip over TCP with an
// Authenticator answering from memory, as a cached registry does; the
// connection is then dropped. With a data dir the session is persistent, so
// the store's write cache is on the path.
func BenchmarkConnect(b *testing.B) {
	for _, bc := range []struct {
		name    string
		dataDir bool
		clean   bool
	}{
		{"memory", false, true},
		{"bolt-persistent-session", true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := &env{auth: newFakeAuth()}
			o := testOptions()
			if bc.dataDir {
				o.DataDir = b.TempDir()
			}
			benchStart(b, e, o, nopSink{})
			connect := encode(b, connectPacket(4, termA.String(), termA.String(), secretOf(termA), bc.clean))
			connack := make([]byte, 4) // MQTT 3.1.1 CONNACK: 0x20 0x02 flags code
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", e.addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(connect); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, connack); err != nil {
					b.Fatal(err)
				}
				if connack[0] != 0x20 || connack[3] != 0 {
					b.Fatalf("CONNACK % x", connack)
				}
				_ = c.Close()
			}
		})
	}
}

// BenchmarkPublishQoS1 measures sequential QoS 1 publishes of one terminal,
// each waiting for its PUBACK, with a Sink that returns at once.
func BenchmarkPublishQoS1(b *testing.B) {
	e := &env{auth: newFakeAuth()}
	o := testOptions()
	o.RatePerSecond = -1 // measure the broker, not the limiter
	benchStart(b, e, o, nopSink{})
	rc := dialRaw(b, e.addr, 4)
	rc.connect(termA)
	payload := []byte(`{"seq":1,"ts":"2025-01-02T03:04:05Z","uptime_s":3600,"battery_pct":80,"signal_dbm":-70,"net":"4g","paper":"ok"}`)
	topic := posfleet.Topic(termA, posfleet.ChannelHeartbeat)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := uint16(i%65535) + 1
		rc.send(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName:   topic,
			Payload:     payload,
			PacketID:    id,
		})
		if ack := rc.expect(packets.Puback); ack.PacketID != id {
			b.Fatalf("PUBACK %d, want %d", ack.PacketID, id)
		}
	}
}

func benchStart(b *testing.B, e *env, o broker.Options, sink broker.Sink) {
	b.Helper()
	br, err := broker.New(o, e.auth, sink, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Close() })
	e.b = br
	e.addr = br.TCPAddr().String()
}
