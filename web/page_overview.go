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
	// Under investigation: the total of the very list the number links to
	// (a crew's, its region's), so that the two cannot disagree.
	inv := TerminalFilter{Kind: posfleet.KindInvestigate, Page: 1, PerPage: 1}
	crewFilter(mustPrincipal(r), &inv)
	investigate, _, err := q.TerminalsPage(r.Context(), tenant, inv, "")
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
	ctx := r.Context()
	t := func(id string) string { return locale.T(ctx, id) }
	v.Stats = []overview.Stat{
		{Label: t("overview.stat_terminals"), TestID: "total", Href: "/terminals", N: fs.Total},
		{Label: t("overview.stat_online"), TestID: "online", Href: "/terminals?state=online", N: fs.Online, Class: "good"},
		{Label: t("overview.stat_offline"), TestID: "offline", Href: "/terminals?state=offline", N: fs.Offline, Class: "bad"},
		{Label: t("overview.stat_never_connected"), TestID: "never-connected", Href: "/terminals?state=never_connected", N: fs.NeverConnected, Class: "bad"},
		{Label: t("overview.stat_update"), TestID: "update", Href: "/firmware", N: behind, Class: "update"},
		{Label: t("overview.stat_visit"), TestID: "visit", Href: "/worklist", N: visit, Class: "maintenance"},
		// Every terminal with a flag of the kind, as counted: the list of
		// the kind (amount mismatch and refund anomaly), not of one flag.
		{Label: t("overview.stat_investigate"), TestID: "investigate", Href: "/terminals?kind=" + string(posfleet.KindInvestigate), N: investigate, Class: "investigate"},
		{Label: t("overview.stat_incidents"), TestID: "incidents", Href: "/incidents", N: len(fs.OpenIncidents), Class: "bad"},
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
		v.Causes = append(v.Causes, overview.Count{Label: t("overview.cause_" + string(c)), Class: "cause", N: fs.Causes[c]})
		v.FailedAll += fs.Causes[c]
	}
	v.TxnWindow = t("overview.txn_window_24h")
	if s.opts.Series == nil {
		v.TxnError = t("overview.txn_no_series")
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), seriesTimeout)
		counts, err := s.opts.Series.TransactionCounts(ctx, tenant, 24*time.Hour, now)
		cancel()
		if err != nil {
			s.log.Warn("overview transaction counts", "err", err)
			v.TxnError = t("overview.txn_series_down")
		}
		for _, res := range txnResults(counts) {
			v.Results = append(v.Results, overview.Count{Label: resultLabel(ctx, res), Class: "res-" + res, N: counts[res]})
			v.TxnTotal += counts[res]
		}
		v.TxnOK = counts[posfleet.ResultApproved]
	}
	s.render(w, r, http.StatusOK, overview.Page(v))
}

// resultLabel names a transaction result; a result posfleet does not know
// keeps the terminal's word.
func resultLabel(ctx context.Context, res string) string {
	switch res {
	case posfleet.ResultApproved, posfleet.ResultDeclined, posfleet.ResultError, posfleet.ResultTimeout, posfleet.ResultCancelled:
		return locale.T(ctx, "overview.result_"+res)
	}
	return res
}
