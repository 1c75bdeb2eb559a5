package campaigns_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/campaigns"
)

func ctxOf(lang string) context.Context {
	return locale.With(context.Background(), locale.New(lang, "Asia/Shanghai"))
}

// TestKPIChart: the two bars share one scale (the larger is full width),
// a worse KPI's updated bar is red, a zero rate draws no bar, and the
// numbers are written in the reader's format.
func TestKPIChart(t *testing.T) {
	ctx := ctxOf(locale.English)
	bars := campaigns.KPIChart(ctx, posfleet.GateMetric{KPI: posfleet.KPIAmountMismatch, UpdatedRate: 0.9, BaselineRate: 0.0003, Worse: true, Enough: true})
	if bars[0].W != "180" || bars[0].Class != "bar-worse" || bars[0].Value != "90.00%" || bars[1].W != "1" || bars[1].Value != "0.03%" {
		t.Errorf("bars %+v", bars)
	}
	bars = campaigns.KPIChart(ctx, posfleet.GateMetric{KPI: posfleet.KPICrashBoots, BaselineRate: 0.0001})
	if bars[0].W != "0" || bars[0].Class != "bar-updated" || bars[1].Value != "0.10" {
		t.Errorf("crash boots bars %+v", bars)
	}
	if got := campaigns.RateText(ctx, posfleet.KPICrashBoots, 0.0021); got != "2.10 per 1,000 terminal-hours" {
		t.Errorf("crash boot rate %q", got)
	}
	for _, c := range []struct {
		m    posfleet.GateMetric
		want string
	}{
		{posfleet.GateMetric{}, "not enough data"},
		{posfleet.GateMetric{Enough: true, Worse: true}, "worse"},
		{posfleet.GateMetric{Enough: true}, "passed"},
	} {
		if got := campaigns.Verdict(ctx, c.m); got != c.want {
			t.Errorf("verdict of %+v: %q, want %q", c.m, got, c.want)
		}
	}
}

// TestWaveBarAndCounts: a wave's bar segments in order, within 100; the
// counts an action touches.
func TestWaveBarAndCounts(t *testing.T) {
	w := posfleet.WaveProgress{Size: 10, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTInstalled: 5, posfleet.CTFailed: 1, posfleet.CTSent: 2, posfleet.CTQueued: 2}}
	bars := campaigns.WaveBar(w)
	if len(bars) != 3 || bars[0].Class != "seg-installed" || bars[0].W != "50.00" || bars[1].Y != "50.00" || bars[2].Class != "seg-flight" || bars[2].Y != "60.00" {
		t.Errorf("segments %+v", bars)
	}
	if campaigns.WaveBar(posfleet.WaveProgress{}) != nil {
		t.Error("an empty wave has segments")
	}
	c := posfleet.Campaign{Waves: []posfleet.WaveProgress{w, {Size: 20, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTPending: 20}}}}
	for act, want := range map[posfleet.CampaignAction]int{posfleet.CampaignRollback: 7, posfleet.CampaignPause: 2, posfleet.CampaignResume: 22, posfleet.CampaignAbort: 22} {
		if got := campaigns.ActionCount(c, act); got != want {
			t.Errorf("%s touches %d, want %d", act, got, want)
		}
	}
	ctx := ctxOf(locale.Chinese)
	for d, want := range map[time.Duration]string{0: "不观察", 24 * time.Hour: "24 小时", 150 * time.Minute: "2 小时 30 分钟", 20 * time.Second: "20 秒"} {
		if got := campaigns.SoakText(ctx, posfleet.Duration(d)); got != want {
			t.Errorf("soak %v: %q, want %q", d, got, want)
		}
	}
}

// TestDetailRender: a running campaign's page in Chinese: its parts by
// data-testid, the live refresh, no action without Actions.
func TestDetailRender(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	c := posfleet.Campaign{ID: "c-9", Tenant: "acme", State: posfleet.CampaignRunning, Wave: 1, UpdatedAt: at, CreatedAt: at, CreatedBy: "ops",
		Spec: posfleet.CampaignSpec{Name: "A920 升级", Model: "A920", Target: "2.5.2", Waves: []posfleet.WaveSpec{{Count: 5}, {Percent: 100}},
			Window: posfleet.MaintenanceWindow{Mode: posfleet.WindowFixed, Start: "01:00", End: "04:00", Zone: "Asia/Shanghai"}},
		Waves: []posfleet.WaveProgress{{Size: 5, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTInstalled: 5}},
			{Size: 1195, Counts: map[posfleet.CampaignTerminalState]int{posfleet.CTQueued: 1000, posfleet.CTSent: 195}}}}
	var b bytes.Buffer
	v := campaigns.DetailView{Campaign: c, Refresh: 10, Events: []posfleet.CampaignEvent{{At: at, Kind: "created", By: "ops"}},
		Terminals: []campaigns.TerminalRow{{CampaignTerminal: posfleet.CampaignTerminal{Terminal: "T-1", State: posfleet.CTInstalled, From: "2.4.1"}, Href: "/terminals/acme/T-1"}}}
	if err := campaigns.Detail(v).Render(ctxOf(locale.Chinese), &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{`data-testid="campaign-waves"`, `data-testid="gates-empty"`, `data-testid="campaign-timeline"`, `data-testid="terminal-rows"`,
		`data-refresh="10"`, "第 2 批，共 2 批", "已升级 5 台，共 1,200 台", "1,000", "2026-03-02 17:30:00 UTC+8", "每台终端当地时间 01:00–04:00（Asia/Shanghai）",
		`data-testid="terminals-limited"`, "显示前 1 台，共 1,200 台"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, `data-testid="campaign-actions"`) {
		t.Error("actions without any allowed")
	}
	if missing := locale.Missing(); len(missing) > 0 {
		t.Errorf("untranslated: %v", missing)
	}
}
