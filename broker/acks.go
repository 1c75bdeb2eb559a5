package broker

import (
	"context"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
)

// Submitter is a Sink that can also take a message without the broker
// waiting for it to be durable. The broker then reads a terminal's next
// publishes while earlier ones are being written, and acknowledges each
// when done reports it stored, so one spool write (and fsync) holds many
// messages of each terminal instead of one.
//
// Submit returns a *posfleet.Rejection for bad input, another error when it
// cannot take the message now (done is then never called), or nil; after
// nil it calls done exactly once, with nil once the message is durable (or
// was a duplicate) or with the error that kept it from being stored. Calls
// to done for one terminal come in the order of its Submit calls; done may
// run before Submit returns and must not block. ctx bounds the hand-off
// only.
type Submitter interface {
	Submit(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte, done func(error)) error
}

// submitter returns how the broker hands messages to sink: its own Submit,
// or, for a Sink that only has Accept, Accept followed by done.
func submitter(sink Sink) func(context.Context, posfleet.TerminalRef, posfleet.Channel, []byte, func(error)) error {
	if s, ok := sink.(Submitter); ok {
		return s.Submit
	}
	return func(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte, done func(error)) error {
		if err := sink.Accept(ctx, ref, ch, payload); err != nil {
			return err
		}
		done(nil)
		return nil
	}
}

// ackQueue holds one connection's QoS 1 acknowledgements in the order the
// publishes arrived (MQTT-4.6.0-2 asks for that order) and writes each once
// its message is settled: stored, or refused. Whatever is ready when the
// writer runs goes out in one write.
//
// Its writer is a goroutine started only while something is ready, so an
// idle connection costs no goroutine; room is made only when a publish first
// has to wait for it, and an entry takes 4 bytes: what every connected
// terminal holds is small.
type ackQueue struct {
	cl *mqtt.Client
	v5 bool

	mu      sync.Mutex
	head    uint64        // entries removed so far: entries[i] is number head+i
	entries []ackEntry    // unwritten, in arrival order
	writing bool          // the writer goroutine runs
	failed  bool          // nothing more is acknowledged on this connection
	room    chan struct{} // signalled when entries leave; nil until a publish waits
}

type ackEntry struct {
	id    uint16
	code  byte // reason code (packets.Code's Code)
	ready bool
}

func newAckQueue(cl *mqtt.Client) *ackQueue {
	return &ackQueue{cl: cl, v5: cl.Properties.ProtocolVersion == 5}
}

// signal wakes a publish waiting for room, if any.
func signal(room chan struct{}) {
	select {
	case room <- struct{}{}:
	default: // none waits, or one is woken already (or room is nil)
	}
}

// errAckQueueFailed ends the handling of a publish on a connection whose
// acknowledgements stopped (a message could not be stored, or a write
// failed): it is left unacknowledged and the terminal resends it.
var errAckQueueFailed = packets.ErrRejectPacket

// waitRoom waits until fewer than max acknowledgements are pending, so that
// a terminal cannot make the broker hold more than ReceiveMaximum of its
// messages, and so that with max 1 every earlier acknowledgement is written
// before mochi writes one of its own.
func (q *ackQueue) waitRoom(ctx context.Context, max int) error {
	for {
		q.mu.Lock()
		n, failed := len(q.entries), q.failed
		if !failed && n >= max && q.room == nil {
			q.room = make(chan struct{}, 1)
		}
		room := q.room
		q.mu.Unlock()
		switch {
		case failed:
			return errAckQueueFailed
		case n < max:
			return nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// add appends the acknowledgement of packet id, not yet ready, and returns
// its number for settle.
func (q *ackQueue) add(id uint16) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.entries = append(q.entries, ackEntry{id: id})
	return q.head + uint64(len(q.entries)-1)
}

// settle makes acknowledgement k ready with code (0: success) and starts the
// writer when k's predecessors are all ready.
func (q *ackQueue) settle(k uint64, code packets.Code) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed || k < q.head {
		return
	}
	i := int(k - q.head)
	if i >= len(q.entries) {
		return
	}
	q.entries[i].ready = true
	q.entries[i].code = code.Code
	if !q.writing && q.entries[0].ready {
		q.writing = true
		go q.write()
	}
}

// fail stops acknowledging on this connection: what is pending stays
// unacknowledged and is resent by the terminal after it reconnects. It
// reports whether this call stopped it, so that one failure, not every
// message pending behind it, disconnects the terminal.
func (q *ackQueue) fail() bool {
	q.mu.Lock()
	first := !q.failed
	q.failed = true
	q.entries = nil
	room := q.room
	q.mu.Unlock()
	signal(room)
	return first
}

// write sends the ready acknowledgements at the front, in order, until none
// is ready.
func (q *ackQueue) write() {
	var buf []byte
	for {
		q.mu.Lock()
		n := 0
		for n < len(q.entries) && q.entries[n].ready {
			n++
		}
		if n == 0 || q.failed {
			q.writing = false
			q.mu.Unlock()
			return
		}
		buf = buf[:0]
		for _, e := range q.entries[:n] {
			buf = appendPuback(buf, e, q.v5)
		}
		q.mu.Unlock()

		// mochi writes every packet under the client's lock, so whole
		// packets never interleave.
		q.cl.Lock()
		_, err := q.cl.Net.Conn.Write(buf)
		q.cl.Unlock()

		q.mu.Lock()
		if err != nil {
			// The connection is gone; mochi's read loop ends the client.
			q.failed, q.entries, q.writing = true, nil, false
			q.mu.Unlock()
			return
		}
		if !q.failed {
			q.entries = append(q.entries[:0], q.entries[n:]...)
			q.head += uint64(n)
		}
		room := q.room
		q.mu.Unlock()
		signal(room)
	}
}

// appendPuback encodes a PUBACK. A success is 4 bytes in MQTT 3.1.1 and
// MQTT 5 alike (MQTT 5 §3.4.2.1: the reason code may be left out when it is
// 0x00 and there are no properties); an MQTT 5 refusal adds its reason code
// and no properties (§3.4.2.2).
func appendPuback(b []byte, e ackEntry, v5 bool) []byte {
	if !v5 || e.code == packets.CodeSuccess.Code {
		return append(b, packets.Puback<<4, 2, byte(e.id>>8), byte(e.id))
	}
	return append(b, packets.Puback<<4, 3, byte(e.id>>8), byte(e.id), e.code)
}

// handOffCtx is the context of one hand-off to the Sink, reused by its
// connection's read loop. The AcceptTimeout clock starts only when the Sink
// asks for Done (it has to wait), so a hand-off that does not wait
// allocates no timer.
type handOffCtx struct {
	context.Context // the broker's base context
	timeout         time.Duration

	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

func (h *handOffCtx) started() context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil {
		h.ctx, h.cancel = context.WithTimeout(h.Context, h.timeout)
	}
	return h.ctx
}

// Done implements context.Context.
func (h *handOffCtx) Done() <-chan struct{} { return h.started().Done() }

// Deadline implements context.Context.
func (h *handOffCtx) Deadline() (time.Time, bool) { return h.started().Deadline() }

// Err implements context.Context.
func (h *handOffCtx) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil {
		return h.Context.Err()
	}
	return h.ctx.Err()
}

// reset ends the clock, if started, for the next hand-off.
func (h *handOffCtx) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		h.cancel()
		h.ctx, h.cancel = nil, nil
	}
}
