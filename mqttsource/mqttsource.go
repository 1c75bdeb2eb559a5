// Package mqttsource feeds the collector from an external MQTT broker (EMQX,
// HiveMQ, VerneMQ, Mosquitto) instead of, or beside, the embedded one.
//
// Every collector process joins one shared subscription
// ($share/posfleet/fleet/v1/#), so the broker splits the fleet's messages
// among them. The health role subscribes to the whole stream instead
// (Options.Filter = StreamFilter: a plain subscription, every message to
// every health process) with the same persistent session and
// acknowledgement after the Sink took the message. A message is acknowledged (PUBACK) only after the Sink made it
// durable, so a collector that dies loses nothing the broker considers
// delivered: the unacknowledged messages stay in its persistent session and
// come again when it reconnects.
//
// STYLE keeps paho in firmware-client, the one place that speaks MQTT as a
// client. This package is the exception on purpose: a subscriber with manual
// acknowledgement, a persistent session and a shared subscription shares
// nothing with a terminal's connection (outbox, will, backoff by device
// class), and the collector must not depend on the terminal library.
package mqttsource

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
)

// Sink takes every message of the subscription. It returns nil once the
// message is durable, a *posfleet.Rejection for bad input, or another error
// when it cannot store the message now (collector.Collector.Accept).
type Sink interface {
	Accept(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte) error
}

// StreamFilter is the plain, not shared, subscription to every terminal's
// messages: each subscriber gets all of them (the health role).
const StreamFilter = posfleet.TopicRoot + "/#"

// Options configures a Subscriber. Zero durations take their DefaultOptions value.
type Options struct {
	// Broker is the broker's URL: tcp://host:1883, ssl://host:8883 or ws://….
	Broker string
	// ClientID must be stable across restarts of one collector (a
	// StatefulSet pod name, a host name): the persistent session holding
	// its unacknowledged messages belongs to it.
	ClientID string
	// Username and Password are the collector's credentials on the broker.
	Username, Password string
	// Filter is what to subscribe to; DefaultOptions gives
	// posfleet.CollectorFilter (shared among collectors), StreamFilter is
	// the whole stream for one subscriber.
	Filter string
	// TLS configures ssl:// connections; nil uses the system's roots.
	TLS *tls.Config
	// AcceptTimeout bounds one Sink.Accept; past it the message is treated
	// as not stored.
	AcceptTimeout time.Duration
	// ConnectTimeout bounds CONNECT and SUBSCRIBE.
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive interval.
	KeepAlive time.Duration
	// RetryMin and RetryMax bound the jittered backoff between connection attempts.
	RetryMin, RetryMax time.Duration
	// DrainTimeout bounds how long a disconnect waits for Accepts in flight,
	// so that their acknowledgements still go out.
	DrainTimeout time.Duration
	// Workers is how many messages are handed to the Sink at once. One
	// terminal's messages always go to the same worker, in the order the
	// broker delivered them.
	Workers int
	Logger  *slog.Logger
	Metrics prometheus.Registerer
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		Filter: posfleet.CollectorFilter,
		// The broker's own timeouts for an unacknowledged QoS 1 message are
		// longer; 30 s lets the spool ride out a slow disk without the
		// message being handed to this collector twice.
		AcceptTimeout:  30 * time.Second,
		ConnectTimeout: 10 * time.Second,
		KeepAlive:      30 * time.Second,
		// Fast first retry for a broker restart; capped so that a cluster
		// coming back is not stormed by every collector at once.
		RetryMin:     500 * time.Millisecond,
		RetryMax:     30 * time.Second,
		DrainTimeout: 5 * time.Second,
		// Enough concurrency for the spool's group commit to batch
		// (one fsync for many messages); more only adds goroutines.
		Workers: 64,
	}
}

// Validate reports what New cannot do without: the broker's URL and a
// client ID. Zero timeouts and worker counts take their defaults.
func (o Options) Validate() error {
	switch {
	case o.Broker == "":
		return errors.New("mqttsource: no broker URL")
	case o.ClientID == "":
		return errors.New("mqttsource: no client ID (it must be stable: the broker keeps unacknowledged messages in its session)")
	}
	return nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Filter == "" {
		o.Filter = d.Filter
	}
	for _, p := range []struct{ v, d *time.Duration }{
		{&o.AcceptTimeout, &d.AcceptTimeout}, {&o.ConnectTimeout, &d.ConnectTimeout},
		{&o.KeepAlive, &d.KeepAlive}, {&o.RetryMin, &d.RetryMin}, {&o.RetryMax, &d.RetryMax},
		{&o.DrainTimeout, &d.DrainTimeout},
	} {
		if *p.v <= 0 {
			*p.v = *p.d
		}
	}
	if o.Workers < 1 {
		o.Workers = d.Workers
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Stats counts what the subscriber did with the messages it got.
type Stats struct {
	Stored   uint64 // accepted by the Sink and acknowledged
	Rejected uint64 // bad input: acknowledged so the broker does not resend it forever
	Failed   uint64 // not stored: left unacknowledged, the session restarted
	Ignored  uint64 // not a terminal's uplink (cmd, foreign topics): acknowledged
}

// Subscriber consumes the fleet's messages from an external broker.
type Subscriber struct {
	opts Options
	log  *slog.Logger
	sink Sink

	connected atomic.Bool
	// client is the connected session's client (Publish), nil between
	// sessions.
	clientMu sync.Mutex
	client   mqtt.Client
	stored   atomic.Uint64
	rejected atomic.Uint64
	failed   atomic.Uint64
	ignored  atomic.Uint64
	messages *prometheus.CounterVec
}

// New checks opts; Run connects.
func New(opts Options, sink Sink) (*Subscriber, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("mqttsource: no sink")
	}
	s := &Subscriber{opts: opts, sink: sink, log: opts.Logger.With("component", "mqttsource", "broker", opts.Broker, "client_id", opts.ClientID)}
	s.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posfleet_mqttsource_messages_total",
		Help: "Messages received from the external MQTT broker, by what became of them (stored, rejected, failed, ignored).",
	}, []string{"result"})
	for _, r := range []string{"stored", "rejected", "failed", "ignored"} {
		s.messages.WithLabelValues(r)
	}
	if opts.Metrics != nil {
		connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "posfleet_mqttsource_connected",
			Help: "1 while subscribed to the external MQTT broker.",
		}, func() float64 {
			if s.connected.Load() {
				return 1
			}
			return 0
		})
		if err := errors.Join(opts.Metrics.Register(s.messages), opts.Metrics.Register(connected)); err != nil {
			return nil, fmt.Errorf("mqttsource: metrics: %w", err)
		}
	}
	return s, nil
}

// Run connects, subscribes and hands messages to the Sink until ctx ends,
// reconnecting with backoff whenever the connection is lost or a message
// could not be stored. It returns nil when ctx ends.
func (s *Subscriber) Run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > s.opts.RetryMax {
			attempt = 0 // it worked for a while: start the backoff afresh
		}
		wait := s.backoff(attempt)
		s.log.Warn("external broker session ended; reconnecting", "err", err, "in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (s *Subscriber) backoff(n int) time.Duration {
	d := s.opts.RetryMin << min(n, 16)
	if d <= 0 || d > s.opts.RetryMax {
		d = s.opts.RetryMax
	}
	// Full jitter in the upper half: collectors that lost the broker
	// together do not come back together.
	return d/2 + rand.N(d/2+1)
}

// session runs one connection: a new paho client each time, so that no
// acknowledgement of an old connection can reach a new one under a reused
// packet ID.
func (s *Subscriber) session(ctx context.Context) error {
	ended := make(chan error, 1)
	end := func(err error) {
		select {
		case ended <- err:
		default:
		}
	}
	// Accepts outlive ctx by up to AcceptTimeout: a message handed over
	// at shutdown is finished and acknowledged rather than cut off.
	acceptBase := context.WithoutCancel(ctx)
	// Once a message could not be stored, nothing more is stored in this
	// session: a later message of the same terminal stored first would
	// make the collector's duplicate filter take the earlier one, when
	// it comes again, for a duplicate.
	var failed atomic.Bool
	fail := func(err error) {
		failed.Store(true)
		end(err)
	}
	// Messages are handled concurrently, so that the spool's group commit
	// batches them, but each terminal's in delivery order, on one worker:
	// the duplicate filter expects a terminal's seqs to arrive in order
	// at any one collector. The broker's in-flight window (Mosquitto
	// max_inflight_messages, EMQX max_inflight) bounds what is queued.
	//
	// Acknowledgements go out in the order the messages came, as MQTT
	// requires (3.1.1 §4.6): a broker may reorder what it sends next when
	// they do not (Mosquitto 2.0 does), which the duplicate filter would
	// then take for old seqs.
	acks := &ackQueue{}
	queues := make([]chan *delivery, s.opts.Workers)
	var workers sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan *delivery, 64)
		workers.Add(1)
		go func() {
			defer workers.Done()
			for d := range queues[i] {
				acks.done(d, s.handle(acceptBase, d.m, &failed, fail))
			}
		}()
	}
	var stopMu sync.RWMutex
	stopped := false
	handle := func(_ mqtt.Client, m mqtt.Message) {
		ref, ch, err := posfleet.ParseTopic(m.Topic())
		// The terminal is named by the topic: the external broker's ACL
		// (generated by posfleet, or posfleet's HTTP authorization
		// endpoint) let only that terminal publish there. cmd is the
		// server's own downlink.
		stopMu.RLock()
		defer stopMu.RUnlock()
		if stopped {
			return // unacknowledged: it comes again
		}
		d := acks.add(m)
		if err != nil || ch == posfleet.ChannelCommand {
			s.count(&s.ignored, "ignored")
			acks.done(d, true)
			return
		}
		h := fnv.New32a()
		h.Write([]byte(ref.Tenant))
		h.Write([]byte{0})
		h.Write([]byte(ref.Terminal))
		queues[h.Sum32()%uint32(len(queues))] <- d
	}
	o := mqtt.NewClientOptions().
		AddBroker(s.opts.Broker).
		SetClientID(s.opts.ClientID).
		SetUsername(s.opts.Username).
		SetPassword(s.opts.Password).
		SetTLSConfig(s.opts.TLS).
		// The session keeps what this collector was given and has not
		// acknowledged; it is resent when the collector comes back.
		SetCleanSession(false).
		// Acknowledge only once the Sink said the message is durable.
		SetAutoAckDisabled(true).
		// The callback only queues (see above), in delivery order.
		SetOrderMatters(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetProtocolVersion(4).
		SetKeepAlive(s.opts.KeepAlive).
		SetConnectTimeout(s.opts.ConnectTimeout).
		SetWriteTimeout(s.opts.ConnectTimeout).
		// With a persistent session, messages can arrive before SUBSCRIBE
		// is answered; they take the same path.
		SetDefaultPublishHandler(handle).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { end(fmt.Errorf("connection lost: %w", err)) })
	c := mqtt.NewClient(o)
	defer func() {
		s.connected.Store(false)
		s.clientMu.Lock()
		s.client = nil
		s.clientMu.Unlock()
		// Let the queued messages be handled so their acknowledgements
		// are sent (after a failure they are left unacknowledged); what is
		// still unacknowledged after that comes again later.
		stopMu.Lock()
		stopped = true
		stopMu.Unlock()
		for _, q := range queues {
			close(q)
		}
		done := make(chan struct{})
		go func() { workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.opts.DrainTimeout):
		}
		c.Disconnect(250)
	}()

	if err := wait(ctx, c.Connect(), s.opts.ConnectTimeout); err != nil {
		return fmt.Errorf("mqttsource: connect %s: %w", s.opts.Broker, err)
	}
	tok := c.Subscribe(s.opts.Filter, 1, handle)
	if err := wait(ctx, tok, s.opts.ConnectTimeout); err != nil {
		return fmt.Errorf("mqttsource: subscribe %s: %w", s.opts.Filter, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		// One filter, one result; paho keys a shared filter without its
		// $share/{group}/ prefix, so look at the values.
		for _, q := range st.Result() {
			if q == 0x80 {
				return fmt.Errorf("mqttsource: subscribe %s: refused by the broker (check the collector user's ACL)", s.opts.Filter)
			}
		}
	}
	s.connected.Store(true)
	s.clientMu.Lock()
	s.client = c
	s.clientMu.Unlock()
	s.log.Info("subscribed to external broker", "filter", s.opts.Filter)
	select {
	case <-ctx.Done():
		return nil
	case err := <-ended:
		return err
	}
}

// ErrNotConnected is Publish's error between sessions.
var ErrNotConnected = errors.New("mqttsource: not connected to the external broker")

// Publish sends payload to topic with QoS 1 on the current session and
// waits for the broker's PUBACK (the health role sends the commands queued
// by web replicas this way: fleet/v1/{tenant}/{terminal}/cmd, which the
// account's ACL allows).
func (s *Subscriber) Publish(ctx context.Context, topic string, payload []byte) error {
	s.clientMu.Lock()
	c := s.client
	s.clientMu.Unlock()
	if c == nil {
		return ErrNotConnected
	}
	if err := wait(ctx, c.Publish(topic, 1, false, payload), s.opts.ConnectTimeout); err != nil {
		return fmt.Errorf("mqttsource: publish %s: %w", topic, err)
	}
	return nil
}

func wait(ctx context.Context, tok mqtt.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return errors.New("timed out")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle hands one message of a terminal to the Sink and says whether to
// acknowledge it: yes when that is final (stored, or refused as bad input);
// no for anything else, which ends the session so that the broker delivers
// the message again.
//
// Retained messages are not skipped: a broker that keeps the retain flag on
// live deliveries (allowed for MQTT 5's retain-as-published) would otherwise
// lose every fw and status. Shared subscriptions get no retained replays
// anyway; on a plain subscription a replayed fw lands on the point it
// already made (same seq, ts and tags) and a replayed status restates the
// terminal's current state.
func (s *Subscriber) handle(base context.Context, m mqtt.Message, failed *atomic.Bool, fail func(error)) bool {
	if failed.Load() {
		return false // it comes again after the reconnect
	}
	ref, ch, _ := posfleet.ParseTopic(m.Topic()) // checked by the dispatcher
	ctx, cancel := context.WithTimeout(base, s.opts.AcceptTimeout)
	err := s.sink.Accept(ctx, ref, ch, m.Payload())
	cancel()
	var rej *posfleet.Rejection
	switch {
	case err == nil:
		s.count(&s.stored, "stored")
		return true
	case errors.As(err, &rej):
		s.count(&s.rejected, "rejected")
		return true
	default:
		s.count(&s.failed, "failed")
		s.log.Warn("message not stored; leaving it unacknowledged and reconnecting so that the broker resends it", "terminal", ref.String(), "channel", string(ch), "err", err)
		fail(fmt.Errorf("sink: %w", err))
		return false
	}
}

// delivery is one received message waiting for its acknowledgement.
type delivery struct {
	m          mqtt.Message
	done, keep bool // handled; and to be acknowledged
}

// ackQueue acknowledges messages in the order they were received, each once
// it and all before it are handled. The first message not to acknowledge
// (not stored) stops it for the rest of the session: nothing after it is
// acknowledged, so the broker delivers it and them again.
type ackQueue struct {
	mu      sync.Mutex
	pending []*delivery
	stopped bool
}

func (q *ackQueue) add(m mqtt.Message) *delivery {
	d := &delivery{m: m}
	q.mu.Lock()
	q.pending = append(q.pending, d)
	q.mu.Unlock()
	return d
}

func (q *ackQueue) done(d *delivery, ack bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d.done, d.keep = true, ack
	for !q.stopped && len(q.pending) > 0 && q.pending[0].done {
		head := q.pending[0]
		if !head.keep {
			q.stopped = true
			break
		}
		head.m.Ack()
		q.pending[0] = nil
		q.pending = q.pending[1:]
	}
}

func (s *Subscriber) count(n *atomic.Uint64, result string) {
	n.Add(1)
	s.messages.WithLabelValues(result).Inc()
}

// Healthy returns nil while the subscriber is connected and subscribed.
func (s *Subscriber) Healthy() error {
	if !s.connected.Load() {
		return fmt.Errorf("mqttsource: not subscribed at %s", s.opts.Broker)
	}
	return nil
}

// Stats returns the subscriber's counters.
func (s *Subscriber) Stats() Stats {
	return Stats{Stored: s.stored.Load(), Rejected: s.rejected.Load(), Failed: s.failed.Load(), Ignored: s.ignored.Load()}
}
