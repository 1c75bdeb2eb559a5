package web

import (
	"net/http"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/worklist"
)

func (s *Server) handleWorkListPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = "Work list"
	v := worklist.View{Frame: frame, Now: s.opts.Now(), Groups: WorkList(s.opts.Health, scope(r))}
	for _, g := range v.Groups {
		v.Items += len(g.Items)
	}
	if done := r.URL.Query().Get("done"); done != "" {
		if ref, err := posfleet.ParseClientID(done); err == nil {
			v.Notice = "Visit to " + ref.Terminal + " recorded."
		}
	}
	s.render(w, r, http.StatusOK, worklist.Page(v))
}
