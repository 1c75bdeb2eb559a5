package web

import (
	"context"
	"net/http"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/overview"
)

func flagsOfKind(k posfleet.FlagKind) []posfleet.FlagName {
	var out []posfleet.FlagName
	for _, f := range posfleet.FlagNames {
		if f.Kind() == k {
			out = append(out, f)
		}
	}
	return out
}

func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = locale.T(r.Context(), "nav.overview")
	tenant := scope(r)
	now := s.opts.Now()
	fs := s.opts.Health.FleetSummary(tenant)
	v := overview.View{Frame: frame, Now: now, Approved: fs.Approved}
	q := queries(s.opts.Health)
	visit, _, err := q.WorkPage(r.Context(), tenant, 0, 0)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	investigate, err := q.CountFlagged(r.Context(), tenant, flagsOfKind(posfleet.KindInvestigate))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	v.Models = adoption(fs.Models, s.opts.Health.Policy())
	// Terminals below their model's target or on a blocked version, from
	// the per-version counts: asking the engine for the terminals with an
	// update flag would build the full health of a third of a fleet in the
	// middle of a rollout (0.8 s of 1.2 s per overview at 100,000).
	behind := 0
	for _, m := range v.Models {
		behind += m.Behind
	}
	v.Stats = []overview.Stat{
		{Label: "terminals", TestID: "total", Href: "/terminals", N: fs.Total},
		{Label: "online", TestID: "online", Href: "/terminals?state=online", N: fs.Online, Class: "good"},
		{Label: "offline", TestID: "offline", Href: "/terminals?state=offline", N: fs.Offline, Class: "bad"},
		{Label: "never connected", TestID: "never-connected", Href: "/terminals?state=never_connected", N: fs.NeverConnected, Class: "bad"},
		{Label: "need an update", TestID: "update", Href: "/firmware", N: behind, Class: "update"},
		{Label: "need a visit", TestID: "visit", Href: "/worklist", N: visit, Class: "maintenance"},
		{Label: "under investigation", TestID: "investigate", Href: "/terminals?flag=amount_mismatch", N: investigate, Class: "investigate"},
		{Label: "open incidents", TestID: "incidents", Href: "/incidents", N: len(fs.OpenIncidents), Class: "bad"},
	}
	for _, f := range posfleet.FlagNames {
		if n := fs.Flagged[f]; n > 0 {
			v.Flags = append(v.Flags, overview.FlagCount{Flag: f, Kind: f.Kind(), N: n})
		}
	}
	for _, inc := range fs.OpenIncidents {
		v.Incidents = append(v.Incidents, overview.Incident{ID: inc.ID, Tenant: inc.Tenant, Start: inc.Start,
			Merchants: len(inc.Merchants), Terminals: inc.TerminalCount, Failures: inc.Failures, PeakShare: inc.PeakShare})
	}
	for _, c := range posfleet.Causes {
		v.Causes = append(v.Causes, overview.Count{Label: string(c), Class: "cause", N: fs.Causes[c]})
		v.FailedAll += fs.Causes[c]
	}
	v.TxnWindow = "Last 24 hours"
	if s.opts.Series == nil {
		v.TxnError = "No time-series store is configured: counts over time are not available."
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), seriesTimeout)
		counts, err := s.opts.Series.TransactionCounts(ctx, tenant, 24*time.Hour, now)
		cancel()
		if err != nil {
			s.log.Warn("overview transaction counts", "err", err)
			v.TxnError = "The time-series store did not answer; try again in a moment."
		}
		for _, res := range txnResults(counts) {
			v.Results = append(v.Results, overview.Count{Label: res, Class: "res-" + res, N: counts[res]})
			v.TxnTotal += counts[res]
		}
		v.TxnOK = counts[posfleet.ResultApproved]
	}
	s.render(w, r, http.StatusOK, overview.Page(v))
}
