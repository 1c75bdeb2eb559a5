package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// writeLoop drains the spool to the store. It gathers what the spool holds
// (what is there now, then what arrives within BatchWait, until a batch has
// BatchLines lines) into a round, and splits the round by terminal among
// Options.Writers writers, gathering the next round meanwhile. A
// terminal's lines always go to the same writer, which writes its batches
// one after the other, so:
//   - at most Writers writes are under way at once;
//   - every series reaches the store in the order its terminal sent it.
//     InfluxDB sorts, at every cache snapshot, each series whose points
//     arrived out of time order; batches written side by side without this
//     split made that every series.
//
// Rounds are acknowledged in the spool in order, each once all its batches
// are stored. While the store is down a write retries its batch with
// backoff; nothing is skipped.
func (c *Collector) writeLoop() {
	defer c.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// On Close, let the writer drain for FlushTimeout, then cut it off.
		<-c.closing
		t := time.NewTimer(c.opts.FlushTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ctx.Done():
		}
	}()

	w := c.opts.Writers
	// Each writer has a queue of one batch: it writes a round's batch
	// while the next round's waits.
	queues := make([]chan *batch, w)
	for k := range queues {
		queues[k] = make(chan *batch, 1)
		go func(q <-chan *batch) {
			for bt := range q {
				bt.done <- c.store(ctx, bt.buf, bt.lines)
			}
		}(queues[k])
	}
	// inOrder holds the rounds handed to the writers, oldest first, for
	// ackLoop, which acknowledges them in that order; with the round
	// ackLoop waits for, two rounds are under way at most.
	inOrder := make(chan *round, 1)
	// free recycles batch buffers (a few MiB each) from ackLoop.
	free := make(chan []byte, 2*w+1)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		c.ackLoop(inOrder, free)
	}()
	defer func() {
		for _, q := range queues {
			close(q)
		}
		close(inOrder)
		<-acked
	}()

	next := c.spool.acked + 1
	lastSize := make([]int, w) // bytes of each writer's last batch
	for {
		last := c.spool.last.Load()
		if next > last {
			select {
			case <-c.closing:
				return // drained
			default:
			}
			select {
			case <-c.wake:
			case <-c.closing:
			case <-ctx.Done():
				return
			}
			continue
		}
		// Gather a round: what is there now, then wait up to BatchWait for
		// more while no batch is full.
		rd := &round{parts: make([]*batch, w)}
		for k := range rd.parts {
			bt := &batch{done: make(chan bool, 1)}
			select {
			case bt.buf = <-free:
			default:
				// A new buffer the size of the writer's last batch,
				// rather than grown by doubling from nothing.
				bt.buf = make([]byte, 0, lastSize[k]+lastSize[k]/8)
			}
			rd.parts[k] = bt
		}
		end := next - 1
		readFailed, full := false, false
		// take copies an entry's lines into its terminal's batch (the
		// spool's buffer is reused once take returns).
		var bad error
		take := func(b []byte) {
			rd.size += int64(len(b))
			var ref, lines []byte
			if ref, _, _, lines, bad = splitRecord(b); bad == nil {
				bt := rd.parts[writerOf(ref, w)]
				bt.buf = append(bt.buf, lines...)
				bt.lines++
				full = full || bt.lines >= c.opts.BatchLines
			}
		}
		var deadline <-chan time.Time
		var timer *time.Timer
		for !full {
			last = c.spool.last.Load()
			for end < last && !full {
				if err := c.spool.readFunc(end+1, take); err != nil {
					c.log.Error("spool read failed", "err", err)
					c.metrics.spoolErrors.Inc()
					readFailed = true
					break
				}
				if bad != nil {
					c.log.Error("spool entry skipped", "index", end+1, "err", bad)
				}
				end++
			}
			if full || c.closed.Load() || readFailed {
				break
			}
			if deadline == nil {
				timer = time.NewTimer(c.opts.BatchWait)
				deadline = timer.C
			}
			select {
			case <-c.wake:
				continue
			case <-deadline:
			case <-c.closing:
			case <-ctx.Done():
				return
			}
			break
		}
		if timer != nil {
			timer.Stop()
		}
		if end < next {
			if readFailed { // the log is being repaired: wait, do not spin
				select {
				case <-time.After(c.opts.RetryMin):
				case <-ctx.Done():
					return
				}
			}
			continue
		}
		rd.end = end
		select {
		case inOrder <- rd: // the round before the last is stored
		case <-ctx.Done():
			return
		}
		for k, bt := range rd.parts {
			if bt.lines == 0 {
				bt.done <- true
				continue
			}
			lastSize[k] = len(bt.buf)
			select {
			case queues[k] <- bt:
			case <-ctx.Done():
				bt.done <- false
			}
		}
		next = end + 1
	}
}

// writerOf returns which of w writers writes the lines of terminal ref
// (FNV-1a of its name).
func writerOf(ref []byte, w int) int {
	if w == 1 {
		return 0
	}
	h := uint32(2166136261)
	for _, b := range ref {
		h = (h ^ uint32(b)) * 16777619
	}
	return int(h % uint32(w))
}

// round is the spool entries up to end, split by terminal among the
// writers: parts[k] is writer k's batch (possibly empty).
type round struct {
	parts []*batch
	size  int64 // spool bytes
	end   uint64
}

// batch is one write to the store.
type batch struct {
	buf   []byte
	lines int
	done  chan bool // the outcome of store
}

// ackLoop acknowledges written rounds in the spool, in order. After a
// round that was not all stored (closing with the store down) it
// acknowledges nothing more: the spool keeps the rest for the next start.
func (c *Collector) ackLoop(inOrder <-chan *round, free chan<- []byte) {
	stopped := false
	for rd := range inOrder {
		ok := true
		for _, bt := range rd.parts {
			if <-bt.done {
				if cap(bt.buf) > 0 { // an empty batch may have none
					select {
					case free <- bt.buf[:0]:
					default:
					}
				}
			} else { // a failed write's request may still be reading it
				ok = false
			}
		}
		if !ok || stopped {
			stopped = true
			continue
		}
		if err := c.spool.ack(rd.end); err != nil {
			c.log.Error("spool acknowledgement failed", "err", err)
			c.metrics.spoolErrors.Inc()
		}
		c.acked.Store(rd.end)
		c.spoolBytes.Add(-rd.size)
	}
}

// store writes one batch until the store takes it. A batch the store
// refuses for its content is split to find the bad lines, which go to the
// dead-letter file; the rest is stored. It returns false only when the
// collector is closing and the flush time is up.
func (c *Collector) store(ctx context.Context, buf []byte, lines int) bool {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := c.w.WriteLines(ctx, buf)
		c.metrics.writeSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			c.writeErr.Store(nil)
			c.metrics.batches.Inc()
			c.metrics.points.Add(float64(lines))
			return true
		}
		var rej *BatchRejectedError
		if errors.As(err, &rej) {
			c.metrics.writeErrors.WithLabelValues("rejected").Inc()
			return c.storeSplit(ctx, buf)
		}
		if ctx.Err() != nil {
			return false
		}
		c.metrics.writeErrors.WithLabelValues("unavailable").Inc()
		c.writeErr.Store(&err)
		wait := c.backoff(attempt)
		c.log.Warn("store write failed, retrying", "err", err, "lines", lines, "attempt", attempt+1, "retry_in", wait.Round(time.Millisecond).String())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
	}
}

// storeSplit writes a refused batch in halves until single bad lines remain.
func (c *Collector) storeSplit(ctx context.Context, buf []byte) bool {
	n := countLines(buf)
	if n <= 1 {
		c.deadLetter(buf)
		return true
	}
	mid := nthLineEnd(buf, n/2)
	return c.store(ctx, buf[:mid], n/2) && c.store(ctx, buf[mid:], n-n/2)
}

func countLines(b []byte) int {
	n := 0
	for _, x := range b {
		if x == '\n' {
			n++
		}
	}
	return n
}

// nthLineEnd returns the offset just after the n-th newline.
func nthLineEnd(b []byte, n int) int {
	for i, x := range b {
		if x == '\n' {
			n--
			if n == 0 {
				return i + 1
			}
		}
	}
	return len(b)
}

// deadLetter keeps a line the store refused, so it is neither retried
// forever nor silently gone.
func (c *Collector) deadLetter(line []byte) {
	c.deadMu.Lock() // concurrent writes may each find a bad line
	defer c.deadMu.Unlock()
	c.metrics.deadLetters.Inc()
	c.log.Error("store refused a line; kept in the dead-letter file", "file", filepath.Join(c.opts.SpoolDir, "dead-letter.lp"))
	f, err := os.OpenFile(filepath.Join(c.opts.SpoolDir, "dead-letter.lp"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		c.log.Error("dead-letter file", "err", fmt.Errorf("open: %w", err))
		return
	}
	defer f.Close()
	if _, err := f.Write(line); err != nil {
		c.log.Error("dead-letter file", "err", fmt.Errorf("write: %w", err))
	}
}
