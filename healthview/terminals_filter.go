package healthview

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/web"
)

// The terminal list's filters and orders that web.TerminalFilter and
// web.TerminalOrder add to TerminalsPage: a flag kind, model and region
// regardless of case, sorting by any column of the list, and the fleet's
// models and regions the filters suggest.

var _ web.Chooser = (*Reader)(nil)

// kindFrom is the FROM of the terminals with any flag of kind k: each
// terminal once, from terminal_flags' index of (tenant, flag, terminal) as
// for one flag, joined to its state. Its alias is "f".
func kindFrom(q *query, tenant string, k posfleet.FlagKind) (from, key string) {
	var sub query
	sub.args = q.args // the subquery's placeholders come first
	sub.tenant("tenant", tenant)
	var in []string
	for _, f := range posfleet.FlagNames {
		if f.Kind() == k {
			in = append(in, sub.arg(string(f)))
		}
	}
	if len(in) == 0 {
		in = append(in, "''") // no flag of that kind: nothing
	}
	sub.conds = append(sub.conds, "flag IN ("+strings.Join(in, ", ")+")")
	q.args = sub.args
	return `(SELECT DISTINCT tenant, terminal FROM terminal_flags` + sub.clause() + `) f JOIN terminal_state s ON s.tenant = f.tenant AND s.terminal = f.terminal`, "f"
}

// modelFilter keeps the terminals of model, regardless of case: the
// fleet summary's models that match it, so that terminal_state's index of
// (tenant, model) still serves; LOWER on both sides before the first
// publication.
func (r *Reader) modelFilter(ctx context.Context, q *query, tenant, model string) {
	models, ok := r.summaryModels(ctx, tenant)
	if !ok {
		q.where("NOT s.never_connected AND LOWER(s.model) = LOWER(%s)", model)
		return
	}
	var in []string
	for _, m := range models {
		if strings.EqualFold(m, model) {
			in = append(in, q.arg(m))
		}
	}
	if len(in) == 0 {
		q.conds = append(q.conds, "1 = 0")
		return
	}
	q.conds = append(q.conds, "NOT s.never_connected AND s.model IN ("+strings.Join(in, ", ")+")")
}

// summaryModels are the models of tenant's published fleet summary;
// false before the first publication.
func (r *Reader) summaryModels(ctx context.Context, tenant string) ([]string, bool) {
	var body string
	if err := r.db.QueryRowContext(ctx, `SELECT body FROM fleet_views WHERE tenant = $1 AND view = 'summary'`, tenant).Scan(&body); err != nil {
		return nil, false
	}
	var fs struct {
		Models map[string]map[string]int `json:"models"`
	}
	if err := json.Unmarshal([]byte(body), &fs); err != nil {
		return nil, false
	}
	out := make([]string, 0, len(fs.Models))
	for m := range fs.Models {
		if m != "" {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out, true
}

// orderBy is the ORDER BY of the list in order (web.TerminalOrder), key
// the alias whose tenant and terminal break ties (ascending always, so
// that pages are stable). Text sorts bytewise, as Go compares strings
// (the engine's order): COLLATE "C" on PostgreSQL, whose databases may
// sort by a language's rules.
func (r *Reader) orderBy(key, order string) string {
	ties := key + ".tenant, " + key + ".terminal"
	col, desc := web.ParseTerminalOrder(order)
	dir := ""
	if desc {
		dir = " DESC"
	}
	text := func(c string) string {
		if r.db.Dialect == store.Postgres {
			return c + ` COLLATE "C"` + dir + ", " + ties
		}
		return c + dir + ", " + ties
	}
	switch col {
	case "terminal":
		if desc {
			return key + ".tenant DESC, " + key + ".terminal DESC"
		}
	case "merchant":
		return text("s.merchant")
	case "region":
		return text("s.region")
	case "model":
		return text("s.model")
	case "firmware":
		return text("s.firmware")
	case "last_seen":
		return "s.last_seen_ms" + dir + ", " + ties
	case "flags":
		return flagCount + dir + ", " + ties
	}
	return ties
}

// ListChoices returns the models of tenant's published fleet summary and
// the distinct regions of its terminals, for the list's suggestions.
func (r *Reader) ListChoices(ctx context.Context, tenant string) (web.ListChoices, error) {
	var lc web.ListChoices
	lc.Models, _ = r.summaryModels(ctx, tenant)
	var q query
	q.tenant("tenant", tenant)
	q.where("region <> %s", "")
	rows, err := r.db.QueryContext(ctx, `SELECT DISTINCT region FROM terminal_state`+q.clause(), q.args...)
	if err != nil {
		return lc, fmt.Errorf("healthview: regions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var reg string
		if err := rows.Scan(&reg); err != nil {
			return lc, fmt.Errorf("healthview: regions: %w", err)
		}
		lc.Regions = append(lc.Regions, reg)
	}
	if err := rows.Err(); err != nil {
		return lc, fmt.Errorf("healthview: regions: %w", err)
	}
	sort.Strings(lc.Regions)
	return lc, nil
}

// pageOf reads a page of the list in two steps: the page's terminals in
// order, sorting only their keys, then the health of those terminals. A
// sort that carried every row's health (kilobytes of JSON each) through
// SQLite's sorter took 400 ms at 100,000 terminals.
func (r *Reader) pageOf(ctx context.Context, from, key string, q query, by string, limit, offset int) ([]web.ListedTerminal, error) {
	stmt := `SELECT ` + key + `.tenant, ` + key + `.terminal FROM ` + from + q.clause() +
		` ORDER BY ` + by + ` LIMIT ` + q.arg(limit) + ` OFFSET ` + q.arg(offset)
	rows, err := r.db.QueryContext(ctx, stmt, q.args...)
	if err != nil {
		return nil, fmt.Errorf("healthview: listing terminals: %w", err)
	}
	var refs []posfleet.TerminalRef
	for rows.Next() {
		var ref posfleet.TerminalRef
		if err := rows.Scan(&ref.Tenant, &ref.Terminal); err != nil {
			rows.Close()
			return nil, fmt.Errorf("healthview: listing terminals: %w", err)
		}
		refs = append(refs, ref)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("healthview: listing terminals: %w", err)
	}
	out := make([]web.ListedTerminal, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	at := make(map[posfleet.TerminalRef]int, len(refs))
	var hq query
	ors := make([]string, len(refs))
	for i, ref := range refs {
		at[ref] = i
		ors[i] = "(tenant = " + hq.arg(ref.Tenant) + " AND terminal = " + hq.arg(ref.Terminal) + ")"
	}
	rows, err = r.db.QueryContext(ctx, `SELECT tenant, terminal, never_connected, health, merchant, region FROM terminal_state WHERE `+
		strings.Join(ors, " OR "), hq.args...)
	if err != nil {
		return nil, fmt.Errorf("healthview: listing terminals: %w", err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var (
			tn, id, body, merchant, region string
			never                          bool
		)
		if err := rows.Scan(&tn, &id, &never, &body, &merchant, &region); err != nil {
			return nil, fmt.Errorf("healthview: listing terminals: %w", err)
		}
		h, err := decodeHealth(tn, id, body)
		if err != nil {
			return nil, err
		}
		if never {
			h = health.TerminalHealth{Ref: h.Ref, Tenant: tn, Terminal: id, Site: site(h, merchant, region)}
		}
		i, ok := at[posfleet.TerminalRef{Tenant: tn, Terminal: id}]
		if ok {
			out[i] = web.ListedTerminal{TerminalHealth: h, NeverConnected: never}
			found++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("healthview: listing terminals: %w", err)
	}
	if found < len(refs) {
		// A terminal removed between the two reads (a new publication):
		// the page lists those still there.
		kept := out[:0]
		for _, lt := range out {
			if lt.Terminal != "" {
				kept = append(kept, lt)
			}
		}
		out = kept
	}
	return out, nil
}
