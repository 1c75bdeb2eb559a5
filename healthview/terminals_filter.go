package healthview

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/web"
)

// The terminal list's filters and orders that web.TerminalFilter and
// web.TerminalOrder add to TerminalsPage: a flag kind, model and region
// regardless of case, sorting by any column of the list, and the fleet's
// models and regions the filters suggest.

var _ web.Chooser = (*Reader)(nil)

// kindFilter keeps the terminals with any flag of kind k: one row per
// terminal (EXISTS, not a join), on terminal_flags' primary key.
func kindFilter(q *query, k posfleet.FlagKind) {
	if k == "" {
		return
	}
	var in []string
	for _, f := range posfleet.FlagNames {
		if f.Kind() == k {
			in = append(in, q.arg(string(f)))
		}
	}
	if len(in) == 0 {
		q.conds = append(q.conds, "1 = 0")
		return
	}
	q.conds = append(q.conds, `EXISTS (SELECT 1 FROM terminal_flags k WHERE k.tenant = s.tenant AND k.terminal = s.terminal AND k.flag IN (`+
		strings.Join(in, ", ")+`))`)
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
