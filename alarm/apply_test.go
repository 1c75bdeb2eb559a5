package alarm

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

var (
	t1 = posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0001"}
	t2 = posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0002"}
)

// rulesDB is a database with one webhook channel and a route of every
// alarm of tenant acme to it (resolved ones too).
func rulesDB(t *testing.T, db *store.DB, route string) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, tenant, name, type, url, enabled, rate_per_hour, created_ms, created_by, updated_ms)
		VALUES ('ch1', 'acme', 'ops', 'webhook', 'http://127.0.0.1:9/hook', $1, 60, 1, 'test', 1)`, true); err != nil {
		t.Fatal(err)
	}
	if route == "" {
		route = `INSERT INTO notification_routes (id, tenant, name, channel_id, urgent_only, digest, resolved, enabled, created_ms, created_by, updated_ms)
		VALUES ('r1', 'acme', 'all', 'ch1', $1, $1, $2, $2, 1, 'test', 1)`
	}
	if _, err := db.ExecContext(ctx, route, false, true); err != nil {
		t.Fatal(err)
	}
}

func apply(t *testing.T, db *store.DB, in Input, now time.Time) {
	t.Helper()
	opts := DefaultOptions()
	if err := db.Tx(context.Background(), func(tx *sql.Tx) error { return Apply(context.Background(), tx, db.Dialect, opts, in, now) }); err != nil {
		t.Fatal(err)
	}
}

type outRow struct {
	alarm, event, state string
	due                 int64
}

func outbox(t *testing.T, db *store.DB) []outRow {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT alarm_id, event, state, due_ms FROM notifications ORDER BY created_ms, event`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outRow
	for rows.Next() {
		var r outRow
		if err := rows.Scan(&r.alarm, &r.event, &r.state, &r.due); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func alarmsOf(t *testing.T, db *store.DB, kind string) []posfleet.Alarm {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT `+alarmCols+` FROM alarms WHERE kind = $1 ORDER BY opened_ms, id`, kind)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []posfleet.Alarm
	for rows.Next() {
		a, err := scanAlarm(rows)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func flagsOf(names ...posfleet.FlagName) []posfleet.Flag {
	var out []posfleet.Flag
	for _, n := range names {
		out = append(out, posfleet.Flag{Name: n, Kind: n.Kind(), Urgent: n.Urgent(), Since: time.Unix(1000, 0)})
	}
	return out
}

// TestAlarmLifecycleByTheRules: one alarm per occurrence; a flag back
// within the debounce reopens it without notifying again; the debounce
// resolves it; a visit resolves at once.
func TestAlarmLifecycleByTheRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		rulesDB(t, db, "")
		now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
		raise := Transition{Ref: t1, Flag: posfleet.FlagTamper, Raised: true, At: now}
		clear := Transition{Ref: t1, Flag: posfleet.FlagTamper, At: now}
		apply(t, db, Input{Transitions: []Transition{raise}, Terminals: []TerminalFlags{{Ref: t1, Region: "Chengdu", Flags: flagsOf(posfleet.FlagTamper)}}}, now)
		// Twenty flaps within the debounce: still one alarm, one notification.
		for i := range 20 {
			now = now.Add(time.Minute)
			clear.At, raise.At = now, now.Add(30*time.Second)
			apply(t, db, Input{Transitions: []Transition{clear}}, now)
			apply(t, db, Input{Transitions: []Transition{raise}, Terminals: []TerminalFlags{{Ref: t1, Region: "Chengdu", Flags: flagsOf(posfleet.FlagTamper)}}}, now.Add(30*time.Second))
			_ = i
		}
		as := alarmsOf(t, db, "tamper")
		if len(as) != 1 || as[0].Occurrences != 21 || as[0].State != posfleet.AlarmOpen || !as[0].Active || !as[0].Urgent || as[0].Region != "Chengdu" {
			t.Fatalf("after flapping: %+v, want one open active urgent alarm with 21 occurrences", as)
		}
		if ob := outbox(t, db); len(ob) != 1 || ob[0].event != "raised" || ob[0].state != "pending" {
			t.Fatalf("outbox after flapping %+v, want one raised notification", ob)
		}
		// Cleared for good: settled after the debounce, one resolved notification.
		now = now.Add(time.Minute)
		clear.At = now
		apply(t, db, Input{Transitions: []Transition{clear}, Settle: true}, now)
		apply(t, db, Input{Settle: true}, now.Add(9*time.Minute))
		if as := alarmsOf(t, db, "tamper"); as[0].State != posfleet.AlarmOpen || as[0].Active {
			t.Fatalf("within the debounce: %+v, want open and inactive", as[0])
		}
		apply(t, db, Input{Settle: true}, now.Add(11*time.Minute))
		as = alarmsOf(t, db, "tamper")
		if as[0].State != posfleet.AlarmResolved || as[0].ResolvedBy != "" {
			t.Fatalf("after the debounce: %+v, want resolved by the rules", as[0])
		}
		if ob := outbox(t, db); len(ob) != 2 || ob[1].event != "resolved" {
			t.Fatalf("outbox %+v, want raised then resolved", ob)
		}
		// A new occurrence is a new alarm; a visit resolves it at once.
		now = now.Add(time.Hour)
		apply(t, db, Input{Transitions: []Transition{{Ref: t1, Flag: posfleet.FlagTamper, Raised: true, At: now}}}, now)
		apply(t, db, Input{Transitions: []Transition{{Ref: t1, Flag: posfleet.FlagTamper, At: now, Actor: "crew-li"}}}, now)
		as = alarmsOf(t, db, "tamper")
		if len(as) != 2 || as[1].State != posfleet.AlarmResolved || as[1].ResolvedBy != "crew-li" {
			t.Fatalf("visit: %+v, want a second alarm resolved by crew-li", as)
		}
		hist, err := History(context.Background(), db, as[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		var reopened int
		for _, e := range hist {
			if e.Action == posfleet.AlarmActReopened {
				reopened++
			}
		}
		if reopened != 20 || hist[len(hist)-1].Action != posfleet.AlarmActResolved {
			t.Fatalf("history %+v: want 20 reopenings and resolved last", hist)
		}
	})
}

// TestIncidentFoldsTerminalAlarms: a host outage across many terminals
// notifies once, for the incident; the terminal alarms it explains are
// folded into it; those still active when it closes stand on their own.
func TestIncidentFoldsTerminalAlarms(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		rulesDB(t, db, "")
		now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
		var hit []posfleet.TerminalRef
		for i := range 200 {
			hit = append(hit, posfleet.TerminalRef{Tenant: "acme", Terminal: "T-" + string(rune('A'+i/26)) + string(rune('a'+i%26))})
		}
		inc := health.Incident{ID: "inc-1", Tenant: "acme", Start: now, Open: true, Merchants: []string{"M-1"}, Terminals: hit[:1], TerminalCount: 1}
		// A terminal alarm raised before the incident is folded when it opens.
		apply(t, db, Input{Transitions: []Transition{{Ref: hit[0], Flag: posfleet.FlagTxnFailures, Raised: true, At: now}}}, now)
		inc.Terminals, inc.TerminalCount = hit, len(hit)
		apply(t, db, Input{Incidents: []health.Incident{inc}}, now)
		var trans []Transition
		for _, r := range hit[1:] {
			trans = append(trans, Transition{Ref: r, Flag: posfleet.FlagTxnFailures, Raised: true, At: now})
		}
		apply(t, db, Input{Transitions: trans}, now.Add(time.Second))
		incs := alarmsOf(t, db, "incident")
		if len(incs) != 1 || !incs[0].Urgent {
			t.Fatalf("incident alarms %+v, want one urgent", incs)
		}
		kids := alarmsOf(t, db, "txn_failures")
		for _, k := range kids {
			if k.Parent != incs[0].ID {
				t.Fatalf("alarm %s of %s not folded: parent %q", k.ID, k.Terminal, k.Parent)
			}
		}
		// The first terminal's alarm, raised before the incident existed,
		// waited its FoldGrace: folded, its notification is the incident's.
		var first posfleet.Alarm
		for _, k := range kids {
			if k.Terminal == hit[0].Terminal {
				first = k
			}
		}
		ob := outbox(t, db)
		states := map[string]string{}
		for _, r := range ob {
			states[r.alarm] = r.state
		}
		if len(ob) != 2 || states[incs[0].ID] != "pending" || states[first.ID] != "bundled" {
			t.Fatalf("outbox %+v, want the incident's pending and the first terminal's bundled into it", ob)
		}
		for _, r := range ob {
			if r.alarm == first.ID && r.due != now.Add(DefaultOptions().FoldGrace).UnixMilli() {
				t.Fatalf("the first terminal's notification due %d, want FoldGrace after its raising", r.due)
			}
		}
		// All but one terminal recover; the incident closes.
		trans = nil
		for _, r := range hit[1:] {
			trans = append(trans, Transition{Ref: r, Flag: posfleet.FlagTxnFailures, At: now.Add(time.Minute)})
		}
		inc.Open, inc.End = false, now.Add(time.Minute)
		apply(t, db, Input{Transitions: trans}, now.Add(time.Minute))
		apply(t, db, Input{Incidents: []health.Incident{inc}}, now.Add(2*time.Minute))
		if a := alarmsOf(t, db, "incident")[0]; a.State != posfleet.AlarmResolved {
			t.Fatalf("incident alarm %+v, want resolved", a)
		}
		var open, resolved int
		for _, k := range alarmsOf(t, db, "txn_failures") {
			switch {
			case k.State == posfleet.AlarmResolved && k.Parent != "":
				resolved++
			case k.State == posfleet.AlarmOpen && k.Parent == "" && k.Terminal == hit[0].Terminal:
				open++
			}
		}
		if open != 1 || resolved != 199 {
			t.Fatalf("after the incident: %d standing alone, %d resolved with it; want 1 and 199", open, resolved)
		}
		ob = outbox(t, db)
		if len(ob) != 4 { // + the incident resolved, + the first terminal standing alone again
			t.Fatalf("outbox %+v, want 4 notifications", ob)
		}
	})
}

// TestQuietHoursAndDigest: a non-urgent alarm in quiet hours waits for
// their end; an urgent one goes at once; a digest route holds non-urgent
// ones for the digest time.
func TestQuietHoursAndDigest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		rulesDB(t, db, `INSERT INTO notification_routes (id, tenant, name, channel_id, urgent_only, quiet_start, quiet_end, time_zone, digest, resolved, enabled, created_ms, created_by, updated_ms)
		VALUES ('r1', 'acme', 'night', 'ch1', $1, '22:00', '07:00', 'Asia/Shanghai', $1, $2, $2, 1, 'test', 1)`)
		if _, err := db.ExecContext(context.Background(), `INSERT INTO channels (id, tenant, name, type, url, enabled, rate_per_hour, created_ms, created_by, updated_ms)
			VALUES ('ch2', 'acme', 'digest', 'webhook', 'http://127.0.0.1:9/d', $1, 60, 1, 'test', 1)`, true); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(context.Background(), `INSERT INTO notification_routes (id, tenant, name, channel_id, urgent_only, time_zone, digest, digest_at, resolved, enabled, created_ms, created_by, updated_ms)
			VALUES ('r2', 'acme', 'daily', 'ch2', $1, 'Asia/Shanghai', $2, '09:00', $2, $2, 2, 'test', 1)`, false, true); err != nil {
			t.Fatal(err)
		}
		sh, _ := time.LoadLocation("Asia/Shanghai")
		now := time.Date(2026, 12, 2, 23, 30, 0, 0, sh) // in the quiet hours
		apply(t, db, Input{Transitions: []Transition{
			{Ref: t1, Flag: posfleet.FlagFirmwareOutdated, Raised: true, At: now},
			{Ref: t2, Flag: posfleet.FlagTamper, Raised: true, At: now},
		}}, now)
		wantQuietEnd := time.Date(2026, 12, 3, 7, 0, 0, 0, sh).UnixMilli()
		wantDigest := time.Date(2026, 12, 3, 9, 0, 0, 0, sh).UnixMilli()
		rows := outbox(t, db)
		if len(rows) != 4 {
			t.Fatalf("outbox %+v, want 4 rows (2 alarms × 2 channels)", rows)
		}
		var quiet, urgentNow, held int
		for _, r := range rows {
			switch {
			case r.state == "pending" && r.due == wantQuietEnd:
				quiet++
			case r.state == "pending" && r.due == now.UnixMilli():
				urgentNow++
			case r.state == "held" && r.due == wantDigest:
				held++
			}
		}
		if quiet != 1 || urgentNow != 2 || held != 1 {
			t.Fatalf("outbox %+v: want 1 waiting for 07:00, 2 urgent now, 1 held for the 09:00 digest", rows)
		}
	})
}

// TestAlarmsFollowPublishedFlags: flags published without transitions
// (a resync, an upgrade) get their alarms; alarms of flags no longer
// raised clear.
func TestAlarmsFollowPublishedFlags(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		rulesDB(t, db, "")
		now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
		apply(t, db, Input{Terminals: []TerminalFlags{{Ref: t1, Merchant: "M-1", Flags: flagsOf(posfleet.FlagBattery, posfleet.FlagOffline)}}}, now)
		apply(t, db, Input{Terminals: []TerminalFlags{{Ref: t1, Merchant: "M-1", Flags: flagsOf(posfleet.FlagBattery, posfleet.FlagOffline)}}}, now)
		if b, o := alarmsOf(t, db, "battery"), alarmsOf(t, db, "offline"); len(b) != 1 || len(o) != 1 || b[0].Merchant != "M-1" {
			t.Fatalf("alarms %+v %+v, want one of each", b, o)
		}
		apply(t, db, Input{Terminals: []TerminalFlags{{Ref: t1, Flags: flagsOf(posfleet.FlagBattery)}}}, now.Add(time.Minute))
		if o := alarmsOf(t, db, "offline"); o[0].Active || o[0].Cleared.IsZero() {
			t.Fatalf("offline alarm %+v, want cleared", o[0])
		}
	})
}

// TestBurstFoldsOffline: 25 terminals of a tenant going offline together
// are one alarm and one notification; those that follow fold into it;
// it resolves, with them, once they are all back. A few offline
// terminals stay alarms of their own.
func TestBurstFoldsOffline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		rulesDB(t, db, "")
		now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
		offline := func(from, to int, raised bool, at time.Time) Input {
			var in Input
			for i := from; i < to; i++ {
				ref := posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%04d", i)}
				in.Transitions = append(in.Transitions, Transition{Ref: ref, Flag: posfleet.FlagOffline, Raised: raised, At: at})
			}
			return in
		}
		// A few: alarms of their own, notified after FoldGrace.
		apply(t, db, offline(0, 5, true, now), now)
		if b := alarmsOf(t, db, posfleet.AlarmKindBurst); len(b) != 0 {
			t.Fatalf("burst alarm for 5 terminals: %+v", b)
		}
		// Twenty more within the window: one burst, every raising folded.
		apply(t, db, offline(5, 25, true, now.Add(time.Minute)), now.Add(time.Minute))
		apply(t, db, offline(25, 30, true, now.Add(2*time.Minute)), now.Add(2*time.Minute))
		b := alarmsOf(t, db, posfleet.AlarmKindBurst)
		if len(b) != 1 || !b[0].Urgent || b[0].State != posfleet.AlarmOpen {
			t.Fatalf("burst alarms %+v, want one open, urgent", b)
		}
		for _, al := range alarmsOf(t, db, "offline") {
			if al.Parent != b[0].ID {
				t.Fatalf("offline alarm of %s not folded into the burst: parent %q", al.Terminal, al.Parent)
			}
		}
		var pending, bundled int
		for _, r := range outbox(t, db) {
			switch {
			case r.state == "pending" && r.alarm == b[0].ID:
				pending++
			case r.state == "bundled":
				bundled++
			default:
				t.Fatalf("outbox row %+v: want only the burst's notification pending", r)
			}
		}
		if pending != 1 || bundled != 25 {
			t.Fatalf("outbox: %d of the burst pending, %d bundled; want 1 and 25 (the last 5 folded as raised)", pending, bundled)
		}
		// All back: the burst resolves with its alarms.
		apply(t, db, offline(0, 30, false, now.Add(3*time.Minute)), now.Add(3*time.Minute))
		apply(t, db, Input{Settle: true}, now.Add(4*time.Minute))
		if b := alarmsOf(t, db, posfleet.AlarmKindBurst); b[0].State != posfleet.AlarmResolved {
			t.Fatalf("burst %+v, want resolved", b[0])
		}
		for _, al := range alarmsOf(t, db, "offline") {
			if al.State != posfleet.AlarmResolved {
				t.Fatalf("offline alarm of %s is %s, want resolved with the burst", al.Terminal, al.State)
			}
		}
	})
}

// TestPrune: resolved alarms and finished notifications older than the
// cut go; live alarms and notifications still to deliver stay, whatever
// their age.
func TestPrune(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		rulesDB(t, db, "")
		old := time.Date(2025, 1, 1, 3, 0, 0, 0, time.UTC)
		// Resolved long ago (by a visit), and one still open from then.
		apply(t, db, Input{Transitions: []Transition{{Ref: t1, Flag: posfleet.FlagTamper, Raised: true, At: old}}}, old)
		apply(t, db, Input{Transitions: []Transition{{Ref: t1, Flag: posfleet.FlagTamper, At: old, Actor: "crew-li"}}}, old)
		apply(t, db, Input{Transitions: []Transition{{Ref: t2, Flag: posfleet.FlagTamper, Raised: true, At: old}}}, old)
		if _, err := db.ExecContext(context.Background(), `UPDATE notifications SET state = 'sent' WHERE alarm_id IN (SELECT id FROM alarms WHERE terminal = $1)`, t1.Terminal); err != nil {
			t.Fatal(err)
		}
		a, n, err := Prune(context.Background(), db, old.Add(24*time.Hour), 1)
		if err != nil {
			t.Fatal(err)
		}
		if a != 1 || n != 2 {
			t.Fatalf("pruned %d alarms and %d notifications, want 1 and 2 (T-0001's raised and resolved)", a, n)
		}
		left := alarmsOf(t, db, "tamper")
		if len(left) != 1 || left[0].Terminal != t2.Terminal {
			t.Fatalf("alarms left %+v, want T-0002's live one", left)
		}
		if ob := outbox(t, db); len(ob) != 1 || ob[0].state != "pending" {
			t.Fatalf("outbox left %+v, want T-0002's pending notification", ob)
		}
		if h, _ := History(context.Background(), db, "gone"); len(h) != 0 {
			t.Fatal("history of a pruned alarm")
		}
	})
}
