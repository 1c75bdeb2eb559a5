package parts_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/parts"
)

// TestDescribeSignals: fallback_rate and moved in words, in both
// languages, and their evidence keys named.
func TestDescribeSignals(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	zh := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	for _, tc := range []struct {
		ev     posfleet.Evidence
		en, zh []string
	}{
		{&posfleet.FallbackRateEvidence{Count: 7, Total: 50, Rate: 0.14, Threshold: 0.1, Minimum: 5, Window: 50,
			Latest: []posfleet.FallbackTxn{{ID: "t1", At: at}}},
			[]string{"7 of the last 50 chip payments fell back", "14.0%", "limit 10%"}, []string{"最近 50 笔芯片交易中有 7 笔降级"}},
		{&posfleet.MovedEvidence{DistanceM: 12034, Heartbeats: 2, Lat: 31.34, Lon: 121.47, SiteLat: 31.23, SiteLon: 121.47, Since: at, ThresholdM: 1000},
			[]string{"12,034 m from its site", "limit 1,000 m", "2026-03-02 09:30:00 UTC"}, []string{"12,034 米", "17:30:00 UTC+8"}},
	} {
		f := posfleet.Flag{Name: tc.ev.EvidenceFor(), Kind: tc.ev.EvidenceFor().Kind(), Evidence: tc.ev}
		for _, c := range []struct {
			ctx  context.Context
			want []string
		}{{context.Background(), tc.en}, {zh, tc.zh}} {
			got := parts.Describe(c.ctx, f)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s: %q lacks %q", f.Name, got, w)
				}
			}
			if l := parts.FlagLabel(c.ctx, f.Name); l == string(f.Name) {
				t.Errorf("%s has no label", f.Name)
			}
			for _, row := range parts.Evidence(c.ctx, tc.ev) {
				if strings.Contains(row.Key, "_") {
					t.Errorf("%s: evidence key %q not named", f.Name, row.Key)
				}
			}
		}
	}
}
