package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web"
)

// pageCampaigns is a fake of the campaign package behind web.Campaigns:
// campaigns in memory, a preview that selects 1,200 terminals (2.4.1 and
// 2.4.0), and the state changes the actions make.
type pageCampaigns struct {
	mu        sync.Mutex
	now       func() time.Time
	list      []posfleet.Campaign
	events    map[string][]posfleet.CampaignEvent
	terminals map[string][]posfleet.CampaignTerminal
	// selected is what the preview selects; specs the specs created.
	selected int
	specs    []posfleet.CampaignSpec
	acted    []string
}

var _ web.Campaigns = (*pageCampaigns)(nil)

func newPageCampaigns(now func() time.Time) *pageCampaigns {
	f := &pageCampaigns{now: now, events: map[string][]posfleet.CampaignEvent{}, terminals: map[string][]posfleet.CampaignTerminal{}, selected: 1200}
	f.seed()
	return f
}

// seed: acme's c-1, A920 2.4.1 → 2.5.2, paused by its gate after the
// canary (amount mismatches worse); acme's c-0, finished; other's o-1.
func (f *pageCampaigns) seed() {
	t0 := f.now().Add(-30 * time.Hour)
	spec := posfleet.CampaignSpec{Name: "A920 to 2.5.2", Model: "A920", Target: "2.5.2",
		Package: posfleet.FirmwarePackage{URL: "https://updates.example.net/a920-2.5.2.bin", SHA256: strings.Repeat("ab", 32)},
		Select:  posfleet.CampaignSelector{Versions: []string{"2.4.1"}},
		Waves: []posfleet.WaveSpec{{Count: 5, Soak: posfleet.Duration(24 * time.Hour)}, {Percent: 10, Soak: posfleet.Duration(24 * time.Hour)},
			{Percent: 50, Soak: posfleet.Duration(24 * time.Hour)}, {Percent: 100}},
		MaxInFlight: 50, Window: posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned, Start: "02:00", End: "05:00", Zone: "Asia/Shanghai"}}
	gate := posfleet.GateResult{Wave: 0, At: t0.Add(27 * time.Hour), From: t0.Add(3 * time.Hour), To: t0.Add(27 * time.Hour), Updated: 5, Baseline: 1195,
		Metrics: []posfleet.GateMetric{
			{KPI: posfleet.KPIDeclines, UpdatedEvents: 9, UpdatedExposure: 310, BaselineEvents: 2101, BaselineExposure: 70211, UpdatedRate: 9.0 / 310, BaselineRate: 2101.0 / 70211, Enough: true},
			{KPI: posfleet.KPIAmountMismatch, UpdatedEvents: 37, UpdatedExposure: 41, BaselineEvents: 2, BaselineExposure: 5911, UpdatedRate: 37.0 / 41, BaselineRate: 2.0 / 5911, Enough: true, Worse: true, PValue: 1e-12},
			{KPI: posfleet.KPICrashBoots, UpdatedEvents: 0, UpdatedExposure: 120, BaselineEvents: 3, BaselineExposure: 28680, Enough: false, BaselineRate: 3.0 / 28680},
		}}
	c1 := posfleet.Campaign{ID: "c-1", Tenant: "acme", Spec: spec, State: posfleet.CampaignPaused, Wave: 0, CreatedBy: "ops-acme", CreatedAt: t0, UpdatedAt: gate.At,
		Reason: "gate after wave 1 failed: amount_mismatch",
		Waves: []posfleet.WaveProgress{
			{Index: 0, Size: 5, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTInstalled: 5}, StartedAt: t0, DoneAt: t0.Add(3 * time.Hour)},
			{Index: 1, Size: 115, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTPending: 115}},
			{Index: 2, Size: 480, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTPending: 480}},
			{Index: 3, Size: 600, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTPending: 600}},
		}, Gates: []posfleet.GateResult{gate}}
	f.list = append(f.list, c1)
	f.events["c-1"] = []posfleet.CampaignEvent{
		{At: t0, Kind: "created", By: "ops-acme"},
		{At: t0, Kind: "wave_started", Wave: 0},
		{At: gate.At, Kind: "gate_failed", Wave: 0, Text: "amount_mismatch worse"},
		{At: gate.At, Kind: "paused", Wave: 0},
	}
	for i := range 5 {
		f.terminals["c-1"] = append(f.terminals["c-1"], posfleet.CampaignTerminal{Terminal: fmt.Sprintf("T-%d", i+1), Wave: 0, State: posfleet.CTInstalled,
			From: "2.4.1", SentAt: t0.Add(time.Hour), DoneAt: t0.Add(2 * time.Hour)})
	}
	done := c1
	done.ID, done.State, done.Spec.Name, done.Gates, done.Wave = "c-0", posfleet.CampaignFinished, "A80 to 1.9.0", nil, 3
	done.Spec.Model = "A80"
	f.list = append(f.list, done)
	other := c1
	other.ID, other.Tenant, other.Spec.Name = "o-1", "other", "Other's rollout"
	f.list = append(f.list, other)
}

func (f *pageCampaigns) ListCampaigns(_ context.Context, tenant string) ([]posfleet.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []posfleet.Campaign
	for _, c := range f.list {
		if tenant == "" || c.Tenant == tenant {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *pageCampaigns) Campaign(_ context.Context, id string) (posfleet.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.list {
		if c.ID == id {
			return c, nil
		}
	}
	return posfleet.Campaign{}, posfleet.Errorf(posfleet.NotFound, "not_found", "no campaign %s", id)
}

func (f *pageCampaigns) CampaignTerminals(_ context.Context, id string, state posfleet.CampaignTerminalState, limit int) ([]posfleet.CampaignTerminal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []posfleet.CampaignTerminal
	for _, t := range f.terminals[id] {
		if (state == "" || t.State == state) && len(out) < limit {
			out = append(out, t)
		}
	}
	return out, nil
}

func (f *pageCampaigns) CampaignEvents(_ context.Context, id string) ([]posfleet.CampaignEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events[id]), nil
}

// PreviewCampaign refuses target 9.9.9 as the campaign package would a
// selection that selects nothing, naming the field.
func (f *pageCampaigns) PreviewCampaign(_ context.Context, tenant string, spec posfleet.CampaignSpec) (posfleet.CampaignPreview, error) {
	if spec.Target == "9.9.9" {
		return posfleet.CampaignPreview{}, posfleet.Errorf(posfleet.Invalid, "invalid_campaign", "select.versions: no terminal of model %s runs these versions", spec.Model)
	}
	f.mu.Lock()
	n := f.selected
	f.mu.Unlock()
	p := posfleet.CampaignPreview{Selected: n, Versions: map[string]int{"2.4.1": n - 200, "2.4.0": 200}, WithoutHistory: 17}
	sum := 0
	for _, w := range spec.Waves {
		upTo := w.Count + sum
		if w.Count == 0 {
			upTo = int(float64(n) * w.Percent / 100)
		}
		upTo = min(max(upTo, sum), n)
		p.WaveSizes = append(p.WaveSizes, upTo-sum)
		sum = upTo
	}
	return p, nil
}

func (f *pageCampaigns) CreateCampaign(_ context.Context, tenant string, spec posfleet.CampaignSpec, by string) (posfleet.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := posfleet.Campaign{ID: fmt.Sprintf("c-%d", len(f.list)+1), Tenant: tenant, Spec: spec, State: posfleet.CampaignRunning, CreatedBy: by,
		CreatedAt: f.now(), UpdatedAt: f.now()}
	for i := range spec.Waves {
		c.Waves = append(c.Waves, posfleet.WaveProgress{Index: i, Size: 10, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTQueued: 10}})
	}
	f.list = append(f.list, c)
	f.specs = append(f.specs, spec)
	f.events[c.ID] = []posfleet.CampaignEvent{{At: f.now(), Kind: "created", By: by}}
	return c, nil
}

func (f *pageCampaigns) ActOnCampaign(_ context.Context, id string, act posfleet.CampaignAction, by, note string) (posfleet.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.list {
		if c.ID != id {
			continue
		}
		next := map[posfleet.CampaignAction]posfleet.CampaignState{posfleet.CampaignPause: posfleet.CampaignPaused, posfleet.CampaignResume: posfleet.CampaignRunning,
			posfleet.CampaignAbort: posfleet.CampaignAborted, posfleet.CampaignRollback: posfleet.CampaignRollingBack}[act]
		if c.State.Ended() || (act == posfleet.CampaignResume) != (c.State == posfleet.CampaignPaused) && act != posfleet.CampaignAbort && act != posfleet.CampaignRollback {
			return c, posfleet.Errorf(posfleet.Conflict, "campaign_state", "campaign %s is %s", id, c.State)
		}
		c.State, c.UpdatedAt = next, f.now()
		f.list[i] = c
		f.acted = append(f.acted, fmt.Sprintf("%s %s by %s: %s", id, act, by, note))
		kind := map[posfleet.CampaignAction]string{posfleet.CampaignPause: "paused", posfleet.CampaignResume: "resumed", posfleet.CampaignAbort: "aborted", posfleet.CampaignRollback: "rollback"}[act]
		f.events[id] = append(f.events[id], posfleet.CampaignEvent{At: f.now(), Kind: kind, By: by, Text: note})
		return c, nil
	}
	return posfleet.Campaign{}, posfleet.Errorf(posfleet.NotFound, "not_found", "no campaign %s", id)
}

// campaignPagesFixture is the web server over a real health engine (two A920
// terminals of acme, on 2.4.1 and 2.4.0, and a policy with target 2.5.2)
// and fake campaigns, with a person of every role.
type campaignPagesFixture struct {
	srv   *httptest.Server
	camp  *pageCampaigns
	audit *memAudit
	now   time.Time
}

func newCampaignPagesFixture(t *testing.T, withPackage bool) *campaignPagesFixture {
	t.Helper()
	f := &campaignPagesFixture{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return f.now }
	cfg := health.DefaultConfig()
	cfg.Now = clock
	cfg.Site = func(r posfleet.TerminalRef) (health.Site, bool) {
		return health.Site{Model: "A920", Merchant: "M-" + r.Terminal, Region: "north"}, true
	}
	engine := health.New(cfg)
	pol := "models:\n  A920:\n    target: 2.5.2\n"
	if withPackage {
		pol += "    url: https://updates.example.net/a920-2.5.2.bin\n    sha256: " + strings.Repeat("ab", 32) + "\n"
	}
	if err := engine.SetPolicy([]byte(pol)); err != nil {
		t.Fatal(err)
	}
	for i, ref := range []posfleet.TerminalRef{{Tenant: "acme", Terminal: "T-1"}, {Tenant: "acme", Terminal: "T-2"}} {
		payload := fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","firmware":"2.4.%d"}`, f.now.Add(-time.Minute).Format(time.RFC3339), 1-i)
		msg, err := posfleet.Decode(ref, posfleet.ChannelFirmware, []byte(payload), f.now)
		if err != nil {
			t.Fatal(err)
		}
		engine.Observe(msg)
	}
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	ctx := context.Background()
	for _, u := range []posfleet.User{
		{Name: "root", Tenant: auth.AllTenants, Role: posfleet.RoleAdministrator},
		{Name: "ops-acme", Tenant: "acme", Role: posfleet.RoleOperator},
		{Name: "ops-other", Tenant: "other", Role: posfleet.RoleOperator},
		{Name: "view-acme", Tenant: "acme", Role: posfleet.RoleViewer},
		{Name: "crew-acme", Tenant: "acme", Role: posfleet.RoleCrew, Regions: []string{"north"}},
		{Name: "zh-acme", Tenant: "acme", Role: posfleet.RoleOperator, Language: locale.Chinese, TimeZone: "Asia/Shanghai"},
	} {
		if err := users.NewUser(ctx, u, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
		if u.Language != "" {
			if err := users.SetPreferences(ctx, u.Name, u.Language, u.TimeZone); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.camp, f.audit = newPageCampaigns(clock), &memAudit{}
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key, Health: engine, Commands: commands.New(), Campaigns: f.camp, Now: clock, Audit: f.audit})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// session signs user in: a client with its cookie, and the CSRF token.
func (f *campaignPagesFixture) session(t *testing.T, user string) (*http.Client, string) {
	t.Helper()
	c := browser(t)
	resp, _ := postLogin(t, f.srv.URL, c, url.Values{"name": {user}, "password": {"correct horse battery"}, "next": {"/security"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in %s: %s", user, resp.Status)
	}
	_, page := get(t, c, f.srv.URL+"/security")
	return c, attr(t, page, "csrf")
}

func (f *campaignPagesFixture) page(t *testing.T, c *http.Client, path string, status int) (string, map[string][]string) {
	t.Helper()
	resp, body := get(t, c, f.srv.URL+path)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %s, want %d: %.300s", path, resp.Status, status, body)
	}
	return body, testIDs(t, body)
}

func (f *campaignPagesFixture) post(t *testing.T, c *http.Client, path string, form url.Values, status int) (string, map[string][]string, *http.Response) {
	t.Helper()
	resp, body := post(t, c, f.srv.URL+path, form)
	if resp.StatusCode != status {
		t.Fatalf("POST %s: %s, want %d: %.500s", path, resp.Status, status, body)
	}
	return body, testIDs(t, body), resp
}

func wantIn(t *testing.T, what, page string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(page, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

// TestCampaignPagesEnglish: the list (state, wave "1 of 4", progress,
// the New campaign link), a paused campaign's page (why in words, the
// waves' counts, the gate's KPI bars with the numbers written and the
// verdicts in words, the timeline, the terminals linked to their pages,
// the actions a paused campaign allows, with CSRF, the live refresh).
func TestCampaignPagesEnglish(t *testing.T) {
	f := newCampaignPagesFixture(t, true)
	c, csrf := f.session(t, "ops-acme")
	page, ids := f.page(t, c, "/campaigns", http.StatusOK)
	if n := len(ids["campaign-row"]); n != 2 {
		t.Fatalf("%d campaigns listed, want acme's 2", n)
	}
	wantIn(t, "the list", page, `href="/campaigns/c-1"`, "A920 to 2.5.2", "2.4.1 → 2.5.2", ">paused<", "wave 1 of 4", "5 / 1,200", "ops-acme",
		`data-testid="campaign-new"`, `data-testid="nav-campaigns"`, "2026-03-02 06:00:00 UTC")
	if strings.Contains(page, "Other's rollout") {
		t.Error("another tenant's campaign listed")
	}
	_, ids = f.page(t, c, "/campaigns?state=finished", http.StatusOK)
	if got := ids["campaign-row"]; len(got) != 1 || !strings.Contains(got[0], "A80 to 1.9.0") {
		t.Errorf("finished campaigns: %q", got)
	}

	page, ids = f.page(t, c, "/campaigns/c-1", http.StatusOK)
	wantIn(t, "the campaign's page", page,
		"Paused by its gate after Canary: 5 terminals (2026-03-02 06:00:00 UTC): Amount mismatches worse on the updated terminals than on those not yet updated.",
		`data-refresh="10"`, `src="/static/campaign.js"`,
		// The gate: numbers written next to the bars, the verdicts in words, no p-value.
		"90.24%", "0.03%", "37 of 41 approved sales", "2 of 5,911 approved sales", ">worse<", ">not enough data<", ">passed<",
		"0 in 120 terminal-hours", "5 updated terminals against 1,195 of the same model not yet updated",
		// Terminals and the timeline.
		`href="/terminals/acme/T-1"`, ">gate failed<", "Wave 2: up to 10% of the selection",
		// The actions of a paused campaign, each a form with the CSRF token.
		`action="/campaigns/c-1/resume"`, `action="/campaigns/c-1/abort"`, `action="/campaigns/c-1/rollback"`, `name="csrf" value="`+csrf+`"`)
	if strings.Contains(page, `action="/campaigns/c-1/pause"`) || strings.Contains(page, "e-12") {
		t.Error("a paused campaign offers pause, or the page shows a p-value")
	}
	if got := ids["wave-installed"]; len(got) != 4 || got[0] != "5" {
		t.Errorf("installed per wave: %q", got)
	}
	if got := ids["wave-pending"]; len(got) != 4 || got[3] != "600" {
		t.Errorf("later waves per wave: %q", got)
	}
	if n := len(ids["gate-kpi"]); n != 3 {
		t.Errorf("%d KPI charts, want 3", n)
	}
	if missing := locale.Missing(); len(missing) > 0 {
		t.Errorf("untranslated: %v", missing)
	}
	// An ended campaign does not refresh itself and offers no action.
	page, ids = f.page(t, c, "/campaigns/c-0", http.StatusOK)
	if len(ids["campaign-actions"]) != 0 || strings.Contains(page, "campaign.js") || !strings.Contains(page, "every wave passed its gate") {
		t.Error("a finished campaign offers actions, refreshes itself or does not say it finished")
	}
	// Another tenant's campaign is not found.
	f.page(t, c, "/campaigns/o-1", http.StatusNotFound)
	f.page(t, c, "/campaigns/nope", http.StatusNotFound)
}

// TestCampaignPagesChinese: the list, a campaign's page, the form and a
// confirmation for a reader of Chinese in UTC+8; nothing untranslated.
func TestCampaignPagesChinese(t *testing.T) {
	f := newCampaignPagesFixture(t, true)
	c, csrf := f.session(t, "zh-acme")
	page, _ := f.page(t, c, "/campaigns", http.StatusOK)
	wantIn(t, "the list", page, "固件升级批次", "已暂停", "第 1 批，共 4 批", "5 / 1,200", "2026-03-02 14:00:00 UTC+8", "新建升级批次")
	page, _ = f.page(t, c, "/campaigns/c-1", http.StatusOK)
	wantIn(t, "the campaign's page", page, "门禁检查", "金额不符", "41 笔已批准消费中 37 笔", "变差", "数据不足", "通过", "已升级终端", "未升级终端",
		"已升级 5 台，共 1,200 台", "时间线", "继续", "回滚", "2026-03-02 14:00:00 UTC+8", "比未升级终端更差")
	page, _ = f.page(t, c, "/campaigns/new", http.StatusOK)
	wantIn(t, "the form", page, "新建固件升级批次", "升级包 SHA-256", "灰度", "观察期", "允许升级的时间", `value="Asia/Shanghai"`, "预览")
	page, _, _ = f.post(t, c, "/campaigns/c-1/rollback", url.Values{"csrf": {csrf}}, http.StatusOK)
	wantIn(t, "the confirmation", page, "将 5 台终端回滚到原版本？")
	page, _, _ = f.post(t, c, "/campaigns/new", url.Values{"csrf": {csrf}, "step": {"preview"}, "name": {"x"}, "model": {"A920"}, "target": {"2.5.2"},
		"package_url": {"ftp://x"}, "package_sha256": {"abc"}, "canary": {"5"}, "canary_soak": {"2h"}, "max_in_flight": {"10"}, "window_mode": {"any"}}, http.StatusBadRequest)
	wantIn(t, "the refused form", page, "需要升级包的 SHA-256：64 个十六进制字符。", "需要带主机名的完整 https 地址")
	if missing := locale.Missing(); len(missing) > 0 {
		t.Errorf("untranslated: %v", missing)
	}
}

// validForm is a new campaign form as a release engineer fills it in.
func validForm(csrf string) url.Values {
	return url.Values{"csrf": {csrf}, "name": {"A920 to 2.5.2"}, "model": {"A920"}, "target": {"2.5.2"},
		"package_url": {"https://updates.example.net/a920-2.5.2.bin"}, "package_sha256": {strings.Repeat("AB", 32)},
		"regions": {"north, south"}, "versions": {"2.4.1,2.4.0"}, "terminals": {""},
		"canary": {"5"}, "canary_soak": {"24h"}, "wave_percent": {"10", "50", "100", "", ""}, "wave_soak": {"24h", "24h", "24h", "", ""},
		"max_in_flight": {"50"}, "window_mode": {"learned"}, "window_start": {"02:00"}, "window_end": {"05:00"}, "window_zone": {"Asia/Shanghai"},
		"rollback": {"2.4.1 https://updates.example.net/a920-2.4.1.bin " + strings.Repeat("CD", 32) + "\r\n\r\n"}}
}

// TestNewCampaignForm: the form prefilled from the Firmware page's link;
// a refused field says why next to it and the form keeps what was typed;
// a refusal of the campaign package lands next to the field it names; the
// preview shows the selection, its versions, the wave sizes and the
// terminals without history, and creating takes the previewed count.
func TestNewCampaignForm(t *testing.T) {
	f := newCampaignPagesFixture(t, true)
	c, csrf := f.session(t, "ops-acme")
	page, _ := f.page(t, c, "/campaigns/new?model=A920&target=2.5.2&versions=2.4.0,2.4.1&url=https://updates.example.net/a.bin&sha256="+strings.Repeat("ab", 32), http.StatusOK)
	wantIn(t, "the prefilled form", page, `name="model" value="A920"`, `name="target" value="2.5.2"`, `name="versions" value="2.4.0,2.4.1"`,
		`name="package_url" type="url" value="https://updates.example.net/a.bin"`, `value="A920 to 2.5.2"`, `<option value="A920">`,
		// The defaults.
		`name="canary" type="number" min="0" max="100000" inputmode="numeric" size="5" value="5"`, `name="canary_soak" size="5" value="24h"`, `value="10"`, `value="100"`,
		`name="max_in_flight" type="number" min="1" max="100000" inputmode="numeric" value="50"`, `value="learned" checked`, `value="02:00"`, `value="UTC"`)

	// A refused field: the message next to it, what was typed kept.
	form := validForm(csrf)
	form.Set("package_sha256", "not-a-checksum")
	form.Set("wave_percent", "10")
	form.Add("wave_percent", "5")
	form.Set("name", "Spring rollout")
	page, ids, _ := f.post(t, c, "/campaigns/new", form, http.StatusBadRequest)
	if got := one(t, ids, "error-package_sha256"); got != "Want the package's SHA-256: 64 hexadecimal characters." {
		t.Errorf("the checksum's refusal: %q", got)
	}
	if got := one(t, ids, "error-wave_1"); !strings.Contains(got, "larger than the one before (10%)") {
		t.Errorf("the shrinking wave's refusal: %q", got)
	}
	// Next to its field: inside the same label, right after the input.
	if i, j := strings.Index(page, `name="package_sha256"`), strings.Index(page, `data-testid="error-package_sha256"`); i < 0 || j < i || j-i > 400 {
		t.Error("the checksum's refusal is not next to its field")
	}
	wantIn(t, "the refused form", page, `value="Spring rollout"`, `value="not-a-checksum"`, `value="north, south"`, `aria-describedby="err-package_sha256"`)

	// A rollback line without its checksum.
	form = validForm(csrf)
	form.Set("rollback", "2.4.1 https://updates.example.net/a920-2.4.1.bin")
	_, ids, _ = f.post(t, c, "/campaigns/new", form, http.StatusBadRequest)
	if got := one(t, ids, "error-rollback"); !strings.HasPrefix(got, "Line 1: want a version") {
		t.Errorf("the rollback line's refusal: %q", got)
	}

	// The campaign package's refusal lands next to the field it names.
	form = validForm(csrf)
	form.Set("target", "9.9.9")
	_, ids, _ = f.post(t, c, "/campaigns/new", form, http.StatusBadRequest)
	if got := one(t, ids, "error-versions"); !strings.Contains(got, "no terminal of model A920 runs these versions") {
		t.Errorf("the package's refusal by field: %q", got)
	}

	// The preview.
	page, ids, _ = f.post(t, c, "/campaigns/new", validForm(csrf), http.StatusOK)
	if got := one(t, ids, "preview-selected"); got != "1,200 A920 terminals selected to update to 2.5.2." {
		t.Errorf("preview: %q", got)
	}
	if got := one(t, ids, "preview-waves"); got != "Wave sizes: 5 / 115 / 480 / 600" {
		t.Errorf("wave sizes: %q", got)
	}
	wantIn(t, "the preview", page, "2.4.1: 1,000 terminals", "2.4.0: 200 terminals",
		"17 terminals have too little sales history for a learned window: they are updated between 02:00 and 05:00.",
		`name="confirm" value="1200"`, "Create the campaign (1,200 terminals)",
		// 2.4.0 has no package to roll back to: neither given nor the policy's target.
		"A rollback would have no package for 2.4.0:", "https://updates.example.net/a920-2.4.1.bin", "Canary: 5 terminals, then a soak of 24 h", "Wave 4: up to 100% of the selection, then a soak of 24 h")
	if len(f.camp.specs) != 0 {
		t.Fatal("a preview created a campaign")
	}
	// "Change" returns to the form with the values.
	form = validForm(csrf)
	form.Set("step", "edit")
	page, _, _ = f.post(t, c, "/campaigns/new", form, http.StatusOK)
	wantIn(t, "the form again", page, `data-testid="campaign-form"`, `value="north, south"`)

	// The fleet changed between preview and confirm: asked again.
	form = validForm(csrf)
	form.Set("step", "create")
	form.Set("confirm", "1100")
	_, ids, _ = f.post(t, c, "/campaigns/new", form, http.StatusConflict)
	if len(ids["preview-changed"]) != 1 || len(f.camp.specs) != 0 {
		t.Error("a changed selection created a campaign without asking again")
	}
	form.Set("confirm", "1200")
	_, _, resp := f.post(t, c, "/campaigns/new", form, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/campaigns/c-4?done=created" {
		t.Errorf("created: to %q", loc)
	}
	if len(f.camp.specs) != 1 {
		t.Fatalf("%d campaigns created", len(f.camp.specs))
	}
	s := f.camp.specs[0]
	want := []posfleet.WaveSpec{{Count: 5, Soak: posfleet.Duration(24 * time.Hour)}, {Percent: 10, Soak: posfleet.Duration(24 * time.Hour)},
		{Percent: 50, Soak: posfleet.Duration(24 * time.Hour)}, {Percent: 100, Soak: posfleet.Duration(24 * time.Hour)}}
	if !slices.Equal(s.Waves, want) || s.Package.SHA256 != strings.Repeat("ab", 32) || !slices.Equal(s.Select.Regions, []string{"north", "south"}) ||
		!slices.Equal(s.Select.Versions, []string{"2.4.1", "2.4.0"}) || s.MaxInFlight != 50 ||
		s.Window != (posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned, Start: "02:00", End: "05:00", Zone: "Asia/Shanghai"}) ||
		!slices.Equal(s.Rollback, []posfleet.RollbackPackage{{Version: "2.4.1", Package: posfleet.FirmwarePackage{URL: "https://updates.example.net/a920-2.4.1.bin", SHA256: strings.Repeat("cd", 32)}}}) {
		t.Errorf("created spec %+v", s)
	}
	page, ids = f.page(t, c, "/campaigns/c-4?done=created", http.StatusOK)
	if len(ids["notice"]) != 1 || !strings.Contains(page, `data-refresh="10"`) {
		t.Error("the new campaign's page: no notice or no live refresh")
	}
	// The audit log: previews and refused forms as previews; creating (once
	// refused for the changed count) as creations.
	f.audit.mu.Lock()
	var actions []string
	for _, e := range f.audit.entries {
		actions = append(actions, e.Action+" "+e.Outcome)
	}
	f.audit.mu.Unlock()
	if got := strings.Join(actions, ", "); got != "sign_in ok, campaign_preview bad_request, campaign_preview bad_request, campaign_preview bad_request, campaign_preview ok, campaign_preview ok, campaign_create conflict, campaign_create ok" {
		t.Errorf("audit entries: %s", got)
	}
}

// TestCampaignActions: each action asks first, with a count; confirmed,
// it acts by the caller with the note and returns to the page; an action
// the state no longer allows says so on the page.
func TestCampaignActions(t *testing.T) {
	f := newCampaignPagesFixture(t, true)
	c, csrf := f.session(t, "ops-acme")
	page, ids, _ := f.post(t, c, "/campaigns/c-1/rollback", url.Values{"csrf": {csrf}}, http.StatusOK)
	if got := one(t, ids, "confirm-question"); got != "Roll back 5 terminals to their previous version?" {
		t.Errorf("rollback question: %q", got)
	}
	wantIn(t, "the confirmation", page, `name="confirm" value="yes"`, `href="/campaigns/c-1"`)
	_, ids, _ = f.post(t, c, "/campaigns/c-1/resume", url.Values{"csrf": {csrf}}, http.StatusOK)
	if got := one(t, ids, "confirm-question"); got != "Resume “A920 to 2.5.2”? 1,195 terminals are still to be updated." {
		t.Errorf("resume question: %q", got)
	}
	if len(f.camp.acted) != 0 {
		t.Fatal("asking acted")
	}
	_, _, resp := f.post(t, c, "/campaigns/c-1/resume", url.Values{"csrf": {csrf}, "confirm": {"yes"}, "note": {"fee bug fixed in the acquirer"}}, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/campaigns/c-1?done=resume" {
		t.Errorf("after resume: to %q", loc)
	}
	if !slices.Equal(f.camp.acted, []string{"c-1 resume by ops-acme: fee bug fixed in the acquirer"}) {
		t.Errorf("acted: %q", f.camp.acted)
	}
	page, ids = f.page(t, c, "/campaigns/c-1?done=resume", http.StatusOK)
	if one(t, ids, "notice") != "Campaign resumed." || one(t, ids, "campaign-state") != "running" || !strings.Contains(page, `action="/campaigns/c-1/pause"`) {
		t.Error("the page after resume")
	}
	// Resuming a running campaign (another tab resumed it meanwhile).
	page, ids, _ = f.post(t, c, "/campaigns/c-1/resume", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, http.StatusConflict)
	if got := one(t, ids, "action-error"); got != "A running campaign cannot do “Resume”: the page shows its state now." {
		t.Errorf("conflict: %q", got)
	}
	// No CSRF token: refused.
	resp, _ = post(t, c, f.srv.URL+"/campaigns/c-1/pause", url.Values{"confirm": {"yes"}})
	if resp.StatusCode != http.StatusForbidden || len(f.camp.acted) != 1 {
		t.Errorf("without CSRF: %s, %d actions", resp.Status, len(f.camp.acted))
	}
	// Unknown action, another tenant's campaign.
	f.post(t, c, "/campaigns/c-1/explode", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, http.StatusNotFound)
	f.post(t, c, "/campaigns/o-1/pause", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, http.StatusNotFound)
	_ = page
}

// TestCampaignRoles: a viewer reads the list and a campaign's page but
// sees no button and may not create or act; a crew does not see
// campaigns at all; an administrator of every tenant names the tenant.
func TestCampaignRoles(t *testing.T) {
	f := newCampaignPagesFixture(t, true)
	v, csrf := f.session(t, "view-acme")
	page, ids := f.page(t, v, "/campaigns", http.StatusOK)
	if len(ids["campaign-row"]) != 2 || len(ids["campaign-new"]) != 0 || len(ids["nav-campaigns"]) != 1 {
		t.Errorf("viewer's list: %d rows, new link %v", len(ids["campaign-row"]), ids["campaign-new"])
	}
	page, ids = f.page(t, v, "/campaigns/c-1", http.StatusOK)
	if len(ids["campaign-actions"]) != 0 || strings.Contains(page, `action="/campaigns/c-1/`) {
		t.Error("a viewer sees action buttons")
	}
	f.page(t, v, "/campaigns/new", http.StatusForbidden)
	f.post(t, v, "/campaigns/c-1/pause", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, http.StatusForbidden)
	f.post(t, v, "/campaigns/new", validForm(csrf), http.StatusForbidden)

	crew, ccsrf := f.session(t, "crew-acme")
	_, ids = f.page(t, crew, "/security", http.StatusOK)
	if len(ids["nav-campaigns"]) != 0 {
		t.Error("a crew's navigation shows campaigns")
	}
	f.page(t, crew, "/campaigns", http.StatusForbidden)
	f.page(t, crew, "/campaigns/c-1", http.StatusForbidden)
	f.page(t, crew, "/campaigns/new", http.StatusForbidden)
	f.post(t, crew, "/campaigns/c-1/pause", url.Values{"csrf": {ccsrf}, "confirm": {"yes"}}, http.StatusForbidden)

	root, rcsrf := f.session(t, "root")
	_, ids = f.page(t, root, "/campaigns", http.StatusOK)
	if len(ids["campaign-row"]) != 3 {
		t.Errorf("the administrator sees %d campaigns, want every tenant's 3", len(ids["campaign-row"]))
	}
	_, ids = f.page(t, root, "/campaigns/new", http.StatusOK)
	if len(ids["field-tenant"]) != 1 {
		t.Error("the administrator's form does not ask for the tenant")
	}
	_, ids, _ = f.post(t, root, "/campaigns/new", validForm(rcsrf), http.StatusBadRequest)
	if len(ids["error-tenant"]) != 1 {
		t.Error("no tenant named, no refusal")
	}
	form := validForm(rcsrf)
	form.Set("tenant", "acme")
	f.post(t, root, "/campaigns/new", form, http.StatusOK)
	if len(f.camp.acted)+len(f.camp.specs) != 0 {
		t.Error("the refused people changed something")
	}
}

// TestFirmwarePageCreatesCampaign: with campaigns, the Firmware page
// links each model behind its target to a prefilled new campaign (the
// policy's package when it has one) instead of updating all at once.
func TestFirmwarePageCreatesCampaign(t *testing.T) {
	for _, withPackage := range []bool{true, false} {
		f := newCampaignPagesFixture(t, withPackage)
		c, _ := f.session(t, "ops-acme")
		page, ids := f.page(t, c, "/firmware", http.StatusOK)
		if len(ids["bulk-send"]) != 0 {
			t.Error("the bulk update is still offered")
		}
		if got := one(t, ids, "campaign-create-link"); got != "Create a campaign for 2 A920 terminals" {
			t.Errorf("link text %q", got)
		}
		want := "/campaigns/new?model=A920&amp;sha256=" + strings.Repeat("ab", 32) + "&amp;target=2.5.2&amp;url=https%3A%2F%2Fupdates.example.net%2Fa920-2.5.2.bin&amp;versions=2.4.0%2C2.4.1"
		if !withPackage {
			want = "/campaigns/new?model=A920&amp;target=2.5.2&amp;versions=2.4.0%2C2.4.1"
		}
		wantIn(t, fmt.Sprintf("the firmware page (package %v)", withPackage), page, `href="`+want+`"`)
		// The link opens the form, asking for the package when the policy has none.
		page, _ = f.page(t, c, strings.ReplaceAll(want, "&amp;", "&"), http.StatusOK)
		if withPackage == strings.Contains(page, `name="package_url" type="url" value=""`) {
			t.Errorf("package %v: the form's package URL", withPackage)
		}
		v, _ := f.session(t, "view-acme")
		_, ids = f.page(t, v, "/firmware", http.StatusOK)
		if len(ids["campaign-create-link"]) != 0 || len(ids["bulk-not-allowed"]) != 1 {
			t.Error("a viewer is offered a campaign")
		}
	}
}
