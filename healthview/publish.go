// Package healthview is the health engine's view in the control-plane
// database (store/migrations/00005_health.sql): what the holder of the
// health lease publishes (Publish) and what every web replica reads.
// The engine's per-message windows stay in its memory; this is what users
// see, so that a web replica without an engine shows the same fleet.
package healthview

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/store"
)

// TerminalRow is one terminal's published state.
type TerminalRow struct {
	Health         health.TerminalHealth
	Merchant       string
	Region         string
	NeverConnected bool
	// Work is its work-list item, nil when it is not on the work list.
	Work *health.WorkItem
}

// FlagEvent is one transition of a flag.
type FlagEvent struct {
	ID     string // unique; made by the publisher
	Ref    posfleet.TerminalRef
	Flag   posfleet.FlagName
	Raised bool
	At     time.Time
	// Actor is "" for the engine's rules, else the user whose visit cleared it.
	Actor    string
	Evidence posfleet.Evidence // nil for a clearing
}

// Batch is what one Publish writes, in one transaction.
type Batch struct {
	// Terminals are upserted, and their terminal_flags replaced by
	// Health.Flags.
	Terminals []TerminalRow
	Events    []FlagEvent
	Incidents []health.Incident
	// Summaries and Suspect are per tenant ("" for every tenant).
	Summaries map[string]health.FleetSummary
	Suspect   map[string][]health.FirmwareFinding
}

// Publish writes b in one transaction under lease (nil: no lease, one
// box); store.ErrFenced when the lease passed to another holder.
func Publish(ctx context.Context, db *store.DB, lease *store.Lease, b Batch, now time.Time) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if lease != nil {
			if err := lease.Check(ctx, tx, db.Dialect); err != nil {
				return err
			}
		}
		nowMs := store.Millis(now)
		for _, t := range b.Terminals {
			if err := putTerminal(ctx, tx, t, nowMs); err != nil {
				return fmt.Errorf("healthview: terminal %s: %w", t.Health.Ref, err)
			}
		}
		for _, ev := range b.Events {
			evidence := []byte("null")
			if ev.Evidence != nil {
				var err error
				if evidence, err = json.Marshal(ev.Evidence); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO flag_events (id, tenant, terminal, flag, raised, at_ms, actor, evidence)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
				ev.ID, ev.Ref.Tenant, ev.Ref.Terminal, string(ev.Flag), ev.Raised, store.Millis(ev.At), ev.Actor, string(evidence)); err != nil {
				return fmt.Errorf("healthview: flag event: %w", err)
			}
		}
		for _, inc := range b.Incidents {
			body, err := json.Marshal(inc)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO incidents (id, tenant, open, start_ms, end_ms, body) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (id) DO UPDATE SET open = excluded.open, start_ms = excluded.start_ms, end_ms = excluded.end_ms, body = excluded.body`,
				inc.ID, inc.Tenant, inc.Open, store.Millis(inc.Start), store.Millis(inc.End), string(body)); err != nil {
				return fmt.Errorf("healthview: incident: %w", err)
			}
		}
		for tenant, s := range b.Summaries {
			if err := putView(ctx, tx, tenant, "summary", s, nowMs); err != nil {
				return err
			}
		}
		for tenant, s := range b.Suspect {
			if err := putView(ctx, tx, tenant, "suspect_firmware", s, nowMs); err != nil {
				return err
			}
		}
		return nil
	})
}

func putView(ctx context.Context, tx *sql.Tx, tenant, view string, v any, nowMs int64) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO fleet_views (tenant, view, body, updated_ms) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant, view) DO UPDATE SET body = excluded.body, updated_ms = excluded.updated_ms`,
		tenant, view, string(body), nowMs)
	if err != nil {
		return fmt.Errorf("healthview: %s of %q: %w", view, tenant, err)
	}
	return nil
}

func putTerminal(ctx context.Context, tx *sql.Tx, t TerminalRow, nowMs int64) error {
	h := t.Health
	body, err := json.Marshal(h)
	if err != nil {
		return err
	}
	names := make([]string, len(h.Flags))
	for i, f := range h.Flags {
		names[i] = string(f.Name)
	}
	work, prio := "", 0
	if t.Work != nil {
		b, err := json.Marshal(t.Work)
		if err != nil {
			return err
		}
		work, prio = string(b), t.Work.Priority
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO terminal_state (tenant, terminal, online, never_connected, last_seen_ms,
			model, firmware, serial, merchant, region, flags, work_priority, work, health, updated_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (tenant, terminal) DO UPDATE SET online = excluded.online, never_connected = excluded.never_connected,
			last_seen_ms = excluded.last_seen_ms, model = excluded.model, firmware = excluded.firmware, serial = excluded.serial,
			merchant = excluded.merchant, region = excluded.region, flags = excluded.flags, work_priority = excluded.work_priority,
			work = excluded.work, health = excluded.health, updated_ms = excluded.updated_ms`,
		h.Tenant, h.Terminal, h.Online, t.NeverConnected, store.Millis(h.LastSeen), h.Model, h.Firmware, h.Serial,
		t.Merchant, t.Region, strings.Join(names, ","), prio, work, string(body), nowMs); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM terminal_flags WHERE tenant = $1 AND terminal = $2`, h.Tenant, h.Terminal); err != nil {
		return err
	}
	for _, f := range h.Flags {
		ev, err := json.Marshal(f.Evidence)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO terminal_flags (tenant, terminal, flag, since_ms, urgent, evidence) VALUES ($1, $2, $3, $4, $5, $6)`,
			h.Tenant, h.Terminal, string(f.Name), store.Millis(f.Since), f.Urgent, string(ev)); err != nil {
			return err
		}
	}
	return nil
}
