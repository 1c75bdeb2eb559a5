package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/alarms"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/parts"
)

// Alarms is what the web side reads and changes of the alarms (package
// alarm's Store, through the server's adapter). Tenant scoping is the web
// side's: it reads an alarm before acting on it and answers "not found"
// for another tenant's.
type Alarms interface {
	ListAlarms(ctx context.Context, f posfleet.AlarmFilter) ([]posfleet.Alarm, int, error)
	Alarm(ctx context.Context, id string) (posfleet.Alarm, []posfleet.AlarmEntry, error)
	AcknowledgeAlarm(ctx context.Context, id, by string) (posfleet.Alarm, error)
	AssignAlarm(ctx context.Context, id, to, by string) (posfleet.Alarm, error)
	CommentAlarm(ctx context.Context, id, by, text string) (posfleet.Alarm, error)
	SnoozeAlarm(ctx context.Context, id string, until time.Time, by string) (posfleet.Alarm, error)
	ResolveAlarm(ctx context.Context, id, by, note string) (posfleet.Alarm, error)
	CountAlarms(ctx context.Context, tenant string) (map[posfleet.AlarmState]int, error)
}

// Limits of the alarm endpoints.
const (
	maxAlarmPage    = 500 // alarms per list answer
	defaultAlarmAPI = 100 // alarms per list answer by default
	alarmsPerPage   = 50  // alarms per page of the alarm list page
	maxBulkAlarms   = 500 // alarms per bulk action
	maxAssigneeLen  = 128
	maxSnooze       = 90 * 24 * time.Hour
)

// errAlarmNotFound answers for a missing alarm and another tenant's alike,
// so that an ID tells nothing of another tenant.
var errAlarmNotFound = &posfleet.Error{Kind: posfleet.NotFound, Code: "not_found", Message: "no such alarm"}

// Alarm actions: the path's last segment, the bulk "action" and the
// history's verbs.
const (
	actAcknowledge = "acknowledge"
	actAssign      = "assign"
	actComment     = "comment"
	actSnooze      = "snooze"
	actResolve     = "resolve"
)

// mountAlarms adds the alarm API and pages.
func (s *Server) mountAlarms() {
	s.mux.HandleFunc("GET /api/v1/alarms", s.api(s.handleAlarmsAPI))
	s.mux.HandleFunc("POST /api/v1/alarms/bulk", s.api(s.handleAlarmBulkAPI))
	s.mux.HandleFunc("GET /api/v1/alarms/{id}", s.api(s.handleAlarmAPI))
	for _, act := range []string{actAcknowledge, actAssign, actComment, actSnooze, actResolve} {
		s.mux.HandleFunc("POST /api/v1/alarms/{id}/"+act, s.api(s.handleAlarmActionAPI(act)))
	}
	s.mux.HandleFunc("GET /alarms", s.page(s.handleAlarmsPage))
	s.mux.HandleFunc("POST /alarms/bulk", s.page(s.handleAlarmBulkForm))
	s.mux.HandleFunc("GET /alarms/{id}", s.page(s.handleAlarmPage))
	s.mux.HandleFunc("POST /alarms/{id}/{action}", s.page(s.handleAlarmForm))
}

// navFrame adds what the navigation shows of alarms and notifications to
// a page's frame: the count of open alarms is read for pages that render
// (GET), not for forms that redirect.
func (s *Server) navFrame(r *http.Request, p *layout.Page) {
	p.Notifications = s.opts.Notifications != nil
	if s.opts.Alarms == nil {
		return
	}
	p.Alarms = true
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return
	}
	counts, err := s.opts.Alarms.CountAlarms(r.Context(), scope(r))
	if err != nil {
		// The badge is a convenience: a page renders without it.
		s.log.Warn("count alarms", "err", err)
		return
	}
	p.OpenAlarms = counts[posfleet.AlarmOpen]
}

// alarmFilter is the query of the alarm list: the API's parameters, which
// the list page's filter form sends too.
func parseAlarmFilter(q url.Values, r *http.Request) (posfleet.AlarmFilter, error) {
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	p, _ := PrincipalFrom(r.Context())
	f := posfleet.AlarmFilter{Tenant: tenantScope(p), Limit: defaultAlarmAPI}
	if t := get("tenant"); t != "" && t != posfleet.AllTenants {
		if !p.Sees(t) {
			return f, errNotFound
		}
		f.Tenant = t
	}
	if v := get("state"); v != "" {
		if v == "all" {
			f.States = slices.Clone(posfleet.AlarmStates)
		} else {
			for _, st := range strings.Split(v, ",") {
				st := posfleet.AlarmState(strings.TrimSpace(st))
				if !slices.Contains(posfleet.AlarmStates, st) {
					return f, badRequest(fmt.Sprintf("state: unknown state %q; states are open, acknowledged, assigned, resolved (comma-separated), or all", st))
				}
				if !slices.Contains(f.States, st) {
					f.States = append(f.States, st)
				}
			}
		}
	}
	if v := get("kind"); v != "" {
		if !posfleet.ValidAlarmKind(v) {
			return f, badRequest(fmt.Sprintf("kind: unknown kind %q; kinds are the flag names, incident and mass_offline", v))
		}
		f.Kind = v
	}
	if v := get("urgent"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, badRequest("urgent: want true or false")
		}
		f.Urgent = &b
	}
	f.Region, f.Assignee, f.Terminal, f.Parent = get("region"), get("assignee"), get("terminal"), get("parent")
	f.Region = crewRegion(p, f.Region)
	for k, v := range map[string]string{"region": f.Region, "assignee": f.Assignee, "terminal": f.Terminal, "parent": f.Parent} {
		if len(v) > 256 {
			return f, badRequest(k + ": too long")
		}
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAlarmPage {
			return f, badRequest(fmt.Sprintf("limit: want a whole number from 1 to %d", maxAlarmPage))
		}
		f.Limit = n
	}
	if v := get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10_000_000 {
			return f, badRequest("offset: want a whole number from 0")
		}
		f.Offset = n
	}
	return f, nil
}

// visibleAlarm reads an alarm the caller may see, with its history.
func (s *Server) visibleAlarm(ctx context.Context, id string) (posfleet.Alarm, []posfleet.AlarmEntry, error) {
	p, _ := PrincipalFrom(ctx)
	if id == "" || len(id) > 128 {
		return posfleet.Alarm{}, nil, errAlarmNotFound
	}
	a, hist, err := s.opts.Alarms.Alarm(ctx, id)
	if posfleet.ErrorKind(err) == posfleet.NotFound {
		return a, nil, errAlarmNotFound
	}
	if err != nil {
		return a, nil, err
	}
	if !p.Sees(a.Tenant) || (a.Terminal != "" && !p.InRegion(a.Region)) { // a crew: its regions' (roles.go)
		return posfleet.Alarm{}, nil, errAlarmNotFound
	}
	return a, hist, nil
}

// foldedAlarms lists the alarms folded into an incident's alarm, of every
// state.
func (s *Server) foldedAlarms(ctx context.Context, a posfleet.Alarm) ([]posfleet.Alarm, error) {
	if !posfleet.AlarmGroup(a.Kind) {
		return []posfleet.Alarm{}, nil
	}
	list, _, err := s.opts.Alarms.ListAlarms(ctx, posfleet.AlarmFilter{Tenant: a.Tenant, Parent: a.ID,
		States: slices.Clone(posfleet.AlarmStates), Limit: maxAlarmPage})
	return list, err
}

// alarmInput is what an action carries besides the alarm and the actor.
type alarmInput struct {
	Assignee string
	Text     string // a comment, or the note of a resolve
	Until    time.Time
}

// checkText refuses a comment or note that is too long or holds a card
// number, as visit notes are (ValidateNote is the one rule for notes).
func checkText(field, text string) error {
	switch err := posfleet.ValidateNote(text); {
	case errors.Is(err, posfleet.ErrNoteTooLong):
		return refusal(fmt.Sprintf("%s: too long, at most %d characters", field, posfleet.MaxNoteLen), "alarms.refused.text_too_long", "Max", posfleet.MaxNoteLen)
	case err != nil:
		return refusal(field+": looks like it holds a card number; card data is never stored, leave it out", "alarms.refused.text_card_data")
	}
	return nil
}

// checkAssignee refuses an empty or unprintable assignee: it is a user's
// or a crew's name, shown on pages and in notifications.
func checkAssignee(to string) error {
	switch {
	case to == "":
		return refusal("assignee: say to whom (a user or a crew)", "alarms.refused.assignee_empty")
	case len(to) > maxAssigneeLen:
		return refusal(fmt.Sprintf("assignee: at most %d characters", maxAssigneeLen), "alarms.refused.assignee_too_long", "Max", maxAssigneeLen)
	case strings.IndexFunc(to, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		return refusal("assignee: only printable characters", "alarms.refused.assignee_unprintable")
	case posfleet.ContainsCardData(to):
		return refusal("assignee: looks like it holds a card number", "alarms.refused.assignee_card_data")
	}
	return nil
}

// localizedError is a refusal with its text for pages: the API answers
// with its English Message (clients match on the code), a page shows the
// catalogue's message id in the reader's language.
type localizedError struct {
	err *posfleet.Error
	id  string
	kv  []any
}

func (e *localizedError) Error() string { return e.err.Error() }
func (e *localizedError) Unwrap() error { return e.err }

// refusal is a 400 whose message is english in the API and the catalogue's
// id (placeholders from kv) on a page.
func refusal(english, id string, kv ...any) error {
	return &localizedError{err: badRequest(english), id: id, kv: kv}
}

// refusalCodes are the catalogue's messages of the stores' refusals
// that a form may meet, by their codes.
var refusalCodes = map[string]string{
	"alarm_resolved": "alarms.refused.resolved",
	"channel_exists": "notifications.refused.channel_exists",
}

// refusedText is the message of a refused form for the reader: the
// catalogue's when err is a refusal or has a known code, else msg (the
// error's own).
func refusedText(ctx context.Context, err error, msg string) string {
	var le *localizedError
	if errors.As(err, &le) {
		return locale.T(ctx, le.id, le.kv...)
	}
	var e *posfleet.Error
	if errors.As(err, &e) {
		if id, ok := refusalCodes[e.Code]; ok {
			return locale.T(ctx, id)
		}
	}
	return msg
}

// alarmAction checks the input and does one action on an alarm the caller
// may see, by the caller.
func (s *Server) alarmAction(ctx context.Context, id, action string, in alarmInput) (posfleet.Alarm, error) {
	if _, _, err := s.visibleAlarm(ctx, id); err != nil {
		return posfleet.Alarm{}, err
	}
	p, _ := PrincipalFrom(ctx)
	var (
		a   posfleet.Alarm
		err error
	)
	switch action {
	case actAcknowledge:
		a, err = s.opts.Alarms.AcknowledgeAlarm(ctx, id, p.Name)
	case actAssign:
		in.Assignee = strings.TrimSpace(in.Assignee)
		if err := checkAssignee(in.Assignee); err != nil {
			return a, err
		}
		a, err = s.opts.Alarms.AssignAlarm(ctx, id, in.Assignee, p.Name)
	case actComment:
		in.Text = strings.TrimSpace(in.Text)
		if in.Text == "" {
			return a, refusal("text: the comment is empty", "alarms.refused.comment_empty")
		}
		if err := checkText("text", in.Text); err != nil {
			return a, err
		}
		a, err = s.opts.Alarms.CommentAlarm(ctx, id, p.Name, in.Text)
	case actSnooze:
		a, err = s.opts.Alarms.SnoozeAlarm(ctx, id, in.Until, p.Name)
	case actResolve:
		in.Text = strings.TrimSpace(in.Text)
		if err := checkText("note", in.Text); err != nil {
			return a, err
		}
		a, err = s.opts.Alarms.ResolveAlarm(ctx, id, p.Name, in.Text)
	default:
		return a, errNotFound
	}
	if posfleet.ErrorKind(err) == posfleet.NotFound {
		return a, errAlarmNotFound
	}
	if err != nil {
		return a, err
	}
	s.log.Info("alarm "+action, "alarm", id, "tenant", a.Tenant, "by", p.Name)
	return a, nil
}

// snoozeUntil reads a snooze: an RFC 3339 time, or a duration from now;
// the zero time ends a snooze.
func (s *Server) snoozeUntil(until, dur *string) (time.Time, error) {
	now := s.opts.Now()
	switch {
	case until != nil && dur != nil:
		return time.Time{}, badRequest(`snooze: send "until" or "for", not both`)
	case until != nil:
		if *until == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			return t, badRequest(`until: want an RFC 3339 time such as "2026-03-02T09:00:00+08:00", or "" to end the snooze`)
		}
		if !t.After(now) {
			return t, badRequest("until: the time is past; snooze until a time to come")
		}
		if t.Sub(now) > maxSnooze {
			return t, badRequest(fmt.Sprintf("until: at most %d days ahead", int(maxSnooze.Hours()/24)))
		}
		return t, nil
	case dur != nil:
		d, err := time.ParseDuration(*dur)
		if err != nil || d <= 0 || d > maxSnooze {
			return time.Time{}, badRequest(fmt.Sprintf(`for: want a positive duration such as "2h" or "30m", at most %d days`, int(maxSnooze.Hours()/24)))
		}
		return now.Add(d), nil
	}
	return time.Time{}, badRequest(`snooze: send {"until": RFC 3339 time} or {"for": duration}; {"until": ""} ends the snooze`)
}

// --- API ---

func (s *Server) handleAlarmsAPI(w http.ResponseWriter, r *http.Request) {
	f, err := parseAlarmFilter(r.URL.Query(), r)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	list, total, err := s.opts.Alarms.ListAlarms(r.Context(), f)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alarms": list, "total": total})
}

// AlarmDetail answers GET /api/v1/alarms/{id}.
type AlarmDetail struct {
	Alarm   posfleet.Alarm        `json:"alarm"`
	History []posfleet.AlarmEntry `json:"history"`
	// Folded are the alarms folded into an incident's alarm.
	Folded []posfleet.Alarm `json:"folded"`
}

func (s *Server) handleAlarmAPI(w http.ResponseWriter, r *http.Request) {
	a, hist, err := s.visibleAlarm(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	folded, err := s.foldedAlarms(r.Context(), a)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, AlarmDetail{Alarm: a, History: hist, Folded: folded})
}

// AlarmActionRequest is the body of POST /api/v1/alarms/{id}/{action}:
// assign sends assignee, comment text, resolve note, snooze until or for.
type AlarmActionRequest struct {
	Assignee string  `json:"assignee,omitempty"`
	Text     string  `json:"text,omitempty"`
	Note     string  `json:"note,omitempty"`
	Until    *string `json:"until,omitempty"`
	For      *string `json:"for,omitempty"`
}

func (s *Server) handleAlarmActionAPI(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req AlarmActionRequest
		// Acknowledging needs nothing: an empty body is {}.
		if !(action == actAcknowledge && r.ContentLength == 0) {
			if err := decodeBody(w, r, &req); err != nil {
				writeError(w, s.log, err)
				return
			}
		}
		extra := map[string]bool{"assignee": req.Assignee != "", "text": req.Text != "", "note": req.Note != "", "until": req.Until != nil, "for": req.For != nil}
		allowed := map[string][]string{actAcknowledge: nil, actAssign: {"assignee"}, actComment: {"text"}, actResolve: {"note"}, actSnooze: {"until", "for"}}[action]
		for _, k := range []string{"assignee", "text", "note", "until", "for"} {
			if extra[k] && !slices.Contains(allowed, k) {
				writeError(w, s.log, badRequest(fmt.Sprintf("%s: not a field of %s", k, action)))
				return
			}
		}
		in := alarmInput{Assignee: req.Assignee, Text: req.Text}
		if action == actResolve {
			in.Text = req.Note
		}
		if action == actSnooze {
			until, err := s.snoozeUntil(req.Until, req.For)
			if err != nil {
				writeError(w, s.log, err)
				return
			}
			in.Until = until
		}
		a, err := s.alarmAction(r.Context(), r.PathValue("id"), action, in)
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"alarm": a})
	}
}

// BulkRequest is the body of POST /api/v1/alarms/bulk.
type BulkRequest struct {
	IDs      []string `json:"ids"`
	Action   string   `json:"action"` // acknowledge or assign
	Assignee string   `json:"assignee,omitempty"`
}

// BulkFailure is an alarm a bulk action could not change, and why.
type BulkFailure struct {
	ID    string `json:"id"`
	Error string `json:"error"`
	err   error  // for the page, in the reader's language
}

// BulkResult answers POST /api/v1/alarms/bulk.
type BulkResult struct {
	Done   int           `json:"done"`
	Failed []BulkFailure `json:"failed"`
}

// checkBulk refuses a bulk action that cannot start: an unknown action,
// no alarm, too many, or an assignment to nobody.
func checkBulk(req *BulkRequest) error {
	switch req.Action {
	case actAcknowledge:
	case actAssign:
		req.Assignee = strings.TrimSpace(req.Assignee)
		if err := checkAssignee(req.Assignee); err != nil {
			return err
		}
	default:
		return badRequest("action: want acknowledge or assign")
	}
	var ids []string
	for _, id := range req.IDs {
		if id = strings.TrimSpace(id); id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	switch {
	case len(ids) == 0:
		return refusal("ids: select at least one alarm", "alarms.refused.none_selected")
	case len(ids) > maxBulkAlarms:
		return refusal(fmt.Sprintf("ids: at most %d alarms at once", maxBulkAlarms), "alarms.refused.too_many", "Max", maxBulkAlarms)
	}
	req.IDs = ids
	return nil
}

// bulk does one action on each alarm in turn, collecting the failures:
// one alarm acknowledged by someone else meanwhile does not stop the rest.
func (s *Server) bulk(ctx context.Context, req BulkRequest) BulkResult {
	res := BulkResult{Failed: []BulkFailure{}}
	for _, id := range req.IDs {
		if _, err := s.alarmAction(ctx, id, req.Action, alarmInput{Assignee: req.Assignee}); err != nil {
			st, ok := statusOf(err)
			if !ok {
				s.log.Error("bulk alarm action", "alarm", id, "action", req.Action, "err", err)
			}
			res.Failed = append(res.Failed, BulkFailure{ID: id, Error: st.Message, err: err})
			continue
		}
		res.Done++
	}
	return res
}

func (s *Server) handleAlarmBulkAPI(w http.ResponseWriter, r *http.Request) {
	var req BulkRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, s.log, err)
		return
	}
	if err := checkBulk(&req); err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, s.bulk(r.Context(), req))
}

// --- pages ---

// alarmNotices are the messages of the alarm pages after a redirect
// (?done=), by their catalogue IDs: fixed texts, so that a link cannot
// make a page say anything else.
var alarmNotices = map[string]string{
	actAcknowledge: "alarms.notice.acknowledge",
	actAssign:      "alarms.notice.assign",
	actComment:     "alarms.notice.comment",
	actSnooze:      "alarms.notice.snooze",
	"unsnooze":     "alarms.notice.unsnooze",
	actResolve:     "alarms.notice.resolve",
}

// alarmNotice is the notice of ?done=done in the reader's language; ""
// for none.
func alarmNotice(ctx context.Context, done string) string {
	if id, ok := alarmNotices[done]; ok {
		return locale.T(ctx, id)
	}
	return ""
}

// alarmKinds are the options of the kind filter: the flags, and incidents.
func alarmKinds(ctx context.Context) []alarms.Option {
	out := make([]alarms.Option, 0, len(posfleet.FlagNames)+1)
	for _, f := range posfleet.FlagNames {
		out = append(out, alarms.Option{Value: string(f), Label: parts.FlagLabel(ctx, f)})
	}
	return append(out, alarms.Option{Value: posfleet.AlarmKindIncident, Label: alarms.KindLabel(ctx, posfleet.AlarmKindIncident)},
		alarms.Option{Value: posfleet.AlarmKindBurst, Label: alarms.KindLabel(ctx, posfleet.AlarmKindBurst)})
}

func (s *Server) handleAlarmsPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	s.alarmsPage(w, r, frame, http.StatusOK, "")
}

// alarmsPage renders the list page for the request's query, with an error
// of a refused bulk action.
func (s *Server) alarmsPage(w http.ResponseWriter, r *http.Request, frame layout.Page, status int, actionErr string) {
	frame.Title, frame.Active = locale.T(r.Context(), "nav.alarms"), "/alarms"
	q := r.URL.Query()
	v := alarms.ListView{Frame: frame, Now: s.opts.Now(), Admin: principal(r).admin, Kinds: alarmKinds(r.Context()), Error: actionErr,
		Filter: alarms.Filter{State: q.Get("state"), Kind: q.Get("kind"), Urgent: q.Get("urgent"), Region: q.Get("region"),
			Assignee: q.Get("assignee"), Tenant: q.Get("tenant")},
		Back: "/alarms"}
	if r.URL.RawQuery != "" {
		v.Back = "/alarms?" + r.URL.RawQuery
	}
	if n, err := strconv.Atoi(q.Get("n")); err == nil && n >= 0 {
		failed, _ := strconv.Atoi(q.Get("failed"))
		switch q.Get("done") {
		case "bulk-" + actAcknowledge:
			v.Notice = &alarms.BulkNotice{Action: actAcknowledge, Done: n, Failed: failed}
		case "bulk-" + actAssign:
			v.Notice = &alarms.BulkNotice{Action: actAssign, Done: n, Failed: failed}
		}
	}
	page := 1
	f, err := parseAlarmFilter(q, r)
	if err == nil && q.Get("page") != "" {
		n, perr := strconv.Atoi(q.Get("page"))
		if perr != nil || n < 1 || n > 100_000 {
			err = badRequest("page: want a whole number from 1")
		}
		page = n
	}
	if err != nil {
		if posfleet.ErrorKind(err) == posfleet.NotFound {
			s.renderError(w, r, err)
			return
		}
		st, _ := statusOf(err)
		v.Error = st.Message
		s.render(w, r, http.StatusBadRequest, alarms.List(v))
		return
	}
	f.Limit, f.Offset = alarmsPerPage, (page-1)*alarmsPerPage
	list, total, err := s.opts.Alarms.ListAlarms(r.Context(), f)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	v.Total, v.Page, v.Pages, v.First = total, page, (total+alarmsPerPage-1)/alarmsPerPage, f.Offset+1
	for _, a := range list {
		v.Rows = append(v.Rows, alarms.NewRow(r.Context(), a))
	}
	pageHref := func(n int) string {
		u := url.Values{}
		for k, vs := range q {
			if k != "page" && k != "done" && k != "n" && k != "failed" && len(vs) > 0 && vs[0] != "" {
				u.Set(k, vs[0])
			}
		}
		u.Set("page", strconv.Itoa(n))
		return "/alarms?" + u.Encode()
	}
	if page > 1 {
		v.Prev = pageHref(min(page-1, max(v.Pages, 1)))
	}
	if page < v.Pages {
		v.Next = pageHref(page + 1)
	}
	s.render(w, r, status, alarms.List(v))
}

// alarmsBack is where a bulk form returns: the list with its filters.
func alarmsBack(back string) string {
	if back = safeNext(back); back == "/alarms" || strings.HasPrefix(back, "/alarms?") {
		return back
	}
	return "/alarms"
}

// handleAlarmBulkForm is the list's bulk action in two steps: the first
// POST shows what will be done to how many alarms, with a button that
// posts again with confirm=yes (no script needed), which does it.
func (s *Server) handleAlarmBulkForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, badRequest("the form is too large"))
		return
	}
	back := alarmsBack(r.PostFormValue("back"))
	req := BulkRequest{IDs: r.PostForm["id"], Action: r.PostFormValue("action"), Assignee: r.PostFormValue("assignee")}
	if err := checkBulk(&req); err != nil {
		st, ok := statusOf(err)
		if !ok {
			s.renderError(w, r, err)
			return
		}
		// Back to the list the form came from, with the reason.
		u, _ := url.Parse(back)
		r.URL.RawQuery = u.RawQuery
		s.alarmsPage(w, r, frame, st.Status, refusedText(r.Context(), err, st.Message))
		return
	}
	frame.Title, frame.Active = locale.T(r.Context(), "nav.alarms"), "/alarms"
	if r.PostFormValue("confirm") != "yes" {
		v := alarms.ConfirmView{Frame: frame, Action: req.Action, Assignee: req.Assignee, IDs: req.IDs, Back: back}
		// Show the alarms the caller may see; the others fail when done.
		for _, id := range req.IDs {
			if a, _, err := s.visibleAlarm(r.Context(), id); err == nil {
				v.Rows = append(v.Rows, alarms.NewRow(r.Context(), a))
			}
		}
		s.render(w, r, http.StatusOK, alarms.Confirm(v))
		return
	}
	res := s.bulk(r.Context(), req)
	if len(res.Failed) == 0 {
		u, _ := url.Parse(back)
		q := u.Query()
		q.Set("done", "bulk-"+req.Action)
		q.Set("n", strconv.Itoa(res.Done))
		q.Del("failed")
		http.Redirect(w, r, "/alarms?"+q.Encode(), http.StatusSeeOther)
		return
	}
	v := alarms.ConfirmView{Frame: frame, Action: req.Action, Assignee: req.Assignee, Back: back, Done: &res.Done}
	for _, f := range res.Failed {
		msg := refusedText(r.Context(), f.err, f.Error)
		if posfleet.ErrorKind(f.err) == posfleet.NotFound {
			msg = locale.T(r.Context(), "alarms.refused.not_found")
		}
		v.Failed = append(v.Failed, alarms.Failure{ID: f.ID, Error: msg})
	}
	s.render(w, r, http.StatusOK, alarms.Confirm(v))
}

func (s *Server) handleAlarmPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	s.alarmPage(w, r, frame, http.StatusOK, alarmNotice(r.Context(), r.URL.Query().Get("done")), "")
}

// alarmPage renders an alarm's page with a notice or the error of a
// refused action.
func (s *Server) alarmPage(w http.ResponseWriter, r *http.Request, frame layout.Page, status int, notice, actionErr string) {
	ctx := r.Context()
	a, hist, err := s.visibleAlarm(ctx, r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	folded, err := s.foldedAlarms(ctx, a)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	frame.Title, frame.Active = locale.T(r.Context(), "nav.alarm"), "/alarms"
	v := alarms.DetailView{Frame: frame, Now: s.opts.Now(), Alarm: alarms.NewRow(r.Context(), a), History: hist, Notice: notice, Error: actionErr,
		Users: s.assignees(ctx, a.Tenant), Zone: s.tenantZone(ctx, a.Tenant).String()}
	if ev := posfleet.NewEvidence(posfleet.FlagName(a.Kind)); ev != nil && len(a.Evidence) > 0 && json.Unmarshal(a.Evidence, ev) == nil {
		v.FlagEvidence = ev // a flag's evidence, in words as on the terminal page
	} else if len(a.Evidence) > 0 {
		var b bytes.Buffer
		if json.Indent(&b, a.Evidence, "", "  ") == nil {
			v.Evidence = b.String()
		} else {
			v.Evidence = string(a.Evidence)
		}
	}
	for _, f := range folded {
		v.Folded = append(v.Folded, alarms.NewRow(r.Context(), f))
	}
	s.render(w, r, status, alarms.Detail(v))
}

// assignees are the names the assign form suggests: the users who see the
// tenant, when the user store lists them.
func (s *Server) assignees(ctx context.Context, tenant string) []string {
	ua, ok := s.opts.Users.(UserAdmin)
	if !ok {
		return nil
	}
	users, err := ua.Users(ctx)
	if err != nil {
		s.log.Warn("list users for the assign form", "err", err)
		return nil
	}
	var out []string
	for _, u := range users {
		if !u.Disabled && (u.Tenant == tenant || u.Tenant == posfleet.AllTenants) {
			out = append(out, u.Name)
		}
	}
	return out
}

// tenantZone is the time zone of a tenant's "tomorrow 09:00": the zone of
// its first route that names one (routes hold the tenant's quiet hours),
// else the reader's (locale), the zone the pages show times in.
func (s *Server) tenantZone(ctx context.Context, tenant string) *time.Location {
	reader := locale.From(ctx).Zone
	if s.opts.Notifications == nil {
		return reader
	}
	routes, err := s.opts.Notifications.Routes(ctx, tenant)
	if err != nil {
		return reader
	}
	for _, rt := range routes {
		if rt.Tenant == tenant && rt.TimeZone != "" {
			if loc, err := time.LoadLocation(rt.TimeZone); err == nil {
				return loc
			}
		}
	}
	return reader
}

// formSnooze reads the snooze form's choice: a duration, "tomorrow" (09:00
// in the tenant's zone) or "end".
func (s *Server) formSnooze(ctx context.Context, choice, tenant string) (time.Time, error) {
	switch choice {
	case "end":
		return time.Time{}, nil
	case "tomorrow":
		loc := s.tenantZone(ctx, tenant)
		now := s.opts.Now().In(loc)
		y, m, d := now.AddDate(0, 0, 1).Date()
		return time.Date(y, m, d, 9, 0, 0, 0, loc), nil
	}
	return s.snoozeUntil(nil, &choice)
}

// handleAlarmForm does one action of the alarm page's forms and sends the
// browser back to the page (post, redirect, get).
func (s *Server) handleAlarmForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	id, action := r.PathValue("id"), r.PathValue("action")
	if !slices.Contains([]string{actAcknowledge, actAssign, actComment, actSnooze, actResolve}, action) {
		s.renderError(w, r, errNotFound)
		return
	}
	in := alarmInput{Assignee: r.PostFormValue("assignee"), Text: r.PostFormValue("text")}
	if action == actResolve {
		in.Text = r.PostFormValue("note")
	}
	done := action
	var err error
	if action == actSnooze {
		a, _, verr := s.visibleAlarm(r.Context(), id)
		if verr != nil {
			s.renderError(w, r, verr)
			return
		}
		choice := r.PostFormValue("for")
		if choice == "end" {
			done = "unsnooze"
		}
		in.Until, err = s.formSnooze(r.Context(), choice, a.Tenant)
	}
	if err == nil {
		_, err = s.alarmAction(r.Context(), id, action, in)
	}
	if err != nil {
		if status, msg, ok := s.actionRefused(err); ok && status != http.StatusNotFound {
			s.alarmPage(w, r, frame, status, "", refusedText(r.Context(), err, msg))
			return
		}
		s.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, "/alarms/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
}
