package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/chart"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/parts"
	"github.com/posfleet/posfleet/web/pages/terminal"
)

func (s *Server) handleTerminalPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	s.terminalPage(w, r, frame, http.StatusOK, "")
}

// recentEvents is how many of a terminal's latest rejections and security
// events its page lists.
const recentEvents = 20

// TerminalEvents is what Events may give besides the fleet's latest: one
// terminal's (the journal's and the collector's do). Without it the page
// picks the terminal's among its tenant's latest.
type TerminalEvents interface {
	TerminalRejections(ref posfleet.TerminalRef, n int) []posfleet.RejectionEvent
	TerminalSecurity(ref posfleet.TerminalRef, n int) []posfleet.SecurityRecord
}

// terminalEvents are ref's latest rejections and security events: reason,
// time and topic, never a payload (the collector keeps none).
func (s *Server) terminalEvents(ref posfleet.TerminalRef) ([]posfleet.RejectionEvent, []posfleet.SecurityRecord) {
	if s.opts.Events == nil {
		return nil, nil
	}
	if te, ok := s.opts.Events.(TerminalEvents); ok {
		return te.TerminalRejections(ref, recentEvents), te.TerminalSecurity(ref, recentEvents)
	}
	var rej []posfleet.RejectionEvent
	for _, e := range s.opts.Events.RecentRejections(ref.Tenant, 500) {
		if e.Terminal == ref && len(rej) < recentEvents {
			rej = append(rej, e)
		}
	}
	var sec []posfleet.SecurityRecord
	for _, e := range s.opts.Events.RecentSecurity(ref.Tenant, 500) {
		if e.Known && e.Terminal == ref && len(sec) < recentEvents {
			sec = append(sec, e)
		}
	}
	return rej, sec
}

// terminalNotice is the message after a done action (?done=), in the
// reader's language; "" for none.
func terminalNotice(ctx context.Context, done string) string {
	switch done {
	case posfleet.CmdReboot, posfleet.CmdUpdateFirmware, "serviced":
		return locale.T(ctx, "terminal.notice."+done)
	}
	return ""
}

// terminalPage renders a terminal's page, with actionErr when an action on
// it was refused.
func (s *Server) terminalPage(w http.ResponseWriter, r *http.Request, frame layout.Page, status int, actionErr string) {
	ref, err := visibleRef(r)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	ctx := r.Context()
	d, err := s.TerminalDetails(ctx, ref)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	now := s.opts.Now()
	l := func(id string, kv ...any) string { return locale.T(ctx, "terminal."+id, kv...) }
	frame.Title, frame.Active = ref.Terminal, "/terminals"
	v := terminal.View{Frame: frame, Now: now, Tenant: ref.Tenant, Terminal: ref.Terminal, Href: parts.TerminalHref(ref.Tenant, ref.Terminal),
		Commands: d.Commands, Notice: terminalNotice(ctx, r.URL.Query().Get("done")), Error: actionErr, Range: "24h"}
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
			terminal.Fact{Label: l("fact.serial"), Value: orDash(h.Serial)},
			terminal.Fact{Label: l("fact.firmware"), Value: orDash(h.Firmware), TestID: "firmware"},
			terminal.Fact{Label: l("fact.app"), Value: orDash(h.App)},
			terminal.Fact{Label: l("fact.last_boot"), Value: orDash(h.BootReason)},
			terminal.Fact{Label: l("fact.first_seen"), Value: parts.Time(ctx, h.FirstSeen)})
		if u := h.LastUpdate; u != nil {
			v.Identity = append(v.Identity, terminal.Fact{Label: l("fact.last_update"), Value: strings.TrimSpace(u.Target + " " + u.Status + " " + u.Error)})
		}
		if hb := h.Heartbeat; hb != nil {
			v.Heartbeat = heartbeatFacts(ctx, hb)
		}
	}
	if m := d.Messages; m != nil {
		v.Messages = messageFacts(ctx, *m)
	}
	v.Rejections, v.Security = s.terminalEvents(ref)
	v.EventsShown = s.opts.Events != nil
	v.Identity = append([]terminal.Fact{{Label: l("fact.model"), Value: orDash(model), TestID: "model"}}, v.Identity...)
	v.Site = []terminal.Fact{
		{Label: l("fact.merchant"), Value: orDash(site.Merchant), TestID: "merchant"},
		{Label: l("fact.site"), Value: orDash(site.Site)},
		{Label: l("fact.region"), Value: orDash(site.Region)},
	}
	if site.Lat != 0 || site.Lon != 0 {
		v.Site = append(v.Site, terminal.Fact{Label: l("fact.location"), Value: fmt.Sprintf("%.5f, %.5f", site.Lat, site.Lon)})
	}
	// The job-sheet columns of provisioning, the registry's when known
	// (fresh after an import); shown only when given.
	contact := site.Contact
	if p := d.Provisioned; p != nil {
		contact = p.Contact
	}
	for _, f := range []terminal.Fact{{Label: l("fact.address"), Value: contact.Address, TestID: "address"}, {Label: l("fact.contact"), Value: contact.Person, TestID: "contact"},
		{Label: l("fact.phone"), Value: contact.Phone, TestID: "phone"}, {Label: l("fact.opening_hours"), Value: contact.OpeningHours, TestID: "opening-hours"}} {
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
		v.ChartsNote = l("charts_none")
	} else {
		sctx, cancel := context.WithTimeout(ctx, seriesTimeout)
		ts, err := s.opts.Series.TerminalSeries(sctx, ref.Tenant, ref.Terminal, span, now)
		cancel()
		if err != nil {
			s.log.Warn("terminal series", "terminal", ref.String(), "err", err)
			v.ChartsNote = l("charts_failed")
		} else {
			v.Charts, v.Recent = terminalCharts(ctx, ts), ts.Recent
		}
	}
	s.render(w, r, status, terminal.Page(v))
}

func heartbeatFacts(ctx context.Context, hb *health.HeartbeatSummary) []terminal.Fact {
	l := func(id string, kv ...any) string { return locale.T(ctx, "terminal."+id, kv...) }
	intp := func(p *int, id string) string {
		if p == nil {
			return "–"
		}
		return l(id, "N", *p)
	}
	fs := []terminal.Fact{{Label: l("fact.received"), Value: parts.Time(ctx, hb.At)}}
	bat := intp(hb.BatteryPct, "unit.pct")
	if hb.BatteryPct != nil && hb.Charging {
		bat = l("unit.pct_charging", "N", *hb.BatteryPct)
	}
	fs = append(fs, terminal.Fact{Label: l("fact.battery"), Value: bat, TestID: "battery"})
	if hb.TempC != nil {
		fs = append(fs, terminal.Fact{Label: l("fact.temperature"), Value: l("unit.celsius", "N", locale.From(ctx).Float(*hb.TempC, 1))})
	}
	signal := intp(hb.SignalDBm, "unit.dbm")
	if hb.Net != "" {
		signal = l("unit.signal_net", "Signal", signal, "Net", hb.Net)
	}
	fs = append(fs,
		terminal.Fact{Label: l("fact.signal"), Value: signal},
		terminal.Fact{Label: l("fact.rtt"), Value: intp(hb.HostRTTMs, "unit.ms")},
		terminal.Fact{Label: l("fact.paper"), Value: orDash(hb.Paper)},
		terminal.Fact{Label: l("fact.pending"), Value: intp(hb.PendingTxns, "unit.n")})
	if hb.UptimeS != nil {
		up := time.Duration(*hb.UptimeS) * time.Second
		fs = append(fs, terminal.Fact{Label: l("fact.uptime"), Value: l("unit.uptime", "Days", int(up/(24*time.Hour)), "Hours", int(up/time.Hour)%24, "Minutes", int(up/time.Minute)%60)})
	}
	return fs
}

// messageFacts says what the pipeline did with a terminal's messages
// besides storing them.
func messageFacts(ctx context.Context, m posfleet.MessageCounts) []terminal.Fact {
	l := func(id string, kv ...any) string { return locale.T(ctx, "terminal."+id, kv...) }
	count := func(n int64, byWhat string) string {
		if n == 0 {
			return l("messages.none")
		}
		if byWhat == "" {
			return locale.Int(ctx, n)
		}
		return l("messages.count_by", "Count", n, "By", byWhat)
	}
	return []terminal.Fact{
		{Label: l("fact.rejected"), Value: count(sumCounts(m.Rejected), joinCounts(ctx, m.Rejected)), TestID: "msg-rejected"},
		{Label: l("fact.security"), Value: count(sumCounts(m.Security), joinCounts(ctx, m.Security)), TestID: "msg-security"},
		{Label: l("fact.gaps"), Value: count(m.Gaps, ""), TestID: "msg-gaps"},
		{Label: l("fact.duplicates"), Value: count(m.Duplicates, ""), TestID: "msg-duplicates"},
		{Label: l("fact.seq_resets"), Value: count(m.SeqResets, ""), TestID: "msg-seq-resets"},
	}
}

func sumCounts[K ~string](m map[K]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// joinCounts lists counts by key, largest first: "not_json 3, card_data 1"
// (the keys are protocol codes, kept as they are).
func joinCounts[K ~string](ctx context.Context, m map[K]int64) string {
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
		parts[i] = locale.T(ctx, "terminal.messages.key_count", "Key", string(k), "Count", m[k])
	}
	return strings.Join(parts, locale.T(ctx, "terminal.list_separator"))
}

func points(ps []posfleet.SeriesPoint) []chart.Point {
	out := make([]chart.Point, len(ps))
	for i, p := range ps {
		out[i] = chart.Point{At: p.At, Value: p.Value}
	}
	return out
}

// terminalCharts turns a terminal's series into the page's charts, titled
// in the reader's language.
func terminalCharts(ctx context.Context, ts posfleet.TerminalSeries) []chart.Chart {
	l := func(id string, kv ...any) string { return locale.T(ctx, "terminal.chart."+id, kv...) }
	zero, hundred := 0.0, 100.0
	gap := 3 * ts.Step
	line := func(id, title, unit string, ps []posfleet.SeriesPoint) chart.Chart {
		return chart.Chart{ID: id, Title: title, Unit: unit, Start: ts.Start, End: ts.End, Gap: gap,
			Lines: []chart.Series{{Label: title, Class: "line-" + id, Points: points(ps)}}}
	}
	bat := line("battery", l("battery"), "%", ts.Battery)
	bat.Floor, bat.Ceil = &zero, &hundred
	rtt := line("rtt", l("rtt"), l("unit_ms"), ts.HostRTT)
	rtt.Floor = &zero
	hours := int(ts.Bucket.Hours())
	txns := chart.Chart{ID: "txns", Title: l("txns"), Unit: locale.N(ctx, "terminal.chart.per_hours", hours), Start: ts.Start, End: ts.End, Bucket: ts.Bucket}
	for _, res := range txnResults(nil) {
		if ps, ok := ts.TxnsByResult[res]; ok {
			txns.Bars = append(txns.Bars, chart.Series{Label: terminal.ResultLabel(ctx, res), Class: "bar-" + res, Points: points(ps)})
		}
	}
	mism := chart.Chart{ID: "mismatch", Title: l("mismatch"), Unit: locale.N(ctx, "terminal.chart.sales_per_hours", hours), Start: ts.Start, End: ts.End, Bucket: ts.Bucket,
		Bars: []chart.Series{{Label: l("mismatches"), Class: "bar-mismatch", Points: points(ts.Mismatches)}}}
	return []chart.Chart{bat, line("signal", l("signal"), "dBm", ts.Signal), rtt, txns, mism}
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
	if err := posfleet.ValidateNote(note); err != nil {
		// The page says why in the reader's language (checkNote is the
		// API's wording).
		msg := locale.T(r.Context(), "terminal.note_card_data")
		if errors.Is(err, posfleet.ErrNoteTooLong) {
			msg = locale.T(r.Context(), "terminal.note_too_long", "Max", posfleet.MaxNoteLen)
		}
		s.terminalPage(w, r, frame, http.StatusBadRequest, msg)
		return
	}
	at := s.opts.Now()
	cleared, err := s.opts.Health.MarkServiced(ref, note, principal(r).name, at)
	if errors.Is(err, health.ErrUnknownTerminal) {
		// Its status is the API's (the kinds table); the page says why.
		st, _ := statusOf(err)
		s.terminalPage(w, r, frame, st.Status, locale.T(r.Context(), "terminal.never_connected_nothing_to_clear"))
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
