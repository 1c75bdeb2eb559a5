package healthview_test

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

// TestWorkKeys: the keys of the published work list are the engine's work
// list's, the most pressing first, with region, site, priority and
// urgency, from their columns and, for rows published before those
// existed, from the JSON; the items of some of them read back as the
// engine has them; a limit keeps the first keys and still counts them all.
func TestWorkKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f, r := smallFleet(t, db)
		ctx := context.Background()
		for _, tenant := range []string{"", "acme", "other", "nobody"} {
			all := f.eng.WorkList(tenant)
			var want []web.WorkKey
			for _, it := range all {
				want = append(want, web.WorkKey{Ref: it.Ref, Region: it.Region, Site: it.Site.Site, Priority: it.Priority, Urgent: it.Urgent})
			}
			slices.SortFunc(want, func(a, b web.WorkKey) int {
				return cmp.Or(cmp.Compare(a.Priority, b.Priority), strings.Compare(a.Ref.Tenant, b.Ref.Tenant), strings.Compare(a.Ref.Terminal, b.Ref.Terminal))
			})
			total, keys, err := r.WorkKeys(ctx, tenant, 0)
			if err != nil || total != len(all) || !slices.Equal(keys, want) {
				t.Errorf("WorkKeys(%q) = %d, %+v, %v\nwant %d, %+v", tenant, total, keys, err, len(all), want)
			}
			if tenant == "" {
				// As published before the columns: the JSON answers.
				if _, err := db.Exec(`UPDATE terminal_state SET work_site = NULL, work_urgent = FALSE WHERE terminal = 'T0000002'`); err != nil {
					t.Fatal(err)
				}
				if _, keys, err := r.WorkKeys(ctx, tenant, 0); err != nil || !slices.Equal(keys, want) {
					t.Errorf("WorkKeys(%q) of rows without the columns = %+v, %v\nwant %+v", tenant, keys, err, want)
				}
			}
			if total, keys, err := r.WorkKeys(ctx, tenant, 2); err != nil || total != len(all) || !slices.Equal(keys, want[:min(2, len(want))]) {
				t.Errorf("WorkKeys(%q, 2) = %d, %+v, %v", tenant, total, keys, err)
			}
			// Every other item, and one that is not on the work list.
			var refs []posfleet.TerminalRef
			wantItems := map[posfleet.TerminalRef]health.WorkItem{}
			for i, it := range all {
				if i%2 == 0 {
					refs = append(refs, it.Ref)
					wantItems[it.Ref] = it
				}
			}
			refs = append(refs, posfleet.TerminalRef{Tenant: "acme", Terminal: "T0000900"})
			items, err := r.WorkItems(ctx, refs)
			if err != nil || len(items) != len(wantItems) {
				t.Fatalf("WorkItems(%q): %d items, %v; want %d", tenant, len(items), err, len(wantItems))
			}
			for _, it := range items {
				if asJSON(t, it) != asJSON(t, wantItems[it.Ref]) || it.Ref != wantItems[it.Ref].Ref {
					t.Errorf("WorkItems: %+v\nwant %+v", it, wantItems[it.Ref])
				}
			}
		}
		if items, err := r.WorkItems(ctx, nil); err != nil || len(items) != 0 {
			t.Errorf("WorkItems(nil) = %v, %v", items, err)
		}
	})
}
