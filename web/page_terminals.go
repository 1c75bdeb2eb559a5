package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/parts"
	"github.com/posfleet/posfleet/web/pages/terminals"
)

func (s *Server) handleTerminalsPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	ctx := r.Context()
	frame.Title = locale.T(ctx, "nav.terminals")
	q := r.URL.Query()
	v := terminals.View{Frame: frame, Now: s.opts.Now(), Filter: terminals.Filter{Flag: q.Get("flag"), Kind: q.Get("kind"), Model: q.Get("model"),
		Firmware: q.Get("firmware"), Region: q.Get("region"), Online: q.Get("online"), State: q.Get("state"), Q: q.Get("q"),
		Sort: q.Get("sort"), Dir: q.Get("dir")},
		Sorts: terminalSorts}
	for _, k := range []posfleet.FlagKind{posfleet.KindMaintenance, posfleet.KindUpdate, posfleet.KindInvestigate} {
		v.Kinds = append(v.Kinds, string(k))
	}
	f, err := parseTerminalFilter(q)
	switch {
	case err != nil:
	case v.Filter.Sort != "" && !slices.Contains(terminalSorts, v.Filter.Sort):
		err = badRequest("sort")
		v.Error = locale.T(ctx, "terminals.bad_sort")
	case v.Filter.Dir != "" && v.Filter.Dir != "asc" && v.Filter.Dir != "desc":
		err = badRequest("dir")
		v.Error = locale.T(ctx, "terminals.bad_dir")
	}
	if err != nil {
		if v.Error == "" {
			st, _ := statusOf(err)
			v.Error = locale.T(ctx, "terminals.bad_filter", "Detail", st.Message)
		}
		s.render(w, r, http.StatusBadRequest, terminals.Page(v))
		return
	}
	p := mustPrincipal(r)
	crewFilter(p, &f)
	v.Filter.Region = f.Region
	order := TerminalOrder(v.Filter.Sort, v.Filter.Dir)
	total, rows, err := queries(s.opts.Health).TerminalsPage(ctx, scope(r), f, order)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	if lc, err := s.listChoices(ctx, scope(r)); err != nil {
		// Suggestions are a convenience: the list goes without them.
		s.log.Warn("terminal list suggestions", "err", err)
	} else {
		v.Models, v.Regions = lc.Models, lc.Regions
	}
	if p.EffectiveRole() == posfleet.RoleCrew && len(p.Regions) > 0 {
		v.Regions = slices.Clone(p.Regions)
	}
	v.Total, v.Page = total, f.Page
	v.Pages = (total + f.PerPage - 1) / f.PerPage
	v.First = (f.Page-1)*f.PerPage + 1
	for _, h := range rows {
		model := h.Model
		if model == "" {
			model = h.Site.Model
		}
		v.Rows = append(v.Rows, terminals.Row{Tenant: h.Tenant, Terminal: h.Terminal, Href: parts.TerminalHref(h.Tenant, h.Terminal),
			Online: h.Online, LastSeen: h.LastSeen, Model: model, Firmware: h.Firmware, Merchant: h.Site.Merchant,
			Site: h.Site.Site, Address: h.Site.Address, Region: h.Site.Region, Flags: h.Flags, NeverConnected: h.NeverConnected})
	}
	// with is the list's query with key set to val ("" removes it), and
	// without the page when the order changes (a new order starts at its
	// first page; paging keeps the order).
	with := func(kv ...string) string {
		u := url.Values{}
		for k, vs := range q {
			if len(vs) > 0 && vs[0] != "" {
				u.Set(k, vs[0])
			}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				u.Del(kv[i])
			} else {
				u.Set(kv[i], kv[i+1])
			}
		}
		return "/terminals?" + u.Encode()
	}
	col, desc := ParseTerminalOrder(order)
	if col == "" {
		col = "terminal" // the default order: by tenant and terminal
	}
	for _, c := range terminalSorts {
		h := terminals.Head{Col: c}
		next := naturalDesc(c)
		if c == col {
			h.Sort = "ascending"
			if desc {
				h.Sort = "descending"
			}
			next = !desc
		}
		dir := "asc"
		if next {
			dir = "desc"
		}
		h.Href = with("sort", c, "dir", dir, "page", "")
		v.Heads = append(v.Heads, h)
	}
	if f.Page > 1 {
		v.Prev = with("page", strconv.Itoa(min(f.Page-1, max(v.Pages, 1))))
	}
	if f.Page < v.Pages {
		v.Next = with("page", strconv.Itoa(f.Page+1))
	}
	s.render(w, r, http.StatusOK, terminals.Page(v))
}
