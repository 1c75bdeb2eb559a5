// Package healthview is the health engine's view in the control-plane
// database (store/migrations/00005_health.sql): what the holder of the
// health lease publishes (Publish) and what every web replica reads.
// The engine's per-message windows stay in its memory; this is what users
// see, so that a web replica without an engine shows the same fleet.
package healthview

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/alarm"
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
	// DiffEvents makes Publish add to Events a raising for every flag of
	// Terminals not in terminal_flags yet and a clearing for every one
	// there no longer raised (actor ""): for a resync, when the
	// transitions since the last writer's last publish are unknown.
	DiffEvents bool
	Events     []FlagEvent
	Incidents  []health.Incident
	// Summaries and Suspect are per tenant ("" for every tenant).
	Summaries map[string]health.FleetSummary
	Suspect   map[string][]health.FirmwareFinding
	// Alarms, when set, makes Publish change the alarms as the events,
	// the terminals' flags and the incidents say, in the same transaction
	// (alarm.Apply); Settle also resolves the alarms whose evidence stayed
	// away for the debounce.
	Alarms *alarm.Options
	Settle bool
}

// NewEventID returns a new flag event ID: 128 random bits in hex.
func NewEventID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// rowsPerStatement is how many rows one INSERT writes, per dialect. On
// PostgreSQL one round trip for 200 rows (15 parameters each, far below
// its limit) makes a full resync 4 times faster than a statement per row;
// SQLite, in process, has no round trip, so there one prepared statement
// per transaction runs once per row (BenchmarkResync; measured when the
// statements still used $N, which SQLite numbers in quadratic time: see
// store.Dialect.Values).
var rowsPerStatement = map[store.Dialect]int{store.Postgres: 200, store.SQLite: 1}

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
		b.Terminals = lastOfEach(b.Terminals)
		events := b.Events
		if b.DiffEvents {
			diff, err := diffEvents(ctx, tx, b.Terminals, now)
			if err != nil {
				return fmt.Errorf("healthview: flags before: %w", err)
			}
			events = append(diff, events...)
		}
		in := inserter{tx: tx, d: db.Dialect, rows: rowsPerStatement[db.Dialect]}
		if err := putTerminals(ctx, in, b.Terminals, nowMs); err != nil {
			return fmt.Errorf("healthview: terminals: %w", err)
		}
		if err := putEvents(ctx, in, events); err != nil {
			return fmt.Errorf("healthview: flag events: %w", err)
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
		if b.Alarms != nil {
			if err := alarm.Apply(ctx, tx, db.Dialect, *b.Alarms, alarmInput(b, events), now); err != nil {
				return fmt.Errorf("healthview: %w", err)
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

// alarmInput is what b and its events change for the alarms.
func alarmInput(b Batch, events []FlagEvent) alarm.Input {
	in := alarm.Input{Incidents: b.Incidents, Settle: b.Settle}
	for _, ev := range events {
		in.Transitions = append(in.Transitions, alarm.Transition{Ref: ev.Ref, Flag: ev.Flag, Raised: ev.Raised, At: ev.At, Actor: ev.Actor, Evidence: ev.Evidence})
	}
	for _, t := range b.Terminals {
		in.Terminals = append(in.Terminals, alarm.TerminalFlags{Ref: posfleet.TerminalRef{Tenant: t.Health.Tenant, Terminal: t.Health.Terminal},
			Merchant: t.Merchant, Region: t.Region, Flags: t.Health.Flags})
	}
	return in
}

// lastOfEach keeps the last row of each terminal: one statement must not
// upsert a row twice (PostgreSQL refuses).
func lastOfEach(rows []TerminalRow) []TerminalRow {
	at := make(map[posfleet.TerminalRef]int, len(rows))
	for i, t := range rows {
		at[posfleet.TerminalRef{Tenant: t.Health.Tenant, Terminal: t.Health.Terminal}] = i
	}
	if len(at) == len(rows) {
		return rows
	}
	out := make([]TerminalRow, 0, len(at))
	for i, t := range rows {
		if at[posfleet.TerminalRef{Tenant: t.Health.Tenant, Terminal: t.Health.Terminal}] == i {
			out = append(out, t)
		}
	}
	return out
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

// inserter writes rows: rowsPerStatement of its dialect at a time.
type inserter struct {
	tx   *sql.Tx
	d    store.Dialect
	rows int
}

// insert runs head followed by "($1, ...), (...)" for every row of args
// (each cols values) and tail.
func (in inserter) insert(ctx context.Context, head, tail string, cols int, args []any) error {
	if in.rows <= 1 && len(args) > cols {
		stmt, err := in.tx.PrepareContext(ctx, head+in.d.Values(1, cols)+tail)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for ; len(args) > 0; args = args[cols:] {
			if _, err := stmt.ExecContext(ctx, args[:cols]...); err != nil {
				return err
			}
		}
		return nil
	}
	for len(args) > 0 {
		n := min(len(args)/cols, max(in.rows, 1))
		if _, err := in.tx.ExecContext(ctx, head+in.d.Values(n, cols)+tail, args[:n*cols]...); err != nil {
			return err
		}
		args = args[n*cols:]
	}
	return nil
}

// inList is how many terminals one "terminal IN (...)" names.
const inList = 100

// byTenant runs f for the terminals of rows grouped by tenant, at most
// inList at a time, as "$2, $3, ..." after the tenant's $1.
func byTenant(rows []TerminalRow, f func(tenant, in string, args []any) error) error {
	groups := map[string][]string{}
	var tenants []string
	for _, t := range rows {
		if _, ok := groups[t.Health.Tenant]; !ok {
			tenants = append(tenants, t.Health.Tenant)
		}
		groups[t.Health.Tenant] = append(groups[t.Health.Tenant], t.Health.Terminal)
	}
	for _, tenant := range tenants {
		ids := groups[tenant]
		for len(ids) > 0 {
			n := min(len(ids), inList)
			var in strings.Builder
			args := []any{tenant}
			for i, id := range ids[:n] {
				if i > 0 {
					in.WriteString(", ")
				}
				in.WriteString("$" + strconv.Itoa(i+2))
				args = append(args, id)
			}
			if err := f(tenant, in.String(), args); err != nil {
				return err
			}
			ids = ids[n:]
		}
	}
	return nil
}

func putTerminals(ctx context.Context, in inserter, rows []TerminalRow, nowMs int64) error {
	tx := in.tx
	if len(rows) == 0 {
		return nil
	}
	var states, flags []any
	for _, t := range rows {
		h := t.Health
		body, err := json.Marshal(h)
		if err != nil {
			return err
		}
		names := make([]string, len(h.Flags))
		for i, f := range h.Flags {
			names[i] = string(f.Name)
		}
		work, prio, site, urgent := "", 0, "", false
		if t.Work != nil {
			b, err := json.Marshal(t.Work)
			if err != nil {
				return err
			}
			work, prio, site, urgent = string(b), t.Work.Priority, t.Work.Site.Site, t.Work.Urgent
		}
		states = append(states, h.Tenant, h.Terminal, h.Online, t.NeverConnected, store.Millis(h.LastSeen), h.Model, h.Firmware, h.Serial,
			t.Merchant, t.Region, strings.Join(names, ","), prio, work, string(body), nowMs, site, urgent)
		for _, f := range h.Flags {
			ev, err := json.Marshal(f.Evidence)
			if err != nil {
				return err
			}
			flags = append(flags, h.Tenant, h.Terminal, string(f.Name), store.Millis(f.Since), f.Urgent, string(ev))
		}
	}
	if err := in.insert(ctx, `INSERT INTO terminal_state (tenant, terminal, online, never_connected, last_seen_ms,
			model, firmware, serial, merchant, region, flags, work_priority, work, health, updated_ms, work_site, work_urgent) VALUES `,
		` ON CONFLICT (tenant, terminal) DO UPDATE SET online = excluded.online, never_connected = excluded.never_connected,
			last_seen_ms = excluded.last_seen_ms, model = excluded.model, firmware = excluded.firmware, serial = excluded.serial,
			merchant = excluded.merchant, region = excluded.region, flags = excluded.flags, work_priority = excluded.work_priority,
			work = excluded.work, health = excluded.health, updated_ms = excluded.updated_ms,
			work_site = excluded.work_site, work_urgent = excluded.work_urgent`, 17, states); err != nil {
		return err
	}
	if err := byTenant(rows, func(_, in string, args []any) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM terminal_flags WHERE tenant = $1 AND terminal IN (`+in+`)`, args...)
		return err
	}); err != nil {
		return err
	}
	return in.insert(ctx, `INSERT INTO terminal_flags (tenant, terminal, flag, since_ms, urgent, evidence) VALUES `, ``, 6, flags)
}

func putEvents(ctx context.Context, in inserter, events []FlagEvent) error {
	var args []any
	for _, ev := range events {
		evidence := []byte("null")
		if ev.Evidence != nil {
			var err error
			if evidence, err = json.Marshal(ev.Evidence); err != nil {
				return err
			}
		}
		id := ev.ID
		if id == "" {
			id = NewEventID()
		}
		args = append(args, id, ev.Ref.Tenant, ev.Ref.Terminal, string(ev.Flag), ev.Raised, store.Millis(ev.At), ev.Actor, string(evidence))
	}
	return in.insert(ctx, `INSERT INTO flag_events (id, tenant, terminal, flag, raised, at_ms, actor, evidence) VALUES `,
		` ON CONFLICT (id) DO NOTHING`, 8, args)
}

// diffEvents returns the transitions between the flags stored for rows'
// terminals and their new ones.
func diffEvents(ctx context.Context, tx *sql.Tx, rows []TerminalRow, now time.Time) ([]FlagEvent, error) {
	type key struct {
		ref  posfleet.TerminalRef
		flag posfleet.FlagName
	}
	stored := map[key]bool{}
	err := byTenant(rows, func(tenant, in string, args []any) error {
		r, err := tx.QueryContext(ctx, `SELECT terminal, flag FROM terminal_flags WHERE tenant = $1 AND terminal IN (`+in+`)`, args...)
		if err != nil {
			return err
		}
		defer r.Close()
		for r.Next() {
			var terminal, flag string
			if err := r.Scan(&terminal, &flag); err != nil {
				return err
			}
			stored[key{posfleet.TerminalRef{Tenant: tenant, Terminal: terminal}, posfleet.FlagName(flag)}] = true
		}
		return r.Err()
	})
	if err != nil {
		return nil, err
	}
	var out []FlagEvent
	for _, t := range rows {
		ref := posfleet.TerminalRef{Tenant: t.Health.Tenant, Terminal: t.Health.Terminal}
		for _, f := range t.Health.Flags {
			k := key{ref, f.Name}
			if stored[k] {
				delete(stored, k)
				continue
			}
			out = append(out, FlagEvent{Ref: ref, Flag: f.Name, Raised: true, At: f.Since, Evidence: f.Evidence})
		}
	}
	for _, t := range rows {
		ref := posfleet.TerminalRef{Tenant: t.Health.Tenant, Terminal: t.Health.Terminal}
		for _, name := range posfleet.FlagNames {
			if stored[key{ref, name}] {
				out = append(out, FlagEvent{Ref: ref, Flag: name, At: now})
			}
		}
	}
	return out, nil
}
