package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/worklist"
)

// workListPerPage is how many work items a page of the work list shows:
// more than a crew visits in a day; the CSV has them all.
const workListPerPage = 100

// Bounds of the crew's job sheet.
const (
	// maxJobSheet bounds the work items read to order a job sheet (region
	// → site by priority needs them all); a fleet with more to visit at
	// once filters by region.
	maxJobSheet = 20000
	// maxSiteVisits bounds the terminals of one "site visited" form.
	maxSiteVisits = 200
	maxFilterLen  = 128
)

// jobFilter is what the work list page and its CSV select: a region
// (case-insensitive) and the terminals whose open alarms are assigned to
// someone.
type jobFilter struct {
	Region, Assignee string
}

func (f jobFilter) query() url.Values {
	q := url.Values{}
	if f.Region != "" {
		q.Set("region", f.Region)
	}
	if f.Assignee != "" {
		q.Set("assignee", f.Assignee)
	}
	return q
}

func parseJobFilter(q url.Values) (jobFilter, error) {
	f := jobFilter{Region: strings.TrimSpace(q.Get("region")), Assignee: strings.TrimSpace(q.Get("assignee"))}
	for name, v := range map[string]string{"region": f.Region, "assignee": f.Assignee} {
		if len(v) > maxFilterLen {
			return f, badRequest(fmt.Sprintf("%s: at most %d characters", name, maxFilterLen))
		}
	}
	return f, nil
}

// jobSheet returns the work items of the caller's tenants that f selects,
// in job-sheet order (health.JobSheet), with their contact data fresh from
// the registry; note says what the filter could not do.
func (s *Server) jobSheet(r *http.Request, f jobFilter) (items []health.WorkItem, note string, err error) {
	ctx := r.Context()
	total, all, err := queries(s.opts.Health).WorkPage(ctx, scope(r), 0, maxJobSheet)
	if err != nil {
		return nil, "", err
	}
	if total > len(all) {
		note = fmt.Sprintf("Only the %d most pressing of %d terminals are sorted here; filter by region.", len(all), total)
	}
	var assigned map[posfleet.TerminalRef]bool
	if f.Assignee != "" {
		if s.opts.Alarms == nil {
			note = strings.TrimSpace(note + " Alarms are not kept here, so the list is not filtered by assignee.")
		} else if assigned, err = s.assignedTerminals(ctx, scope(r), f.Assignee); err != nil {
			return nil, "", err
		}
	}
	for _, it := range all {
		if f.Region != "" && !strings.EqualFold(it.Region, f.Region) {
			continue
		}
		if assigned != nil && !assigned[it.Ref] {
			continue
		}
		if it.Ref == (posfleet.TerminalRef{}) {
			it.Ref = posfleet.TerminalRef{Tenant: it.Tenant, Terminal: it.Terminal}
		}
		if s.opts.Directory != nil {
			// The registry's contact data, not the published copy: an
			// import shows at once.
			if t, err := s.opts.Directory.Get(ctx, it.Ref); err == nil {
				it.Contact = t.Contact
			}
		}
		items = append(items, it)
	}
	if p := mustPrincipal(r); p.EffectiveRole() == posfleet.RoleCrew {
		items = crewItems(p, items) // a crew's regions only
	}
	return health.JobItems(health.JobSheet(items)), note, nil
}

// assignedTerminals returns the terminals of tenant ("" for all) with an
// alarm not yet resolved assigned to who, or folded into an incident's
// alarm assigned to who.
func (s *Server) assignedTerminals(ctx context.Context, tenant, who string) (map[posfleet.TerminalRef]bool, error) {
	out := map[posfleet.TerminalRef]bool{}
	var parents []string
	for off := 0; off < maxJobSheet; off += maxAlarmPage {
		list, total, err := s.opts.Alarms.ListAlarms(ctx, posfleet.AlarmFilter{Tenant: tenant, Assignee: who, AllLevels: true, Limit: maxAlarmPage, Offset: off})
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			if a.Terminal != "" {
				out[posfleet.TerminalRef{Tenant: a.Tenant, Terminal: a.Terminal}] = true
			} else {
				parents = append(parents, a.ID)
			}
		}
		if off+len(list) >= total || len(list) == 0 {
			break
		}
	}
	for _, id := range parents {
		list, _, err := s.opts.Alarms.ListAlarms(ctx, posfleet.AlarmFilter{Tenant: tenant, Parent: id, Limit: maxAlarmPage})
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			if a.Terminal != "" {
				out[posfleet.TerminalRef{Tenant: a.Tenant, Terminal: a.Terminal}] = true
			}
		}
	}
	return out, nil
}

func (s *Server) handleWorkListPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = locale.T(r.Context(), "nav.worklist")
	page := 1
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			s.renderError(w, r, badRequest("page: want a whole number from 1"))
			return
		}
		page = n
	}
	f, err := parseJobFilter(r.URL.Query())
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	items, note, err := s.jobSheet(r, f)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	total := len(items)
	lo := min((page-1)*workListPerPage, total)
	hi := min(lo+workListPerPage, total)
	v := worklist.View{Frame: frame, Now: s.opts.Now(), Regions: health.GroupJobSheet(items[lo:hi]), Items: total,
		Page: page, Pages: (total + workListPerPage - 1) / workListPerPage,
		Region: f.Region, Assignee: f.Assignee, FilterNote: note}
	q := f.query()
	v.CSV = "/worklist.csv"
	if len(q) > 0 {
		v.CSV += "?" + q.Encode()
	}
	pageHref := func(n int) string {
		q := f.query()
		q.Set("page", strconv.Itoa(n))
		return "/worklist?" + q.Encode()
	}
	if page > 1 {
		v.Prev = pageHref(min(page-1, max(v.Pages, 1)))
	}
	if page < v.Pages {
		v.Next = pageHref(page + 1)
	}
	if done := r.URL.Query().Get("done"); done != "" {
		if ref, err := posfleet.ParseClientID(done); err == nil {
			v.Notice = "Visit to " + ref.Terminal + " recorded."
		}
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("visited")); err == nil && n >= 0 && n <= maxSiteVisits {
		v.Notice = fmt.Sprintf("Visit recorded for %d %s.", n, plural(n, "terminal", "terminals"))
	}
	s.render(w, r, http.StatusOK, worklist.Page(v))
}

// handleSiteVisitedForm records a visit to every terminal of a site named
// in the form (ref: tenant:terminal, repeated), each as the terminal page's
// "visit done" does, with one note.
func (s *Server) handleSiteVisitedForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, badRequest("unreadable form"))
		return
	}
	refs := r.PostForm["ref"]
	if len(refs) == 0 || len(refs) > maxSiteVisits {
		s.renderError(w, r, badRequest(fmt.Sprintf("ref: name 1 to %d terminals", maxSiteVisits)))
		return
	}
	p, _ := PrincipalFrom(r.Context())
	var valid []posfleet.TerminalRef
	for _, v := range refs {
		ref, err := posfleet.ParseClientID(v)
		if err != nil || ref.Validate() != nil || !p.Sees(ref.Tenant) || s.refInRegion(p, ref) != nil {
			s.renderError(w, r, errNotFound)
			return
		}
		valid = append(valid, ref)
	}
	note := strings.TrimSpace(r.PostFormValue("note"))
	if err := checkNote(note); err != nil {
		s.renderError(w, r, err)
		return
	}
	at := s.opts.Now()
	n := 0
	for _, ref := range valid {
		cleared, err := s.opts.Health.MarkServiced(ref, note, principal(r).name, at)
		if errors.Is(err, health.ErrUnknownTerminal) {
			continue // never connected: nothing to clear
		}
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		s.recordVisit(r.Context(), ref, principal(r).name, note, at, cleared)
		s.log.Info("terminal serviced", "terminal", ref.String(), "by", principal(r).name, "cleared", len(cleared), "site_visit", true)
		n++
	}
	f, _ := parseJobFilter(url.Values{"region": {r.PostFormValue("region")}, "assignee": {r.PostFormValue("assignee")}})
	q := f.query()
	q.Set("visited", strconv.Itoa(n))
	http.Redirect(w, r, "/worklist?"+q.Encode(), http.StatusSeeOther)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
