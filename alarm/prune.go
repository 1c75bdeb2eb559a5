package alarm

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Prune deletes what is older than before and finished: alarms resolved
// before it (with their history), and notifications created before it
// that are done with (sent, failed, or bundled into a digest, a summary
// or an incident). Live alarms and notifications still to deliver are never
// deleted, whatever their age. It works in batches of at most batch
// alarms so that no transaction grows large, and returns how many alarms
// and notifications it deleted.
func Prune(ctx context.Context, db *store.DB, before time.Time, batch int) (alarms, notifications int64, err error) {
	if batch < 1 {
		batch = 1000
	}
	cut := store.Millis(before)
	for {
		var n int64
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT id FROM alarms WHERE state = $1 AND resolved_ms > 0 AND resolved_ms < $2 ORDER BY resolved_ms LIMIT $3`,
				string(posfleet.AlarmResolved), cut, batch)
			if err != nil {
				return err
			}
			ids, err := store.Strings(rows)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if _, err := tx.ExecContext(ctx, `DELETE FROM alarm_history WHERE alarm_id = $1`, id); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `DELETE FROM alarms WHERE id = $1`, id); err != nil {
					return err
				}
			}
			n = int64(len(ids))
			return nil
		})
		if err != nil {
			return alarms, notifications, fmt.Errorf("alarm: prune alarms: %w", err)
		}
		alarms += n
		if n < int64(batch) {
			break
		}
	}
	res, err := db.ExecContext(ctx, `DELETE FROM notifications WHERE created_ms < $1 AND state IN ($2, $3, $4)`, cut,
		string(posfleet.NotificationSent), string(posfleet.NotificationFailed), string(posfleet.NotificationBundled))
	if err != nil {
		return alarms, notifications, fmt.Errorf("alarm: prune notifications: %w", err)
	}
	notifications, _ = res.RowsAffected()
	return alarms, notifications, nil
}
