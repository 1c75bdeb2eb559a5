package broker_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/broker"
)

// heldSink is a Submitter that keeps every message's done until the test
// settles it, and refuses payloads containing "bad" at once.
type heldSink struct {
	recSink
	mu    sync.Mutex
	held  []func(error)
	added chan struct{}
}

func newHeldSink() *heldSink { return &heldSink{added: make(chan struct{}, 1024)} }

func (s *heldSink) Submit(_ context.Context, _ posfleet.TerminalRef, _ posfleet.Channel, payload []byte, done func(error)) error {
	if strings.Contains(string(payload), "bad") {
		return &posfleet.Rejection{Reason: posfleet.ReasonMissingField, Detail: "bad"}
	}
	s.mu.Lock()
	s.held = append(s.held, done)
	s.mu.Unlock()
	s.added <- struct{}{}
	return nil
}

// waitHeld waits until n messages are held.
func (s *heldSink) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.held)
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-s.added:
		case <-deadline:
			t.Fatalf("%d messages reached the sink, want %d", got, n)
		}
	}
}

func (s *heldSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// settle answers held message i (from 0).
func (s *heldSink) settle(i int, err error) {
	s.mu.Lock()
	done := s.held[i]
	s.mu.Unlock()
	done(err)
}

// completingHeldSink is a heldSink that also has SubmitTo (as the
// collector has): the broker then completes through a Completer.
type completingHeldSink struct{ *heldSink }

func (s completingHeldSink) SubmitTo(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte, to interface{ Complete(uint64, error) }, tag uint64) error {
	return s.Submit(ctx, ref, ch, payload, func(err error) { to.Complete(tag, err) })
}

var _ broker.CompletingSubmitter = completingHeldSink{}

// heldCompleting makes startHeld's sinks completingHeldSinks.
var heldCompleting bool

func startHeld(t *testing.T, mod func(*broker.Options)) (*heldSink, string) {
	t.Helper()
	opts := testOptions()
	if mod != nil {
		mod(&opts)
	}
	sink := newHeldSink()
	var custom broker.Sink = sink
	if heldCompleting {
		custom = completingHeldSink{sink}
	}
	e := &env{sink: &sink.recSink, custom: custom, sec: &recSecurity{}, auth: newFakeAuth()}
	e.startWith(t, opts)
	return sink, e.addr
}

// expectAcks reads PUBACKs and checks their packet IDs and reason codes, in order.
func (rc *rawClient) expectAcks(t *testing.T, ids []uint16, codes []byte) {
	t.Helper()
	for i, id := range ids {
		ack := rc.expect(packets.Puback)
		if ack.PacketID != id || ack.ReasonCode != codes[i] {
			t.Fatalf("acknowledgement %d: packet %d code %#x, want packet %d code %#x", i, ack.PacketID, ack.ReasonCode, id, codes[i])
		}
	}
}

// expectNothing checks that the broker sends nothing for a while.
func (rc *rawClient) expectNothing(t *testing.T, d time.Duration) {
	t.Helper()
	if pk, err := rc.read(d); err == nil {
		t.Fatalf("got packet type %d (id %d), want nothing yet", pk.FixedHeader.Type, pk.PacketID)
	}
	// The read deadline may have cut nothing: rc.r holds no partial packet
	// because the broker sent nothing.
}

// TestAsyncAcknowledgementCompleter is TestAsyncAcknowledgement with a Sink
// that completes through SubmitTo.
func TestAsyncAcknowledgementCompleter(t *testing.T) {
	heldCompleting = true
	defer func() { heldCompleting = false }()
	TestAsyncAcknowledgement(t)
}

func TestAsyncAcknowledgement(t *testing.T) {
	hbTopic := posfleet.Topic(termA, posfleet.ChannelHeartbeat)

	t.Run("acknowledged when stored, in arrival order, while the connection reads on", func(t *testing.T) {
		sink, addr := startHeld(t, nil)
		rc := dialRaw(t, addr, 4)
		rc.connect(termA)
		var ids []uint16
		for i := 1; i <= 5; i++ {
			ids = append(ids, rc.sendQoS1(hbTopic, hb(i)))
		}
		// All five reach the sink although none is stored: the read loop
		// did not wait for the first.
		sink.waitHeld(t, 5)
		rc.expectNothing(t, 200*time.Millisecond)

		sink.settle(2, nil)
		sink.settle(3, nil)
		rc.expectNothing(t, 200*time.Millisecond) // 1 and 2 are not stored yet
		sink.settle(0, nil)
		rc.expectAcks(t, ids[:1], []byte{0})
		sink.settle(1, nil)
		rc.expectAcks(t, ids[1:4], []byte{0, 0, 0})
		sink.settle(4, nil)
		rc.expectAcks(t, ids[4:], []byte{0})
	})

	t.Run("a refusal waits for the acknowledgements before it", func(t *testing.T) {
		for _, ver := range []byte{4, 5} {
			sink, addr := startHeld(t, nil)
			rc := dialRaw(t, addr, ver)
			rc.connect(termA)
			first := rc.sendQoS1(hbTopic, hb(1))
			bad := rc.sendQoS1(hbTopic, `{"bad":true}`)
			denied := rc.sendQoS1(posfleet.Topic(termB, posfleet.ChannelHeartbeat), hb(2))
			sink.waitHeld(t, 1)
			rc.expectNothing(t, 200*time.Millisecond)
			sink.settle(0, nil)
			codes := []byte{0, 0, 0} // MQTT 3.1.1: dropped messages are acknowledged
			if ver == 5 {
				codes = []byte{0, packets.ErrPayloadFormatInvalid.Code, packets.ErrNotAuthorized.Code}
			}
			rc.expectAcks(t, []uint16{first, bad, denied}, codes)
		}
	})

	t.Run("a message not stored is never acknowledged, nor anything after it", func(t *testing.T) {
		sink, addr := startHeld(t, nil)
		rc := dialRaw(t, addr, 4)
		rc.connect(termA)
		rc.sendQoS1(hbTopic, hb(1))
		rc.sendQoS1(hbTopic, hb(2))
		sink.waitHeld(t, 2)
		sink.settle(1, nil)
		sink.settle(0, errors.New("disk full"))
		// MQTT 3.1.1: the broker closes the connection so that the terminal
		// resends; no PUBACK comes first.
		pk, err := rc.read(5 * time.Second)
		if err == nil {
			t.Fatalf("got packet type %d (id %d), want the connection closed", pk.FixedHeader.Type, pk.PacketID)
		}
		if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("read: %v, want the connection closed", err)
		}
	})

	t.Run("at most ReceiveMaximum messages in the broker's hands", func(t *testing.T) {
		sink, addr := startHeld(t, func(o *broker.Options) { o.ReceiveMaximum = 3 })
		rc := dialRaw(t, addr, 4)
		rc.connect(termA)
		var ids []uint16
		for i := 1; i <= 5; i++ {
			ids = append(ids, rc.sendQoS1(hbTopic, hb(i)))
		}
		sink.waitHeld(t, 3)
		time.Sleep(200 * time.Millisecond)
		if n := sink.count(); n != 3 {
			t.Fatalf("%d messages reached the sink with 3 unacknowledged allowed", n)
		}
		sink.settle(0, nil)
		rc.expectAcks(t, ids[:1], []byte{0})
		sink.waitHeld(t, 4)
		for i := 1; i < 4; i++ {
			sink.settle(i, nil)
		}
		sink.waitHeld(t, 5)
		sink.settle(4, nil)
		rc.expectAcks(t, ids[1:], []byte{0, 0, 0, 0})
	})

	t.Run("status and fw go the same way, and nothing is retained", func(t *testing.T) {
		sink, addr := startHeld(t, nil)
		rc := dialRaw(t, addr, 4)
		rc.connect(termA)
		first := rc.sendQoS1(hbTopic, hb(1))
		status := rc.sendQoS1(posfleet.Topic(termA, posfleet.ChannelStatus), `{"online":true}`)
		sink.waitHeld(t, 2)
		rc.expectNothing(t, 200*time.Millisecond)
		sink.settle(1, nil)
		rc.expectNothing(t, 200*time.Millisecond)
		sink.settle(0, nil)
		rc.expectAcks(t, []uint16{first, status}, []byte{0, 0})
	})

	t.Run("QoS 2 is answered by mochi after the acknowledgements before it", func(t *testing.T) {
		sink, addr := startHeld(t, nil)
		rc := dialRaw(t, addr, 4)
		rc.connect(termA)
		first := rc.sendQoS1(hbTopic, hb(1))
		id := rc.nextID()
		rc.send(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2},
			TopicName:   posfleet.Topic(termA, posfleet.ChannelTxn),
			Payload:     []byte(`{"bad":true}`),
			PacketID:    id,
		})
		sink.waitHeld(t, 1)
		sink.settle(0, nil)
		rc.expectAcks(t, []uint16{first}, []byte{0})
		// The refused QoS 2 message is acknowledged by mochi, as ignored.
		pk, err := rc.read(5 * time.Second)
		if err != nil || pk.PacketID != id {
			t.Fatalf("answer to QoS 2 publish: type %d id %d, err %v", pk.FixedHeader.Type, pk.PacketID, err)
		}
	})
}
