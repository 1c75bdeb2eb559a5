package web

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/influxdb"
	"github.com/posfleet/posfleet/web/pages/chart"
	"github.com/posfleet/posfleet/web/pages/firmware"
	"github.com/posfleet/posfleet/web/pages/incidents"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/overview"
	"github.com/posfleet/posfleet/web/pages/parts"
	"github.com/posfleet/posfleet/web/pages/terminal"
	"github.com/posfleet/posfleet/web/pages/terminals"
	"github.com/posfleet/posfleet/web/pages/worklist"
)

// Series reads the time series the pages chart (the InfluxDB store).
type Series interface {
	TerminalSeries(ctx context.Context, tenant, terminal string, span time.Duration, end time.Time) (influxdb.TerminalSeries, error)
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
	s.mux.HandleFunc("GET /incidents", s.page(s.handleIncidentsPage))
}

func scope(r *http.Request) string { return principal(r).scope }

// terminalsWith returns how many terminals of tenant have any of flags.
func terminalsWith(hs Health, tenant string, flags ...posfleet.FlagName) int {
	seen := map[posfleet.TerminalRef]struct{}{}
	for _, f := range flags {
		for _, r := range hs.Rows(tenant, f) {
			seen[r.Ref] = struct{}{}
		}
	}
	return len(seen)
}

func flagsOfKind(k posfleet.FlagKind) []posfleet.FlagName {
	var out []posfleet.FlagName
	for _, f := range posfleet.FlagNames {
		if f.Kind() == k {
			out = append(out, f)
		}
	}
	return out
}

// adoption sets each model's versions in the field against the policy.
func adoption(models map[string]map[string]int, pol *health.Policy) []parts.Model {
	var out []parts.Model
	for _, name := range slices.Sorted(maps.Keys(models)) {
		m := parts.Model{Model: name}
		mp, ok := health.ModelPolicy{}, false
		if pol != nil {
			mp, ok = pol.Models[name]
		}
		var target, minimum *semver.Version
		if ok {
			m.Target, m.Minimum = mp.Target, mp.Minimum
			target, _ = semver.NewVersion(mp.Target)
			if mp.Minimum != "" {
				minimum, _ = semver.NewVersion(mp.Minimum)
			}
		}
		for _, fw := range slices.Sorted(maps.Keys(models[name])) {
			n := models[name][fw]
			v := parts.Version{Version: fw, N: n, Status: "unknown"}
			m.Total += n
			if sv, err := semver.NewVersion(fw); err == nil && target != nil {
				switch {
				case slices.ContainsFunc(mp.Blocked, func(b string) bool { bv, err := semver.NewVersion(b); return err == nil && bv.Equal(sv) }):
					v.Status = "blocked"
					m.Blocked += n
					m.Behind += n
				case minimum != nil && sv.LessThan(minimum):
					v.Status = "below minimum"
					m.Behind += n
				case sv.LessThan(target):
					v.Status = "behind"
					m.Behind += n
				case sv.Equal(target):
					v.Status = "target"
					m.OnTarget += n
				default:
					v.Status = "ahead"
					m.OnTarget += n
				}
			}
			m.Versions = append(m.Versions, v)
		}
		// The most common version first: what the field mostly runs.
		slices.SortStableFunc(m.Versions, func(a, b parts.Version) int { return b.N - a.N })
		out = append(out, m)
	}
	return out
}

func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = "Fleet overview"
	tenant := scope(r)
	now := s.opts.Now()
	fs := s.opts.Health.FleetSummary(tenant)
	v := overview.View{Frame: frame, Now: now, Approved: fs.Approved}
	visit := len(s.opts.Health.WorkList(tenant))
	v.Models = adoption(fs.Models, s.opts.Health.Policy())
	// Terminals below their model's target or on a blocked version, from
	// the per-version counts: asking the engine for the terminals with an
	// update flag would build the full health of a third of a fleet in the
	// middle of a rollout (0.8 s of 1.2 s per overview at 100,000).
	behind := 0
	for _, m := range v.Models {
		behind += m.Behind
	}
	v.Stats = []overview.Stat{
		{Label: "terminals", TestID: "total", Href: "/terminals", N: fs.Total},
		{Label: "online", TestID: "online", Href: "/terminals?state=online", N: fs.Online, Class: "good"},
		{Label: "offline", TestID: "offline", Href: "/terminals?state=offline", N: fs.Offline, Class: "bad"},
		{Label: "never connected", TestID: "never-connected", Href: "/terminals?state=never_connected", N: fs.NeverConnected, Class: "bad"},
		{Label: "need an update", TestID: "update", Href: "/firmware", N: behind, Class: "update"},
		{Label: "need a visit", TestID: "visit", Href: "/worklist", N: visit, Class: "maintenance"},
		{Label: "under investigation", TestID: "investigate", Href: "/terminals?flag=amount_mismatch", N: terminalsWith(s.opts.Health, tenant, flagsOfKind(posfleet.KindInvestigate)...), Class: "investigate"},
		{Label: "open incidents", TestID: "incidents", Href: "/incidents", N: len(fs.OpenIncidents), Class: "bad"},
	}
	for _, f := range posfleet.FlagNames {
		if n := fs.Flagged[f]; n > 0 {
			v.Flags = append(v.Flags, overview.FlagCount{Flag: f, Kind: f.Kind(), N: n})
		}
	}
	for _, inc := range fs.OpenIncidents {
		v.Incidents = append(v.Incidents, overview.Incident{ID: inc.ID, Tenant: inc.Tenant, Start: inc.Start,
			Merchants: len(inc.Merchants), Terminals: inc.TerminalCount, Failures: inc.Failures, PeakShare: inc.PeakShare})
	}
	for _, c := range posfleet.Causes {
		v.Causes = append(v.Causes, overview.Count{Label: string(c), Class: "cause", N: fs.Causes[c]})
		v.FailedAll += fs.Causes[c]
	}
	v.TxnWindow = "Last 24 hours"
	if s.opts.Series == nil {
		v.TxnError = "No time-series store is configured: counts over time are not available."
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), seriesTimeout)
		counts, err := s.opts.Series.TransactionCounts(ctx, tenant, 24*time.Hour, now)
		cancel()
		if err != nil {
			s.log.Warn("overview transaction counts", "err", err)
			v.TxnError = "The time-series store did not answer; try again in a moment."
		}
		for _, res := range txnResults(counts) {
			v.Results = append(v.Results, overview.Count{Label: res, Class: "res-" + res, N: counts[res]})
			v.TxnTotal += counts[res]
		}
		v.TxnOK = counts[posfleet.ResultApproved]
	}
	s.render(w, r, http.StatusOK, overview.Page(v))
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

// terminalSorts are the orders of the terminal list.
var terminalSorts = []string{"terminal", "last_seen", "flags"}

// listedTerminal is a terminal of the list page: its health, or for a
// provisioned terminal that never connected, its identity and site.
type listedTerminal struct {
	health.TerminalHealth
	NeverConnected bool
}

// listTerminals is ListTerminals with an order: it filters and sorts the
// cheap rows, and gets the full health (reported model, site, flags with
// evidence) of the page's rows only.
func listTerminals(hs Health, tenant string, f TerminalFilter, order string) (int, []listedTerminal) {
	match := MatchingRows(hs, tenant, f)
	switch order {
	case "last_seen": // the longest silent first
		slices.SortStableFunc(match, func(a, b health.Row) int { return a.LastSeen.Compare(b.LastSeen) })
	case "flags": // the most flagged first
		slices.SortStableFunc(match, func(a, b health.Row) int { return len(b.Flags) - len(a.Flags) })
	}
	lo := min((f.Page-1)*f.PerPage, len(match))
	hi := min(lo+f.PerPage, len(match))
	out := make([]listedTerminal, 0, hi-lo)
	for _, r := range match[lo:hi] {
		if r.NeverConnected {
			site, _ := hs.Site(r.Ref)
			out = append(out, listedTerminal{TerminalHealth: health.TerminalHealth{Ref: r.Ref, Tenant: r.Ref.Tenant,
				Terminal: r.Ref.Terminal, Site: site}, NeverConnected: true})
			continue
		}
		if h, ok := hs.Terminal(r.Ref); ok {
			out = append(out, listedTerminal{TerminalHealth: h})
		}
	}
	return len(match), out
}

func (s *Server) handleTerminalsPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = "Terminals"
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
	total, rows := listTerminals(s.opts.Health, scope(r), f, v.Filter.Sort)
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

// notices are the messages a page shows after a redirect (?done=): fixed
// texts, so that a link cannot make a page say anything else.
var notices = map[string]string{
	posfleet.CmdReboot:         "Reboot sent; its acknowledgement shows below when the terminal answers.",
	posfleet.CmdUpdateFirmware: "Update sent; its acknowledgement shows below when the terminal answers.",
	"serviced":                 "Visit recorded: the maintenance flags are cleared until new evidence arrives.",
	"policy":                   "Policy saved and applied to every terminal.",
}

func (s *Server) handleTerminalPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	s.terminalPage(w, r, frame, http.StatusOK, "")
}

// terminalPage renders a terminal's page, with actionErr when an action on
// it was refused.
func (s *Server) terminalPage(w http.ResponseWriter, r *http.Request, frame layout.Page, status int, actionErr string) {
	ref, err := visibleRef(r)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d, err := s.TerminalDetails(r.Context(), ref)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	now := s.opts.Now()
	frame.Title, frame.Active = ref.Terminal, "/terminals"
	v := terminal.View{Frame: frame, Now: now, Tenant: ref.Tenant, Terminal: ref.Terminal, Href: parts.TerminalHref(ref.Tenant, ref.Terminal),
		Commands: d.Commands, Notice: notices[r.URL.Query().Get("done")], Error: actionErr, Range: "24h"}
	site := health.Site{}
	model := ""
	if p := d.Provisioned; p != nil {
		site = health.Site{Model: p.Model, Merchant: p.Merchant, Site: p.Site, Region: p.Region}
		if p.Lat != nil && p.Lon != nil {
			site.Lat, site.Lon = *p.Lat, *p.Lon
		}
		model = p.Model
	}
	if h := d.Health; h != nil {
		v.Seen, v.Online, v.LastSeen = true, h.Online, h.LastSeen
		if h.Site != (health.Site{}) {
			site = h.Site
		}
		if h.Model != "" {
			model = h.Model
		}
		v.Flags, v.Faults, v.Txns, v.Service = h.Flags, h.OpenFaults, h.Txns, h.Service
		v.Identity = append(v.Identity,
			terminal.Fact{Label: "Serial", Value: orDash(h.Serial)},
			terminal.Fact{Label: "Firmware", Value: orDash(h.Firmware), TestID: "firmware"},
			terminal.Fact{Label: "Payment app", Value: orDash(h.App)},
			terminal.Fact{Label: "Last boot", Value: orDash(h.BootReason)},
			terminal.Fact{Label: "First seen", Value: parts.Time(h.FirstSeen)})
		if u := h.LastUpdate; u != nil {
			v.Identity = append(v.Identity, terminal.Fact{Label: "Last update", Value: strings.TrimSpace(u.Target + " " + u.Status + " " + u.Error)})
		}
		if hb := h.Heartbeat; hb != nil {
			v.Heartbeat = heartbeatFacts(hb)
		}
	}
	if m := d.Messages; m != nil {
		v.Messages = messageFacts(*m)
	}
	v.Identity = append([]terminal.Fact{{Label: "Model", Value: orDash(model), TestID: "model"}}, v.Identity...)
	v.Site = []terminal.Fact{
		{Label: "Merchant", Value: orDash(site.Merchant), TestID: "merchant"},
		{Label: "Site", Value: orDash(site.Site)},
		{Label: "Region", Value: orDash(site.Region)},
	}
	if site.Lat != 0 || site.Lon != 0 {
		v.Site = append(v.Site, terminal.Fact{Label: "Location", Value: fmt.Sprintf("%.5f, %.5f", site.Lat, site.Lon)})
	}
	if pol := s.opts.Health.Policy(); pol != nil {
		if mp, ok := pol.Models[model]; ok && mp.URL != "" && mp.SHA256 != "" {
			v.CanUpdate, v.UpdateTarget = true, mp.Target
		}
	}
	span := 24 * time.Hour
	if r.URL.Query().Get("range") == "7d" {
		span, v.Range = 7*24*time.Hour, "7d"
	}
	if s.opts.Series == nil {
		v.ChartsNote = "No time-series store is configured: no history to chart."
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), seriesTimeout)
		ts, err := s.opts.Series.TerminalSeries(ctx, ref.Tenant, ref.Terminal, span, now)
		cancel()
		if err != nil {
			s.log.Warn("terminal series", "terminal", ref.String(), "err", err)
			v.ChartsNote = "The time-series store did not answer; the charts are missing. Try again in a moment."
		} else {
			v.Charts, v.Recent = terminalCharts(ts), ts.Recent
		}
	}
	s.render(w, r, status, terminal.Page(v))
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func heartbeatFacts(hb *health.HeartbeatSummary) []terminal.Fact {
	intp := func(p *int, unit string) string {
		if p == nil {
			return "–"
		}
		return strconv.Itoa(*p) + unit
	}
	fs := []terminal.Fact{{Label: "Received", Value: parts.Time(hb.At)}}
	bat := intp(hb.BatteryPct, " %")
	if hb.Charging {
		bat += ", charging"
	}
	fs = append(fs, terminal.Fact{Label: "Battery", Value: bat, TestID: "battery"})
	if hb.TempC != nil {
		fs = append(fs, terminal.Fact{Label: "Temperature", Value: strconv.FormatFloat(*hb.TempC, 'f', 1, 64) + " °C"})
	}
	fs = append(fs,
		terminal.Fact{Label: "Signal", Value: strings.TrimSpace(intp(hb.SignalDBm, " dBm") + " " + hb.Net)},
		terminal.Fact{Label: "Bank round trip", Value: intp(hb.HostRTTMs, " ms")},
		terminal.Fact{Label: "Paper", Value: orDash(hb.Paper)},
		terminal.Fact{Label: "Pending transactions", Value: intp(hb.PendingTxns, "")})
	if hb.UptimeS != nil {
		fs = append(fs, terminal.Fact{Label: "Up for", Value: (time.Duration(*hb.UptimeS) * time.Second).String()})
	}
	return fs
}

func points(ps []influxdb.Point) []chart.Point {
	out := make([]chart.Point, len(ps))
	for i, p := range ps {
		out[i] = chart.Point{At: p.At, Value: p.Value}
	}
	return out
}

// terminalCharts turns a terminal's series into the page's charts.
func terminalCharts(ts influxdb.TerminalSeries) []chart.Chart {
	zero, hundred := 0.0, 100.0
	gap := 3 * ts.Step
	line := func(id, title, unit string, ps []influxdb.Point) chart.Chart {
		return chart.Chart{ID: id, Title: title, Unit: unit, Start: ts.Start, End: ts.End, Gap: gap,
			Lines: []chart.Series{{Label: title, Class: "line-" + id, Points: points(ps)}}}
	}
	bat := line("battery", "Battery", "%", ts.Battery)
	bat.Floor, bat.Ceil = &zero, &hundred
	rtt := line("rtt", "Bank round trip", "ms", ts.HostRTT)
	rtt.Floor = &zero
	txns := chart.Chart{ID: "txns", Title: "Transactions by result", Unit: "per " + bucketLabel(ts.Bucket), Start: ts.Start, End: ts.End, Bucket: ts.Bucket}
	for _, res := range txnResults(nil) {
		if ps, ok := ts.TxnsByResult[res]; ok {
			txns.Bars = append(txns.Bars, chart.Series{Label: res, Class: "bar-" + res, Points: points(ps)})
		}
	}
	mism := chart.Chart{ID: "mismatch", Title: "Amount mismatches", Unit: "approved sales per " + bucketLabel(ts.Bucket), Start: ts.Start, End: ts.End, Bucket: ts.Bucket,
		Bars: []chart.Series{{Label: "mismatches", Class: "bar-mismatch", Points: points(ts.Mismatches)}}}
	return []chart.Chart{bat, line("signal", "Signal", "dBm", ts.Signal), rtt, txns, mism}
}

func bucketLabel(d time.Duration) string {
	if d == time.Hour {
		return "hour"
	}
	return strconv.Itoa(int(d.Hours())) + " h"
}

// actionRefused returns the status and message of an action the API
// helpers refused (an error with a kind), to show on the page the form
// came from; false for anything else, which is a server error.
func (s *Server) actionRefused(err error) (int, string, bool) {
	st, ok := statusOf(err)
	return st.Status, st.Message, ok
}

func (s *Server) handleCommandForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	ref, err := visibleRef(r)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	typ := r.PostFormValue("type")
	cmd, err := s.SendCommand(r.Context(), ref, CommandRequest{Type: typ}, principal(r).name)
	if err != nil {
		if status, msg, ok := s.actionRefused(err); ok && status != http.StatusNotFound {
			s.terminalPage(w, r, frame, status, msg)
			return
		}
		s.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, parts.TerminalHref(ref.Tenant, ref.Terminal)+"?done="+url.QueryEscape(cmd.Type), http.StatusSeeOther)
}

// checkNote refuses a visit note that is too long or holds a card number.
func checkNote(note string) error {
	switch err := posfleet.ValidateNote(note); {
	case errors.Is(err, posfleet.ErrNoteTooLong):
		return badRequest(fmt.Sprintf("The note is too long: at most %d characters.", posfleet.MaxNoteLen))
	case err != nil:
		return badRequest("The note looks like it holds a card number; card data is never stored. Leave it out.")
	}
	return nil
}

func (s *Server) handleServicedForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	ref, err := visibleRef(r)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	note := strings.TrimSpace(r.PostFormValue("note"))
	if err := checkNote(note); err != nil {
		_, msg, _ := s.actionRefused(err)
		s.terminalPage(w, r, frame, http.StatusBadRequest, msg)
		return
	}
	cleared, err := s.opts.Health.MarkServiced(ref, note, principal(r).name, s.opts.Now())
	if errors.Is(err, health.ErrUnknownTerminal) {
		// Its status is the API's (the kinds table); the page says why.
		st, _ := statusOf(err)
		s.terminalPage(w, r, frame, st.Status, "The terminal never connected: there is nothing to clear.")
		return
	}
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	s.log.Info("terminal serviced", "terminal", ref.String(), "by", principal(r).name, "cleared", len(cleared))
	if r.PostFormValue("back") == "worklist" {
		http.Redirect(w, r, "/worklist?done="+url.QueryEscape(ref.String()), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, parts.TerminalHref(ref.Tenant, ref.Terminal)+"?done=serviced", http.StatusSeeOther)
}

func (s *Server) firmwareView(r *http.Request, frame layout.Page) firmware.View {
	frame.Title = "Firmware"
	tenant := scope(r)
	pol := s.opts.Health.Policy()
	fs := s.opts.Health.FleetSummary(tenant)
	v := firmware.View{Frame: frame, Admin: principal(r).admin, Suspect: fs.SuspectFirmware, Models: adoption(fs.Models, pol)}
	v.Policy = string(s.policyFor(tenant, principal(r).admin).YAML())
	return v
}

func (s *Server) handleFirmwarePage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	v := s.firmwareView(r, frame)
	q := r.URL.Query()
	v.Notice = notices[q.Get("done")]
	if q.Has("sent") {
		sent, _ := strconv.Atoi(q.Get("sent"))
		failed, _ := strconv.Atoi(q.Get("failed"))
		v.Notice = fmt.Sprintf("Update sent to %d terminals; %d could not be reached.", sent, failed)
	}
	s.render(w, r, http.StatusOK, firmware.Page(v))
}

func (s *Server) handlePolicyForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	if !principal(r).admin {
		s.renderError(w, r, posfleet.Errorf(posfleet.Forbidden, "forbidden", "only an administrator may change the firmware policy"))
		return
	}
	body := strings.ReplaceAll(r.PostFormValue("policy"), "\r\n", "\n")
	if len(body) > maxBody {
		s.renderError(w, r, posfleet.Errorf(posfleet.TooLarge, "too_large", "the policy is too long"))
		return
	}
	err := s.checkPolicyURLs([]byte(body))
	if err == nil {
		err = s.opts.Health.SetPolicy([]byte(body))
	}
	if err != nil {
		v := s.firmwareView(r, frame)
		v.Policy = body
		var pe *health.PolicyError
		if !errors.As(err, &pe) {
			s.renderError(w, r, err)
			return
		}
		v.PolicyError, v.PolicyLine = pe.Reason, pe.Line
		s.render(w, r, http.StatusBadRequest, firmware.Page(v))
		return
	}
	if s.opts.SavePolicy != nil {
		if err := s.opts.SavePolicy([]byte(body)); err != nil {
			s.renderError(w, r, fmt.Errorf("save policy: %w", err))
			return
		}
	}
	s.log.Info("firmware policy replaced", "by", principal(r).name)
	http.Redirect(w, r, "/firmware?done=policy", http.StatusSeeOther)
}

// maxBulk bounds one bulk update: a rollout goes in waves.
const maxBulk = 500

func (s *Server) handleBulkUpdateForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	model, fw := strings.TrimSpace(r.PostFormValue("model")), strings.TrimSpace(r.PostFormValue("firmware"))
	refuse := func(status int, msg string) {
		v := s.firmwareView(r, frame)
		v.Error = msg
		s.render(w, r, status, firmware.Page(v))
	}
	if model == "" {
		refuse(http.StatusBadRequest, "Choose a model.")
		return
	}
	// Nothing can go out without a broker or without a package for the
	// model: say so once rather than once per terminal.
	if s.opts.Commander == nil {
		refuse(http.StatusServiceUnavailable, "This posfleet process runs no broker; send updates through one that does.")
		return
	}
	if _, err := BuildCommand(CommandRequest{Type: posfleet.CmdUpdateFirmware}, model, s.opts.Health.Policy()); err != nil {
		_, msg, _ := s.actionRefused(err)
		refuse(http.StatusConflict, msg)
		return
	}
	page := ListTerminals(s.opts.Health, scope(r), TerminalFilter{Flag: posfleet.FlagFirmwareOutdated, Model: model, Firmware: fw, Page: 1, PerPage: maxBulk})
	sent, failed := 0, 0
	for _, t := range page.Terminals {
		ref := posfleet.TerminalRef{Tenant: t.Tenant, Terminal: t.Terminal}
		if _, err := s.SendCommand(r.Context(), ref, CommandRequest{Type: posfleet.CmdUpdateFirmware}, principal(r).name); err != nil {
			// Typically a terminal that never connected with a persistent
			// session; the others still get theirs.
			s.log.Info("bulk update: not sent", "terminal", ref.String(), "err", err)
			failed++
			continue
		}
		sent++
	}
	s.log.Info("bulk update", "model", model, "firmware", fw, "sent", sent, "failed", failed, "by", principal(r).name)
	http.Redirect(w, r, fmt.Sprintf("/firmware?sent=%d&failed=%d", sent, failed), http.StatusSeeOther)
}

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

func (s *Server) handleIncidentsPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title = "Incidents"
	inc := s.opts.Health.Incidents(scope(r))
	slices.SortStableFunc(inc, func(a, b health.Incident) int { return b.Start.Compare(a.Start) })
	s.render(w, r, http.StatusOK, incidents.Page(incidents.View{Frame: frame, Now: s.opts.Now(), Incidents: inc}))
}

// messageFacts says what the pipeline did with a terminal's messages
// besides storing them.
func messageFacts(m posfleet.MessageCounts) []terminal.Fact {
	count := func(n int64, byWhat string) string {
		if n == 0 {
			return "none"
		}
		if byWhat == "" {
			return strconv.FormatInt(n, 10)
		}
		return strconv.FormatInt(n, 10) + " (" + byWhat + ")"
	}
	return []terminal.Fact{
		{Label: "Rejected", Value: count(sumCounts(m.Rejected), joinCounts(m.Rejected)), TestID: "msg-rejected"},
		{Label: "Security events", Value: count(sumCounts(m.Security), joinCounts(m.Security)), TestID: "msg-security"},
		{Label: "Seq gaps", Value: count(m.Gaps, ""), TestID: "msg-gaps"},
		{Label: "Duplicates dropped", Value: count(m.Duplicates, ""), TestID: "msg-duplicates"},
		{Label: "Seq restarts", Value: count(m.SeqResets, ""), TestID: "msg-seq-resets"},
	}
}

func sumCounts[K ~string](m map[K]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// joinCounts lists counts by key, largest first: "not_json 3, card_data 1".
func joinCounts[K ~string](m map[K]int64) string {
	keys := make([]K, 0, len(m))
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = string(k) + " " + strconv.FormatInt(m[k], 10)
	}
	return strings.Join(parts, ", ")
}
