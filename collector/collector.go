// Package collector turns accepted terminal messages into stored facts:
// it validates every message, drops duplicates, appends what it accepts to
// a durable spool before the publish is acknowledged, and drains the spool
// to the time-series store in batches.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
)

// PointEncoder turns messages and events into the store's wire format
// (line protocol). The InfluxDB adapter implements it.
type PointEncoder interface {
	AppendMessage(dst []byte, m *posfleet.Message) ([]byte, error)
	AppendRejection(dst []byte, r RejectionEvent) ([]byte, error)
	AppendSecurity(dst []byte, ev SecurityRecord) ([]byte, error)
}

// PointWriter stores one batch of lines. It returns nil only once the store
// has accepted every line; a *BatchRejectedError when the store refused the
// content itself (retrying it unchanged cannot help); any other error is
// taken as passing (store down, timeout) and the batch is retried. The
// collector leaves lines unchanged until a call with them returned nil, so
// a writer may send lines without copying them.
type PointWriter interface {
	WriteLines(ctx context.Context, lines []byte) error
}

// BatchRejectedError says the store refused a batch's content (a bad line),
// as opposed to being unavailable.
type BatchRejectedError struct{ Err error }

// Error implements error.
func (e *BatchRejectedError) Error() string { return "batch rejected: " + e.Err.Error() }

// Unwrap returns the store's error.
func (e *BatchRejectedError) Unwrap() error { return e.Err }

// ErrClosed is returned by Accept after Close.
var ErrClosed = errors.New("collector: closed")

// ErrSpoolFull is returned by Accept while the spool holds more than
// Options.MaxSpoolBytes not yet stored: the store has been unreachable for
// long. The broker then refuses the publish, and terminals keep the data in
// their own offline store instead.
var ErrSpoolFull = errors.New("collector: spool full, store unreachable for too long")

// RejectionEvent and SecurityRecord are the root-owned values of the
// security page (posfleet.RejectionEvent, posfleet.SecurityRecord).
type (
	RejectionEvent = posfleet.RejectionEvent
	SecurityRecord = posfleet.SecurityRecord
)

// Fsync policies of Options.Fsync.
const (
	// FsyncAlways: a publish is acknowledged only after the spool entry is
	// on disk (fsync). Concurrent publishes share one fsync (group commit).
	// Neither a process crash nor an OS crash or power loss loses an
	// acknowledged message.
	FsyncAlways = "always"
	// FsyncInterval: entries are written to the OS at once and fsynced every
	// Options.FsyncInterval. A crash of the process loses nothing; a crash of
	// the OS or a power loss can lose what was acknowledged in the last
	// interval.
	FsyncInterval = "interval"
)

// Observer consumes the messages the collector accepted: each one once,
// after it is durable, never a duplicate (the health engine, the command
// tracker). Observe runs on the collector's commit path: it must not
// block, and it must not keep the message or any pointer into it (its
// strings may be kept: they are never reused): once observed, the message
// goes back to the decoder's pool (posfleet.Message.Release).
type Observer interface {
	Observe(*posfleet.Message)
}

// RejectionObserver is an Observer that is also told of every message the
// collector rejected (the health engine: bad_data, and a terminal that
// sends only bad messages is still connected). It gets the reason, never
// the payload. ObserveRejection runs on the submitter's path: it must not
// block.
type RejectionObserver interface {
	ObserveRejection(RejectionEvent)
}

// EventSink keeps the security events and rejections the collector
// stores. Its methods must not block (hand off to a queue).
type EventSink interface {
	Rejection(RejectionEvent)
	Security(SecurityRecord)
}

// Options configures a Collector.
type Options struct {
	SpoolDir      string
	Fsync         string
	FsyncInterval time.Duration
	// SegmentBytes is the size of one spool segment file.
	SegmentBytes int
	// MaxSpoolBytes bounds what the spool holds while the store is down.
	MaxSpoolBytes int64
	// BatchLines and BatchWait bound a write batch: it is sent when it has
	// BatchLines lines or its oldest line waited BatchWait.
	BatchLines int
	BatchWait  time.Duration
	// Writers is how many batches are written to the store at once, each
	// writer taking the lines of its share of the terminals, so that a
	// terminal's points reach the store in order. The store takes
	// concurrent writes faster than one after the other, and the next
	// round of batches is gathered while they are under way.
	Writers int
	// RetryMin and RetryMax bound the backoff between attempts while the
	// store is unavailable.
	RetryMin, RetryMax time.Duration
	// FlushTimeout bounds how long Close waits for the spool to drain.
	FlushTimeout time.Duration
	// EventWindow is the aggregation window of security events and
	// rejections: the first event of a kind from one source (terminal or
	// username, and address) is stored at once, the rest of the window as
	// one point with a count. Zero takes the default.
	EventWindow time.Duration
	// MaxEventKeys bounds the sources aggregated at once, for security
	// events and rejections each; past it, events are aggregated per kind
	// without their source. Zero takes the default.
	MaxEventKeys int
	// IsKnown tells whether a terminal is provisioned (for security events);
	// nil takes every terminal as unknown.
	IsKnown func(posfleet.TerminalRef) bool
	// EventSink, when set, is also given every security event and
	// rejection the collector stores (single events and window summaries,
	// redacted), to keep them beyond the latest in memory: the journal's
	// tables in posfleet serve. It is called on the broker's packet path
	// and must not block.
	EventSink EventSink
	// Observers are given every message once it is durable and not a
	// duplicate, in this order (the health engine and the command
	// tracker in posfleet serve).
	Observers []Observer
	Logger    *slog.Logger
	Metrics   prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultOptions returns the defaults, each chosen for a single server with
// tens of thousands of terminals.
func DefaultOptions() Options {
	return Options{
		SpoolDir: "data/spool",
		// Safe by default: an acknowledged message survives a power loss.
		// Group commit keeps it cheap (one fsync for all publishes arriving
		// during the previous one; about 0.1-2 ms on SSDs).
		Fsync:         FsyncAlways,
		FsyncInterval: 100 * time.Millisecond,
		// Small enough that trimming the front of the log (a copy of the
		// rest of one segment) stays cheap, large enough to be rare.
		SegmentBytes: 8 << 20,
		// About 4 hours of a 10,000-terminal fleet at default rates; past it,
		// terminals keep data in their own offline store.
		MaxSpoolBytes: 2 << 30,
		// InfluxDB's own guidance: 5,000 lines per write.
		BatchLines: 5000,
		// Low enough that data is queryable within a second.
		BatchWait: 200 * time.Millisecond,
		// Three: InfluxDB alone reaches its ceiling on a 2-core machine with
		// two concurrent writers (make bench tries 1, 2 and 4), but with
		// posfleet's pipeline beside it three stored as much or more in
		// alternating runs; three is also what the writer really ran
		// before its bound was made exact.
		Writers:      3,
		RetryMin:     100 * time.Millisecond,
		RetryMax:     10 * time.Second,
		FlushTimeout: 10 * time.Second,
		// Short enough that the Security page and the store show a flood's
		// size within seconds; long enough that a flood of thousands of
		// events a second costs one point per source every few seconds.
		EventWindow: 10 * time.Second,
		// Far more sources than misbehave at once in a real fleet; at about
		// 300 bytes a key, 10,000 keys are 3 MiB per aggregator.
		MaxEventKeys: 10_000,
	}
}

// withDefaults fills the zero options that have a default of their own.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Writers == 0 {
		o.Writers = d.Writers
	}
	if o.EventWindow == 0 {
		o.EventWindow = d.EventWindow
	}
	if o.MaxEventKeys == 0 {
		o.MaxEventKeys = d.MaxEventKeys
	}
	return o
}

// Validate reports the first option out of its range, checking o as given
// (New fills a zero Writers, EventWindow or MaxEventKeys with its default
// before it checks).
func (o Options) Validate() error {
	switch {
	case o.Fsync != FsyncAlways && o.Fsync != FsyncInterval:
		return fmt.Errorf("collector: fsync policy %q: want %q or %q", o.Fsync, FsyncAlways, FsyncInterval)
	case o.BatchLines < 1 || o.BatchWait <= 0 || o.RetryMin <= 0 || o.RetryMax < o.RetryMin:
		return fmt.Errorf("collector: batch and retry settings must be positive")
	case o.Writers < 1 || o.Writers > 64:
		return fmt.Errorf("collector: Writers %d: want 1..64", o.Writers)
	case o.EventWindow < minEventWindow || o.EventWindow > maxEventWindow:
		return fmt.Errorf("collector: EventWindow %v: want %v..%v", o.EventWindow, minEventWindow, maxEventWindow)
	case o.MaxEventKeys < 1 || o.MaxEventKeys > maxMaxEventKeys:
		return fmt.Errorf("collector: MaxEventKeys %d: want 1..%d", o.MaxEventKeys, maxMaxEventKeys)
	}
	return nil
}

// Bounds of the event aggregation options.
const (
	minEventWindow  = 10 * time.Millisecond
	maxEventWindow  = time.Hour
	maxMaxEventKeys = 1_000_000
)

// Collector validates, deduplicates and spools messages, and writes the
// spool to the store.
type Collector struct {
	opts    Options
	log     *slog.Logger
	enc     PointEncoder
	w       PointWriter
	spool   *spool
	metrics *metrics
	now     func() time.Time

	commits chan *commit
	pool    sync.Pool
	wake    chan struct{} // a new entry is in the spool
	closing chan struct{}
	done    sync.WaitGroup
	closed  atomic.Bool
	// gate lets Close wait for every Accept that got past the closed check
	// before it stops the committer, so no record is handed over unanswered.
	gate sync.RWMutex

	spoolBytes atomic.Int64 // bytes appended and not yet acknowledged
	lastTS     atomic.Int64 // for unique timestamps of events

	termMu    sync.Mutex
	terminals map[posfleet.TerminalRef]*terminalState

	rejections *ring[RejectionEvent]
	security   *ring[SecurityRecord]

	// secAgg and rejAgg aggregate events per source (see aggregator);
	// eventLoop stores their windows' points until aggStop closes.
	secAgg  *aggregator[securityKey, SecurityRecord]
	rejAgg  *aggregator[rejectionKey, RejectionEvent]
	aggStop chan struct{}
	aggDone sync.WaitGroup

	deadMu   sync.Mutex            // the dead-letter file
	writeErr atomic.Pointer[error] // last write error, nil after a success
	spoolErr atomic.Pointer[error] // last spool write error, nil after a success
	acked    atomic.Uint64         // mirror of spool.acked for Stats
}

type terminalState struct {
	mu       sync.Mutex
	seq      seqFilter
	gaps     int64
	dups     int64
	resets   int64
	rejected map[posfleet.Reason]int64
	security map[posfleet.SecurityKind]int64
}

// commit is one spool record on its way through the committer.
type commit struct {
	rec []byte
	// For a terminal's message: the message, its terminal's state and the
	// submitter's answer; nil for events.
	msg    *posfleet.Message
	st     *terminalState
	answer func(error)
	// to and tag answer instead of answer, for SubmitTo.
	to     Completer
	tag    uint64
	pooled bool // from c.pool, returned there once answered
}

// recentEvents is how many rejections and security events are kept for the vendor.
const recentEvents = 1000

// New opens the spool in opts.SpoolDir and starts the committer and the
// writer. Close stops them.
func New(opts Options, enc PointEncoder, w PointWriter) (*Collector, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	sp, err := openSpool(opts.SpoolDir, opts.SegmentBytes, opts.Fsync == FsyncInterval)
	if err != nil {
		return nil, err
	}
	c := &Collector{
		opts:       opts,
		log:        opts.Logger,
		enc:        enc,
		w:          w,
		spool:      sp,
		now:        opts.Now,
		commits:    make(chan *commit, 4096),
		wake:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
		terminals:  make(map[posfleet.TerminalRef]*terminalState),
		rejections: newRing[RejectionEvent](recentEvents),
		security:   newRing[SecurityRecord](recentEvents),
		secAgg:     newAggregator(opts.EventWindow, opts.MaxEventKeys, otherSecurity),
		rejAgg:     newAggregator(opts.EventWindow, opts.MaxEventKeys, otherRejection),
		aggStop:    make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "collector")
	if c.now == nil {
		c.now = time.Now
	}
	c.pool.New = func() any { return &commit{pooled: true} }
	c.metrics = newMetrics(opts.Metrics, c)
	if d := sp.damage; d != nil {
		c.metrics.spoolDamaged.Add(float64(d.Regions))
		c.log.Warn("spool was damaged (a torn write); intact entries kept, damage set aside",
			"damaged_regions", d.Regions, "unreadable_bytes", d.Bytes, "entries_salvaged_after_damage", d.Salvaged,
			"rewritten_from_index", d.From, "set_aside_in", d.Dir)
	}
	if err := c.recover(); err != nil {
		sp.close()
		return nil, err
	}
	c.done.Add(2)
	go c.commitLoop()
	go c.writeLoop()
	if opts.Fsync == FsyncInterval {
		c.done.Add(1)
		go c.syncLoop()
	}
	c.aggDone.Add(1)
	go c.eventLoop()
	return c, nil
}

// recover rebuilds what the spool knows after a restart: the bytes still to
// write and the duplicate filter of every terminal with entries in it.
func (c *Collector) recover() error {
	last := c.spool.last.Load()
	var pending int64
	for i := c.spool.first; i <= last; i++ {
		b, err := c.spool.read(i)
		if err != nil {
			return err
		}
		r, err := parseRecord(b)
		if err != nil {
			return fmt.Errorf("spool entry %d: %w", i, err)
		}
		if i > c.spool.acked {
			pending += int64(len(b))
		}
		if r.Seq > 0 {
			if ref, err := posfleet.ParseClientID(r.Ref); err == nil {
				c.state(ref).seq.observe(r.Seq, r.TS)
			}
		}
	}
	c.spoolBytes.Store(pending)
	c.acked.Store(c.spool.acked)
	if n := last - c.spool.acked; n > 0 {
		c.log.Info("spool recovered", "entries_to_write", n, "bytes", pending)
	}
	return nil
}

func (c *Collector) state(ref posfleet.TerminalRef) *terminalState {
	c.termMu.Lock()
	defer c.termMu.Unlock()
	st := c.terminals[ref]
	if st == nil {
		st = &terminalState{}
		c.terminals[ref] = st
	}
	return st
}

// Accept validates one uplink message and, unless it is a duplicate,
// appends it to the spool. It returns nil once the message is durable (or
// was a duplicate, dropped silently), a *posfleet.Rejection for bad input,
// which is counted and stored without its payload, or another error when
// the message could not be stored now and must not be acknowledged.
//
// Accept is Submit followed by a wait for its answer.
func (c *Collector) Accept(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte) error {
	answer := make(chan error, 1)
	if err := c.Submit(ctx, ref, ch, payload, func(err error) { answer <- err }); err != nil {
		return err
	}
	return <-answer
}

// Submit is Accept without the wait, for a caller that keeps reading while
// earlier messages are written (the broker acknowledges a publish when its
// spool write completes, so one connection can have many in one group
// commit).
//
// It returns a *posfleet.Rejection for bad input, or an error (ErrClosed,
// ErrSpoolFull, ctx's) when it cannot take the message now; done is then
// never called. Otherwise it returns nil and calls done exactly once: with
// nil when the message is durable or was a duplicate, or with the error
// that kept it from the spool. done may run before Submit returns (a
// duplicate) or on the collector's completion goroutine, in the order the
// messages were submitted; it must not block. ctx bounds only the hand-off
// to the spool writer.
func (c *Collector) Submit(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte, done func(error)) error {
	return c.submit(ctx, ref, ch, payload, done, nil, 0)
}

// Completer is told that a message given to SubmitTo is settled, as the
// done function of Submit is: Complete(tag, err) with the caller's tag. It
// is an interface literal so that a caller can declare the same method
// without importing this package.
type Completer = interface{ Complete(tag uint64, err error) }

// SubmitTo is Submit with to.Complete(tag, err) in place of done(err): a
// caller with many messages under way (the broker, one per publish) needs
// no callback value per message, only a tag.
func (c *Collector) SubmitTo(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte, to Completer, tag uint64) error {
	return c.submit(ctx, ref, ch, payload, nil, to, tag)
}

// submit is Submit (done set) and SubmitTo (to set).
func (c *Collector) submit(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte, done func(error), to Completer, tag uint64) error {
	if c.closed.Load() {
		return ErrClosed
	}
	now := c.now()
	msg, err := posfleet.Decode(ref, ch, payload, now)
	if err != nil {
		var rej *posfleet.Rejection
		if errors.As(err, &rej) {
			c.reject(ctx, ref, ch, rej, now)
		}
		return err
	}
	h := msg.Header()
	st := c.state(msg.Terminal)
	if h.Seq > 0 {
		// A seq already durable is a redelivery: answer at once. One still
		// on its way to the spool is written again (the point is
		// idempotent) and complete sorts out which copy counts.
		st.mu.Lock()
		v, _ := st.seq.check(h.Seq, h.TS.UnixMilli())
		if v == seqDuplicate {
			st.dups++
		}
		st.mu.Unlock()
		if v == seqDuplicate {
			c.metrics.duplicates.Inc()
			if to != nil {
				to.Complete(tag, nil)
			} else {
				done(nil)
			}
			msg.Release()
			return nil
		}
	}
	cm := c.pool.Get().(*commit)
	rec := appendTerminalRecord(cm.rec[:0], msg.Terminal, h.Seq, h.TS.UnixMilli())
	rec, err = c.enc.AppendMessage(rec, msg)
	if err != nil {
		// The decoder accepted it but the store cannot hold it (a timestamp
		// outside what InfluxDB can represent, say): bad input all the same.
		c.pool.Put(cm)
		rej := &posfleet.Rejection{Reason: posfleet.ReasonOutOfRange, Detail: "not storable"}
		c.reject(ctx, msg.Terminal, msg.Channel, rej, msg.Received)
		msg.Release()
		return rej
	}
	cm.rec, cm.msg, cm.st, cm.answer, cm.to, cm.tag = rec, msg, st, done, to, tag
	return c.handOff(ctx, cm)
}

// complete runs, in submission order, once a commit's spool write is over:
// it counts the message and feeds the health engine, unless an earlier
// copy of the same seq got there first, then answers the submitter.
func (c *Collector) complete(cm *commit, err error) {
	if err == nil && cm.msg != nil {
		h := cm.msg.Header()
		v, gap := seqNew, int64(0)
		if h.Seq > 0 {
			ts := h.TS.UnixMilli()
			cm.st.mu.Lock()
			switch v, gap = cm.st.seq.check(h.Seq, ts); v {
			case seqDuplicate:
				cm.st.dups++
			case seqReset:
				cm.st.resets++
			}
			cm.st.seq.mark(h.Seq, ts, v)
			cm.st.gaps += gap
			cm.st.mu.Unlock()
		}
		switch v {
		case seqDuplicate:
			c.metrics.duplicates.Inc()
		default:
			if v == seqReset {
				c.metrics.seqResets.Inc()
				c.log.Info("terminal seq reset: counting again from a lower seq", "terminal", cm.msg.Terminal.String(), "seq", h.Seq)
			}
			if gap > 0 {
				c.metrics.gaps.Add(float64(gap))
			}
			c.metrics.acceptedBy[cm.msg.Channel].Inc()
			for _, o := range c.opts.Observers {
				o.Observe(cm.msg)
			}
		}
	}
	if cm.to != nil {
		cm.to.Complete(cm.tag, err)
	} else if cm.answer != nil {
		cm.answer(err)
	}
	// Stored and observed: the observers keep no pointer into a message
	// (they copy what they keep), so its block can serve the next Decode.
	if cm.msg != nil {
		cm.msg.Release()
	}
	if cm.pooled {
		cm.rec, cm.msg, cm.st, cm.answer, cm.to = cm.rec[:0], nil, nil, nil, nil
		c.pool.Put(cm)
	}
}

// handOff gives a record to the committer. The committer owns it from
// then on and answers it through complete.
func (c *Collector) handOff(ctx context.Context, cm *commit) error {
	c.gate.RLock()
	defer c.gate.RUnlock()
	fail := func(err error) error {
		if cm.msg != nil {
			cm.msg.Release()
		}
		cm.msg, cm.st, cm.answer, cm.to = nil, nil, nil, nil
		if cm.pooled {
			c.pool.Put(cm)
		}
		return err
	}
	if c.closed.Load() {
		return fail(ErrClosed)
	}
	if c.spoolBytes.Load() > c.opts.MaxSpoolBytes {
		return fail(ErrSpoolFull)
	}
	select {
	case c.commits <- cm:
		return nil
	default:
	}
	// The committer is behind: wait, as long as ctx allows.
	select {
	case c.commits <- cm:
		return nil
	case <-c.closing:
		return fail(ErrClosed)
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

func (c *Collector) reject(_ context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, rej *posfleet.Rejection, at time.Time) {
	ch = posfleet.Channel(posfleet.Redact(string(ch))) // the topic's last level, as the terminal wrote it
	c.metrics.rejected.WithLabelValues(string(rej.Reason)).Inc()
	st := c.state(ref)
	st.mu.Lock()
	if st.rejected == nil {
		st.rejected = make(map[posfleet.Reason]int64)
	}
	st.rejected[rej.Reason]++
	st.mu.Unlock()
	c.log.Debug("message rejected", "terminal", ref.String(), "channel", string(ch), "reason", string(rej.Reason), "field", rej.Field)

	ev := RejectionEvent{Time: at, Terminal: ref, Channel: ch, Reason: rej.Reason, Field: rej.Field}
	for _, o := range c.opts.Observers {
		if ro, ok := o.(RejectionObserver); ok {
			ro.ObserveRejection(RejectionEvent{Time: at, Terminal: ref, Channel: ch, Reason: rej.Reason, Count: 1})
		}
	}
	out, store, full := c.rejAgg.add(rejectionKey{rej.Reason, ref, ch}, ev, c.now())
	if full {
		c.metrics.rejectionsDropped.WithLabelValues(dropAggregatorFull).Inc()
	}
	if store {
		c.storeRejection(out, 1, nil)
	}
}

// rejectionKey is what rejections are aggregated by.
type rejectionKey struct {
	reason   posfleet.Reason
	terminal posfleet.TerminalRef
	channel  posfleet.Channel
}

// otherRejection is the catch-all of a reason when the aggregator is full.
func otherRejection(k rejectionKey, ev RejectionEvent) (rejectionKey, RejectionEvent) {
	return rejectionKey{reason: k.reason}, RejectionEvent{Time: ev.Time, Reason: ev.Reason}
}

// storeRejection keeps a rejection (or a window's summary of count of them)
// among the latest and hands it to the spool without waiting. done, if
// set, is called once the record is written or dropped.
func (c *Collector) storeRejection(ev RejectionEvent, count int64, done func()) {
	ev.Time, ev.Count = c.uniqueTime(ev.Time), count
	c.rejections.add(ev)
	if c.opts.EventSink != nil {
		c.opts.EventSink.Rejection(ev)
	}
	rec, err := c.enc.AppendRejection(appendRecord(nil, ev.Terminal.String(), 0, 0, nil), ev)
	if err != nil {
		c.log.Warn("rejection not stored", "err", err)
		if done != nil {
			done()
		}
		return
	}
	if reason := c.handOffEvent(rec, done); reason != "" {
		c.metrics.rejectionsDropped.WithLabelValues(reason).Inc()
	}
}

// RecordSecurity counts a security event and stores it, aggregated per
// source (see Options.EventWindow). It does not block on the disk: the
// broker calls it on its packet path.
func (c *Collector) RecordSecurity(ev posfleet.SecurityEvent) {
	ev = ev.Redacted() // nothing the client chose may carry card data into the spool, the store or the pages
	if c.closed.Load() {
		return
	}
	c.metrics.security.WithLabelValues(string(ev.Kind)).Inc()
	rec := SecurityRecord{SecurityEvent: ev, Known: c.opts.IsKnown != nil && ev.Terminal != (posfleet.TerminalRef{}) && c.opts.IsKnown(ev.Terminal)}
	if rec.Known { // per-terminal counts only for real terminals: made-up names must not grow memory
		st := c.state(rec.Terminal)
		st.mu.Lock()
		if st.security == nil {
			st.security = make(map[posfleet.SecurityKind]int64)
		}
		st.security[rec.Kind]++
		st.mu.Unlock()
	}
	k := securityKey{kind: rec.Kind, terminal: rec.Terminal, username: rec.Username, source: sourceHost(rec.Remote)}
	out, store, full := c.secAgg.add(k, rec, c.now())
	if full {
		c.metrics.securityDropped.WithLabelValues(dropAggregatorFull).Inc()
	}
	if store {
		c.storeSecurity(out, 1, nil)
	}
}

// securityKey is what security events are aggregated by: the source's
// address without its port, which changes with every connection.
type securityKey struct {
	kind     posfleet.SecurityKind
	terminal posfleet.TerminalRef
	username string
	source   string
}

// otherSecurity is the catch-all of a kind when the aggregator is full.
func otherSecurity(k securityKey, ev SecurityRecord) (securityKey, SecurityRecord) {
	return securityKey{kind: k.kind}, SecurityRecord{SecurityEvent: posfleet.SecurityEvent{Time: ev.Time, Kind: ev.Kind, Username: otherSources}}
}

// otherSources is the username of a catch-all security record.
const otherSources = "(other sources)"

// sourceHost returns the host of a host:port address, or addr itself.
func sourceHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// storeSecurity keeps a security record (or a window's summary of count of
// them) among the latest and hands it to the spool without waiting. done,
// if set, is called once the record is written or dropped.
func (c *Collector) storeSecurity(rec SecurityRecord, count int64, done func()) {
	rec.Time, rec.Count = c.uniqueTime(rec.Time), count
	c.security.add(rec)
	if c.opts.EventSink != nil {
		c.opts.EventSink.Security(rec)
	}
	b, err := c.enc.AppendSecurity(appendRecord(nil, rec.Terminal.String(), 0, 0, nil), rec)
	if err != nil {
		c.log.Warn("security event not stored", "err", err)
		if done != nil {
			done()
		}
		return
	}
	if reason := c.handOffEvent(b, done); reason != "" {
		c.metrics.securityDropped.WithLabelValues(reason).Inc()
	}
}

// Reasons an event is not stored, the label of the dropped-events metrics.
const (
	dropSpoolFull      = "spool_full"      // the spool is over Options.MaxSpoolBytes
	dropQueueFull      = "queue_full"      // the committer is behind (a flood)
	dropAggregatorFull = "aggregator_full" // counted under its kind, without its source
	dropClosed         = "closed"
)

// handOffEvent gives an event's record to the committer without waiting:
// an attacker's flood must not slow the broker, and an event is refused
// like a publish once the spool is over its cap. It returns why the record
// was dropped, "" when it was handed over. done, if set, is called once the
// record is written or dropped.
func (c *Collector) handOffEvent(rec []byte, done func()) (dropped string) {
	var answer func(error)
	if done != nil {
		answer = func(error) { done() }
		defer func() {
			if dropped != "" {
				done()
			}
		}()
	}
	if c.spoolBytes.Load() > c.opts.MaxSpoolBytes {
		return dropSpoolFull
	}
	if done == nil { // Close hands its last events over itself, the committer still running
		c.gate.RLock()
		defer c.gate.RUnlock()
		if c.closed.Load() {
			return dropClosed
		}
	}
	select {
	case c.commits <- &commit{rec: rec, answer: answer}:
		return ""
	default:
		return dropQueueFull
	}
}

// eventLoop stores the aggregation windows' points as windows end.
func (c *Collector) eventLoop() {
	defer c.aggDone.Done()
	// A quarter window: a window's point is stored at most a quarter window
	// late.
	t := time.NewTicker(c.opts.EventWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.storeDueEvents()
		case <-c.aggStop:
			return
		}
	}
}

// storeDueEvents stores the points of the windows that ended.
func (c *Collector) storeDueEvents() {
	now := c.now()
	for _, s := range c.secAgg.due(now, false) {
		c.storeSecurity(s.ev, s.count, nil)
	}
	for _, s := range c.rejAgg.due(now, false) {
		c.storeRejection(s.ev, s.count, nil)
	}
}

// flushEvents stores the counts of every open aggregation window and waits
// (at most Options.FlushTimeout) until they are written: Close calls it
// while the committer still runs.
func (c *Collector) flushEvents() {
	close(c.aggStop)
	c.aggDone.Wait()
	var wg sync.WaitGroup
	now := c.now()
	sec, rej := c.secAgg.due(now, true), c.rejAgg.due(now, true)
	wg.Add(len(sec) + len(rej))
	for _, s := range sec {
		c.storeSecurity(s.ev, s.count, wg.Done)
	}
	for _, s := range rej {
		c.storeRejection(s.ev, s.count, wg.Done)
	}
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()
	t := time.NewTimer(c.opts.FlushTimeout)
	defer t.Stop()
	select {
	case <-written:
	case <-t.C:
		c.log.Warn("event counts not stored before close")
	}
}

// uniqueTime returns t, nudged by nanoseconds so that no two events stored
// by this process share a timestamp (they would overwrite each other).
func (c *Collector) uniqueTime(t time.Time) time.Time {
	for {
		last := c.lastTS.Load()
		n := t.UnixNano()
		if n <= last {
			n = last + 1
		}
		if c.lastTS.CompareAndSwap(last, n) {
			return time.Unix(0, n)
		}
	}
}

// commitLoop writes records to the spool, as many per write (and fsync) as
// have arrived meanwhile, and passes each written group to completeLoop, so
// that the next write starts while the last group is being answered.
func (c *Collector) commitLoop() {
	defer c.done.Done()
	groups := make(chan committed, 2)
	// spare recycles the groups' slices from completeLoop.
	spare := make(chan []*commit, cap(groups)+2)
	c.done.Add(1)
	go c.completeLoop(groups, spare)
	defer close(groups)

	var recs [][]byte
	// A group is bounded so that one write stays a few MiB at most; with
	// asynchronous acknowledgements every terminal can have many records in
	// one group.
	const maxGroup = 4096
	for {
		var pending []*commit
		select {
		case cm := <-c.commits:
			select {
			case pending = <-spare:
			default:
				pending = make([]*commit, 0, 64)
			}
			pending = append(pending, cm)
		case <-c.closing:
			// Answer whatever was handed over before Close.
			for {
				select {
				case cm := <-c.commits:
					pending = append(pending, cm)
				default:
					groups <- committed{pending, ErrClosed}
					return
				}
			}
		}
		yielded := false
	more:
		for len(pending) < maxGroup {
			select {
			case cm := <-c.commits:
				pending = append(pending, cm)
			default:
				if yielded {
					break more
				}
				// Let the read loops that are ready run first: what they
				// hand over joins this write and its fsync instead of
				// the next one's. Without them, Gosched returns at once.
				yielded = true
				runtime.Gosched()
			}
		}
		recs = recs[:0]
		var size int64
		for _, cm := range pending {
			recs = append(recs, cm.rec)
			size += int64(len(cm.rec))
		}
		start := time.Now()
		_, err := c.spool.append(recs)
		c.metrics.commitSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			c.spoolBytes.Add(size)
			select {
			case c.wake <- struct{}{}:
			default:
			}
			c.spoolErr.Store(nil)
		} else {
			// The whole group is refused (no PUBACK): the spool cut its log
			// back to before it, so nothing of it is durable.
			c.log.Error("spool write failed; refusing the messages of this write", "err", err, "messages", len(pending))
			c.metrics.spoolErrors.Inc()
			c.spoolErr.Store(&err)
		}
		groups <- committed{pending, err}
	}
}

// committed is a group of records written to the spool together, and the
// outcome of the write.
type committed struct {
	cms []*commit
	err error
}

// completeLoop answers written groups in order, and gives their slices
// back to commitLoop through spare.
func (c *Collector) completeLoop(groups <-chan committed, spare chan<- []*commit) {
	defer c.done.Done()
	for g := range groups {
		for _, cm := range g.cms {
			c.complete(cm, g.err)
		}
		clear(g.cms)
		select {
		case spare <- g.cms[:0]:
		default:
		}
	}
}

func (c *Collector) syncLoop() {
	defer c.done.Done()
	t := time.NewTicker(c.opts.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := c.spool.sync(); err != nil {
				// With --fsync=interval the entries since the last good
				// fsync are acknowledged already; they stay in the log, but
				// a crash of the OS now could lose them. Not retried as if
				// nothing happened: said loudly, and /healthz fails.
				c.log.Error("spool fsync failed: messages acknowledged since the last fsync may not survive an OS crash", "err", err)
				c.metrics.spoolErrors.Inc()
				c.spoolErr.Store(&err)
			}
		case <-c.closing:
			return
		}
	}
}

// backoff returns the wait before attempt n (from 0): exponential with
// full jitter, so that many collectors do not retry in step.
func (c *Collector) backoff(n int) time.Duration {
	d := c.opts.RetryMin << min(n, 20)
	if d > c.opts.RetryMax || d <= 0 {
		d = c.opts.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

// Close stops accepting, gives the writer up to Options.FlushTimeout to
// store what the spool holds, and closes the spool. What is not stored by
// then stays in the spool for the next start.
func (c *Collector) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.flushEvents()
	c.gate.Lock() // every Accept under way has its answer
	close(c.closing)
	c.gate.Unlock()
	c.done.Wait()
	if c.opts.Fsync == FsyncInterval {
		if err := c.spool.sync(); err != nil {
			c.log.Error("spool fsync failed", "err", err)
		}
	}
	c.metrics.unregister()
	return c.spool.close()
}

// Healthy returns nil while the spool takes writes and the last write to the
// store succeeded (or none failed yet).
func (c *Collector) Healthy() error {
	if c.closed.Load() {
		return ErrClosed
	}
	if p := c.spoolErr.Load(); p != nil {
		return fmt.Errorf("collector: spool not writable: %w", *p)
	}
	if p := c.writeErr.Load(); p != nil {
		return fmt.Errorf("collector: store unavailable: %w", *p)
	}
	return nil
}

// Stats is a snapshot of the collector's counters.
type Stats struct {
	SpoolEntries uint64 // in the spool, not yet stored
	SpoolBytes   int64
	Terminals    int // terminals seen since start
}

// Stats returns the collector's counters.
func (c *Collector) Stats() Stats {
	c.termMu.Lock()
	n := len(c.terminals)
	c.termMu.Unlock()
	return Stats{
		SpoolEntries: c.spool.last.Load() - c.acked.Load(),
		SpoolBytes:   c.spoolBytes.Load(),
		Terminals:    n,
	}
}

// TerminalCounters are one terminal's message counters since start (see
// seqFilter for the reset rule).
type TerminalCounters = posfleet.MessageCounts

// Counters returns a terminal's counters.
func (c *Collector) Counters(ref posfleet.TerminalRef) TerminalCounters {
	c.termMu.Lock()
	st := c.terminals[ref]
	c.termMu.Unlock()
	if st == nil {
		return TerminalCounters{}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	tc := TerminalCounters{Gaps: st.gaps, Duplicates: st.dups, SeqResets: st.resets, Rejected: make(map[posfleet.Reason]int64, len(st.rejected))}
	for k, v := range st.rejected {
		tc.Rejected[k] = v
	}
	tc.Security = make(map[posfleet.SecurityKind]int64, len(st.security))
	for k, v := range st.security {
		tc.Security[k] = v
	}
	return tc
}

// RecentRejections returns the latest rejected messages of a tenant ("" for
// all), newest first, at most n.
func (c *Collector) RecentRejections(tenant string, n int) []RejectionEvent {
	return c.rejections.latest(n, func(ev RejectionEvent) bool { return tenant == "" || ev.Terminal.Tenant == tenant })
}

// TerminalRejections returns the latest rejected messages of one terminal,
// newest first, at most n.
func (c *Collector) TerminalRejections(ref posfleet.TerminalRef, n int) []RejectionEvent {
	return c.rejections.latest(n, func(ev RejectionEvent) bool { return ev.Terminal == ref })
}

// TerminalSecurity returns the latest security events naming one
// provisioned terminal, newest first, at most n.
func (c *Collector) TerminalSecurity(ref posfleet.TerminalRef, n int) []SecurityRecord {
	return c.security.latest(n, func(ev SecurityRecord) bool { return ev.Known && ev.Terminal == ref })
}

// RecentSecurity returns the latest security events naming a tenant ("" for
// all), newest first, at most n.
func (c *Collector) RecentSecurity(tenant string, n int) []SecurityRecord {
	return c.security.latest(n, func(ev SecurityRecord) bool { return tenant == "" || ev.Terminal.Tenant == tenant })
}
