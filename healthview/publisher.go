package healthview

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/alarm"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
)

// LeaseName is the lease the health engines' publishers share: one of
// them writes the view at a time.
const LeaseName = "health"

// PublisherOptions configures a Publisher. Zero values take their
// DefaultPublisherOptions value.
type PublisherOptions struct {
	// Holder names this publisher in the lease; "" is DefaultHolder
	// (hostname:pid:random).
	Holder string
	// TTL is how long the lease lasts after its last renewal: how soon a
	// standby takes over from a holder that died without releasing it.
	TTL time.Duration
	// Every is how often changes are published (and the lease renewed).
	Every time.Duration
	// FleetEvery is how often incidents, fleet summaries and
	// suspect-firmware findings are published.
	FleetEvery time.Duration
	// RefreshEvery is how long a round of publishing every terminal again
	// takes (its last_seen and transaction counts change without a
	// transition): each step adds its share of the terminals to the
	// changed ones, so the load is spread evenly. 0: never, apart from
	// taking over the lease.
	RefreshEvery time.Duration
	// BatchSize is how many terminals one transaction writes.
	BatchSize int
	// VisitWindow is how long after a visit was applied (by the holder)
	// a standby still applies it to its own engine.
	VisitWindow time.Duration
	// Site gives a provisioned terminal's merchant and region while it
	// has never connected (the engine knows those only once it has);
	// nil leaves them empty.
	Site func(posfleet.TerminalRef) (health.Site, bool)
	// Alarms, when set, keeps the alarms with the view (alarm.Apply in
	// each publish's transaction); nil publishes no alarms.
	Alarms *alarm.Options
	Logger *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// DefaultPublisherOptions returns the defaults.
func DefaultPublisherOptions() PublisherOptions {
	return PublisherOptions{
		TTL:          10 * time.Second,
		Every:        time.Second,
		FleetEvery:   5 * time.Second,
		RefreshEvery: 10 * time.Minute,
		BatchSize:    1000,
		VisitWindow:  10 * time.Minute,
	}
}

// DefaultHolder is hostname:pid:random, unique to this process.
func DefaultHolder() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (o PublisherOptions) withDefaults() PublisherOptions {
	d := DefaultPublisherOptions()
	if o.Holder == "" {
		o.Holder = DefaultHolder()
	}
	for _, p := range []struct{ v, d *time.Duration }{
		{&o.TTL, &d.TTL}, {&o.Every, &d.Every}, {&o.FleetEvery, &d.FleetEvery}, {&o.VisitWindow, &d.VisitWindow},
	} {
		if *p.v <= 0 {
			*p.v = *p.d
		}
	}
	if o.BatchSize < 1 {
		o.BatchSize = d.BatchSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Publisher writes a health engine's view to the database while it holds
// the lease "health", and applies to its engine what other replicas wrote
// there (crew visits, newer firmware policies).
//
// Every Every it renews the lease and publishes the terminals the engine's
// change feed reports and their flag transitions; every FleetEvery the
// incidents, the fleet summaries ("" and each tenant) and the
// suspect-firmware findings. When it gains the lease (a new fence) it
// publishes every terminal, with the flag events that make the stored
// flags the engine's (Batch.DiffEvents). A standby drops what it drains:
// it publishes everything when it takes over. Any failure to publish
// makes the next publish a full one.
type Publisher struct {
	db   *store.DB
	eng  *health.Engine
	opts PublisherOptions
	log  *slog.Logger

	lease store.Lease
	// fence is the fence under which everything was last published in
	// full; 0: the next publish is a full one.
	fence     int64
	held      atomic.Bool
	lastFleet time.Time
	renewed   time.Time // the last Acquire, on the clock
	// refresh is what is left of the current refresh round.
	refresh    []posfleet.TerminalRef
	refreshPer int // terminals per step
	// incidents is the body last written per incident ID.
	incidents map[string]string
	// applied holds the visits applied to the engine, until VisitWindow
	// after they were.
	applied map[string]time.Time
	policy  int64 // the policy version applied
}

// NewPublisher turns eng's change feed on; Run publishes.
func NewPublisher(db *store.DB, eng *health.Engine, opts PublisherOptions) *Publisher {
	opts = opts.withDefaults()
	eng.TrackChanges(true)
	return &Publisher{db: db, eng: eng, opts: opts,
		log:       opts.Logger.With("component", "healthview", "holder", opts.Holder),
		lease:     store.Lease{Name: LeaseName, Holder: opts.Holder, TTL: opts.TTL},
		incidents: map[string]string{}, applied: map[string]time.Time{}}
}

// Held reports whether this publisher held the lease at its last step.
func (p *Publisher) Held() bool { return p.held.Load() }

// Holder is this publisher's name in the lease.
func (p *Publisher) Holder() string { return p.opts.Holder }

// Run steps every Every until ctx ends, then publishes a last time and
// releases the lease, so that a standby takes over at once.
func (p *Publisher) Run(ctx context.Context) error {
	t := time.NewTicker(p.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			end, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Step(end, p.opts.Now()); err != nil {
				p.log.Warn("last health view publish failed", "err", err)
			}
			if err := p.db.Release(end, &p.lease); err != nil {
				p.log.Warn("health lease not released; a standby takes over when it expires", "err", err)
			}
			p.held.Store(false)
			return nil
		case <-t.C:
			if err := p.Step(ctx, p.opts.Now()); err != nil && ctx.Err() == nil {
				p.log.Warn("health view not published; publishing everything at the next try", "err", err)
			}
		}
	}
}

// Step renews (or tries to take) the lease, applies what other replicas
// wrote, and publishes while the lease is held. Run calls it; tests may
// drive it with their own clock.
func (p *Publisher) Step(ctx context.Context, now time.Time) error {
	held, err := p.db.Acquire(ctx, &p.lease, now)
	p.renewed = p.opts.Now()
	if err != nil {
		p.eng.Drain()
		p.lost()
		return fmt.Errorf("healthview: lease: %w", err)
	}
	if held != p.held.Load() {
		if held {
			p.log.Info("health lease taken: publishing the health view", "fence", p.lease.Fence)
		} else {
			p.log.Info("health lease held by another replica: standing by")
		}
		p.held.Store(held)
	}
	// Both the holder and a standby apply visits and policies, so that a
	// standby's engine is the holder's when it takes over.
	errApply := p.apply(ctx, now, held)
	c := p.eng.Drain()
	if !held {
		p.fence = 0
		return errApply
	}
	err = p.publish(ctx, c, now)
	if errors.Is(err, store.ErrFenced) {
		p.log.Info("health lease lost to another replica while publishing")
		p.held.Store(false)
	}
	if err != nil {
		p.lost()
	}
	return errors.Join(errApply, err)
}

// lost makes the next publish a full one.
func (p *Publisher) lost() {
	p.fence = 0
	clear(p.incidents)
}

func (p *Publisher) publish(ctx context.Context, c health.Changes, now time.Time) error {
	full := c.Resync || p.fence != p.lease.Fence
	if !full && p.opts.RefreshEvery > 0 {
		if len(p.refresh) == 0 {
			heard, never := p.eng.Refs()
			p.refresh = append(heard, never...)
			steps := max(int(p.opts.RefreshEvery/p.opts.Every), 1)
			p.refreshPer = (len(p.refresh) + steps - 1) / steps
		}
		k := min(len(p.refresh), p.refreshPer)
		c.Terminals = append(c.Terminals, p.refresh[:k]...)
		p.refresh = p.refresh[k:]
	}
	if full {
		start := time.Now()
		heard, never := p.eng.Refs()
		n, err := p.publishTerminals(ctx, append(heard, never...), nil, true, now)
		if err != nil {
			return err
		}
		p.fence, p.refresh = p.lease.Fence, nil
		p.lastFleet = time.Time{}
		p.log.Debug("health view published in full", "terminals", n, "took", time.Since(start).String())
	} else if len(c.Terminals) > 0 || len(c.Transitions) > 0 {
		events := make([]FlagEvent, len(c.Transitions))
		for i, t := range c.Transitions {
			events[i] = FlagEvent{ID: NewEventID(), Ref: t.Ref, Flag: t.Flag, Raised: t.Raised, At: t.At, Actor: t.Actor, Evidence: t.Evidence}
		}
		if _, err := p.publishTerminals(ctx, c.Terminals, events, false, now); err != nil {
			return err
		}
	}
	if now.Sub(p.lastFleet) >= p.opts.FleetEvery {
		if err := p.publishFleet(ctx, now); err != nil {
			return err
		}
		p.lastFleet = now
	}
	return nil
}

// publishTerminals writes refs' rows, BatchSize per transaction, and
// events with the last batch.
func (p *Publisher) publishTerminals(ctx context.Context, refs []posfleet.TerminalRef, events []FlagEvent, diff bool, now time.Time) (int, error) {
	n := 0
	for first := true; first || len(refs) > 0; first = false {
		k := min(len(refs), p.opts.BatchSize)
		b := Batch{DiffEvents: diff, Alarms: p.opts.Alarms}
		for _, ref := range refs[:k] {
			b.Terminals = append(b.Terminals, p.row(ref))
		}
		refs = refs[k:]
		if len(refs) == 0 {
			b.Events = events
		}
		if len(b.Terminals) == 0 && len(b.Events) == 0 {
			break
		}
		if err := p.renew(ctx); err != nil {
			return n, err
		}
		if err := Publish(ctx, p.db, &p.lease, b, now); err != nil {
			return n, err
		}
		n += len(b.Terminals)
	}
	return n, nil
}

// renew renews the lease once a third of its TTL passed since the last
// renewal: a full publish of a large fleet takes longer than the TTL, and
// a standby must not take the lease over meanwhile.
func (p *Publisher) renew(ctx context.Context) error {
	now := p.opts.Now()
	if now.Sub(p.renewed) < p.opts.TTL/3 {
		return nil
	}
	held, err := p.db.Acquire(ctx, &p.lease, now)
	p.renewed = now
	switch {
	case err != nil:
		return fmt.Errorf("healthview: lease: %w", err)
	case !held:
		return store.ErrFenced
	}
	return nil
}

// row is ref's published state: the engine's, or a never-connected row
// for a provisioned terminal it has not heard from.
func (p *Publisher) row(ref posfleet.TerminalRef) TerminalRow {
	h, ok := p.eng.Terminal(ref)
	if !ok {
		row := TerminalRow{NeverConnected: true, Health: health.TerminalHealth{Ref: ref, Tenant: ref.Tenant, Terminal: ref.Terminal,
			OpenFaults: []health.OpenFault{}, Flags: []posfleet.Flag{}, Service: []health.ServiceRecord{}}}
		if p.opts.Site != nil {
			if st, ok := p.opts.Site(ref); ok {
				row.Health.Site = st
				row.Merchant, row.Region = st.Merchant, st.Region
			}
		}
		return row
	}
	row := TerminalRow{Health: h, Merchant: h.Site.Merchant, Region: h.Site.Region}
	if it, ok := p.eng.WorkItem(ref); ok {
		row.Work = &it
	}
	return row
}

// publishFleet writes the incidents that changed, and each tenant's
// summary and suspect-firmware findings.
func (p *Publisher) publishFleet(ctx context.Context, now time.Time) error {
	b := Batch{Summaries: map[string]health.FleetSummary{}, Suspect: map[string][]health.FirmwareFinding{}, Alarms: p.opts.Alarms, Settle: true}
	bodies := map[string]string{}
	for _, inc := range p.eng.Incidents("") {
		j, err := json.Marshal(inc)
		if err != nil {
			return err
		}
		if body := string(j); p.incidents[inc.ID] != body {
			b.Incidents = append(b.Incidents, inc)
			bodies[inc.ID] = body
		}
	}
	tenants := map[string]bool{"": true}
	heard, never := p.eng.Refs()
	for _, r := range heard {
		tenants[r.Tenant] = true
	}
	for _, r := range never {
		tenants[r.Tenant] = true
	}
	for t := range tenants {
		fs := p.eng.FleetSummary(t)
		b.Summaries[t] = fs
		b.Suspect[t] = fs.SuspectFirmware
	}
	if err := Publish(ctx, p.db, &p.lease, b, now); err != nil {
		return err
	}
	for id, body := range bodies {
		p.incidents[id] = body
	}
	return nil
}

// apply applies to the engine the crew visits and the newest firmware
// policy other replicas wrote; the holder marks the visits applied.
func (p *Publisher) apply(ctx context.Context, now time.Time, held bool) error {
	return errors.Join(p.applyVisits(ctx, now, held), p.applyPolicy(ctx))
}

func (p *Publisher) applyVisits(ctx context.Context, now time.Time, held bool) error {
	for id, at := range p.applied {
		if now.Sub(at) > 2*p.opts.VisitWindow {
			delete(p.applied, id)
		}
	}
	todo, err := journal.VisitsToApply(ctx, p.db, now.Add(-p.opts.VisitWindow))
	if err != nil {
		return fmt.Errorf("healthview: %w", err)
	}
	for _, v := range todo {
		var cleared []posfleet.FlagName
		if _, done := p.applied[v.ID]; !done {
			var err error
			if rec, ok := p.inHistory(v); ok {
				// Applied before the snapshot this engine was restored
				// from: not twice.
				cleared = rec.Cleared
			} else if cleared, err = p.eng.MarkServiced(v.Terminal, v.Note, v.By, v.At); err != nil {
				p.log.Warn("crew visit not applied", "terminal", v.Terminal.String(), "visit", v.ID, "err", err)
			}
			p.applied[v.ID] = now
		}
		if !held || !v.Applied.IsZero() {
			continue
		}
		if err := p.db.Tx(ctx, func(tx *sql.Tx) error {
			if err := p.lease.Check(ctx, tx, p.db.Dialect); err != nil {
				return err
			}
			_, err := journal.MarkVisitApplied(ctx, tx, v.ID, cleared, now)
			return err
		}); err != nil {
			return fmt.Errorf("healthview: visit %s: %w", v.ID, err)
		}
	}
	return nil
}

// inHistory finds visit v in the terminal's service history (same time to
// the millisecond, user and note).
func (p *Publisher) inHistory(v journal.Visit) (health.ServiceRecord, bool) {
	h, ok := p.eng.Terminal(v.Terminal)
	if !ok {
		return health.ServiceRecord{}, false
	}
	for _, r := range h.Service {
		if r.At.UnixMilli() == v.At.UnixMilli() && r.By == v.By && r.Note == v.Note {
			return r, true
		}
	}
	return health.ServiceRecord{}, false
}

func (p *Publisher) applyPolicy(ctx context.Context) error {
	pv, ok, err := journal.LatestPolicy(ctx, p.db)
	switch {
	case err != nil:
		return fmt.Errorf("healthview: %w", err)
	case !ok || pv.Version <= p.policy:
		return nil
	}
	version, body := pv.Version, pv.Body
	p.policy = version
	if err := p.eng.SetPolicy([]byte(body)); err != nil {
		p.log.Error("firmware policy from the database refused; keeping the current one", "version", version, "err", err)
		return nil
	}
	p.log.Info("firmware policy applied from the database", "version", version)
	return nil
}
