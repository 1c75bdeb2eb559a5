package web_test

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/collector/health"
	"github.com/posfleet/posfleet/web"
)

// TestOpenRedirectTable: after sign-in, next= leads only to a path of this
// site; every hostile value sends the browser to "/".
func TestOpenRedirectTable(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ next, want string }{
		{"/terminals?flag=offline", "/terminals?flag=offline"},
		{"/security", "/security"},
		{"", "/"},
		{"https://evil.example/", "/"},
		{"//evil.example/x", "/"},
		{`/\127.0.0.1:22090/pwned`, "/"},
		{`/\evil.example`, "/"},
		{`/\/evil.example`, "/"},
		{`\\evil.example`, "/"},
		{`/x/../\evil.example`, "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/\r\nLocation: https://evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"http:/evil.example", "/"},
		{"evil.example", "/"},
		{"///evil.example", "/"},
	} {
		t.Run(tc.next, func(t *testing.T) {
			c := browser(t)
			form := url.Values{"name": {"root"}, "password": {"correct horse battery"}, "next": {tc.next}}
			resp, _ := postLogin(t, f.srv.URL, c, form)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != tc.want {
				t.Errorf("next=%q: %s to %q, want %q", tc.next, resp.Status, loc, tc.want)
			}
			// The sign-in page carries next= into its form the same way.
			_, page := get(t, c, f.srv.URL+"/login?next="+url.QueryEscape(tc.next))
			if got := attr(t, page, "next"); got != htmlEscape(tc.want) {
				t.Errorf("login page next field %q, want %q", got, tc.want)
			}
		})
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestWorkListCSVNeutralisesFormulas: text cells from outside that a
// spreadsheet would run as formulas get a leading quote; negative
// coordinates stay numbers.
func TestWorkListCSVNeutralisesFormulas(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	hostile := []string{`=HYPERLINK("https://evil.example","x")`, "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx", "=1+2"}
	var groups []health.WorkGroup
	for i, h := range hostile {
		groups = append(groups, health.WorkGroup{Region: h, Site: h, Items: []health.WorkItem{{
			Tenant: "acme", Terminal: "T-1", Firmware: h, LastSeen: now, Priority: i,
			Site:    health.Site{Model: h, Merchant: h, Site: h, Region: h, Lat: -33.8688, Lon: -151.2093},
			Reasons: []health.WorkReason{{Flag: "printer_fault", Since: now, Action: h}},
		}}})
	}
	var buf bytes.Buffer
	if err := web.WriteWorkListCSV(&buf, groups); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := rows[0]
	numeric := map[string]bool{"priority": true, "lat": true, "lon": true}
	for _, row := range rows[1:] {
		for i, cell := range row {
			if numeric[header[i]] {
				continue
			}
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("column %s starts with a formula character: %q", header[i], cell)
			}
		}
		if row[9] != "-33.8688" || row[10] != "-151.2093" {
			t.Errorf("lat, lon = %q, %q: want the negative numbers unchanged", row[9], row[10])
		}
	}
	if got := rows[1][4]; got != `'=HYPERLINK("https://evil.example","x")` {
		t.Errorf("merchant cell %q: want the value behind a single quote", got)
	}
}
