package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/audit"
	"github.com/posfleet/posfleet/web/pages/layout"
)

// AuditLog keeps the audit log (the journal's audit_log).
type AuditLog interface {
	AppendAudit(ctx context.Context, e posfleet.AuditEntry) error
	// AuditLog returns a page of the entries f selects, newest first, and
	// how many it selects in all.
	AuditLog(ctx context.Context, f posfleet.AuditFilter) ([]posfleet.AuditEntry, int, error)
}

// auditActions names the action of each mutating route (method and
// pattern as the mux matched them). A route missing here is still
// recorded, as action "request" with its pattern as the target.
var auditActions = map[string]string{
	"POST /logout": "sign_out",

	"POST /api/v1/terminals/{tenant}/{terminal}/commands": "command",
	"POST /terminals/{tenant}/{terminal}/commands":        "command",
	"POST /firmware/update":                               "firmware_bulk_update",
	"POST /api/v1/terminals/{tenant}/{terminal}/serviced": "visit",
	"POST /terminals/{tenant}/{terminal}/serviced":        "visit",
	"PUT /api/v1/policy":                                  "policy_change",
	"POST /firmware/policy":                               "policy_change",
	"PUT /api/v1/thresholds":                              "thresholds_change",
	"POST /admin/thresholds":                              "thresholds_change",
	"POST /api/v1/terminals/import":                       "import",

	"POST /api/v1/alarms/bulk": "alarm_bulk",
	"POST /alarms/bulk":        "alarm_bulk",
	"POST /campaigns/new":      "campaign_create",
	// POST /api/v1/alarms/{id}/<act> and /alarms/{id}/{action}: alarm_<act>
	// (auditAction).

	"POST /api/v1/channels":                    "channel_create",
	"POST /notifications/channels":             "channel_create",
	"PUT /api/v1/channels/{id}":                "channel_change",
	"POST /notifications/channels/{id}":        "channel_change",
	"DELETE /api/v1/channels/{id}":             "channel_delete",
	"POST /notifications/channels/{id}/delete": "channel_delete",
	"POST /api/v1/channels/{id}/test":          "channel_test",
	"POST /notifications/channels/{id}/test":   "channel_test",
	"POST /api/v1/routes":                      "route_create",
	"POST /notifications/routes":               "route_create",
	"PUT /api/v1/routes/{id}":                  "route_change",
	"POST /notifications/routes/{id}":          "route_change",
	"DELETE /api/v1/routes/{id}":               "route_delete",
	"POST /notifications/routes/{id}/delete":   "route_delete",
	"POST /api/v1/users":                       "user_create",
	"POST /admin/users":                        "user_create",
	"POST /api/v1/users/{name}/password":       "user_password",
	"POST /api/v1/users/{name}/disable":        "user_disable",
	"POST /api/v1/users/{name}/enable":         "user_enable",
	"DELETE /api/v1/users/{name}":              "user_delete",
	"POST /api/v1/tokens":                      "token_create",
	"POST /admin/tokens":                       "token_create",
	"DELETE /api/v1/tokens/{id}":               "token_revoke",
	"POST /admin/tokens/{id}/revoke":           "token_revoke",
	"POST /account":                            "preferences_change",
	"PUT /api/v1/me/preferences":               "preferences_change",
	"POST /account/tenant":                     "tenant_defaults_change",
	"PUT /api/v1/users/{name}/preferences":     "user_preferences",

	"POST /api/v1/campaigns":               "campaign_create",
	"POST /api/v1/campaigns/preview":       "campaign_preview",
	"POST /api/v1/campaigns/{id}/pause":    "campaign_pause",
	"POST /api/v1/campaigns/{id}/resume":   "campaign_resume",
	"POST /api/v1/campaigns/{id}/abort":    "campaign_abort",
	"POST /api/v1/campaigns/{id}/rollback": "campaign_rollback",
}

// auditAction is the action name of a matched request.
func auditAction(r *http.Request) string {
	if a, ok := auditActions[r.Pattern]; ok {
		return a
	}
	switch {
	case strings.HasPrefix(r.Pattern, "POST /api/v1/alarms/{id}/"):
		return "alarm_" + strings.TrimPrefix(r.Pattern, "POST /api/v1/alarms/{id}/")
	case r.Pattern == "POST /alarms/{id}/{action}":
		return "alarm_" + r.PathValue("action")
	case r.Pattern == "POST /campaigns/{id}/{action}":
		return "campaign_" + r.PathValue("action")
	case r.Pattern == "POST /admin/users/{name}/{action}":
		return "user_" + r.PathValue("action")
	}
	return "request"
}

// auditDetailKeys are the request fields an entry's detail may carry:
// what was asked for, never a secret (password, token, a channel's URL
// or secret, the CSRF token) and never a whole body (a policy's YAML).
var auditDetailKeys = []string{"type", "target", "model", "firmware", "note", "text", "tenant", "name",
	"description", "role", "roles", "scopes", "regions", "action", "assignee", "id", "ids", "for",
	"enabled", "language", "time_zone", "channel", "kinds", "urgent_only", "confirm"}

// Bounds of what one entry keeps of a request.
const (
	auditBodyMax   = 64 << 10
	auditValueMax  = 200
	auditDetailMax = 2000
)

// auditSlot travels in a mutating request's context: the wrappers fill in
// who is asking once they know; handlers (and the adapters they call)
// add details with NoteAudit.
type auditSlot struct {
	mu        sync.Mutex
	principal *posfleet.Principal
	notes     map[string]any
}

type auditKey struct{}

// NoteAudit adds key=value to the detail of the audit entry of the
// request ctx belongs to (for what only the handler's callee knows, such
// as the policy version it stored); without one it does nothing. Never a
// secret.
func NoteAudit(ctx context.Context, key string, value any) {
	a, ok := ctx.Value(auditKey{}).(*auditSlot)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.notes == nil {
		a.notes = map[string]any{}
	}
	a.notes[key] = value
}

// notePrincipal tells the request's audit slot who is asking.
func notePrincipal(r *http.Request) {
	a, ok := r.Context().Value(auditKey{}).(*auditSlot)
	if !ok {
		return
	}
	if p, ok := PrincipalFrom(r.Context()); ok {
		a.mu.Lock()
		a.principal = &p
		a.mu.Unlock()
	}
}

// auditWriter remembers the status of the answer (never its body: an
// import's answer holds the new terminals' secrets).
type auditWriter struct {
	http.ResponseWriter
	status int
}

func (w *auditWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// teeBody keeps the first auditBodyMax bytes a handler reads.
type teeBody struct {
	io.ReadCloser
	buf bytes.Buffer
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if room := auditBodyMax - t.buf.Len(); room > 0 {
		t.buf.Write(p[:min(n, room)])
	}
	return n, err
}

// mutating reports whether r may change something: what the audit log
// records.
func mutating(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
}

// serveAudited serves a mutating request and appends its audit entry:
// once per request, whoever handled it, when an authenticated principal
// made it (the wrappers call notePrincipal). Sign-in is recorded by
// handleSignIn itself.
//
// The entry is written after the handler, so that it says how the
// request ended. A failed write is logged at error level with the whole
// entry and the answer stands: the action happened, and failing its
// request would make the client retry an action that was done (a second
// firmware update). See README "Audit log".
func (s *Server) serveAudited(w http.ResponseWriter, r *http.Request) {
	slot := &auditSlot{}
	body := &teeBody{ReadCloser: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	r = r.WithContext(context.WithValue(r.Context(), auditKey{}, slot))
	aw := &auditWriter{ResponseWriter: w}
	s.mux.ServeHTTP(aw, r)
	slot.mu.Lock()
	p, notes := slot.principal, slot.notes
	slot.mu.Unlock()
	if p == nil || r.Pattern == "POST /login" {
		return
	}
	if room := auditBodyMax - body.buf.Len(); room > 0 && r.Body == body {
		// A refused request's handler may not have read what it asked
		// for; the entry says it anyway.
		io.CopyN(&body.buf, body.ReadCloser, int64(room))
	}
	e := posfleet.AuditEntry{At: s.opts.Now(), Actor: p.Name, ActorKind: posfleet.ActorUser, Action: auditAction(r),
		Remote: clientAddress(r), Outcome: auditOutcome(aw.status)}
	if p.Token {
		e.ActorKind = posfleet.ActorToken
	}
	fields := auditFields(r, body.buf.Bytes())
	e.Tenant, e.Target = auditTenantTarget(r, *p, fields)
	if e.Action == "request" {
		e.Target = r.Method + " " + r.URL.Path
	}
	if loc := aw.Header().Get("Location"); e.Action == "firmware_bulk_update" && loc != "" {
		// The bulk update's counts are in its redirect.
		if u, err := url.Parse(loc); err == nil {
			for _, k := range []string{"sent", "failed"} {
				if v := u.Query().Get(k); v != "" {
					fields[k] = v
				}
			}
		}
	}
	if e.Action == "import" {
		// The body is CSV (with secrets, maybe): its size only.
		fields["bytes"] = r.ContentLength
		if body.buf.Len() < auditBodyMax {
			fields["lines"] = bytes.Count(body.buf.Bytes(), []byte("\n"))
		}
	}
	if strings.HasPrefix(e.Action, "alarm_") && e.Tenant == "" && e.Target != "" && s.opts.Alarms != nil {
		// An administrator's action on one alarm: its ID does not name the
		// tenant, the alarm does (for the tenant's own view of the log).
		if al, _, err := s.opts.Alarms.Alarm(r.Context(), e.Target); err == nil {
			e.Tenant = al.Tenant
		}
	}
	for k, v := range notes {
		fields[k] = v
	}
	if step, _ := notes["step"].(string); r.Pattern == "POST /campaigns/new" && step != "create" {
		e.Action = "campaign_preview" // the form's first step creates nothing
	}
	e.Detail = auditDetail(fields)
	s.appendAudit(r.Context(), e)
}

// appendAudit writes e, logging it in full when it cannot.
func (s *Server) appendAudit(ctx context.Context, e posfleet.AuditEntry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.opts.Audit.AppendAudit(ctx, e); err != nil {
		s.log.Error("audit entry not written", "err", err, "actor", e.Actor, "actor_kind", e.ActorKind, "tenant", e.Tenant,
			"action", e.Action, "target", e.Target, "detail", e.Detail, "remote", e.Remote, "outcome", e.Outcome)
	}
}

// auditSignIn records a sign-in, or a failed one (outcome: its kind).
func (s *Server) auditSignIn(r *http.Request, name string, p posfleet.Principal, outcome string) {
	if s.opts.Audit == nil {
		return
	}
	e := posfleet.AuditEntry{At: s.opts.Now(), Actor: posfleet.Redact(name), ActorKind: posfleet.ActorUser, Action: "sign_in",
		Target: posfleet.Redact(name), Remote: clientAddress(r), Outcome: outcome}
	if outcome != posfleet.AuditOK {
		e.Action = "sign_in_failed"
	} else if !p.Admin() {
		e.Tenant = p.Tenant
	}
	s.appendAudit(r.Context(), e)
}

// auditOutcome is "ok" for a success or a redirect, the error code of the
// status otherwise (errorStatuses).
func auditOutcome(status int) string {
	if status == 0 || status < 400 {
		return posfleet.AuditOK
	}
	for _, st := range errorStatuses {
		if st.Status == status {
			return st.Code
		}
	}
	return "status_" + strconv.Itoa(status)
}

// auditFields are the fields of r's body that auditDetailKeys allow, as
// strings or lists of strings, redacted: a JSON object's or a form's.
func auditFields(r *http.Request, body []byte) map[string]any {
	out := map[string]any{}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case ct != "application/x-www-form-urlencoded":
		// JSON, whether the client said so or not (the API reads it either
		// way); another body (a policy's YAML, an import's CSV) gives none.
		var m map[string]any
		if json.Unmarshal(body, &m) != nil {
			return out
		}
		for k, v := range m {
			if !slices.Contains(auditDetailKeys, k) {
				continue
			}
			switch v := v.(type) {
			case string:
				out[k] = auditValue(v)
			case bool, float64:
				out[k] = v
			case []any:
				l := []string{}
				for _, x := range v {
					if s, ok := x.(string); ok {
						l = append(l, auditValue(s))
					}
				}
				out[k] = l
			}
		}
	default:
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return out
		}
		for k, vs := range q {
			if !slices.Contains(auditDetailKeys, k) || len(vs) == 0 {
				continue
			}
			if len(vs) == 1 {
				out[k] = auditValue(vs[0])
				continue
			}
			l := make([]string, len(vs))
			for i, v := range vs {
				l[i] = auditValue(v)
			}
			out[k] = l
		}
	}
	return out
}

// auditValue is a user-supplied value as an entry keeps it: redacted,
// trimmed, bounded.
func auditValue(v string) string {
	v = posfleet.Redact(strings.TrimSpace(v))
	if len(v) > auditValueMax {
		r := []rune(v[:auditValueMax])
		v = string(r[:len(r)-1]) + "…" // the cut may split a character
	}
	return v
}

// auditTenantTarget is the tenant an action concerned and what it acted
// on: the terminal of the path, else the user, channel, route, alarm or
// token of the path, else the name in the body.
func auditTenantTarget(r *http.Request, p posfleet.Principal, fields map[string]any) (tenant, target string) {
	if t, ok := fields["tenant"].(string); ok {
		tenant = t
	}
	if t := r.PathValue("tenant"); t != "" {
		tenant = t
	}
	if tenant == "" && !p.Admin() {
		// A tenant's principal acts within its tenant (an alarm's ID does
		// not name it).
		tenant = p.Tenant
	}
	switch {
	case r.PathValue("terminal") != "":
		target = posfleet.TerminalRef{Tenant: r.PathValue("tenant"), Terminal: r.PathValue("terminal")}.String()
	case r.PathValue("name") != "":
		target = r.PathValue("name")
	case r.PathValue("id") != "":
		target = r.PathValue("id")
	default:
		if n, ok := fields["name"].(string); ok {
			target = n
		}
	}
	return tenant, target
}

// auditDetail is fields as a JSON object, "" for none, bounded.
func auditDetail(fields map[string]any) string {
	if len(fields) == 0 {
		return ""
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(fields)
	d := strings.TrimSpace(b.String())
	if len(d) > auditDetailMax {
		r := []rune(d[:auditDetailMax])
		d = string(r[:len(r)-1]) + "…"
	}
	return d
}

// auditPageSize is how many entries a page of /audit shows.
const auditPageSize = 50

// auditCSVMax bounds one CSV export: a year of a busy fleet's actions is
// exported a few months at a time.
const auditCSVMax = 100_000

// mountAudit adds the audit log's page, its CSV export and its API.
func (s *Server) mountAudit() {
	s.mux.HandleFunc("GET /audit", s.page(s.handleAuditPage))
	s.mux.HandleFunc("GET /audit.csv", s.page(s.handleAuditCSV))
	s.mux.HandleFunc("GET /api/v1/audit", s.api(s.handleAuditAPI))
}

// auditFilter reads the filters of a request (actor, action, tenant, from,
// to: a date, a day in zone, or an RFC 3339 time; to's date counts whole)
// for principal p. Administrators read the whole audit log, a tenant
// administrator its tenant's entries.
func auditFilter(r *http.Request, p posfleet.Principal, zone *time.Location) (posfleet.AuditFilter, error) {
	// A tenant administrator reads its own tenant's entries only.
	if !p.Admin() && p.EffectiveRole() != posfleet.RoleTenantAdmin {
		return posfleet.AuditFilter{}, errAdminOnly
	}
	q := r.URL.Query()
	f := posfleet.AuditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")), Tenant: strings.TrimSpace(q.Get("tenant"))}
	if !p.Admin() {
		f.Tenant = p.Tenant
	}
	var err error
	if f.From, err = auditTime(q.Get("from"), false, zone); err != nil {
		return f, badRequest(locale.T(r.Context(), "audit.bad_from"))
	}
	if f.To, err = auditTime(q.Get("to"), true, zone); err != nil {
		return f, badRequest(locale.T(r.Context(), "audit.bad_to"))
	}
	return f, nil
}

// auditTime parses a filter's time: a date is its midnight in zone (the
// reader's on the page, UTC in the API), or the next one for the end of a
// range (to=2026-12-03 includes that day).
func auditTime(v string, end bool, zone *time.Location) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, zone); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	return time.Parse(time.RFC3339, v)
}

func (s *Server) handleAuditAPI(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	f, err := auditFilter(r, p, time.UTC)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 1000 {
			writeError(w, s.log, badRequest("limit: want 1..1000"))
			return
		}
	}
	if v := q.Get("offset"); v != "" {
		if f.Offset, err = strconv.Atoi(v); err != nil || f.Offset < 0 {
			writeError(w, s.log, badRequest("offset: want 0 or more"))
			return
		}
	}
	es, total, err := s.opts.Audit.AuditLog(r.Context(), f)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es, "total": total})
}

func (s *Server) handleAuditPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	p, _ := PrincipalFrom(r.Context())
	f, err := auditFilter(r, p, locale.From(r.Context()).Zone)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	f.Limit, f.Offset = auditPageSize, (page-1)*auditPageSize
	es, total, err := s.opts.Audit.AuditLog(r.Context(), f)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	frame.Title = locale.T(r.Context(), "nav.audit")
	q := r.URL.Query()
	q.Del("page")
	v := audit.View{Frame: frame, Entries: es, Total: total, Page: page, PageSize: auditPageSize,
		Actor: q.Get("actor"), Action: q.Get("action"), Tenant: q.Get("tenant"), From: q.Get("from"), To: q.Get("to"), Query: q.Encode()}
	s.render(w, r, http.StatusOK, audit.Page(v))
}

// auditCSVColumns are the CSV export's columns (their header in the
// reader's language: audit.csv.<column>).
var auditCSVColumns = []string{"time", "actor", "actor_kind", "tenant", "action", "target", "detail", "remote", "outcome", "id_"}

// handleAuditCSV exports the entries the filters select, newest first, as
// CSV in UTF-8 with a byte-order mark, so that spreadsheets read Chinese
// names as such. The header row is in the reader's language; the cells
// stay machine-readable: times in RFC 3339 UTC, actions and outcomes as
// their codes.
func (s *Server) handleAuditCSV(w http.ResponseWriter, r *http.Request, _ layout.Page) {
	p, _ := PrincipalFrom(r.Context())
	f, err := auditFilter(r, p, locale.From(r.Context()).Zone)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	const chunk = 5000
	f.Limit = chunk
	es, _, err := s.opts.Audit.AuditLog(r.Context(), f)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="posfleet-audit.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, "\uFEFF")
	cw := csv.NewWriter(w)
	header := make([]string, len(auditCSVColumns))
	for i, c := range auditCSVColumns {
		header[i] = locale.T(r.Context(), "audit.csv."+c)
	}
	cw.Write(header)
	for n := 0; ; {
		for _, e := range es {
			cw.Write([]string{e.At.UTC().Format(time.RFC3339Nano), csvSafe(e.Actor), e.ActorKind, csvSafe(e.Tenant), e.Action,
				csvSafe(e.Target), csvSafe(e.Detail), e.Remote, e.Outcome, e.ID})
		}
		n += len(es)
		if len(es) < chunk || n >= auditCSVMax {
			break
		}
		f.Offset = n
		if es, _, err = s.opts.Audit.AuditLog(r.Context(), f); err != nil {
			// The header went out: the export ends short, and says so.
			s.log.Error("audit export cut short", "err", err)
			cw.Write([]string{locale.T(r.Context(), "audit.csv_cut_short")})
			break
		}
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from reading a user-supplied cell as a
// formula (OWASP CSV injection).
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
