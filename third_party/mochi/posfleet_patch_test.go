// Tests of posfleet's patch to this copy of mochi (memory per
// connection): publishes handled by pointer, and a writer goroutine only
// while packets are queued.

package mqtt

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/stretchr/testify/require"
)

// markHook marks the payload, or fails without touching the packet.
type markHook struct {
	HookBase
	fail  bool
	calls int
}

func (h *markHook) ID() string { return "mark" }

func (h *markHook) Provides(b byte) bool { return b == OnPublish }

func (h *markHook) OnPublish(cl *Client, pk packets.Packet) (packets.Packet, error) {
	h.calls++
	if h.fail {
		return pk, errTestHook
	}
	pk.Payload = append([]byte("marked:"), pk.Payload...)
	return pk, nil
}

// valueHook changes the topic through the by-value OnPublish.
type valueHook struct {
	HookBase
	fail bool
}

func (h *valueHook) ID() string { return "value" }

func (h *valueHook) Provides(b byte) bool { return b == OnPublish }

func (h *valueHook) OnPublish(cl *Client, pk packets.Packet) (packets.Packet, error) {
	if h.fail {
		return pk, errTestHook
	}
	pk.TopicName = "changed"
	return pk, nil
}

func TestPatchOnPublishP(t *testing.T) {
	in := packets.Packet{TopicName: "a/b", Payload: []byte("x")}

	t.Run("hooks change the packet in place", func(t *testing.T) {
		h := &Hooks{Log: logger}
		ph := new(markHook)
		require.NoError(t, h.Add(ph, nil))
		require.NoError(t, h.Add(new(valueHook), nil))
		pk := in
		require.NoError(t, h.onPublishP(nil, &pk))
		require.Equal(t, 1, ph.calls)
		require.Equal(t, "marked:x", string(pk.Payload))
		require.Equal(t, "changed", pk.TopicName)
		// The by-value dispatcher gives the same packet.
		out, err := h.OnPublish(nil, in)
		require.NoError(t, err)
		require.Equal(t, pk, out)
	})

	t.Run("a failing hook leaves the packet as it came", func(t *testing.T) {
		h := &Hooks{Log: logger}
		require.NoError(t, h.Add(new(markHook), nil))
		require.NoError(t, h.Add(&valueHook{fail: true}, nil))
		pk := in
		require.ErrorIs(t, h.onPublishP(nil, &pk), errTestHook)
		require.Equal(t, in.TopicName, pk.TopicName)
		require.Equal(t, "x", string(pk.Payload))
	})

	t.Run("a failing first hook", func(t *testing.T) {
		h := &Hooks{Log: logger}
		require.NoError(t, h.Add(&markHook{fail: true}, nil))
		pk := in
		require.ErrorIs(t, h.onPublishP(nil, &pk), errTestHook)
		require.Equal(t, "x", string(pk.Payload))
	})
}

// TestPatchWriterOnDemand checks that a client has no writer goroutine
// until a packet is queued for it, and none once the queue is written.
func TestPatchWriterOnDemand(t *testing.T) {
	s := newServer()
	cl, r, w := newTestClient()
	defer w.Close()
	s.Clients.Add(cl)
	require.False(t, cl.State.writing.Load())

	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(r, buf, 1)
		if err != nil {
			got <- nil
			return
		}
		got <- buf[:n]
	}()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a/b", Payload: []byte("hello")}
	_, err := s.publishToClient(cl, packets.Subscription{Filter: "a/b"}, pk)
	require.NoError(t, err)
	select {
	case b := <-got:
		require.Contains(t, string(b), "hello")
	case <-time.After(5 * time.Second):
		t.Fatal("queued packet not written")
	}
	require.Eventually(t, func() bool { return !cl.State.writing.Load() }, 5*time.Second, 5*time.Millisecond, "writer still running with an empty queue")
}

func TestPatchSubscriptionsOneWithoutMap(t *testing.T) {
	s := NewSubscriptions()
	s.Add("a", packets.Subscription{Filter: "a", Qos: 0})
	s.Add("a", packets.Subscription{Filter: "a", Qos: 1}) // replaces
	require.Nil(t, s.internal)
	require.Equal(t, 1, s.Len())
	sub, ok := s.Get("a")
	require.True(t, ok)
	require.Equal(t, byte(1), sub.Qos)
	_, ok = s.Get("b")
	require.False(t, ok)
	s.Delete("b") // not there: nothing changes
	require.Equal(t, 1, s.Len())

	s.Add("b", packets.Subscription{Filter: "b"})
	s.Add("c", packets.Subscription{Filter: "c"})
	require.NotNil(t, s.internal)
	require.Equal(t, 3, s.Len())
	require.Equal(t, map[string]packets.Subscription{
		"a": {Filter: "a", Qos: 1}, "b": {Filter: "b"}, "c": {Filter: "c"},
	}, s.GetAll())

	s.Delete("a")
	s.Delete("c")
	require.Nil(t, s.internal, "back to one, without the map")
	require.Equal(t, map[string]packets.Subscription{"b": {Filter: "b"}}, s.GetAll())
	sub, ok = s.Get("b")
	require.True(t, ok)
	require.Equal(t, "b", sub.Filter)

	s.Delete("b")
	require.Equal(t, 0, s.Len())
	require.Empty(t, s.GetAll())
	_, ok = s.Get("b")
	require.False(t, ok)
}

func TestPatchOutboundQueueMadeAtFirstUse(t *testing.T) {
	s := newServer()
	cl := s.NewClient(nil, "t1", "c1", false)
	require.False(t, cl.State.outboundMade.Load(), "no queue for a new client")
	require.Nil(t, cl.State.outbound)
	require.Equal(t, 0, cl.outboundLen())

	// Made once, whoever comes first.
	queues := make(chan chan *packets.Packet, 8)
	for i := 0; i < 8; i++ {
		go func() { queues <- cl.outboundQueue() }()
	}
	first := <-queues
	for i := 0; i < 7; i++ {
		require.Equal(t, first, <-queues)
	}
	require.Equal(t, int(s.Options.Capabilities.MaximumClientWritesPending), cap(first))
	first <- new(packets.Packet)
	require.Equal(t, 1, cl.outboundLen())
}

func TestPatchParseConnectKeepsNoSliceOfThePacket(t *testing.T) {
	cl, _, _ := newTestClient()
	in := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: "client-1",
			UsernameFlag:     true,
			Username:         []byte("user"),
			PasswordFlag:     true,
			Password:         []byte("secret"),
			WillFlag:         true,
			WillTopic:        "will/topic",
			WillPayload:      []byte("will payload"),
			Keepalive:        30,
		},
	}
	var enc bytes.Buffer
	require.NoError(t, in.ConnectEncode(&enc))
	buf := enc.Bytes()[2:] // the fixed header is 2 bytes here
	pk := packets.Packet{ProtocolVersion: 4, FixedHeader: packets.FixedHeader{Type: packets.Connect, Remaining: len(buf)}}
	require.NoError(t, pk.ConnectDecode(buf))
	cl.ParseConnect("t1", pk)
	for i := range buf {
		buf[i] = 'x' // the packet's buffer, reused or collected
	}
	require.Equal(t, "client-1", cl.ID)
	require.Equal(t, "user", string(cl.Properties.Username))
	require.Equal(t, "will payload", string(cl.Properties.Will.Payload))
	require.Equal(t, "will/topic", cl.Properties.Will.TopicName)
}

// deadlineConn counts the deadlines set on it.
type deadlineConn struct {
	net.Conn
	sets []time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.sets = append(c.sets, t)
	return nil
}

// TestPatchRefreshDeadlineOncePerSlack checks that the read loop's deadline
// is set once for a run of packets, never nearer than 1.5 keepalives, and
// set again once it would be.
func TestPatchRefreshDeadlineOncePerSlack(t *testing.T) {
	cl, _, w := newTestClient()
	defer w.Close()
	dc := &deadlineConn{Conn: w}
	cl.Net.Conn = dc

	start := time.Now()
	for i := 0; i < 1000; i++ {
		cl.refreshDeadline(10)
	}
	require.Len(t, dc.sets, 1, "a run of packets sets the deadline once")
	require.False(t, dc.sets[0].Before(start.Add(15*time.Second)), "never nearer than 1.5 keepalives")
	require.False(t, dc.sets[0].After(time.Now().Add(15*time.Second+deadlineSlack)), "at most deadlineSlack later")

	// Once the deadline in place is nearer than 1.5 keepalives from now,
	// it is set again.
	cl.Net.deadline = time.Now().Add(15*time.Second - time.Millisecond)
	cl.refreshDeadline(10)
	require.Len(t, dc.sets, 2)
	require.False(t, dc.sets[1].Before(time.Now().Add(15*time.Second)))

	// A longer keepalive than the one in place sets it at once.
	cl.refreshDeadline(60)
	require.Len(t, dc.sets, 3)

	// No keepalive: no deadline, set once.
	cl.refreshDeadline(0)
	cl.refreshDeadline(0)
	require.Len(t, dc.sets, 4)
	require.True(t, dc.sets[3].IsZero())
	cl.refreshDeadline(10)
	require.Len(t, dc.sets, 5)
}

func TestPatchInflightTypeWithoutCopy(t *testing.T) {
	var i Inflight
	_, ok := i.getType(7)
	require.False(t, ok)
	i.Set(packets.Packet{PacketID: 7, FixedHeader: packets.FixedHeader{Type: packets.Pubrec}})
	typ, ok := i.getType(7)
	require.True(t, ok)
	require.Equal(t, packets.Pubrec, typ)
	_, ok = i.getType(8)
	require.False(t, ok)
}
