package parts_test

import (
	"context"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/parts"
)

// TestDescribeAppliedThreshold: a flag raised by a tenant's or a model's
// threshold says so in words, in both languages; one raised by the
// defaults says nothing more.
func TestDescribeAppliedThreshold(t *testing.T) {
	ev := &posfleet.TxnFailuresEvidence{Failed: 12, Total: 50, Threshold: 0.15, Thresholds: []posfleet.AppliedThreshold{
		{Name: "txn_failures.window", Source: posfleet.ThresholdDefault, Unit: "count", Value: 50},
		{Name: "txn_failures.rate", Source: posfleet.ThresholdModel, Model: "A920", Unit: "ratio", Value: 0.15},
	}}
	f := posfleet.Flag{Name: posfleet.FlagTxnFailures, Kind: posfleet.KindMaintenance, Evidence: ev}
	for _, c := range []struct {
		lang string
		want []string
	}{
		{locale.English, []string{"12 of the last 50 transactions failed", "By this tenant's threshold for A920: Failure share that raises the flag 15%."}},
		{locale.Chinese, []string{"最近 50 笔交易中有 12 笔", "依据本租户为 A920 设置的阈值：触发告警的失败比例 15%。"}},
	} {
		ctx := locale.With(context.Background(), locale.New(c.lang, ""))
		got := parts.Describe(ctx, f)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", c.lang, got, w)
			}
		}
		if strings.Contains(got, "txn_failures.window") || strings.Count(got, "A920") != 1 {
			t.Errorf("%s: %q names a default threshold", c.lang, got)
		}
	}
	ev.Thresholds = nil
	ctx := locale.With(context.Background(), locale.New(locale.English, ""))
	if got := parts.Describe(ctx, f); strings.Contains(got, "threshold") {
		t.Errorf("under the defaults: %q", got)
	}
}

// TestEvidenceThresholdsTable: the evidence table lists the thresholds
// applied with their sources in words.
func TestEvidenceThresholdsTable(t *testing.T) {
	ev := &posfleet.TxnFailuresEvidence{Thresholds: []posfleet.AppliedThreshold{
		{Name: "txn_failures.rate", Source: posfleet.ThresholdModel, Model: "A920", Unit: "ratio", Value: 0.15}}}
	ctx := locale.With(context.Background(), locale.New(locale.Chinese, ""))
	for _, f := range parts.Evidence(ctx, ev) {
		if f.Key != "所用阈值" {
			continue
		}
		if len(f.Rows) != 1 || f.Rows[0]["source"] != "本租户（按机型）" || f.Rows[0]["name"] != "txn_failures.rate" {
			t.Errorf("thresholds: %+v", f.Rows)
		}
		return
	}
	t.Error("no thresholds in the evidence table")
}
