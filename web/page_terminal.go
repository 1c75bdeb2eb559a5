package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web/pages/chart"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/parts"
	"github.com/posfleet/posfleet/web/pages/terminal"
)

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
	if s.opts.Alarms != nil {
		v.AlarmsHref = "/alarms?" + url.Values{"tenant": {ref.Tenant}, "terminal": {ref.Terminal}, "state": {"all"}}.Encode()
	}
	site := posfleet.Site{}
	model := ""
	if p := d.Provisioned; p != nil {
		site, model = p.Placement(), p.Model
	}
	if h := d.Health; h != nil {
		v.Seen, v.Online, v.LastSeen = true, h.Online, h.LastSeen
		if h.Site != (posfleet.Site{}) {
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
			terminal.Fact{Label: "First seen", Value: parts.Time(r.Context(), h.FirstSeen)})
		if u := h.LastUpdate; u != nil {
			v.Identity = append(v.Identity, terminal.Fact{Label: "Last update", Value: strings.TrimSpace(u.Target + " " + u.Status + " " + u.Error)})
		}
		if hb := h.Heartbeat; hb != nil {
			v.Heartbeat = heartbeatFacts(r.Context(), hb)
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
	// The job-sheet columns of provisioning, the registry's when known
	// (fresh after an import); shown only when given.
	contact := site.Contact
	if p := d.Provisioned; p != nil {
		contact = p.Contact
	}
	for _, f := range []terminal.Fact{{Label: "Address", Value: contact.Address, TestID: "address"}, {Label: "Contact", Value: contact.Person, TestID: "contact"},
		{Label: "Phone", Value: contact.Phone, TestID: "phone"}, {Label: "Opening hours", Value: contact.OpeningHours, TestID: "opening-hours"}} {
		if f.Value != "" {
			v.Site = append(v.Site, f)
		}
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

func heartbeatFacts(ctx context.Context, hb *health.HeartbeatSummary) []terminal.Fact {
	intp := func(p *int, unit string) string {
		if p == nil {
			return "–"
		}
		return strconv.Itoa(*p) + unit
	}
	fs := []terminal.Fact{{Label: "Received", Value: parts.Time(ctx, hb.At)}}
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

func points(ps []posfleet.SeriesPoint) []chart.Point {
	out := make([]chart.Point, len(ps))
	for i, p := range ps {
		out[i] = chart.Point{At: p.At, Value: p.Value}
	}
	return out
}

// terminalCharts turns a terminal's series into the page's charts.
func terminalCharts(ts posfleet.TerminalSeries) []chart.Chart {
	zero, hundred := 0.0, 100.0
	gap := 3 * ts.Step
	line := func(id, title, unit string, ps []posfleet.SeriesPoint) chart.Chart {
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
	at := s.opts.Now()
	cleared, err := s.opts.Health.MarkServiced(ref, note, principal(r).name, at)
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
	s.recordVisit(r.Context(), ref, principal(r).name, note, at, cleared)
	s.log.Info("terminal serviced", "terminal", ref.String(), "by", principal(r).name, "cleared", len(cleared))
	if r.PostFormValue("back") == "worklist" {
		http.Redirect(w, r, "/worklist?done="+url.QueryEscape(ref.String()), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, parts.TerminalHref(ref.Tenant, ref.Terminal)+"?done=serviced", http.StatusSeeOther)
}
