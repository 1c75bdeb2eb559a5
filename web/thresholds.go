package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// Thresholds serves GET/PUT /api/v1/thresholds, its history and the
// Thresholds page: the overrides per tenant and model of the thresholds of
// PROTOCOL.md §2 (health.Thresholds), stored with their versions (server:
// journal's threshold_versions) and applied by every process running the
// health engine.
type Thresholds interface {
	// CurrentThresholds is the document in force (version 0: none stored).
	CurrentThresholds(ctx context.Context) (ThresholdsVersion, error)
	// SaveThresholds stores d as the next version, by the user or token
	// by, when the newest version is still base (else a Conflict), and
	// applies it where an engine runs here; it returns the new version.
	SaveThresholds(ctx context.Context, d *health.Thresholds, by string, base int64) (int64, error)
	// ThresholdsHistory returns the newest n versions, newest first.
	ThresholdsHistory(ctx context.Context, n int) ([]ThresholdsVersion, error)
}

// ThresholdsVersion is one thresholds document accepted.
type ThresholdsVersion struct {
	Version    int64              `json:"version"`
	CreatedAt  time.Time          `json:"created_at"`
	CreatedBy  string             `json:"created_by"`
	Thresholds *health.Thresholds `json:"thresholds"`
	// Changes are the values this version changed from the one before,
	// as the caller may see them.
	Changes []health.ThresholdChange `json:"changes"`
}

// Bounds of GET /api/v1/thresholds/history.
const (
	defaultThresholdsHistory = 20
	maxThresholdsHistory     = 100
)

func (s *Server) mountThresholds() {
	s.mux.HandleFunc("GET /api/v1/thresholds", s.api(s.handleThresholds))
	s.mux.HandleFunc("PUT /api/v1/thresholds", s.api(s.handlePutThresholds))
	s.mux.HandleFunc("GET /api/v1/thresholds/history", s.api(s.handleThresholdsHistory))
	s.mux.HandleFunc("GET /admin/thresholds", s.page(s.thresholdsPage))
	s.mux.HandleFunc("POST /admin/thresholds", s.page(s.thresholdsPost))
}

// scopedThresholds is the part of d the caller may read: all of it for an
// administrator, its own tenant's part for anyone else.
func scopedThresholds(d *health.Thresholds, scope string, admin bool) *health.Thresholds {
	if admin {
		return d.Clone()
	}
	return d.Only(scope)
}

func (s *Server) handleThresholds(w http.ResponseWriter, r *http.Request) {
	cur, err := s.opts.Thresholds.CurrentThresholds(r.Context())
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	p := principal(r)
	d := scopedThresholds(cur.Thresholds, p.scope, p.admin)
	w.Header().Set("X-Thresholds-Version", strconv.FormatInt(cur.Version, 10))
	if r.URL.Query().Get("format") == "yaml" {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(d.YAML())
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// changeThresholds applies d as the caller's change: an administrator's
// replaces the whole document; a tenant administrator's replaces its own
// tenant's part and may name no other tenant. It retries when another
// change came in between, and returns the document in force after it.
func (s *Server) changeThresholds(ctx context.Context, d *health.Thresholds, by, scope string, admin bool) (*health.Thresholds, int64, error) {
	if !admin {
		for tenant := range d.Tenants {
			if tenant != scope {
				return nil, 0, posfleet.Errorf(posfleet.Forbidden, "forbidden", "tenants.%s: you may change only tenant %s's thresholds", tenant, scope)
			}
		}
	}
	for range 5 {
		cur, err := s.opts.Thresholds.CurrentThresholds(ctx)
		if err != nil {
			return nil, 0, err
		}
		next := d
		if !admin {
			next = cur.Thresholds.WithTenant(scope, d)
		}
		if err := next.Validate(); err != nil {
			return nil, 0, err
		}
		v, err := s.opts.Thresholds.SaveThresholds(ctx, next, by, cur.Version)
		var pe *posfleet.Error
		if errors.As(err, &pe) && pe.Kind == posfleet.Conflict {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		NoteAudit(ctx, "version", v)
		s.log.Info("thresholds changed", "version", v, "by", by, "tenant", scope)
		return next, v, nil
	}
	return nil, 0, posfleet.Errorf(posfleet.Conflict, "conflict", "the thresholds changed meanwhile; try again")
}

// handlePutThresholds replaces the thresholds document (JSON, or YAML with
// Content-Type application/yaml; either parses as YAML).
func (s *Server) handlePutThresholds(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, s.log, posfleet.Errorf(posfleet.TooLarge, "too_large", "request body over %d KiB", maxBody>>10))
		return
	}
	d, err := health.ParseThresholds(body)
	if err != nil {
		writeError(w, s.log, err) // 400 bad_thresholds, naming each field
		return
	}
	p := principal(r)
	next, v, err := s.changeThresholds(r.Context(), d, p.name, p.scope, p.admin)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	w.Header().Set("X-Thresholds-Version", strconv.FormatInt(v, 10))
	writeJSON(w, http.StatusOK, scopedThresholds(next, p.scope, p.admin))
}

// thresholdVersions returns the newest n versions as the caller may see
// them, each with its changes from the one before: an administrator every
// version; anyone else the versions that changed its own tenant's part,
// that part alone.
func (s *Server) thresholdVersions(ctx context.Context, scope string, admin bool, n int) ([]ThresholdsVersion, error) {
	// One more than asked, for the last one's changes; a tenant's user
	// looks further back for versions about its tenant.
	want := n + 1
	if !admin {
		want = maxThresholdsHistory * 5
	}
	vs, err := s.opts.Thresholds.ThresholdsHistory(ctx, want)
	if err != nil {
		return nil, err
	}
	out := []ThresholdsVersion{}
	for i := range vs {
		if len(out) == n {
			break
		}
		v := vs[i]
		v.Thresholds = scopedThresholds(v.Thresholds, scope, admin)
		prev := &health.Thresholds{}
		if i+1 < len(vs) {
			prev = scopedThresholds(vs[i+1].Thresholds, scope, admin)
		}
		v.Changes = health.DiffThresholds(prev, v.Thresholds)
		if !admin && len(v.Changes) == 0 {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Server) handleThresholdsHistory(w http.ResponseWriter, r *http.Request) {
	n := defaultThresholdsHistory
	if v := r.URL.Query().Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > maxThresholdsHistory {
			writeError(w, s.log, badRequest("limit: want 1.."+strconv.Itoa(maxThresholdsHistory)))
			return
		}
		n = l
	}
	p := principal(r)
	vs, err := s.thresholdVersions(r.Context(), p.scope, p.admin, n)
	if err != nil {
		writeError(w, s.log, fmt.Errorf("thresholds history: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": vs})
}
