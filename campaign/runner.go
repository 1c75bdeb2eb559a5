package campaign

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Sender sends a command to a terminal now, recording it in the
// terminal's command log as sent by by; an error when the terminal cannot
// be reached now (the runner tries again at a later step).
type Sender interface {
	SendCommand(ctx context.Context, ref posfleet.TerminalRef, cmd posfleet.Command, by string) error
}

// CommandStatus gives the latest ack of a command (accepted, rejected,
// done, failed) with its detail; ok is false while none arrived.
type CommandStatus interface {
	CommandStatus(ctx context.Context, ref posfleet.TerminalRef, id string) (status, detail string, ok bool)
}

// Runner moves running campaigns on: it sends updates inside windows and
// within MaxInFlight, follows their progress, starts each wave's soak,
// judges its gate, and sends rollbacks. Step is called every few seconds
// by the process holding the health lease (one at a time in a cluster);
// everything it decides is in the database, so another process taking
// the lease over goes on where it stopped.
type Runner struct {
	Store  *Store
	Sender Sender
	// Acks, when set, fails an update whose command the terminal rejected
	// or failed without reporting it in its inventory.
	Acks  CommandStatus
	Rules GateRules
	Log   *slog.Logger
}

// NewRunner returns a runner with the default gate rules.
func NewRunner(st *Store, send Sender, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{Store: st, Sender: send, Rules: DefaultGateRules(), Log: log.With("component", "campaign")}
}

// Step does one round for every campaign in progress at now.
func (r *Runner) Step(ctx context.Context, now time.Time) error {
	now = now.UTC()
	// Campaigns in progress, and ended ones with updates still in flight
	// (aborted while sending): their terminals' records are kept true.
	rows, err := r.Store.DB.QueryContext(ctx, `SELECT id FROM campaigns c WHERE state IN (`+stateList(activeStates)+`)
		OR EXISTS (SELECT 1 FROM campaign_terminals ct WHERE ct.campaign = c.id AND ct.state IN ('sent', 'downloading'))
		ORDER BY created_ms, id`)
	if err != nil {
		return fmt.Errorf("campaign: runner: %w", err)
	}
	ids, err := store.Strings(rows)
	if err != nil {
		return fmt.Errorf("campaign: runner: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := r.stepOne(ctx, id, now); err != nil && !errors.Is(err, errChanged) {
			r.Log.Warn("campaign step failed", "campaign", id, "err", err)
			errs = append(errs, fmt.Errorf("campaign %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// termRow is a campaign_terminals row as the runner works on it.
type termRow struct {
	terminal      string
	wave          int
	state         posfleet.CampaignTerminalState
	from, cmdID   string
	sent, done    int64
	detail        string
	rbID          string
	rbSent        int64
	orig          posfleet.CampaignTerminalState
	origDetail    string
	origCmd, orRB string
}

func (t *termRow) changed() bool {
	return t.state != t.orig || t.detail != t.origDetail || t.cmdID != t.origCmd || t.rbID != t.orRB
}

// rowsIn reads a campaign's terminals in states, of waves up to maxWave,
// in the order they are to be sent.
func rowsIn(ctx context.Context, q Querier, id string, maxWave int, states ...posfleet.CampaignTerminalState) ([]*termRow, error) {
	args := []any{id, maxWave}
	ph := make([]string, len(states))
	for i, st := range states {
		args = append(args, string(st))
		ph[i] = fmt.Sprintf("$%d", i+3)
	}
	rows, err := q.QueryContext(ctx, `SELECT terminal, wave, state, from_version, command_id, sent_ms, done_ms, detail, rollback_id, rollback_ms
		FROM campaign_terminals WHERE campaign = $1 AND wave <= $2 AND state IN (`+strings.Join(ph, ", ")+`) ORDER BY ord`, args...)
	if err != nil {
		return nil, fmt.Errorf("campaign: terminals of %s: %w", id, err)
	}
	defer rows.Close()
	var out []*termRow
	for rows.Next() {
		t := &termRow{}
		var st string
		if err := rows.Scan(&t.terminal, &t.wave, &st, &t.from, &t.cmdID, &t.sent, &t.done, &t.detail, &t.rbID, &t.rbSent); err != nil {
			return nil, err
		}
		t.state = posfleet.CampaignTerminalState(st)
		t.orig, t.origDetail, t.origCmd, t.orRB = t.state, t.detail, t.cmdID, t.rbID
		out = append(out, t)
	}
	return out, rows.Err()
}

// writeRow writes a changed row.
func writeRow(ctx context.Context, q Querier, id string, t *termRow) error {
	if !t.changed() {
		return nil
	}
	_, err := q.ExecContext(ctx, `UPDATE campaign_terminals SET state = $3, command_id = $4, sent_ms = $5, done_ms = $6, detail = $7,
		rollback_id = $8, rollback_ms = $9 WHERE campaign = $1 AND terminal = $2`,
		id, t.terminal, string(t.state), t.cmdID, t.sent, t.done, t.detail, t.rbID, t.rbSent)
	if err != nil {
		return fmt.Errorf("campaign: terminal %s of %s: %w", t.terminal, id, err)
	}
	t.orig, t.origDetail, t.origCmd, t.orRB = t.state, t.detail, t.cmdID, t.rbID
	return nil
}

const maxDetail = 200

func clip(s string) string {
	if len(s) > maxDetail {
		return s[:maxDetail]
	}
	return s
}

func (r *Runner) stepOne(ctx context.Context, id string, now time.Time) error {
	c, err := load(ctx, r.Store.DB, id)
	if err != nil {
		return err
	}
	inflight, err := r.follow(ctx, c, now)
	if err != nil {
		return err
	}
	switch c.State {
	case posfleet.CampaignRunning:
		loc := r.Store.location(ctx, c)
		if err := r.send(ctx, c, loc, now, inflight); err != nil {
			return err
		}
		return r.soak(ctx, &c, now)
	case posfleet.CampaignRollingBack:
		return r.rollback(ctx, &c, r.Store.location(ctx, c), now)
	}
	return nil
}

// location is the zone of c's fixed window: the spec's, else the
// tenant's default (tenant_settings), else UTC.
func (s *Store) location(ctx context.Context, c rec) *time.Location {
	zone := c.Spec.Window.Zone
	if zone == "" {
		var tz string
		if err := s.DB.QueryRowContext(ctx, `SELECT time_zone FROM tenant_settings WHERE tenant = $1`, c.Tenant).Scan(&tz); err == nil {
			zone = tz
		}
	}
	if zone != "" {
		if loc, err := time.LoadLocation(zone); err == nil {
			return loc
		}
	}
	return time.UTC
}

func (c rec) ref(terminal string) posfleet.TerminalRef {
	return posfleet.TerminalRef{Tenant: c.Tenant, Terminal: terminal}
}

// follow moves the updates in flight (sent, downloading) on from what
// the terminals report: their firmware, their update attempt, the
// command's ack, or the lack of an answer. It returns how many are still
// in flight.
func (r *Runner) follow(ctx context.Context, c rec, now time.Time) (int, error) {
	rows, err := rowsIn(ctx, r.Store.DB, c.ID, len(c.Spec.Waves), posfleet.CTSent, posfleet.CTDownloading)
	if err != nil {
		return 0, err
	}
	target := c.Spec.Target
	inflight := 0
	for _, t := range rows {
		ft, ok := r.Store.Fleet.Terminal(ctx, c.ref(t.terminal))
		switch {
		case ok && ft.Firmware == target:
			t.state, t.detail = posfleet.CTInstalled, ""
		case ok && ft.Update != nil && ft.Update.Target == target && store.Millis(ft.UpdateAt) >= t.sent:
			switch ft.Update.Status {
			case posfleet.UpdateDownloading:
				t.state = posfleet.CTDownloading
			case posfleet.UpdateInstalled:
				t.state, t.detail = posfleet.CTInstalled, ""
			case posfleet.UpdateFailed:
				t.state, t.detail = posfleet.CTFailed, clip(ft.Update.Error)
			}
		}
		if (t.state == posfleet.CTSent || t.state == posfleet.CTDownloading) && r.Acks != nil && t.cmdID != "" {
			if st, detail, ok := r.Acks.CommandStatus(ctx, c.ref(t.terminal), t.cmdID); ok {
				switch st {
				case posfleet.AckRejected, posfleet.AckFailed:
					t.state, t.detail = posfleet.CTFailed, clip(st+": "+detail)
				case posfleet.AckDone:
					t.state, t.detail = posfleet.CTInstalled, ""
				}
			}
		}
		if (t.state == posfleet.CTSent || t.state == posfleet.CTDownloading) && now.Sub(store.Time(t.sent)) > r.Store.Opts.AnswerTimeout && r.Store.Opts.AnswerTimeout > 0 {
			t.state, t.detail = posfleet.CTFailed, fmt.Sprintf("no answer within %s", r.Store.Opts.AnswerTimeout)
		}
		if t.state == posfleet.CTInstalled || t.state == posfleet.CTFailed {
			t.done = store.Millis(now)
		} else {
			inflight++
		}
		if err := writeRow(ctx, r.Store.DB, c.ID, t); err != nil {
			return 0, err
		}
	}
	return inflight, nil
}

// window reports whether ref may be sent an update at now.
func (r *Runner) window(c rec, loc *time.Location, ref posfleet.TerminalRef, now time.Time) bool {
	var hours [168]bool
	known := false
	if c.Spec.Window.Mode == posfleet.WindowLearned && r.Store.Hours != nil {
		hours, known = r.Store.Hours.UsualSaleHours(ref)
	}
	return inWindow(c.Spec.Window, loc, hours, known, now)
}

// send sends the update to the queued terminals of the waves so far that
// are online and inside their window, up to MaxInFlight in flight, and
// keeps queued and offline apart.
func (r *Runner) send(ctx context.Context, c rec, loc *time.Location, now time.Time, inflight int) error {
	rows, err := rowsIn(ctx, r.Store.DB, c.ID, c.Wave, posfleet.CTQueued, posfleet.CTOffline)
	if err != nil {
		return err
	}
	for _, t := range rows {
		ref := c.ref(t.terminal)
		ft, ok := r.Store.Fleet.Terminal(ctx, ref)
		switch {
		case !ok || !ft.Online:
			t.state = posfleet.CTOffline
		case ft.Firmware == c.Spec.Target:
			// Updated meanwhile by other means: nothing to send.
			t.state, t.detail, t.done = posfleet.CTInstalled, "already running "+c.Spec.Target, store.Millis(now)
		default:
			t.state = posfleet.CTQueued
			if inflight < c.Spec.MaxInFlight && r.window(c, loc, ref, now) {
				cmd := posfleet.Command{ID: newID("cmd-"), Type: posfleet.CmdUpdateFirmware, Target: c.Spec.Target,
					URL: c.Spec.Package.URL, SHA256: c.Spec.Package.SHA256}
				if err := r.Sender.SendCommand(ctx, ref, cmd, "campaign "+c.ID); err != nil {
					t.detail = clip("not sent yet: " + err.Error())
				} else {
					t.state, t.cmdID, t.sent, t.detail = posfleet.CTSent, cmd.ID, store.Millis(now), ""
					inflight++
				}
			}
		}
		if err := writeRow(ctx, r.Store.DB, c.ID, t); err != nil {
			return err
		}
	}
	return nil
}

// countWave counts the current wave's terminals by state.
func countWave(ctx context.Context, q Querier, c rec) (map[posfleet.CampaignTerminalState]int, error) {
	return countStates(ctx, q, `SELECT state, COUNT(*) FROM campaign_terminals WHERE campaign = $1 AND wave = $2 GROUP BY state`, c.ID, c.Wave)
}

// countStates reads (state, count) rows of query.
func countStates(ctx context.Context, q Querier, query string, args ...any) (map[posfleet.CampaignTerminalState]int, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[posfleet.CampaignTerminalState]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[posfleet.CampaignTerminalState(st)] = n
	}
	return out, rows.Err()
}

// Soak cohorts.
const (
	cohortUpdated  = "updated"
	cohortBaseline = "baseline"
)

// soak starts the current wave's soak once every online terminal of it
// has answered (or WaveTimeout passed), and judges its gate when it ends.
func (r *Runner) soak(ctx context.Context, c *rec, now time.Time) error {
	if c.SoakUntil.IsZero() {
		n, err := countWave(ctx, r.Store.DB, *c)
		if err != nil {
			return err
		}
		waiting := n[posfleet.CTQueued] + n[posfleet.CTSent] + n[posfleet.CTDownloading] + n[posfleet.CTPending]
		answered := n[posfleet.CTInstalled] + n[posfleet.CTFailed]
		started := store.Time(c.waves[c.Wave].Started)
		timedOut := r.Store.Opts.WaveTimeout > 0 && now.Sub(started) >= r.Store.Opts.WaveTimeout
		if answered == 0 || (waiting > 0 && !timedOut) {
			return nil
		}
		return r.startSoak(ctx, c, now, waiting)
	}
	if now.Before(c.SoakUntil) {
		return nil
	}
	return r.judge(ctx, c, now)
}

// startSoak keeps both cohorts' counters and starts the soak's clock.
func (r *Runner) startSoak(ctx context.Context, c *rec, now time.Time, waiting int) error {
	updated, err := rowsIn(ctx, r.Store.DB, c.ID, c.Wave, posfleet.CTInstalled, posfleet.CTFailed)
	if err != nil {
		return err
	}
	type member struct{ terminal, cohort string }
	var members []member
	for _, t := range updated {
		if t.wave == c.Wave {
			members = append(members, member{t.terminal, cohortUpdated})
		}
	}
	// The baseline: the same tenant's terminals of the model, online, not
	// on the target and not updated by this campaign, chosen by hash.
	touched := map[string]bool{}
	trows, err := rowsIn(ctx, r.Store.DB, c.ID, len(c.Spec.Waves), posfleet.CTSent, posfleet.CTDownloading, posfleet.CTInstalled, posfleet.CTFailed, posfleet.CTRolledBack)
	if err != nil {
		return err
	}
	for _, t := range trows {
		touched[t.terminal] = true
	}
	all, err := r.Store.Fleet.Terminals(ctx, c.Tenant, c.Spec.Model)
	if err != nil {
		return err
	}
	var base []choice
	for _, t := range all {
		if t.Online && t.Firmware != "" && t.Firmware != c.Spec.Target && !touched[t.Ref.Terminal] {
			base = append(base, choice{Terminal: t, rank: hashRank(c.ID+"/baseline", t.Ref.Terminal)})
		}
	}
	sort.Slice(base, func(i, j int) bool { return base[i].rank < base[j].rank })
	if cp := r.Store.Opts.BaselineCap; cp > 0 && len(base) > cp {
		base = base[:cp]
	}
	for _, b := range base {
		members = append(members, member{b.Ref.Terminal, cohortBaseline})
	}
	soak := time.Duration(c.Spec.Waves[c.Wave].Soak)
	return r.Store.DB.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM campaign_soak WHERE campaign = $1 AND wave = $2`, c.ID, c.Wave); err != nil {
			return err
		}
		const cols = 5
		batch := make([]any, 0, 400*cols)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO campaign_soak (campaign, wave, terminal, cohort, kpi) VALUES `+
				r.Store.DB.Dialect.Values(len(batch)/cols, cols), batch...)
			batch = batch[:0]
			return err
		}
		for _, m := range members {
			k, _ := r.Store.Fleet.KPI(c.ref(m.terminal))
			body, _ := json.Marshal(k)
			batch = append(batch, c.ID, c.Wave, m.terminal, m.cohort, string(body))
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return fmt.Errorf("campaign: soak of %s: %w", c.ID, err)
				}
			}
		}
		if err := flush(); err != nil {
			return fmt.Errorf("campaign: soak of %s: %w", c.ID, err)
		}
		c.soakFrom, c.SoakUntil = store.Millis(now), now.Add(soak)
		c.waves[c.Wave].Done = store.Millis(now)
		if err := save(ctx, tx, c, now); err != nil {
			return err
		}
		text := fmt.Sprintf("soak of %s until %s: %d updated terminals against %d not updated", soak, c.SoakUntil.Format(time.RFC3339),
			len(members)-len(base), len(base))
		if waiting > 0 {
			text += fmt.Sprintf("; %d terminals of the wave had not answered within %s", waiting, r.Store.Opts.WaveTimeout)
		}
		return addEvent(ctx, tx, c.ID, posfleet.CampaignEvent{At: now, Kind: "soak_started", Wave: c.Wave, Text: text})
	})
}

// sub is the growth of counters from a to b (0 where b is below a: the
// counters restarted).
func sub(b, a posfleet.KPICounts) posfleet.KPICounts {
	d := func(x, y uint32) uint32 {
		if x < y {
			return 0
		}
		return x - y
	}
	return posfleet.KPICounts{Txns: d(b.Txns, a.Txns), Sales: d(b.Sales, a.Sales), ApprovedSales: d(b.ApprovedSales, a.ApprovedSales),
		Approved: d(b.Approved, a.Approved), DeviceFailures: d(b.DeviceFailures, a.DeviceFailures), Mismatches: d(b.Mismatches, a.Mismatches),
		ReceiptFails: d(b.ReceiptFails, a.ReceiptFails), CrashBoots: d(b.CrashBoots, a.CrashBoots)}
}

// judge reads both cohorts' counters again, judges the gate and moves
// the campaign on or pauses it.
// maxSoakRounds bounds a wave's soak when its payments are too few to
// judge (tooLittleTrade): the soak is extended, a soak's length at a time,
// up to this many soaks in all; then the gate passes on what it judged
// (crash boots, installs, offline terminals), as doc.go says.
const maxSoakRounds = 4

// tooLittleTrade reports whether a gate had a baseline to compare with and
// enough updated terminals, but judged none of the payment KPIs for want
// of payments (a soak in the night).
func tooLittleTrade(g posfleet.GateResult, rules GateRules) bool {
	if g.Updated < rules.MinUpdatedTerminals || g.Baseline < rules.MinBaselineTerminals {
		return false // a cohort too small: more hours do not help
	}
	for _, m := range g.Metrics {
		switch m.KPI {
		case posfleet.KPIDeclines, posfleet.KPIDeviceFailures, posfleet.KPIAmountMismatch:
			if m.Enough {
				return false
			}
		}
	}
	return true
}

func (r *Runner) judge(ctx context.Context, c *rec, now time.Time) error {
	rows, err := r.Store.DB.QueryContext(ctx, `SELECT terminal, cohort, kpi FROM campaign_soak WHERE campaign = $1 AND wave = $2`, c.ID, c.Wave)
	if err != nil {
		return fmt.Errorf("campaign: soak of %s: %w", c.ID, err)
	}
	type start struct {
		terminal, cohort string
		k                posfleet.KPICounts
	}
	var starts []start
	for rows.Next() {
		var s start
		var body string
		if err := rows.Scan(&s.terminal, &s.cohort, &body); err != nil {
			rows.Close()
			return err
		}
		if err := json.Unmarshal([]byte(body), &s.k); err != nil {
			rows.Close()
			return fmt.Errorf("campaign: soak of %s: %w", c.ID, err)
		}
		starts = append(starts, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	failed := map[string]bool{}
	frows, err := rowsIn(ctx, r.Store.DB, c.ID, c.Wave, posfleet.CTFailed)
	if err != nil {
		return err
	}
	for _, t := range frows {
		failed[t.terminal] = true
	}
	from := store.Time(c.soakFrom)
	hours := now.Sub(from).Hours()
	var updated, baseline []TerminalKPI
	for _, s := range starts {
		ref := c.ref(s.terminal)
		cur, ok := r.Store.Fleet.KPI(ref)
		if !ok {
			cur = s.k
		}
		ft, known := r.Store.Fleet.Terminal(ctx, ref)
		tk := TerminalKPI{Terminal: s.terminal, Counts: sub(cur, s.k), Hours: hours, Offline: !known || !ft.Online}
		if s.cohort == cohortUpdated {
			tk.UpdateFailed = failed[s.terminal]
			updated = append(updated, tk)
		} else if !(known && ft.Firmware == c.Spec.Target) { // updated meanwhile: no longer a baseline
			baseline = append(baseline, tk)
		}
	}
	res := Judge(updated, baseline, r.Rules)
	res.Wave, res.At, res.From, res.To = c.Wave, now, from, now
	if soak := time.Duration(c.Spec.Waves[c.Wave].Soak); res.Passed && tooLittleTrade(res, r.Rules) && soak > 0 && now.Sub(from) < maxSoakRounds*soak {
		// A soak in the shops' closed hours saw too few payments to judge
		// them: soak again rather than pass on crash boots alone.
		c.SoakUntil = now.Add(soak)
		return r.Store.DB.Tx(ctx, func(tx *sql.Tx) error {
			if err := save(ctx, tx, c, now); err != nil {
				return err
			}
			return addEvent(ctx, tx, c.ID, posfleet.CampaignEvent{At: now, Kind: "soak_extended", Wave: c.Wave,
				Text: fmt.Sprintf("too few payments on the updated terminals to judge them after %s: soak extended until %s", now.Sub(from).Round(time.Second), c.SoakUntil.Format(time.RFC3339))})
		})
	}
	c.Gates = append(c.Gates, res)
	return r.Store.DB.Tx(ctx, func(tx *sql.Tx) error {
		if res.Passed {
			if err := addEvent(ctx, tx, c.ID, posfleet.CampaignEvent{At: now, Kind: "gate_passed", Wave: c.Wave,
				Text: fmt.Sprintf("gate of wave %d passed: %d updated terminals against %d not updated", c.Wave+1, res.Updated, res.Baseline)}); err != nil {
				return err
			}
			if err := r.Store.advance(ctx, tx, c, now, ""); err != nil {
				return err
			}
			return save(ctx, tx, c, now)
		}
		reason := GateReason(res)
		c.State, c.heldBy, c.Reason = posfleet.CampaignPaused, "gate", reason
		if err := save(ctx, tx, c, now); err != nil {
			return err
		}
		if err := addEvent(ctx, tx, c.ID, posfleet.CampaignEvent{At: now, Kind: "gate_failed", Wave: c.Wave, Text: reason}); err != nil {
			return err
		}
		r.Log.Warn("campaign paused by its gate", "campaign", c.ID, "tenant", c.Tenant, "reason", reason)
		if r.Store.Alarms != nil {
			full, err := fill(ctx, tx, *c)
			if err != nil {
				return err
			}
			return r.Store.Alarms.RaiseCampaign(ctx, tx, full, res, reason, now)
		}
		return nil
	})
}

// GateReason says in words why a gate failed: each KPI worse on the
// updated terminals, with both cohorts' numbers.
func GateReason(g posfleet.GateResult) string {
	var parts []string
	for _, m := range g.Metrics {
		if !m.Worse {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s on the updated terminals against %s on those not updated",
			m.KPI, rate(m.UpdatedEvents, m.UpdatedExposure, m.UpdatedRate, m.KPI), rate(m.BaselineEvents, m.BaselineExposure, m.BaselineRate, m.KPI)))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("gate of wave %d failed", g.Wave+1)
	}
	return fmt.Sprintf("gate of wave %d failed: %s", g.Wave+1, strings.Join(parts, "; "))
}

func rate(events int64, exposure, r float64, k posfleet.KPI) string {
	if k == posfleet.KPICrashBoots {
		return fmt.Sprintf("%d in %.1f terminal-hours (%.2f per hour)", events, exposure, r)
	}
	return fmt.Sprintf("%d of %.0f (%.1f%%)", events, exposure, 100*r)
}

// rollback sends the updated terminals their previous version and
// follows them back; the campaign is rolled back once none is left.
func (r *Runner) rollback(ctx context.Context, c *rec, loc *time.Location, now time.Time) error {
	rows, err := rowsIn(ctx, r.Store.DB, c.ID, len(c.Spec.Waves), toRollBack...)
	if err != nil {
		return err
	}
	inflight := 0
	for _, t := range rows {
		if t.rbID != "" {
			inflight++
		}
	}
	left := 0
	for _, t := range rows {
		ref := c.ref(t.terminal)
		ft, ok := r.Store.Fleet.Terminal(ctx, ref)
		switch {
		case ok && ft.Firmware == t.from:
			if t.rbID != "" {
				inflight--
			}
			t.state, t.detail, t.done = posfleet.CTRolledBack, "", store.Millis(now)
		case t.state != posfleet.CTInstalled:
			left++ // its update is still in flight: rolled back once it answers
		case t.rbID != "":
			switch {
			case ok && ft.Update != nil && ft.Update.Target == t.from && ft.Update.Status == posfleet.UpdateFailed && store.Millis(ft.UpdateAt) >= t.rbSent:
				t.state, t.detail = posfleet.CTFailed, clip("rollback failed: "+ft.Update.Error)
				inflight--
			case r.Store.Opts.AnswerTimeout > 0 && now.Sub(store.Time(t.rbSent)) > r.Store.Opts.AnswerTimeout:
				t.state, t.detail = posfleet.CTFailed, fmt.Sprintf("rollback: no answer within %s", r.Store.Opts.AnswerTimeout)
				inflight--
			default:
				left++
			}
		default:
			left++
			if !ok || !ft.Online || inflight >= c.Spec.MaxInFlight || !r.window(*c, loc, ref, now) {
				continue
			}
			pkg, found := r.Store.rollbackPackage(*c, t.from)
			if !found {
				t.state, t.detail = posfleet.CTFailed, "rollback: no package for "+t.from
				left--
				break
			}
			cmd := posfleet.Command{ID: newID("cmd-"), Type: posfleet.CmdUpdateFirmware, Target: t.from, URL: pkg.URL, SHA256: pkg.SHA256}
			if err := r.Sender.SendCommand(ctx, ref, cmd, "campaign "+c.ID+" rollback"); err != nil {
				t.detail = clip("rollback not sent yet: " + err.Error())
				continue
			}
			t.rbID, t.rbSent, t.detail = cmd.ID, store.Millis(now), "rolling back to "+t.from
			inflight++
		}
		if err := writeRow(ctx, r.Store.DB, c.ID, t); err != nil {
			return err
		}
	}
	if left > 0 {
		return nil
	}
	return r.Store.DB.Tx(ctx, func(tx *sql.Tx) error {
		c.State = posfleet.CampaignRolledBack
		if err := save(ctx, tx, c, now); err != nil {
			return err
		}
		n, err := countAll(ctx, tx, c.ID)
		if err != nil {
			return err
		}
		return addEvent(ctx, tx, c.ID, posfleet.CampaignEvent{At: now, Kind: "rolled_back", Wave: c.Wave,
			Text: fmt.Sprintf("%d terminals back on their previous version; %d failed", n[posfleet.CTRolledBack], n[posfleet.CTFailed])})
	})
}

// countAll counts a campaign's terminals by state.
func countAll(ctx context.Context, q Querier, id string) (map[posfleet.CampaignTerminalState]int, error) {
	return countStates(ctx, q, `SELECT state, COUNT(*) FROM campaign_terminals WHERE campaign = $1 GROUP BY state`, id)
}
