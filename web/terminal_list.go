package web

import (
	"cmp"
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// The terminal list's sort columns, in the order of its table. Each has a
// natural direction, the one its header link first asks for and the one a
// bare column name (the order of TerminalsPage) means: ascending, but for
// the number of flags (the most flagged first). "last_seen" ascending is
// the longest silent first.
var terminalSorts = []string{"terminal", "merchant", "region", "model", "firmware", "last_seen", "flags"}

// naturalDesc reports whether col's natural direction is descending.
func naturalDesc(col string) bool { return col == "flags" }

// TerminalOrder is an order of the terminal list: "" (by tenant and
// terminal), a column of terminalSorts in its natural direction, or
// "column:asc" / "column:desc". Ties are always by tenant and terminal,
// ascending, so that paging is stable.
func TerminalOrder(col, dir string) string {
	if col == "" {
		return ""
	}
	if dir == "" {
		return col
	}
	return col + ":" + dir
}

// ParseTerminalOrder splits an order of TerminalsPage into its column ("" by
// tenant and terminal; an unknown column too) and direction.
func ParseTerminalOrder(order string) (col string, desc bool) {
	col, dir, _ := strings.Cut(order, ":")
	if !slices.Contains(terminalSorts, col) {
		return "", false
	}
	switch dir {
	case "asc":
		return col, false
	case "desc":
		return col, true
	}
	return col, naturalDesc(col)
}

// flagsOfKind are the flags of kind k, in FlagNames' order.
func flagsOfKind(k posfleet.FlagKind) []posfleet.FlagName {
	var out []posfleet.FlagName
	for _, f := range posfleet.FlagNames {
		if f.Kind() == k {
			out = append(out, f)
		}
	}
	return out
}

// kindRows are the rows of tenant's terminals with any flag of kind k, by
// tenant and terminal: the list the overview's count of that kind opens.
func kindRows(hs Health, tenant string, k posfleet.FlagKind) []health.Row {
	seen := map[posfleet.TerminalRef]bool{}
	var out []health.Row
	for _, f := range flagsOfKind(k) {
		for _, r := range hs.Rows(tenant, f) {
			if !seen[r.Ref] {
				seen[r.Ref] = true
				out = append(out, r)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Ref, out[j].Ref
		return a.Tenant < b.Tenant || a.Tenant == b.Tenant && a.Terminal < b.Terminal
	})
	return out
}

// sortRows orders rows (in tenant and terminal order) by order, stably.
// The keys are those healthview.Reader sorts by in SQL: the row's reported
// model and firmware, the site's merchant and region (bytewise).
func sortRows(hs Health, rows []health.Row, order string) {
	col, desc := ParseTerminalOrder(order)
	if col == "" {
		return
	}
	var key func(r *health.Row) string
	switch col {
	case "terminal":
		if desc {
			slices.Reverse(rows)
		}
		return
	case "last_seen":
		slices.SortStableFunc(rows, func(a, b health.Row) int { return dirCmp(desc, a.LastSeen.Compare(b.LastSeen)) })
		return
	case "flags":
		slices.SortStableFunc(rows, func(a, b health.Row) int { return dirCmp(desc, cmp.Compare(len(a.Flags), len(b.Flags))) })
		return
	case "model":
		key = func(r *health.Row) string { return r.Model }
	case "firmware":
		key = func(r *health.Row) string { return r.Firmware }
	case "merchant", "region":
		sites := make(map[posfleet.TerminalRef]string, len(rows))
		for i := range rows {
			s, _ := hs.Site(rows[i].Ref)
			if col == "merchant" {
				sites[rows[i].Ref] = s.Merchant
			} else {
				sites[rows[i].Ref] = s.Region
			}
		}
		key = func(r *health.Row) string { return sites[r.Ref] }
	}
	slices.SortStableFunc(rows, func(a, b health.Row) int { return dirCmp(desc, strings.Compare(key(&a), key(&b))) })
}

func dirCmp(desc bool, c int) int {
	if desc {
		return -c
	}
	return c
}

// ListChoices are the values the terminal list's model and region filters
// suggest: the fleet's actual models (as reported, those of the fleet
// summary) and regions (as provisioned).
type ListChoices struct {
	Models, Regions []string
}

// Chooser is what a Health may add to answer the list's suggestions from
// its database (healthview.Reader: distinct values on its indexes); the
// web layer otherwise gathers them from the engine's summary and sites.
type Chooser interface {
	// ListChoices returns the distinct non-empty models and regions of
	// tenant's terminals ("" for all), each sorted.
	ListChoices(ctx context.Context, tenant string) (ListChoices, error)
}

// choicesTTL is how long the list's suggestions are kept: gathering them
// reads every terminal (its site in memory, or a table scan), as much as a
// page of the list itself at 100,000 terminals, and a model or region new
// to the fleet may well wait half a minute to be suggested.
const choicesTTL = 30 * time.Second

// choiceCache keeps each tenant's suggestions for choicesTTL.
type choiceCache struct {
	mu sync.Mutex
	m  map[string]cachedChoices
}

type cachedChoices struct {
	lc ListChoices
	at time.Time
}

// listChoices are tenant's suggestions, from the cache or gathered.
func (s *Server) listChoices(ctx context.Context, tenant string) (ListChoices, error) {
	c := &s.choices
	c.mu.Lock()
	got, ok := c.m[tenant]
	c.mu.Unlock()
	if ok && time.Since(got.at) < choicesTTL {
		return got.lc, nil
	}
	lc, err := listChoices(ctx, s.opts.Health, tenant)
	if err != nil {
		return lc, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedChoices{}
	}
	c.m[tenant] = cachedChoices{lc: lc, at: time.Now()}
	c.mu.Unlock()
	return lc, nil
}

// listChoices asks the Health's Chooser, or gathers the choices in memory.
func listChoices(ctx context.Context, hs Health, tenant string) (ListChoices, error) {
	if c, ok := hs.(Chooser); ok {
		return c.ListChoices(ctx, tenant)
	}
	var lc ListChoices
	models := map[string]bool{}
	for m := range hs.FleetSummary(tenant).Models {
		models[m] = true
	}
	regions := map[string]bool{}
	for _, r := range hs.Rows(tenant, "") {
		if s, ok := hs.Site(r.Ref); ok {
			regions[s.Region] = true
		}
	}
	for m := range models {
		if m != "" {
			lc.Models = append(lc.Models, m)
		}
	}
	for r := range regions {
		if r != "" {
			lc.Regions = append(lc.Regions, r)
		}
	}
	sort.Strings(lc.Models)
	sort.Strings(lc.Regions)
	return lc, nil
}
