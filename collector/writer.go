package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// writeLoop drains the spool to the store: it gathers up to BatchLines
// entries (or what arrived within BatchWait) and hands the batch to one of
// Options.Writers concurrent writes, gathering the next meanwhile. Batches
// are acknowledged in the spool in order, each only when it and every
// batch before it are stored. While the store is down a write retries its
// batch with backoff; nothing is skipped.
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

	// inOrder holds the batches being written, oldest first; its capacity
	// bounds the writes in flight. ackLoop acknowledges them in that order.
	inOrder := make(chan *batch, c.opts.Writers)
	// free recycles batch buffers (a few MiB each) from ackLoop.
	free := make(chan []byte, c.opts.Writers+1)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		c.ackLoop(inOrder, free)
	}()
	defer func() {
		close(inOrder)
		<-acked
	}()

	next := c.spool.acked + 1
	lastSize := 0 // bytes of the last batch
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
		// Gather a batch: what is there now, then wait up to BatchWait for
		// more while it is not full.
		bt := &batch{done: make(chan bool, 1)}
		select {
		case bt.buf = <-free:
		default:
			// A new buffer the size of the last batch, rather than
			// grown by doubling from nothing.
			bt.buf = make([]byte, 0, lastSize+lastSize/8)
		}
		end := next - 1
		readFailed := false
		// take copies an entry's lines into the batch (the spool's buffer
		// is reused once take returns).
		var bad error
		take := func(b []byte) {
			bt.size += int64(len(b))
			var lines []byte
			if _, _, _, lines, bad = splitRecord(b); bad == nil {
				bt.buf = append(bt.buf, lines...)
				bt.lines++
			}
		}
		var deadline <-chan time.Time
		var timer *time.Timer
		for bt.lines < c.opts.BatchLines {
			last = c.spool.last.Load()
			for end < last && bt.lines < c.opts.BatchLines {
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
			if bt.lines >= c.opts.BatchLines || c.closed.Load() || readFailed {
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
		bt.end = end
		select {
		case inOrder <- bt: // a write slot is free
		case <-ctx.Done():
			return
		}
		lastSize = len(bt.buf)
		go func() { bt.done <- c.store(ctx, bt.buf, bt.lines) }()
		next = end + 1
	}
}

// batch is one write to the store: the spool entries up to end.
type batch struct {
	buf   []byte
	lines int
	size  int64 // spool bytes
	end   uint64
	done  chan bool // the outcome of store
}

// ackLoop acknowledges written batches in the spool, in order. After a
// batch that was not stored (closing with the store down) it acknowledges
// nothing more: the spool keeps the rest for the next start.
func (c *Collector) ackLoop(inOrder <-chan *batch, free chan<- []byte) {
	stopped := false
	for bt := range inOrder {
		ok := <-bt.done
		if ok { // else a failed write's request may still be reading it
			select {
			case free <- bt.buf[:0]:
			default:
			}
		}
		if !ok || stopped {
			stopped = true
			continue
		}
		if err := c.spool.ack(bt.end); err != nil {
			c.log.Error("spool acknowledgement failed", "err", err)
			c.metrics.spoolErrors.Inc()
		}
		c.acked.Store(bt.end)
		c.spoolBytes.Add(-bt.size)
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
