package alarm

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Bursts: many terminals of a tenant going offline together are one
// problem (their network, their power, the way to the broker), not many.
// One alarm of kind posfleet.AlarmKindBurst stands for them; their own
// alarms are folded into it, and their notifications with them.

// BurstEvidence is a burst alarm's evidence.
type BurstEvidence struct {
	Flags     []posfleet.FlagName `json:"flags"`
	Terminals int                 `json:"terminals"` // when it opened
	Window    string              `json:"window"`
	Regions   []string            `json:"regions,omitempty"`
}

// loadBursts reads the live burst alarms.
func (a *applier) loadBursts(ctx context.Context) error {
	a.bursts = map[string]*posfleet.Alarm{}
	all, err := a.alarms(ctx, `SELECT `+alarmCols+` FROM alarms WHERE kind = $1 AND state <> 'resolved'`, posfleet.AlarmKindBurst)
	if err != nil {
		return err
	}
	for i := range all {
		a.bursts[all[i].Tenant] = &all[i]
	}
	return nil
}

// burstKinds returns "kind IN ($from, ...)" for BurstFlags and its args.
func (a *applier) burstKinds(from int) (string, []any) {
	var ph []string
	var args []any
	for i, f := range a.opts.BurstFlags {
		ph = append(ph, "$"+strconv.Itoa(from+i))
		args = append(args, string(f))
	}
	return "kind IN (" + strings.Join(ph, ", ") + ")", args
}

// detectBursts opens a burst alarm in each tenant where this publish
// raised burst-flag alarms and enough of them are recent, and folds them.
func (a *applier) detectBursts(ctx context.Context) error {
	if len(a.opts.BurstFlags) == 0 || a.opts.BurstMin < 1 {
		return nil
	}
	for tenant := range a.burstTenants {
		if a.bursts[tenant] != nil {
			continue // folded as they were raised
		}
		in, args := a.burstKinds(3)
		recent, err := a.alarms(ctx, `SELECT `+alarmCols+` FROM alarms WHERE tenant = $1 AND state <> 'resolved' AND parent = ''
			AND incident = '' AND opened_ms >= $2 AND `+in, append([]any{tenant, store.Millis(a.now.Add(-a.opts.BurstWindow))}, args...)...)
		if err != nil {
			return err
		}
		var active []posfleet.Alarm
		regions := map[string]bool{}
		for _, al := range recent {
			if al.Active {
				active = append(active, al)
				if al.Region != "" {
					regions[al.Region] = true
				}
			}
		}
		if len(active) < a.opts.BurstMin {
			continue
		}
		ev := BurstEvidence{Flags: a.opts.BurstFlags, Terminals: len(active), Window: a.opts.BurstWindow.String()}
		for r := range regions {
			ev.Regions = append(ev.Regions, r)
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		g := posfleet.Alarm{ID: NewID(), Tenant: tenant, Kind: posfleet.AlarmKindBurst, Urgent: true, State: posfleet.AlarmOpen,
			Active: true, Opened: a.now, Occurrences: 1, Evidence: body, Updated: a.now}
		if len(ev.Regions) == 1 {
			g.Region = ev.Regions[0]
		}
		if err := insert(ctx, a.q, g); err != nil {
			return err
		}
		if err := addHistory(ctx, a.q, g.ID, posfleet.AlarmEntry{At: a.now, Action: posfleet.AlarmActRaised,
			Detail: fmt.Sprintf("%d terminals within %s", len(active), a.opts.BurstWindow)}); err != nil {
			return err
		}
		a.bursts[tenant] = &g
		if err := a.foldUnder(ctx, &g, active, "folded into the burst's alarm"); err != nil {
			return err
		}
		if err := a.notify(ctx, g, posfleet.NotifyRaised); err != nil {
			return err
		}
	}
	return nil
}

// settleBursts resolves the burst alarms none of whose terminals is still
// active; their folded alarms are resolved with them.
func (a *applier) settleBursts(ctx context.Context) error {
	for _, g := range a.bursts {
		var n int
		if err := a.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM alarms WHERE parent = $1 AND state <> 'resolved' AND active = $2`,
			g.ID, true).Scan(&n); err != nil {
			return fmt.Errorf("alarm: burst %s: %w", g.ID, err)
		}
		if n > 0 || a.now.Sub(g.Opened) < time.Minute {
			continue
		}
		g.Cleared = a.now
		if err := a.resolve(ctx, g, "", "every terminal of the burst is back"); err != nil {
			return err
		}
		delete(a.bursts, g.Tenant)
		if err := a.unfold(ctx, g); err != nil {
			return err
		}
	}
	return nil
}
