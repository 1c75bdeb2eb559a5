package overview_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/overview"
)

// TestChinese: the overview in Chinese with thousands separators, the
// incident's start in the reader's zone with the zone named, and no
// message missing from the catalogue.
func TestChinese(t *testing.T) {
	ctx := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	start := time.Date(2026, 3, 2, 5, 53, 0, 0, time.UTC)
	v := overview.View{Now: start.Add(time.Hour), TxnWindow: locale.T(ctx, "overview.txn_window_24h"), TxnTotal: 26371, TxnOK: 26000,
		Approved: 1234567, FailedAll: 4321,
		Stats:     []overview.Stat{{Label: locale.T(ctx, "overview.stat_investigate"), TestID: "investigate", Href: "/terminals?kind=investigate", N: 26371}},
		Flags:     []overview.FlagCount{{Flag: posfleet.FlagTamper, Kind: posfleet.KindMaintenance, N: 1500}},
		Incidents: []overview.Incident{{ID: "i1", Tenant: "acme", Start: start, Merchants: 3, Terminals: 1200, Failures: 45678, PeakShare: 0.42}},
		Results:   []overview.Count{{Label: locale.T(ctx, "overview.result_approved"), Class: "res-approved", N: 26000}}}
	var b bytes.Buffer
	if err := overview.Page(v).Render(ctx, &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<h1>终端总览</h1>", ">26,371</strong>", "<span>待调查</span>", `href="/terminals?kind=investigate"`,
		"2026-03-02 13:53:00 UTC+8", ">1,200<", ">45,678<", "42%", ">1,500</strong>", "未结束的故障事件", "最近 24 小时",
		`<strong data-testid="txn-total">26,371</strong>`, "批准 1,234,567 笔，失败 4,321 笔。", "已批准", "固件版本分布"} {
		if !strings.Contains(page, want) {
			t.Errorf("Chinese overview lacks %s", want)
		}
	}
	for _, en := range []string{"Fleet overview", "Open incidents", ">approved", "Transactions", " UTC<"} {
		if strings.Contains(page, en) {
			t.Errorf("Chinese overview has %q", en)
		}
	}
	if m := locale.Missing(); slices.ContainsFunc(m, func(s string) bool { return strings.Contains(s, "overview.") }) {
		t.Errorf("missing messages: %v", m)
	}
}
