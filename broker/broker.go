// Package broker is posfleet's embedded MQTT broker (PROTOCOL.md §1), built on
// mochi-mqtt. It authenticates terminals, enforces the topic ACL, hands every
// accepted uplink message to a Sink before acknowledging it, turns last wills
// into offline status messages, and delivers commands to terminals, queued in
// persistent sessions while they are offline.
//
// The broker knows nothing of the registry or the collector: it declares the
// small interfaces it consumes (Authenticator, Sink, SecurityRecorder) and the
// server wires them up. Only this package imports mochi.
//
// Choices where PROTOCOL.md leaves room:
//
//   - A CONNECT is refused with "bad username or password" (MQTT 3.1.1 return
//     code 4, MQTT 5 reason 0x86) for an unknown terminal, a wrong secret, a
//     username that is not {tenant}:{terminal} and a client ID other than the
//     username. When the Authenticator cannot decide (registry down) the
//     answer is "server unavailable" (3 / 0x88), so terminals retry instead
//     of reporting bad credentials.
//   - A CONNECT from a source address or for a username over its budget of
//     failed attempts (see SourceAuthenticator) is refused at once with
//     "connection rate exceeded" (MQTT 5 reason 0x9F; MQTT 3.1.1 return code
//     3, server unavailable, the only code a client takes as "retry later").
//   - A last will on any topic but the terminal's own status topic is dropped
//     and recorded as will_denied; the connection is accepted. Will delays are
//     ignored: the server wants to know at once.
//   - A denied or rejected publish is acknowledged and dropped for MQTT 3.1.1
//     and QoS 0; an MQTT 5 terminal gets PUBACK reason 0x87 (not authorized)
//     or 0x99 (payload format invalid). The connection stays either way.
//     A publish to $SYS/... or to a topic with wildcards, which mochi would
//     drop unacknowledged and unseen, is denied the same way.
//   - When the Sink cannot store a message, the terminal is disconnected
//     without an acknowledgement (MQTT 5: DISCONNECT 0x89 server busy), so it
//     resends after reconnecting.
//   - Nothing is retained, whatever retain flag a terminal set (PROTOCOL.md
//     has status and fw published retained): no client may subscribe to
//     uplink topics, so a retained copy could never be read, and every
//     terminal's latest status and fw are in the health engine and
//     InfluxDB. Uplink messages are never forwarded either.
//   - Commands reach terminals that subscribed to their cmd topic; those with
//     a persistent session (MQTT 3.1.1 clean session false, MQTT 5 session
//     expiry > 0) get them after an absence, across broker restarts when a
//     DataDir is set. SendCommand reports ErrNoSession for the others.
package broker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"github.com/posfleet/posfleet"
)

// Authenticator checks a terminal's CONNECT credentials.
//
// It returns the terminal the credentials belong to, or an error when they are
// refused. An error that is a context error, or that has a method
// Temporary() bool returning true, means the check could not be made (the
// registry is unavailable): the terminal is then told "server unavailable"
// instead of "bad username or password", and no security event is recorded.
// An error with a method Throttled() bool returning true means the attempt
// was refused without checking the secret, because its source or username
// failed too often: the terminal is told "connection rate exceeded" (MQTT 5
// 0x9F; MQTT 3.1.1 has no such code and gets "server unavailable", 3), so
// that it retries later, and an auth_throttled event is recorded.
type Authenticator interface {
	Authenticate(ctx context.Context, username string, password []byte) (posfleet.TerminalRef, error)
}

// SourceAuthenticator is an Authenticator that also weighs where an attempt
// comes from (to bound the work spent on one source's failures). The broker
// calls AuthenticateFrom with the client's address when its Authenticator
// has it.
type SourceAuthenticator interface {
	AuthenticateFrom(ctx context.Context, username string, password []byte, source netip.Addr) (posfleet.TerminalRef, error)
}

// Sink takes every uplink message the broker accepted from a terminal. It returns nil once the
// message is durable (the broker acknowledges the publish only after that), a *posfleet.Rejection
// for bad input (the broker drops it but keeps the connection), or another error when it cannot
// store it now.
//
// Accept is called on the terminal's own read loop, so a slow Sink slows
// that terminal only; it must honour ctx, which ends at
// Options.AcceptTimeout and at Close. payload is not reused by the broker and
// must not be modified. A Sink that is also a Submitter gets most messages
// through Submit instead, without the read loop waiting for each; Accept
// then serves QoS 2 publishes and last wills.
type Sink interface {
	Accept(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte) error
}

// maxEventUsername and maxEventTopic bound what a SecurityEvent carries, so a
// hostile client cannot make the recorder hold megabytes per event.
const (
	maxEventUsername = 64
	maxEventTopic    = 256
)

// SecurityRecorder takes security events. RecordSecurity must not block: the
// broker calls it on the packet path.
type SecurityRecorder interface {
	RecordSecurity(ev posfleet.SecurityEvent)
}

// Options configures a Broker. Zero fields take their DefaultOptions value.
type Options struct {
	// TCPAddr is the plain MQTT listener's address.
	TCPAddr string
	// TLSAddr is the MQTT-over-TLS listener's address, used only when
	// CertFile and KeyFile are set.
	TLSAddr string
	// CertFile and KeyFile are the PEM certificate chain and key of the TLS listener.
	CertFile, KeyFile string
	// DataDir holds broker.db: persistent sessions and queued commands. ""
	// keeps them in memory only.
	DataDir string
	// MaxPacketBytes is the hard MQTT packet limit; a client sending a larger
	// packet is disconnected.
	MaxPacketBytes int
	// ReceiveMaximum is how many QoS 1/2 messages a client may have in flight
	// towards the broker.
	ReceiveMaximum int
	// MaxClientWritesPending is the length of each client's outbound queue.
	MaxClientWritesPending int
	// RatePerSecond and RateBurst are the per-terminal publish rate (token
	// bucket). A terminal over the rate is slowed, not disconnected and not
	// dropped. A negative RatePerSecond disables the limit.
	RatePerSecond float64
	RateBurst     int
	// ConnectTimeout bounds the time from accepting a connection to its
	// CONNECT being authenticated (TLS handshake and Authenticator included).
	ConnectTimeout time.Duration
	// AcceptTimeout bounds one Sink.Accept call; a message not stored by then
	// is not acknowledged and the terminal is disconnected so it resends.
	AcceptTimeout time.Duration
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
	// Metrics registers the broker's metrics; nil registers none.
	Metrics prometheus.Registerer
}

// DefaultOptions returns the options a production broker starts from.
func DefaultOptions() Options {
	return Options{
		// The IANA ports of MQTT and MQTT over TLS, on all interfaces:
		// terminals connect from the field.
		TCPAddr: ":1883",
		TLSAddr: ":8883",
		// Four times posfleet.MaxPayloadBytes: payloads of 16..64 KiB still reach
		// the Sink, which rejects and counts them as too_large without the
		// connection being cut; anything larger is not a posfleet message, and
		// the limit bounds what one connection makes the broker allocate.
		MaxPacketBytes: 64 << 10,
		// A terminal may have this many messages in the broker's hands (being
		// spooled, not yet acknowledged): enough to pipeline an offline store
		// through a few group commits, and a bound on what one connection
		// makes the broker hold.
		ReceiveMaximum: 128,
		// Downlink is only commands, a handful per terminal; mochi's default of
		// 8192 allocates 64 KiB of channel per idle connection.
		MaxClientWritesPending: 32,
		// A heartbeat a minute plus a transaction per sale is far below 20/s; the
		// burst of 500 lets a terminal flush hundreds of stored transactions
		// after an outage at full speed, and only a runaway terminal is slowed.
		RatePerSecond: 20,
		RateBurst:     500,
		// Long enough for a TLS handshake and a CONNECT over a poor 2G link,
		// short enough that idle sockets that never speak MQTT do not pile up.
		ConnectTimeout: 10 * time.Second,
		// The Sink is a local spool; 10 s without an answer means it is stuck,
		// and terminals (paho waits 30 s by default) should retry elsewhere in
		// time rather than wait.
		AcceptTimeout: 10 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.TCPAddr == "" {
		o.TCPAddr = d.TCPAddr
	}
	if o.TLSAddr == "" {
		o.TLSAddr = d.TLSAddr
	}
	if o.MaxPacketBytes == 0 {
		o.MaxPacketBytes = d.MaxPacketBytes
	}
	if o.ReceiveMaximum == 0 {
		o.ReceiveMaximum = d.ReceiveMaximum
	}
	if o.MaxClientWritesPending == 0 {
		o.MaxClientWritesPending = d.MaxClientWritesPending
	}
	if o.RatePerSecond == 0 {
		o.RatePerSecond = d.RatePerSecond
	}
	if o.RateBurst == 0 {
		o.RateBurst = d.RateBurst
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = d.ConnectTimeout
	}
	if o.AcceptTimeout == 0 {
		o.AcceptTimeout = d.AcceptTimeout
	}
	return o
}

// Validate reports the first option out of its range, checking o as given
// (New fills zero fields with their defaults before it checks).
func (o Options) Validate() error {
	switch {
	case o.MaxPacketBytes < 1<<10 || o.MaxPacketBytes > 256<<20:
		return fmt.Errorf("broker: MaxPacketBytes %d: want 1 KiB..256 MiB", o.MaxPacketBytes)
	case o.ReceiveMaximum < 1 || o.ReceiveMaximum > 65535:
		return fmt.Errorf("broker: ReceiveMaximum %d: want 1..65535", o.ReceiveMaximum)
	case o.MaxClientWritesPending < 1 || o.MaxClientWritesPending > 1<<20:
		return fmt.Errorf("broker: MaxClientWritesPending %d: want 1..1048576", o.MaxClientWritesPending)
	case o.RateBurst < 1:
		return fmt.Errorf("broker: RateBurst %d: want at least 1", o.RateBurst)
	case o.ConnectTimeout < 0 || o.AcceptTimeout < 0:
		return errors.New("broker: negative timeout")
	case (o.CertFile == "") != (o.KeyFile == ""):
		return errors.New("broker: CertFile and KeyFile must be set together")
	}
	return nil
}

// ErrClosed is returned by calls on a broker that is not running: not yet
// started, or closed.
var ErrClosed = errors.New("broker: not running")

// ErrNoSession is returned by SendCommand when the terminal has no session
// subscribed to its cmd topic, so the command could not be delivered now nor
// queued for later.
var ErrNoSession = &posfleet.Error{Kind: posfleet.Conflict, Code: "not_reachable",
	Message: "the terminal has no session subscribed to its commands (it never connected with a persistent session); nothing was queued",
	Err:     errors.New("broker: terminal has no session subscribed to its cmd topic")}

// Broker is the embedded MQTT broker. Create it with New, run it with Start,
// stop it with Close.
type Broker struct {
	opts    Options
	auth    Authenticator
	sink    Sink
	submit  func(context.Context, posfleet.TerminalRef, posfleet.Channel, []byte, func(error)) error
	sec     SecurityRecorder
	log     *slog.Logger
	tlsConf *tls.Config
	m       *metrics

	// submitTo is the Sink's SubmitTo, nil when it has none (see
	// completingSubmitter).
	submitTo func(context.Context, posfleet.TerminalRef, posfleet.Channel, []byte, interface{ Complete(uint64, error) }, uint64) error

	// baseCtx is the parent of the contexts handed to the Authenticator and
	// the Sink: mochi's hooks carry no context, and Close must be able to
	// end calls that block.
	baseCtx context.Context
	cancel  context.CancelFunc
	// closing tells the hooks that disconnections are the broker's own
	// doing (see Close).
	closing atomic.Bool

	mu      sync.RWMutex // guards the fields below and the running state
	started bool
	closed  bool
	srv     *mqtt.Server
	tcp     *listener
	tls     *listener
	store   *store
}

// New checks opts and returns a broker ready to Start. auth and sink are
// required; sec may be nil.
func New(opts Options, auth Authenticator, sink Sink, sec SecurityRecorder) (*Broker, error) {
	if auth == nil || sink == nil {
		return nil, errors.New("broker: Authenticator and Sink are required")
	}
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if sec == nil {
		sec = discardSecurity{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Topics, usernames and client IDs come from outside: card data in any
	// of them is withheld from the log (see redactPackets).
	log = slog.New(redactPackets(log.Handler()))
	b := &Broker{
		opts:   opts,
		auth:   auth,
		sink:   sink,
		submit: submitter(sink),
		sec:    sec,
		log:    log.With("component", "broker"),
	}
	if cs, ok := sink.(completingSubmitter); ok {
		b.submitTo = cs.SubmitTo
	}
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker: load TLS certificate %s and key %s: %w", opts.CertFile, opts.KeyFile, err)
		}
		b.tlsConf = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
		}
	}
	m, err := newMetrics(opts.Metrics, b.Connected)
	if err != nil {
		return nil, err
	}
	b.m = m
	b.baseCtx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Start binds the listeners, loads the persistent state and starts serving.
// The listeners are bound when it returns, so ":0" addresses can be read back
// with TCPAddr and TLSAddr. ctx bounds the start-up only; the broker runs
// until Close.
func (b *Broker) Start(ctx context.Context) (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed {
		return errors.New("broker: Start called twice or after Close")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: start: %w", err)
	}
	b.started = true

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			b.closed = true
			b.cancel()
		}
	}()

	var lc net.ListenConfig
	tcpLn, err := lc.Listen(ctx, "tcp", b.opts.TCPAddr)
	if err != nil {
		return fmt.Errorf("broker: listen on %s: %w", b.opts.TCPAddr, err)
	}
	undo = append(undo, func() { _ = tcpLn.Close() })
	b.tcp = newListener("tcp", tcpLn, nil, b.opts.ConnectTimeout, b.log)
	if b.tlsConf != nil {
		tlsLn, err := lc.Listen(ctx, "tcp", b.opts.TLSAddr)
		if err != nil {
			return fmt.Errorf("broker: listen on %s: %w", b.opts.TLSAddr, err)
		}
		undo = append(undo, func() { _ = tlsLn.Close() })
		b.tls = newListener("tls", tlsLn, b.tlsConf, b.opts.ConnectTimeout, b.log)
	}

	srv := mqtt.New(b.serverOptions())
	b.srv = srv
	if err := srv.AddHook(&policy{b: b}, nil); err != nil {
		return fmt.Errorf("broker: add policy hook: %w", err)
	}
	if b.opts.DataDir != "" {
		if err := os.MkdirAll(b.opts.DataDir, 0o750); err != nil {
			return fmt.Errorf("broker: data dir: %w", err)
		}
		path := filepath.Join(b.opts.DataDir, "broker.db")
		st := newStore(&b.closing)
		err := srv.AddHook(st, &bolt.Options{
			Path:   path,
			Bucket: "mochi",
			// One transaction (one fsync) for all the sessions and
			// subscriptions written at one moment (see store.flush).
			GroupCommit: true,
			// Timeout: another process holding the file (a second server on the
			// same DataDir) is an error to report, not to wait for.
			Options: &bbolt.Options{Timeout: time.Second},
		})
		if err != nil {
			return fmt.Errorf("broker: open %s: %w", path, err)
		}
		undo = append(undo, func() { _ = st.Stop() })
		b.store = st
	}
	for _, l := range []*listener{b.tcp, b.tls} {
		if l == nil {
			continue
		}
		if err := srv.AddListener(l); err != nil {
			return fmt.Errorf("broker: add listener %s: %w", l.id, err)
		}
	}
	// Serve loads the stored sessions, then starts the accept loops and
	// returns.
	for _, l := range []*listener{b.tcp, b.tls} {
		if l != nil {
			l.markServing()
		}
	}
	if err := srv.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.log.Info("broker started", "tcp", b.tcp.Address(), "tls", b.tlsAddress(), "data_dir", b.opts.DataDir)
	return nil
}

func (b *Broker) tlsAddress() string {
	if b.tls == nil {
		return ""
	}
	return b.tls.Address()
}

// serverOptions maps Options to mochi's options and capabilities.
func (b *Broker) serverOptions() *mqtt.Options {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(b.opts.MaxClientWritesPending)
	caps.ReceiveMaximum = uint16(b.opts.ReceiveMaximum)
	caps.MaximumPacketSize = uint32(b.opts.MaxPacketBytes)
	// mochi's default deletes queued messages older than a day; a command
	// queued for a terminal that is offline for a week must still reach it
	// (PROTOCOL.md §1), so nothing expires by age.
	caps.MaximumMessageExpiryInterval = 0
	// A terminal publishes on six topics; mochi's default of 65535 aliases lets
	// one connection make the broker hold 65535 topic strings.
	caps.TopicAliasMaximum = 16
	return &mqtt.Options{
		Capabilities: caps,
		// SendCommand publishes through the inline client.
		InlineClient: true,
		// No client may subscribe to $SYS (see the ACL), so refreshing it every
		// second would only cost a stop-the-world runtime.ReadMemStats.
		SysTopicResendInterval: 60,
		// mochi logs whole packets in places; the handler strips payloads so
		// that no message content (which may be card data a terminal should
		// never have sent) reaches the logs.
		Logger: slog.New(redactPackets(b.log.Handler())).With("mqtt", "mochi"),
	}
}

// Close disconnects every client, stops the listeners and flushes the
// persistent state. It is idempotent and safe to call on a broker that never
// started.
//
// Terminals cut off by Close do not get their last will handed to the Sink:
// they did not fail, the server went away, and the wills of a whole fleet
// would flood the Sink while the server is itself shutting down. Terminals
// that do not come back are caught by the collector's no-message timeout.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.closing.Store(true)
	// Calls blocked in the Sink or in a rate-limit wait return now; their
	// messages are not acknowledged, so terminals resend them.
	b.cancel()
	if !b.started || b.srv == nil {
		return nil
	}
	err := b.srv.Close()
	b.log.Info("broker stopped")
	if err != nil {
		return fmt.Errorf("broker: close: %w", err)
	}
	if b.store != nil {
		if err := b.store.stopErr(); err != nil {
			return fmt.Errorf("broker: close store: %w", err)
		}
	}
	return nil
}

// TCPAddr returns the address the plain listener is bound to, nil before Start.
func (b *Broker) TCPAddr() net.Addr {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.tcp == nil {
		return nil
	}
	return b.tcp.ln.Addr()
}

// TLSAddr returns the address the TLS listener is bound to, nil when there is none.
func (b *Broker) TLSAddr() net.Addr {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.tls == nil {
		return nil
	}
	return b.tls.ln.Addr()
}

// Connected returns the number of authenticated clients connected now.
func (b *Broker) Connected() int {
	b.mu.RLock()
	srv := b.srv
	b.mu.RUnlock()
	if srv == nil {
		return 0
	}
	return int(atomic.LoadInt64(&srv.Info.ClientsConnected))
}

// Healthy returns nil while the broker runs and its listeners accept connections.
func (b *Broker) Healthy() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.started || b.closed {
		return ErrClosed
	}
	for _, l := range []*listener{b.tcp, b.tls} {
		if l == nil {
			continue
		}
		if err := l.health(); err != nil {
			return err
		}
	}
	return nil
}

// SendCommand publishes cmd with QoS 1 to the terminal's cmd topic. A
// terminal that is offline with a persistent session gets it when it comes
// back; with a DataDir the command is on disk when SendCommand returns. A
// terminal without a session subscribed to its cmd topic gets ErrNoSession.
func (b *Broker) SendCommand(ctx context.Context, ref posfleet.TerminalRef, cmd posfleet.Command) error {
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("broker: send command: %w", err)
	}
	if cmd.ID == "" {
		return errors.New("broker: send command: empty id")
	}
	switch cmd.Type {
	case posfleet.CmdUpdateFirmware, posfleet.CmdReboot:
	default:
		return fmt.Errorf("broker: send command %s: unknown type %q", cmd.ID, cmd.Type)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: send command %s: %w", cmd.ID, err)
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("broker: send command %s: %w", cmd.ID, err)
	}
	// The read lock keeps Close from stopping the store under the publish.
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.started || b.closed {
		return ErrClosed
	}
	topic := posfleet.Topic(ref, posfleet.ChannelCommand)
	if len(b.srv.Topics.Subscribers(topic).Subscriptions) == 0 {
		return fmt.Errorf("broker: send command %s to %s: %w", cmd.ID, ref, ErrNoSession)
	}
	if err := b.srv.Publish(topic, payload, false, 1); err != nil {
		return fmt.Errorf("broker: send command %s to %s: %w", cmd.ID, ref, err)
	}
	b.log.Debug("command sent", "terminal", ref.String(), "cmd_id", cmd.ID, "type", cmd.Type)
	return nil
}

type discardSecurity struct{}

func (discardSecurity) RecordSecurity(posfleet.SecurityEvent) {}
