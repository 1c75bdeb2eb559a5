package web

import (
	"github.com/posfleet/posfleet"
	"log/slog"
	"net/http"
)

// WriteError and RenderError expose the two ways an error reaches a
// client, so that a test checks they agree on every kind.
func WriteError(w http.ResponseWriter, err error) { writeError(w, slog.New(slog.DiscardHandler), err) }

func RenderError(w http.ResponseWriter, r *http.Request, err error) {
	(&Server{log: slog.New(slog.DiscardHandler)}).renderError(w, r, err)
}

// PolicyRule is one rule of the role policy, for the role matrix test.
type PolicyRule struct {
	Route    string
	Need     string
	ByAction map[string]string
}

// Policy returns the role policy table.
func Policy() []PolicyRule {
	out := []PolicyRule{}
	for _, r := range policy {
		pr := PolicyRule{Route: r.route, Need: r.need.String()}
		if r.byAction != nil {
			pr.ByAction = map[string]string{}
			for a, n := range r.byAction {
				pr.ByAction[a] = n.String()
			}
		}
		out = append(out, pr)
	}
	return out
}

// May reports whether p has the perm named need.
func May(p posfleet.Principal, need string) bool {
	for n, name := range permNames {
		if name == need {
			return may(p, n)
		}
	}
	panic("no perm " + need)
}

// Routes are the patterns s registered, in order.
func Routes(s *Server) []string { return s.mux.registered }
