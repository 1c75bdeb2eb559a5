package health_test

import (
	"slices"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// TestJobSheet: regions, then sites within a region by their most pressing
// terminal (then urgent, more terminals, name); a region's place is its
// most pressing site's; the same site name in two tenants is two sites;
// GroupJobSheet keeps the order of a page of JobItems.
func TestJobSheet(t *testing.T) {
	item := func(tenant, terminal, region, site string, prio int) health.WorkItem {
		return health.WorkItem{Tenant: tenant, Terminal: terminal, Priority: prio, Urgent: prio == 1,
			Site:    health.Site{Region: region, Site: site, Merchant: "M " + site},
			Reasons: []health.WorkReason{{Flag: posfleet.FlagBattery}}}
	}
	items := []health.WorkItem{
		item("acme", "T-1", "north", "A", 4),
		item("acme", "T-2", "south", "B", 2),
		item("acme", "T-3", "north", "C", 3),
		item("acme", "T-4", "north", "A", 2),
		item("beta", "T-5", "north", "A", 4),
		item("acme", "T-6", "south", "D", 2),
		item("acme", "T-7", "south", "D", 4),
		item("acme", "T-8", "east", "E", 4),
		item("acme", "T-9", "north", "A", 4),
	}
	got := health.JobSheet(items)
	type site struct {
		region, site, tenant string
		prio                 int
		terms                []string
	}
	var flat []site
	for _, r := range got {
		for _, s := range r.Sites {
			var ts []string
			for _, it := range s.Items {
				ts = append(ts, it.Terminal)
			}
			flat = append(flat, site{r.Region, s.Site, s.Tenant, s.Priority, ts})
		}
	}
	want := []site{
		{"north", "A", "acme", 2, []string{"T-4", "T-1", "T-9"}},
		{"north", "C", "acme", 3, []string{"T-3"}},
		{"north", "A", "beta", 4, []string{"T-5"}},
		{"south", "D", "acme", 2, []string{"T-6", "T-7"}},
		{"south", "B", "acme", 2, []string{"T-2"}},
		{"east", "E", "acme", 4, []string{"T-8"}},
	}
	if !slices.EqualFunc(flat, want, func(a, b site) bool {
		return a.region == b.region && a.site == b.site && a.tenant == b.tenant && a.prio == b.prio && slices.Equal(a.terms, b.terms)
	}) {
		t.Errorf("job sheet\n%v\nwant\n%v", flat, want)
	}
	// A page cut from the middle keeps its order and groups.
	page := health.JobItems(got)[2:6]
	g := health.GroupJobSheet(page)
	if len(g) != 2 || g[0].Region != "north" || len(g[0].Sites) != 3 || g[1].Region != "south" || g[1].Sites[0].Items[0].Terminal != "T-6" {
		t.Errorf("page groups %+v", g)
	}
	if p := health.SiteParts(got[0].Sites[0]); !slices.Equal(p, []string{"battery", "charger"}) {
		t.Errorf("site parts %q", p)
	}
}
