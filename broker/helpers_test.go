package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/broker"
)

// Terminals of the tests. Secrets are made up per test run.
var (
	termA = posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0001"}
	termB = posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0002"}
	termC = posfleet.TerminalRef{Tenant: "globex", Terminal: "T-0001"}
)

func secretOf(ref posfleet.TerminalRef) string { return "s3cret-" + ref.Terminal + "-" + ref.Tenant }

// fakeAuth knows termA, termB and termC. A username listed in unavailable
// gets an error as if the registry were down.
type fakeAuth struct {
	secrets     map[string]string
	unavailable map[string]bool
}

func newFakeAuth() *fakeAuth {
	a := &fakeAuth{secrets: map[string]string{}, unavailable: map[string]bool{}}
	for _, r := range []posfleet.TerminalRef{termA, termB, termC} {
		a.secrets[r.String()] = secretOf(r)
	}
	return a
}

func (a *fakeAuth) Authenticate(ctx context.Context, username string, password []byte) (posfleet.TerminalRef, error) {
	if a.unavailable[username] {
		return posfleet.TerminalRef{}, fmt.Errorf("registry: %w", context.DeadlineExceeded)
	}
	s, ok := a.secrets[username]
	if !ok || s != string(password) {
		return posfleet.TerminalRef{}, errors.New("unknown terminal or wrong secret")
	}
	return posfleet.ParseClientID(username)
}

// accepted is one message the recording sink took.
type accepted struct {
	Ref     posfleet.TerminalRef
	Channel posfleet.Channel
	Payload string
}

// recSink records what it accepts. delay makes every Accept take that long;
// verdict, when set, decides per message (nil accepts).
type recSink struct {
	mu       sync.Mutex
	msgs     []accepted
	calls    int
	delay    time.Duration
	verdict  func(ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte) error
	returned time.Time // when the last successful Accept returned
}

func (s *recSink) Accept(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte) error {
	s.mu.Lock()
	s.calls++
	delay, verdict := s.delay, s.verdict
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if verdict != nil {
		if err := verdict(ref, ch, payload); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, accepted{ref, ch, string(payload)})
	s.returned = time.Now()
	return nil
}

func (s *recSink) set(delay time.Duration, verdict func(posfleet.TerminalRef, posfleet.Channel, []byte) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay, s.verdict = delay, verdict
}

func (s *recSink) all() []accepted {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]accepted(nil), s.msgs...)
}

func (s *recSink) of(ref posfleet.TerminalRef, ch posfleet.Channel) []string {
	var out []string
	for _, m := range s.all() {
		if m.Ref == ref && m.Channel == ch {
			out = append(out, m.Payload)
		}
	}
	return out
}

// recSecurity records security events.
type recSecurity struct {
	mu     sync.Mutex
	events []posfleet.SecurityEvent
}

func (r *recSecurity) RecordSecurity(ev posfleet.SecurityEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recSecurity) kind(k posfleet.SecurityKind) []posfleet.SecurityEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []posfleet.SecurityEvent
	for _, ev := range r.events {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// env is a running broker with its fakes.
type env struct {
	b      *broker.Broker
	sink   *recSink
	custom broker.Sink // used instead of sink when set
	sec    *recSecurity
	auth   *fakeAuth
	addr   string
}

// testLogger logs to stderr with POSFLEET_TEST_LOG=1, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("POSFLEET_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testOptions() broker.Options {
	o := broker.DefaultOptions()
	o.TCPAddr = "127.0.0.1:0"
	o.Logger = testLogger()
	return o
}

// start runs a broker on a free loopback port, closed at the end of the test.
func start(t testing.TB, mod func(*broker.Options)) *env {
	t.Helper()
	opts := testOptions()
	if mod != nil {
		mod(&opts)
	}
	e := &env{sink: &recSink{}, sec: &recSecurity{}, auth: newFakeAuth()}
	e.startWith(t, opts)
	return e
}

func (e *env) startWith(t testing.TB, opts broker.Options) {
	t.Helper()
	var sink broker.Sink = e.sink
	if e.custom != nil {
		sink = e.custom
	}
	b, err := broker.New(opts, e.auth, sink, e.sec)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	e.b = b
	e.addr = b.TCPAddr().String()
}

// client connects a paho (MQTT 3.1.1) client as ref with its secret.
func (e *env) client(t testing.TB, ref posfleet.TerminalRef, mod func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := e.dial(t, ref.String(), ref.String(), secretOf(ref), mod)
	if err != nil {
		t.Fatalf("connect %s: %v", ref, err)
	}
	return c
}

// dial connects a paho client with explicit credentials.
func (e *env) dial(t testing.TB, clientID, username, password string, mod func(*paho.ClientOptions)) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().
		AddBroker("tcp://" + e.addr).
		SetClientID(clientID).
		SetUsername(username).
		SetPassword(password).
		SetCleanSession(true).
		SetProtocolVersion(4). // else paho retries a refused CONNECT as MQTT 3.1
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second)
	if mod != nil {
		mod(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(0)
		}
	})
	return c, nil
}

// killable makes paho dial through a connection the test can cut without a
// DISCONNECT, as a terminal losing power or network would.
func killable(o *paho.ClientOptions) func() {
	var mu sync.Mutex
	var conn net.Conn
	o.SetCustomOpenConnectionFn(func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		c, err := net.Dial("tcp", uri.Host)
		mu.Lock()
		conn = c
		mu.Unlock()
		return c, err
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if conn != nil {
			_ = conn.Close()
		}
	}
}

// publish publishes and waits for the acknowledgement (QoS 1) or the write (QoS 0).
func publish(t testing.TB, c paho.Client, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("publish %s: no acknowledgement", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hb(seq int) string {
	return fmt.Sprintf(`{"seq":%d,"ts":"2025-01-02T03:04:05Z","uptime_s":%d}`, seq, 60*seq)
}

// rawClient speaks MQTT with mochi's packet codec, for MQTT 5 (which paho.mqtt.golang lacks)
// and for benchmarks that should measure the broker, not a client library.
type rawClient struct {
	t   testing.TB
	c   net.Conn
	r   *bufio.Reader
	ver byte
	id  uint16
}

func dialRaw(t testing.TB, addr string, ver byte) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawClient{t: t, c: c, r: bufio.NewReader(c), ver: ver}
}

func connectPacket(ver byte, clientID, username, password string, clean bool) packets.Packet {
	name := "MQTT"
	if ver == 3 {
		name = "MQIsdp"
	}
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: ver,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte(name),
			Clean:            clean,
			Keepalive:        30,
			ClientIdentifier: clientID,
			UsernameFlag:     true,
			Username:         []byte(username),
			PasswordFlag:     true,
			Password:         []byte(password),
		},
	}
}

func encode(t testing.TB, pk packets.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		t.Fatalf("encode: unsupported type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return buf.Bytes()
}

func (rc *rawClient) write(b []byte) {
	rc.t.Helper()
	_ = rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

func (rc *rawClient) send(pk packets.Packet) {
	rc.t.Helper()
	pk.ProtocolVersion = rc.ver
	rc.write(encode(rc.t, pk))
}

// read returns the next packet, or an error (io.EOF when the broker hung up).
func (rc *rawClient) read(timeout time.Duration) (packets.Packet, error) {
	_ = rc.c.SetReadDeadline(time.Now().Add(timeout))
	var pk packets.Packet
	b, err := rc.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(rc.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = rc.ver
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

func (rc *rawClient) expect(typ byte) packets.Packet {
	rc.t.Helper()
	pk, err := rc.read(5 * time.Second)
	if err != nil {
		rc.t.Fatalf("waiting for packet type %d: %v", typ, err)
	}
	if pk.FixedHeader.Type != typ {
		rc.t.Fatalf("got packet type %d, want %d", pk.FixedHeader.Type, typ)
	}
	return pk
}

func (rc *rawClient) connect(ref posfleet.TerminalRef) packets.Packet {
	rc.t.Helper()
	rc.send(connectPacket(rc.ver, ref.String(), ref.String(), secretOf(ref), true))
	return rc.expect(packets.Connack)
}

func (rc *rawClient) nextID() uint16 {
	rc.id++
	if rc.id == 0 {
		rc.id = 1
	}
	return rc.id
}

// sendQoS1 publishes without waiting for the acknowledgement.
func (rc *rawClient) sendQoS1(topic, payload string) uint16 {
	id := rc.nextID()
	rc.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic,
		Payload:     []byte(payload),
		PacketID:    id,
	})
	return id
}

// publish1 publishes with QoS 1 and returns the PUBACK.
func (rc *rawClient) publish1(topic, payload string) packets.Packet {
	rc.t.Helper()
	id := rc.sendQoS1(topic, payload)
	ack := rc.expect(packets.Puback)
	if ack.PacketID != id {
		rc.t.Fatalf("PUBACK for packet %d, want %d", ack.PacketID, id)
	}
	return ack
}

func (rc *rawClient) subscribe(filter string, qos byte) packets.Packet {
	rc.t.Helper()
	rc.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    rc.nextID(),
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	return rc.expect(packets.Suback)
}
