package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// PolicyVersion is one firmware policy accepted, as its history shows it.
type PolicyVersion struct {
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// Body is the policy's YAML: as accepted for an administrator, the
	// caller's models only for a tenant's user (see policyFor).
	Body string `json:"body"`
}

// PolicyHistory gives the firmware policy's versions.
type PolicyHistory interface {
	// PolicyVersions returns the newest n versions, newest first.
	PolicyVersions(ctx context.Context, n int) ([]PolicyVersion, error)
}

// VisitLog keeps the crews' visits (the journal's service_visits).
type VisitLog interface {
	// AddVisit records a visit the health engine applied at at, clearing
	// cleared.
	AddVisit(ctx context.Context, ref posfleet.TerminalRef, at time.Time, by, note string, cleared []posfleet.FlagName) error
}

// recordVisit keeps a visit the health engine applied. The flags are
// cleared already: a failure is logged, not the crew's to retry.
func (s *Server) recordVisit(ctx context.Context, ref posfleet.TerminalRef, by, note string, at time.Time, cleared []posfleet.FlagName) {
	if s.opts.Visits == nil {
		return
	}
	if err := s.opts.Visits.AddVisit(ctx, ref, at, by, note, cleared); err != nil {
		s.log.Error("service visit not recorded", "terminal", ref.String(), "by", by, "err", err)
	}
}

// Bounds of GET /api/v1/policy/history.
const (
	defaultPolicyHistory = 20
	maxPolicyHistory     = 100
)

// policyVersions returns the newest n policy versions as the caller may
// read them (see policyFor): a tenant's user reads the entries of its own
// models in each version.
func (s *Server) policyVersions(ctx context.Context, scope string, admin bool, n int) ([]PolicyVersion, error) {
	if s.opts.PolicyHistory == nil {
		return []PolicyVersion{}, nil
	}
	vs, err := s.opts.PolicyHistory.PolicyVersions(ctx, n)
	if err != nil {
		return nil, err
	}
	if admin {
		return vs, nil
	}
	models := s.opts.Health.FleetSummary(scope).Models
	for i := range vs {
		pol, err := health.ParsePolicy([]byte(vs[i].Body))
		if err != nil {
			vs[i].Body = "" // accepted once, refused by this release's parser
			continue
		}
		vs[i].Body = string(scopedPolicy(pol, models).YAML())
	}
	return vs, nil
}

func (s *Server) handlePolicyHistory(w http.ResponseWriter, r *http.Request) {
	n := defaultPolicyHistory
	if v := r.URL.Query().Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > maxPolicyHistory {
			writeError(w, s.log, badRequest("limit: want 1.."+strconv.Itoa(maxPolicyHistory)))
			return
		}
		n = l
	}
	p := principal(r)
	vs, err := s.policyVersions(r.Context(), p.scope, p.admin, n)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": vs})
}
