package alarm

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Limits of what people write on an alarm.
const (
	MaxAssigneeLen = 64   // a user's or crew's name
	MaxCommentLen  = 2000 // a comment or a resolve note, in characters
	// MaxSnooze: a snooze longer than a month is a resolve in disguise.
	MaxSnooze = 30 * 24 * time.Hour
	// MaxBulk bounds one bulk action: each alarm is its own transaction.
	MaxBulk = 500
)

// The bulk actions.
const (
	BulkAcknowledge = "acknowledge"
	BulkAssign      = "assign"
)

// change is one action on a locked alarm: it changes *a and returns the
// history entries to write, none when the action changes nothing (the
// alarm is then left as it was, updated_ms included).
type change func(tx *sql.Tx, a *posfleet.Alarm, now time.Time) ([]posfleet.AlarmEntry, error)

// act runs fn on alarm id in one transaction, the alarm's row locked on
// PostgreSQL (SQLite's transactions are exclusive already), and returns
// the alarm as it is afterwards.
func (s *Store) act(ctx context.Context, id string, fn change) (posfleet.Alarm, error) {
	var out posfleet.Alarm
	err := s.DB.Tx(ctx, func(tx *sql.Tx) error {
		a, err := s.lock(ctx, tx, id)
		if err != nil {
			return err
		}
		now := s.now()
		entries, err := fn(tx, &a, now)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			a.Updated = now
			if err := update(ctx, tx, a); err != nil {
				return err
			}
			if err := addHistory(ctx, tx, a.ID, entries...); err != nil {
				return err
			}
		}
		one := []posfleet.Alarm{a}
		if err := fillFolded(ctx, tx, s.DB.Dialect, one); err != nil {
			return err
		}
		out = one[0]
		return nil
	})
	return out, err
}

// lock reads alarm id for update.
func (s *Store) lock(ctx context.Context, tx *sql.Tx, id string) (posfleet.Alarm, error) {
	q := `SELECT ` + alarmCols + ` FROM alarms WHERE id = $1`
	if s.DB.Dialect == store.Postgres {
		q += ` FOR UPDATE`
	}
	a, err := scanAlarm(tx.QueryRowContext(ctx, q, id))
	if err == sql.ErrNoRows {
		return a, posfleet.Errorf(posfleet.NotFound, "alarm_not_found", "no alarm %q", id)
	}
	if err != nil {
		return a, fmt.Errorf("alarm: %s: %w", id, err)
	}
	return a, nil
}

func resolvedConflict(a *posfleet.Alarm, what string) error {
	return posfleet.Errorf(posfleet.Conflict, "alarm_resolved", "alarm %s is resolved: it cannot be %s", a.ID, what)
}

// acknowledge makes an open alarm acknowledged by by. An alarm someone
// already owns is left as it is, so that two people clicking at once both
// succeed and the history says once who took it.
func acknowledge(a *posfleet.Alarm, by string, now time.Time) []posfleet.AlarmEntry {
	if a.State != posfleet.AlarmOpen {
		return nil
	}
	a.State, a.AckBy, a.AckAt = posfleet.AlarmAcknowledged, by, now
	return []posfleet.AlarmEntry{{At: now, Actor: by, Action: posfleet.AlarmActAcknowledged}}
}

// AcknowledgeAlarm acknowledges an open alarm; one already acknowledged or
// assigned is returned unchanged; a resolved one is a posfleet.Conflict.
func (s *Store) AcknowledgeAlarm(ctx context.Context, id, by string) (posfleet.Alarm, error) {
	return s.act(ctx, id, func(_ *sql.Tx, a *posfleet.Alarm, now time.Time) ([]posfleet.AlarmEntry, error) {
		if a.State == posfleet.AlarmResolved {
			return nil, resolvedConflict(a, "acknowledged")
		}
		return acknowledge(a, by, now), nil
	})
}

// validAssignee trims to and checks it is a name: printable, at most
// MaxAssigneeLen characters. "" is valid (unassign).
func validAssignee(to string) (string, error) {
	to = strings.TrimSpace(to)
	if utf8.RuneCountInString(to) > MaxAssigneeLen || !utf8.ValidString(to) || strings.IndexFunc(to, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "", posfleet.Errorf(posfleet.Invalid, "bad_assignee", "assignee %q: want 1-%d printable characters", to, MaxAssigneeLen)
	}
	return to, nil
}

// AssignAlarm assigns an alarm to a user or crew (to), acknowledging it
// by by if it was open; to "" unassigns it, back to acknowledged. Assigning
// to the current assignee changes nothing. A resolved alarm is a
// posfleet.Conflict. The history says "assigned" with the assignee, ""
// when unassigned.
func (s *Store) AssignAlarm(ctx context.Context, id, to, by string) (posfleet.Alarm, error) {
	to, err := validAssignee(to)
	if err != nil {
		return posfleet.Alarm{}, err
	}
	return s.act(ctx, id, func(_ *sql.Tx, a *posfleet.Alarm, now time.Time) ([]posfleet.AlarmEntry, error) {
		return assign(a, to, by, now)
	})
}

func assign(a *posfleet.Alarm, to, by string, now time.Time) ([]posfleet.AlarmEntry, error) {
	if a.State == posfleet.AlarmResolved {
		return nil, resolvedConflict(a, "assigned")
	}
	if to == "" {
		if a.State != posfleet.AlarmAssigned && a.Assignee == "" {
			return nil, nil
		}
		a.Assignee = ""
		if a.State == posfleet.AlarmAssigned {
			a.State = posfleet.AlarmAcknowledged
		}
		return []posfleet.AlarmEntry{{At: now, Actor: by, Action: posfleet.AlarmActAssigned}}, nil
	}
	if a.State == posfleet.AlarmAssigned && a.Assignee == to {
		return nil, nil
	}
	entries := acknowledge(a, by, now)
	a.State, a.Assignee = posfleet.AlarmAssigned, to
	return append(entries, posfleet.AlarmEntry{At: now, Actor: by, Action: posfleet.AlarmActAssigned, Detail: to}), nil
}

// validText trims a comment or note and checks its length; empty is
// allowed only when !required.
func validText(text string, required bool, what string) (string, error) {
	text = strings.TrimSpace(text)
	n := utf8.RuneCountInString(text)
	if (required && n == 0) || n > MaxCommentLen || !utf8.ValidString(text) {
		least := 0
		if required {
			least = 1
		}
		return "", posfleet.Errorf(posfleet.Invalid, "bad_"+what, "%s: want %d-%d characters", what, least, MaxCommentLen)
	}
	return text, nil
}

// CommentAlarm adds a comment to an alarm's history, resolved alarms
// included (what was found on site is often written afterwards).
func (s *Store) CommentAlarm(ctx context.Context, id, by, text string) (posfleet.Alarm, error) {
	text, err := validText(text, true, "comment")
	if err != nil {
		return posfleet.Alarm{}, err
	}
	return s.act(ctx, id, func(_ *sql.Tx, a *posfleet.Alarm, now time.Time) ([]posfleet.AlarmEntry, error) {
		return []posfleet.AlarmEntry{{At: now, Actor: by, Action: posfleet.AlarmActCommented, Detail: text}}, nil
	})
}

// SnoozeAlarm snoozes an alarm until a time at most MaxSnooze ahead; the
// zero time ends a snooze (nothing changes if it was not snoozed). A
// resolved alarm is a posfleet.Conflict. The history says "snoozed" with
// the time in RFC 3339, "" when a snooze ends.
func (s *Store) SnoozeAlarm(ctx context.Context, id string, until time.Time, by string) (posfleet.Alarm, error) {
	return s.act(ctx, id, func(_ *sql.Tx, a *posfleet.Alarm, now time.Time) ([]posfleet.AlarmEntry, error) {
		if a.State == posfleet.AlarmResolved {
			return nil, resolvedConflict(a, "snoozed")
		}
		if until.IsZero() {
			if a.SnoozedUntil.IsZero() {
				return nil, nil
			}
			a.SnoozedUntil = time.Time{}
			return []posfleet.AlarmEntry{{At: now, Actor: by, Action: posfleet.AlarmActSnoozed}}, nil
		}
		// The schema keeps milliseconds: what is stored is what is compared.
		until = store.Time(store.Millis(until))
		if !until.After(now) || until.Sub(now) > MaxSnooze {
			return nil, posfleet.Errorf(posfleet.Invalid, "bad_snooze", "snooze until %s: want a time in the next %d days", until.Format(time.RFC3339), int(MaxSnooze/(24*time.Hour)))
		}
		a.SnoozedUntil = until
		return []posfleet.AlarmEntry{{At: now, Actor: by, Action: posfleet.AlarmActSnoozed, Detail: until.Format(time.RFC3339)}}, nil
	})
}

// ResolveAlarm resolves an alarm by hand, with an optional note, and
// writes the notifications of its resolution in the same transaction. An
// incident's alarm takes its folded alarms with it (they notify nobody on
// their own). An alarm already resolved is a posfleet.Conflict: two people
// resolving at once learn that the other did.
func (s *Store) ResolveAlarm(ctx context.Context, id, by, note string) (posfleet.Alarm, error) {
	note, err := validText(note, false, "note")
	if err != nil {
		return posfleet.Alarm{}, err
	}
	return s.act(ctx, id, func(tx *sql.Tx, a *posfleet.Alarm, now time.Time) ([]posfleet.AlarmEntry, error) {
		if a.State == posfleet.AlarmResolved {
			return nil, posfleet.Errorf(posfleet.Conflict, "alarm_resolved", "alarm %s is resolved already", a.ID)
		}
		// Written here rather than by act: the notifications are
		// enqueued after the alarm and its history, as the rules do.
		a.State, a.Resolved, a.ResolvedBy, a.Updated = posfleet.AlarmResolved, now, by, now
		if err := update(ctx, tx, *a); err != nil {
			return nil, err
		}
		e := posfleet.AlarmEntry{At: now, Actor: by, Action: posfleet.AlarmActResolved, Detail: note}
		if err := addHistory(ctx, tx, a.ID, e); err != nil {
			return nil, err
		}
		if posfleet.AlarmGroup(a.Kind) {
			if err := s.resolveFolded(ctx, tx, a.ID, by, now); err != nil {
				return nil, err
			}
		}
		return nil, enqueue(ctx, tx, *a, posfleet.NotifyResolved, now)
	})
}

// resolveFolded resolves the live alarms folded into incident alarm id.
func (s *Store) resolveFolded(ctx context.Context, tx *sql.Tx, id, by string, now time.Time) error {
	q := `SELECT ` + alarmCols + ` FROM alarms WHERE parent = $1 AND state <> $2 ORDER BY id`
	if s.DB.Dialect == store.Postgres {
		q += ` FOR UPDATE`
	}
	rows, err := tx.QueryContext(ctx, q, id, string(posfleet.AlarmResolved))
	if err != nil {
		return fmt.Errorf("alarm: folded alarms of %s: %w", id, err)
	}
	var children []posfleet.Alarm
	for rows.Next() {
		c, err := scanAlarm(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("alarm: folded alarms of %s: %w", id, err)
		}
		children = append(children, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("alarm: folded alarms of %s: %w", id, err)
	}
	for _, c := range children {
		c.State, c.Resolved, c.ResolvedBy, c.Updated = posfleet.AlarmResolved, now, by, now
		if err := update(ctx, tx, c); err != nil {
			return err
		}
		e := posfleet.AlarmEntry{At: now, Actor: by, Action: posfleet.AlarmActResolved, Detail: "with incident alarm " + id}
		if err := addHistory(ctx, tx, c.ID, e); err != nil {
			return err
		}
	}
	return nil
}

// BulkAlarms acknowledges, or assigns to assignee, each alarm of ids
// (at most MaxBulk), each in its own transaction: one alarm that fails
// (unknown, resolved) does not hold back the others. done counts the
// alarms acted on (those already in the asked state included); failed
// holds the others' errors by ID. err is for a request that is wrong as a
// whole (unknown action, too many IDs, a bad assignee). It does not scope
// by tenant: the caller passes only IDs the user may act on.
func (s *Store) BulkAlarms(ctx context.Context, ids []string, action, assignee, by string) (done int, failed map[string]error, err error) {
	if len(ids) > MaxBulk {
		return 0, nil, posfleet.Errorf(posfleet.Invalid, "too_many_alarms", "%d alarms: at most %d at once", len(ids), MaxBulk)
	}
	var one func(id string) error
	switch action {
	case BulkAcknowledge:
		one = func(id string) error { _, err := s.AcknowledgeAlarm(ctx, id, by); return err }
	case BulkAssign:
		to, err := validAssignee(assignee)
		if err != nil {
			return 0, nil, err
		}
		if to == "" {
			return 0, nil, posfleet.Errorf(posfleet.Invalid, "bad_assignee", "bulk assign: want an assignee")
		}
		one = func(id string) error { _, err := s.AssignAlarm(ctx, id, to, by); return err }
	default:
		return 0, nil, posfleet.Errorf(posfleet.Invalid, "bad_action", "bulk action %q: want %q or %q", action, BulkAcknowledge, BulkAssign)
	}
	failed = map[string]error{}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := ctx.Err(); err != nil {
			return done, failed, err
		}
		if err := one(id); err != nil {
			failed[id] = err
			continue
		}
		done++
	}
	return done, failed, nil
}
