package health

import (
	"context"
	"hash/maphash"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet"
)

// nShards splits the terminals over independently locked maps so that the
// collector's many per-terminal goroutines rarely wait for each other.
const nShards = 64

type shard struct {
	mu sync.Mutex
	m  map[posfleet.TerminalRef]*termState
	// prov holds provisioned terminals not yet heard from (Provision);
	// a terminal leaves it with its first message.
	prov map[posfleet.TerminalRef]struct{}

	// The change feed (changes.go): on when track, the terminals changed
	// since the last Drain (each with its dirty bit set), the provisioned
	// ones added, the flag transitions, and whether any were lost.
	track     bool
	lost      bool
	dirty     []*termState
	provDirty []posfleet.TerminalRef
	trans     []transition
}

// Engine keeps the health state of every terminal it has heard from and
// raises the flags and incidents of PROTOCOL.md §2. Its methods are safe for
// concurrent use.
type Engine struct {
	cfg Config
	log *slog.Logger
	// ownMerchants: no merchant lookup, every terminal is its own merchant.
	ownMerchants bool
	seed         maphash.Seed
	shards       [nShards]shard
	policy       atomic.Pointer[compiledPolicy]
	// thr is the thresholds in force (thresholds.go), never nil.
	thr atomic.Pointer[thresholdSet]

	// restoredAt is when Restore last ran (Unix ms): the server heard
	// nothing while it was down, so silence is counted from the restore.
	restoredAt atomic.Int64

	incMu   sync.Mutex
	tenants map[string]*tenantIncidents // guarded by incMu
	// incView is an immutable copy of every tenant's incident windows, read
	// without a lock on the message path.
	incView atomic.Pointer[incidentView]
}

// New returns an Engine with no terminals and an empty firmware policy.
func New(cfg Config) *Engine {
	own := cfg.Merchant == nil && cfg.Site == nil
	cfg = cfg.withDefaults()
	e := &Engine{
		ownMerchants: own,
		cfg:          cfg,
		log:          cfg.Logger.With("component", "health"),
		seed:         maphash.MakeSeed(),
		tenants:      map[string]*tenantIncidents{},
	}
	for i := range e.shards {
		e.shards[i].m = map[posfleet.TerminalRef]*termState{}
	}
	e.incView.Store(&incidentView{})
	e.thr.Store(compileThresholds(cfg, &Thresholds{}, 0))
	return e
}

func (e *Engine) shardIndex(ref posfleet.TerminalRef) int {
	return int(maphash.Comparable(e.seed, ref) % nShards)
}

func (e *Engine) shard(ref posfleet.TerminalRef) *shard { return &e.shards[e.shardIndex(ref)] }

// Observe updates the health of the message's terminal. It does a bounded
// amount of work and never blocks on I/O, except the first time a terminal
// is seen, when Config.Merchant is asked for its merchant.
func (e *Engine) Observe(m *posfleet.Message) {
	now := ms(m.Received)
	if now == 0 {
		now = ms(e.cfg.Now())
	}
	site := e.lookupSite(m, now)
	sh, s := e.lockedState(m.Terminal, now)
	defer sh.mu.Unlock()
	willAt := s.WillAt
	r := e.resolve(s)

	if now > s.LastSeen {
		s.LastSeen = now
	}
	s.AcceptedAt = max(s.AcceptedAt, now)
	mask := mOffline
	if s.Rejects != nil {
		// Accepted messages count against bad_data (and clear it).
		_, width := e.badDataWindow(now)
		s.Rejects.accept(now, width)
		mask |= mBadData
	}
	switch {
	case m.Status != nil:
		if m.Status.Online {
			s.WillAt = 0
		} else {
			s.WillAt = now
		}
	case m.Heartbeat != nil:
		s.WillAt = 0
		mask |= e.observeHeartbeat(s, m.Heartbeat, now, r)
		mask |= e.observeLocation(s, m.Heartbeat, site, now, r)
		mask |= e.observeWear(s, m.Heartbeat, now)
	case m.Fault != nil:
		s.WillAt = 0
		mask |= e.observeFault(s, m.Fault, now)
		sh.markDirty(s) // its open faults
	case m.Inventory != nil:
		s.WillAt = 0
		if s.Model != m.Inventory.Model || s.Firmware != m.Inventory.Firmware {
			sh.markDirty(s)
		}
		mask |= e.observeInventory(s, m.Inventory, now)
		r = e.resolve(s) // the model's thresholds
	case m.Txn != nil:
		s.WillAt = 0
		mask |= e.observeTxn(s, m.Txn, now)
		mask |= s.observeChip(m.Txn, now)
		mask |= s.observeSale(m.Txn, now)
	default:
		s.WillAt = 0
	}
	if (willAt == 0) != (s.WillAt == 0) {
		sh.markDirty(s) // online or offline by its last will
	}
	if s.Hours != nil {
		s.Hours.hear(now)
		mask |= mSilent
	}
	e.reassessWith(sh, s, mask, now, "", r)
}

// lockedState returns ref's shard, locked, and its state, created (first
// seen at now) when the engine had not heard from it.
func (e *Engine) lockedState(ref posfleet.TerminalRef, now int64) (*shard, *termState) {
	sh := e.shard(ref)
	sh.mu.Lock()
	s := sh.m[ref]
	if s == nil {
		// Ask for the merchant without holding the shard: the lookup may
		// read the registry.
		sh.mu.Unlock()
		merchant := ""
		if e.cfg.Merchant != nil {
			merchant = e.cfg.Merchant(ref)
		}
		sh.mu.Lock()
		if s = sh.m[ref]; s == nil {
			s = &termState{Ref: ref, Merchant: merchant, FirstSeen: now}
			sh.m[ref] = s
			delete(sh.prov, ref)
			sh.markDirty(s)
		}
	}
	return sh, s
}

func (e *Engine) observeHeartbeat(s *termState, hb *posfleet.Heartbeat, now int64, r *resolved) flagMask {
	smp := hbSample{At: now, RTT: -1, Live: liveHeartbeat(s.LastHB, ms(hb.TS), now)}
	if ts := ms(hb.TS); ts != 0 {
		smp.Off = int32(max(min((ts-now)/1000, math.MaxInt32), math.MinInt32))
	}
	info := hbInfo{At: now, TS: ms(hb.TS), Uptime: -1, Battery: -1, RTT: -1, Pending: -1,
		Net: intern(hb.Net), Paper: intern(hb.Paper)}
	if hb.SignalDBm != nil {
		smp.Signal, smp.HasSignal = int16(*hb.SignalDBm), true
		info.Signal, info.HasSignal = smp.Signal, true
	}
	if hb.HostRTTMs != nil {
		smp.RTT = int32(min(*hb.HostRTTMs, 1<<30))
		info.RTT = smp.RTT
	}
	if hb.UptimeS != nil {
		info.Uptime = *hb.UptimeS
	}
	if hb.TempC != nil {
		info.TempC, info.HasTemp = float32(*hb.TempC), true
	}
	if hb.BatteryPct != nil {
		info.Battery = int8(*hb.BatteryPct)
	}
	if hb.Charging != nil {
		info.Charging = *hb.Charging
	}
	if hb.PendingTxns != nil {
		info.Pending = int32(min(*hb.PendingTxns, 1<<30))
	}
	s.HB[s.HBNext] = smp
	if smp.Live {
		s.Clock.add(now, smp.Off)
	}
	s.HBNext = (s.HBNext + 1) % HeartbeatRing
	if s.HBCount < HeartbeatRing {
		s.HBCount++
	}
	s.LastHB = info

	if info.Battery >= 0 && int(info.Battery) < r.LowBatteryPct && !info.Charging {
		if s.LowBatStreak == 0 {
			s.LowBatSince = now
		}
		if s.LowBatStreak < 255 {
			s.LowBatStreak++
		}
	} else {
		s.LowBatStreak, s.LowBatSince = 0, 0
	}
	if info.Paper == posfleet.PaperOut {
		// Out since the first heartbeat that said so, or since the first
		// one after a crew visit that should have refilled it.
		if s.PaperOutAt == 0 || s.PaperOutAt < s.ServicedAt {
			s.PaperOutAt = now
		}
	} else if info.Paper != "" {
		s.PaperOutAt = 0
	}
	return mHeartbeat
}

// liveJitter is how much more or less time may pass between two
// heartbeats' arrivals than between their timestamps for the second to
// count as live: the network's jitter and the second-resolution of ts.
const liveJitter = 5 * time.Second

// liveHeartbeat tells whether a heartbeat with timestamp ts (terminal
// clock, Unix ms, 0 if absent) received at now was sent live, that is
// delivered with the same small delay as the heartbeat before it (prev),
// rather than replayed from the outbox of a terminal back from an outage.
//
// Between two heartbeats, (now - prev.At) - (ts - prev.TS) is the change
// in delivery delay: the clock's offset cancels out, and so does the
// heartbeat interval, whatever the terminal's is. Live heartbeats keep it
// within the jitter. A replayed backlog does not: it arrives in a burst
// (its arrivals a few milliseconds apart, its timestamps an interval
// apart), and the first message after a reconnect arrives an outage after
// the last one before it while its timestamp is an interval after. The
// tolerance is at most half the timestamps' gap, so that a burst of
// heartbeats taken seconds apart is a burst too. The first heartbeat ever
// heard has nothing to compare with and counts as live; clock_skew never
// judges on one heartbeat (ClockSkewHeartbeats, default 2), and since
// delay only makes ts look older, the verdict takes the least delayed.
// A clock that jumps (corrected by NTP) breaks the chain once too: the
// heartbeat after the jump is live again.
func liveHeartbeat(prev hbInfo, ts, now int64) bool {
	if prev.At == 0 {
		return true
	}
	if ts == 0 || prev.TS == 0 {
		return false
	}
	dts := ts - prev.TS
	if dts <= 0 {
		return false
	}
	return abs((now-prev.At)-dts) <= min(dts/2, liveJitter.Milliseconds())
}

func (e *Engine) observeFault(s *termState, f *posfleet.Fault, now int64) flagMask {
	i := -1
	for j := range s.Faults {
		if s.Faults[j].Component == f.Component && s.Faults[j].Code == f.Code {
			i = j
			break
		}
	}
	if f.State == posfleet.FaultCleared {
		if i >= 0 {
			s.Faults = append(s.Faults[:i], s.Faults[i+1:]...)
		}
		return mHardwareFault | mTamper
	}
	of := openFault{Component: intern(f.Component), Code: f.Code, Severity: intern(f.Severity), Detail: f.Detail, At: now}
	switch {
	case i >= 0:
		if s.Faults[i].At >= s.ServicedAt {
			of.At = s.Faults[i].At // still the same fault, open since then
		}
		// Raised again after a crew visit: the visit did not fix it, and
		// that is news.
		s.Faults[i] = of
	case len(s.Faults) >= MaxOpenFaults:
		copy(s.Faults, s.Faults[1:])
		s.Faults[len(s.Faults)-1] = of
	default:
		s.Faults = append(s.Faults, of)
	}
	if tamperFault(f.Component, f.Code) {
		if s.Tamper == nil {
			s.Tamper = &evRing{}
		}
		s.Tamper.add(evt{At: now, ID: of.Component, Note: f.Code, A: 0})
	}
	return mHardwareFault | mTamper
}

func (e *Engine) observeInventory(s *termState, inv *posfleet.Inventory, now int64) flagMask {
	if s.Firmware != inv.Firmware || s.Model != inv.Model {
		s.FW = fwCounters{}
	}
	s.Model, s.Serial, s.Firmware, s.App = inv.Model, inv.Serial, inv.Firmware, inv.App
	s.BootReason = intern(inv.BootReason)
	s.InvAt = now
	s.countBoot(inv, s.Update) // before s.Update takes this one's (kpi.go)
	if inv.Update != nil {
		s.Update = *inv.Update
		s.UpdateAt = now
	}
	return mFirmware
}

func (e *Engine) observeTxn(s *termState, t *posfleet.Transaction, now int64) flagMask {
	if t.Host != "" && t.Host != s.Host {
		s.Host = strings.Clone(t.Host) // not the decoder's copy of the whole message's text
	}
	cause := causeIndex(posfleet.ClassifyTransaction(t))
	hostSide := posfleet.HostSideFailure(t)
	counted := cause
	if hostSide {
		if s.LastHostFailAt < now-e.cfg.IncidentWindow.Milliseconds() {
			s.HostFailFirst, s.HostFailRun = now, 0
		}
		s.HostFailRun++
		s.LastHostFailAt = now
		s.HostFails++
		if e.incView.Load().open(s.Ref.Tenant, s.Host) != nil {
			// An open incident explains this failure: the bank, not the terminal.
			counted = cHost
		}
	}
	s.Causes[counted]++
	s.countTxn(t, counted) // campaign KPIs (kpi.go)
	s.Txn[s.TxnNext] = packOutcome(now, cause, hostSide)
	s.TxnNext = (s.TxnNext + 1) % TxnRing
	if s.TxnCount < TxnRing {
		s.TxnCount++
	}
	if !t.Offline {
		s.LastTxnAt = now
	}
	if causeByIndex[cause].CountsAgainstTerminal() {
		if s.Failures == nil {
			s.Failures = &evRing{}
		}
		hs := int64(0)
		if hostSide {
			hs = 1
		}
		s.Failures.add(evt{At: now, ID: t.ID, A: int64(cause), B: hs, Note: resultNote(t)})
	}

	s.FW.Txns++
	if cause == cTerminal {
		s.FW.TerminalFailures++
	}
	approved := t.Result == posfleet.ResultApproved
	if approved && t.Type == posfleet.TxnSale {
		s.FW.Sales++
		if t.AmountEntered != nil && t.AmountCharged != nil && *t.AmountEntered != *t.AmountCharged {
			s.FW.Mismatches++
			if s.Mismatch == nil {
				s.Mismatch = &evRing{}
			}
			s.Mismatch.add(evt{At: now, ID: t.ID, A: *t.AmountEntered, B: *t.AmountCharged, Note: t.Currency})
		}
	}
	if approved && t.Receipt == posfleet.ReceiptFailed {
		if s.Receipt == nil {
			s.Receipt = &evRing{}
		}
		s.Receipt.add(evt{At: now, ID: t.ID})
	}
	if t.Type == posfleet.TxnRefund {
		amount := t.AmountCharged
		if amount == nil {
			amount = t.AmountEntered
		}
		reason := ""
		switch {
		case t.RC == "13":
			reason = "invalid_amount"
		case amount != nil && t.OriginalAmount != nil && *amount > *t.OriginalAmount:
			reason = "exceeds_original"
		}
		if reason != "" {
			if s.Refund == nil {
				s.Refund = &evRing{}
			}
			ev := evt{At: now, ID: t.ID, A: -1, B: -1, Note: reason}
			if amount != nil {
				ev.A = *amount
			}
			if t.OriginalAmount != nil {
				ev.B = *t.OriginalAmount
			}
			s.Refund.add(ev)
		}
	}
	return mTxn
}

func resultNote(t *posfleet.Transaction) string {
	if t.RC != "" {
		return t.Result + " " + t.RC
	}
	return t.Result
}

// reassess recomputes the flags in mask and keeps the time each was
// raised; s is in shard sh (locked), whose change feed gets the
// transitions, by actor ("" for the rules).
func (e *Engine) reassess(sh *shard, s *termState, mask flagMask, now int64, actor string) {
	e.reassessWith(sh, s, mask, now, actor, e.resolve(s))
}

// reassessWith is reassess with the terminal's thresholds r.
func (e *Engine) reassessWith(sh *shard, s *termState, mask flagMask, now int64, actor string, r *resolved) {
	pol := e.policy.Load()
	view := e.incView.Load()
	for i := range nFlags {
		if mask&(1<<i) == 0 {
			continue
		}
		v := e.decide(s, i, now, r, pol, view)
		switch {
		case !v.on:
			if s.raised[i] != 0 {
				sh.noteTransition(s, i, false, now, actor)
			}
			s.raised[i] = 0
		case s.raised[i] == 0:
			if v.at == 0 {
				v.at = now
			}
			s.raised[i] = v.at
			sh.noteTransition(s, i, true, v.at, actor)
		}
	}
}

// Tick checks what changes with time alone: offline deadlines, evidence
// leaving the 24-hour windows, and fleet incidents opening and closing.
// Run calls it every Config.TickInterval; tests may call it directly.
func (e *Engine) Tick(now time.Time) {
	n := ms(now)
	win := n - e.cfg.IncidentWindow.Milliseconds()
	counts := map[incKey]*tenantCount{}
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			e.reassess(sh, s, mTimeBased, n, "")
			if s.LastTxnAt < win && s.LastHostFailAt < win {
				continue
			}
			k := incKey{s.Ref.Tenant, s.Host}
			tc := counts[k]
			if tc == nil {
				tc = &tenantCount{merchants: map[string]struct{}{}}
				counts[k] = tc
			}
			tc.transacted++
			if s.LastHostFailAt >= win {
				merchant := s.Merchant
				if e.ownMerchants {
					merchant = s.Ref.Terminal
				}
				tc.hit = append(tc.hit, hitTerminal{ref: s.Ref, merchant: merchant,
					first: s.HostFailFirst, last: s.LastHostFailAt, run: s.HostFailRun, total: s.HostFails})
				tc.merchants[merchant] = struct{}{}
			}
		}
		sh.mu.Unlock()
	}
	changed := e.updateIncidents(n, counts)
	if len(changed) == 0 {
		return
	}
	// An incident opened, closed or moved its start: the failures it
	// explains must stop (or start again) counting against terminals.
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			if _, ok := changed[s.Ref.Tenant]; ok {
				e.reassess(sh, s, mTxnFailures, n, "")
			}
		}
		sh.mu.Unlock()
	}
}

// Run calls Tick every Config.TickInterval until ctx is done.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			e.Tick(e.cfg.Now())
		}
	}
}

// each calls f for every terminal of tenant ("" for all) under its shard's lock.
func (e *Engine) each(tenant string, f func(s *termState)) {
	e.eachIn(tenant, func(_ *shard, s *termState) { f(s) })
}

// eachIn is each with the terminal's shard.
func (e *Engine) eachIn(tenant string, f func(sh *shard, s *termState)) {
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			if tenant == "" || s.Ref.Tenant == tenant {
				f(sh, s)
			}
		}
		sh.mu.Unlock()
	}
}

// SetPolicy parses, validates and applies a firmware policy in YAML and
// re-judges every terminal's firmware. On error the current policy stays.
func (e *Engine) SetPolicy(data []byte) error {
	p, err := ParsePolicy(data)
	if err != nil {
		return err
	}
	e.policy.Store(compilePolicy(p))
	now := ms(e.cfg.Now())
	e.eachIn("", func(sh *shard, s *termState) { e.reassess(sh, s, mFirmware, now, "") })
	return nil
}

// Policy returns the firmware policy in force (empty before SetPolicy).
func (e *Engine) Policy() *Policy {
	if c := e.policy.Load(); c != nil {
		// A copy: the policy in force changes only through SetPolicy.
		p := &Policy{Models: make(map[string]ModelPolicy, len(c.src.Models))}
		for name, mp := range c.src.Models {
			mp.Blocked = append([]string(nil), mp.Blocked...)
			p.Models[name] = mp
		}
		return p
	}
	return &Policy{Models: map[string]ModelPolicy{}}
}
