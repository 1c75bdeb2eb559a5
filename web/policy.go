package web

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

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
	out := &health.Policy{Models: map[string]health.ModelPolicy{}}
	for model := range s.opts.Health.FleetSummary(scope).Models {
		if mp, ok := pol.Models[model]; ok {
			out.Models[model] = mp
		}
	}
	return out
}

// checkPolicyURLs refuses a policy whose package URLs a terminal should
// not fetch: only https, or http when Options.AllowHTTPFirmware is set,
// with a host and no user or password. The terminals download what the
// URL says and run it (after the SHA-256 check); javascript: and the like
// would also be shown as links.
func (s *Server) checkPolicyURLs(body []byte) error {
	pol, err := health.ParsePolicy(body)
	if err != nil {
		return err // the engine reports it again, with its line
	}
	for _, model := range slices.Sorted(mapsKeys(pol.Models)) {
		raw := pol.Models[model].URL
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		scheme := ""
		if err == nil {
			scheme = strings.ToLower(u.Scheme)
		}
		switch {
		case err != nil || u.Host == "" || u.Opaque != "":
			return &health.PolicyError{Reason: fmt.Sprintf("model %s: url %q: want an absolute https URL with a host", model, raw)}
		case u.User != nil:
			return &health.PolicyError{Reason: fmt.Sprintf("model %s: url: no user name or password in the URL", model)}
		case scheme == "https", scheme == "http" && s.opts.AllowHTTPFirmware:
		case scheme == "http":
			return &health.PolicyError{Reason: fmt.Sprintf("model %s: url %q: http is refused (start posfleet with --allow-http-firmware to allow it); use https", model, raw)}
		default:
			return &health.PolicyError{Reason: fmt.Sprintf("model %s: url %q: scheme %q refused; want https", model, raw, u.Scheme)}
		}
	}
	return nil
}

func mapsKeys[M ~map[string]V, V any](m M) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
