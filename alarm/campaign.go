package alarm

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/posfleet/posfleet"
)

// Campaign alarms: a firmware campaign (package campaign) whose gate
// failed raises one alarm of kind posfleet.AlarmKindCampaign, its
// Incident the campaign's ID, with the gate's evidence, and notifies
// through the tenant's routes like any alarm (urgent: payments on the
// updated terminals got worse). It is resolved when an operator resumes,
// aborts or rolls the campaign back, or by hand on the alarm page.

// CampaignEvidence is a campaign alarm's evidence: the gate that failed,
// with the KPIs the updated terminals did worse on and both cohorts'
// numbers.
type CampaignEvidence struct {
	Baseline int                   `json:"baseline"`
	Campaign string                `json:"campaign"`
	Metrics  []posfleet.GateMetric `json:"metrics"`
	Model    string                `json:"model"`
	Name     string                `json:"name"`
	Reason   string                `json:"reason"`
	Target   string                `json:"target"`
	Updated  int                   `json:"updated"`
	Wave     int                   `json:"wave"` // 1-based, as people count
}

// liveCampaignAlarm reads the live alarm of a campaign; false if none.
func liveCampaignAlarm(ctx context.Context, q Querier, tenant, campaignID string) (posfleet.Alarm, bool, error) {
	a, err := scanAlarm(q.QueryRowContext(ctx, `SELECT `+alarmCols+` FROM alarms WHERE tenant = $1 AND terminal = '' AND kind = $2 AND incident = $3 AND state <> $4`,
		tenant, posfleet.AlarmKindCampaign, campaignID, string(posfleet.AlarmResolved)))
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("alarm: campaign %s: %w", campaignID, err)
	}
	return a, true, nil
}

// RaiseCampaign raises (or raises again) the alarm of a campaign its
// gate paused, with ev, and enqueues its notifications; in q's
// transaction, the one that pauses the campaign.
func RaiseCampaign(ctx context.Context, q Querier, tenant string, ev CampaignEvidence, now time.Time) (posfleet.Alarm, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return posfleet.Alarm{}, err
	}
	a, live, err := liveCampaignAlarm(ctx, q, tenant, ev.Campaign)
	if err != nil {
		return a, err
	}
	now = now.UTC()
	if live {
		a.Active, a.Evidence, a.Updated, a.Cleared = true, body, now, time.Time{}
		a.Occurrences++
		if err := update(ctx, q, a); err != nil {
			return a, err
		}
	} else {
		a = posfleet.Alarm{ID: NewID(), Tenant: tenant, Kind: posfleet.AlarmKindCampaign, Incident: ev.Campaign, Urgent: true,
			State: posfleet.AlarmOpen, Active: true, Opened: now, Occurrences: 1, Evidence: body, Updated: now}
		if err := insert(ctx, q, a); err != nil {
			return a, err
		}
	}
	if err := addHistory(ctx, q, a.ID, posfleet.AlarmEntry{At: now, Action: posfleet.AlarmActRaised, Detail: ev.Reason}); err != nil {
		return a, err
	}
	return a, enqueue(ctx, q, a, posfleet.NotifyRaised, now)
}

// ResolveCampaign resolves a campaign's live alarm, if any, by by (the
// operator who resumed, aborted or rolled it back), and enqueues the
// notifications of its resolution.
func ResolveCampaign(ctx context.Context, q Querier, tenant, campaignID, by, note string, now time.Time) error {
	a, live, err := liveCampaignAlarm(ctx, q, tenant, campaignID)
	if err != nil || !live {
		return err
	}
	now = now.UTC()
	a.State, a.Active, a.Cleared, a.Resolved, a.ResolvedBy, a.Updated = posfleet.AlarmResolved, false, now, now, by, now
	if err := update(ctx, q, a); err != nil {
		return err
	}
	if err := addHistory(ctx, q, a.ID, posfleet.AlarmEntry{At: now, Actor: by, Action: posfleet.AlarmActResolved, Detail: note}); err != nil {
		return err
	}
	return enqueue(ctx, q, a, posfleet.NotifyResolved, now)
}
