package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
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

// WorkKey is what a job sheet is grouped and ordered by: a terminal on
// the work list, its region and site, its priority and urgency.
type WorkKey struct {
	Ref          posfleet.TerminalRef
	Region, Site string
	Priority     int
	Urgent       bool
}

// WorkKeys is what a Health over a database offers so that the job sheet
// orders a large work list without reading it all: its keys, in any order
// but the most pressing kept when limit (0: none) cuts them, total
// counting them all; then the full items of one page's terminals (in any
// order; one no longer on the work list is left out).
type WorkKeys interface {
	WorkKeys(ctx context.Context, tenant string, limit int) (total int, keys []WorkKey, err error)
	WorkItems(ctx context.Context, refs []posfleet.TerminalRef) ([]health.WorkItem, error)
}

// maxJobKeys bounds the keys read to order a job sheet: a few columns of
// each terminal on the work list, so many more than maxJobSheet items.
const maxJobKeys = 200_000

// jobSheetFilter is what the caller and f let through: its regions (a
// crew), f's region and assignee; notes say what the filter could not do.
func (s *Server) jobSheetFilter(r *http.Request, f jobFilter) (keep func(ref posfleet.TerminalRef, region string) bool, notes []string, err error) {
	ctx := r.Context()
	var assigned map[posfleet.TerminalRef]bool
	if f.Assignee != "" {
		if s.opts.Alarms == nil {
			notes = append(notes, locale.T(ctx, "worklist.note_no_alarms"))
		} else if assigned, err = s.assignedTerminals(ctx, scope(r), f.Assignee); err != nil {
			return nil, nil, err
		}
	}
	p := mustPrincipal(r)
	crew := p.EffectiveRole() == posfleet.RoleCrew
	return func(ref posfleet.TerminalRef, region string) bool {
		switch {
		case f.Region != "" && !strings.EqualFold(region, f.Region),
			assigned != nil && !assigned[ref],
			crew && !p.InRegion(region): // a crew's regions only
			return false
		}
		return true
	}, notes, nil
}

// withContact is it with its ref set and the registry's contact data, not
// the published copy: an import shows at once.
func (s *Server) withContact(ctx context.Context, it health.WorkItem) health.WorkItem {
	if it.Ref == (posfleet.TerminalRef{}) {
		it.Ref = posfleet.TerminalRef{Tenant: it.Tenant, Terminal: it.Terminal}
	}
	if s.opts.Directory != nil {
		if t, err := s.opts.Directory.Get(ctx, it.Ref); err == nil {
			it.Contact = t.Contact
		}
	}
	return it
}

// jobSheet returns the work items of the caller's tenants that f selects,
// in job-sheet order (health.JobSheet), with their contact data fresh from
// the registry; notes say what the filter could not do. The CSV has them
// all; the page reads one page of them (jobSheetPage).
func (s *Server) jobSheet(r *http.Request, f jobFilter) ([]health.WorkItem, []string, error) {
	items, notes, err := s.jobSheetItems(r, f)
	for i := range items {
		items[i] = s.withContact(r.Context(), items[i])
	}
	return items, notes, err
}

// jobSheetItems is jobSheet without the registry's contact data.
func (s *Server) jobSheetItems(r *http.Request, f jobFilter) (items []health.WorkItem, notes []string, err error) {
	ctx := r.Context()
	total, all, err := queries(s.opts.Health).WorkPage(ctx, scope(r), 0, maxJobSheet)
	if err != nil {
		return nil, nil, err
	}
	if total > len(all) {
		notes = append(notes, locale.T(ctx, "worklist.note_truncated", "Shown", len(all), "Total", total))
	}
	keep, more, err := s.jobSheetFilter(r, f)
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes, more...)
	for _, it := range all {
		if it.Ref == (posfleet.TerminalRef{}) {
			it.Ref = posfleet.TerminalRef{Tenant: it.Tenant, Terminal: it.Terminal}
		}
		if keep(it.Ref, it.Region) {
			items = append(items, it)
		}
	}
	return health.JobItems(health.JobSheet(items)), notes, nil
}

// jobSheetPage returns the page'th page (of perPage items) of the job
// sheet that f selects, grouped, and how many items the whole sheet has.
// Over a Health with WorkKeys it orders the keys and reads only the page's
// items (a large work list in a database costs a few columns per row, not
// every item's evidence); otherwise it orders the items themselves.
func (s *Server) jobSheetPage(r *http.Request, f jobFilter, page, perPage int) (regions []health.JobRegion, total int, notes []string, err error) {
	ctx := r.Context()
	wk, ok := s.opts.Health.(WorkKeys)
	if !ok {
		total, all, err := queries(s.opts.Health).WorkPage(ctx, scope(r), 0, maxJobSheet)
		if err != nil {
			return nil, 0, nil, err
		}
		wk = newMemWorkKeys(total, all)
	}
	all, keys, err := wk.WorkKeys(ctx, scope(r), maxJobKeys)
	if err != nil {
		return nil, 0, nil, err
	}
	if all > len(keys) {
		notes = append(notes, locale.T(ctx, "worklist.note_truncated", "Shown", len(keys), "Total", all))
	}
	keep, more, err := s.jobSheetFilter(r, f)
	if err != nil {
		return nil, 0, nil, err
	}
	notes = append(notes, more...)
	var kept []WorkKey
	for _, k := range keys {
		if keep(k.Ref, k.Region) {
			kept = append(kept, k)
		}
	}
	order := jobSheetOrder(kept)
	lo := min((page-1)*perPage, len(order))
	hi := min(lo+perPage, len(order))
	refs := make([]posfleet.TerminalRef, 0, hi-lo)
	for _, k := range order[lo:hi] {
		refs = append(refs, k.Ref)
	}
	loaded, err := wk.WorkItems(ctx, refs)
	if err != nil {
		return nil, 0, nil, err
	}
	byRef := make(map[posfleet.TerminalRef]health.WorkItem, len(loaded))
	for _, it := range loaded {
		if it.Ref == (posfleet.TerminalRef{}) {
			it.Ref = posfleet.TerminalRef{Tenant: it.Tenant, Terminal: it.Terminal}
		}
		byRef[it.Ref] = it
	}
	items := make([]health.WorkItem, 0, len(refs))
	for _, key := range order[lo:hi] {
		it, ok := byRef[key.Ref]
		if !ok {
			continue // visited since the keys were read
		}
		// Grouped where the keys put it, should the item have moved since.
		it.Region, it.Site.Site, it.Priority = key.Region, key.Site, key.Priority
		items = append(items, s.withContact(ctx, it))
	}
	return health.GroupJobSheet(items), len(order), notes, nil
}

// memWorkKeys answers WorkKeys over a Health without them (the engine in
// memory) from its work list, read once.
type memWorkKeys struct {
	total int
	keys  []WorkKey
	items map[posfleet.TerminalRef]health.WorkItem
}

func newMemWorkKeys(total int, all []health.WorkItem) memWorkKeys {
	m := memWorkKeys{total: total, keys: make([]WorkKey, 0, len(all)), items: make(map[posfleet.TerminalRef]health.WorkItem, len(all))}
	for _, it := range all {
		if it.Ref == (posfleet.TerminalRef{}) {
			it.Ref = posfleet.TerminalRef{Tenant: it.Tenant, Terminal: it.Terminal}
		}
		m.keys = append(m.keys, WorkKey{Ref: it.Ref, Region: it.Region, Site: it.Site.Site, Priority: it.Priority, Urgent: it.Urgent})
		m.items[it.Ref] = it
	}
	return m
}

func (m memWorkKeys) WorkKeys(context.Context, string, int) (int, []WorkKey, error) {
	return m.total, m.keys, nil
}

func (m memWorkKeys) WorkItems(_ context.Context, refs []posfleet.TerminalRef) ([]health.WorkItem, error) {
	var out []health.WorkItem
	for _, ref := range refs {
		if it, ok := m.items[ref]; ok {
			out = append(out, it)
		}
	}
	return out, nil
}

// jobSheetOrder puts keys in the order of health.JobSheet (which orders
// whole items: region → site, a site's priority its most pressing
// terminal's, then urgent, then more terminals, then by name; a site's
// terminals most pressing first), on the keys alone: sorting thousands of
// small keys rather than whole items is most of what keeps a large job
// sheet's page fast. TestJobSheetOrder checks it against health.JobSheet.
func jobSheetOrder(keys []WorkKey) []WorkKey {
	type place struct{ tenant, region, site string }
	type site struct {
		place
		prio, regionPrio int
		urgent           bool
		keys             []WorkKey
	}
	at := map[place]int{}
	var sites []*site
	for _, k := range keys {
		p := place{k.Ref.Tenant, k.Region, k.Site}
		i, ok := at[p]
		if !ok {
			i = len(sites)
			at[p] = i
			sites = append(sites, &site{place: p, prio: k.Priority})
		}
		s := sites[i]
		s.keys = append(s.keys, k)
		s.prio = min(s.prio, k.Priority)
		s.urgent = s.urgent || k.Urgent
	}
	for _, s := range sites {
		slices.SortFunc(s.keys, func(a, b WorkKey) int {
			return cmp.Or(cmp.Compare(a.Priority, b.Priority), strings.Compare(a.Ref.Terminal, b.Ref.Terminal))
		})
	}
	slices.SortFunc(sites, func(a, b *site) int {
		return cmp.Or(cmp.Compare(a.prio, b.prio), -cmpBool(a.urgent, b.urgent), -cmp.Compare(len(a.keys), len(b.keys)),
			strings.Compare(a.site, b.site), strings.Compare(a.tenant, b.tenant), strings.Compare(a.region, b.region))
	})
	// Regions in the order of their most pressing site, then by name.
	prio := map[string]int{}
	for _, s := range sites {
		p, ok := prio[s.region]
		if !ok {
			p = s.prio // its first site is its most pressing
			prio[s.region] = p
		}
		s.regionPrio = p
	}
	slices.SortStableFunc(sites, func(a, b *site) int {
		return cmp.Or(cmp.Compare(a.regionPrio, b.regionPrio), strings.Compare(a.region, b.region))
	})
	out := make([]WorkKey, 0, len(keys))
	for _, s := range sites {
		out = append(out, s.keys...)
	}
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
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
	regions, total, notes, err := s.jobSheetPage(r, f, page, workListPerPage)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	v := worklist.View{Frame: frame, Now: s.opts.Now(), Regions: regions, Items: total,
		Page: page, Pages: (total + workListPerPage - 1) / workListPerPage,
		Region: f.Region, Assignee: f.Assignee, FilterNotes: notes}
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
			v.Notice = locale.T(r.Context(), "worklist.visit_recorded", "Terminal", ref.Terminal)
		}
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("visited")); err == nil && n >= 0 && n <= maxSiteVisits {
		v.Notice = locale.N(r.Context(), "worklist.site_visit_recorded", n)
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
