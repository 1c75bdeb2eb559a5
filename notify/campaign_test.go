package notify

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
)

// TestRenderCampaignAlarm: a campaign paused by its gate notifies with
// the campaign, the cohorts and each failing KPI with both cohorts'
// numbers, in both languages, and links to the campaign's page.
func TestRenderCampaignAlarm(t *testing.T) {
	ev, _ := json.Marshal(map[string]any{"campaign": "cmp-1", "name": "A920 to 2.5.0", "model": "A920", "target": "2.5.0", "wave": 1,
		"updated": 3, "baseline": 40, "reason": "gate of wave 1 failed",
		"metrics": []posfleet.GateMetric{
			{KPI: posfleet.KPIAmountMismatch, UpdatedEvents: 37, UpdatedExposure: 41, UpdatedRate: 37.0 / 41, BaselineEvents: 0, BaselineExposure: 1200, Worse: true},
			{KPI: posfleet.KPICrashBoots, UpdatedEvents: 4, UpdatedExposure: 6, UpdatedRate: 4.0 / 6, BaselineEvents: 1, BaselineExposure: 80, BaselineRate: 1.0 / 80, Worse: true},
		}})
	a := posfleet.Alarm{ID: "al-c", Tenant: "acme", Kind: posfleet.AlarmKindCampaign, Incident: "cmp-1", Urgent: true,
		State: posfleet.AlarmOpen, Active: true, Opened: chNow, Occurrences: 1, Updated: chNow, Evidence: ev}
	m := posfleet.NotifyMessage{ID: "n-c", Event: posfleet.NotifyRaised, Tenant: "acme", Alarm: &a,
		URL: chBase + "/campaigns/cmp-1", AlarmURL: chBase + "/alarms/al-c", Time: chNow}
	r := render(Target{NotifyChannel: posfleet.NotifyChannel{Name: "ops"}}, m, nil)
	facts := strings.Join(r.Facts, "\n")
	for _, want := range []string{
		"Campaign: A920 to 2.5.0 (A920 to 2.5.0), wave 1",
		"Compared: 3 updated terminals with 40 not updated",
		"amount_mismatch: 37 of 41 (90.2%) on the updated terminals, 0 of 1,200 (0.0%) on those not updated",
		"crash_boots: 4 in 6.0 terminal-hours on the updated terminals, 1 in 80.0 terminal-hours on those not updated",
	} {
		if !strings.Contains(facts, want) {
			t.Errorf("facts lack %q:\n%s", want, facts)
		}
	}
	if !r.Urgent || r.Links[0].URL != chBase+"/campaigns/cmp-1" || !strings.Contains(r.Links[0].Label, "campaign") {
		t.Errorf("urgent %v, links %+v", r.Urgent, r.Links)
	}
	zh := render(Target{NotifyChannel: posfleet.NotifyChannel{Name: "ops", Language: "zh-CN"}}, m, nil)
	if all := strings.Join(zh.Facts, "\n"); !strings.Contains(all, "第 1 批") || strings.Contains(all, "%!") {
		t.Errorf("zh-CN facts:\n%s", all)
	}
	if miss := locale.Missing(); len(miss) > 0 {
		t.Errorf("missing from the catalogue: %v", miss)
	}
	d := &Dispatcher{opts: DispatcherOptions{BaseURL: chBase}}
	if got := d.alarmPage(a); got != chBase+"/campaigns/cmp-1" {
		t.Errorf("alarm page %s", got)
	}
}
