package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

// The browser test of issue 16 item 3: a release engineer creates a
// campaign through the form (preview, then confirm), watches its waves
// fill on its page (which refreshes itself), pauses it and resumes it,
// each at 1440 px and 390 px without sideways scrolling. Screenshots:
// out/screenshots/campaign-<page>-<width>.png.

const campaignSHA = "5f2b0c7e9d1a4b3c8e6f0a2d4c6b8e0f1a3c5e7d9b1f3a5c7e9d0b2f4a6c8e01"

func TestCampaignBrowser(t *testing.T) {
	site := newFakeCampaignSite(t)
	b := &tab{t: t, ctx: browser(t), base: site.base, role: "campaign"}
	byID := func(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }
	// noSideways checks the page at 390 px does not scroll sideways.
	noSideways := func(page string) {
		t.Helper()
		b.do("phone width", chromedp.EmulateViewport(390, 844))
		if w := b.eval(`String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("%s at 390 px is %s px wide: it scrolls sideways", page, w)
		}
		b.do("desktop width", chromedp.EmulateViewport(1440, 900))
	}
	// waitLong polls cond (JS) for up to 25 s: the page refreshes itself
	// every 10 s.
	waitLong := func(what, cond string) {
		t.Helper()
		for deadline := time.Now().Add(25 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			if s, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`)); err == nil && s {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page never showed %s", what)
			}
		}
	}
	text := func(id string) string {
		return b.eval(`(document.querySelector('[data-testid="` + id + `"]') || {innerText: ""}).innerText.trim()`)
	}

	b.signIn("zhaolei", 1440)
	b.open("/campaigns")
	b.waitFor("the campaign list", `document.querySelector('[data-testid="campaign-new"]')`)
	b.shoot("list")
	noSideways("the list")

	// The form, as the Firmware page's link opens it for the A920s.
	b.do("new campaign", chromedp.Click(byID("campaign-new")), chromedp.WaitVisible(byID("campaign-form")))
	for _, f := range []struct{ id, v string }{
		{"field-name", "A920 to 2.5.2"}, {"field-model", "A920"}, {"field-target", "2.5.2"},
		{"field-package-url", "https://updates.example.net/a920-2.5.2.bin"}, {"field-package-sha256", campaignSHA},
	} {
		b.do("type "+f.id, chromedp.SendKeys(byID(f.id), f.v))
	}
	// A canary of 2, then half, then all, with short soaks; at any time.
	b.eval(`(() => {
		const set = (sel, v) => { const e = document.querySelector(sel); e.value = v; e.dispatchEvent(new Event("input", {bubbles: true})); };
		set('[name="canary"]', "2"); set('[name="canary_soak"]', "1m");
		const p = document.querySelectorAll('[name="wave_percent"]'), s = document.querySelectorAll('[name="wave_soak"]');
		p[0].value = "50"; s[0].value = "1m"; p[1].value = "100"; s[1].value = "0"; p[2].value = ""; s[2].value = "";
		document.querySelector('[name="window_mode"][value="any"]').checked = true;
		return "ok";
	})()`)
	b.shoot("form")
	noSideways("the form")
	b.do("preview", chromedp.Click(byID("campaign-preview")), chromedp.WaitVisible(byID("preview-selected")))
	if got, want := text("preview-selected"), fmt.Sprintf("%d A920 terminals selected to update to 2.5.2.", site.selected); got != want {
		t.Errorf("preview: %q, want %q", got, want)
	}
	if got := text("preview-waves"); got != "Wave sizes: 2 / 4 / 6" {
		t.Errorf("preview waves: %q", got)
	}
	b.shoot("preview")
	noSideways("the preview")
	b.do("create", chromedp.Click(byID("campaign-create")))
	b.waitFor("the new campaign's page", `document.querySelector('[data-testid="campaign-state"]') && document.querySelector('[data-testid="notice"]')`)
	if got := text("campaign-state"); got != "running" {
		t.Errorf("a new campaign is %q", got)
	}
	id := site.lastID()
	if id == "" {
		t.Fatal("no campaign created")
	}

	// Watching: the page refreshes itself (no reload) as the waves fill.
	waitLong("the canary installed, shown by the page's own refresh", `document.documentElement.getAttribute("data-refreshed") &&
		document.querySelector('[data-testid="wave"][data-wave="0"] [data-testid="wave-installed"]').innerText.trim() === "2"`)
	if got := text("campaign-wave"); !strings.HasPrefix(got, "wave ") {
		t.Errorf("current wave %q", got)
	}
	b.shoot("running")
	noSideways("the running campaign")

	// Pause, with a confirmation that says how many updates are under way.
	b.do("pause", chromedp.Click(byID("campaign-pause")), chromedp.WaitVisible(byID("confirm-question")))
	if q := text("confirm-question"); !strings.HasPrefix(q, "Pause “A920 to 2.5.2”?") {
		t.Errorf("pause question %q", q)
	}
	b.shoot("confirm-pause")
	noSideways("the confirmation")
	b.do("note", chromedp.SendKeys(byID("confirm-note"), "waiting for the acquirer's go"))
	b.do("confirm pause", chromedp.Click(byID("confirm-submit")))
	b.waitFor("paused", `(document.querySelector('[data-testid="campaign-state"]') || {innerText: ""}).innerText.trim() === "paused"`)
	if why := text("campaign-why"); !strings.HasPrefix(why, "Paused by zhaolei at ") {
		t.Errorf("why paused: %q", why)
	}
	b.shoot("paused")
	if site.state(id) != posfleet.CampaignPaused {
		t.Fatalf("the page says paused, the campaign is %s", site.state(id))
	}

	// Resume, with the count still to update.
	b.do("resume", chromedp.Click(byID("campaign-resume")), chromedp.WaitVisible(byID("confirm-question")))
	if q := text("confirm-question"); !strings.Contains(q, "still to be updated") {
		t.Errorf("resume question %q", q)
	}
	b.do("confirm resume", chromedp.Click(byID("confirm-submit")))
	b.waitFor("running again", `(document.querySelector('[data-testid="campaign-state"]') || {innerText: ""}).innerText.trim() === "running"`)
	if site.state(id) != posfleet.CampaignRunning {
		t.Fatalf("the page says running, the campaign is %s", site.state(id))
	}
	if timeline := strings.Join(b.strings(testIDs("event", `e.getAttribute("data-kind")`)), ","); !strings.Contains(timeline, "paused,resumed") {
		t.Errorf("timeline %s: no pause then resume", timeline)
	}
	// The rest of the waves, watched without reloading.
	waitLong("the campaign finished", `(document.querySelector('[data-testid="campaign-state"]') || {innerText: ""}).innerText.trim() === "finished"`)
	if got, want := text("campaign-progress"), fmt.Sprintf("%d of %d terminals updated", site.selected, site.selected); got != want {
		t.Errorf("finished: %q, want %q", got, want)
	}
	b.shoot("finished")
	noSideways("the finished campaign")

	// A campaign its gate paused: the KPI comparison with the numbers,
	// the verdicts in words.
	b.open("/campaigns/g-1")
	b.waitFor("the gate", `document.querySelector('[data-testid="gate"]')`)
	if why := text("campaign-why"); !strings.Contains(why, "Amount mismatches worse on the updated terminals") {
		t.Errorf("why paused: %q", why)
	}
	verdicts := strings.Join(b.strings(testIDs("gate-verdict", `e.innerText.trim()`)), ",")
	if verdicts != "passed,passed,worse,not enough data" {
		t.Errorf("verdicts %s", verdicts)
	}
	b.shoot("gate")
	noSideways("the gate")
}

// fakeCampaignSite is the web side over an in-process fake of the
// campaign package whose terminals move on one step every 700 ms: the
// fallback while the real runner is not merged.
type fakeCampaignSite struct {
	base     string
	selected int
	mu       sync.Mutex
	list     []posfleet.Campaign
	events   map[string][]posfleet.CampaignEvent
}

func newFakeCampaignSite(t *testing.T) *fakeCampaignSite {
	t.Helper()
	ctx := context.Background()
	users, err := auth.New(ctx, storetest.SQLite(t), auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	if err := users.NewUser(ctx, posfleet.User{Name: "zhaolei", Tenant: "acme", Role: posfleet.RoleOperator}, peoplePassword); err != nil {
		t.Fatal(err)
	}
	s := &fakeCampaignSite{selected: 12, events: map[string][]posfleet.CampaignEvent{}}
	s.seedGate()
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key, Campaigns: s})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s.base = srv.URL
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		tick := time.NewTicker(700 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				s.step()
			}
		}
	}()
	return s
}

// seedGate adds g-1: A920 to 2.5.0 (the fee firmware), paused by its gate
// after the canary on amount mismatches, as the runner leaves it.
func (s *fakeCampaignSite) seedGate() {
	t0 := time.Now().Add(-26 * time.Hour).Truncate(time.Minute)
	gate := posfleet.GateResult{Wave: 0, At: t0.Add(25 * time.Hour), From: t0.Add(time.Hour), To: t0.Add(25 * time.Hour), Updated: 5, Baseline: 1195,
		Metrics: []posfleet.GateMetric{
			{KPI: posfleet.KPIDeclines, UpdatedEvents: 9, UpdatedExposure: 310, BaselineEvents: 2101, BaselineExposure: 70211, UpdatedRate: 9.0 / 310, BaselineRate: 2101.0 / 70211, Enough: true},
			{KPI: posfleet.KPIDeviceFailures, UpdatedEvents: 2, UpdatedExposure: 322, BaselineEvents: 640, BaselineExposure: 72034, UpdatedRate: 2.0 / 322, BaselineRate: 640.0 / 72034, Enough: true},
			{KPI: posfleet.KPIAmountMismatch, UpdatedEvents: 37, UpdatedExposure: 41, BaselineEvents: 2, BaselineExposure: 5911, UpdatedRate: 37.0 / 41, BaselineRate: 2.0 / 5911, Enough: true, Worse: true},
			{KPI: posfleet.KPICrashBoots, UpdatedExposure: 120, BaselineEvents: 3, BaselineExposure: 28680, BaselineRate: 3.0 / 28680},
		}}
	c := posfleet.Campaign{ID: "g-1", Tenant: "acme", State: posfleet.CampaignPaused, CreatedBy: "zhaolei", CreatedAt: t0, UpdatedAt: gate.At,
		Spec: posfleet.CampaignSpec{Name: "A920 to 2.5.0", Model: "A920", Target: "2.5.0", Package: posfleet.FirmwarePackage{URL: "https://updates.example.net/a920-2.5.0.bin", SHA256: campaignSHA},
			Waves:       []posfleet.WaveSpec{{Count: 5, Soak: posfleet.Duration(24 * time.Hour)}, {Percent: 10, Soak: posfleet.Duration(24 * time.Hour)}, {Percent: 100}},
			MaxInFlight: 50, Window: posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned, Start: "02:00", End: "05:00", Zone: "Asia/Shanghai"}},
		Waves: []posfleet.WaveProgress{
			{Index: 0, Size: 5, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTInstalled: 5}},
			{Index: 1, Size: 115, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTPending: 115}},
			{Index: 2, Size: 1080, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTPending: 1080}},
		}, Gates: []posfleet.GateResult{gate}}
	s.list = append(s.list, c)
	s.events[c.ID] = []posfleet.CampaignEvent{{At: t0, Kind: "created", By: "zhaolei"}, {At: t0, Kind: "wave_started"},
		{At: gate.At, Kind: "gate_failed", Text: "amount_mismatch: 37 of 41 approved sales against 2 of 5,911"}, {At: gate.At, Kind: "paused"}}
}

// step moves one terminal of each running campaign's wave on: queued,
// sent, installed; a wave done, the next starts (soaks are not waited
// for here).
func (s *fakeCampaignSite) step() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.list {
		c := &s.list[i]
		if c.State != posfleet.CampaignRunning || c.Wave >= len(c.Waves) {
			continue
		}
		w := c.Waves[c.Wave].Counts
		switch {
		case w[posfleet.CTSent] > 0:
			w[posfleet.CTSent]--
			w[posfleet.CTInstalled]++
		case w[posfleet.CTQueued] > 0:
			w[posfleet.CTQueued]--
			w[posfleet.CTSent]++
		case c.Wave+1 < len(c.Waves):
			c.Wave++
			n := c.Waves[c.Wave].Counts[posfleet.CTPending]
			c.Waves[c.Wave].Counts[posfleet.CTPending] = 0
			c.Waves[c.Wave].Counts[posfleet.CTQueued] = n
			s.events[c.ID] = append(s.events[c.ID], posfleet.CampaignEvent{At: time.Now(), Kind: "wave_started", Wave: c.Wave})
		default:
			c.State = posfleet.CampaignFinished
			s.events[c.ID] = append(s.events[c.ID], posfleet.CampaignEvent{At: time.Now(), Kind: "finished", Wave: c.Wave})
		}
		c.UpdatedAt = time.Now()
	}
}

func (s *fakeCampaignSite) lastID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) == 0 || !strings.HasPrefix(s.list[0].ID, "c-") {
		return ""
	}
	return s.list[0].ID
}

func (s *fakeCampaignSite) state(id string) posfleet.CampaignState {
	c, _ := s.Campaign(context.Background(), id)
	return c.State
}

func (s *fakeCampaignSite) ListCampaigns(_ context.Context, tenant string) ([]posfleet.Campaign, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []posfleet.Campaign
	for _, c := range s.list {
		if tenant == "" || c.Tenant == tenant {
			out = append(out, clone(c))
		}
	}
	return out, nil
}

func clone(c posfleet.Campaign) posfleet.Campaign {
	waves := make([]posfleet.WaveProgress, len(c.Waves))
	for i, w := range c.Waves {
		w.Counts = map[posfleet.CampaignTerminalState]int{}
		for k, v := range c.Waves[i].Counts {
			w.Counts[k] = v
		}
		waves[i] = w
	}
	c.Waves = waves
	return c
}

func (s *fakeCampaignSite) Campaign(_ context.Context, id string) (posfleet.Campaign, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.list {
		if c.ID == id {
			return clone(c), nil
		}
	}
	return posfleet.Campaign{}, posfleet.Errorf(posfleet.NotFound, "not_found", "no campaign %s", id)
}

func (s *fakeCampaignSite) CampaignTerminals(context.Context, string, posfleet.CampaignTerminalState, int) ([]posfleet.CampaignTerminal, error) {
	return nil, nil
}

func (s *fakeCampaignSite) CampaignEvents(_ context.Context, id string) ([]posfleet.CampaignEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]posfleet.CampaignEvent(nil), s.events[id]...), nil
}

// sizes are the wave sizes of spec over n terminals.
func sizes(spec posfleet.CampaignSpec, n int) []int {
	var out []int
	sum := 0
	for _, w := range spec.Waves {
		upTo := sum + w.Count
		if w.Count == 0 {
			upTo = int(float64(n) * w.Percent / 100)
		}
		upTo = min(max(upTo, sum), n)
		out = append(out, upTo-sum)
		sum = upTo
	}
	return out
}

func (s *fakeCampaignSite) PreviewCampaign(_ context.Context, _ string, spec posfleet.CampaignSpec) (posfleet.CampaignPreview, error) {
	return posfleet.CampaignPreview{Selected: s.selected, Versions: map[string]int{"2.4.1": s.selected}, WaveSizes: sizes(spec, s.selected)}, nil
}

func (s *fakeCampaignSite) CreateCampaign(_ context.Context, tenant string, spec posfleet.CampaignSpec, by string) (posfleet.Campaign, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	c := posfleet.Campaign{ID: fmt.Sprintf("c-%d", len(s.list)+1), Tenant: tenant, Spec: spec, State: posfleet.CampaignRunning, CreatedBy: by, CreatedAt: now, UpdatedAt: now}
	for i, n := range sizes(spec, s.selected) {
		st := posfleet.CTPending
		if i == 0 {
			st = posfleet.CTQueued
		}
		c.Waves = append(c.Waves, posfleet.WaveProgress{Index: i, Size: n, Counts: map[posfleet.CampaignTerminalState]int{st: n}})
	}
	s.list = append([]posfleet.Campaign{c}, s.list...)
	s.events[c.ID] = []posfleet.CampaignEvent{{At: now, Kind: "created", By: by}, {At: now, Kind: "wave_started"}}
	return clone(c), nil
}

func (s *fakeCampaignSite) ActOnCampaign(_ context.Context, id string, act posfleet.CampaignAction, by, note string) (posfleet.Campaign, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.list {
		c := &s.list[i]
		if c.ID != id {
			continue
		}
		switch {
		case act == posfleet.CampaignPause && c.State == posfleet.CampaignRunning:
			c.State = posfleet.CampaignPaused
		case act == posfleet.CampaignResume && c.State == posfleet.CampaignPaused:
			c.State = posfleet.CampaignRunning
		default:
			return clone(*c), posfleet.Errorf(posfleet.Conflict, "campaign_state", "campaign %s is %s", id, c.State)
		}
		kind := map[posfleet.CampaignAction]string{posfleet.CampaignPause: "paused", posfleet.CampaignResume: "resumed"}[act]
		s.events[id] = append(s.events[id], posfleet.CampaignEvent{At: time.Now(), Kind: kind, By: by, Wave: c.Wave, Text: note})
		c.UpdatedAt = time.Now()
		return clone(*c), nil
	}
	return posfleet.Campaign{}, posfleet.Errorf(posfleet.NotFound, "not_found", "no campaign %s", id)
}
