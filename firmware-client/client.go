package firmwareclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet"
)

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("firmwareclient: client closed")

// ErrRunning is returned by a second call of Run.
var ErrRunning = errors.New("firmwareclient: Run called twice")

// Client is one terminal's connection to posfleet. Create it with New,
// report with its Report methods (from any goroutine, before Run too: what
// is reported offline waits in the outbox), run it with Run, and stop it with
// Close.
type Client struct {
	cfg      Config
	ref      posfleet.TerminalRef
	log      *slog.Logger
	store    *Store
	ownStore bool
	box      *outbox
	started  time.Time

	notify    chan struct{} // a message was added to the outbox
	cmds      chan inbound  // commands handed over by the MQTT receive loop
	connected atomic.Bool

	invMu sync.Mutex
	inv   posfleet.Inventory

	running atomic.Bool
	closed  atomic.Bool
	runDone chan struct{}
	// runMu guards cancelRun, Run's way to be stopped by Close without a
	// goroutine waiting for it (a simulator runs thousands of clients).
	runMu     sync.Mutex
	cancelRun context.CancelFunc

	st counters
}

// inbound is a message received on the cmd topic.
type inbound struct {
	topic   string
	payload []byte
}

// commandQueue bounds the commands waiting for the command goroutine. The
// server sends a handful at most; a flood beyond this is refused.
const commandQueue = 16

// New checks cfg, opens the outbox and returns a client ready to Run. It
// does not connect.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:     cfg,
		ref:     posfleet.TerminalRef{Tenant: cfg.Tenant, Terminal: cfg.Terminal},
		store:   cfg.Store,
		started: cfg.Now(),
		notify:  make(chan struct{}, 1),
		cmds:    make(chan inbound, commandQueue),
		runDone: make(chan struct{}),
		inv:     cfg.Inventory,
	}
	c.log = cfg.Logger.With("component", "firmwareclient", "terminal", c.ref.String())
	if c.store == nil {
		c.store, err = OpenStore(filepath.Join(cfg.StoreDir, "outbox.db"), StoreOptions{})
		if err != nil {
			return nil, err
		}
		c.ownStore = true
	}
	if c.box, err = c.store.outbox(c.ref, cfg.Limits); err != nil {
		if c.ownStore {
			c.store.Close()
		}
		return nil, err
	}
	if c.inv.BootReason == "" && c.inv.Model != "" {
		c.inv.BootReason = posfleet.BootPowerOn
	}
	return c, nil
}

// Ref returns the terminal the client speaks for.
func (c *Client) Ref() posfleet.TerminalRef { return c.ref }

// Connected reports whether the client has a connection to the broker now.
func (c *Client) Connected() bool { return c.connected.Load() }

// Inventory returns the inventory as the client last reported it.
func (c *Client) Inventory() posfleet.Inventory {
	c.invMu.Lock()
	defer c.invMu.Unlock()
	return c.inv
}

// ReportHeartbeat queues a heartbeat. The client sets seq, ts when zero, and
// uptime_s when nil.
func (c *Client) ReportHeartbeat(ctx context.Context, hb posfleet.Heartbeat) error {
	if hb.UptimeS == nil {
		up := int64(c.cfg.Now().Sub(c.started) / time.Second)
		hb.UptimeS = &up
	}
	return c.enqueue(ctx, posfleet.ChannelHeartbeat, &hb.Header, &hb)
}

// RaiseFault queues a fault with state raised.
func (c *Client) RaiseFault(ctx context.Context, f posfleet.Fault) error {
	f.State = posfleet.FaultRaised
	return c.enqueue(ctx, posfleet.ChannelFault, &f.Header, &f)
}

// ClearFault queues a fault with state cleared: the component and code of
// an earlier RaiseFault work again.
func (c *Client) ClearFault(ctx context.Context, f posfleet.Fault) error {
	f.State = posfleet.FaultCleared
	return c.enqueue(ctx, posfleet.ChannelFault, &f.Header, &f)
}

// ReportInventory queues the inventory and makes it the client's current
// one (the base of the inventories reported after commands).
func (c *Client) ReportInventory(ctx context.Context, inv posfleet.Inventory) error {
	if err := c.enqueue(ctx, posfleet.ChannelFirmware, &inv.Header, &inv); err != nil {
		return err
	}
	c.invMu.Lock()
	c.inv = inv
	c.inv.Header = posfleet.Header{}
	c.invMu.Unlock()
	return nil
}

// ReportTransaction queues a transaction. One reported while the client is
// not connected is marked offline: it reaches the server later, from the
// outbox.
func (c *Client) ReportTransaction(ctx context.Context, t posfleet.Transaction) error {
	if !c.connected.Load() {
		t.Offline = true
	}
	return c.enqueue(ctx, posfleet.ChannelTxn, &t.Header, &t)
}

// reportAck queues the answer to a command.
func (c *Client) reportAck(ctx context.Context, cmdID, status, detail string) error {
	if len(detail) > posfleet.MaxFaultDetail {
		detail = detail[:posfleet.MaxFaultDetail]
	}
	a := posfleet.Ack{CmdID: cmdID, Status: status, Detail: detail}
	return c.enqueue(ctx, posfleet.ChannelAck, &a.Header, &a)
}

// seqReserve is how many bytes a real seq may add to the payload validated
// with seq 1 (19 digits instead of 1).
const seqReserve = 18

// enqueue validates the message as the server will (posfleet.Decode), so
// that nothing the server would refuse — card data above all — is ever
// stored or sent, then appends it to the outbox with the next seq.
func (c *Client) enqueue(ctx context.Context, ch posfleet.Channel, h *posfleet.Header, v any) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("firmwareclient: report %s: %w", ch, err)
	}
	if h.TS.IsZero() {
		h.TS = c.cfg.Now()
	}
	h.TS = h.TS.UTC()
	h.Seq = 1
	probe, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("firmwareclient: report %s: %w", ch, err)
	}
	if _, err := posfleet.Decode(c.ref, ch, probe, h.TS); err != nil {
		c.st.refused.Add(1)
		return fmt.Errorf("firmwareclient: report %s: the server would refuse it: %w", ch, err)
	}
	if len(probe)+seqReserve > posfleet.MaxPayloadBytes {
		c.st.refused.Add(1)
		return fmt.Errorf("firmwareclient: report %s: payload of %d bytes too large", ch, len(probe))
	}
	res, err := c.box.append(ch, func(seq int64) ([]byte, error) {
		h.Seq = seq
		return json.Marshal(v)
	})
	if err != nil {
		c.st.setErr(err)
		return err
	}
	i := channelIndex(ch)
	c.st.reported[i].Add(1)
	for _, d := range res.dropped {
		c.dropped(d, "older message given up for room")
	}
	if !res.stored {
		c.dropped(ch, "outbox full of more important messages")
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
	if !res.stored {
		return fmt.Errorf("firmwareclient: report %s seq %d: %w", ch, res.seq, errOutboxFull)
	}
	return nil
}

func (c *Client) dropped(ch posfleet.Channel, why string) {
	n := c.st.dropped[channelIndex(ch)].Add(1)
	// The first drop of a channel, then every 100th: an outbox that is
	// full stays full for a while and must not flood the log.
	if n == 1 || n%100 == 0 {
		c.log.Warn("outbox full: message dropped", "channel", string(ch), "why", why, "dropped_total", n)
	}
}

// Close stops Run (publishing {"online":false} if connected), waits for it
// to return, and closes the outbox. Messages not yet acknowledged stay in
// the outbox for the next start.
func (c *Client) Close() error {
	c.runMu.Lock()
	c.closed.Store(true)
	cancel := c.cancelRun
	c.runMu.Unlock()
	if cancel != nil {
		cancel()
	}
	if c.running.Load() {
		<-c.runDone
	}
	if c.ownStore {
		c.ownStore = false
		return c.store.Close()
	}
	return nil
}

// Run connects and keeps the terminal connected until ctx ends or Close is
// called: it reports the boot inventory, sends heartbeats, delivers the
// outbox in seq order, and carries out commands. It returns nil when
// stopped, ErrRunning when called twice and ErrClosed after Close.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(c.runDone)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.runMu.Lock()
	if c.closed.Load() {
		c.runMu.Unlock()
		return ErrClosed
	}
	c.cancelRun = cancel
	c.runMu.Unlock()
	c.boot(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.heartbeats(ctx) }()
	go func() { defer wg.Done(); c.commandLoop(ctx) }()
	c.connectLoop(ctx)
	cancel()
	wg.Wait()
	return nil
}

// boot reports what a terminal reports when it starts: the outcome of a
// command that restarted it, its inventory, and a first heartbeat. Nothing
// here stops the client from running: a full outbox or a storage error is
// logged and counted, and the connection still delivers what there is.
func (c *Client) boot(ctx context.Context) {
	if err := c.finishPending(ctx); err != nil {
		c.log.Error("outcome of the command before the restart not reported", "err", err)
	}
	inv := c.Inventory()
	if inv.Model != "" {
		if err := c.ReportInventory(ctx, inv); err != nil {
			c.log.Error("boot inventory not reported", "err", err)
		}
	}
	if c.cfg.HeartbeatInterval > 0 {
		c.heartbeat(ctx)
	}
}

func (c *Client) heartbeats(ctx context.Context) {
	if c.cfg.HeartbeatInterval <= 0 {
		return
	}
	// The first period starts at a random point so that a fleet started at
	// once does not send its heartbeats in the same second for ever.
	t := time.NewTimer(jitter(c.cfg.HeartbeatInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.heartbeat(ctx)
			t.Reset(c.cfg.HeartbeatInterval)
		}
	}
}

func (c *Client) heartbeat(ctx context.Context) {
	var hb posfleet.Heartbeat
	if c.cfg.Heartbeat != nil {
		hb = c.cfg.Heartbeat()
	}
	if err := c.ReportHeartbeat(ctx, hb); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		c.log.Warn("heartbeat not reported", "err", err)
	}
}
