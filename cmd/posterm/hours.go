package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/posfleet/posfleet"
)

// Trading hours. A shop sells in the hours its Behavior.Curve gives
// activity to (08:00–23:00 in the field file: 0 from 23:00 to 08:00), in
// the shops' local time (SimOptions.Zone); a share of the shops (a hotel,
// a 24-hour convenience store) trades round the clock (Behavior.AllDay).
// The hours a terminal does not sell in are its maintenance window as the
// server learns it from the terminal's own transactions. History sends
// the past days' transactions at the start, as stored ones (offline, with
// their own ts), so that the server's time series show the shops' hours
// from the start; SaleTimes gives the same for a test to hand the health
// engine (LearnHistory), as a server learns the past from its store.

// AllDay: Share of the merchants trade round the clock; their closed
// hours (0 in Curve) sell at Night activity instead.
type AllDay struct {
	Share float64 `json:"share"`
	Night float64 `json:"night"`
}

// hours returns the shop's activity per local hour: Curve, or for a shop
// that never closes, Curve with its closed hours at AllDay.Night. Which
// shops never close is decided by the merchant's ID (the terminal's when
// it has none), so that a merchant's terminals keep the same hours, and
// the same across runs.
func (b *Behavior) hours(ft FleetTerminal) []float64 {
	if b.AllDay == nil || b.AllDay.Share <= 0 {
		return b.Curve
	}
	key := ft.Merchant
	if key == "" {
		key = ft.Terminal
	}
	h := fnv.New64a()
	h.Write([]byte(ft.Tenant + "\x00" + key))
	if float64(h.Sum64()%10000)/10000 >= b.AllDay.Share {
		return b.Curve
	}
	c := slices.Clone(b.Curve)
	for i, v := range c {
		if v == 0 {
			c[i] = b.AllDay.Night
		}
	}
	return c
}

// AllDayShop reports whether the terminal's shop trades round the clock.
func (t *simTerminal) AllDayShop() bool { return !slices.Contains(t.curve, 0) }

// historyFile, in the store directory, records that the terminals have
// reported their history: a restart does not report it again.
const historyFile = "history-reported"

// historyDue returns how much history the terminals report at this
// start: the History asked for, or 0 when this store directory's
// terminals reported theirs already (and marks it reported).
func (s *Simulation) historyDue() (time.Duration, error) {
	if s.opts.History <= 0 {
		return 0, nil
	}
	p := filepath.Join(s.opts.StoreDir, historyFile)
	if _, err := os.Stat(p); err == nil {
		return 0, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("simulate: %w", err)
	}
	if err := os.WriteFile(p, []byte(s.start.UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("simulate: %w", err)
	}
	return s.opts.History, nil
}

// backfill reports the terminal's transactions of [from, to)
// (historyTimes), a few at once: their seq may interleave a little. They
// reach the server as a terminal's stored transactions do, with their own
// timestamps. None fails for the terminal, the network or the bank
// (makeTxn): delivered in one burst, such failures would look like a
// fleet incident now.
func (t *simTerminal) backfill(ctx context.Context, from, to time.Time) {
	var txns []posfleet.Transaction
	for _, ts := range t.historyTimes(from, to, t.sim.opts.HistoryRate) {
		tx, _ := t.makeTxn(-1, ts)
		txns = append(txns, tx)
	}
	// A few reports at once: the outbox commits them together, where one
	// at a time waits for a commit each.
	const workers = 8
	next := make(chan posfleet.Transaction)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tx := range next {
				t.report(t.client.ReportTransaction(ctx, tx))
			}
		}()
	}
	defer wg.Wait()
	defer close(next)
	for _, tx := range txns {
		select {
		case <-ctx.Done():
			return
		case next <- tx:
		}
	}
}

// historyTimes returns the times of the terminal's sales in [from, to),
// in order: a Poisson process at the rate of its busiest hour
// (TxnPerHour × rate; rate 0 is 1) thinned by its shop's activity in the
// local hour of each.
func (t *simTerminal) historyTimes(from, to time.Time, rate float64) []time.Time {
	if rate <= 0 {
		rate = 1
	}
	zone := t.sim.zone()
	var times []time.Time
	for lo := from; lo.Before(to); lo = lo.Add(time.Hour) {
		hi := lo.Add(time.Hour)
		if hi.After(to) {
			hi = to
		}
		span := hi.Sub(lo)
		first := len(times)
		for n := poisson(t.b.TxnPerHour * rate * span.Hours()); n > 0; n-- {
			ts := lo.Add(time.Duration(rand.Int64N(int64(span))))
			if rand.Float64() < t.curve[ts.In(zone).Hour()] {
				times = append(times, ts)
			}
		}
		slices.SortFunc(times[first:], func(a, b time.Time) int { return a.Compare(b) })
	}
	return times
}

// SaleTimes returns when the terminal ref sold in [from, to) by its
// shop's hours, at rate times its busiest hour's rate: what a server that
// had heard it all along would know of its trading hours (for
// health.Engine.LearnHistory). Nil for a terminal not in the fleet.
func (s *Simulation) SaleTimes(ref posfleet.TerminalRef, from, to time.Time, rate float64) []time.Time {
	for _, t := range s.terms {
		if t.ft.TerminalRef == ref {
			return t.historyTimes(from, to, rate)
		}
	}
	return nil
}

// poisson draws from a Poisson distribution of mean lambda: Knuth's
// product of uniforms for small means, the normal approximation for large.
func poisson(lambda float64) int {
	switch {
	case lambda <= 0:
		return 0
	case lambda > 30:
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rand.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rand.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
