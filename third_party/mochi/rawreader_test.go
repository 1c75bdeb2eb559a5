// SPDX-License-Identifier: MIT

//go:build unix

// Tests of posfleet's patch to this copy of mochi: a plain TCP client is read
// through a rawReader, which holds a pooled buffer only while it has unread
// bytes.

package mqtt

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"

	"github.com/stretchr/testify/require"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s := <-accepted
	require.NotNil(t, s)
	t.Cleanup(func() {
		_ = c.Close()
		_ = s.Close()
	})
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

// rawTestClient is a client reading from server through a rawReader with
// buffers of size bytes.
func rawTestClient(t *testing.T, server net.Conn, size int) (*Client, *rawReader) {
	t.Helper()
	cl := newClient(server, &ops{
		info:  new(system.Info),
		hooks: new(Hooks),
		log:   logger,
		options: &Options{
			Capabilities:                  NewDefaultServerCapabilities(),
			ClientNetReadBufferSize:       2048,
			ClientNetPooledReadBufferSize: size,
		},
	})
	cl.Properties.ProtocolVersion = 4
	rr, ok := cl.Net.bconn.(*rawReader)
	require.True(t, ok, "reader %T", cl.Net.bconn)
	return cl, rr
}

// encodePublish returns a QoS 1 PUBLISH of payload.
func encodePublish(t *testing.T, id uint16, payload []byte) []byte {
	t.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:       "a/b/c",
		PacketID:        id,
		Payload:         payload,
		ProtocolVersion: 4,
	}
	var buf bytes.Buffer
	require.NoError(t, pk.PublishEncode(&buf))
	return buf.Bytes()
}

// readPublish reads one packet from cl and checks it is the publish id of payload.
func readPublish(t *testing.T, cl *Client, id uint16, payload []byte) {
	t.Helper()
	var fh packets.FixedHeader
	require.NoError(t, cl.ReadFixedHeader(&fh))
	pk, err := cl.ReadPacket(&fh)
	require.NoError(t, err)
	require.Equal(t, packets.Publish, pk.FixedHeader.Type)
	require.Equal(t, id, pk.PacketID)
	require.Equal(t, "a/b/c", pk.TopicName)
	require.Equal(t, payload, pk.Payload)
}

func TestRawReaderChosenForPlainTCPOnly(t *testing.T) {
	server, _ := tcpPair(t)
	o := &Options{ClientNetReadBufferSize: 2048, ClientNetPooledReadBufferSize: 4096}

	_, ok := newPacketReader(server, o).(*rawReader)
	require.True(t, ok, "plain TCP")

	_, ok = newPacketReader(tls.Server(server, &tls.Config{}), o).(*bufio.Reader)
	require.True(t, ok, "TLS reads through TLS")

	_, ok = newPacketReader(noSocketConn{server}, o).(*bufio.Reader)
	require.True(t, ok, "a wrapper whose SyscallConn fails")

	p, _ := net.Pipe()
	defer p.Close()
	_, ok = newPacketReader(p, o).(*bufio.Reader)
	require.True(t, ok, "a pipe")

	_, ok = newPacketReader(server, &Options{ClientNetReadBufferSize: 2048, ClientNetPooledReadBufferSize: -1}).(*bufio.Reader)
	require.True(t, ok, "disabled")

	opts := &Options{}
	opts.ensureDefaults()
	require.Equal(t, defaultPooledReadBufferSize, opts.ClientNetPooledReadBufferSize)
}

// noSocketConn is a connection wrapper that cannot give its socket.
type noSocketConn struct{ net.Conn }

func (noSocketConn) SyscallConn() (syscall.RawConn, error) {
	return nil, errors.New("no socket")
}

func TestRawReaderWindowInOneRead(t *testing.T) {
	server, client := tcpPair(t)
	cl, rr := rawTestClient(t, server, 4096)

	var window []byte
	for i := 1; i <= 8; i++ {
		window = append(window, encodePublish(t, uint16(i), []byte(strings.Repeat("x", 100)))...)
	}
	_, err := client.Write(window)
	require.NoError(t, err)

	require.Nil(t, rr.buf, "no buffer before data")
	readPublish(t, cl, 1, []byte(strings.Repeat("x", 100)))
	// The rest of the window arrived in the same read (loopback delivers a
	// small write whole) and stays in the buffer until consumed.
	require.NotNil(t, rr.buf)
	for i := 2; i <= 8; i++ {
		readPublish(t, cl, uint16(i), []byte(strings.Repeat("x", 100)))
	}
	require.Nil(t, rr.buf, "the drained buffer went back to the pool")
	require.Equal(t, 0, rr.r)
	require.Equal(t, 0, rr.w)
}

func TestRawReaderPartialPackets(t *testing.T) {
	server, client := tcpPair(t)
	cl, rr := rawTestClient(t, server, 4096)
	payload := []byte("heartbeat payload")
	stream := append(encodePublish(t, 7, payload), encodePublish(t, 8, payload)...)

	// The packets arrive a few bytes at a time, the second one's first
	// bytes with the first one's last.
	go func() {
		from := 0
		for _, to := range []int{1, 2, 5, len(stream)/2 + 1, len(stream)} {
			_, _ = client.Write(stream[from:to])
			from = to
			time.Sleep(20 * time.Millisecond)
		}
	}()
	readPublish(t, cl, 7, payload)
	readPublish(t, cl, 8, payload)
	require.Nil(t, rr.buf)
}

// TestRawReaderHoldsOnlyUnreadBytes: the buffer is held while it has unread
// bytes, given back when they are consumed, and a partial read waits for
// more without one.
func TestRawReaderHoldsOnlyUnreadBytes(t *testing.T) {
	server, client := tcpPair(t)
	_, rr := rawTestClient(t, server, 4096)
	_, err := client.Write([]byte{1, 2, 3})
	require.NoError(t, err)

	b, err := rr.ReadByte()
	require.NoError(t, err)
	require.Equal(t, byte(1), b)
	require.NotNil(t, rr.buf)
	p := make([]byte, 8)
	n, err := rr.Read(p)
	require.NoError(t, err)
	require.Equal(t, []byte{2, 3}, p[:n])
	require.Nil(t, rr.buf)

	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = client.Write([]byte{4, 5})
	}()
	n, err = io.ReadFull(rr, p[:2])
	require.NoError(t, err)
	require.Equal(t, []byte{4, 5}, p[:n])
	require.Nil(t, rr.buf)

	// A read of at least a buffer's size goes straight into the caller's
	// slice.
	big := make([]byte, 4096)
	_, err = client.Write([]byte{6, 7, 8})
	require.NoError(t, err)
	n, err = rr.Read(big)
	require.NoError(t, err)
	require.Equal(t, []byte{6, 7, 8}, big[:n])
	require.Nil(t, rr.buf)
}

func TestRawReaderPacketLargerThanBuffer(t *testing.T) {
	server, client := tcpPair(t)
	cl, rr := rawTestClient(t, server, 64)
	big := bytes.Repeat([]byte("0123456789"), 1000) // 10 KB through 64-byte buffers
	small := []byte("after")
	go func() {
		_, _ = client.Write(append(encodePublish(t, 1, big), encodePublish(t, 2, small)...))
	}()
	readPublish(t, cl, 1, big)
	readPublish(t, cl, 2, small)
	require.Nil(t, rr.buf)
}

func TestRawReaderEOF(t *testing.T) {
	server, client := tcpPair(t)
	cl, rr := rawTestClient(t, server, 4096)
	pub := encodePublish(t, 1, []byte("x"))
	_, err := client.Write(pub)
	require.NoError(t, err)
	require.NoError(t, client.Close())

	readPublish(t, cl, 1, []byte("x"))
	var fh packets.FixedHeader
	require.ErrorIs(t, cl.ReadFixedHeader(&fh), io.EOF)
	require.Nil(t, rr.buf)

	// EOF in the middle of a packet.
	server2, client2 := tcpPair(t)
	cl2, _ := rawTestClient(t, server2, 4096)
	_, err = client2.Write(pub[:len(pub)-1])
	require.NoError(t, err)
	require.NoError(t, client2.Close())
	require.NoError(t, cl2.ReadFixedHeader(&fh))
	_, err = cl2.ReadPacket(&fh)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestRawReaderDeadlineWhileWaiting(t *testing.T) {
	server, _ := tcpPair(t)
	cl, rr := rawTestClient(t, server, 4096)
	require.NoError(t, server.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	var fh packets.FixedHeader
	err := cl.ReadFixedHeader(&fh)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout())
	require.Contains(t, err.Error(), "read tcp")
	require.Contains(t, err.Error(), "i/o timeout")
	require.Nil(t, rr.buf)
}

func TestRawReaderCloseWhileWaiting(t *testing.T) {
	server, _ := tcpPair(t)
	cl, _ := rawTestClient(t, server, 4096)
	go func() {
		time.Sleep(30 * time.Millisecond)
		cl.Stop(errClientStop)
	}()
	var fh packets.FixedHeader
	require.ErrorIs(t, cl.ReadFixedHeader(&fh), net.ErrClosed)
}

func TestRawReaderPeerReset(t *testing.T) {
	server, client := tcpPair(t)
	cl, _ := rawTestClient(t, server, 4096)
	require.NoError(t, client.SetLinger(0)) // close with a RST
	_, err := client.Write([]byte{0x30})
	require.NoError(t, err)
	require.NoError(t, client.Close())
	var fh packets.FixedHeader
	err = cl.ReadFixedHeader(&fh)
	if err != nil && !errors.Is(err, io.EOF) { // the byte may be lost with the reset
		require.ErrorIs(t, err, syscall.ECONNRESET)
		require.Contains(t, err.Error(), "read tcp")
	}
}

// TestRawReaderServer runs a server on a TCP listener: a client's CONNECT
// and a window of QoS 1 publishes written at once are read through the
// rawReader and acknowledged.
func TestRawReaderServer(t *testing.T) {
	s := New(&Options{
		Logger:                        logger,
		Capabilities:                  NewDefaultServerCapabilities(),
		ClientNetPooledReadBufferSize: 512, // a window spans several reads
	})
	require.NoError(t, s.AddHook(new(AllowHook), nil))
	l := listeners.NewTCP(listeners.Config{ID: "t1", Address: "127.0.0.1:0"})
	require.NoError(t, s.AddListener(l))
	require.NoError(t, s.Serve())
	defer s.Close()

	c, err := net.Dial("tcp", l.Address())
	require.NoError(t, err)
	defer c.Close()
	connect := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            true,
			Keepalive:        30,
			ClientIdentifier: "raw",
		},
	}
	var buf bytes.Buffer
	require.NoError(t, connect.ConnectEncode(&buf))
	const n = 40
	for i := 1; i <= n; i++ {
		buf.Write(encodePublish(t, uint16(i), bytes.Repeat([]byte("p"), 200)))
	}
	_, err = c.Write(buf.Bytes())
	require.NoError(t, err)

	r := bufio.NewReader(c)
	connack := make([]byte, 4)
	_, err = io.ReadFull(r, connack)
	require.NoError(t, err)
	require.Equal(t, []byte{0x20, 2, 0, 0}, connack)
	for i := 1; i <= n; i++ {
		ack := make([]byte, 4)
		_, err = io.ReadFull(r, ack)
		require.NoError(t, err)
		require.Equal(t, []byte{0x40, 2, byte(i >> 8), byte(i)}, ack)
	}
	cl, ok := s.Clients.Get("raw")
	require.True(t, ok)
	_, ok = cl.Net.bconn.(*rawReader)
	require.True(t, ok, "reader %T", cl.Net.bconn)
}
