package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Load generators of the throughput scenario (-generator).
const (
	// generatorRaw: one TCP connection per terminal speaking MQTT 3.1.1 QoS 1
	// (PUBLISH encoded and PUBACK read by hand, without allocating), with the
	// publishes of a window written in one system call. It costs a fraction of the paho client's CPU, which
	// matters because the generator shares the machine's cores with the
	// system under test.
	generatorRaw = "raw"
	// generatorPaho: the paho client, one per terminal, as an application
	// would use it.
	generatorPaho = "paho"
)

// token is a publish's acknowledgement, as both generators report it.
type token interface {
	WaitTimeout(time.Duration) bool
	Done() <-chan struct{}
	Error() error
}

// pubClient is one terminal's MQTT connection.
type pubClient interface {
	// Publish sends a QoS 1 message; it may sit in a buffer until Flush.
	Publish(topic string, payload []byte) token
	// CopiesPayload tells whether Publish is done with the payload when it
	// returns, so that the caller may reuse it.
	CopiesPayload() bool
	Flush()
	Close()
}

// pahoClient adapts a connected paho client.
type pahoClient struct{ c mqtt.Client }

func (p pahoClient) Publish(topic string, payload []byte) token {
	return p.c.Publish(topic, 1, false, payload)
}
func (pahoClient) Flush()              {}
func (pahoClient) CopiesPayload() bool { return false }
func (p pahoClient) Close() {
	if p.c.IsConnected() {
		p.c.Disconnect(100)
	}
}

func dialPaho(addr, id, secret string) (pubClient, error) {
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(id).SetUsername(id).SetPassword(secret).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(30 * time.Second).SetKeepAlive(60 * time.Second).
		SetWriteTimeout(30 * time.Second).SetOrderMatters(false)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", id, tok.Error())
	}
	return pahoClient{c}, nil
}

// rawClient is the lean generator's connection: it keeps the publishes
// not yet acknowledged by packet ID and completes them as PUBACKs arrive.
type rawClient struct {
	conn net.Conn

	mu      sync.Mutex
	w       *bufio.Writer
	nextID  uint16
	pending map[uint16]*rawToken
	err     error // set once the connection failed
}

// rawToken is one publish waiting for its PUBACK.
type rawToken struct {
	done chan struct{}
	err  error
}

func (t *rawToken) WaitTimeout(d time.Duration) bool {
	select {
	case <-t.done: // mostly, in a window: no timer needed
		return true
	default:
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.done:
		return true
	case <-timer.C:
		return false
	}
}

func (t *rawToken) Done() <-chan struct{} { return t.done }

func (t *rawToken) Error() error { return t.err }

func dialRaw(addr, id, secret string) (pubClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", id, err)
	}
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion = "MQTT", 4
	cp.CleanSession, cp.Keepalive = true, 60
	cp.ClientIdentifier = id
	cp.UsernameFlag, cp.Username = true, id
	cp.PasswordFlag, cp.Password = true, []byte(secret)
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	if err := cp.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect %s: %w", id, err)
	}
	pk, err := packets.ReadPacket(r)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect %s: CONNACK: %w", id, err)
	}
	ack, ok := pk.(*packets.ConnackPacket)
	if !ok || ack.ReturnCode != packets.Accepted {
		conn.Close()
		return nil, fmt.Errorf("connect %s: refused: %v", id, pk)
	}
	_ = conn.SetDeadline(time.Time{})
	c := &rawClient{conn: conn, w: bufio.NewWriterSize(conn, 16<<10), pending: make(map[uint16]*rawToken)}
	go c.readAcks(r)
	return c, nil
}

// readAcks completes publishes as their PUBACKs arrive, until the
// connection ends; then it fails whatever is still pending. A PUBACK is
// read as its 4 bytes, without a packet object; any other packet (PINGRESP
// and the like) through paho's codec.
func (c *rawClient) readAcks(r *bufio.Reader) {
	var err error
	for {
		var hdr []byte
		if hdr, err = r.Peek(2); err != nil {
			break
		}
		if hdr[0] != packets.Puback<<4 || hdr[1] != 2 {
			if _, err = packets.ReadPacket(r); err != nil {
				break
			}
			continue
		}
		if hdr, err = r.Peek(4); err != nil {
			break
		}
		id := uint16(hdr[2])<<8 | uint16(hdr[3])
		_, _ = r.Discard(4)
		c.mu.Lock()
		t := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if t != nil {
			close(t.done)
		}
	}
	c.fail(fmt.Errorf("connection lost: %w", err))
}

func (c *rawClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	for id, t := range c.pending {
		t.err = c.err
		close(t.done)
		delete(c.pending, id)
	}
}

func (c *rawClient) Publish(topic string, payload []byte) token {
	t := &rawToken{done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		t.err = c.err
		close(t.done)
		return t
	}
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	if _, busy := c.pending[c.nextID]; busy {
		t.err = errors.New("packet ID still in flight")
		close(t.done)
		return t
	}
	c.pending[c.nextID] = t
	if err := c.writePublish(topic, c.nextID, payload); err != nil {
		delete(c.pending, c.nextID)
		t.err = err
		close(t.done)
	}
	return t
}

// CopiesPayload: Publish copies the payload into the write buffer.
func (c *rawClient) CopiesPayload() bool { return true }

// writePublish encodes an MQTT 3.1.1 QoS 1 PUBLISH into the write buffer
// (the bytes paho's packet codec writes, without its allocations).
func (c *rawClient) writePublish(topic string, id uint16, payload []byte) error {
	w := c.w
	_ = w.WriteByte(packets.Publish<<4 | 1<<1) // QoS 1
	for rem := 2 + len(topic) + 2 + len(payload); ; {
		d := byte(rem % 128)
		if rem /= 128; rem > 0 {
			d |= 0x80
		}
		_ = w.WriteByte(d)
		if rem == 0 {
			break
		}
	}
	_ = w.WriteByte(byte(len(topic) >> 8))
	_ = w.WriteByte(byte(len(topic)))
	_, _ = w.WriteString(topic)
	_ = w.WriteByte(byte(id >> 8))
	_ = w.WriteByte(byte(id))
	_, err := w.Write(payload)
	return err
}

func (c *rawClient) Flush() {
	c.mu.Lock()
	err := c.w.Flush()
	c.mu.Unlock()
	if err != nil {
		c.fail(err)
	}
}

func (c *rawClient) Close() {
	c.mu.Lock()
	_, _ = c.w.Write([]byte{packets.Disconnect << 4, 0})
	_ = c.w.Flush()
	c.mu.Unlock()
	_ = c.conn.Close()
}

// generatorDescription says in the report what the load generator was.
func generatorDescription(g string) string {
	if g == generatorPaho {
		return "in-process paho clients (one MQTT connection per terminal, QoS 1, clean session)"
	}
	return "in-process raw MQTT 3.1.1 publishers (one TCP connection per terminal, QoS 1, clean session, each window of publishes in one write, PUBLISH encoded and PUBACK read without allocating)"
}
