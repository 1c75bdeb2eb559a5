package campaign

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// What the operators' actions do:
//
//   - pause: a running campaign sends nothing more until resumed;
//     updates already sent are still followed, and a soak under way keeps
//     its clock (its gate is judged once resumed).
//   - resume: a campaign an operator paused goes on where it was. A
//     campaign a gate paused goes on past that gate: resuming is the
//     operator's "I have read the evidence and accept it"; the next wave
//     starts (or the campaign finishes after the last). To look again
//     instead, leave it paused; to stop, abort or roll back.
//   - abort: stops for good; terminals keep the version they run.
//   - rollback: sends every terminal the campaign updated an update back
//     to the version it ran before (CampaignTerminal.From), inside its
//     window and MaxInFlight at a time; the campaign is rolled_back once
//     every one has answered. The package of each such version is the
//     spec's (CampaignSpec.Rollback), else the firmware policy's when its
//     target for the model is that version; a version with neither is
//     refused (Conflict, no_rollback_package) before anything is sent.
//
// Every action is one transaction, refused (Conflict) when the campaign's
// state does not allow it, and leaves an event on the timeline.

// ActOnCampaign does action on campaign id, by by with an optional note.
func (s *Store) ActOnCampaign(ctx context.Context, id string, action posfleet.CampaignAction, by, note string) (posfleet.Campaign, error) {
	now := s.now()
	err := s.DB.Tx(ctx, func(tx *sql.Tx) error {
		c, err := load(ctx, tx, id)
		if err != nil {
			return err
		}
		refuse := func() error {
			return posfleet.Errorf(posfleet.Conflict, "campaign_state", "a %s campaign cannot be %s", c.State, actionDone[action])
		}
		ev := posfleet.CampaignEvent{At: now, By: by, Wave: c.Wave, Kind: string(action) + "d", Text: note}
		resolve := true
		switch action {
		case posfleet.CampaignPause:
			if c.State != posfleet.CampaignRunning {
				return refuse()
			}
			c.State, c.heldBy, c.Reason = posfleet.CampaignPaused, "operator", "paused by "+by+withNote(note)
			ev.Kind, resolve = "paused", false
		case posfleet.CampaignResume:
			if c.State != posfleet.CampaignPaused {
				return refuse()
			}
			c.State, c.Reason = posfleet.CampaignRunning, ""
			ev.Kind = "resumed"
			if c.heldBy == "gate" {
				ev.Text = strings.TrimSpace(fmt.Sprintf("the failed gate of wave %d accepted%s", c.Wave+1, withNote(note)))
				if err := s.advance(ctx, tx, &c, now, by); err != nil {
					return err
				}
			}
			c.heldBy = ""
		case posfleet.CampaignAbort:
			if c.State != posfleet.CampaignRunning && c.State != posfleet.CampaignPaused {
				return refuse()
			}
			c.State, c.heldBy, c.Reason = posfleet.CampaignAborted, "", "aborted by "+by+withNote(note)
			ev.Kind = "aborted"
		case posfleet.CampaignRollback:
			if c.State != posfleet.CampaignRunning && c.State != posfleet.CampaignPaused {
				return refuse()
			}
			if err := s.checkRollback(ctx, tx, c); err != nil {
				return err
			}
			c.State, c.heldBy, c.Reason = posfleet.CampaignRollingBack, "", "rolled back by "+by+withNote(note)
			ev.Kind = "rollback"
		default:
			return posfleet.Errorf(posfleet.Invalid, "bad_action", "action %q: want pause, resume, abort or rollback", action)
		}
		if err := save(ctx, tx, &c, now); err != nil {
			return err
		}
		if err := addEvent(ctx, tx, id, ev); err != nil {
			return err
		}
		if resolve && s.Alarms != nil {
			return s.Alarms.ResolveCampaign(ctx, tx, c.Campaign, by, ev.Kind+withNote(note), now)
		}
		return nil
	})
	if err != nil {
		return posfleet.Campaign{}, err
	}
	return s.Campaign(ctx, id)
}

var actionDone = map[posfleet.CampaignAction]string{posfleet.CampaignPause: "paused", posfleet.CampaignResume: "resumed",
	posfleet.CampaignAbort: "aborted", posfleet.CampaignRollback: "rolled back"}

func withNote(note string) string {
	if note == "" {
		return ""
	}
	return ": " + note
}

// advance ends the current wave: the next one starts, or the campaign
// finishes after the last. In tx; c is saved by the caller.
func (s *Store) advance(ctx context.Context, q Querier, c *rec, now time.Time, by string) error {
	c.soakFrom, c.SoakUntil = 0, time.Time{}
	if c.Wave >= len(c.Spec.Waves)-1 {
		c.State, c.heldBy = posfleet.CampaignFinished, ""
		n, err := countAll(ctx, q, c.ID)
		if err != nil {
			return err
		}
		text := fmt.Sprintf("every wave sent; %d gates judged; %d terminals installed, %d failed", len(c.Gates), n[posfleet.CTInstalled], n[posfleet.CTFailed])
		if left := n[posfleet.CTOffline] + n[posfleet.CTQueued]; left > 0 {
			// Still firmware_outdated: a new campaign selects them.
			text += fmt.Sprintf("; %d offline or outside their window were not updated", left)
		}
		return addEvent(ctx, q, c.ID, posfleet.CampaignEvent{At: now, Kind: "finished", Wave: c.Wave, By: by, Text: text})
	}
	c.Wave++
	for len(c.waves) <= c.Wave {
		c.waves = append(c.waves, waveTimes{})
	}
	c.waves[c.Wave].Started = store.Millis(now)
	res, err := q.ExecContext(ctx, `UPDATE campaign_terminals SET state = $3 WHERE campaign = $1 AND wave = $2 AND state = $4`,
		c.ID, c.Wave, string(posfleet.CTQueued), string(posfleet.CTPending))
	if err != nil {
		return fmt.Errorf("campaign: start wave %d of %s: %w", c.Wave+1, c.ID, err)
	}
	n, _ := res.RowsAffected()
	return addEvent(ctx, q, c.ID, posfleet.CampaignEvent{At: now, Kind: "wave_started", Wave: c.Wave, By: by,
		Text: fmt.Sprintf("wave %d of %d: %d terminals", c.Wave+1, len(c.Spec.Waves), n)})
}

// toRollBack are the terminal states a rollback sends the previous
// version to (once an update in flight has answered).
var toRollBack = []posfleet.CampaignTerminalState{posfleet.CTSent, posfleet.CTDownloading, posfleet.CTInstalled}

// rollbackPackage returns the package of version for c's model.
func (s *Store) rollbackPackage(c rec, version string) (posfleet.FirmwarePackage, bool) {
	for _, p := range c.Spec.Rollback {
		if p.Version == version {
			return p.Package, true
		}
	}
	if s.PolicyPackage != nil {
		return s.PolicyPackage(c.Spec.Model, version)
	}
	return posfleet.FirmwarePackage{}, false
}

// checkRollback refuses a rollback when a version to return to has no
// package.
func (s *Store) checkRollback(ctx context.Context, q Querier, c rec) error {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT from_version FROM campaign_terminals WHERE campaign = $1 AND state IN ($2, $3, $4)`,
		c.ID, string(toRollBack[0]), string(toRollBack[1]), string(toRollBack[2]))
	if err != nil {
		return fmt.Errorf("campaign: rollback of %s: %w", c.ID, err)
	}
	defer rows.Close()
	var missing []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		if _, ok := s.rollbackPackage(c, v); !ok {
			missing = append(missing, v)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		missing = slices.Compact(missing)
		return posfleet.Errorf(posfleet.Conflict, "no_rollback_package",
			"no package to roll back to %s: give it in the campaign's rollback packages, or set the firmware policy's target for %s to it with its url and sha256",
			strings.Join(missing, ", "), c.Spec.Model)
	}
	return nil
}
