package broker_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/broker"
)

// TestIdleConnectionOneGoroutine checks the per-connection memory patch of
// third_party/mochi: a connected terminal that is not being written to
// costs one goroutine (its read loop), not two (mochi's WriteLoop waited for
// the whole connection); a writer runs only while a packet is queued for
// it, so a command still reaches the terminal, and the writer ends once
// the queue is empty.
func TestIdleConnectionOneGoroutine(t *testing.T) {
	e := start(t, func(o *broker.Options) { o.RatePerSecond = -1 })
	settle := func() int {
		// Goroutines that end on their own (an acknowledgement writer, a
		// finished connect) need a moment; the count is read once stable.
		n := runtime.NumGoroutine()
		for range 50 {
			time.Sleep(20 * time.Millisecond)
			m := runtime.NumGoroutine()
			if m == n {
				break
			}
			n = m
		}
		return n
	}
	base := settle()
	var clients []*rawClient
	for _, ref := range []posfleet.TerminalRef{termA, termB, termC} {
		rc := dialRaw(t, e.addr, 4)
		rc.connect(ref)
		if ack := rc.subscribe(posfleet.Topic(ref, posfleet.ChannelCommand), 1); ack.ReasonCodes[0] != 1 {
			t.Fatalf("SUBACK %v", ack.ReasonCodes)
		}
		rc.publish1(posfleet.Topic(ref, posfleet.ChannelHeartbeat), hb(1))
		clients = append(clients, rc)
	}
	eventually(t, 5*time.Second, "one goroutine per idle connection", func() bool {
		return runtime.NumGoroutine()-base <= len(clients)
	})

	cmd := posfleet.Command{ID: "c-idle", Type: posfleet.CmdReboot}
	if err := e.b.SendCommand(context.Background(), termA, cmd); err != nil {
		t.Fatalf("SendCommand: %v", err)
	}
	pk := clients[0].expect(packets.Publish)
	if pk.TopicName != posfleet.Topic(termA, posfleet.ChannelCommand) || pk.FixedHeader.Qos != 1 {
		t.Fatalf("got %s QoS %d", pk.TopicName, pk.FixedHeader.Qos)
	}
	clients[0].send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	eventually(t, 5*time.Second, "the command's writer ended", func() bool {
		return runtime.NumGoroutine()-base <= len(clients)
	})
}
