package alarm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// enqueue writes, in q's transaction, the notifications that event of
// alarm a causes: one per channel that an enabled route of a's tenant
// sends it to, due at once, after the route's quiet hours, or held for
// the route's daily digest.
//
// Urgent alarms (tamper, a blocked firmware, incidents) go through quiet
// hours and are never held for a digest. A digest route holds the raising
// of non-urgent alarms and sends nothing when they resolve: the digest is
// the day's list, not a conversation.
func enqueue(ctx context.Context, q Querier, a posfleet.Alarm, event posfleet.NotificationEvent, now time.Time) error {
	routes, err := routesFor(ctx, q, a.Tenant)
	if err != nil {
		return err
	}
	return enqueueRoutes(ctx, q, routes, a, event, now, 0)
}

// enqueueRoutes is enqueue with the tenant's routes already read; a
// pending notification is due delay after now at the earliest.
func enqueueRoutes(ctx context.Context, q Querier, all []posfleet.NotifyRoute, a posfleet.Alarm, event posfleet.NotificationEvent, now time.Time, delay time.Duration) error {
	var routes []posfleet.NotifyRoute
	for _, r := range all {
		if routeMatches(r, a) {
			routes = append(routes, r)
		}
	}
	if len(routes) == 0 {
		return nil
	}
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("alarm: notification of %s: %w", a.ID, err)
	}
	sent := map[string]bool{}
	for _, r := range routes {
		if sent[r.Channel] || (event == posfleet.NotifyResolved && !r.Resolved) {
			continue
		}
		state, due := posfleet.NotificationPending, now.Add(delay)
		loc := routeLocation(r.TimeZone)
		switch {
		case a.Urgent:
		case r.Digest && event == posfleet.NotifyResolved:
			continue
		case r.Digest:
			state, due = posfleet.NotificationHeld, nextClock(now, r.DigestAt, loc)
		default:
			due = afterQuiet(due, r.QuietStart, r.QuietEnd, loc)
		}
		sent[r.Channel] = true
		if _, err := q.ExecContext(ctx, `INSERT INTO notifications (id, tenant, channel_id, alarm_id, event, body, state, created_ms, due_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			NewID(), a.Tenant, r.Channel, a.ID, string(event), string(body), string(state), store.Millis(now), store.Millis(due)); err != nil {
			return fmt.Errorf("alarm: notification of %s: %w", a.ID, err)
		}
	}
	return nil
}

// routeMatches reports whether route r sends alarm a. An incident's alarm
// has no region: it matches every region filter (an outage is the whole
// tenant's).
func routeMatches(r posfleet.NotifyRoute, a posfleet.Alarm) bool {
	if len(r.Kinds) > 0 && !slices.Contains(r.Kinds, a.Kind) {
		return false
	}
	if r.UrgentOnly && !a.Urgent {
		return false
	}
	if len(r.Regions) > 0 && a.Kind != posfleet.AlarmKindIncident &&
		!slices.ContainsFunc(r.Regions, func(s string) bool { return strings.EqualFold(s, a.Region) }) {
		return false
	}
	return true
}

// routeLocation is the route's time zone; UTC when unset or unknown (routes
// are validated when saved, so unknown means a zone database without it).
func routeLocation(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

// parseClock reads "HH:MM" as minutes after midnight.
func parseClock(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// nextClock returns the next time at or after now that the clock in loc
// shows hhmm ("09:00"); now itself when hhmm is not a time.
func nextClock(now time.Time, hhmm string, loc *time.Location) time.Time {
	m, ok := parseClock(hhmm)
	if !ok {
		return now
	}
	l := now.In(loc)
	t := time.Date(l.Year(), l.Month(), l.Day(), m/60, m%60, 0, 0, loc)
	if t.Before(l) {
		t = time.Date(l.Year(), l.Month(), l.Day()+1, m/60, m%60, 0, 0, loc)
	}
	return t
}

// afterQuiet returns now, or the end of the quiet hours [start, end) in
// loc when now falls in them. The hours may wrap midnight (22:00–07:00).
func afterQuiet(now time.Time, start, end string, loc *time.Location) time.Time {
	s, ok1 := parseClock(start)
	e, ok2 := parseClock(end)
	if !ok1 || !ok2 || s == e {
		return now
	}
	l := now.In(loc)
	m := l.Hour()*60 + l.Minute()
	quiet := (s < e && m >= s && m < e) || (s > e && (m >= s || m < e))
	if !quiet {
		return now
	}
	return nextClock(now, end, loc)
}
