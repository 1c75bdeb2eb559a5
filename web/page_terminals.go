package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/parts"
	"github.com/posfleet/posfleet/web/pages/terminals"
)

// terminalSorts are the orders of the terminal list.
var terminalSorts = []string{"terminal", "last_seen", "flags"}

func (s *Server) handleTerminalsPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = locale.T(r.Context(), "nav.terminals")
	q := r.URL.Query()
	v := terminals.View{Frame: frame, Now: s.opts.Now(), Filter: terminals.Filter{Flag: q.Get("flag"), Model: q.Get("model"),
		Firmware: q.Get("firmware"), Region: q.Get("region"), Online: q.Get("online"), State: q.Get("state"), Q: q.Get("q"), Sort: q.Get("sort")},
		Sorts: terminalSorts}
	f, err := parseTerminalFilter(q)
	if err == nil && v.Filter.Sort != "" && !slices.Contains(terminalSorts, v.Filter.Sort) {
		err = badRequest("sort: want " + strings.Join(terminalSorts, ", "))
	}
	if err != nil {
		st, _ := statusOf(err)
		v.Error = st.Message
		s.render(w, r, http.StatusBadRequest, terminals.Page(v))
		return
	}
	crewFilter(mustPrincipal(r), &f)
	v.Filter.Region = f.Region
	total, rows, err := queries(s.opts.Health).TerminalsPage(r.Context(), scope(r), f, v.Filter.Sort)
	if err != nil {
		s.renderError(w, r, err)
		return
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
			Site: h.Site.Site, Region: h.Site.Region, Flags: h.Flags, NeverConnected: h.NeverConnected})
	}
	pageHref := func(n int) string {
		u := url.Values{}
		for k, vs := range q {
			if k != "page" && len(vs) > 0 && vs[0] != "" {
				u.Set(k, vs[0])
			}
		}
		u.Set("page", strconv.Itoa(n))
		return "/terminals?" + u.Encode()
	}
	if f.Page > 1 {
		v.Prev = pageHref(min(f.Page-1, max(v.Pages, 1)))
	}
	if f.Page < v.Pages {
		v.Next = pageHref(f.Page + 1)
	}
	s.render(w, r, http.StatusOK, terminals.Page(v))
}
