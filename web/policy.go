package web

import (
	"github.com/posfleet/posfleet/health"
)

// policyFor is the part of the firmware policy a caller may read. The
// policy is one document for every tenant, keyed by terminal model, and a
// model's entry is shared by every tenant that has such terminals: an
// administrator reads it all; a tenant's user or token reads the entries
// of the models its own terminals report (the fleet summary's models) and
// nothing of models only other tenants have.
func (s *Server) policyFor(scope string, admin bool) *health.Policy {
	pol := s.opts.Health.Policy()
	if pol == nil {
		pol = &health.Policy{Models: map[string]health.ModelPolicy{}}
	}
	if admin {
		return pol
	}
	return scopedPolicy(pol, s.opts.Health.FleetSummary(scope).Models)
}

// scopedPolicy is the part of pol about the models (a fleet summary's
// models: model -> firmware -> terminals).
func scopedPolicy(pol *health.Policy, models map[string]map[string]int) *health.Policy {
	out := &health.Policy{Models: map[string]health.ModelPolicy{}}
	for model := range models {
		if mp, ok := pol.Models[model]; ok {
			out.Models[model] = mp
		}
	}
	return out
}

// checkPolicyURLs refuses a policy whose package URLs a terminal should
// not fetch (health.Policy.CheckURLs).
func (s *Server) checkPolicyURLs(body []byte) error {
	pol, err := health.ParsePolicy(body)
	if err != nil {
		return err // the engine reports it again, with its line
	}
	return pol.CheckURLs(s.opts.AllowHTTPFirmware)
}
