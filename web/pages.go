// Shared parts of the page handlers: routing, the notices after a redirect,
// the refusal of a form. Each page has its handler file, page_<name>.go, next
// to its templ view in pages/<name>/.

package web

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/web/pages/layout"
)

// Series reads the time series the pages chart (the InfluxDB store).
type Series interface {
	TerminalSeries(ctx context.Context, tenant, terminal string, span time.Duration, end time.Time) (posfleet.TerminalSeries, error)
	TransactionCounts(ctx context.Context, tenant string, span time.Duration, end time.Time) (map[string]int64, error)
}

// seriesTimeout bounds the time-series queries of one page: a slow
// InfluxDB makes the charts say so instead of holding the page.
const seriesTimeout = 5 * time.Second

// mountPages adds the pages over the health engine; without one, the
// security page is all a signed-in user can look at.
func (s *Server) mountPages() {
	if s.opts.Health == nil {
		s.mux.HandleFunc("GET /{$}", s.page(func(w http.ResponseWriter, r *http.Request, _ layout.Page) {
			http.Redirect(w, r, "/security", http.StatusSeeOther)
		}))
		return
	}
	s.mux.HandleFunc("GET /{$}", s.page(s.handleOverview))
	s.mux.HandleFunc("GET /terminals", s.page(s.handleTerminalsPage))
	s.mux.HandleFunc("GET /terminals/{tenant}/{terminal}", s.page(s.handleTerminalPage))
	s.mux.HandleFunc("POST /terminals/{tenant}/{terminal}/commands", s.page(s.handleCommandForm))
	s.mux.HandleFunc("POST /terminals/{tenant}/{terminal}/serviced", s.page(s.handleServicedForm))
	s.mux.HandleFunc("GET /firmware", s.page(s.handleFirmwarePage))
	s.mux.HandleFunc("POST /firmware/policy", s.page(s.handlePolicyForm))
	s.mux.HandleFunc("POST /firmware/update", s.page(s.handleBulkUpdateForm))
	s.mux.HandleFunc("GET /worklist", s.page(s.handleWorkListPage))
	s.mux.HandleFunc("GET /worklist.csv", s.page(s.handleJobSheetCSV))
	s.mux.HandleFunc("POST /worklist/site-done", s.page(s.handleSiteVisitedForm))
	s.mux.HandleFunc("GET /incidents", s.page(s.handleIncidentsPage))
}

func scope(r *http.Request) string { return principal(r).scope }

// notices are the messages a page shows after a redirect (?done=): fixed
// texts, so that a link cannot make a page say anything else.
var notices = map[string]string{
	posfleet.CmdReboot:         "Reboot sent; its acknowledgement shows below when the terminal answers.",
	posfleet.CmdUpdateFirmware: "Update sent; its acknowledgement shows below when the terminal answers.",
	"serviced":                 "Visit recorded: the maintenance flags are cleared until new evidence arrives.",
	"policy":                   "Policy saved and applied to every terminal.",
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// actionRefused returns the status and message of an action the API
// helpers refused (an error with a kind), to show on the page the form
// came from; false for anything else, which is a server error.
func (s *Server) actionRefused(err error) (int, string, bool) {
	st, ok := statusOf(err)
	return st.Status, st.Message, ok
}

// txnResults are the results of counts, the known ones first in a fixed order.
func txnResults(counts map[string]int64) []string {
	out := []string{posfleet.ResultApproved, posfleet.ResultDeclined, posfleet.ResultError, posfleet.ResultTimeout, posfleet.ResultCancelled}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}
