package worklist_test

import (
	"context"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/worklist"
)

// TestWearDueAction: the crew is told which part to bring and why, in
// both languages, one sentence per due part.
func TestWearDueAction(t *testing.T) {
	ev := &posfleet.WearDueEvidence{HorizonDays: 14, Parts: []posfleet.WearForecast{
		{Counter: "prints", Part: posfleet.WearPrinterHead, Value: 144000, PerDay: 1000, DaysLeft: 6, RatedLife: 150000, Samples: 9},
		{Counter: "battery_health_pct", Part: posfleet.WearBattery, Value: 59, RatedLife: 60, Samples: 2}}}
	r := health.WorkReason{Flag: posfleet.FlagWearDue, Evidence: ev}
	zh := locale.With(context.Background(), locale.New(locale.Chinese, ""))
	for _, c := range []struct {
		ctx  context.Context
		want []string
	}{
		{context.Background(), []string{"Bring a new printer head", "in about 6 days", "receipts printed 144,000", "Bring a new battery", "past its rated life"}},
		{zh, []string{"请携带新的打印头", "约 6 天后", "请携带新的电池"}},
	} {
		got := worklist.Action(c.ctx, r)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q lacks %q", got, w)
			}
		}
	}
}
