package alarm

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// RecentNotifications returns the newest n notifications of tenant ("":
// every tenant), of one state when state is set, newest first: what the
// outbox holds and what happened to each.
func RecentNotifications(ctx context.Context, q Querier, tenant, state string, n int) ([]posfleet.Notification, error) {
	if n <= 0 || n > 1000 {
		n = 100
	}
	where, args := `WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR state = $2)`, []any{tenant, state}
	rows, err := q.QueryContext(ctx, `SELECT id, tenant, channel_id, event, state, body, created_ms, due_ms, attempts, last_error, sent_ms
		FROM notifications `+where+` ORDER BY created_ms DESC, id LIMIT $3`, append(args, n)...)
	if err != nil {
		return nil, fmt.Errorf("alarm: notifications: %w", err)
	}
	defer rows.Close()
	out := []posfleet.Notification{}
	for rows.Next() {
		var nt posfleet.Notification
		var event, st, body string
		var created, due, sent int64
		if err := rows.Scan(&nt.ID, &nt.Tenant, &nt.Channel, &event, &st, &body, &created, &due, &nt.Attempts, &nt.LastError, &sent); err != nil {
			return nil, err
		}
		nt.Event, nt.State = posfleet.NotificationEvent(event), posfleet.NotificationState(st)
		nt.Created, nt.Due, nt.Sent = store.Time(created), store.Time(due), store.Time(sent)
		if nt.Event == posfleet.NotifyRaised || nt.Event == posfleet.NotifyResolved {
			json.Unmarshal([]byte(body), &nt.Alarm)
		}
		out = append(out, nt)
	}
	return out, rows.Err()
}
