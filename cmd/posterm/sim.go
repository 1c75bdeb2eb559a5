package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet"
	firmwareclient "github.com/posfleet/posfleet/firmware-client"
)

// SimOptions configures a Simulation.
type SimOptions struct {
	// Broker is the MQTT URL of the server.
	Broker string
	// TLS configures ssl:// brokers.
	TLS *tls.Config
	// Fleet is the terminals to run, Scenarios the scenario of each
	// (healthy when absent), File the scenarios' behaviour.
	Fleet     []FleetTerminal
	Scenarios map[posfleet.TerminalRef]string
	File      *ScenarioFile
	// Firmware says how each firmware version behaves (nil: the built-in
	// scenarios/firmware.json). A terminal follows the version it runs
	// now.
	Firmware *FirmwareCatalogue
	// Download fetches update packages; nil serves each URL's own bytes
	// as its package (urlPackages), with no network.
	Download *http.Client
	// Heartbeat is the heartbeat interval, in real time.
	Heartbeat time.Duration
	// TimeScale is how many simulated seconds pass per real second: 60
	// runs a shop's day in 24 minutes.
	TimeScale float64
	// StartHour is the simulated time of day at the start (9.5 = 09:30).
	StartHour float64
	// Zone is the shops' time zone: their hours (Behavior.Curve) are
	// local hours there. Nil: UTC.
	Zone *time.Location
	// RealClock runs the shops on the real clock (in Zone) instead of a
	// simulated day from StartHour: the hour a terminal sells in is the
	// hour its messages' ts say, as the server sees it. TimeScale then
	// only multiplies the rates of transactions, faults and flaps.
	RealClock bool
	// History is how much trading history each terminal reports before it
	// goes live: its transactions of the last History hours, by its shop's
	// hours in Zone, with their past timestamps and marked offline (as a
	// terminal that had been offline sends them), so that the server's
	// time series hold each terminal's trading hours from the start. HistoryRate scales
	// the rate of those transactions (0: 1): a terminal stores about 100
	// a second (its outbox commits in batches), so a history of a few
	// hundred transactions per terminal takes seconds. A store directory that has
	// reported its history once (historyFile) does not report it again.
	History     time.Duration
	HistoryRate float64
	// StoreDir holds the shared outbox of all terminals and the firmware
	// the updates installed (installedFile); Sync fsyncs them.
	StoreDir string
	Sync     bool
	// Ramp is how many terminals start per second, so that a large fleet
	// does not open thousands of connections in the same instant.
	Ramp int
	// SourceAddrs spread the connections over several local addresses
	// (each gives another ~28,000 ephemeral ports); empty lets the system
	// choose.
	SourceAddrs []net.IP
	// ReconnectMax caps the terminals' reconnect backoff.
	ReconnectMax time.Duration
	Logger       *slog.Logger
}

// Simulation runs a fleet of simulated terminals, each a real
// firmware-client with its own MQTT connection and credentials.
type Simulation struct {
	opts     SimOptions
	log      *slog.Logger
	store    *firmwareclient.Store
	inst     *installed
	terms    []*simTerminal
	start    time.Time
	simStart time.Time
	started  atomic.Int64
	runErrs  atomic.Uint64
	reported atomic.Uint64 // report calls that failed
}

// NewSimulation checks the options and prepares the terminals.
func NewSimulation(opts SimOptions) (*Simulation, error) {
	switch {
	case len(opts.Fleet) == 0:
		return nil, errors.New("simulate: empty fleet")
	case opts.TimeScale <= 0:
		return nil, errors.New("simulate: time scale must be positive")
	case opts.Ramp < 1:
		return nil, errors.New("simulate: ramp must be at least 1 terminal per second")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Firmware == nil {
		fw, err := LoadFirmware("")
		if err != nil {
			return nil, err
		}
		opts.Firmware = fw
	}
	s := &Simulation{opts: opts, log: opts.Logger}
	fleetWide := opts.File.FleetWide()
	for i, ft := range opts.Fleet {
		name := opts.Scenarios[ft.TerminalRef]
		if name == "" {
			name = "healthy"
		}
		scen, ok := opts.File.Scenario(name)
		if !ok || scen.FleetWide {
			return nil, fmt.Errorf("simulate: %s: unknown scenario %q", ft.TerminalRef, name)
		}
		b, err := opts.File.behavior(scen)
		if err != nil {
			return nil, fmt.Errorf("simulate: %s: %w", name, err)
		}
		t := &simTerminal{sim: s, ft: ft, scen: scen, b: b, curve: b.hours(ft)}
		for _, fw := range fleetWide {
			ob, err := opts.File.behavior(scen, fw)
			if err != nil {
				return nil, fmt.Errorf("simulate: %s: %w", fw.Name, err)
			}
			t.events = append(t.events, event{window: ob.Window, b: ob})
		}
		for _, m := range b.MainsModels {
			if m == ft.Model {
				t.mains = true
			}
		}
		t.initSignals()
		for _, f := range b.Faults {
			t.faults = append(t.faults, &faultState{plan: f, next: f.AtMin})
		}
		if b.Flap != nil {
			// Each terminal flaps on its own phase.
			t.flapPhase = rand.Float64() * (b.Flap.UpMin + b.Flap.DownMin)
		}
		t.link.dialer = net.Dialer{KeepAlive: -1}
		if n := len(opts.SourceAddrs); n > 0 {
			t.link.dialer.LocalAddr = &net.TCPAddr{IP: opts.SourceAddrs[i%n]}
		}
		s.terms = append(s.terms, t)
	}
	return s, nil
}

// SimMinute returns the simulated minutes since the start.
func (s *Simulation) SimMinute(now time.Time) float64 {
	return now.Sub(s.start).Minutes() * s.opts.TimeScale
}

// SimTime returns the simulated wall clock, in the shops' zone: the real
// one with RealClock.
func (s *Simulation) SimTime(now time.Time) time.Time {
	if s.opts.RealClock {
		return now.In(s.zone())
	}
	return s.simStart.Add(time.Duration(float64(now.Sub(s.start)) * s.opts.TimeScale))
}

// Run starts the terminals at the ramp rate and runs them until ctx ends,
// then closes them all (each says goodbye with {"online":false}) and the
// store.
func (s *Simulation) Run(ctx context.Context) error {
	store, err := firmwareclient.OpenStore(filepath.Join(s.opts.StoreDir, "outbox.db"), firmwareclient.StoreOptions{NoSync: !s.opts.Sync})
	if err != nil {
		return err
	}
	s.store = store
	defer store.Close()
	if s.inst, err = loadInstalled(s.opts.StoreDir, s.opts.Sync); err != nil {
		return err
	}
	s.start = time.Now()
	if s.opts.RealClock {
		s.simStart = s.start.In(s.zone())
	} else {
		y, m, d := s.start.In(s.zone()).Date()
		day := time.Date(y, m, d, 0, 0, 0, 0, s.zone())
		s.simStart = day.Add(time.Duration(s.opts.StartHour * float64(time.Hour)))
	}
	history, err := s.historyDue()
	if err != nil {
		return err
	}

	for _, t := range s.terms {
		if err := t.newClient(); err != nil {
			s.closeAll()
			return err
		}
	}
	var wg sync.WaitGroup
	// Start in small steps every 10 ms.
	step := max(1, s.opts.Ramp/100)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	next := 0
ramp:
	for next < len(s.terms) {
		select {
		case <-ctx.Done():
			break ramp
		case <-tick.C:
		}
		for k := 0; k < step && next < len(s.terms); k++ {
			t := s.terms[next]
			next++
			wg.Add(1)
			go func() { defer wg.Done(); t.run(ctx, history) }()
			s.started.Add(1)
		}
	}
	<-ctx.Done()
	wg.Wait()
	s.closeAll()
	return nil
}

// zone is the shops' time zone.
func (s *Simulation) zone() *time.Location {
	if s.opts.Zone == nil {
		return time.UTC
	}
	return s.opts.Zone
}

// closeAll closes every client, a few hundred at a time.
func (s *Simulation) closeAll() {
	sem := make(chan struct{}, 500)
	var wg sync.WaitGroup
	for _, t := range s.terms {
		if t.client == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.client.Close()
		}()
	}
	wg.Wait()
}

// Totals sums the fleet's counters.
type Totals struct {
	Terminals, Started, Connected int
	Reported, Acked, Dropped      firmwareclient.ChannelCounts
	Backlog                       int
	BacklogBytes                  int64
	Connects, ConnectFailures     uint64
	Lost, Refused, Commands       uint64
	RunErrors, ReportErrors       uint64
	// LastErrors counts the terminals by their latest connection error
	// (addresses and numbers blanked, so that alike errors group).
	LastErrors map[string]int
}

// Totals returns the fleet's counters now.
func (s *Simulation) Totals() Totals {
	tot := Totals{Terminals: len(s.terms), Started: int(s.started.Load()),
		RunErrors: s.runErrs.Load(), ReportErrors: s.reported.Load(), LastErrors: map[string]int{}}
	for _, t := range s.terms {
		if t.client == nil {
			continue
		}
		st := t.client.Stats()
		if st.Connected {
			tot.Connected++
		}
		tot.Reported.Add(st.Reported)
		tot.Acked.Add(st.Acked)
		tot.Dropped.Add(st.Dropped)
		tot.Backlog += st.Backlog
		tot.BacklogBytes += st.BacklogBytes
		tot.Connects += st.Connects
		tot.ConnectFailures += st.ConnectFailures
		tot.Lost += st.Lost
		tot.Refused += st.Refused
		tot.Commands += st.Commands
		if st.LastError != "" {
			tot.LastErrors[digits.ReplaceAllString(st.LastError, "#")]++
		}
	}
	return tot
}

// simTerminal is one simulated terminal.
type simTerminal struct {
	sim    *Simulation
	ft     FleetTerminal
	scen   *Scenario
	b      Behavior
	events []event
	mains  bool
	// curve is the shop's activity per local hour: b.Curve, or its
	// round-the-clock version for a shop that never closes (b.AllDay).
	curve  []float64
	client *firmwareclient.Client
	link   link

	faults    []*faultState
	flapPhase float64
	n         int       // transactions so far
	recent    []float64 // minutes of the recent transactions, for crashes
	sales     []sold    // recent approved sales, for refunds
	hostMs    atomic.Int64
	crashedAt atomic.Int64 // unix nanoseconds of the last crash, 0 if none
	sig       signalState  // signals.go
}

// event is a fleet-wide scenario: the terminal's behaviour while it lasts.
type event struct {
	window *Window
	b      Behavior
}

type faultState struct {
	plan     FaultPlan
	raised   bool
	raisedAt float64
	next     float64
	count    int
}

type sold struct {
	id     string
	amount int64
}

func (t *simTerminal) newClient() error {
	drift := time.Duration(t.b.ClockDriftS) * time.Second
	firmware := t.b.Firmware
	if v := t.sim.inst.get(t.ft.TerminalRef); v != "" {
		firmware = v // an update installed it before a restart
	}
	download := t.sim.opts.Download
	if download == nil {
		download = &http.Client{Transport: urlPackages{}}
	}
	c, err := firmwareclient.New(firmwareclient.Config{
		Broker: t.sim.opts.Broker, TLS: t.sim.opts.TLS,
		Tenant: t.ft.Tenant, Terminal: t.ft.Terminal, Secret: t.ft.Secret,
		Dial:  t.link.dial,
		Store: t.sim.store,
		Inventory: posfleet.Inventory{
			Model: t.ft.Model, Serial: "SN" + t.ft.Terminal, Firmware: firmware, App: t.b.App,
		},
		HeartbeatInterval: t.sim.opts.Heartbeat,
		Heartbeat:         t.heartbeat,
		Download:          firmwareclient.DownloadOptions{Client: download, Dir: t.sim.opts.StoreDir},
		Flash: func(ctx context.Context, u firmwareclient.Update) error {
			// Installing takes a moment on a real terminal.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(1+rand.IntN(3)) * time.Second):
			}
			// The new version is in flash: it survives a restart.
			return t.sim.inst.set(t.ft.TerminalRef, u.Target)
		},
		Reboot:       func(context.Context) error { return nil },
		ReconnectMax: t.sim.opts.ReconnectMax,
		Logger:       t.sim.log,
		Now:          func() time.Time { return time.Now().Add(drift) },
	})
	if err != nil {
		return fmt.Errorf("simulate: %s: %w", t.ft.TerminalRef, err)
	}
	t.client = c
	return nil
}

// run drives the terminal until ctx ends: transactions following the
// shop's day, scheduled faults and link failures.
func (t *simTerminal) run(ctx context.Context, history time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := t.client.Run(ctx); err != nil {
			t.sim.runErrs.Add(1)
			t.sim.log.Error("terminal stopped", "terminal", t.ft.TerminalRef.String(), "err", err)
		}
	}()
	defer func() { <-done }()
	if history > 0 {
		t.backfill(ctx, t.sim.start.Add(-history), t.sim.start)
	}

	// Transactions arrive as a Poisson process at the busiest hour's rate,
	// thinned by the hour's activity (Lewis-Shedler).
	peak := t.b.TxnPerHour / 3600 * t.sim.opts.TimeScale // per real second
	var txnC <-chan time.Time
	var txnT *time.Timer
	if peak > 0 {
		txnT = time.NewTimer(expDuration(peak))
		defer txnT.Stop()
		txnC = txnT.C
	}
	var tickC <-chan time.Time
	if len(t.faults) > 0 || t.b.Flap != nil {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		tickC = tick.C
		t.schedule(ctx, t.sim.SimMinute(time.Now()))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-txnC:
			hour := t.sim.SimTime(now).Hour()
			if rand.Float64() < t.curve[hour] && !t.sig.silent {
				t.transact(ctx, t.sim.SimMinute(now), time.Time{})
			}
			txnT.Reset(expDuration(peak))
		case now := <-tickC:
			t.schedule(ctx, t.sim.SimMinute(now))
		}
	}
}

func expDuration(ratePerSecond float64) time.Duration {
	return time.Duration(rand.ExpFloat64() / ratePerSecond * float64(time.Second))
}

// schedule raises and clears the planned faults and takes the link up and
// down.
func (t *simTerminal) schedule(ctx context.Context, m float64) {
	for _, f := range t.faults {
		p := f.plan
		fault := posfleet.Fault{Component: p.Component, Code: p.Code, Severity: p.Severity, Detail: p.Detail}
		switch {
		case !f.raised && m >= f.next:
			f.raised, f.raisedAt = true, m
			f.count++
			f.next = math.Inf(1)
			if p.EveryMin > 0 {
				f.next = p.AtMin + float64(f.count)*p.EveryMin
			}
			t.report(t.client.RaiseFault(ctx, fault))
		case f.raised && p.ClearAfterMin > 0 && m >= f.raisedAt+p.ClearAfterMin:
			f.raised = false
			fault.Severity = posfleet.SeverityInfo
			t.report(t.client.ClearFault(ctx, fault))
		}
	}
	if fl := t.b.Flap; fl != nil {
		down := math.Mod(m+t.flapPhase, fl.UpMin+fl.DownMin) >= fl.UpMin
		t.link.setDown(down)
	}
}

func (t *simTerminal) report(err error) {
	if err != nil && !errors.Is(err, firmwareclient.ErrClosed) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.sim.reported.Add(1)
		t.sim.log.Warn("report failed", "terminal", t.ft.TerminalRef.String(), "err", err)
	}
}

// behaviorAt returns the behaviour in force at minute m: a fleet-wide
// event's while it lasts.
func (t *simTerminal) behaviorAt(m float64) *Behavior {
	for i := range t.events {
		if t.events[i].window.Contains(m) && t.hitBy(&t.events[i].b) {
			return &t.events[i].b
		}
	}
	return &t.b
}

// transact makes one transaction at simulated minute m and reports it.
func (t *simTerminal) transact(ctx context.Context, m float64, ts time.Time) {
	tx, fw := t.makeTxn(m, ts)
	t.report(t.client.ReportTransaction(ctx, tx))
	if fw.Crash != nil && ts.IsZero() {
		t.load(ctx, m, fw.Crash)
	}
}

// makeTxn makes one transaction at simulated minute m, as the firmware
// the terminal runs now (returned too) makes it; a transaction of the
// history (backfill) has its past time in ts, and m < 0.
func (t *simTerminal) makeTxn(m float64, ts time.Time) (posfleet.Transaction, FirmwareVersion) {
	b := t.behaviorAt(m)
	if !ts.IsZero() {
		// The history is about the shop's hours, not its failures: a
		// burst of old timeouts and host errors, all delivered at once,
		// would look like a fleet incident happening now.
		h := *b
		h.ChipFailRate, h.TimeoutRate, h.ErrorRate, h.HostDownRate = 0, 0, 0, 0
		b = &h
	}
	t.n++
	tx := posfleet.Transaction{Type: posfleet.TxnSale, Currency: b.Currency, Entry: pickEntry(b.Entry)}
	// A transaction of the history was stored and is sent late: offline,
	// so that the server takes its ts, not its arrival, as when it sold.
	tx.TS, tx.Offline = ts, !ts.IsZero()
	amount := logUniform(b.Amount)
	if len(t.sales) > 0 && rand.Float64() < b.RefundRate {
		orig := t.sales[rand.IntN(len(t.sales))]
		tx.Type, tx.OriginalID, tx.OriginalAmount = posfleet.TxnRefund, orig.id, ptr(orig.amount)
		amount = orig.amount
		if rand.Float64() < b.RefundOverRate {
			amount = orig.amount + orig.amount/2 + 100
		}
	}
	prefix := map[string]string{posfleet.TxnSale: "S", posfleet.TxnRefund: "R"}[tx.Type]
	tx.ID = fmt.Sprintf("%s-%s-%06d", prefix, t.ft.Terminal, t.n)
	tx.AmountEntered = ptr(amount)
	host := func() {
		ms := randRange(b.HostMs)
		tx.HostMs = ptr(ms)
		t.hostMs.Store(int64(ms))
	}
	chipFailed := false
	if tx.Entry == posfleet.EntryChip && rand.Float64() < b.ChipFailRate {
		if rand.Float64() < b.FallbackRate {
			tx.Entry = posfleet.EntryFallback // chip failed, the stripe worked
		} else {
			chipFailed = true
		}
	}
	switch {
	case chipFailed:
		tx.Result = posfleet.ResultError // chip unreadable, no fallback: the sale never left the terminal
	case rand.Float64() < b.CancelRate:
		tx.Result = posfleet.ResultCancelled
	case tx.Type == posfleet.TxnSale && rand.Float64() < b.KeyingRate:
		tx.Result, tx.RC = posfleet.ResultDeclined, "13"
		host()
	case tx.Type == posfleet.TxnRefund && amount > *tx.OriginalAmount:
		tx.Result, tx.RC = posfleet.ResultDeclined, "13"
		host()
	case rand.Float64() < b.HostDownRate:
		if rand.Float64() < b.HostTimeoutShare {
			tx.Result, tx.HostMs = posfleet.ResultTimeout, ptr(30000)
		} else {
			tx.Result, tx.RC = posfleet.ResultDeclined, b.HostRCs[rand.IntN(len(b.HostRCs))]
			host()
		}
	case rand.Float64() < b.TimeoutRate:
		tx.Result, tx.HostMs = posfleet.ResultTimeout, ptr(30000)
	case rand.Float64() < b.ErrorRate:
		tx.Result = posfleet.ResultError
	case rand.Float64() < b.DeclineRate:
		tx.Result, tx.RC = posfleet.ResultDeclined, cardDeclines[rand.IntN(len(cardDeclines))]
		host()
	default:
		tx.Result, tx.RC = posfleet.ResultApproved, "00"
		host()
	}
	charged := amount
	fw := t.sim.opts.Firmware.Lookup(t.ft.Model, t.client.Inventory().Firmware)
	if tx.Result == posfleet.ResultApproved && tx.Type == posfleet.TxnSale && fw.FeeBasisPoints > 0 {
		// The fee bug lives in the firmware the terminal runs now (the
		// catalogue's): an update brings it in or cures it.
		charged += (amount*fw.FeeBasisPoints + 5000) / 10000
	}
	if tx.Result != posfleet.ResultCancelled && tx.Result != posfleet.ResultError {
		tx.AmountCharged = ptr(charged)
	}
	switch tx.Result {
	case posfleet.ResultApproved, posfleet.ResultDeclined:
		tx.Receipt = posfleet.ReceiptPrinted
		if rand.Float64() < b.ReceiptFailRate {
			tx.Receipt = posfleet.ReceiptFailed
		}
	default:
		tx.Receipt = posfleet.ReceiptSkipped
	}
	if tx.Result == posfleet.ResultApproved && tx.Type == posfleet.TxnSale {
		t.sales = append(t.sales, sold{tx.ID, amount})
		if len(t.sales) > 20 {
			t.sales = t.sales[1:]
		}
	}
	t.signTxn(&tx)
	return tx, fw
}

// load counts the transaction of minute m against the firmware's crash
// plan: too many in too short a time restart the terminal, which reports
// its inventory again with the crash's boot reason.
func (t *simTerminal) load(ctx context.Context, m float64, p *CrashPlan) {
	var crash bool
	if t.recent, crash = p.overloaded(t.recent, m); !crash {
		return
	}
	t.crashedAt.Store(time.Now().UnixNano()) // uptime starts again
	inv := t.client.Inventory()
	inv.BootReason, inv.Update = p.BootReason, nil
	t.report(t.client.ReportInventory(ctx, inv))
}

var digits = regexp.MustCompile(`[0-9]+`)

var cardDeclines = []string{"51", "05", "55", "54", "14", "57"}

func pickEntry(e EntryShare) string {
	total := e.Chip + e.Tap + e.QR + e.Swipe + e.Manual
	r := rand.Float64() * total
	for _, c := range []struct {
		share float64
		entry string
	}{{e.Chip, posfleet.EntryChip}, {e.Tap, posfleet.EntryTap}, {e.QR, posfleet.EntryQR}, {e.Swipe, posfleet.EntrySwipe}} {
		if r < c.share {
			return c.entry
		}
		r -= c.share
	}
	return posfleet.EntryManual
}

// heartbeat reads the simulated sensors; the library calls it on its own
// goroutine, hence only atomics and the global random source here.
func (t *simTerminal) heartbeat() posfleet.Heartbeat {
	b := &t.b
	hb := posfleet.Heartbeat{
		Net:         b.Net,
		SignalDBm:   ptr(randRange(b.SignalDBm)),
		TempC:       ptr(math.Round(randFloat(b.TempC)*10) / 10),
		Paper:       b.Paper,
		PendingTxns: ptr(0),
	}
	if at := t.crashedAt.Load(); at > 0 {
		hb.UptimeS = ptr(int64(time.Since(time.Unix(0, at)) / time.Second))
	}
	if ms := t.hostMs.Load(); ms > 0 {
		hb.HostRTTMs = ptr(int(ms))
	}
	if !t.mains {
		hb.BatteryPct = ptr(randRange(b.Battery))
		hb.Charging = ptr(rand.Float64() < b.Charging)
	}
	t.locate(&hb)
	t.wearReport(&hb)
	return hb
}

func ptr[T any](v T) *T { return &v }

func randRange(r [2]int) int {
	if r[1] <= r[0] {
		return r[0]
	}
	return r[0] + rand.IntN(r[1]-r[0]+1)
}

func randFloat(r [2]float64) float64 { return r[0] + rand.Float64()*(r[1]-r[0]) }

// logUniform draws an amount between r[0] and r[1], small amounts more
// often, as in a shop.
func logUniform(r [2]int64) int64 {
	lo, hi := math.Log(float64(max(r[0], 1))), math.Log(float64(max(r[1], r[0], 1)))
	return int64(math.Exp(lo + rand.Float64()*(hi-lo)))
}

// link is a terminal's network path: it can be taken down, which cuts the
// connection without a word (so the broker publishes the last will) and
// refuses new ones until it is up again.
type link struct {
	dialer net.Dialer
	mu     sync.Mutex
	down   bool
	conn   net.Conn
}

var errLinkDown = errors.New("simulated link down")

func (l *link) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	l.mu.Lock()
	down := l.down
	l.mu.Unlock()
	if down {
		return nil, errLinkDown
	}
	c, err := l.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		c.Close()
		return nil, errLinkDown
	}
	l.conn = c
	return c, nil
}

func (l *link) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if down == l.down {
		return
	}
	l.down = down
	if down && l.conn != nil {
		if tc, ok := l.conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		l.conn.Close()
		l.conn = nil
	}
}
