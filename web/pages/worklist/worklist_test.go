package worklist_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
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

// TestPageInChinese: the job sheet of a reader of Chinese in Shanghai:
// its words, what to do and what to bring in Chinese, times in UTC+8 with
// the zone named, counts with separators; nothing left untranslated.
func TestPageInChinese(t *testing.T) {
	at := time.Date(2026, 3, 2, 5, 53, 0, 0, time.UTC)
	tamper := health.WorkItem{Tenant: "acme", Terminal: "T-1", Priority: 1, Urgent: true, LastSeen: at,
		Site: health.Site{Region: "chengdu", Site: "S", Merchant: "成都春熙路便利店", Model: "A920"},
		Reasons: []health.WorkReason{{Flag: posfleet.FlagTamper, Since: at, Action: "English action",
			Evidence: &posfleet.TamperEvidence{Events: []posfleet.TamperEvent{{At: at, Code: "CASE_OPEN", Component: "secure_element"}}}}}}
	printer := health.WorkItem{Tenant: "acme", Terminal: "T-2", Priority: 4, LastSeen: at,
		Site: health.Site{Region: "chengdu", Site: "S", Merchant: "成都春熙路便利店"},
		Reasons: []health.WorkReason{{Flag: posfleet.FlagHardwareFault, Since: at,
			Evidence: &posfleet.HardwareFaultEvidence{Faults: []posfleet.RaisedFault{{Component: "printer", Code: "PAPER_JAM", Since: at}}}}}}
	st := health.JobSite{Tenant: "acme", Region: "chengdu", Site: "S", Merchant: "成都春熙路便利店", Priority: 1, Urgent: true,
		Contact: posfleet.Contact{Phone: "028 8661 2345", OpeningHours: "09:00-22:00"}, Items: []health.WorkItem{tamper, printer}}
	v := worklist.View{Now: at.Add(time.Hour), Items: 26371, CSV: "/worklist.csv", Page: 1, Pages: 264,
		Regions: []health.JobRegion{{Region: "chengdu", Sites: []health.JobSite{st}}}}
	v.Frame.Perms = layout.Perms{Visit: true}
	var b bytes.Buffer
	ctx := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	if err := worklist.Page(v).Render(ctx, &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"26,371 台终端需要上门维护。", "第 1 页，共 264 页", "拨打 028 8661 2345", "营业时间 09:00-22:00", "全部 2 台已维护",
		"立即停用该终端", "secure_element 于 2026-03-02 13:53 UTC+8 报告 CASE_OPEN。",
		"清除卡纸", "自 2026-03-02 13:53 UTC+8 起", "需携带：备用终端、防拆封袋、清洁卡、打印纸卷、打印机清洁套件",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "English action") || strings.Contains(page, "UTC on") {
		t.Error("health's English action on a Chinese page")
	}
	if missing := locale.Missing(); len(missing) > 0 {
		t.Errorf("untranslated: %v", missing)
	}
}

// TestEveryPartTranslated: every part a flag or a faulty component may
// need has its message in each language.
func TestEveryPartTranslated(t *testing.T) {
	var all []string
	for _, ps := range posfleet.FlagParts {
		all = append(all, ps...)
	}
	for _, ps := range posfleet.ComponentParts {
		all = append(all, ps...)
	}
	for _, ps := range posfleet.WearParts {
		all = append(all, ps...)
	}
	for _, lang := range locale.Languages {
		ids, err := locale.IDs(lang)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range all {
			if !slices.Contains(ids, worklist.PartKey(p)) {
				t.Errorf("%s: no message %s for %q", lang, worklist.PartKey(p), p)
			}
		}
	}
}
