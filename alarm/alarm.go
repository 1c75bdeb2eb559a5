// Package alarm keeps alarms, their history, the notification channels
// and routes, and writes the notifications outbox, in the control-plane
// database (store/migrations/00200_alarms.sql).
//
// Alarms change in two ways:
//
//   - by the rules: Apply, called by healthview.Publish in the transaction
//     that publishes the health engine's flag transitions and incidents
//     (the holder of the health lease), and Settle, which resolves the
//     alarms whose evidence stayed away for the debounce;
//   - by people: acknowledge, assign, comment, snooze, resolve (any web
//     replica).
//
// Either way, the notifications a transition causes are written in the
// same transaction (enqueue), so that none is lost and none is sent for a
// transition that did not happen. The notify package delivers them.
package alarm

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Querier is a *store.DB or a *sql.Tx.
type Querier = store.Querier

// NewID returns a new ID: 128 random bits in hex.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// alarmCols are the columns scanAlarm reads, in its order.
const alarmCols = `id, tenant, terminal, kind, incident, urgent, merchant, region, state, active,
	opened_ms, cleared_ms, resolved_ms, resolved_by, ack_by, ack_ms, assignee, snoozed_until_ms,
	parent, occurrences, evidence, updated_ms`

// scanAlarm reads a row of alarmCols.
func scanAlarm(r interface{ Scan(...any) error }) (posfleet.Alarm, error) {
	var a posfleet.Alarm
	var state, evidence string
	var opened, cleared, resolved, ack, snoozed, updated int64
	err := r.Scan(&a.ID, &a.Tenant, &a.Terminal, &a.Kind, &a.Incident, &a.Urgent, &a.Merchant, &a.Region, &state, &a.Active,
		&opened, &cleared, &resolved, &a.ResolvedBy, &a.AckBy, &ack, &a.Assignee, &snoozed,
		&a.Parent, &a.Occurrences, &evidence, &updated)
	if err != nil {
		return a, err
	}
	a.State = posfleet.AlarmState(state)
	a.Opened, a.Cleared, a.Resolved = store.Time(opened), store.Time(cleared), store.Time(resolved)
	a.AckAt, a.SnoozedUntil, a.Updated = store.Time(ack), store.Time(snoozed), store.Time(updated)
	if evidence != "" && evidence != "null" {
		a.Evidence = json.RawMessage(evidence)
	}
	return a, nil
}

// get reads one alarm; a posfleet.NotFound error when there is none.
func get(ctx context.Context, q Querier, id string) (posfleet.Alarm, error) {
	a, err := scanAlarm(q.QueryRowContext(ctx, `SELECT `+alarmCols+` FROM alarms WHERE id = $1`, id))
	if err == sql.ErrNoRows {
		return a, posfleet.Errorf(posfleet.NotFound, "alarm_not_found", "no alarm %q", id)
	}
	if err != nil {
		return a, fmt.Errorf("alarm: %s: %w", id, err)
	}
	return a, nil
}

// insert writes a new alarm row.
func insert(ctx context.Context, q Querier, a posfleet.Alarm) error {
	evidence := "null"
	if len(a.Evidence) > 0 {
		evidence = string(a.Evidence)
	}
	_, err := q.ExecContext(ctx, `INSERT INTO alarms (`+alarmCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
		$11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
		a.ID, a.Tenant, a.Terminal, a.Kind, a.Incident, a.Urgent, a.Merchant, a.Region, string(a.State), a.Active,
		store.Millis(a.Opened), store.Millis(a.Cleared), store.Millis(a.Resolved), a.ResolvedBy, a.AckBy, store.Millis(a.AckAt), a.Assignee, store.Millis(a.SnoozedUntil),
		a.Parent, a.Occurrences, evidence, store.Millis(a.Updated))
	if err != nil {
		return fmt.Errorf("alarm: new %s alarm of %s/%s: %w", a.Kind, a.Tenant, a.Terminal, err)
	}
	return nil
}

// update writes every column of an existing alarm.
func update(ctx context.Context, q Querier, a posfleet.Alarm) error {
	evidence := "null"
	if len(a.Evidence) > 0 {
		evidence = string(a.Evidence)
	}
	_, err := q.ExecContext(ctx, `UPDATE alarms SET urgent = $2, merchant = $3, region = $4, state = $5, active = $6,
		opened_ms = $7, cleared_ms = $8, resolved_ms = $9, resolved_by = $10, ack_by = $11, ack_ms = $12, assignee = $13,
		snoozed_until_ms = $14, parent = $15, occurrences = $16, evidence = $17, updated_ms = $18 WHERE id = $1`,
		a.ID, a.Urgent, a.Merchant, a.Region, string(a.State), a.Active,
		store.Millis(a.Opened), store.Millis(a.Cleared), store.Millis(a.Resolved), a.ResolvedBy, a.AckBy, store.Millis(a.AckAt), a.Assignee,
		store.Millis(a.SnoozedUntil), a.Parent, a.Occurrences, evidence, store.Millis(a.Updated))
	if err != nil {
		return fmt.Errorf("alarm: %s: %w", a.ID, err)
	}
	return nil
}

// addHistory appends entries to an alarm's history.
func addHistory(ctx context.Context, q Querier, id string, entries ...posfleet.AlarmEntry) error {
	for _, e := range entries {
		_, err := q.ExecContext(ctx, `INSERT INTO alarm_history (alarm_id, seq, at_ms, actor, action, detail)
			SELECT $1, COALESCE(MAX(seq) + 1, 0), $2, $3, $4, $5 FROM alarm_history WHERE alarm_id = $1`,
			id, store.Millis(e.At), e.Actor, string(e.Action), e.Detail)
		if err != nil {
			return fmt.Errorf("alarm: history of %s: %w", id, err)
		}
	}
	return nil
}

// History returns an alarm's history, oldest first.
func History(ctx context.Context, q Querier, id string) ([]posfleet.AlarmEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT at_ms, actor, action, detail FROM alarm_history WHERE alarm_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("alarm: history of %s: %w", id, err)
	}
	defer rows.Close()
	out := []posfleet.AlarmEntry{}
	for rows.Next() {
		var e posfleet.AlarmEntry
		var at int64
		var action string
		if err := rows.Scan(&at, &e.Actor, &action, &e.Detail); err != nil {
			return nil, err
		}
		e.At, e.Action = store.Time(at), posfleet.AlarmAction(action)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Options are the rules' settings.
type Options struct {
	// Debounce is how long an alarm's evidence must stay away before the
	// alarm is resolved; evidence back within it reopens the same alarm
	// and notifies nobody again.
	Debounce time.Duration
	// FoldFlags are the flags an open incident explains: a terminal alarm
	// of one of them, on a terminal the incident hit, is folded into the
	// incident's alarm.
	FoldFlags []posfleet.FlagName
	// FoldGrace delays the notification of a FoldFlags alarm, so that an
	// incident found meanwhile (incidents are published every few
	// seconds) folds it before anyone is told.
	FoldGrace time.Duration
	// BurstFlags, BurstMin and BurstWindow: when BurstMin terminals of a
	// tenant raise one of BurstFlags within BurstWindow (a regional
	// network outage, a power cut, a fleet losing its broker), one alarm
	// of kind posfleet.AlarmKindBurst stands for them all, and they and
	// those that follow while it lasts are folded into it. It resolves
	// once none of them is active.
	BurstFlags  []posfleet.FlagName
	BurstMin    int
	BurstWindow time.Duration
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		// 10 minutes: longer than the offline flag's own delay and a
		// flapping link's period in the field (DOMAIN.md), short enough
		// that a resolved alarm means the terminal is fine now.
		Debounce: 10 * time.Minute,
		// A host outage shows as failed transactions and failed receipts
		// at the terminals it hit; it does not take them offline.
		FoldFlags: []posfleet.FlagName{posfleet.FlagTxnFailures, posfleet.FlagReceiptFailures},
		// A minute: several incident publishes (every 5 s) and the
		// incident's own detection window; failed transactions are not
		// urgent, a minute later is still early warning.
		FoldGrace: time.Minute,
		// Offline is the flag that comes in storms: a shop street's
		// network, a city's mobile operator, the broker's own outage. 20
		// terminals within 10 minutes (the offline delay is 3 minutes;
		// their heartbeats are spread over one) is no coincidence in a
		// tenant; fewer stay alarms of their own.
		BurstFlags:  []posfleet.FlagName{posfleet.FlagOffline},
		BurstMin:    20,
		BurstWindow: 10 * time.Minute,
	}
}
