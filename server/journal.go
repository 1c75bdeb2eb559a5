package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/web"
)

// journalParts are what keeps the journal (package journal) in the
// control-plane database: the event writer the collector feeds and the
// pruner of security events and rejections. The command tracker is
// s.cmds.
type journalParts struct {
	events     *journal.EventWriter
	stopPruner context.CancelFunc
	pruner     sync.WaitGroup
}

// openJournal starts the command tracker (written through to the
// database), the event writer and the pruner. Every role has them: a
// web-only replica reads commands and events from the database, and any
// process may prune.
func (s *Server) openJournal() {
	j := &journalParts{events: journal.NewEventWriter(s.db, s.log)}
	s.cmds = commands.NewStored(journal.Commands{DB: s.db}, s.log)
	ctx, cancel := context.WithCancel(context.Background())
	j.stopPruner = cancel
	j.pruner.Add(1)
	go func() {
		defer j.pruner.Done()
		journal.RunPruner(ctx, s.db, s.cfg.auditRetention(), s.log.With("component", "journal"))
	}()
	s.journal = j
}

// journalCollector gives the collector the event writer.
func (s *Server) journalCollector(o *collector.Options) {
	if s.journal != nil {
		o.EventSink = s.journal.events
	}
}

// journalWeb gives the web side the journal: the command log, the events,
// the policy's versions and the visits, read from and written to the
// database, so that every replica shows the same.
func (s *Server) journalWeb(o *web.Options) {
	o.Commands = s.cmds
	ev := journal.Events{DB: s.db, Log: s.log}
	if s.col != nil {
		ev.CountersOf = s.col.Counters // a collector's counters, since its start
	}
	o.Events = ev
	o.SavePolicy = s.savePolicy
	o.PolicyHistory = policyHistory{s}
	o.Thresholds = thresholdStore{s: s, eng: s.engine}
	if s.engine != nil {
		// The engine applied the visit: it is recorded applied. A process
		// without the engine records its visits pending instead
		// (journal.AddVisit with a zero Applied), for the engine to apply.
		o.Visits = visitLog{s}
	}
}

// closeJournal writes what the event writer and the tracker hold and
// stops the pruner; after the collector closed (its last window counts go
// to the event writer), before the database closes.
func (s *Server) closeJournal() {
	if s.journal == nil {
		return
	}
	s.journal.stopPruner()
	s.journal.pruner.Wait()
	s.journal.events.Close()
	if s.cmds != nil {
		s.cmds.Close()
	}
	s.journal = nil
}

// loadPolicy gives the engine the newest policy version of the database,
// after importing an older release's policy.yaml when the database has
// none (then renamed policy.yaml.imported).
func (s *Server) loadPolicy(ctx context.Context, eng *health.Engine) error {
	file := filepath.Join(s.cfg.DataDir, policyFile)
	check := func(b []byte) error { _, err := health.ParsePolicy(b); return err }
	imported, err := journal.ImportPolicyFile(ctx, s.db, file, check, time.Now())
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if imported {
		s.log.Info("firmware policy imported into the database", "file", file, "renamed_to", file+".imported")
	} else if _, err := os.Stat(file); err == nil {
		s.log.Warn("policy file ignored: the database has the firmware policy (GET /api/v1/policy/history); remove the file", "file", file)
	}
	p, ok, err := journal.LatestPolicy(ctx, s.db)
	if err != nil || !ok {
		return err
	}
	if err := eng.SetPolicy([]byte(p.Body)); err != nil {
		return fmt.Errorf("serve: firmware policy version %d: %w", p.Version, err)
	}
	return nil
}

// savePolicy keeps an accepted firmware policy as its next version.
func (s *Server) savePolicy(ctx context.Context, body []byte, by string) error {
	v, err := journal.AddPolicy(ctx, s.db, body, by, time.Now())
	if err == nil {
		web.NoteAudit(ctx, "version", v)
		s.log.Info("firmware policy version stored", "version", v, "by", by)
	}
	return err
}

// policyHistory reads the policy's versions for the web.
type policyHistory struct{ s *Server }

func (h policyHistory) PolicyVersions(ctx context.Context, n int) ([]web.PolicyVersion, error) {
	vs, err := journal.PolicyHistory(ctx, h.s.db, n)
	if err != nil {
		return nil, err
	}
	out := make([]web.PolicyVersion, len(vs))
	for i, v := range vs {
		out[i] = web.PolicyVersion{Version: v.Version, CreatedAt: v.CreatedAt, CreatedBy: v.CreatedBy, Body: v.Body}
	}
	return out, nil
}

// visitLog records the visits the engine applied.
type visitLog struct{ s *Server }

func (l visitLog) AddVisit(ctx context.Context, ref posfleet.TerminalRef, at time.Time, by, note string, cleared []posfleet.FlagName) error {
	_, err := journal.AddVisit(ctx, l.s.db, journal.Visit{Terminal: ref, At: at, By: by, Note: note, Cleared: cleared, Applied: time.Now()})
	return err
}
