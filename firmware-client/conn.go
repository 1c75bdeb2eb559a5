package firmwareclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet"
)

// Payloads of the status channel. The offline one is also the last will.
var (
	statusOnline  = []byte(`{"online":true}`)
	statusOffline = []byte(`{"online":false}`)
)

var (
	errConnectionLost = errors.New("connection lost")
	errAckTimeout     = errors.New("no acknowledgement in time")
)

// connection is one MQTT connection. Every connection gets a new paho
// client with an empty in-memory store: the outbox is the only record of
// what must be resent, so nothing is sent twice by two mechanisms, and
// paho's own reconnect and resend logic (whose waits cannot all be bounded)
// stays off. The server keeps the session (CleanSession=false), so the
// subscription and the commands queued while offline survive.
type connection struct {
	pc       mqtt.Client
	lost     chan struct{}
	lostOnce sync.Once
	lostErr  error
}

func (cn *connection) markLost(err error) {
	cn.lostOnce.Do(func() {
		cn.lostErr = err
		close(cn.lost)
	})
}

// connectLoop connects, serves the connection until it is lost, and
// reconnects with exponential backoff and full jitter, until ctx ends.
func (c *Client) connectLoop(ctx context.Context) {
	attempt := 0
	for ctx.Err() == nil {
		if attempt > 0 && !sleep(ctx, c.backoff(attempt)) {
			return
		}
		cn, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			attempt++
			c.st.connectFailures.Add(1)
			c.st.setErr(err)
			c.log.Info("connect failed", "err", err, "attempt", attempt)
			continue
		}
		c.st.connects.Add(1)
		err = c.serve(ctx, cn)
		c.connected.Store(false)
		if ctx.Err() != nil {
			c.goOffline(cn)
			return
		}
		c.st.lost.Add(1)
		c.st.setErr(err)
		c.log.Info("connection lost", "err", err)
		cn.pc.Disconnect(0)
		// Wait a random part of ReconnectMin before the first attempt too:
		// when the broker restarts, every terminal loses its connection
		// in the same instant.
		attempt = 1
	}
}

// backoff returns the wait before connection attempt n+1: a random
// duration below ReconnectMin·2^(n-1), capped at ReconnectMax.
func (c *Client) backoff(n int) time.Duration {
	bound := c.cfg.ReconnectMin
	for i := 1; i < n && bound < c.cfg.ReconnectMax; i++ {
		bound *= 2
	}
	bound = min(bound, c.cfg.ReconnectMax)
	return jitter(bound)
}

// jitter returns a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (c *Client) topic(ch posfleet.Channel) string { return posfleet.Topic(c.ref, ch) }

// connect opens one connection, bounded by ConnectTimeout.
func (c *Client) connect(ctx context.Context) (*connection, error) {
	cn := &connection{lost: make(chan struct{})}
	opts := mqtt.NewClientOptions().
		AddBroker(c.cfg.Broker).
		SetClientID(c.ref.String()).
		SetUsername(c.ref.String()).
		SetPassword(c.cfg.Secret).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetStore(mqtt.NewMemoryStore()).
		SetConnectTimeout(c.cfg.ConnectTimeout).
		SetKeepAlive(c.cfg.KeepAlive).
		SetPingTimeout(min(c.cfg.KeepAlive, 20*time.Second)).
		SetWriteTimeout(c.cfg.AckTimeout).
		SetBinaryWill(c.topic(posfleet.ChannelStatus), statusOffline, 1, true).
		// The handler only hands the message over (see onMessage), so
		// keeping paho's order costs nothing and keeps commands in order.
		SetOrderMatters(true).
		SetDefaultPublishHandler(c.onMessage).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { cn.markLost(err) })
	if c.cfg.TLS != nil {
		opts.SetTLSConfig(c.cfg.TLS)
	}
	if c.cfg.Dial != nil {
		opts.SetCustomOpenConnectionFn(c.openConnection)
	}
	cn.pc = mqtt.NewClient(opts)
	tok := cn.pc.Connect()
	// paho bounds the dial and the CONNACK with ConnectTimeout; the extra
	// margin only guards against a bug there, never a hang.
	t := time.NewTimer(c.cfg.ConnectTimeout + 5*time.Second)
	defer t.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return nil, fmt.Errorf("firmwareclient: connect to %s: %w", c.cfg.Broker, err)
		}
	case <-t.C:
		cn.pc.Disconnect(0)
		return nil, fmt.Errorf("firmwareclient: connect to %s: %w", c.cfg.Broker, errAckTimeout)
	case <-ctx.Done():
		cn.pc.Disconnect(0)
		return nil, ctx.Err()
	}
	return cn, nil
}

// wait waits for a token, for at most AckTimeout, and no longer than the
// connection and ctx last. paho's Wait can block for ever; this cannot.
func (c *Client) wait(ctx context.Context, cn *connection, tok mqtt.Token) error {
	t := time.NewTimer(c.cfg.AckTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-cn.lost:
		return fmt.Errorf("%w: %v", errConnectionLost, cn.lostErr)
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errAckTimeout
	}
}

// serve announces the terminal online, subscribes to its commands and
// sends the outbox until the connection is lost or ctx ends.
func (c *Client) serve(ctx context.Context, cn *connection) error {
	tok := cn.pc.Publish(c.topic(posfleet.ChannelStatus), 1, true, statusOnline)
	if err := c.wait(ctx, cn, tok); err != nil {
		return fmt.Errorf("firmwareclient: publish status: %w", err)
	}
	c.st.statusSent.Add(1)
	cmdTopic := c.topic(posfleet.ChannelCommand)
	tok = cn.pc.Subscribe(cmdTopic, 1, c.onMessage)
	if err := c.wait(ctx, cn, tok); err != nil {
		return fmt.Errorf("firmwareclient: subscribe %s: %w", cmdTopic, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok && st.Result()[cmdTopic] == 0x80 {
		// Not fatal: telemetry still flows, only commands do not arrive.
		c.log.Warn("subscription to the command topic refused", "topic", cmdTopic)
		c.st.setErr(errors.New("subscription to " + cmdTopic + " refused"))
	}
	// Online from here: a transaction reported now is sent live, behind
	// the outbox.
	c.connected.Store(true)
	c.log.Debug("connected", "broker", c.cfg.Broker)
	return c.send(ctx, cn)
}

// inflight is a published message waiting for its PUBACK.
type inflight struct {
	seq  int64
	ch   posfleet.Channel
	tok  mqtt.Token
	sent time.Time
}

// send publishes the outbox in seq order, up to InFlight messages ahead of
// their acknowledgements, and removes each message once acknowledged.
func (c *Client) send(ctx context.Context, cn *connection) error {
	var queue []inflight
	var last int64 // highest seq published on this connection
	more := true   // the outbox may hold messages after last
	timer := time.NewTimer(c.cfg.AckTimeout)
	defer timer.Stop()
	for {
		if more && len(queue) < c.cfg.InFlight {
			recs, err := c.box.after(last, c.cfg.InFlight-len(queue))
			if err != nil {
				return err
			}
			more = len(recs) == c.cfg.InFlight-len(queue)
			for _, r := range recs {
				// Inventory is retained: a dashboard subscribing later, or
				// the server after losing its state, still learns what runs.
				tok := cn.pc.Publish(c.topic(r.ch), 1, r.ch == posfleet.ChannelFirmware, r.payload)
				queue = append(queue, inflight{seq: r.seq, ch: r.ch, tok: tok, sent: time.Now()})
				last = r.seq
			}
		}
		// Since Go 1.23 Reset and Stop leave no stale tick in the channel.
		var head <-chan struct{}
		if len(queue) > 0 {
			head = queue[0].tok.Done()
			// The deadline is the head's own: messages added meanwhile
			// do not extend it.
			timer.Reset(c.cfg.AckTimeout - time.Since(queue[0].sent))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cn.lost:
			return fmt.Errorf("%w: %v", errConnectionLost, cn.lostErr)
		case <-c.notify:
			more = true
		case <-timer.C:
			if len(queue) > 0 {
				return fmt.Errorf("firmwareclient: seq %d: %w", queue[0].seq, errAckTimeout)
			}
		case <-head:
			// Collect every acknowledged message at the head: one outbox
			// write for all of them.
			var seqs []int64
			for len(queue) > 0 && tokenDone(queue[0].tok) {
				if err := queue[0].tok.Error(); err != nil {
					return fmt.Errorf("firmwareclient: publish seq %d: %w", queue[0].seq, err)
				}
				seqs = append(seqs, queue[0].seq)
				c.st.acked[channelIndex(queue[0].ch)].Add(1)
				queue = queue[1:]
			}
			if err := c.box.remove(seqs); err != nil {
				return err
			}
		}
	}
}

func tokenDone(t mqtt.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// goOffline says goodbye on a graceful stop: the retained status turns
// offline at once instead of after the server's timeout (a normal
// DISCONNECT discards the last will).
func (c *Client) goOffline(cn *connection) {
	tok := cn.pc.Publish(c.topic(posfleet.ChannelStatus), 1, true, statusOffline)
	if tok.WaitTimeout(2 * time.Second) {
		c.st.statusSent.Add(1)
	}
	cn.pc.Disconnect(250)
}

// onMessage runs on paho's receive goroutine: it only hands the command
// over, so that a slow download never stalls the connection.
func (c *Client) onMessage(_ mqtt.Client, m mqtt.Message) {
	select {
	case c.cmds <- inbound{topic: m.Topic(), payload: append([]byte(nil), m.Payload()...)}:
	default:
		c.st.commandsRefused.Add(1)
		c.log.Warn("command dropped: too many commands waiting", "topic", m.Topic())
	}
}

// openConnection opens the network connection with Config.Dial, adding TLS
// for ssl:// brokers, within ConnectTimeout.
func (c *Client) openConnection(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ConnectTimeout)
	defer cancel()
	conn, err := c.cfg.Dial(ctx, "tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	switch uri.Scheme {
	case "ssl", "tls", "mqtts":
		conf := c.cfg.TLS
		if conf == nil {
			conf = &tls.Config{}
		}
		if conf.ServerName == "" {
			conf = conf.Clone()
			conf.ServerName = uri.Hostname()
		}
		tc := tls.Client(conn, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return tc, nil
	}
	return conn, nil
}
