package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/registry"
)

// snapshotFile is where the health engine's state is kept, written every
// SnapshotInterval and at shutdown, and read at start (see health.LoadSnapshot).
const snapshotFile = "health.snapshot"

// policyFile is where an older release kept the firmware policy; it is
// imported into the database at the first start (see loadPolicy).
const policyFile = "policy.yaml"

// newEngine makes the health engine, with the registry's terminals as its
// merchants and sites.
func (s *Server) newEngine() *health.Engine {
	hcfg := s.cfg.Health
	hcfg.Logger = s.log
	hcfg.Merchant = func(ref posfleet.TerminalRef) string {
		t, err := s.reg.Get(context.Background(), ref)
		if err != nil {
			return ""
		}
		return t.Merchant
	}
	hcfg.Site = func(ref posfleet.TerminalRef) (health.Site, bool) {
		t, err := s.reg.Get(context.Background(), ref)
		if err != nil {
			return health.Site{}, false
		}
		return t.Placement(), true
	}
	return health.New(hcfg)
}

// startHealth makes the engine and the command log, restores the last
// snapshot and the firmware policy, and starts the engine's clock and the
// snapshot loop.
func (s *Server) startHealth(ctx context.Context) error {
	eng := s.newEngine()
	snap := filepath.Join(s.cfg.DataDir, snapshotFile)
	if err := eng.LoadSnapshot(snap); errors.Is(err, health.ErrDamagedSnapshot) {
		// A damaged snapshot must not keep the server down: the engine
		// starts empty and fills from new messages.
		s.log.Error("health snapshot not restored; starting empty", "file", snap, "err", err)
	} else if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := s.loadPolicy(ctx, eng); err != nil {
		return err
	}
	if err := s.loadThresholds(ctx, eng); err != nil {
		return err
	}
	// A policy written before package URLs were checked: serve, but say
	// loudly that its update commands would carry such a URL.
	if pol := eng.Policy(); pol != nil {
		if err := pol.CheckURLs(s.cfg.AllowHTTPFirmware); err != nil {
			s.log.Error("firmware policy has a package URL terminals should not fetch; correct it (PUT /api/v1/policy or the Firmware page)", "err", err)
		}
	}

	// Provisioned terminals that never connected are counted and listed
	// (never_connected); imports through the API add theirs as they come
	// (provisionNotifier).
	refs, err := s.reg.Refs(ctx)
	if err != nil {
		return fmt.Errorf("serve: provisioned terminals: %w", err)
	}
	eng.Provision(refs...)

	s.engine = eng
	hctx, cancel := context.WithCancel(context.Background())
	s.stopHealth = cancel
	done := make(chan struct{})
	s.healthDone = done
	var running sync.WaitGroup
	running.Add(3)
	go func() { running.Wait(); close(done) }()
	// The engine's clock is a part of the server: its error, dropped
	// before, now stops it.
	s.parts.Go(func() error {
		defer running.Done()
		if err := eng.Run(hctx); err != nil {
			return fmt.Errorf("serve: health engine: %w", err)
		}
		return nil
	})
	s.parts.Go(func() error {
		defer running.Done()
		return eng.RunSnapshots(hctx, snap, s.cfg.SnapshotInterval)
	})
	s.parts.Go(func() error {
		defer running.Done()
		s.watchThresholds(hctx, eng) // other replicas' changes
		return nil
	})
	return nil
}

// startPublisher starts the health view's publisher (healthview): under
// the lease "health" it writes the engine's view to the database and
// applies the visits and policies other replicas wrote there.
func (s *Server) startPublisher() error {
	opts := s.cfg.Publisher
	opts.Logger = s.log
	opts.Site = func(ref posfleet.TerminalRef) (health.Site, bool) {
		t, err := s.reg.Get(context.Background(), ref)
		if err != nil {
			return health.Site{}, false
		}
		return t.Placement(), true
	}
	alarms := s.cfg.Alerting.Alarms
	opts.Alarms = &alarms
	pub := healthview.NewPublisher(s.db, s.engine, opts)
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "posfleet_health_lease_held",
		Help: "1 while this process holds the health lease and publishes the health view to the database.",
	}, func() float64 {
		if pub.Held() {
			return 1
		}
		return 0
	})
	if err := s.metrics.Register(held); err != nil {
		return fmt.Errorf("serve: metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.publisher, s.stopPublisher, s.publisherDone = pub, cancel, done
	s.parts.Go(func() error {
		defer close(done)
		return pub.Run(ctx)
	})
	return nil
}

// closeHealth stops the publisher (a last publish, the lease released),
// then the engine, and writes its last snapshot.
func (s *Server) closeHealth() error {
	if s.stopPublisher != nil {
		s.stopPublisher()
		<-s.publisherDone
		s.stopPublisher, s.publisher = nil, nil
	}
	if s.engine == nil {
		return nil
	}
	s.stopHealth()
	<-s.healthDone
	err := s.engine.SaveSnapshot(filepath.Join(s.cfg.DataDir, snapshotFile))
	s.engine = nil
	return err
}

// provisionNotifier is the registry's Import that also tells the health
// engine of the terminals it added, so that they count as never connected
// until their first message.
type provisionNotifier struct {
	reg    *registry.Registry
	engine *health.Engine
}

// Import provisions through the registry, then tells the engine.
func (p provisionNotifier) Import(ctx context.Context, in io.Reader, emit func([]registry.Credential) error) (registry.ImportResult, error) {
	res, err := p.reg.Import(ctx, in, emit)
	if err != nil {
		return res, err
	}
	// Every new terminal gets a credential; the others are either known
	// to the engine already or rotated ones, which Provision skips.
	refs := make([]posfleet.TerminalRef, len(res.Credentials))
	for i, c := range res.Credentials {
		refs[i] = c.TerminalRef
	}
	p.engine.Provision(refs...)
	return res, nil
}

// healthSink feeds the health role's engine and command tracker from the
// whole stream (mqttsource.StreamFilter): no spool, no InfluxDB; the
// collectors store the same messages from their shared subscription.
type healthSink struct {
	observers []interface{ Observe(*posfleet.Message) }

	mu sync.Mutex
	// last is each terminal's last seq and ts, to drop QoS 1 redeliveries
	// (a reconnect resends what was not acknowledged) and retained replays.
	last map[posfleet.TerminalRef]seqMark
}

type seqMark struct{ seq, ts int64 }

func newHealthSink(observers ...interface{ Observe(*posfleet.Message) }) *healthSink {
	return &healthSink{observers: observers, last: map[posfleet.TerminalRef]seqMark{}}
}

// Accept decodes the message and hands it to the observers unless it is
// one already seen: a seq no higher than the last with a timestamp no
// later (a terminal that starts its seqs again has a later clock).
// A *posfleet.Rejection for bad input is acknowledged by mqttsource.
func (h *healthSink) Accept(_ context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte) error {
	msg, err := posfleet.Decode(ref, ch, payload, time.Now())
	if err != nil {
		return err
	}
	if hd := msg.Header(); hd.Seq > 0 {
		ts := hd.TS.UnixMilli()
		h.mu.Lock()
		last, seen := h.last[msg.Terminal]
		dup := seen && hd.Seq <= last.seq && ts <= last.ts
		if !dup {
			h.last[msg.Terminal] = seqMark{seq: hd.Seq, ts: ts}
		}
		h.mu.Unlock()
		if dup {
			return nil
		}
	}
	for _, o := range h.observers {
		o.Observe(msg)
	}
	return nil
}
