package web

import (
	"net/http"
	"strconv"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/worklist"
)

// workListPerPage is how many work items a page of the work list shows:
// more than a crew visits in a day; the CSV has them all.
const workListPerPage = 100

func (s *Server) handleWorkListPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = "Work list"
	page := 1
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			s.renderError(w, r, badRequest("page: want a whole number from 1"))
			return
		}
		page = n
	}
	var (
		total int
		items []health.WorkItem
		err   error
	)
	if p := mustPrincipal(r); p.EffectiveRole() == posfleet.RoleCrew {
		// A crew's regions: filtered here, from the engine's list (a
		// crew's work list is a few dozen terminals).
		all := crewItems(p, s.opts.Health.WorkList(scope(r)))
		total = len(all)
		items = all[min((page-1)*workListPerPage, total):min(page*workListPerPage, total)]
	} else {
		total, items, err = queries(s.opts.Health).WorkPage(r.Context(), scope(r), (page-1)*workListPerPage, workListPerPage)
	}
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	v := worklist.View{Frame: frame, Now: s.opts.Now(), Groups: health.GroupWorkList(items), Items: total,
		Page: page, Pages: (total + workListPerPage - 1) / workListPerPage}
	if page > 1 {
		v.Prev = "/worklist?page=" + strconv.Itoa(min(page-1, max(v.Pages, 1)))
	}
	if page < v.Pages {
		v.Next = "/worklist?page=" + strconv.Itoa(page+1)
	}
	if done := r.URL.Query().Get("done"); done != "" {
		if ref, err := posfleet.ParseClientID(done); err == nil {
			v.Notice = "Visit to " + ref.Terminal + " recorded."
		}
	}
	s.render(w, r, http.StatusOK, worklist.Page(v))
}
