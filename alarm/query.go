package alarm

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Store is the people's side of alarms (lists, the alarm page, the
// actions) and the notification channels and routes, for the web side.
// Any web replica may use it: every action is one transaction that locks
// the alarm it changes.
type Store struct {
	DB *store.DB
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// List limits: a page of 100 is what the alarm list shows; 1,000 bounds
// what one request may make the database read and the server encode.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ListAlarms returns a page of the alarms f selects, urgent first, then
// the active ones, then the newest opened, and how many match in all.
// Incident alarms carry Folded: how many terminal alarms were folded into
// them, resolved ones included (an incident that hit 200 terminals still
// says 200 once they recover).
func (s *Store) ListAlarms(ctx context.Context, f posfleet.AlarmFilter) ([]posfleet.Alarm, int, error) {
	where, args, err := alarmWhere(f)
	if err != nil {
		return nil, 0, err
	}
	var total int
	if err := s.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM alarms`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("alarm: count alarms: %w", err)
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	offset := max(f.Offset, 0)
	n := len(args)
	q := `SELECT ` + alarmCols + ` FROM alarms` + where +
		` ORDER BY urgent DESC, active DESC, opened_ms DESC, id LIMIT $` + strconv.Itoa(n+1) + ` OFFSET $` + strconv.Itoa(n+2)
	rows, err := s.DB.QueryContext(ctx, q, append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("alarm: list alarms: %w", err)
	}
	defer rows.Close()
	out := []posfleet.Alarm{}
	for rows.Next() {
		a, err := scanAlarm(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("alarm: list alarms: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("alarm: list alarms: %w", err)
	}
	rows.Close()
	if err := fillFolded(ctx, s.DB, s.DB.Dialect, out); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// alarmWhere builds the WHERE clause of f, with $1... parameters. A state
// or kind nobody has is refused rather than matching nothing: an API
// filter with a typo must not look like "no alarms".
func alarmWhere(f posfleet.AlarmFilter) (string, []any, error) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Tenant != "" {
		conds = append(conds, "tenant = "+arg(f.Tenant))
	}
	if len(f.States) == 0 {
		conds = append(conds, "state <> "+arg(string(posfleet.AlarmResolved)))
	} else {
		var ps []string
		seen := map[posfleet.AlarmState]bool{}
		for _, st := range f.States {
			if !slices.Contains(posfleet.AlarmStates, st) {
				return "", nil, posfleet.Errorf(posfleet.Invalid, "bad_state", "alarm state %q: want one of %v", st, posfleet.AlarmStates)
			}
			if !seen[st] {
				seen[st] = true
				ps = append(ps, arg(string(st)))
			}
		}
		conds = append(conds, "state IN ("+strings.Join(ps, ", ")+")")
	}
	if f.Kind != "" {
		if err := validKind(f.Kind); err != nil {
			return "", nil, err
		}
		conds = append(conds, "kind = "+arg(f.Kind))
	}
	if f.Urgent != nil {
		conds = append(conds, "urgent = "+arg(*f.Urgent))
	}
	if r := strings.TrimSpace(f.Region); r != "" {
		// LOWER on both sides: PostgreSQL's folds every letter, SQLite's
		// ASCII only, which covers the region names without case
		// (成都) and the ASCII ones alike.
		conds = append(conds, "LOWER(region) = LOWER("+arg(r)+")")
	}
	if f.Assignee != "" {
		conds = append(conds, "assignee = "+arg(f.Assignee))
	}
	if f.Terminal != "" {
		conds = append(conds, "terminal = "+arg(f.Terminal))
	}
	switch {
	case f.Parent != "":
		conds = append(conds, "parent = "+arg(f.Parent))
	case !f.AllLevels:
		conds = append(conds, "parent = ''")
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// validKind accepts a flag's name, "incident" or "mass_offline".
func validKind(k string) error {
	if !posfleet.ValidAlarmKind(k) {
		return posfleet.Errorf(posfleet.Invalid, "bad_kind", "alarm kind %q: want a flag name, %q or %q", k, posfleet.AlarmKindIncident, posfleet.AlarmKindBurst)
	}
	return nil
}

// fillFolded sets Folded on the incident alarms of as: how many alarms
// name it as their parent, in any state.
func fillFolded(ctx context.Context, q Querier, d store.Dialect, as []posfleet.Alarm) error {
	var ids []any
	at := map[string][]int{}
	for i, a := range as {
		if !posfleet.AlarmGroup(a.Kind) {
			continue
		}
		if _, ok := at[a.ID]; !ok {
			ids = append(ids, a.ID)
		}
		at[a.ID] = append(at[a.ID], i)
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := q.QueryContext(ctx, `SELECT parent, COUNT(*) FROM alarms WHERE parent IN (`+d.Params(len(ids))+`) GROUP BY parent`, ids...)
	if err != nil {
		return fmt.Errorf("alarm: folded alarms: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var parent string
		var n int
		if err := rows.Scan(&parent, &n); err != nil {
			return fmt.Errorf("alarm: folded alarms: %w", err)
		}
		for _, i := range at[parent] {
			as[i].Folded = n
		}
	}
	return rows.Err()
}

// Alarm returns an alarm and its history, oldest first; a
// posfleet.NotFound error when there is no such alarm.
func (s *Store) Alarm(ctx context.Context, id string) (posfleet.Alarm, []posfleet.AlarmEntry, error) {
	a, err := get(ctx, s.DB, id)
	if err != nil {
		return a, nil, err
	}
	h, err := History(ctx, s.DB, id)
	if err != nil {
		return a, nil, err
	}
	one := []posfleet.Alarm{a}
	if err := fillFolded(ctx, s.DB, s.DB.Dialect, one); err != nil {
		return a, nil, err
	}
	return one[0], h, nil
}

// CountAlarms returns how many alarms of a tenant ("" every tenant) are
// in each live state (open, acknowledged, assigned), top-level ones only:
// the numbers the alarm list shows by default, for the navigation badge.
// Every live state is in the map, zero included.
func (s *Store) CountAlarms(ctx context.Context, tenant string) (map[posfleet.AlarmState]int, error) {
	q := `SELECT state, COUNT(*) FROM alarms WHERE state <> $1 AND parent = ''`
	args := []any{string(posfleet.AlarmResolved)}
	if tenant != "" {
		q += ` AND tenant = $2`
		args = append(args, tenant)
	}
	rows, err := s.DB.QueryContext(ctx, q+` GROUP BY state`, args...)
	if err != nil {
		return nil, fmt.Errorf("alarm: count alarms: %w", err)
	}
	defer rows.Close()
	out := map[posfleet.AlarmState]int{posfleet.AlarmOpen: 0, posfleet.AlarmAcknowledged: 0, posfleet.AlarmAssigned: 0}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("alarm: count alarms: %w", err)
		}
		out[posfleet.AlarmState(st)] = n
	}
	return out, rows.Err()
}
