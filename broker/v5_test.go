package broker_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/broker"
)

// paho.mqtt.golang speaks MQTT 3.1.1 only, so MQTT 5 is tested with a raw
// client built on mochi's packet codec.
func TestMQTT5(t *testing.T) {
	e := start(t, nil)
	e.sink.set(0, func(_ posfleet.TerminalRef, _ posfleet.Channel, p []byte) error {
		switch string(p) {
		case "garbage":
			return &posfleet.Rejection{Reason: posfleet.ReasonNotJSON}
		case "fail":
			return errors.New("spool: disk full")
		}
		return nil
	})

	t.Run("bad password", func(t *testing.T) {
		rc := dialRaw(t, e.addr, 5)
		rc.send(connectPacket(5, termA.String(), termA.String(), "wrong", true))
		if ack := rc.expect(packets.Connack); ack.ReasonCode != packets.ErrBadUsernameOrPassword.Code {
			t.Errorf("CONNACK reason %#x, want 0x86", ack.ReasonCode)
		}
	})

	rc := dialRaw(t, e.addr, 5)
	if ack := rc.connect(termA); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK reason %#x", ack.ReasonCode)
	}
	own := posfleet.Topic(termA, posfleet.ChannelHeartbeat)

	tests := []struct {
		name, topic, payload string
		want                 byte
	}{
		{"accepted", own, hb(1), 0x00},
		{"another terminal", posfleet.Topic(termB, posfleet.ChannelHeartbeat), hb(2), packets.ErrNotAuthorized.Code},
		{"own cmd", posfleet.Topic(termA, posfleet.ChannelCommand), hb(3), packets.ErrNotAuthorized.Code},
		{"$SYS", "$SYS/x", hb(3), packets.ErrNotAuthorized.Code},
		{"wildcard", "fleet/v1/acme/#", hb(3), packets.ErrNotAuthorized.Code},
		{"rejected by sink", own, "garbage", packets.ErrPayloadFormatInvalid.Code},
		{"accepted after refusals", own, hb(4), 0x00},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ack := rc.publish1(tt.topic, tt.payload); ack.ReasonCode != tt.want {
				t.Errorf("PUBACK reason %#x, want %#x", ack.ReasonCode, tt.want)
			}
		})
	}
	if got := e.sink.of(termA, posfleet.ChannelHeartbeat); strings.Join(got, "|") != hb(1)+"|"+hb(4) {
		t.Errorf("sink has %q", got)
	}
	if evs := e.sec.kind(posfleet.SecurityPublishDenied); len(evs) != 4 || evs[2].Topic != "$SYS/x" {
		t.Errorf("acl_publish_denied events %+v, want 4, the third for $SYS/x", evs)
	}

	t.Run("subscribe", func(t *testing.T) {
		if ack := rc.subscribe(posfleet.Topic(termB, posfleet.ChannelCommand), 1); len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != packets.ErrNotAuthorized.Code {
			t.Errorf("SUBACK for another's cmd: %#v, want 0x87", ack.ReasonCodes)
		}
		if ack := rc.subscribe(posfleet.Topic(termA, posfleet.ChannelCommand), 1); len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != 1 {
			t.Errorf("SUBACK for own cmd: %#v, want 1", ack.ReasonCodes)
		}
	})

	t.Run("QoS 0 denied silently", func(t *testing.T) {
		rc.send(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish},
			TopicName:   posfleet.Topic(termB, posfleet.ChannelHeartbeat),
			Payload:     []byte(hb(5)),
		})
		if ack := rc.publish1(own, hb(6)); ack.ReasonCode != 0 {
			t.Errorf("next PUBACK reason %#x", ack.ReasonCode)
		}
		for _, m := range e.sink.all() {
			if m.Ref != termA {
				t.Errorf("denied QoS 0 message in sink: %+v", m)
			}
		}
	})

	t.Run("sink failure", func(t *testing.T) {
		rc.send(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName:   own,
			Payload:     []byte("fail"),
			PacketID:    rc.nextID(),
		})
		pk, err := rc.read(5 * time.Second)
		if err != nil {
			t.Fatalf("read: %v, want DISCONNECT", err)
		}
		if pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrServerBusy.Code {
			t.Fatalf("got packet type %d reason %#x, want DISCONNECT 0x89", pk.FixedHeader.Type, pk.ReasonCode)
		}
		if _, err := rc.read(5 * time.Second); !errors.Is(err, io.EOF) {
			t.Errorf("after DISCONNECT: %v, want EOF", err)
		}
	})
}

// TestLogsCarryNoPayload publishes a card number where it is refused and
// checks it reaches no log line, even at debug level where mochi logs whole
// packets.
func TestLogsCarryNoPayload(t *testing.T) {
	var logs syncBuffer
	e := start(t, func(o *broker.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	const pan = "4111111111111111" // the well-known public test card number
	e.sink.set(0, func(_ posfleet.TerminalRef, _ posfleet.Channel, p []byte) error {
		if strings.Contains(string(p), pan) {
			return &posfleet.Rejection{Reason: posfleet.ReasonCardData, Field: "memo"}
		}
		return nil
	})
	rc := dialRaw(t, e.addr, 5)
	rc.connect(termA)
	payload := `{"seq":1,"ts":"2025-01-02T03:04:05Z","memo":"` + pan + `"}`
	rc.publish1(posfleet.Topic(termA, posfleet.ChannelTxn), payload)
	rc.publish1(posfleet.Topic(termB, posfleet.ChannelTxn), payload)
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, pan) {
		t.Errorf("card number in logs:\n%s", out)
	}
	if !strings.Contains(out, "payload_bytes=") {
		t.Errorf("no redacted packet in logs, the test did not exercise mochi's packet logging:\n%s", out)
	}
	if strings.Contains(out, "level=ERROR") {
		t.Errorf("refused publishes logged as errors:\n%s", out)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
