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

// TestDescribeSilentAndWear: silent and wear_due in words, in both
// languages, and their evidence keys named.
func TestDescribeSilentAndWear(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	zh := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	for _, tc := range []struct {
		ev     posfleet.Evidence
		en, zh []string
	}{
		{&posfleet.SilentEvidence{Chance: 0.000244, LastSale: at, MinimumHours: 2, Threshold: 0.001, Weeks: 3,
			Missed: []time.Time{at.Add(time.Hour), at.Add(2 * time.Hour), at.Add(3 * time.Hour), at.Add(4 * time.Hour)}},
			[]string{"no sale in 4 hours in which it usually sells", "over 3 weeks", "Call the merchant"},
			[]string{"通常有交易的 4 个小时内没有一笔交易", "3 周"}},
		{&posfleet.WearDueEvidence{HorizonDays: 14, Parts: []posfleet.WearForecast{
			{Counter: "prints", Part: posfleet.WearPrinterHead, Value: 144000, PerDay: 1000, DaysLeft: 6, RatedLife: 150000, Samples: 9},
			{Counter: "battery_health_pct", Part: posfleet.WearBattery, Value: 59, RatedLife: 60, Samples: 2}}},
			[]string{"The printer head reaches its rated life in about 6 days", "receipts printed at 144,000 of a rated 150,000",
				"The battery is past its rated life"},
			[]string{"打印头预计约 6 天后达到额定寿命", "电池已超过额定寿命"}},
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
				for _, c := range row.ColNames {
					if strings.Contains(c, "_") {
						t.Errorf("%s: evidence column %q not named", f.Name, c)
					}
				}
			}
		}
	}
}
