package journal_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/pgtest"
	"github.com/posfleet/posfleet/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	a  = posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	b  = posfleet.TerminalRef{Tenant: "acme", Terminal: "T-2"}
	z  = posfleet.TerminalRef{Tenant: "zeta", Terminal: "T-1"}
)

func ack(ref posfleet.TerminalRef, id, status string, at time.Time) commands.TerminalAck {
	return commands.TerminalAck{Terminal: ref, CmdID: id, Ack: commands.Ack{Status: status, Detail: status + " detail", At: at}}
}

// TestCommands: commands and acks are kept per terminal; an ack of
// another terminal or an unknown command is returned unknown; the same ack
// twice (two processes observing it) is kept once; List is newest first
// and bounded.
func TestCommands(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := journal.Commands{DB: db}
		up := posfleet.Command{ID: "c2", Type: posfleet.CmdUpdateFirmware, Target: "2.5.1", URL: "https://fw.example.com/x.bin", SHA256: "ab"}
		for _, x := range []struct {
			ref posfleet.TerminalRef
			cmd posfleet.Command
			at  time.Time
		}{{a, posfleet.Command{ID: "c1", Type: posfleet.CmdReboot}, t0}, {a, up, t0.Add(time.Minute)}} {
			if err := c.AddCommand(ctx, x.ref, commands.Record{Command: x.cmd, SentAt: x.at, SentBy: "ops"}); err != nil {
				t.Fatal(err)
			}
		}
		unknown, err := c.AddAcks(ctx, []commands.TerminalAck{
			ack(a, "c2", posfleet.AckAccepted, t0.Add(2*time.Minute)),
			ack(a, "c2", posfleet.AckDone, t0.Add(3*time.Minute)),
			ack(a, "c2", posfleet.AckAccepted, t0.Add(2*time.Minute)), // the same again
			ack(b, "c1", posfleet.AckDone, t0),                        // another terminal's
			ack(a, "nope", posfleet.AckDone, t0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(unknown) != 2 || unknown[0].Terminal != b || unknown[1].CmdID != "nope" {
			t.Errorf("unknown = %+v", unknown)
		}
		got, err := c.Commands(ctx, a, commands.PerTerminal)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Command != up || got[0].Status != posfleet.AckDone || got[0].Detail != "done detail" ||
			!got[0].AckAt.Equal(t0.Add(3*time.Minute)) || !got[0].SentAt.Equal(t0.Add(time.Minute)) || got[0].SentBy != "ops" {
			t.Fatalf("Commands = %+v", got)
		}
		if acks := got[0].Acks; len(acks) != 2 || acks[0].Status != posfleet.AckAccepted || acks[1].Status != posfleet.AckDone {
			t.Errorf("acks = %+v", acks)
		}
		if got[1].Status != "" || got[1].Acks == nil || len(got[1].Acks) != 0 {
			t.Errorf("command without acks = %+v", got[1])
		}
		// An older ack arriving late keeps the latest status.
		if _, err := c.AddAcks(ctx, []commands.TerminalAck{ack(a, "c2", "failed", t0.Add(90*time.Second))}); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Commands(ctx, a, 1); got[0].Status != posfleet.AckDone || len(got[0].Acks) != 3 {
			t.Errorf("after a late ack: %+v", got[0])
		}
		for i := range commands.PerTerminal + 5 {
			c.AddCommand(ctx, b, commands.Record{Command: posfleet.Command{ID: fmt.Sprintf("b%02d", i), Type: posfleet.CmdReboot}, SentAt: t0.Add(time.Duration(i) * time.Second)})
		}
		if l, _ := c.Commands(ctx, b, commands.PerTerminal); len(l) != commands.PerTerminal || l[0].Command.ID != fmt.Sprintf("b%02d", commands.PerTerminal+4) {
			t.Errorf("bounded list: %d", len(l))
		}
		if l, _ := c.Commands(ctx, z, 10); len(l) != 0 {
			t.Errorf("another tenant's terminal has %d commands", len(l))
		}
	})
}

// TestTrackerWriteThrough: a stored Tracker keeps a command across a
// "restart" (a new Tracker on the same database), writes acks off the
// message path, and keeps an ack that arrived before its command was
// recorded.
func TestTrackerWriteThrough(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		tr := commands.NewStored(journal.Commands{DB: db}, nil)
		msg := func(id, status string, at time.Time) *posfleet.Message {
			return &posfleet.Message{Terminal: a, Channel: posfleet.ChannelAck, Ack: &posfleet.Ack{Header: posfleet.Header{Seq: 1, TS: at}, CmdID: id, Status: status}}
		}
		tr.Observe(msg("early", posfleet.AckAccepted, t0.Add(time.Second))) // before Sent
		tr.Observe(&posfleet.Message{Terminal: a, Channel: posfleet.ChannelHeartbeat})
		tr.Sent(a, posfleet.Command{ID: "early", Type: posfleet.CmdReboot}, "ops", t0)
		tr.Sent(a, posfleet.Command{ID: "c1", Type: posfleet.CmdReboot}, "ops", t0.Add(time.Minute))
		tr.Observe(msg("c1", posfleet.AckDone, t0.Add(2*time.Minute)))
		deadline := time.Now().Add(10 * time.Second)
		for {
			l := tr.List(a)
			if len(l) == 2 && l[0].Status == posfleet.AckDone && l[1].Status == posfleet.AckAccepted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("acks not kept: %+v", l)
			}
			time.Sleep(20 * time.Millisecond)
		}
		tr.Close()
		again := commands.NewStored(journal.Commands{DB: db}, nil)
		defer again.Close()
		if l := again.List(a); len(l) != 2 || l[0].Command.ID != "c1" || len(l[0].Acks) != 1 {
			t.Errorf("after a restart: %+v", l)
		}
	})
}

// TestTrackerAcceptedBeforeItsCommand: a terminal answers a command
// within the second it gets it, "accepted" then "done", with the same
// time to the second; "accepted" comes before the command is recorded (it
// is published first), so the Tracker keeps it again a second later, after
// "done". The command stays done: "accepted" of the same time does not
// replace a final status (it used to, and the command showed accepted for
// good).
func TestTrackerAcceptedBeforeItsCommand(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		tr := commands.NewStored(journal.Commands{DB: db}, nil)
		defer tr.Close()
		msg := func(status string) *posfleet.Message {
			return &posfleet.Message{Terminal: a, Channel: posfleet.ChannelAck, Ack: &posfleet.Ack{Header: posfleet.Header{Seq: 1, TS: t0}, CmdID: "fast", Status: status}}
		}
		tr.Observe(msg(posfleet.AckAccepted)) // before Sent: retried
		deadline := time.Now().Add(10 * time.Second)
		tr.Sent(a, posfleet.Command{ID: "fast", Type: posfleet.CmdReboot}, "ops", t0)
		tr.Observe(msg(posfleet.AckDone))
		for {
			l := tr.List(a)
			if len(l) == 1 && len(l[0].Acks) == 2 {
				if l[0].Status != posfleet.AckDone {
					t.Fatalf("status %q after both acks (%+v), want done", l[0].Status, l[0].Acks)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("acks not kept: %+v", l)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestAckOrderAtTheSameTime: at the same terminal time the later arrival
// wins, except that "accepted" does not replace a final status; a later
// time always wins, an earlier one never.
func TestAckOrderAtTheSameTime(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := journal.Commands{DB: db}
		if err := c.AddCommand(ctx, a, commands.Record{Command: posfleet.Command{ID: "c1", Type: posfleet.CmdReboot}, SentAt: t0, SentBy: "ops"}); err != nil {
			t.Fatal(err)
		}
		for _, step := range []struct {
			status string
			at     time.Time
			want   string
		}{
			{posfleet.AckDone, t0, posfleet.AckDone},
			{posfleet.AckAccepted, t0, posfleet.AckDone}, // same second, after done
			{posfleet.AckFailed, t0, posfleet.AckFailed}, // same second, final after final: the later
			{posfleet.AckAccepted, t0.Add(-time.Second), posfleet.AckFailed},
			{posfleet.AckAccepted, t0.Add(time.Second), posfleet.AckAccepted},
		} {
			if _, err := c.AddAcks(ctx, []commands.TerminalAck{ack(a, "c1", step.status, step.at)}); err != nil {
				t.Fatal(err)
			}
			if got, _ := c.Commands(ctx, a, 1); got[0].Status != step.want {
				t.Errorf("after %s at %v: status %q, want %q", step.status, step.at.Sub(t0), got[0].Status, step.want)
			}
		}
	})
}

// TestPolicyVersions: versions count up, the newest is in force, the
// history is newest first; a policy.yaml is imported once, when the
// database has none, and renamed.
func TestPolicyVersions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		file := filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(file, []byte("models: {}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		refuse := func([]byte) error { return fmt.Errorf("bad") }
		if ok, err := journal.ImportPolicyFile(ctx, db, file, refuse, t0); ok || err == nil {
			t.Fatalf("a refused file imported: %v %v", ok, err)
		}
		if ok, err := journal.ImportPolicyFile(ctx, db, file, nil, t0); !ok || err != nil {
			t.Fatalf("import: %v %v", ok, err)
		}
		if _, err := os.Stat(file + ".imported"); err != nil {
			t.Errorf("file not renamed: %v", err)
		}
		if ok, err := journal.ImportPolicyFile(ctx, db, file, nil, t0); ok || err != nil {
			t.Errorf("second import: %v %v", ok, err)
		}
		for i, by := range []string{"alice", "bob"} {
			v, err := journal.AddPolicy(ctx, db, fmt.Appendf(nil, "# %d\nmodels: {}\n", i), by, t0.Add(time.Duration(i+1)*time.Hour))
			if err != nil || v != int64(i+2) {
				t.Fatalf("AddPolicy = %d, %v", v, err)
			}
		}
		// A file appearing later is not imported over the database's policy.
		os.WriteFile(file, []byte("models: {}\n"), 0o600)
		if ok, err := journal.ImportPolicyFile(ctx, db, file, nil, t0); ok || err != nil {
			t.Errorf("import over a stored policy: %v %v", ok, err)
		}
		h, err := journal.PolicyHistory(ctx, db, 10)
		if err != nil || len(h) != 3 {
			t.Fatalf("history = %+v, %v", h, err)
		}
		if h[0].Version != 3 || h[0].CreatedBy != "bob" || h[0].Body != "# 1\nmodels: {}\n" || !h[0].CreatedAt.Equal(t0.Add(2*time.Hour)) || h[2].CreatedBy != journal.ImportedBy {
			t.Errorf("history = %+v", h)
		}
		if p, ok, err := journal.LatestPolicy(ctx, db); !ok || err != nil || p.Version != 3 {
			t.Errorf("latest = %+v %v %v", p, ok, err)
		}
	})
}

// TestPolicyConcurrent: replicas adding at once get distinct versions.
func TestPolicyConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		errs := make(chan error, 4)
		for i := range 4 {
			go func() {
				_, err := journal.AddPolicy(context.Background(), db, []byte("models: {}\n"), fmt.Sprint("u", i), t0)
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		h, _ := journal.PolicyHistory(context.Background(), db, 10)
		if len(h) != 4 || h[0].Version != 4 {
			t.Errorf("history = %+v", h)
		}
	})
}

// TestVisits: a visit applied at once is not pending; a replica's visit is
// pending until the health engine marks it applied, once.
func TestVisits(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cleared := []posfleet.FlagName{posfleet.FlagFirmwareOutdated, "paper_out"}
		if _, err := journal.AddVisit(ctx, db, journal.Visit{Terminal: a, At: t0, By: "crew-7", Note: "printer cleaned", Cleared: cleared, Applied: t0}); err != nil {
			t.Fatal(err)
		}
		id, err := journal.AddVisit(ctx, db, journal.Visit{Terminal: a, At: t0.Add(time.Hour), By: "crew-8"})
		if err != nil {
			t.Fatal(err)
		}
		p, err := journal.PendingVisits(ctx, db, 10)
		if err != nil || len(p) != 1 || p[0].ID != id || p[0].By != "crew-8" || !p[0].Applied.IsZero() {
			t.Fatalf("pending = %+v, %v", p, err)
		}
		if ok, err := journal.MarkVisitApplied(ctx, db, id, cleared[:1], t0.Add(2*time.Hour)); !ok || err != nil {
			t.Fatalf("MarkVisitApplied = %v, %v", ok, err)
		}
		if ok, _ := journal.MarkVisitApplied(ctx, db, id, nil, t0.Add(3*time.Hour)); ok {
			t.Error("applied twice")
		}
		if p, _ := journal.PendingVisits(ctx, db, 10); len(p) != 0 {
			t.Errorf("pending after applying: %+v", p)
		}
		v, err := journal.Visits(ctx, db, a, 10)
		if err != nil || len(v) != 2 {
			t.Fatalf("visits = %+v, %v", v, err)
		}
		if v[0].ID != id || len(v[0].Cleared) != 1 || !v[0].Applied.Equal(t0.Add(2*time.Hour)) || v[1].Note != "printer cleaned" || len(v[1].Cleared) != 2 || v[1].Cleared[1] != "paper_out" {
			t.Errorf("visits = %+v", v)
		}
		if v, _ := journal.Visits(ctx, db, b, 10); len(v) != 0 {
			t.Errorf("another terminal's visits: %+v", v)
		}
	})
}

func rejection(ref posfleet.TerminalRef, at time.Time, count int64) posfleet.RejectionEvent {
	return posfleet.RejectionEvent{Time: at, Terminal: ref, Channel: posfleet.ChannelHeartbeat, Reason: posfleet.ReasonOutOfRange, Field: "battery", Count: count}
}

func security(ref posfleet.TerminalRef, at time.Time) posfleet.SecurityRecord {
	return posfleet.SecurityRecord{SecurityEvent: posfleet.SecurityEvent{Time: at, Kind: posfleet.SecurityKind("auth_failed"), Terminal: ref, Username: ref.Tenant + ":" + ref.Terminal, Remote: "192.0.2.1:5000"}, Known: ref == a}
}

// TestEvents: what the collector hands over is kept and read back per
// tenant, newest first, at most n; a client's card data in an event is
// withheld.
func TestEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := journal.NewEventWriter(db, nil)
		defer w.Close()
		for i := range 5 {
			w.Rejection(rejection(a, t0.Add(time.Duration(i)*time.Second), int64(i)))
			w.Security(security(a, t0.Add(time.Duration(i)*time.Second)))
		}
		w.Rejection(rejection(z, t0.Add(time.Hour), 3))
		w.Security(security(z, t0.Add(time.Hour)))
		w.Security(security(posfleet.TerminalRef{}, t0.Add(2*time.Hour)))
		pan := cardNumber()
		card := security(posfleet.TerminalRef{}, t0.Add(3*time.Hour))
		card.Username, card.Topic = pan, "fleet/v1/"+pan
		w.Security(card)
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		ev := journal.Events{DB: db}
		r := ev.RecentRejections("acme", 3)
		if len(r) != 3 || !r[0].Time.Equal(t0.Add(4*time.Second)) || r[0].Count != 4 || r[0].Terminal != a || r[0].Field != "battery" || r[0].Reason != posfleet.ReasonOutOfRange {
			t.Errorf("acme's rejections = %+v", r)
		}
		if r := ev.RecentRejections("", 100); len(r) != 6 || r[0].Terminal != z || r[5].Count != 1 {
			t.Errorf("all rejections = %+v", r)
		}
		s := ev.RecentSecurity("acme", 100)
		if len(s) != 5 || !s[0].Known || s[0].Remote != "192.0.2.1:5000" || s[0].Username != "acme:T-1" {
			t.Errorf("acme's security events = %+v", s)
		}
		if s := ev.RecentSecurity("zeta", 100); len(s) != 1 || s[0].Known {
			t.Errorf("zeta's security events = %+v", s)
		}
		all := ev.RecentSecurity("", 100)
		if len(all) != 8 || all[0].Username == pan || all[0].Topic != posfleet.Redact(card.Topic) {
			t.Errorf("all security events: %d, newest %+v", len(all), all[0])
		}
		if r := ev.TerminalRejections(a, 2); len(r) != 2 || r[0].Terminal != a || r[0].Count != 4 {
			t.Errorf("a's rejections = %+v", r)
		}
		if r := ev.TerminalRejections(z, 100); len(r) != 1 || r[0].Terminal != z {
			t.Errorf("z's rejections = %+v", r)
		}
		if s := ev.TerminalSecurity(a, 100); len(s) != 5 || s[0].Terminal != a || !s[0].Known {
			t.Errorf("a's security events = %+v", s)
		}
		if s := ev.TerminalSecurity(z, 100); len(s) != 0 {
			t.Errorf("z is not provisioned: its security events %+v", s)
		}
		if c := ev.Counters(a); c.Gaps != 0 {
			t.Errorf("counters without a collector: %+v", c)
		}
	})
}

// TestPrune: rows older than the retention go, and the oldest beyond the
// row limit, in both tables; the rest stays.
func TestPrune(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := journal.NewEventWriter(db, nil)
		defer w.Close()
		now := t0.Add(40 * 24 * time.Hour)
		// 10 rows a month and more old, 3000 recent ones each.
		for i := range 10 {
			w.Rejection(rejection(a, t0.Add(time.Duration(i)*time.Minute), 1))
			w.Security(security(a, t0.Add(time.Duration(i)*time.Minute)))
		}
		for i := range 3000 {
			at := now.Add(-time.Hour + time.Duration(i)*time.Millisecond)
			w.Rejection(rejection(a, at, 1))
			w.Security(security(a, at))
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		r := journal.DefaultRetention()
		n, err := journal.Prune(ctx, db, r, now)
		if err != nil || n != 20 {
			t.Fatalf("Prune by age = %d, %v", n, err)
		}
		r.MaxRows = 1000
		if n, err := journal.Prune(ctx, db, r, now); err != nil || n != 4000 {
			t.Fatalf("Prune by count = %d, %v", n, err)
		}
		for _, table := range []string{"rejections", "security_events"} {
			var rows, oldest int64
			db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(at_ms) FROM `+table).Scan(&rows, &oldest)
			if rows != 1000 || oldest != store.Millis(now.Add(-time.Hour+2000*time.Millisecond)) {
				t.Errorf("%s: %d rows, oldest %v", table, rows, store.Time(oldest))
			}
		}
		if n, err := journal.Prune(ctx, db, r, now); err != nil || n != 0 {
			t.Errorf("Prune again = %d, %v", n, err)
		}
	})
}

// cardNumber builds a Luhn-valid test card number at run time.
func cardNumber() string {
	digits := []byte("4" + strings.Repeat("1", 14))
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return string(digits) + fmt.Sprint((10-sum%10)%10)
}

// seedCommands inserts perTerminal commands with two acks each for n
// terminals of tenant acme (T-1 is a's).
func seedCommands(tb testing.TB, db *store.DB, n, perTerminal int) {
	tb.Helper()
	ctx := context.Background()
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		for i := range n {
			for j := range perTerminal {
				id := fmt.Sprintf("c-%d-%d", i, j)
				if _, err := tx.ExecContext(ctx, `INSERT INTO commands (id, tenant, terminal, body, sent_ms, sent_by, status, ack_ms) VALUES ($1, 'acme', $2, '{"id":"x","type":"reboot"}', $3, 'ops', 'done', $3)`, id, fmt.Sprintf("T-%d", i+1), int64(j+1)); err != nil {
					return err
				}
				for k, st := range []string{"accepted", "done"} {
					if _, err := tx.ExecContext(ctx, `INSERT INTO command_acks (command_id, seq, status, at_ms) VALUES ($1, $2, $3, $4)`, id, k, st, int64(j+1)); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// TestRunPruner: the pruner prunes at once and on every tick, and ends
// with its context.
func TestRunPruner(t *testing.T) {
	db := storetest.SQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	w := journal.NewEventWriter(db, nil)
	defer w.Close()
	old := time.Now().Add(-48 * time.Hour)
	w.Rejection(rejection(a, old, 1))
	w.Flush(ctx)
	done := make(chan struct{})
	go func() {
		journal.RunPruner(ctx, db, journal.Retention{MaxAge: time.Hour, MaxRows: 1000, Interval: 10 * time.Millisecond}, nil)
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for r, _ := journal.RecentRejections(ctx, db, "", 10); len(r) != 0; r, _ = journal.RecentRejections(ctx, db, "", 10) {
		if time.Now().After(deadline) {
			t.Fatal("an old rejection not pruned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.Rejection(rejection(a, old, 1)) // pruned on a later tick
	w.Flush(ctx)
	for r, _ := journal.RecentRejections(ctx, db, "", 10); len(r) != 0; r, _ = journal.RecentRejections(ctx, db, "", 10) {
		if time.Now().After(deadline) {
			t.Fatal("an old rejection not pruned on a tick")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the pruner did not end with its context")
	}
}

// TestCommandOutbox: a queued command waits until it is marked published,
// once; its sender is recorded when the web's command log adds it; a
// command sent directly (AddCommand alone) never waits in the queue.
func TestCommandOutbox(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := journal.Commands{DB: db}
		direct := posfleet.Command{ID: "d1", Type: posfleet.CmdReboot}
		if err := c.AddCommand(ctx, a, commands.Record{Command: direct, SentAt: t0, SentBy: "ops"}); err != nil {
			t.Fatal(err)
		}
		q1, q2 := posfleet.Command{ID: "q1", Type: posfleet.CmdReboot}, posfleet.Command{ID: "q2", Type: posfleet.CmdReboot}
		// The web records q2 before it queues it (as it does now), q1 after.
		if err := c.AddCommand(ctx, b, commands.Record{Command: q2, SentAt: t0.Add(time.Second), SentBy: "ops-2"}); err != nil {
			t.Fatal(err)
		}
		for i, q := range []posfleet.Command{q1, q2} {
			if err := journal.QueueCommand(ctx, db, b, q, t0.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.AddCommand(ctx, b, commands.Record{Command: q1, SentAt: t0, SentBy: "crew-lead"}); err != nil {
			t.Fatal(err)
		}
		pending, err := journal.PendingCommands(ctx, db, 10)
		if err != nil || len(pending) != 2 || pending[0].Command.ID != "q1" || pending[0].Terminal != b || pending[1].Command.ID != "q2" {
			t.Fatalf("pending %+v, %v", pending, err)
		}
		if ok, err := journal.MarkCommandPublished(ctx, db, "q1", t0.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("mark: %v %v", ok, err)
		}
		if ok, _ := journal.MarkCommandPublished(ctx, db, "q1", t0.Add(2*time.Minute)); ok {
			t.Error("marked twice")
		}
		if ok, _ := journal.MarkCommandPublished(ctx, db, "d1", t0.Add(2*time.Minute)); ok {
			t.Error("a direct command was marked as queued")
		}
		pending, _ = journal.PendingCommands(ctx, db, 10)
		if len(pending) != 1 || pending[0].Command.ID != "q2" {
			t.Errorf("pending after marking: %+v", pending)
		}
		recs, err := c.Commands(ctx, b, 10)
		if err != nil || len(recs) != 2 || recs[1].SentBy != "crew-lead" || recs[0].SentBy != "ops-2" {
			t.Errorf("command log of the queued ones: %+v, %v", recs, err)
		}
	})
}

// TestRemoveUnsentCommand: a command that could not be published is
// forgotten with its acks; another terminal's command of the same ID is
// not touched.
func TestRemoveUnsentCommand(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := journal.Commands{DB: db}
		keep, gone := posfleet.Command{ID: "k1", Type: posfleet.CmdReboot}, posfleet.Command{ID: "u1", Type: posfleet.CmdReboot}
		for _, cmd := range []posfleet.Command{keep, gone} {
			if err := c.AddCommand(ctx, a, commands.Record{Command: cmd, SentAt: t0, SentBy: "ops"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.AddAcks(ctx, []commands.TerminalAck{ack(a, "u1", posfleet.AckAccepted, t0)}); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveCommand(ctx, b, "u1"); err != nil {
			t.Fatal(err)
		}
		if recs, _ := c.Commands(ctx, a, 10); len(recs) != 2 {
			t.Fatalf("another terminal's remove took %+v", recs)
		}
		if err := c.RemoveCommand(ctx, a, "u1"); err != nil {
			t.Fatal(err)
		}
		recs, err := c.Commands(ctx, a, 10)
		if err != nil || len(recs) != 1 || recs[0].Command.ID != "k1" {
			t.Fatalf("after remove: %+v, %v", recs, err)
		}
		// Its acks went with it: the same ID again starts with none.
		if err := c.AddCommand(ctx, a, commands.Record{Command: gone, SentAt: t0, SentBy: "ops"}); err != nil {
			t.Fatal(err)
		}
		if recs, _ := c.Commands(ctx, a, 10); len(recs) != 2 || len(recs[0].Acks)+len(recs[1].Acks) != 0 {
			t.Errorf("acks left behind: %+v", recs)
		}
	})
}
