package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/security"
)

func (s *Server) handleSecurity(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = locale.T(r.Context(), "nav.security")
	v := security.View{Frame: frame}
	if s.opts.Events != nil {
		p, _ := PrincipalFrom(r.Context())
		scope := tenantScope(p)
		reasons := map[string]int{}
		for _, e := range s.opts.Events.RecentRejections(scope, 200) {
			n := max(e.Count, 1)
			v.Rejections = append(v.Rejections, security.Rejection{Time: e.Time, Terminal: e.Terminal.String(), Channel: string(e.Channel), Reason: string(e.Reason), Field: e.Field, Count: n})
			reasons[string(e.Reason)] += int(n)
		}
		kinds := map[string]int{}
		for _, e := range s.opts.Events.RecentSecurity(scope, 200) {
			n := max(e.Count, 1)
			ev := security.Event{Time: e.Time, Kind: string(e.Kind), Username: e.Username, Topic: e.Topic, Remote: e.Remote, Count: n}
			if e.Known {
				ev.Terminal = e.Terminal.String()
			}
			v.Events = append(v.Events, ev)
			kinds[string(e.Kind)] += int(n)
		}
		v.ByReason, v.ByKind = sortedCounts(reasons), sortedCounts(kinds)
	}
	s.render(w, r, http.StatusOK, security.Page(v))
}

func sortedCounts(m map[string]int) []security.Count {
	out := make([]security.Count, 0, len(m))
	for k, n := range m {
		out = append(out, security.Count{Key: k, N: n})
	}
	slices.SortFunc(out, func(a, b security.Count) int {
		if a.N != b.N {
			return b.N - a.N
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}
