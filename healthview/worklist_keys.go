package healthview

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web"
)

var _ web.WorkKeys = (*Reader)(nil)

// WorkKeys is web.WorkKeys' keys of the work list: what a job sheet is
// grouped and ordered by (terminal, region, site, priority, urgency),
// without the items' reasons and evidence. They are columns of
// terminal_state in covering indexes (terminal_state_work_keys and its
// any-tenant twin), so ordering a large work list reads an index and
// decodes no item. At most limit keys (0: all), the most pressing first;
// total counts them all. JobSheet orders them for the page.
func (r *Reader) WorkKeys(ctx context.Context, tenant string, limit int) (int, []web.WorkKey, error) {
	var q query
	q.tenant("tenant", tenant)
	q.where("work_priority > 0")
	var total int
	if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM terminal_state`+q.clause(), q.args...).Scan(&total); err != nil {
		return 0, nil, fmt.Errorf("healthview: counting the work list: %w", err)
	}
	lim := ""
	if limit > 0 {
		lim = ` LIMIT ` + q.arg(limit)
	}
	keys, complete, err := r.workKeys(ctx, `SELECT tenant, terminal, region, work_site, work_priority, work_urgent FROM terminal_state`+
		q.clause()+` ORDER BY work_priority, tenant, terminal`+lim, q.args, total, limit)
	if err == nil && !complete {
		// Rows published before the columns existed (until the publisher's
		// next full publish): their site and urgency from the JSON.
		keys, _, err = r.workKeys(ctx, `SELECT tenant, terminal, region, `+r.jsonText("work", "site")+`, work_priority, `+
			r.jsonText("work", "urgent")+` FROM terminal_state`+q.clause()+` ORDER BY work_priority, tenant, terminal`+lim, q.args, total, limit)
	}
	return total, keys, err
}

// workKeys scans the keys a statement selects; complete is false when a
// row has no work_site.
func (r *Reader) workKeys(ctx context.Context, stmt string, args []any, total, limit int) (keys []web.WorkKey, complete bool, err error) {
	rows, err := r.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, false, fmt.Errorf("healthview: work list keys: %w", err)
	}
	defer rows.Close()
	n := total
	if limit > 0 {
		n = min(n, limit)
	}
	keys = make([]web.WorkKey, 0, n)
	complete = true
	for rows.Next() {
		var k web.WorkKey
		var site sql.NullString
		var urg any
		if err := rows.Scan(&k.Ref.Tenant, &k.Ref.Terminal, &k.Region, &site, &k.Priority, &urg); err != nil {
			return nil, false, fmt.Errorf("healthview: work list keys: %w", err)
		}
		k.Site, k.Urgent = site.String, truthy(urg)
		complete = complete && site.Valid
		keys = append(keys, k)
	}
	return keys, complete, rows.Err()
}

// truthy reads a JSON boolean as the engines return it through jsonText:
// SQLite's json_extract gives 1 or 0, PostgreSQL's ->> "true" or "false".
func truthy(v any) bool {
	switch x := v.(type) {
	case int64:
		return x != 0
	case bool:
		return x
	case string:
		return x == "true" || x == "1"
	case []byte:
		return string(x) == "true" || string(x) == "1"
	}
	return false
}

// WorkItems is web.WorkKeys' items of refs that are on the work list, in
// no particular order (a ref not on it is left out): a page of a job sheet
// ordered by WorkKeys.
func (r *Reader) WorkItems(ctx context.Context, refs []posfleet.TerminalRef) ([]health.WorkItem, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	byTenant := map[string][]string{}
	var tenants []string
	for _, ref := range refs {
		if _, ok := byTenant[ref.Tenant]; !ok {
			tenants = append(tenants, ref.Tenant)
		}
		byTenant[ref.Tenant] = append(byTenant[ref.Tenant], ref.Terminal)
	}
	// One (tenant, terminal IN …) per tenant: the primary key's index.
	var q query
	var ors []string
	for _, tn := range tenants {
		ids := byTenant[tn]
		ph := make([]string, len(ids))
		for i, id := range ids {
			ph[i] = q.arg(id)
		}
		ors = append(ors, `(tenant = `+q.arg(tn)+` AND terminal IN (`+strings.Join(ph, ", ")+`))`)
	}
	rows, err := r.db.QueryContext(ctx, `SELECT tenant, terminal, work FROM terminal_state WHERE work_priority > 0 AND (`+
		strings.Join(ors, " OR ")+`)`, q.args...)
	if err != nil {
		return nil, fmt.Errorf("healthview: work items: %w", err)
	}
	return scanWorkItems(rows, "work items")
}
