package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/web"
)

// thresholdsPoll is how often a process running the health engine looks
// for a new thresholds version in the database (one indexed MAX per
// poll): another replica's change applies here within about as long.
const thresholdsPoll = time.Second

// loadThresholds imports the thresholds file (--thresholds) when the
// database has no version yet, then gives the engine the newest version.
func (s *Server) loadThresholds(ctx context.Context, eng *health.Engine) error {
	if s.cfg.ThresholdsFile != "" {
		body, err := os.ReadFile(s.cfg.ThresholdsFile)
		if err != nil {
			return fmt.Errorf("serve: --thresholds: %w", err)
		}
		d, err := health.ParseThresholds(body)
		if err != nil {
			return fmt.Errorf("serve: --thresholds %s: %w", s.cfg.ThresholdsFile, err)
		}
		switch v, err := journal.LatestThresholdsVersion(ctx, s.db); {
		case err != nil:
			return fmt.Errorf("serve: %w", err)
		case v == 0:
			js, _ := json.Marshal(d)
			if _, err := journal.AddThresholds(ctx, s.db, js, journal.ImportedBy, time.Now(), 0); err != nil && !errors.Is(err, journal.ErrThresholdsChanged) {
				return fmt.Errorf("serve: %w", err)
			}
			s.log.Info("thresholds imported into the database", "file", s.cfg.ThresholdsFile)
		default:
			s.log.Info("thresholds file ignored: the database has the thresholds (GET /api/v1/thresholds)", "file", s.cfg.ThresholdsFile)
		}
	}
	_, err := s.applyThresholds(ctx, eng, 0)
	return err
}

// applyThresholds gives eng the newest version when it is newer than
// applied, and returns the version eng runs.
func (s *Server) applyThresholds(ctx context.Context, eng *health.Engine, applied int64) (int64, error) {
	v, err := journal.LatestThresholdsVersion(ctx, s.db)
	if err != nil || v <= applied {
		return applied, err
	}
	tv, ok, err := journal.LatestThresholds(ctx, s.db)
	if err != nil || !ok {
		return applied, err
	}
	d, err := health.ParseThresholds([]byte(tv.Body))
	if err == nil {
		err = eng.SetThresholds(d, tv.Version)
	}
	if err != nil {
		// Accepted once, refused by this release: keep what runs, say so
		// once, and wait for the next version.
		s.log.Error("thresholds from the database refused; keeping the current ones", "version", tv.Version, "err", err)
		return tv.Version, nil
	}
	s.log.Info("thresholds applied", "version", tv.Version, "by", tv.CreatedBy)
	return tv.Version, nil
}

// watchThresholds applies every new version another process stores,
// until ctx ends.
func (s *Server) watchThresholds(ctx context.Context, eng *health.Engine) {
	_, applied := eng.Thresholds()
	t := time.NewTicker(thresholdsPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// A version this process saved is in force already.
			_, inForce := eng.Thresholds()
			applied = max(applied, inForce)
			v, err := s.applyThresholds(ctx, eng, applied)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("thresholds not read from the database; trying again", "err", err)
			}
			applied = max(applied, v)
		}
	}
}

// thresholdStore serves web.Thresholds from the database; a version saved
// here applies to this process's engine at once, and to the others' within
// thresholdsPoll.
type thresholdStore struct {
	s   *Server
	eng *health.Engine // nil in a process without the engine
}

func (t thresholdStore) CurrentThresholds(ctx context.Context) (web.ThresholdsVersion, error) {
	v, ok, err := journal.LatestThresholds(ctx, t.s.db)
	if err != nil || !ok {
		return web.ThresholdsVersion{Thresholds: &health.Thresholds{}}, err
	}
	return t.version(v), nil
}

func (t thresholdStore) version(v journal.ThresholdsVersion) web.ThresholdsVersion {
	d, err := health.ParseThresholds([]byte(v.Body))
	if err != nil {
		t.s.log.Error("stored thresholds refused by this release", "version", v.Version, "err", err)
		d = &health.Thresholds{}
	}
	return web.ThresholdsVersion{Version: v.Version, CreatedAt: v.CreatedAt, CreatedBy: v.CreatedBy, Thresholds: d}
}

func (t thresholdStore) SaveThresholds(ctx context.Context, d *health.Thresholds, by string, base int64) (int64, error) {
	body, err := json.Marshal(d)
	if err != nil {
		return 0, err
	}
	v, err := journal.AddThresholds(ctx, t.s.db, body, by, time.Now(), base)
	if err != nil {
		return 0, err
	}
	if eng := t.eng; eng != nil {
		if _, cur := eng.Thresholds(); cur < v {
			if err := eng.SetThresholds(d, v); err != nil {
				t.s.log.Error("thresholds stored but not applied", "version", v, "err", err)
			}
		}
	}
	return v, nil
}

func (t thresholdStore) ThresholdsHistory(ctx context.Context, n int) ([]web.ThresholdsVersion, error) {
	vs, err := journal.ThresholdsHistory(ctx, t.s.db, n)
	if err != nil {
		return nil, err
	}
	out := make([]web.ThresholdsVersion, len(vs))
	for i, v := range vs {
		out[i] = t.version(v)
	}
	return out, nil
}
