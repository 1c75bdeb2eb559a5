package alarm

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestCampaignAlarm: a campaign's gate raises one urgent alarm with the
// evidence and notifies; raised again it stays one alarm; resolving it
// (the operator resumed) notifies the resolution; a campaign without a
// live alarm resolves nothing.
func TestCampaignAlarm(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		rulesDB(t, db, "")
		ev := CampaignEvidence{Campaign: "cmp-1", Name: "A920 to 2.5.0", Model: "A920", Target: "2.5.0", Wave: 1, Updated: 3, Baseline: 40,
			Reason: "gate of wave 1 failed: amount_mismatch", Metrics: []posfleet.GateMetric{{KPI: posfleet.KPIAmountMismatch, UpdatedEvents: 37,
				UpdatedExposure: 41, BaselineEvents: 0, BaselineExposure: 1200, Worse: true}}}
		tx := func(fn func(tx *sql.Tx) error) {
			t.Helper()
			if err := db.Tx(ctx, fn); err != nil {
				t.Fatal(err)
			}
		}
		var a posfleet.Alarm
		tx(func(q *sql.Tx) (err error) { a, err = RaiseCampaign(ctx, q, "acme", ev, t0); return err })
		if a.Kind != posfleet.AlarmKindCampaign || a.Incident != "cmp-1" || !a.Urgent || a.Terminal != "" {
			t.Fatalf("raised %+v", a)
		}
		var back CampaignEvidence
		if err := json.Unmarshal(a.Evidence, &back); err != nil || back.Metrics[0].UpdatedEvents != 37 {
			t.Errorf("evidence %s: %v", a.Evidence, err)
		}
		tx(func(q *sql.Tx) (err error) { _, err = RaiseCampaign(ctx, q, "acme", ev, t0.Add(1)); return err })
		if all := alarmsOf(t, db, posfleet.AlarmKindCampaign); len(all) != 1 || all[0].Occurrences != 2 {
			t.Fatalf("raised twice: %+v", all)
		}
		tx(func(q *sql.Tx) error { return ResolveCampaign(ctx, q, "acme", "cmp-1", "ana", "resumed", t0.Add(2)) })
		tx(func(q *sql.Tx) error { return ResolveCampaign(ctx, q, "acme", "cmp-2", "ana", "resumed", t0.Add(2)) })
		all := alarmsOf(t, db, posfleet.AlarmKindCampaign)
		if len(all) != 1 || all[0].State != posfleet.AlarmResolved || all[0].ResolvedBy != "ana" || all[0].Active {
			t.Fatalf("resolved: %+v", all)
		}
		var events []string
		for _, r := range outbox(t, db) {
			if r.alarm == a.ID {
				events = append(events, r.event)
			}
		}
		if len(events) != 3 {
			t.Errorf("notifications %v, want raised twice and resolved", events)
		}
		hist, err := History(ctx, db, a.ID)
		if err != nil || len(hist) != 3 || hist[2].Action != posfleet.AlarmActResolved {
			t.Errorf("history %+v %v", hist, err)
		}
	})
}
