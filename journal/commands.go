package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/store"
)

// Commands keeps commands and their acks in the database: the Store of a
// commands.Tracker.
type Commands struct{ DB *store.DB }

var _ commands.Store = Commands{}

// AddCommand inserts a command sent to ref; the same ID twice is kept
// once (a queued command gets its sender here).
func (c Commands) AddCommand(ctx context.Context, ref posfleet.TerminalRef, r commands.Record) error {
	body, err := json.Marshal(r.Command)
	if err != nil {
		return fmt.Errorf("journal: command: %w", err)
	}
	_, err = c.DB.ExecContext(ctx, `INSERT INTO commands (id, tenant, terminal, body, sent_ms, sent_by) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET sent_by = excluded.sent_by`, r.Command.ID, ref.Tenant, ref.Terminal, string(body), store.Millis(r.SentAt), r.SentBy)
	if err != nil {
		return fmt.Errorf("journal: command %s: %w", r.Command.ID, err)
	}
	return nil
}

// RemoveCommand deletes a command of ref that could not be sent, with its
// acks, in one transaction.
func (c Commands) RemoveCommand(ctx context.Context, ref posfleet.TerminalRef, id string) error {
	err := c.DB.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM commands WHERE id = $1 AND tenant = $2 AND terminal = $3`, id, ref.Tenant, ref.Terminal)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM command_acks WHERE command_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("journal: remove command %s: %w", id, err)
	}
	return nil
}

// AddAcks appends acks in order, in one transaction. An ack already kept
// (same command, status and time: a second process observing the same
// message) is skipped; the command's status becomes its latest ack's, by
// the terminal's time (commands.Supersedes). Acks of a command unknown for
// their terminal are returned, not kept.
func (c Commands) AddAcks(ctx context.Context, acks []commands.TerminalAck) (unknown []commands.TerminalAck, err error) {
	err = c.DB.Tx(ctx, func(tx *sql.Tx) error {
		unknown = unknown[:0]
		for _, a := range acks {
			var (
				status string
				ackMs  int64
			)
			err := tx.QueryRowContext(ctx, `SELECT status, ack_ms FROM commands WHERE id = $1 AND tenant = $2 AND terminal = $3`,
				a.CmdID, a.Terminal.Tenant, a.Terminal.Terminal).Scan(&status, &ackMs)
			if err == sql.ErrNoRows {
				unknown = append(unknown, a)
				continue
			}
			if err != nil {
				return err
			}
			at := store.Millis(a.Ack.At)
			if _, err := tx.ExecContext(ctx, `INSERT INTO command_acks (command_id, seq, status, detail, at_ms)
SELECT $1, m.next, $2, $3, $4 FROM (SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM command_acks WHERE command_id = $1) m
WHERE NOT EXISTS (SELECT 1 FROM command_acks WHERE command_id = $1 AND status = $2 AND at_ms = $4)
ON CONFLICT (command_id, seq) DO NOTHING`, a.CmdID, a.Ack.Status, a.Ack.Detail, at); err != nil {
				return err
			}
			if !commands.Supersedes(a.Ack.Status, a.Ack.At, status, store.Time(ackMs)) {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE commands SET status = $2, detail = $3, ack_ms = $4 WHERE id = $1`,
				a.CmdID, a.Ack.Status, a.Ack.Detail, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("journal: acks: %w", err)
	}
	return unknown, nil
}

// Commands returns ref's newest n commands, newest first, with their acks
// in arrival order.
func (c Commands) Commands(ctx context.Context, ref posfleet.TerminalRef, n int) ([]commands.Record, error) {
	rows, err := c.DB.QueryContext(ctx, `SELECT id, body, sent_ms, sent_by, status, detail, ack_ms FROM commands
WHERE tenant = $1 AND terminal = $2 ORDER BY sent_ms DESC, id DESC LIMIT $3`, ref.Tenant, ref.Terminal, n)
	if err != nil {
		return nil, fmt.Errorf("journal: commands of %s: %w", ref, err)
	}
	out := []commands.Record{}
	index := map[string]int{}
	var ids []any
	for rows.Next() {
		var (
			id, body string
			r        commands.Record
			sent, ak int64
		)
		if err := rows.Scan(&id, &body, &sent, &r.SentBy, &r.Status, &r.Detail, &ak); err != nil {
			rows.Close()
			return nil, fmt.Errorf("journal: commands of %s: %w", ref, err)
		}
		if err := json.Unmarshal([]byte(body), &r.Command); err != nil {
			rows.Close()
			return nil, fmt.Errorf("journal: command %s: %w", id, err)
		}
		r.SentAt, r.AckAt, r.Acks = store.Time(sent), store.Time(ak), []commands.Ack{}
		index[id] = len(out)
		ids = append(ids, id)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: commands of %s: %w", ref, err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	q := `SELECT command_id, status, detail, at_ms FROM command_acks WHERE command_id IN (` + c.DB.Dialect.Params(len(ids)) + `) ORDER BY command_id, seq`
	arows, err := c.DB.QueryContext(ctx, q, ids...)
	if err != nil {
		return nil, fmt.Errorf("journal: acks of %s: %w", ref, err)
	}
	defer arows.Close()
	for arows.Next() {
		var (
			id string
			a  commands.Ack
			at int64
		)
		if err := arows.Scan(&id, &a.Status, &a.Detail, &at); err != nil {
			return nil, fmt.Errorf("journal: acks of %s: %w", ref, err)
		}
		a.At = store.Time(at)
		r := &out[index[id]]
		r.Acks = append(r.Acks, a)
	}
	return out, arows.Err()
}

// QueueCommand records a command that this process cannot send itself (a
// web replica without a broker): queued, for the holder of the health
// lease to publish (PendingCommands, MarkCommandPublished). The web's
// command log records it first, with who sent it (AddCommand on the same
// ID); either order keeps one row.
func QueueCommand(ctx context.Context, db *store.DB, ref posfleet.TerminalRef, cmd posfleet.Command, at time.Time) error {
	body, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("journal: command: %w", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO commands (id, tenant, terminal, body, sent_ms, sent_by, queued) VALUES ($1, $2, $3, $4, $5, '', TRUE)
ON CONFLICT (id) DO UPDATE SET queued = TRUE`,
		cmd.ID, ref.Tenant, ref.Terminal, string(body), store.Millis(at)); err != nil {
		return fmt.Errorf("journal: queue command %s: %w", cmd.ID, err)
	}
	return nil
}

// QueuedCommand is a command waiting to be published.
type QueuedCommand struct {
	Terminal posfleet.TerminalRef
	Command  posfleet.Command
	SentAt   time.Time
}

// PendingCommands returns at most n queued commands not yet published,
// oldest first.
func PendingCommands(ctx context.Context, db *store.DB, n int) ([]QueuedCommand, error) {
	rows, err := db.QueryContext(ctx, `SELECT tenant, terminal, body, sent_ms FROM commands WHERE queued AND published_ms = 0 ORDER BY sent_ms, id LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("journal: pending commands: %w", err)
	}
	defer rows.Close()
	var out []QueuedCommand
	for rows.Next() {
		var q QueuedCommand
		var body string
		var sent int64
		if err := rows.Scan(&q.Terminal.Tenant, &q.Terminal.Terminal, &body, &sent); err != nil {
			return nil, fmt.Errorf("journal: pending commands: %w", err)
		}
		if err := json.Unmarshal([]byte(body), &q.Command); err != nil {
			return nil, fmt.Errorf("journal: pending command of %s: %w", q.Terminal, err)
		}
		q.SentAt = store.Time(sent)
		out = append(out, q)
	}
	return out, rows.Err()
}

// MarkCommandPublished records that a queued command went out at at; it
// reports false when it had been marked already.
func MarkCommandPublished(ctx context.Context, db *store.DB, id string, at time.Time) (bool, error) {
	res, err := db.ExecContext(ctx, `UPDATE commands SET published_ms = $2 WHERE id = $1 AND queued AND published_ms = 0`, id, store.Millis(at))
	if err != nil {
		return false, fmt.Errorf("journal: command %s published: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
