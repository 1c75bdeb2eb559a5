package web

import (
	"net/http"
	"slices"

	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/incidents"
	"github.com/posfleet/posfleet/web/pages/layout"
)

func (s *Server) handleIncidentsPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = locale.T(r.Context(), "nav.incidents")
	inc := s.opts.Health.Incidents(scope(r))
	slices.SortStableFunc(inc, func(a, b health.Incident) int { return b.Start.Compare(a.Start) })
	s.render(w, r, http.StatusOK, incidents.Page(incidents.View{Frame: frame, Now: s.opts.Now(), Incidents: inc}))
}
