package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/influxdb"
)

// credential is one provisioned terminal.
type credential struct {
	Tenant, Terminal, Secret string
}

// fleetCredentials names n terminals of tenant acme with fixed secrets (the
// benchmark's terminals exist only on loopback for the run).
func fleetCredentials(n int) []credential {
	cs := make([]credential, n)
	for i := range cs {
		cs[i] = credential{"acme", fmt.Sprintf("T-%05d", i+1), fmt.Sprintf("bench-secret-%05d-0123456789abcdef", i+1)}
	}
	return cs
}

// message returns the topic channel and the payload of a terminal's
// message seq: a heartbeat every tenth message, sales otherwise, as in
// cmd/posfleet's BenchmarkEndToEnd. Timestamps are base + seq ms, so that
// every message of a terminal has its own (Telegraf keys points by series
// and time; posfleet adds seq as nanoseconds anyway).
func message(seq int64, base time.Time) (posfleet.Channel, []byte) {
	var ts tsCache
	return appendMessage(make([]byte, 0, 256), seq, base, &ts)
}

// tsCache keeps the formatted second of a terminal's last timestamp: the
// generator formats its millisecond only, as seconds change every thousand
// messages.
type tsCache struct {
	sec    int64
	prefix []byte // "2006-01-02T15:04:05."
}

// appendTS appends t as "2006-01-02T15:04:05.000Z" (t in UTC).
func (c *tsCache) appendTS(b []byte, t time.Time) []byte {
	if sec := t.Unix(); c.prefix == nil || sec != c.sec {
		c.sec = sec
		c.prefix = t.Truncate(time.Second).AppendFormat(c.prefix[:0], "2006-01-02T15:04:05.")
	}
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b, c.prefix...)
	return append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// appendMessage is message appending the payload to b, with the
// terminal's timestamp cache. Built with appends rather than fmt: the
// generator shares the CPU with the system under test, so every
// microsecond per message counts.
func appendMessage(b []byte, seq int64, base time.Time, ts *tsCache) (posfleet.Channel, []byte) {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"ts":"`...)
	b = ts.appendTS(b, base.Add(time.Duration(seq)*time.Millisecond).UTC())
	b = append(b, '"')
	if seq%10 == 1 {
		b = append(b, `,"uptime_s":`...)
		b = strconv.AppendInt(b, seq, 10)
		b = append(b, `,"battery_pct":80,"signal_dbm":-80,"net":"4g","host_rtt_ms":400,"paper":"ok"}`...)
		return posfleet.ChannelHeartbeat, b
	}
	b = append(b, `,"id":"TX-`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","type":"sale","entry":"tap","currency":"CNY","amount_entered":1250,"amount_charged":1250,"result":"approved","rc":"00","host_ms":380,"receipt":"printed"}`...)
	return posfleet.ChannelTxn, b
}

// lineProtocol returns the lines posfleet stores for the messages
// 1..perTerm of each terminal: the ceiling writes exactly the points the
// pipeline would.
func lineProtocol(creds []credential, perTerm int64, base time.Time) ([][]byte, error) {
	var enc influxdb.Encoder
	now := time.Now()
	lines := make([][]byte, 0, int64(len(creds))*perTerm)
	for seq := int64(1); seq <= perTerm; seq++ {
		for _, c := range creds {
			ref := posfleet.TerminalRef{Tenant: c.Tenant, Terminal: c.Terminal}
			ch, p := message(seq, base)
			m, err := posfleet.Decode(ref, ch, p, now)
			if err != nil {
				return nil, fmt.Errorf("ceiling: decode: %w", err)
			}
			l, err := enc.AppendMessage(nil, m)
			if err != nil {
				return nil, err
			}
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// publisher is one simulated terminal.
type publisher struct {
	client pubClient
	seq    int64
	topics map[posfleet.Channel]string // the terminal's topic of each channel it publishes on
	ts     tsCache
	buf    []byte // the payload, when the client copies it at Publish
}

// fleet is the load generator of the throughput scenario.
type fleet struct {
	pubs     []*publisher
	inflight int
}

// connectFleet connects every terminal to the broker at addr with the
// generator named (generatorRaw or generatorPaho).
func connectFleet(ctx context.Context, addr string, creds []credential, inflight int, generator string) (*fleet, error) {
	dial := dialRaw
	if generator == generatorPaho {
		dial = dialPaho
	}
	f := &fleet{inflight: inflight, pubs: make([]*publisher, len(creds))}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, c := range creds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id := c.Tenant + ":" + c.Terminal
			client, err := dial(addr, id, c.Secret)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			ref := posfleet.TerminalRef{Tenant: c.Tenant, Terminal: c.Terminal}
			f.pubs[i] = &publisher{client: client, topics: map[posfleet.Channel]string{
				posfleet.ChannelHeartbeat: posfleet.Topic(ref, posfleet.ChannelHeartbeat),
				posfleet.ChannelTxn:       posfleet.Topic(ref, posfleet.ChannelTxn),
			}}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		f.close()
		return nil, firstErr
	}
	return f, ctx.Err()
}

func (f *fleet) close() {
	for _, p := range f.pubs {
		if p != nil {
			p.client.Close()
		}
	}
}

// publish sends one message of p with its next seq.
func (p *publisher) publish(base time.Time) token {
	p.seq++
	var b []byte
	if p.client.CopiesPayload() {
		b = p.buf[:0]
	} else {
		b = make([]byte, 0, 256)
	}
	ch, payload := appendMessage(b, p.seq, base, &p.ts)
	p.buf = payload
	return p.client.Publish(p.topics[ch], payload)
}

// sendStats counts a phase's publishes.
type sendStats struct {
	Published, Acked, Failed int64
}

// window keeps at most n publishes of one terminal unacknowledged.
type window struct {
	n     int
	toks  []token // oldest first
	flush func()
	st    *sendStats
	mu    *sync.Mutex
}

func newWindow(n int, p *publisher, st *sendStats, mu *sync.Mutex) *window {
	return &window{n: n, toks: make([]token, 0, n), flush: p.client.Flush, st: st, mu: mu}
}

func (w *window) wait(tok token) {
	ok := tok.WaitTimeout(30*time.Second) && tok.Error() == nil
	w.mu.Lock()
	if ok {
		w.st.Acked++
	} else {
		w.st.Failed++
	}
	w.mu.Unlock()
}

// pop waits for the oldest publish and removes it.
func (w *window) pop() {
	w.wait(w.toks[0])
	w.toks = append(w.toks[:0], w.toks[1:]...)
}

// push adds tok; when the window is full it sends what is buffered, waits
// for the oldest acknowledgement and takes every later one that has come
// too, so that the next publishes go out together instead of one per write.
func (w *window) push(tok token) {
	if len(w.toks) == w.n {
		w.flush()
		w.pop()
	more:
		for len(w.toks) > 0 {
			select {
			case <-w.toks[0].Done():
				w.pop()
			default:
				break more
			}
		}
	}
	w.toks = append(w.toks, tok)
}

func (w *window) drain() {
	w.flush()
	for len(w.toks) > 0 {
		w.pop()
	}
}

// maxRate publishes QoS 1 from every terminal as fast as acknowledgements
// allow (a window of f.inflight per terminal) for d, then waits for the
// outstanding acknowledgements.
func (f *fleet) maxRate(ctx context.Context, d time.Duration, base time.Time) sendStats {
	var st sendStats
	var mu sync.Mutex
	var published atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for _, p := range f.pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWindow(f.inflight, p, &st, &mu)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				w.push(p.publish(base))
				published.Add(1)
			}
			w.drain()
		}()
	}
	wg.Wait()
	st.Published = published.Load()
	return st
}

// fixedRate publishes rate messages per second in total, spread evenly
// over the terminals, for d, each sent at once. It returns the publish time
// of every message in the order they were published.
func (f *fleet) fixedRate(ctx context.Context, rate float64, d time.Duration, base time.Time) (sendStats, []time.Time) {
	var st sendStats
	var mu sync.Mutex
	n := len(f.pubs)
	interval := time.Duration(float64(n) / rate * float64(time.Second))
	times := make([]time.Time, int(rate*d.Seconds())+2*n+16)
	var idx atomic.Int64
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i, p := range f.pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWindow(f.inflight, p, &st, &mu)
			next := start.Add(interval * time.Duration(i) / time.Duration(n))
			for next.Before(end) && ctx.Err() == nil {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				k := idx.Add(1) - 1
				if k >= int64(len(times)) {
					break
				}
				times[k] = time.Now()
				w.push(p.publish(base))
				p.client.Flush()
				next = next.Add(interval)
			}
			w.drain()
		}()
	}
	wg.Wait()
	st.Published = min(idx.Load(), int64(len(times)))
	return st, times[:st.Published]
}

// How the latency phase counts what InfluxDB has (-latency-count).
const (
	latencyCountStats = "stats"
	latencyCountFlux  = "flux"
)

// countSample is one count of the stored messages: the query started at
// At, found N and took Took.
type countSample struct {
	At   time.Time
	N    int64
	Took time.Duration
}

// pollTimes returns the mean and longest time of the count queries, in ms.
func pollTimes(samples []countSample) (mean, longest float64) {
	if len(samples) == 0 {
		return 0, 0
	}
	var sum time.Duration
	for _, s := range samples {
		sum += s.Took
		longest = max(longest, float64(s.Took.Microseconds())/1000)
	}
	return float64(sum.Microseconds()) / 1000 / float64(len(samples)), longest
}

// latencies matches the k-th message published (times, in publish order)
// with the first count sample that found at least base+k+1 messages: its
// publish-to-queryable latency, to the resolution of the polling. It
// assumes messages become queryable in about the order they were
// published, which holds for every system here (FIFO queues), give or take
// the concurrency of one batch.
func latencies(times []time.Time, samples []countSample, base int64) (ms []float64, missing int64) {
	j := 0
	for k, t := range times {
		want := base + int64(k) + 1
		for j < len(samples) && samples[j].N < want {
			j++
		}
		if j == len(samples) {
			return ms, int64(len(times) - k)
		}
		ms = append(ms, float64(samples[j].At.Sub(t).Microseconds())/1000)
	}
	return ms, 0
}

// percentile returns the q-quantile (0..1) of v (nearest rank).
func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// itoa is strconv.Itoa for the harness's many small labels.
func itoa(n int) string { return strconv.Itoa(n) }
