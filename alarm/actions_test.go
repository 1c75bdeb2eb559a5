package alarm

// Internal tests: alarms are made with the base's insert, as the rules
// make them, without the rules.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// clock is a settable clock for Store.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newStore(db *store.DB) (*Store, *clock) {
	c := &clock{t: t0}
	return &Store{DB: db, Now: c.Now}, c
}

// mkAlarm inserts an alarm raised at opened with its "raised" entry;
// edit sets its other fields.
func mkAlarm(t *testing.T, db *store.DB, terminal, kind string, opened time.Time, edit func(a *posfleet.Alarm)) posfleet.Alarm {
	t.Helper()
	a := posfleet.Alarm{
		ID: NewID(), Tenant: "acme", Terminal: terminal, Kind: kind, Region: "Chengdu",
		State: posfleet.AlarmOpen, Active: true, Opened: opened, Occurrences: 1, Updated: opened,
		Urgent: posfleet.FlagName(kind).Urgent(),
	}
	if kind == posfleet.AlarmKindIncident {
		a.Terminal, a.Incident, a.Urgent = "", "inc-"+terminal, true
	}
	if edit != nil {
		edit(&a)
	}
	ctx := context.Background()
	if err := insert(ctx, db, a); err != nil {
		t.Fatal(err)
	}
	if err := addHistory(ctx, db, a.ID, posfleet.AlarmEntry{At: opened, Action: posfleet.AlarmActRaised}); err != nil {
		t.Fatal(err)
	}
	return a
}

func resolved(a *posfleet.Alarm) {
	a.State, a.Active, a.Resolved, a.Cleared = posfleet.AlarmResolved, false, a.Opened.Add(time.Hour), a.Opened.Add(30*time.Minute)
}

func wantKind(t *testing.T, err error, kind posfleet.Kind) {
	t.Helper()
	if err == nil || posfleet.ErrorKind(err) != kind {
		t.Fatalf("err = %v (%v), want a %v error", err, posfleet.ErrorKind(err), kind)
	}
}

// actions returns the actions of an alarm's history, "action:actor:detail".
func actions(t *testing.T, s *Store, id string) []string {
	t.Helper()
	_, h, err := s.Alarm(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range h {
		out = append(out, fmt.Sprintf("%s:%s:%s", e.Action, e.Actor, e.Detail))
	}
	return out
}

func wantHistory(t *testing.T, s *Store, id string, want ...string) {
	t.Helper()
	if got := actions(t, s, id); !slices.Equal(got, want) {
		t.Errorf("history of %s:\n got %q\nwant %q", id, got, want)
	}
}

// TestAcknowledge: open → acknowledged (who, when); again, by anyone, is a
// success that changes nothing; a resolved alarm is a conflict; an
// unknown one not found.
func TestAcknowledge(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, clk := newStore(db)
		a := mkAlarm(t, db, "T-1", "tamper", t0.Add(-time.Hour), nil)
		got, err := s.AcknowledgeAlarm(ctx, a.ID, "ana")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != posfleet.AlarmAcknowledged || got.AckBy != "ana" || !got.AckAt.Equal(t0) || !got.Updated.Equal(t0) {
			t.Errorf("acknowledged: %+v", got)
		}
		clk.Add(time.Minute)
		again, err := s.AcknowledgeAlarm(ctx, a.ID, "bo")
		if err != nil {
			t.Fatal(err)
		}
		if again.AckBy != "ana" || !again.AckAt.Equal(t0) || !again.Updated.Equal(t0) {
			t.Errorf("acknowledged twice: %+v", again)
		}
		wantHistory(t, s, a.ID, "raised::", "acknowledged:ana:")
		// The stored row is what was returned.
		stored, _, err := s.Alarm(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.State != posfleet.AlarmAcknowledged || stored.AckBy != "ana" {
			t.Errorf("stored: %+v", stored)
		}

		r := mkAlarm(t, db, "T-2", "offline", t0.Add(-2*time.Hour), resolved)
		_, err = s.AcknowledgeAlarm(ctx, r.ID, "ana")
		wantKind(t, err, posfleet.Conflict)
		wantHistory(t, s, r.ID, "raised::")
		_, err = s.AcknowledgeAlarm(ctx, "nope", "ana")
		wantKind(t, err, posfleet.NotFound)
		_, _, err = s.Alarm(ctx, "nope")
		wantKind(t, err, posfleet.NotFound)
	})
}

// TestAssign: assigning an open alarm acknowledges it too; reassigning
// changes the assignee; the same assignee again changes nothing; ""
// unassigns, back to acknowledged; bad names are invalid; a resolved
// alarm is a conflict.
func TestAssign(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, clk := newStore(db)
		a := mkAlarm(t, db, "T-1", "offline", t0.Add(-time.Hour), nil)
		got, err := s.AssignAlarm(ctx, a.ID, "  crew-chengdu ", "ana")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != posfleet.AlarmAssigned || got.Assignee != "crew-chengdu" || got.AckBy != "ana" || !got.AckAt.Equal(t0) {
			t.Errorf("assigned: %+v", got)
		}
		clk.Add(time.Minute)
		if got, err = s.AssignAlarm(ctx, a.ID, "crew-chengdu", "bo"); err != nil || !got.Updated.Equal(t0) {
			t.Errorf("same assignee: %+v, %v", got, err)
		}
		if got, err = s.AssignAlarm(ctx, a.ID, "李雷", "bo"); err != nil || got.Assignee != "李雷" || got.State != posfleet.AlarmAssigned || got.AckBy != "ana" {
			t.Errorf("reassigned: %+v, %v", got, err)
		}
		clk.Add(time.Minute)
		if got, err = s.AssignAlarm(ctx, a.ID, "", "bo"); err != nil || got.Assignee != "" || got.State != posfleet.AlarmAcknowledged {
			t.Errorf("unassigned: %+v, %v", got, err)
		}
		if _, err = s.AssignAlarm(ctx, a.ID, " ", "bo"); err != nil {
			t.Errorf("unassigned twice: %v", err)
		}
		// Acknowledging an acknowledged alarm changes nothing either.
		if _, err = s.AcknowledgeAlarm(ctx, a.ID, "cy"); err != nil {
			t.Fatal(err)
		}
		wantHistory(t, s, a.ID, "raised::", "acknowledged:ana:", "assigned:ana:crew-chengdu", "assigned:bo:李雷", "assigned:bo:")

		for _, bad := range []string{strings.Repeat("x", 65), "crew\n1", "a\x00b", "bad\xffutf8"} {
			_, err := s.AssignAlarm(ctx, a.ID, bad, "ana")
			wantKind(t, err, posfleet.Invalid)
		}
		if _, err := s.AssignAlarm(ctx, a.ID, strings.Repeat("界", 64), "ana"); err != nil {
			t.Errorf("64 characters: %v", err)
		}
		r := mkAlarm(t, db, "T-2", "offline", t0.Add(-2*time.Hour), resolved)
		_, err = s.AssignAlarm(ctx, r.ID, "crew", "ana")
		wantKind(t, err, posfleet.Conflict)
		_, err = s.AssignAlarm(ctx, r.ID, "", "ana")
		wantKind(t, err, posfleet.Conflict)
	})
}

// TestComment: a comment is 1-2000 characters after trimming, goes into
// the history, bumps updated, and is allowed on a resolved alarm.
func TestComment(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		r := mkAlarm(t, db, "T-1", "tamper", t0.Add(-2*time.Hour), resolved)
		got, err := s.CommentAlarm(ctx, r.ID, "ana", "  seal replaced on site \n")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Updated.Equal(t0) || got.State != posfleet.AlarmResolved {
			t.Errorf("commented: %+v", got)
		}
		for _, bad := range []string{"", "  \n ", strings.Repeat("x", 2001)} {
			_, err := s.CommentAlarm(ctx, r.ID, "ana", bad)
			wantKind(t, err, posfleet.Invalid)
		}
		if _, err := s.CommentAlarm(ctx, r.ID, "bo", strings.Repeat("字", 2000)); err != nil {
			t.Errorf("2000 characters: %v", err)
		}
		_, err = s.CommentAlarm(ctx, "nope", "ana", "hello")
		wantKind(t, err, posfleet.NotFound)
		wantHistory(t, s, r.ID, "raised::", "commented:ana:seal replaced on site", "commented:bo:"+strings.Repeat("字", 2000))
	})
}

// TestSnooze: until must be ahead, at most 30 days; the zero time ends a
// snooze (and is a no-op without one); a resolved alarm is a conflict.
func TestSnooze(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, clk := newStore(db)
		a := mkAlarm(t, db, "T-1", "battery", t0.Add(-time.Hour), nil)
		for _, bad := range []time.Time{t0, t0.Add(-time.Minute), t0.Add(MaxSnooze + time.Second)} {
			_, err := s.SnoozeAlarm(ctx, a.ID, bad, "ana")
			wantKind(t, err, posfleet.Invalid)
		}
		until := t0.Add(2 * time.Hour)
		got, err := s.SnoozeAlarm(ctx, a.ID, until, "ana")
		if err != nil {
			t.Fatal(err)
		}
		if !got.SnoozedUntil.Equal(until) || !got.Snoozed(t0) || got.State != posfleet.AlarmOpen {
			t.Errorf("snoozed: %+v", got)
		}
		if _, err := s.SnoozeAlarm(ctx, a.ID, t0.Add(MaxSnooze), "ana"); err != nil {
			t.Errorf("30 days: %v", err)
		}
		clk.Add(time.Minute)
		if got, err = s.SnoozeAlarm(ctx, a.ID, time.Time{}, "bo"); err != nil || !got.SnoozedUntil.IsZero() || !got.Updated.Equal(t0.Add(time.Minute)) {
			t.Errorf("snooze ended: %+v, %v", got, err)
		}
		if _, err = s.SnoozeAlarm(ctx, a.ID, time.Time{}, "bo"); err != nil {
			t.Fatal(err)
		}
		wantHistory(t, s, a.ID, "raised::", "snoozed:ana:2026-11-22T12:00:00Z", "snoozed:ana:2026-12-22T10:00:00Z", "snoozed:bo:")
		r := mkAlarm(t, db, "T-2", "offline", t0.Add(-2*time.Hour), resolved)
		_, err = s.SnoozeAlarm(ctx, r.ID, until, "ana")
		wantKind(t, err, posfleet.Conflict)
	})
}

// TestResolve: by hand, with a note; an incident's alarm takes its live
// folded alarms with it; resolving twice is a conflict.
func TestResolve(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		a := mkAlarm(t, db, "T-1", "tamper", t0.Add(-time.Hour), nil)
		got, err := s.ResolveAlarm(ctx, a.ID, "ana", " seal checked ")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != posfleet.AlarmResolved || !got.Resolved.Equal(t0) || got.ResolvedBy != "ana" || !got.Updated.Equal(t0) {
			t.Errorf("resolved: %+v", got)
		}
		wantHistory(t, s, a.ID, "raised::", "resolved:ana:seal checked")
		_, err = s.ResolveAlarm(ctx, a.ID, "bo", "")
		wantKind(t, err, posfleet.Conflict)
		_, err = s.ResolveAlarm(ctx, "nope", "bo", "")
		wantKind(t, err, posfleet.NotFound)

		inc := mkAlarm(t, db, "bank", posfleet.AlarmKindIncident, t0.Add(-time.Hour), nil)
		fold := func(a *posfleet.Alarm) { a.Parent = inc.ID }
		c1 := mkAlarm(t, db, "T-2", "txn_failures", t0.Add(-time.Hour), fold)
		c2 := mkAlarm(t, db, "T-3", "txn_failures", t0.Add(-time.Hour), func(a *posfleet.Alarm) { fold(a); resolved(a) })
		other := mkAlarm(t, db, "T-4", "txn_failures", t0.Add(-time.Hour), nil)
		got, err = s.ResolveAlarm(ctx, inc.ID, "ana", "")
		if err != nil {
			t.Fatal(err)
		}
		if got.Folded != 2 {
			t.Errorf("folded = %d, want 2", got.Folded)
		}
		wantHistory(t, s, inc.ID, "raised::", "resolved:ana:")
		wantHistory(t, s, c1.ID, "raised::", "resolved:ana:with incident alarm "+inc.ID)
		wantHistory(t, s, c2.ID, "raised::")
		wantHistory(t, s, other.ID, "raised::")
		for id, want := range map[string]posfleet.AlarmState{c1.ID: posfleet.AlarmResolved, other.ID: posfleet.AlarmOpen} {
			b, _, err := s.Alarm(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if b.State != want || (want == posfleet.AlarmResolved && (b.ResolvedBy != "ana" || !b.Resolved.Equal(t0))) {
				t.Errorf("%s: %+v", id, b)
			}
		}
		_, err = s.ResolveAlarm(ctx, a.ID, "ana", strings.Repeat("x", 2001))
		wantKind(t, err, posfleet.Invalid)
	})
}

// TestBulk: each alarm on its own; unknown and resolved ones fail without
// holding back the others; repeats count once; bad requests are invalid.
func TestBulk(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		a := mkAlarm(t, db, "T-1", "offline", t0.Add(-time.Hour), nil)
		b := mkAlarm(t, db, "T-2", "offline", t0.Add(-time.Hour), nil)
		r := mkAlarm(t, db, "T-3", "offline", t0.Add(-time.Hour), resolved)
		done, failed, err := s.BulkAlarms(ctx, []string{a.ID, "nope", b.ID, r.ID, a.ID}, BulkAcknowledge, "", "ana")
		if err != nil {
			t.Fatal(err)
		}
		if done != 2 || len(failed) != 2 {
			t.Fatalf("done %d, failed %v", done, failed)
		}
		wantKind(t, failed["nope"], posfleet.NotFound)
		wantKind(t, failed[r.ID], posfleet.Conflict)
		wantHistory(t, s, a.ID, "raised::", "acknowledged:ana:")

		done, failed, err = s.BulkAlarms(ctx, []string{a.ID, b.ID}, BulkAssign, "crew-1", "bo")
		if err != nil || done != 2 || len(failed) != 0 {
			t.Fatalf("assign: done %d, failed %v, %v", done, failed, err)
		}
		wantHistory(t, s, b.ID, "raised::", "acknowledged:ana:", "assigned:bo:crew-1")

		_, _, err = s.BulkAlarms(ctx, []string{a.ID}, "resolve", "", "bo")
		wantKind(t, err, posfleet.Invalid)
		_, _, err = s.BulkAlarms(ctx, []string{a.ID}, BulkAssign, " ", "bo")
		wantKind(t, err, posfleet.Invalid)
		_, _, err = s.BulkAlarms(ctx, make([]string, MaxBulk+1), BulkAcknowledge, "", "bo")
		wantKind(t, err, posfleet.Invalid)
	})
}

// TestConcurrentActions: eight people acknowledge or assign one alarm at
// once. Every call succeeds; the history says once who acknowledged it.
func TestConcurrentActions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		for round := range 3 {
			a := mkAlarm(t, db, fmt.Sprintf("T-%d", round), "tamper", t0.Add(-time.Hour), nil)
			var wg sync.WaitGroup
			errs := make([]error, 8)
			start := make(chan struct{})
			for i := range 8 {
				wg.Go(func() {
					<-start
					user := fmt.Sprintf("user-%d", i)
					if i%2 == 0 {
						_, errs[i] = s.AcknowledgeAlarm(ctx, a.ID, user)
					} else {
						_, errs[i] = s.AssignAlarm(ctx, a.ID, "crew-"+user, user)
					}
				})
			}
			close(start)
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			h := actions(t, s, a.ID)
			acks, assigns := 0, 0
			for _, e := range h {
				switch {
				case strings.HasPrefix(e, "acknowledged:"):
					acks++
				case strings.HasPrefix(e, "assigned:"):
					assigns++
				}
			}
			if acks != 1 || assigns != 4 || len(h) != 6 {
				t.Errorf("history: %q", h)
			}
			got, _, err := s.Alarm(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != posfleet.AlarmAssigned || !strings.HasPrefix(got.Assignee, "crew-user-") {
				t.Errorf("alarm: %+v", got)
			}
		}
	})
}

// TestListAlarms: each filter alone and combined, the order (urgent,
// active, newest), the total beside a page, the folded alarms of an
// incident.
func TestListAlarms(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		h := func(n int) time.Time { return t0.Add(-time.Duration(n) * time.Hour) }
		tamper := mkAlarm(t, db, "T-1", "tamper", h(5), nil)
		off1 := mkAlarm(t, db, "T-2", "offline", h(1), func(a *posfleet.Alarm) { a.Region = "CHENGDU" })
		off2 := mkAlarm(t, db, "T-3", "offline", h(2), func(a *posfleet.Alarm) {
			a.State, a.Assignee, a.AckBy, a.Region = posfleet.AlarmAssigned, "crew-1", "ana", "Shanghai"
		})
		cleared := mkAlarm(t, db, "T-4", "offline", h(0), func(a *posfleet.Alarm) {
			a.Active, a.Cleared, a.State, a.AckBy = false, t0, posfleet.AlarmAcknowledged, "ana"
		})
		old := mkAlarm(t, db, "T-2", "offline", h(48), resolved)
		inc := mkAlarm(t, db, "bank", posfleet.AlarmKindIncident, h(3), func(a *posfleet.Alarm) { a.Region = "" })
		f1 := mkAlarm(t, db, "T-5", "txn_failures", h(3), func(a *posfleet.Alarm) { a.Parent = inc.ID })
		f2 := mkAlarm(t, db, "T-6", "txn_failures", h(3), func(a *posfleet.Alarm) { a.Parent = inc.ID; resolved(a) })
		zeta := mkAlarm(t, db, "T-1", "tamper", h(1), func(a *posfleet.Alarm) { a.Tenant = "zeta" })

		yes, no := true, false
		for _, c := range []struct {
			name string
			f    posfleet.AlarmFilter
			want []posfleet.Alarm
		}{
			// Urgent first (tamper opened 5 h ago, incident 3 h ago), then
			// active, newest first; the cleared one last.
			{"default", posfleet.AlarmFilter{}, []posfleet.Alarm{zeta, inc, tamper, off1, off2, cleared}},
			{"tenant", posfleet.AlarmFilter{Tenant: "acme"}, []posfleet.Alarm{inc, tamper, off1, off2, cleared}},
			{"resolved", posfleet.AlarmFilter{Tenant: "acme", States: []posfleet.AlarmState{posfleet.AlarmResolved}}, []posfleet.Alarm{old}},
			{"every state", posfleet.AlarmFilter{Tenant: "acme", States: posfleet.AlarmStates}, []posfleet.Alarm{inc, tamper, off1, off2, cleared, old}},
			{"open+assigned", posfleet.AlarmFilter{Tenant: "acme", States: []posfleet.AlarmState{posfleet.AlarmOpen, posfleet.AlarmAssigned, posfleet.AlarmOpen}}, []posfleet.Alarm{inc, tamper, off1, off2}},
			{"kind", posfleet.AlarmFilter{Kind: "offline"}, []posfleet.Alarm{off1, off2, cleared}},
			{"incident", posfleet.AlarmFilter{Kind: "incident"}, []posfleet.Alarm{inc}},
			{"urgent", posfleet.AlarmFilter{Tenant: "acme", Urgent: &yes}, []posfleet.Alarm{inc, tamper}},
			{"not urgent", posfleet.AlarmFilter{Urgent: &no}, []posfleet.Alarm{off1, off2, cleared}},
			{"region", posfleet.AlarmFilter{Region: " chengDU "}, []posfleet.Alarm{zeta, tamper, off1, cleared}},
			{"region+kind", posfleet.AlarmFilter{Region: "chengdu", Kind: "offline"}, []posfleet.Alarm{off1, cleared}},
			{"assignee", posfleet.AlarmFilter{Assignee: "crew-1"}, []posfleet.Alarm{off2}},
			{"terminal", posfleet.AlarmFilter{Tenant: "acme", Terminal: "T-2", States: posfleet.AlarmStates}, []posfleet.Alarm{off1, old}},
			{"folded", posfleet.AlarmFilter{Parent: inc.ID}, []posfleet.Alarm{f1}},
			{"folded, every state", posfleet.AlarmFilter{Parent: inc.ID, States: posfleet.AlarmStates}, []posfleet.Alarm{f1, f2}},
			{"all levels", posfleet.AlarmFilter{Tenant: "acme", Kind: "txn_failures", AllLevels: true}, []posfleet.Alarm{f1}},
			{"top level", posfleet.AlarmFilter{Tenant: "acme", Kind: "txn_failures"}, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, total, err := s.ListAlarms(ctx, c.f)
				if err != nil {
					t.Fatal(err)
				}
				if total != len(c.want) || !slices.Equal(ids(got), ids(c.want)) {
					t.Errorf("got %d %v, want %v", total, terminals(got), terminals(c.want))
				}
			})
		}

		page, total, err := s.ListAlarms(ctx, posfleet.AlarmFilter{Tenant: "acme", Limit: 2, Offset: 1})
		if err != nil {
			t.Fatal(err)
		}
		if total != 5 || !slices.Equal(ids(page), ids([]posfleet.Alarm{tamper, off1})) {
			t.Errorf("page: %d %v", total, terminals(page))
		}
		all, _, err := s.ListAlarms(ctx, posfleet.AlarmFilter{Kind: "incident"})
		if err != nil {
			t.Fatal(err)
		}
		if all[0].Folded != 2 {
			t.Errorf("folded = %d, want 2 (resolved ones included)", all[0].Folded)
		}
		one, _, err := s.Alarm(ctx, inc.ID)
		if err != nil || one.Folded != 2 {
			t.Errorf("alarm: folded = %d, %v", one.Folded, err)
		}

		for _, bad := range []posfleet.AlarmFilter{{Kind: "tampered"}, {States: []posfleet.AlarmState{"closed"}}} {
			_, _, err := s.ListAlarms(ctx, bad)
			wantKind(t, err, posfleet.Invalid)
		}

		counts, err := s.CountAlarms(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		want := map[posfleet.AlarmState]int{posfleet.AlarmOpen: 3, posfleet.AlarmAcknowledged: 1, posfleet.AlarmAssigned: 1}
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("counts: %v, want %v", counts, want)
		}
		counts, err = s.CountAlarms(ctx, "")
		if err != nil || counts[posfleet.AlarmOpen] != 4 {
			t.Errorf("counts of every tenant: %v, %v", counts, err)
		}
	})
}

func ids(as []posfleet.Alarm) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func terminals(as []posfleet.Alarm) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Tenant+"/"+a.Terminal+"/"+a.Kind+"/"+string(a.State))
	}
	return out
}
