package healthview

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/web"
)

// Reader is the health view as a web replica without a health engine
// reads it: web.Health and web.Queries over the tables Publish writes.
// Lists, filters, counts and pages are SQL queries on their indexes; a
// terminal's full health is decoded only for the rows a page shows.
//
// web.Health's methods return no error: a failed read is logged and
// answered as nothing found. The Queries methods return theirs.
type Reader struct {
	db  *store.DB
	log *slog.Logger
	// Timeout bounds each query of a web.Health method (they have no context).
	Timeout time.Duration
	// PolicyTTL is how long the newest policy version is kept parsed.
	PolicyTTL time.Duration
	// Now is the clock of the visits MarkServiced records without a time.
	Now func() time.Time

	mu    sync.Mutex
	pol   *health.Policy
	polAt time.Time
}

var (
	_ web.Health  = (*Reader)(nil)
	_ web.Queries = (*Reader)(nil)
)

// NewReader returns a Reader over db; log may be nil.
func NewReader(db *store.DB, log *slog.Logger) *Reader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reader{db: db, log: log.With("component", "healthview"), Timeout: 10 * time.Second,
		PolicyTTL: 2 * time.Second, Now: time.Now}
}

func (r *Reader) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.Timeout)
}

// query builds a statement's WHERE clause and its $n arguments.
type query struct {
	conds []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return fmt.Sprintf("$%d", len(q.args))
}

// where adds a condition; each %s of cond takes the placeholder of the next of args.
func (q *query) where(cond string, args ...any) {
	ph := make([]any, len(args))
	for i, a := range args {
		ph[i] = q.arg(a)
	}
	q.conds = append(q.conds, fmt.Sprintf(cond, ph...))
}

func (q *query) clause() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}

// tenant restricts col to tenant unless it is "" (every tenant).
func (q *query) tenant(col, tenant string) {
	if tenant != "" {
		q.where(col+" = %s", tenant)
	}
}

// jsonText is the SQL of the text at key path of a JSON column, "" when absent.
func (r *Reader) jsonText(col string, path ...string) string {
	if r.db.Dialect == store.Postgres {
		e := col + "::json"
		for i, p := range path {
			op := "->"
			if i == len(path)-1 {
				op = "->>"
			}
			e += op + "'" + p + "'"
		}
		return "COALESCE(" + e + ", '')"
	}
	return "COALESCE(json_extract(" + col + ", '$." + strings.Join(path, ".") + "'), '')"
}

// FleetSummary returns the published summary of tenant's fleet ("" for
// every tenant), or an empty one before the first publication.
func (r *Reader) FleetSummary(tenant string) health.FleetSummary {
	ctx, cancel := r.ctx()
	defer cancel()
	fs := health.FleetSummary{Flagged: map[posfleet.FlagName]int{}, Models: map[string]map[string]int{},
		Causes: map[posfleet.Cause]int64{}, OpenIncidents: []health.Incident{}}
	for _, c := range posfleet.Causes {
		fs.Causes[c] = 0
	}
	var body string
	err := r.db.QueryRowContext(ctx, `SELECT body FROM fleet_views WHERE tenant = $1 AND view = 'summary'`, tenant).Scan(&body)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		r.log.Error("fleet summary", "tenant", tenant, "err", err)
	default:
		if err := json.Unmarshal([]byte(body), &fs); err != nil {
			r.log.Error("fleet summary: decoding", "tenant", tenant, "err", err)
		}
	}
	if fs.SuspectFirmware == nil {
		// Published as a view of its own.
		err := r.db.QueryRowContext(ctx, `SELECT body FROM fleet_views WHERE tenant = $1 AND view = 'suspect_firmware'`, tenant).Scan(&body)
		if err == nil {
			if err := json.Unmarshal([]byte(body), &fs.SuspectFirmware); err != nil {
				r.log.Error("suspect firmware: decoding", "tenant", tenant, "err", err)
			}
		} else if !errors.Is(err, sql.ErrNoRows) {
			r.log.Error("suspect firmware", "tenant", tenant, "err", err)
		}
	}
	return fs
}

// SuspectFirmware returns the published suspect-firmware findings of tenant.
func (r *Reader) SuspectFirmware(tenant string) []health.FirmwareFinding {
	return r.FleetSummary(tenant).SuspectFirmware
}

// rowColumns are what a health.Row is made of.
const rowColumns = `s.tenant, s.terminal, s.online, s.never_connected, s.last_seen_ms, s.model, s.firmware, s.serial, s.merchant, s.flags`

func scanRow(rows *sql.Rows) (health.Row, error) {
	var (
		row   health.Row
		last  int64
		flags string
	)
	if err := rows.Scan(&row.Ref.Tenant, &row.Ref.Terminal, &row.Online, &row.NeverConnected, &last,
		&row.Model, &row.Firmware, &row.Serial, &row.Merchant, &flags); err != nil {
		return row, err
	}
	if row.NeverConnected {
		// As the engine lists it: nothing reported yet.
		return health.Row{Ref: row.Ref, NeverConnected: true}, nil
	}
	row.LastSeen = store.Time(last)
	if flags != "" {
		for _, f := range strings.Split(flags, ",") {
			row.Flags = append(row.Flags, posfleet.FlagName(f))
		}
	}
	return row, nil
}

// Rows returns every terminal of tenant ("" for all) with flag raised (any
// terminal for "", the never-connected ones included), by tenant and
// terminal. The pages ask TerminalsPage instead, which reads one page.
func (r *Reader) Rows(tenant string, flag posfleet.FlagName) []health.Row {
	ctx, cancel := r.ctx()
	defer cancel()
	var q query
	from := `terminal_state s`
	if flag != "" {
		from = `terminal_flags f JOIN terminal_state s ON s.tenant = f.tenant AND s.terminal = f.terminal`
		q.tenant("f.tenant", tenant)
		q.where("f.flag = %s", string(flag))
	} else {
		q.tenant("s.tenant", tenant)
	}
	rows, err := r.db.QueryContext(ctx, `SELECT `+rowColumns+` FROM `+from+q.clause()+` ORDER BY s.tenant, s.terminal`, q.args...)
	if err != nil {
		r.log.Error("terminal rows", "err", err)
		return nil
	}
	defer rows.Close()
	var out []health.Row
	for rows.Next() {
		row, err := scanRow(rows)
		if err != nil {
			r.log.Error("terminal rows", "err", err)
			return nil
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		r.log.Error("terminal rows", "err", err)
	}
	return out
}

// decodeHealth decodes a published health.TerminalHealth.
func decodeHealth(tenant, terminal, body string) (health.TerminalHealth, error) {
	var h health.TerminalHealth
	if body != "" {
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			return h, fmt.Errorf("healthview: health of %s:%s: %w", tenant, terminal, err)
		}
	}
	h.Ref = posfleet.TerminalRef{Tenant: tenant, Terminal: terminal}
	h.Tenant, h.Terminal = tenant, terminal
	return h, nil
}

// Terminal returns the published health of ref; false for a terminal
// never heard from (unknown, or provisioned and never connected).
func (r *Reader) Terminal(ref posfleet.TerminalRef) (health.TerminalHealth, bool) {
	ctx, cancel := r.ctx()
	defer cancel()
	var (
		body  string
		never bool
	)
	err := r.db.QueryRowContext(ctx, `SELECT health, never_connected FROM terminal_state WHERE tenant = $1 AND terminal = $2`,
		ref.Tenant, ref.Terminal).Scan(&body, &never)
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			r.log.Error("terminal", "terminal", ref.String(), "err", err)
		}
		return health.TerminalHealth{}, false
	}
	if never {
		return health.TerminalHealth{}, false
	}
	h, err := decodeHealth(ref.Tenant, ref.Terminal, body)
	if err != nil {
		r.log.Error("terminal", "terminal", ref.String(), "err", err)
		return health.TerminalHealth{}, false
	}
	return h, true
}

// site is a terminal's site from its published health, its merchant and
// region columns filling what that lacks.
func site(h health.TerminalHealth, merchant, region string) health.Site {
	st := h.Site
	if st.Merchant == "" {
		st.Merchant = merchant
	}
	if st.Region == "" {
		st.Region = region
	}
	return st
}

// Site returns where a published terminal stands.
func (r *Reader) Site(ref posfleet.TerminalRef) (health.Site, bool) {
	ctx, cancel := r.ctx()
	defer cancel()
	var body, merchant, region string
	err := r.db.QueryRowContext(ctx, `SELECT health, merchant, region FROM terminal_state WHERE tenant = $1 AND terminal = $2`,
		ref.Tenant, ref.Terminal).Scan(&body, &merchant, &region)
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			r.log.Error("site", "terminal", ref.String(), "err", err)
		}
		return health.Site{}, false
	}
	h, err := decodeHealth(ref.Tenant, ref.Terminal, body)
	if err != nil {
		r.log.Error("site", "terminal", ref.String(), "err", err)
	}
	return site(h, merchant, region), true
}

// likePattern is a LIKE pattern matching text that contains s.
func likePattern(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
	return "%" + s + "%"
}

// flagCount is the SQL of how many flags a terminal_state row has raised.
const flagCount = `(CASE WHEN s.flags = '' THEN 0 ELSE LENGTH(s.flags) - LENGTH(REPLACE(s.flags, ',', '')) + 1 END)`

// TerminalsPage is web.Queries' terminal list in SQL: the flag filter
// walks terminal_flags' index of (tenant, flag, terminal), the others the
// columns of terminal_state; COUNT gives the total, LIMIT and OFFSET the
// page, and only the page's health is decoded.
func (r *Reader) TerminalsPage(ctx context.Context, tenant string, f web.TerminalFilter, order string) (int, []web.ListedTerminal, error) {
	var q query
	from := `terminal_state s`
	key := "s"
	if f.Flag != "" {
		from = `terminal_flags f JOIN terminal_state s ON s.tenant = f.tenant AND s.terminal = f.terminal`
		key = "f"
		q.tenant("f.tenant", tenant)
		q.where("f.flag = %s", string(f.Flag))
		if f.Kind != "" && f.Flag.Kind() != f.Kind {
			return 0, []web.ListedTerminal{}, nil // a flag of another kind
		}
	} else if f.Kind != "" {
		from, key = kindFrom(&q, tenant, f.Kind)
	} else {
		q.tenant("s.tenant", tenant)
	}
	flagConds := len(q.conds)
	// As web.TerminalFilter's match: a terminal that never connected has
	// no model, firmware or online state.
	if f.Model != "" {
		r.modelFilter(ctx, &q, tenant, f.Model)
	}
	if f.Firmware != "" {
		q.where("NOT s.never_connected AND s.firmware = %s", f.Firmware)
	}
	if f.Online != nil {
		q.where("NOT s.never_connected AND s.online = %s", *f.Online)
	}
	switch f.State {
	case web.StateOnline:
		q.where("s.online AND NOT s.never_connected")
	case web.StateOffline:
		q.where("NOT s.online AND NOT s.never_connected")
	case web.StateNeverConnected:
		q.where("s.never_connected")
	}
	if f.Region != "" {
		q.where("LOWER(s.region) = LOWER(%s)", f.Region)
	}
	if f.Q != "" {
		// The text web.TerminalFilter searches: tenant, terminal, merchant,
		// the site's merchant and name, serial.
		hay := `s.tenant || ' ' || s.terminal || ' ' || s.merchant || ' ' || ` + r.jsonText("s.health", "site", "merchant") +
			` || ' ' || ` + r.jsonText("s.health", "site", "site") + ` || ' ' || s.serial`
		q.where("LOWER("+hay+`) LIKE %s ESCAPE '\'`, likePattern(strings.ToLower(f.Q)))
	}
	total, ok := r.publishedCount(ctx, tenant, f)
	if !ok {
		count := `SELECT COUNT(*) FROM ` + from
		if f.Flag != "" && len(q.conds) == flagConds {
			// Only the flag's conditions: its index alone, no join.
			count = `SELECT COUNT(*) FROM terminal_flags f`
		}
		if err := r.db.QueryRowContext(ctx, count+q.clause(), q.args...).Scan(&total); err != nil {
			return 0, nil, fmt.Errorf("healthview: counting terminals: %w", err)
		}
	}
	offset := (f.Page - 1) * f.PerPage
	if total == 0 || offset >= total {
		return total, []web.ListedTerminal{}, nil
	}
	by := r.orderBy(key, order)
	out, err := r.pageOf(ctx, from, key, q, by, f.PerPage, offset)
	if err != nil {
		return 0, nil, err
	}
	return total, out, nil
}

// publishedCount is the number of terminals of the list when the fleet
// summary has it: the whole list, or the terminals online, offline or
// never connected. Counting rows would read the whole table (PostgreSQL
// counts on the heap: 70 ms at 100,000 terminals, ten times that at a
// million); the summary is published with the rows.
func (r *Reader) publishedCount(ctx context.Context, tenant string, f web.TerminalFilter) (int, bool) {
	if f.Flag != "" || f.Kind != "" || f.Model != "" || f.Firmware != "" || f.Region != "" || f.Q != "" || f.Online != nil && f.State != "" {
		return 0, false
	}
	var body string
	if err := r.db.QueryRowContext(ctx, `SELECT body FROM fleet_views WHERE tenant = $1 AND view = 'summary'`, tenant).Scan(&body); err != nil {
		return 0, false
	}
	var fs struct {
		Total, Online, Offline int
		NeverConnected         int `json:"never_connected"`
	}
	if err := json.Unmarshal([]byte(body), &fs); err != nil {
		return 0, false
	}
	switch {
	case f.State == web.StateOnline, f.Online != nil && *f.Online:
		return fs.Online, true
	case f.State == web.StateOffline, f.Online != nil:
		return fs.Offline, true
	case f.State == web.StateNeverConnected:
		return fs.NeverConnected, true
	}
	return fs.Total, true
}

// CountFlagged counts the terminals of tenant with any of flags, on
// terminal_flags' index.
func (r *Reader) CountFlagged(ctx context.Context, tenant string, flags []posfleet.FlagName) (int, error) {
	if len(flags) == 0 {
		return 0, nil
	}
	var q query
	q.tenant("tenant", tenant)
	in := make([]string, len(flags))
	for i, f := range flags {
		in[i] = q.arg(string(f))
	}
	q.conds = append(q.conds, "flag IN ("+strings.Join(in, ", ")+")")
	var n int
	err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT DISTINCT tenant, terminal FROM terminal_flags`+q.clause()+`) x`, q.args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("healthview: counting flagged terminals: %w", err)
	}
	return n, nil
}

// workOrder is the engine's order of the work list (health.Engine.WorkList):
// priority, region, site, tenant, terminal.
func (r *Reader) workOrder() string {
	return `work_priority, ` + r.jsonText("work", "region") + `, ` + r.jsonText("work", "site") + `, tenant, terminal`
}

// WorkPage is web.Queries' work list: the terminals with a work priority,
// on terminal_state's index of (tenant, work_priority).
func (r *Reader) WorkPage(ctx context.Context, tenant string, offset, limit int) (int, []health.WorkItem, error) {
	var q query
	q.tenant("tenant", tenant)
	q.where("work_priority > 0")
	var total int
	if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM terminal_state`+q.clause(), q.args...).Scan(&total); err != nil {
		return 0, nil, fmt.Errorf("healthview: counting the work list: %w", err)
	}
	if limit <= 0 || offset >= total {
		return total, nil, nil
	}
	items, err := r.workItems(ctx, q, ` LIMIT `+q.arg(limit)+` OFFSET `+q.arg(offset))
	return total, items, err
}

func (r *Reader) workItems(ctx context.Context, q query, limit string) ([]health.WorkItem, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT tenant, terminal, work FROM terminal_state`+q.clause()+` ORDER BY `+r.workOrder()+limit, q.args...)
	if err != nil {
		return nil, fmt.Errorf("healthview: work list: %w", err)
	}
	return scanWorkItems(rows, "work list")
}

// scanWorkItems reads rows of (tenant, terminal, work) into work items and
// closes them; what names the query in errors.
func scanWorkItems(rows *sql.Rows, what string) ([]health.WorkItem, error) {
	defer rows.Close()
	var out []health.WorkItem
	for rows.Next() {
		var tn, id, body string
		if err := rows.Scan(&tn, &id, &body); err != nil {
			return nil, fmt.Errorf("healthview: %s: %w", what, err)
		}
		var it health.WorkItem
		if err := json.Unmarshal([]byte(body), &it); err != nil {
			return nil, fmt.Errorf("healthview: work item of %s:%s: %w", tn, id, err)
		}
		it.Ref = posfleet.TerminalRef{Tenant: tn, Terminal: id}
		out = append(out, it)
	}
	return out, rows.Err()
}

// WorkList returns the whole published work list of tenant ("" for all),
// in the engine's order.
func (r *Reader) WorkList(tenant string) []health.WorkItem {
	ctx, cancel := r.ctx()
	defer cancel()
	var q query
	q.tenant("tenant", tenant)
	q.where("work_priority > 0")
	items, err := r.workItems(ctx, q, "")
	if err != nil {
		r.log.Error("work list", "tenant", tenant, "err", err)
	}
	return items
}

// Incidents returns the published incidents of tenant ("" for all), open
// ones first, then newest first, as the engine does.
func (r *Reader) Incidents(tenant string) []health.Incident {
	ctx, cancel := r.ctx()
	defer cancel()
	var q query
	q.tenant("tenant", tenant)
	rows, err := r.db.QueryContext(ctx, `SELECT body FROM incidents`+q.clause()+` ORDER BY open DESC, start_ms DESC, id LIMIT 1000`, q.args...)
	if err != nil {
		r.log.Error("incidents", "tenant", tenant, "err", err)
		return nil
	}
	defer rows.Close()
	var out []health.Incident
	for rows.Next() {
		var body string
		var inc health.Incident
		if err := rows.Scan(&body); err == nil {
			err = json.Unmarshal([]byte(body), &inc)
		}
		if err != nil {
			r.log.Error("incidents", "tenant", tenant, "err", err)
			return out
		}
		out = append(out, inc)
	}
	if err := rows.Err(); err != nil {
		r.log.Error("incidents", "tenant", tenant, "err", err)
	}
	return out
}

// MarkServiced records a crew visit for the health engine to apply: a
// pending row of service_visits (applied_ms 0), which the holder of the
// health lease applies and publishes. It returns the flags the visit
// clears, the terminal's raised maintenance flags as published.
func (r *Reader) MarkServiced(ref posfleet.TerminalRef, note, by string, at time.Time) ([]posfleet.FlagName, error) {
	if err := posfleet.ValidateNote(note); err != nil {
		return nil, fmt.Errorf("mark %s serviced: %w", ref, err)
	}
	if at.IsZero() {
		at = r.Now()
	}
	ctx, cancel := r.ctx()
	defer cancel()
	var never bool
	err := r.db.QueryRowContext(ctx, `SELECT never_connected FROM terminal_state WHERE tenant = $1 AND terminal = $2`,
		ref.Tenant, ref.Terminal).Scan(&never)
	if errors.Is(err, sql.ErrNoRows) || err == nil && never {
		return nil, fmt.Errorf("mark %s serviced: %w", ref, health.ErrUnknownTerminal)
	}
	if err != nil {
		return nil, fmt.Errorf("mark %s serviced: %w", ref, err)
	}
	rows, err := r.db.QueryContext(ctx, `SELECT flag FROM terminal_flags WHERE tenant = $1 AND terminal = $2`, ref.Tenant, ref.Terminal)
	if err != nil {
		return nil, fmt.Errorf("mark %s serviced: %w", ref, err)
	}
	raised := map[posfleet.FlagName]bool{}
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return nil, fmt.Errorf("mark %s serviced: %w", ref, err)
		}
		raised[posfleet.FlagName(f)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mark %s serviced: %w", ref, err)
	}
	cleared := []posfleet.FlagName{}
	for _, spec := range posfleet.FlagSpecs {
		if spec.Kind == posfleet.KindMaintenance && raised[spec.Name] {
			cleared = append(cleared, spec.Name)
		}
	}
	// Pending (no Applied time): the holder of the health lease applies it.
	if _, err := journal.AddVisit(ctx, r.db, journal.Visit{Terminal: ref, At: at, By: by, Note: note}); err != nil {
		return nil, fmt.Errorf("mark %s serviced: %w", ref, err)
	}
	return cleared, nil
}

// Policy returns the newest firmware policy version (empty when there is
// none), parsed at most every PolicyTTL.
func (r *Reader) Policy() *health.Policy {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pol == nil || time.Since(r.polAt) > r.PolicyTTL {
		pol, err := r.loadPolicy()
		if err != nil {
			r.log.Error("firmware policy", "err", err)
			if r.pol == nil {
				pol = &health.Policy{Models: map[string]health.ModelPolicy{}}
			} else {
				pol = r.pol // the last one read, until the database answers
			}
		}
		r.pol, r.polAt = pol, time.Now()
	}
	return copyPolicy(r.pol)
}

func (r *Reader) loadPolicy() (*health.Policy, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	v, ok, err := journal.LatestPolicy(ctx, r.db)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &health.Policy{Models: map[string]health.ModelPolicy{}}, nil
	}
	return health.ParsePolicy([]byte(v.Body))
}

// copyPolicy returns a copy the caller may change, as health.Engine.Policy does.
func copyPolicy(p *health.Policy) *health.Policy {
	c := &health.Policy{Models: make(map[string]health.ModelPolicy, len(p.Models))}
	for name, mp := range p.Models {
		mp.Blocked = append([]string(nil), mp.Blocked...)
		c.Models[name] = mp
	}
	return c
}

// SetPolicy checks data as the engine does (a *health.PolicyError names
// the line) and makes it this replica's policy at once. Storing it is the
// web's SavePolicy (journal.AddPolicy: the next version of the history),
// in every role; the health engine applies the new version from there.
func (r *Reader) SetPolicy(data []byte) error {
	pol, err := health.ParsePolicy(data)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.pol, r.polAt = pol, time.Now()
	r.mu.Unlock()
	return nil
}
