package web_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/locale"
)

// TestTerminalListFilters: model and region regardless of case, the flag
// kind, the fleet's models and regions suggested.
func TestTerminalListFilters(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	c, _ := f.session(t, "ops-acme")
	for _, tc := range []struct {
		query string
		want  []string // terminal IDs, in order
	}{
		{"?region=SOUTH", []string{"T-2"}},
		{"?region=North", []string{"T-1"}},
		{"?model=a920", []string{"T-1", "T-2"}},
		{"?model=a92", nil},
		{"?kind=maintenance", []string{"T-1"}},
		{"?kind=investigate", nil},
		{"?kind=maintenance&flag=tamper", nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, ids := f.page(t, c, "/terminals"+tc.query, 200)
			if strings.Join(ids["terminal-link"], ",") != strings.Join(tc.want, ",") {
				t.Errorf("terminals %v, want %v", ids["terminal-link"], tc.want)
			}
		})
	}
	body, _ := f.page(t, c, "/terminals?region=south", 200)
	for _, want := range []string{`<option value="A920"></option>`, `<datalist id="terminal-regions" data-testid="suggest-regions"><option value="north"></option><option value="south"></option></datalist>`,
		`<span class="trunc" title="M-T-2" data-testid="merchant">M-T-2</span>`, `title="Shop T-2" data-testid="site"`} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %s", want)
		}
	}
	for _, q := range []string{"?kind=urgent", "?dir=up", "?sort=merchant&dir=sideways"} {
		t.Run(q, func(t *testing.T) {
			_, ids := f.page(t, c, "/terminals"+q, 400)
			if one(t, ids, "filter-error") == "" || len(ids["terminal-row"]) != 0 {
				t.Errorf("bad filter: %v", ids)
			}
		})
	}
	if resp, b := get(t, c, f.srv.URL+"/api/v1/terminals?region=SOUTH"); resp.StatusCode != 200 || !strings.Contains(b, `"terminal": "T-2"`) || strings.Contains(b, `"terminal": "T-1"`) {
		t.Errorf("API region regardless of case: %s %s", resp.Status, b)
	}
}

var listedRef = regexp.MustCompile(`<a href="/terminals/([^"]+)" data-testid="terminal-link">`)

// TestTerminalListSorting: every column sorts both ways, stably, the
// current order is marked (aria-sort) and its header links to the other
// direction; paging keeps the order.
func TestTerminalListSorting(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	c, _ := f.session(t, "root")
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"acme/T-1", "acme/T-2", "other/T-1"}}, // by tenant, then terminal
		{"?sort=terminal&dir=desc", []string{"other/T-1", "acme/T-2", "acme/T-1"}},
		{"?sort=merchant", []string{"acme/T-1", "other/T-1", "acme/T-2"}}, // M-T-1 twice: by tenant
		{"?sort=merchant&dir=desc", []string{"acme/T-2", "acme/T-1", "other/T-1"}},
		{"?sort=region&dir=asc", []string{"acme/T-1", "other/T-1", "acme/T-2"}},
		{"?sort=region&dir=desc", []string{"acme/T-2", "acme/T-1", "other/T-1"}},
		{"?sort=firmware", []string{"acme/T-1", "acme/T-2", "other/T-1"}},
		{"?sort=firmware&dir=desc", []string{"other/T-1", "acme/T-2", "acme/T-1"}},
		{"?sort=model&dir=desc", []string{"acme/T-1", "acme/T-2", "other/T-1"}}, // all A920: the tie keeps tenant and terminal
		{"?sort=flags", []string{"acme/T-1", "acme/T-2", "other/T-1"}},
		{"?sort=flags&dir=asc", []string{"acme/T-2", "other/T-1", "acme/T-1"}},
		{"?sort=merchant&dir=desc&per_page=2&page=2", []string{"other/T-1"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			body, _ := f.page(t, c, "/terminals"+tc.query, 200)
			var got []string
			for _, m := range listedRef.FindAllStringSubmatch(body, -1) {
				got = append(got, m[1])
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("terminals %v, want %v", got, tc.want)
			}
		})
	}
	body, _ := f.page(t, c, "/terminals?sort=merchant&dir=desc&per_page=2&region=", 200)
	for _, want := range []string{
		`<th aria-sort="descending" data-testid="sort-merchant"><a href="/terminals?dir=asc&amp;per_page=2&amp;sort=merchant"`,
		`<th data-testid="sort-region"><a href="/terminals?dir=asc&amp;per_page=2&amp;sort=region"`,
		`<th data-testid="sort-flags"><a href="/terminals?dir=desc&amp;per_page=2&amp;sort=flags"`,
		`href="/terminals?dir=desc&amp;page=2&amp;per_page=2&amp;sort=merchant" rel="next"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %s", want)
		}
	}
	body, _ = f.page(t, c, "/terminals", 200)
	if !strings.Contains(body, `<th aria-sort="ascending" data-testid="sort-terminal"><a href="/terminals?dir=desc&amp;sort=terminal"`) {
		t.Error("the default order is not shown as by terminal, ascending")
	}
}

// TestListPagesInChinese: the overview and the terminal list of a reader
// whose browser asks for Chinese, no catalogue key missing.
func TestListPagesInChinese(t *testing.T) {
	f := newUIFixture(t)
	f.seed(t)
	c, _ := f.session(t, "ops-acme")
	for path, want := range map[string][]string{
		"/":                         {"终端总览", "待调查", `href="/terminals?kind=investigate"`, "最近 24 小时"},
		"/terminals?sort=last_seen": {"<h1>终端</h1>", "商户 / 网点", "失联最久", "共 2 台终端；显示第 1–2 台。", "UTC+8"},
		"/terminals?region=nowhere": {"没有符合条件的终端。"},
	} {
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range want {
			if resp.StatusCode != 200 || !strings.Contains(string(b), w) {
				t.Errorf("%s (%d) lacks %s", path, resp.StatusCode, w)
			}
		}
	}
	for _, m := range locale.Missing() {
		if strings.Contains(m, "overview.") || strings.Contains(m, "terminals.") {
			t.Errorf("missing message %s", m)
		}
	}
}
