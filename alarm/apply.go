package alarm

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/store"
)

// Transition is a flag of a terminal raised or cleared, as the health
// engine's change feed reports it.
type Transition struct {
	Ref    posfleet.TerminalRef
	Flag   posfleet.FlagName
	Raised bool
	At     time.Time
	// Actor is "" for the rules, else the user whose visit cleared it: a
	// visit resolves the alarm at once, without the debounce.
	Actor    string
	Evidence posfleet.Evidence
}

// TerminalFlags is a terminal's raised flags as published: Apply makes the
// live alarms agree with them, so that alarms follow the flags even where
// transitions were lost (a resync, a new lease holder, an upgrade from a
// release without alarms).
type TerminalFlags struct {
	Ref              posfleet.TerminalRef
	Merchant, Region string
	Flags            []posfleet.Flag
}

// Input is what one publish of the health view changes.
type Input struct {
	Transitions []Transition
	// Terminals are the terminals published, with their flags now.
	Terminals []TerminalFlags
	// Incidents changed since the last publish.
	Incidents []health.Incident
	// Settle resolves the alarms whose evidence stayed away for the
	// debounce.
	Settle bool
}

// Apply changes the alarms as in describes, in tx (the transaction that
// publishes the same changes), and writes the notifications the changes
// cause.
func Apply(ctx context.Context, tx Querier, d store.Dialect, opts Options, in Input, now time.Time) error {
	a := applier{q: tx, opts: opts, now: now, live: map[liveKey]*posfleet.Alarm{}, site: map[posfleet.TerminalRef]TerminalFlags{},
		snoozed: map[liveKey]time.Time{}, routes: map[string][]posfleet.NotifyRoute{}, burstTenants: map[string]bool{}}
	for _, t := range in.Terminals {
		a.site[t.Ref] = t
	}
	refs := make([]posfleet.TerminalRef, 0, len(in.Terminals)+len(in.Transitions))
	for _, t := range in.Terminals {
		refs = append(refs, t.Ref)
	}
	for _, t := range in.Transitions {
		refs = append(refs, t.Ref)
	}
	if err := a.loadLive(ctx, refs); err != nil {
		return err
	}
	if err := a.loadSites(ctx, in.Transitions); err != nil {
		return err
	}
	if err := a.loadIncidents(ctx); err != nil {
		return err
	}
	if err := a.loadSnoozes(ctx); err != nil {
		return err
	}
	if err := a.loadBursts(ctx); err != nil {
		return err
	}
	for _, inc := range in.Incidents {
		if err := a.incident(ctx, inc); err != nil {
			return err
		}
	}
	for _, t := range in.Transitions {
		var err error
		if t.Raised {
			err = a.raise(ctx, t.Ref, t.Flag, t.At, t.Evidence, t.Flag.Urgent())
		} else {
			err = a.clear(ctx, t.Ref, t.Flag, t.At, t.Actor)
		}
		if err != nil {
			return err
		}
	}
	for _, t := range in.Terminals {
		if err := a.reconcile(ctx, t); err != nil {
			return err
		}
	}
	if err := a.detectBursts(ctx); err != nil {
		return err
	}
	if in.Settle {
		if err := a.settleBursts(ctx); err != nil {
			return err
		}
		return a.settle(ctx)
	}
	return nil
}

type liveKey struct {
	ref  posfleet.TerminalRef
	kind string
}

type applier struct {
	q    Querier
	opts Options
	now  time.Time
	// live holds the live (not resolved) terminal alarms of the terminals
	// in this publish; nil values for keys known to have none.
	live map[liveKey]*posfleet.Alarm
	site map[posfleet.TerminalRef]TerminalFlags
	// incidents are the live incident alarms by tenant, with the
	// terminals each incident hit.
	incidents map[string][]*incidentAlarm
	// snoozed holds the snoozes that have not ended, by terminal and kind.
	snoozed map[liveKey]time.Time
	// routes caches each tenant's routes for this publish.
	routes map[string][]posfleet.NotifyRoute
	// bursts are the live burst alarms by tenant (burst.go); burstTenants
	// the tenants where this publish raised a BurstFlags alarm.
	bursts       map[string]*posfleet.Alarm
	burstTenants map[string]bool
}

// notify writes the notifications of event of al (enqueue, with the
// tenant's routes read once per publish).
func (a *applier) notify(ctx context.Context, al posfleet.Alarm, event posfleet.NotificationEvent) error {
	rs, ok := a.routes[al.Tenant]
	if !ok {
		var err error
		if rs, err = routesFor(ctx, a.q, al.Tenant); err != nil {
			return err
		}
		a.routes[al.Tenant] = rs
	}
	var delay time.Duration
	if k := posfleet.FlagName(al.Kind); event == posfleet.NotifyRaised && (slices.Contains(a.opts.FoldFlags, k) || slices.Contains(a.opts.BurstFlags, k)) {
		// An incident is judged on the whole tenant every few seconds,
		// a burst once enough terminals went: the raising of a flag either
		// may explain waits FoldGrace, so that one found meanwhile folds
		// the alarm and its notification.
		delay = a.opts.FoldGrace
	}
	return enqueueRoutes(ctx, a.q, rs, al, event, a.now, delay)
}

type incidentAlarm struct {
	alarm *posfleet.Alarm
	hit   map[posfleet.TerminalRef]bool
	// all: the incident hit more terminals than it lists; every terminal
	// of the tenant counts as hit.
	all bool
}

// loadLive reads the live alarms of refs' terminals.
func (a *applier) loadLive(ctx context.Context, refs []posfleet.TerminalRef) error {
	return a.byTerminals(ctx, refs, `SELECT `+alarmCols+` FROM alarms WHERE tenant = $1 AND incident = '' AND state <> 'resolved' AND terminal IN (%s)`,
		func(rows *sql.Rows) error {
			al, err := scanAlarm(rows)
			if err != nil {
				return err
			}
			a.live[liveKey{posfleet.TerminalRef{Tenant: al.Tenant, Terminal: al.Terminal}, al.Kind}] = &al
			return nil
		})
}

// loadSites reads the merchant and region of the transitions' terminals
// that are not among the publish's terminals (the publisher writes a
// large change in several batches, the transitions with the last).
func (a *applier) loadSites(ctx context.Context, trans []Transition) error {
	var refs []posfleet.TerminalRef
	for _, t := range trans {
		if _, ok := a.site[t.Ref]; !ok && t.Raised {
			refs = append(refs, t.Ref)
		}
	}
	return a.byTerminals(ctx, refs, `SELECT tenant, terminal, merchant, region FROM terminal_state WHERE tenant = $1 AND terminal IN (%s)`,
		func(rows *sql.Rows) error {
			var t TerminalFlags
			if err := rows.Scan(&t.Ref.Tenant, &t.Ref.Terminal, &t.Merchant, &t.Region); err != nil {
				return err
			}
			a.site[t.Ref] = t
			return nil
		})
}

// byTerminals runs query (its "%s" the list of terminals after the
// tenant's $1) for refs, per tenant, 100 terminals at a time, and scan
// for each row.
func (a *applier) byTerminals(ctx context.Context, refs []posfleet.TerminalRef, query string, scan func(*sql.Rows) error) error {
	byTenant := map[string][]string{}
	seen := map[posfleet.TerminalRef]bool{}
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			byTenant[r.Tenant] = append(byTenant[r.Tenant], r.Terminal)
		}
	}
	for tenant, ids := range byTenant {
		for len(ids) > 0 {
			n := min(len(ids), 100)
			args := []any{tenant}
			var ph strings.Builder
			for i, id := range ids[:n] {
				if i > 0 {
					ph.WriteString(", ")
				}
				ph.WriteString("$" + strconv.Itoa(i+2))
				args = append(args, id)
			}
			if err := a.scanAll(ctx, fmt.Sprintf(query, ph.String()), args, scan); err != nil {
				return err
			}
			ids = ids[n:]
		}
	}
	return nil
}

// alarms returns the alarms a query of alarmCols selects.
func (a *applier) alarms(ctx context.Context, query string, args ...any) ([]posfleet.Alarm, error) {
	var out []posfleet.Alarm
	err := a.scanAll(ctx, query, args, func(rows *sql.Rows) error {
		al, err := scanAlarm(rows)
		out = append(out, al)
		return err
	})
	return out, err
}

// scanAll runs a query and scan for each row.
func (a *applier) scanAll(ctx context.Context, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := a.q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("alarm: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// loadIncidents reads the live incident alarms.
func (a *applier) loadIncidents(ctx context.Context) error {
	a.incidents = map[string][]*incidentAlarm{}
	all, err := a.alarms(ctx, `SELECT `+alarmCols+` FROM alarms WHERE kind = $1 AND state <> 'resolved'`, posfleet.AlarmKindIncident)
	if err != nil {
		return err
	}
	for i := range all {
		var inc health.Incident
		json.Unmarshal(all[i].Evidence, &inc)
		a.incidents[all[i].Tenant] = append(a.incidents[all[i].Tenant], newIncidentAlarm(&all[i], inc))
	}
	return nil
}

func newIncidentAlarm(al *posfleet.Alarm, inc health.Incident) *incidentAlarm {
	ia := &incidentAlarm{alarm: al, hit: map[posfleet.TerminalRef]bool{}, all: inc.TerminalCount > len(inc.Terminals)}
	for _, r := range inc.Terminals {
		ia.hit[r] = true
	}
	return ia
}

// foldInto returns the live incident alarm that explains flag on ref, nil
// when none does.
func (a *applier) foldInto(ref posfleet.TerminalRef, flag posfleet.FlagName) *posfleet.Alarm {
	if g := a.bursts[ref.Tenant]; g != nil && g.Active && slices.Contains(a.opts.BurstFlags, flag) {
		return g
	}
	if !slices.Contains(a.opts.FoldFlags, flag) {
		return nil
	}
	for _, ia := range a.incidents[ref.Tenant] {
		if ia.alarm.Active && (ia.all || ia.hit[ref]) {
			return ia.alarm
		}
	}
	return nil
}

func evidenceJSON(ev any) json.RawMessage {
	if ev == nil {
		return nil
	}
	b, err := json.Marshal(ev)
	if err != nil || string(b) == "null" {
		return nil
	}
	return b
}

// raise opens an alarm for flag on ref, or reopens the live one whose
// evidence went within the debounce.
func (a *applier) raise(ctx context.Context, ref posfleet.TerminalRef, flag posfleet.FlagName, at time.Time, ev any, urgent bool) error {
	k := liveKey{ref, string(flag)}
	if at.IsZero() {
		at = a.now
	}
	if al := a.live[k]; al != nil {
		if e := evidenceJSON(ev); e != nil {
			al.Evidence = e
		}
		if al.Active {
			// Raised again without a clearing in between (a resync):
			// the same occurrence.
			return nil
		}
		al.Active, al.Cleared, al.Updated = true, time.Time{}, a.now
		al.Occurrences++
		if err := update(ctx, a.q, *al); err != nil {
			return err
		}
		return addHistory(ctx, a.q, al.ID, posfleet.AlarmEntry{At: at, Action: posfleet.AlarmActReopened, Detail: "within the debounce: the same alarm, nobody notified again"})
	}
	site := a.site[ref]
	al := posfleet.Alarm{ID: NewID(), Tenant: ref.Tenant, Terminal: ref.Terminal, Kind: string(flag), Urgent: urgent,
		Merchant: site.Merchant, Region: site.Region, State: posfleet.AlarmOpen, Active: true, Opened: at,
		Occurrences: 1, Evidence: evidenceJSON(ev), Updated: a.now}
	entries := []posfleet.AlarmEntry{{At: at, Action: posfleet.AlarmActRaised}}
	if p := a.foldInto(ref, flag); p != nil {
		al.Parent = p.ID
		entries = append(entries, posfleet.AlarmEntry{At: a.now, Action: posfleet.AlarmActFolded, Detail: p.ID})
	}
	snoozed := a.snoozed[k]
	if !snoozed.IsZero() {
		al.SnoozedUntil = snoozed
		entries = append(entries, posfleet.AlarmEntry{At: a.now, Action: posfleet.AlarmActSnoozed, Detail: snoozed.UTC().Format(time.RFC3339)})
	}
	if err := insert(ctx, a.q, al); err != nil {
		return err
	}
	a.live[k] = &al
	if al.Parent == "" && slices.Contains(a.opts.BurstFlags, flag) {
		a.burstTenants[ref.Tenant] = true
	}
	if err := addHistory(ctx, a.q, al.ID, entries...); err != nil {
		return err
	}
	if al.Parent != "" || !snoozed.IsZero() {
		return nil
	}
	return a.notify(ctx, al, posfleet.NotifyRaised)
}

// loadSnoozes reads the snoozes that have not ended. A snooze outlives
// the occurrence it was set on, so that a snoozed problem that comes back
// stays quiet until the time someone chose.
func (a *applier) loadSnoozes(ctx context.Context) error {
	rows, err := a.q.QueryContext(ctx, `SELECT tenant, terminal, kind, snoozed_until_ms FROM alarms WHERE snoozed_until_ms > $1`, store.Millis(a.now))
	if err != nil {
		return fmt.Errorf("alarm: snoozes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k liveKey
		var until int64
		if err := rows.Scan(&k.ref.Tenant, &k.ref.Terminal, &k.kind, &until); err != nil {
			return err
		}
		if t := store.Time(until); t.After(a.snoozed[k]) {
			a.snoozed[k] = t
		}
	}
	return rows.Err()
}

// clear notes that flag's evidence on ref went: the alarm is resolved
// once it stayed away for the debounce, at once when a visit cleared it.
func (a *applier) clear(ctx context.Context, ref posfleet.TerminalRef, flag posfleet.FlagName, at time.Time, actor string) error {
	al := a.live[liveKey{ref, string(flag)}]
	if al == nil || (!al.Active && actor == "") {
		return nil
	}
	if at.IsZero() {
		at = a.now
	}
	if al.Active {
		al.Active, al.Cleared, al.Updated = false, at, a.now
		if err := addHistory(ctx, a.q, al.ID, posfleet.AlarmEntry{At: at, Actor: actor, Action: posfleet.AlarmActCleared}); err != nil {
			return err
		}
	}
	if actor != "" {
		return a.resolve(ctx, al, actor, "visit done")
	}
	return update(ctx, a.q, *al)
}

// resolve resolves a live alarm by the rules (by "") or a visit.
func (a *applier) resolve(ctx context.Context, al *posfleet.Alarm, by, detail string) error {
	al.State, al.Resolved, al.ResolvedBy, al.Active, al.Updated = posfleet.AlarmResolved, a.now, by, false, a.now
	if al.Cleared.IsZero() {
		al.Cleared = a.now
	}
	if err := update(ctx, a.q, *al); err != nil {
		return err
	}
	delete(a.live, liveKey{posfleet.TerminalRef{Tenant: al.Tenant, Terminal: al.Terminal}, al.Kind})
	if err := addHistory(ctx, a.q, al.ID, posfleet.AlarmEntry{At: a.now, Actor: by, Action: posfleet.AlarmActResolved, Detail: detail}); err != nil {
		return err
	}
	if al.Parent != "" || al.Snoozed(a.now) {
		return nil
	}
	return a.notify(ctx, *al, posfleet.NotifyResolved)
}

// reconcile makes t's live alarms agree with its flags now.
func (a *applier) reconcile(ctx context.Context, t TerminalFlags) error {
	raised := map[string]bool{}
	for _, f := range t.Flags {
		raised[string(f.Name)] = true
		if al := a.live[liveKey{t.Ref, string(f.Name)}]; al != nil && al.Active {
			if al.Merchant != t.Merchant || al.Region != t.Region {
				al.Merchant, al.Region = t.Merchant, t.Region
				if err := update(ctx, a.q, *al); err != nil {
					return err
				}
			}
			continue
		}
		if err := a.raise(ctx, t.Ref, f.Name, f.Since, f.Evidence, f.Urgent || f.Name.Urgent()); err != nil {
			return err
		}
	}
	for _, name := range posfleet.FlagNames {
		if al := a.live[liveKey{t.Ref, string(name)}]; al != nil && al.Active && !raised[string(name)] {
			if err := a.clear(ctx, t.Ref, name, a.now, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// incident opens, updates or resolves an incident's alarm, and folds into
// it the alarms it explains.
func (a *applier) incident(ctx context.Context, inc health.Incident) error {
	var ia *incidentAlarm
	for _, x := range a.incidents[inc.Tenant] {
		if x.alarm.Incident == inc.ID {
			ia = x
		}
	}
	body := evidenceJSON(inc)
	if ia == nil {
		if !inc.Open {
			return nil // opened and closed between two publishes, or resolved by hand
		}
		al := posfleet.Alarm{ID: NewID(), Tenant: inc.Tenant, Kind: posfleet.AlarmKindIncident, Incident: inc.ID, Urgent: true,
			Merchant: strings.Join(inc.Merchants, ", "), State: posfleet.AlarmOpen, Active: true, Opened: inc.Start,
			Occurrences: 1, Evidence: body, Updated: a.now}
		if len(al.Merchant) > 200 {
			al.Merchant = fmt.Sprintf("%d merchants", len(inc.Merchants))
		}
		if al.Opened.IsZero() {
			al.Opened = a.now
		}
		if err := insert(ctx, a.q, al); err != nil {
			return err
		}
		if err := addHistory(ctx, a.q, al.ID, posfleet.AlarmEntry{At: al.Opened, Action: posfleet.AlarmActRaised,
			Detail: fmt.Sprintf("%d terminals of %d merchants", inc.TerminalCount, len(inc.Merchants))}); err != nil {
			return err
		}
		ia = newIncidentAlarm(&al, inc)
		a.incidents[inc.Tenant] = append(a.incidents[inc.Tenant], ia)
		if err := a.notify(ctx, al, posfleet.NotifyRaised); err != nil {
			return err
		}
	} else {
		*ia = *newIncidentAlarm(ia.alarm, inc)
		ia.alarm.Evidence, ia.alarm.Updated = body, a.now
	}
	if inc.Open {
		if err := update(ctx, a.q, *ia.alarm); err != nil {
			return err
		}
		return a.fold(ctx, ia)
	}
	// Closed: resolved now (an incident does not flap: a new outage is a
	// new incident). Its children still active are problems of their own.
	ia.alarm.Cleared = inc.End
	if err := a.resolve(ctx, ia.alarm, "", "the incident closed"); err != nil {
		return err
	}
	a.incidents[inc.Tenant] = slices.DeleteFunc(a.incidents[inc.Tenant], func(x *incidentAlarm) bool { return x == ia })
	return a.unfold(ctx, ia.alarm)
}

// fold moves the live top-level alarms the incident explains under it.
func (a *applier) fold(ctx context.Context, ia *incidentAlarm) error {
	var kinds []any
	var ph []string
	for i, f := range a.opts.FoldFlags {
		kinds = append(kinds, string(f))
		ph = append(ph, "$"+strconv.Itoa(i+2))
	}
	if len(kinds) == 0 {
		return nil
	}
	cands, err := a.alarms(ctx, `SELECT `+alarmCols+` FROM alarms WHERE tenant = $1 AND state <> 'resolved' AND parent = '' AND incident = ''
		AND kind IN (`+strings.Join(ph, ", ")+`)`, append([]any{ia.alarm.Tenant}, kinds...)...)
	if err != nil {
		return err
	}
	var fold []posfleet.Alarm
	for _, al := range cands {
		if al.Active && (ia.all || ia.hit[posfleet.TerminalRef{Tenant: al.Tenant, Terminal: al.Terminal}]) {
			fold = append(fold, al)
		}
	}
	return a.foldUnder(ctx, ia.alarm, fold, "folded into the incident's alarm")
}

// foldUnder folds alarms under parent and takes back their raisings'
// notifications not delivered yet: they are the parent's now.
func (a *applier) foldUnder(ctx context.Context, parent *posfleet.Alarm, fold []posfleet.Alarm, why string) error {
	for _, al := range fold {
		al.Parent, al.Updated = parent.ID, a.now
		if live := a.live[liveKey{posfleet.TerminalRef{Tenant: al.Tenant, Terminal: al.Terminal}, al.Kind}]; live != nil {
			live.Parent = al.Parent
		}
		if err := update(ctx, a.q, al); err != nil {
			return err
		}
		if err := addHistory(ctx, a.q, al.ID, posfleet.AlarmEntry{At: a.now, Action: posfleet.AlarmActFolded, Detail: parent.ID}); err != nil {
			return err
		}
		if _, err := a.q.ExecContext(ctx, `UPDATE notifications SET state = $1, bundle = $2, last_error = $3
			WHERE alarm_id = $4 AND event = $5 AND state IN ($6, $7)`,
			string(posfleet.NotificationBundled), parent.ID, why, al.ID,
			string(posfleet.NotifyRaised), string(posfleet.NotificationPending), string(posfleet.NotificationHeld)); err != nil {
			return fmt.Errorf("alarm: notifications of %s: %w", al.ID, err)
		}
	}
	return nil
}

// unfold handles the children of a resolved incident alarm: those whose
// evidence went are resolved with it; those still active stand on their
// own again and notify as new.
func (a *applier) unfold(ctx context.Context, parent *posfleet.Alarm) error {
	kids, err := a.alarms(ctx, `SELECT `+alarmCols+` FROM alarms WHERE parent = $1 AND state <> 'resolved'`, parent.ID)
	if err != nil {
		return err
	}
	for i := range kids {
		al := &kids[i]
		if live := a.live[liveKey{posfleet.TerminalRef{Tenant: al.Tenant, Terminal: al.Terminal}, al.Kind}]; live != nil {
			al = live
		}
		if !al.Active {
			if err := a.resolve(ctx, al, "", "with incident alarm "+parent.ID); err != nil {
				return err
			}
			continue
		}
		al.Parent, al.Updated = "", a.now
		if err := update(ctx, a.q, *al); err != nil {
			return err
		}
		if err := addHistory(ctx, a.q, al.ID, posfleet.AlarmEntry{At: a.now, Action: posfleet.AlarmActUnfolded, Detail: parent.ID}); err != nil {
			return err
		}
		if !al.Snoozed(a.now) {
			if err := a.notify(ctx, *al, posfleet.NotifyRaised); err != nil {
				return err
			}
		}
	}
	return nil
}

// settle resolves the alarms whose evidence stayed away for the debounce.
func (a *applier) settle(ctx context.Context) error {
	due, err := a.alarms(ctx, `SELECT `+alarmCols+` FROM alarms WHERE active = $1 AND state <> 'resolved' AND cleared_ms > 0 AND cleared_ms <= $2`,
		false, store.Millis(a.now.Add(-a.opts.Debounce)))
	if err != nil {
		return err
	}
	for i := range due {
		if err := a.resolve(ctx, &due[i], "", fmt.Sprintf("the evidence stayed away for %s", a.opts.Debounce)); err != nil {
			return err
		}
	}
	return nil
}
