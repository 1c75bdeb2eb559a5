package worklist_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/worklist"
)

func render(t *testing.T, v worklist.View) string {
	t.Helper()
	var b bytes.Buffer
	if err := worklist.Page(v).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPageRender: a site collapsed with its links, forms only with the
// permission to record visits; a site with coordinates and no address
// gets coordinate map links.
func TestPageRender(t *testing.T) {
	it := func(id string, lat, lon float64) health.WorkItem {
		return health.WorkItem{Tenant: "acme", Terminal: id, Priority: 2,
			Site:    health.Site{Region: "chengdu", Site: "S", Merchant: "成都春熙路便利店", Lat: lat, Lon: lon},
			Reasons: []health.WorkReason{{Flag: posfleet.FlagTamper, Action: "Take it away."}}}
	}
	withAddr := health.JobSite{Tenant: "acme", Region: "chengdu", Site: "S", Merchant: "成都春熙路便利店", Priority: 2,
		Contact: posfleet.Contact{Address: `1 "Quote" Rd <b>`, Phone: "+86 28-1234"},
		Items:   []health.WorkItem{it("T-1", 0, 0), it("T-2", 0, 0)}}
	coords := health.JobSite{Tenant: "acme", Region: "chengdu", Site: "P", Priority: 3, Items: []health.WorkItem{it("T-3", 30.5, 104.25)}}
	v := worklist.View{Now: time.Now(), Items: 3, CSV: "/worklist.csv", Page: 1, Pages: 1,
		Regions: []health.JobRegion{{Region: "chengdu", Sites: []health.JobSite{withAddr, coords}}}}
	v.Frame.Perms = layout.Perms{Visit: true}
	page := render(t, v)
	for _, want := range []string{
		`data-testid="worklist-group"`, "<summary", `href="tel:+86281234"`,
		`href="geo:0,0?q=1%20%22Quote%22%20Rd%20%3Cb%3E"`,
		`href="https://www.openstreetmap.org/search?query=1%20%22Quote%22%20Rd%20%3Cb%3E"`,
		`href="geo:30.5,104.25"`, `href="https://www.openstreetmap.org/?mlat=30.5&amp;mlon=104.25#map=18/30.5/104.25"`,
		"spare terminal", `data-testid="worklist-done"`, `data-testid="worklist-site-done"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, "<b>") {
		t.Error("the address is not escaped")
	}
	v.Frame.Perms.Visit = false
	page = render(t, v)
	if strings.Contains(page, "worklist-done") || strings.Contains(page, "site-done") || strings.Contains(page, `method="post"`) {
		t.Error("visit forms without the permission to record visits")
	}
}
