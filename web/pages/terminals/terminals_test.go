package terminals_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/terminals"
)

func render(t *testing.T, ctx context.Context, v terminals.View) string {
	t.Helper()
	var b bytes.Buffer
	if err := terminals.Page(v).Render(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func view() terminals.View {
	now := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	long := "成都市锦江区春熙路步行街东段第一百零八号便利店有限公司（春熙路旗舰店）"
	return terminals.View{Now: now, Total: 1, Page: 1, Pages: 2, First: 1, Next: "/terminals?page=2&sort=merchant",
		Sorts: []string{"terminal", "merchant", "last_seen"}, Models: []string{"A920", "P2"}, Regions: []string{"Chengdu", "Shanghai"},
		Heads: []terminals.Head{{Col: "terminal", Href: "/terminals?dir=asc&sort=terminal"},
			{Col: "merchant", Href: "/terminals?dir=desc&sort=merchant", Sort: "ascending"}},
		Filter: terminals.Filter{Sort: "merchant", Region: "chengdu"},
		Rows: []terminals.Row{{Tenant: "acme", Terminal: "T-1", Href: "/terminals/acme/T-1", Online: true, LastSeen: now.Add(-time.Minute),
			Model: "A920", Firmware: "2.5.1", Merchant: long, Site: "春熙路店", Address: "成都市锦江区春熙路 8 号", Region: "Chengdu"}}}
}

// TestLongNamesTruncated: a long merchant name is cut by CSS (class
// trunc) with the whole of it on hover, and the site's title has its
// address; the other columns follow in the same row.
func TestLongNamesTruncated(t *testing.T) {
	v := view()
	page := render(t, context.Background(), v)
	for _, want := range []string{
		`<span class="trunc" title="` + v.Rows[0].Merchant + `" data-testid="merchant">`,
		`<span class="trunc muted" title="春熙路店, 成都市锦江区春熙路 8 号" data-testid="site">春熙路店</span>`,
		`class="list terminal-list"`,
		`<td data-label="Region">Chengdu</td>`, `<td data-label="Firmware">2.5.1</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

// TestSuggestionsAndSortHeaders: the model and region inputs suggest the
// fleet's values through a datalist; the header of the current order says
// so (aria-sort) and links to the other direction.
func TestSuggestionsAndSortHeaders(t *testing.T) {
	page := render(t, context.Background(), view())
	for _, want := range []string{
		`list="terminal-models"`, `<datalist id="terminal-models" data-testid="suggest-models"><option value="A920"></option><option value="P2"></option></datalist>`,
		`list="terminal-regions"`, `<option value="Chengdu"></option><option value="Shanghai"></option>`,
		`value="chengdu"`,
		`<th aria-sort="ascending" data-testid="sort-merchant"><a href="/terminals?dir=desc&amp;sort=merchant"`,
		`<th data-testid="sort-terminal"><a href="/terminals?dir=asc&amp;sort=terminal"`,
		`href="/terminals?page=2&amp;sort=merchant" rel="next"`,
		`<option value="merchant" selected>merchant</option>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

// TestChinese: the page in Chinese, its time in the reader's zone with
// the zone named, and no message missing from the catalogue.
func TestChinese(t *testing.T) {
	ctx := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	v := view()
	v.Total = 1234
	page := render(t, ctx, v)
	for _, want := range []string{"<h1>终端</h1>", "商户 / 网点", "地区", "固件", "筛选", "第 1 页，共 2 页", "共 1,234 台终端",
		`placeholder="终端号、商户、网点、序列号"`, `title="2026-03-02 17:29:00 UTC+8"`, `title="当前按商户 / 网点升序；改为降序"`, "1 分钟前"} {
		if !strings.Contains(page, want) {
			t.Errorf("Chinese page lacks %s", want)
		}
	}
	for _, en := range []string{">Terminals<", "Merchant / site", ">Filter<", "previous", "UTC<"} {
		if strings.Contains(page, en) {
			t.Errorf("Chinese page has %q", en)
		}
	}
	if m := locale.Missing(); slices.ContainsFunc(m, func(s string) bool { return strings.Contains(s, "terminals.") }) {
		t.Errorf("missing messages: %v", m)
	}
}
