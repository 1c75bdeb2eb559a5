package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/registry"
)

// The health engine keeps its state in memory and in a snapshot file
// (data/health.snapshot), written every SnapshotInterval and at shutdown,
// and read at start: 100,000 terminals restore in about a second, where
// rebuilding from InfluxDB would mean reading a day of every terminal's
// transactions. What arrived after the last snapshot before a crash is in
// InfluxDB but not in the engine: at most SnapshotInterval of evidence,
// which the next messages replace within minutes.
const snapshotFile = "health.snapshot"

// policyFile is where the firmware policy accepted by PUT /api/v1/policy is kept.
const policyFile = "policy.yaml"

// startHealth makes the engine and the command log, restores the last
// snapshot and the firmware policy, and starts the engine's clock and the
// snapshot loop.
func (s *Server) startHealth(ctx context.Context) error {
	hcfg := health.DefaultConfig()
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
		return siteOf(t), true
	}
	eng := health.New(hcfg)

	snap := filepath.Join(s.cfg.DataDir, snapshotFile)
	if f, err := os.Open(snap); err == nil {
		start := time.Now()
		err := eng.Restore(f)
		f.Close()
		if err != nil {
			// A damaged snapshot must not keep the server down: the engine
			// starts empty and fills from new messages.
			s.log.Error("health snapshot not restored; starting empty", "file", snap, "err", err)
		} else {
			s.log.Info("health state restored", "file", snap, "took", time.Since(start).Round(time.Millisecond).String())
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("serve: health snapshot: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, policyFile)); err == nil {
		if err := eng.SetPolicy(b); err != nil {
			return fmt.Errorf("serve: %s: %w", filepath.Join(s.cfg.DataDir, policyFile), err)
		}
		// A policy written before package URLs were checked: serve, but say
		// loudly that its update commands would carry such a URL.
		if pol := eng.Policy(); pol != nil {
			if err := pol.CheckURLs(s.cfg.AllowHTTPFirmware); err != nil {
				s.log.Error("firmware policy has a package URL terminals should not fetch; correct it (PUT /api/v1/policy or the Firmware page)", "file", filepath.Join(s.cfg.DataDir, policyFile), "err", err)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("serve: firmware policy: %w", err)
	}

	// Provisioned terminals that never connected are counted and listed
	// (never_connected); imports through the API add theirs as they come
	// (provisionNotifier).
	refs, err := s.reg.Refs(ctx)
	if err != nil {
		return fmt.Errorf("serve: provisioned terminals: %w", err)
	}
	eng.Provision(refs...)

	s.engine, s.cmds = eng, commands.New()
	hctx, cancel := context.WithCancel(context.Background())
	s.stopHealth = cancel
	done := make(chan struct{})
	s.healthDone = done
	var running sync.WaitGroup
	running.Add(2)
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
		t := time.NewTicker(s.cfg.SnapshotInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				// Not fatal: the next tick or the shutdown tries again.
				if err := s.saveSnapshot(); err != nil {
					s.log.Error("health snapshot", "err", err)
				}
			case <-hctx.Done():
				return nil
			}
		}
	})
	return nil
}

func siteOf(t registry.Terminal) health.Site {
	st := health.Site{Model: t.Model, Merchant: t.Merchant, Site: t.Site, Region: t.Region}
	if t.Lat != nil && t.Lon != nil {
		st.Lat, st.Lon = *t.Lat, *t.Lon
	}
	return st
}

// saveSnapshot writes the engine's state next to the old snapshot and
// renames it over, so a crash mid-write leaves the old one.
func (s *Server) saveSnapshot() error {
	final := filepath.Join(s.cfg.DataDir, snapshotFile)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := s.engine.Snapshot(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// savePolicy keeps an accepted firmware policy for the next start.
func (s *Server) savePolicy(b []byte) error {
	final := filepath.Join(s.cfg.DataDir, policyFile)
	if err := os.WriteFile(final+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(final+".tmp", final)
}

// closeHealth stops the engine and writes its last snapshot.
func (s *Server) closeHealth() error {
	if s.engine == nil {
		return nil
	}
	s.stopHealth()
	<-s.healthDone
	err := s.saveSnapshot()
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
