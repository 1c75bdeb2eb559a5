package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web"
)

const (
	chunxiMerchant = "成都春熙路便利店"
	chunxiAddress  = "成都市锦江区春熙路 8 号 & 9 号"
)

// contactDirectory is the registry's contact data of a few terminals.
type contactDirectory map[posfleet.TerminalRef]posfleet.RegisteredTerminal

func (d contactDirectory) Get(_ context.Context, ref posfleet.TerminalRef) (posfleet.RegisteredTerminal, error) {
	t, ok := d[ref]
	if !ok {
		return t, posfleet.Errorf(posfleet.NotFound, "not_found", "no such terminal")
	}
	return t, nil
}

// newJobFixture is the UI fixture with a fleet laid out for a crew: two
// terminals at one shop in Chengdu (printer jams, routine), one at another
// Chengdu shop (a critical chip-reader fault), one in Beijing (printer).
func newJobFixture(t *testing.T, with ...func(*web.Options)) *uiFixture {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	places := map[string]health.Site{
		"T-1": {Merchant: chunxiMerchant, Site: "Chunxi", Region: "chengdu"},
		"T-2": {Merchant: chunxiMerchant, Site: "Chunxi", Region: "chengdu"},
		"T-3": {Merchant: "Pier Café", Site: "Pier", Region: "chengdu"},
		"T-4": {Merchant: "Wangfujing", Site: "Wangfujing", Region: "beijing"},
	}
	cfg := health.DefaultConfig()
	cfg.Now = func() time.Time { return now }
	cfg.Merchant = func(r posfleet.TerminalRef) string { return places[r.Terminal].Merchant }
	cfg.Site = func(r posfleet.TerminalRef) (health.Site, bool) {
		st, ok := places[r.Terminal]
		st.Model = "A920"
		return st, ok
	}
	eng := health.New(cfg)
	contact := posfleet.Contact{Address: chunxiAddress, Person: "王经理", Phone: "+86 (28) 8661-2345", OpeningHours: "09:00-22:00"}
	dir := contactDirectory{}
	for _, id := range []string{"T-1", "T-2"} {
		ref := posfleet.TerminalRef{Tenant: "acme", Terminal: id}
		dir[ref] = posfleet.RegisteredTerminal{TerminalRef: ref, Merchant: chunxiMerchant, Contact: contact}
	}
	f := newUIFixture(t, append([]func(*web.Options){func(o *web.Options) { o.Health, o.Directory = eng, dir }}, with...)...)
	f.engine, f.now = eng, now
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	for i, id := range []string{"T-1", "T-2", "T-3", "T-4"} {
		ref := posfleet.TerminalRef{Tenant: "acme", Terminal: id}
		f.feed(t, ref, posfleet.ChannelFirmware, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","firmware":"2.4.%d"}`, ts(-time.Minute), i))
		f.feed(t, ref, posfleet.ChannelHeartbeat, fmt.Sprintf(`{"seq":2,"ts":%q,"battery_pct":80,"paper":"ok","signal_dbm":-70,"host_rtt_ms":300}`, ts(-30*time.Second)))
		component, severity := "printer", "warning"
		if id == "T-3" {
			component, severity = "icc", "critical"
		}
		f.feed(t, ref, posfleet.ChannelFault, fmt.Sprintf(`{"seq":3,"ts":%q,"component":%q,"code":"X_FAIL","severity":%q,"state":"raised"}`, ts(-10*time.Second), component, severity))
	}
	return f
}

// readUTF8SigCSV reads a CSV as Python's csv module does with
// encoding="utf-8-sig": a leading byte order mark is dropped.
func readUTF8SigCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")) {
		t.Fatalf("no UTF-8 byte order mark: %q", b[:min(len(b), 20)])
	}
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestWriteJobSheetCSV: a BOM, the header, a Chinese merchant name and
// address intact, a formula neutralised, the parts to bring.
func TestWriteJobSheetCSV(t *testing.T) {
	items := []health.WorkItem{{Tenant: "acme", Terminal: "T-1", Priority: 3,
		Site:    health.Site{Merchant: chunxiMerchant, Region: "成都", Contact: posfleet.Contact{Address: chunxiAddress, Phone: "028 8661 2345", OpeningHours: "=1+2"}},
		Reasons: []health.WorkReason{{Flag: posfleet.FlagReceiptFailures}, {Flag: posfleet.FlagBattery}}}}
	var buf bytes.Buffer
	if err := web.WriteJobSheetCSV(context.Background(), &buf, items); err != nil {
		t.Fatal(err)
	}
	rows := readUTF8SigCSV(t, buf.Bytes())
	if !slices.Equal(rows[0], web.JobSheetCSVHeader) || len(rows) != 2 {
		t.Fatalf("rows %q", rows)
	}
	want := []string{"成都", chunxiMerchant, chunxiAddress, "028 8661 2345", "'=1+2", "T-1", "receipt_failures battery", "paper rolls; printer cleaning kit; battery; charger", "3"}
	if !slices.Equal(rows[1], want) {
		t.Errorf("row %q\nwant %q", rows[1], want)
	}
}

// TestJobSheetPage: the work list as a crew's job sheet at a phone's
// width: regions, then sites by their most pressing terminal; each site
// collapsed with its address, tap-to-call, geo: and OpenStreetMap links
// and what to bring; the region filter; the assignee filter says it cannot
// filter without alarms; "all visited" clears every terminal of the site
// in one request; the CSV has the Chinese names intact.
func TestJobSheetPage(t *testing.T) {
	f := newJobFixture(t)
	c, csrf := f.session(t, "ops-acme")
	body, ids := f.page(t, c, "/worklist", 200)
	if got := ids["worklist-terminal"]; !slices.Equal(got, []string{"T-3", "T-1", "T-2", "T-4"}) {
		t.Errorf("terminals in order %q, want Chengdu's Pier (critical) then Chunxi, then Beijing", got)
	}
	if got := ids["worklist-group"]; len(got) != 3 {
		t.Errorf("%d sites, want 3", len(got))
	}
	q := strings.ReplaceAll(url.QueryEscape(chunxiAddress), "+", "%20")
	for _, want := range []string{
		`<details class="site jobsite"`, "<summary", `href="tel:+862886612345"`,
		`href="geo:0,0?q=` + q + `"`, `href="https://www.openstreetmap.org/search?query=` + q + `"`,
		chunxiMerchant, "王经理", "Open 09:00-22:00", `action="/worklist/site-done"`, `name="ref" value="acme:T-1"`,
		`href="/worklist.csv"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script src=\"http") || strings.Contains(body, "query="+chunxiAddress) {
		t.Error("an external script or an unescaped address")
	}
	if got := ids["worklist-bring"]; len(got) != 4 || !strings.Contains(got[0], "chip reader") || !strings.Contains(got[1], "paper rolls") {
		t.Errorf("what to bring: %q", got)
	}
	if n := len(ids["worklist-site-done"]); n != 1 {
		t.Errorf("%d site forms, want 1 (the only site with two terminals)", n)
	}

	// The terminal page shows the registry's contact data too.
	_, ids = f.page(t, c, "/terminals/acme/T-1", 200)
	if !strings.Contains(one(t, ids, "address"), chunxiAddress) || !strings.Contains(one(t, ids, "phone"), "+86 (28) 8661-2345") {
		t.Errorf("terminal page: address %q, phone %q", ids["address"], ids["phone"])
	}
	_, ids = f.page(t, c, "/worklist?region=BEIJING", 200)
	if got := ids["worklist-terminal"]; !slices.Equal(got, []string{"T-4"}) {
		t.Errorf("region filter: %q", got)
	}
	_, ids = f.page(t, c, "/worklist?assignee=crew-7", 200)
	if len(ids["worklist-terminal"]) != 4 || !strings.Contains(one(t, ids, "worklist-filter-note"), "not filtered by assignee") {
		t.Errorf("assignee without alarms: %v", ids)
	}

	resp, b := get(t, c, f.srv.URL+"/worklist.csv?region=chengdu")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("CSV: %s %v", resp.Status, resp.Header)
	}
	rows := readUTF8SigCSV(t, []byte(b))
	if len(rows) != 4 || !slices.Equal(rows[0], web.JobSheetCSVHeader) {
		t.Fatalf("CSV rows %q", rows)
	}
	if r := rows[2]; r[0] != "chengdu" || r[1] != chunxiMerchant || r[2] != chunxiAddress || r[3] != "'+86 (28) 8661-2345" || r[5] != "T-1" || r[6] != "hardware_fault" {
		t.Errorf("CSV row of T-1: %q", r)
	}

	// Without the session's CSRF token: refused, nothing done.
	resp, _ = post(t, c, f.srv.URL+"/worklist/site-done", url.Values{"ref": {"acme:T-1", "acme:T-2"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("site visit without CSRF token: %s", resp.Status)
	}
	// Another tenant's terminal in the site form: not found, nothing done.
	other, otherCSRF := f.session(t, "ops-other")
	resp, _ = post(t, other, f.srv.URL+"/worklist/site-done", url.Values{"csrf": {otherCSRF}, "ref": {"acme:T-1", "acme:T-2"}})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("other tenant's site visit: %s", resp.Status)
	}
	resp, _ = post(t, c, f.srv.URL+"/worklist/site-done", url.Values{"csrf": {csrf}, "ref": {"acme:T-1", "acme:T-2"}, "note": {"both printers cleared"}, "region": {"chengdu"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/worklist?region=chengdu&visited=2" {
		t.Fatalf("site visit: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	_, ids = f.page(t, c, resp.Header.Get("Location"), 200)
	if got := ids["worklist-terminal"]; !slices.Equal(got, []string{"T-3"}) || one(t, ids, "notice") != "Visit recorded for 2 terminals." {
		t.Errorf("after the site visit: %q %v", got, ids["notice"])
	}
	for _, id := range []string{"T-1", "T-2"} {
		if h, _ := f.engine.Terminal(posfleet.TerminalRef{Tenant: "acme", Terminal: id}); h.Has(posfleet.FlagHardwareFault) {
			t.Errorf("%s still flagged after the site visit", id)
		}
	}
	resp, _ = post(t, c, f.srv.URL+"/worklist/site-done", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("site visit without terminals: %s", resp.Status)
	}
}

// TestJobSheetAssignee: ?assignee= keeps the terminals whose open alarm is
// assigned to that name, or folded into an incident alarm assigned to it;
// resolved alarms and other tenants' do not count.
func TestJobSheetAssignee(t *testing.T) {
	alarms := newFakeAlarms(time.Now)
	alarms.add(posfleet.Alarm{ID: "a1", Tenant: "acme", Terminal: "T-3", Kind: "hardware_fault", Assignee: "crew-7", State: posfleet.AlarmAssigned})
	alarms.add(posfleet.Alarm{ID: "a2", Tenant: "acme", Terminal: "T-4", Kind: "hardware_fault", Assignee: "crew-7", State: posfleet.AlarmResolved})
	alarms.add(posfleet.Alarm{ID: "inc", Tenant: "acme", Kind: posfleet.AlarmKindIncident, Assignee: "crew-7", State: posfleet.AlarmAssigned})
	alarms.add(posfleet.Alarm{ID: "a3", Tenant: "acme", Terminal: "T-2", Kind: "hardware_fault", Parent: "inc"})
	alarms.add(posfleet.Alarm{ID: "a4", Tenant: "acme", Terminal: "T-1", Kind: "hardware_fault", Assignee: "crew-8", State: posfleet.AlarmAssigned})
	f := newJobFixture(t, func(o *web.Options) { o.Alarms = alarms })
	c, _ := f.session(t, "ops-acme")
	_, ids := f.page(t, c, "/worklist?assignee=crew-7", 200)
	if got := ids["worklist-terminal"]; !slices.Equal(got, []string{"T-3", "T-2"}) || len(ids["worklist-filter-note"]) != 0 {
		t.Errorf("assigned to crew-7: %q %q", got, ids["worklist-filter-note"])
	}
	_, ids = f.page(t, c, "/worklist?assignee=crew-7&region=beijing", 200)
	if len(ids["worklist-terminal"]) != 0 || len(ids["worklist-empty"]) != 1 {
		t.Errorf("crew-7 in Beijing: %v", ids["worklist-terminal"])
	}
}
