package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/notify"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

const base = "https://fleet.example.com"

// fakeSender records what it is given and fails while told to.
type fakeSender struct {
	mu   sync.Mutex
	got  []sent
	fail func(notify.Target, posfleet.NotifyMessage) error
	// after runs after a message is recorded (a crash between send and mark).
	after func()
}

type sent struct {
	Channel string
	Msg     posfleet.NotifyMessage
}

func (s *fakeSender) Send(ctx context.Context, t notify.Target, m posfleet.NotifyMessage) error {
	s.mu.Lock()
	fail, after := s.fail, s.after
	s.mu.Unlock()
	if fail != nil {
		if err := fail(t, m); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.got = append(s.got, sent{t.ID, m})
	s.mu.Unlock()
	if after != nil {
		after()
	}
	return nil
}

func (s *fakeSender) setFail(f func(notify.Target, posfleet.NotifyMessage) error) {
	s.mu.Lock()
	s.fail = f
	s.mu.Unlock()
}

func (s *fakeSender) sent() []sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func (s *fakeSender) ids() []string {
	var out []string
	for _, m := range s.sent() {
		out = append(out, m.Msg.ID)
	}
	return out
}

var errDown = errors.New("connection refused")

func down(notify.Target, posfleet.NotifyMessage) error { return errDown }

type channelSpec struct {
	id, name string
	typ      posfleet.NotifyChannelType
	url      string
	secret   string
	disabled bool
	rate     int
}

func addChannel(t *testing.T, db *store.DB, c channelSpec) {
	t.Helper()
	if c.typ == "" {
		c.typ = posfleet.NotifyWebhook
	}
	if c.name == "" {
		c.name = c.id
	}
	if c.url == "" {
		c.url = "http://127.0.0.1:1/hook/" + c.id
	}
	_, err := db.ExecContext(context.Background(), `INSERT INTO channels (id, tenant, name, type, url, recipients, secret, language,
		enabled, rate_per_hour, created_ms, created_by, updated_ms) VALUES ($1, 'acme', $2, $3, $4, 'ops@example.com, oncall@example.com', $5, 'en', $6, $7, $8, 'admin', $8)`,
		c.id, c.name, string(c.typ), c.url, c.secret, !c.disabled, c.rate, store.Millis(t0))
	if err != nil {
		t.Fatal(err)
	}
}

func alarmOf(id, terminal, kind string) posfleet.Alarm {
	return posfleet.Alarm{ID: id, Tenant: "acme", Terminal: terminal, Kind: kind, State: posfleet.AlarmOpen,
		Active: true, Opened: t0, Occurrences: 1, Updated: t0, Urgent: kind == "tamper" || kind == "incident"}
}

type rowSpec struct {
	id, channel string
	event       posfleet.NotificationEvent
	state       posfleet.NotificationState
	alarm       posfleet.Alarm
	created     time.Time
	due         time.Time
}

func addRow(t *testing.T, db *store.DB, r rowSpec) {
	t.Helper()
	if r.event == "" {
		r.event = posfleet.NotifyRaised
	}
	if r.state == "" {
		r.state = posfleet.NotificationPending
	}
	if r.created.IsZero() {
		r.created = t0
	}
	if r.due.IsZero() {
		r.due = r.created
	}
	body, _ := json.Marshal(r.alarm)
	_, err := db.ExecContext(context.Background(), `INSERT INTO notifications (id, tenant, channel_id, alarm_id, event, body, state, created_ms, due_ms)
		VALUES ($1, 'acme', $2, $3, $4, $5, $6, $7, $8)`,
		r.id, r.channel, r.alarm.ID, string(r.event), string(body), string(r.state), store.Millis(r.created), store.Millis(r.due))
	if err != nil {
		t.Fatal(err)
	}
}

type rowState struct {
	State     string
	Attempts  int
	LastError string
	Due, Sent time.Time
	Bundle    string
	Event     string
}

func stateOf(t *testing.T, db *store.DB, id string) rowState {
	t.Helper()
	var s rowState
	var due, sentMs int64
	err := db.QueryRowContext(context.Background(), `SELECT state, attempts, last_error, due_ms, sent_ms, bundle, event FROM notifications WHERE id = $1`, id).
		Scan(&s.State, &s.Attempts, &s.LastError, &due, &sentMs, &s.Bundle, &s.Event)
	if err != nil {
		t.Fatalf("notification %s: %v", id, err)
	}
	s.Due, s.Sent = store.Time(due), store.Time(sentMs)
	return s
}

func options(holder string) notify.DispatcherOptions {
	o := notify.DefaultDispatcherOptions()
	o.Holder = holder
	o.BaseURL = base + "/"
	o.Now = func() time.Time { return t0 }
	return o
}

func step(t *testing.T, d *notify.Dispatcher, now time.Time) {
	t.Helper()
	if err := d.Step(context.Background(), now); err != nil {
		t.Fatalf("step at %s: %v", now.Sub(t0), err)
	}
}

// TestDispatchDelivers: the due pending notifications are sent once each,
// with the links of their alarm, and marked sent; one not due yet waits.
func TestDispatchDelivers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "hook", secret: "s3cret"})
		addChannel(t, db, channelSpec{id: "mail", typ: posfleet.NotifyEmail})
		inc := alarmOf("a-inc", "", "incident")
		inc.Incident = "inc-1"
		addRow(t, db, rowSpec{id: "n1", channel: "hook", alarm: alarmOf("a1", "T 1", "tamper")})
		addRow(t, db, rowSpec{id: "n2", channel: "mail", alarm: inc, created: t0.Add(time.Second)})
		addRow(t, db, rowSpec{id: "n3", channel: "hook", alarm: alarmOf("a3", "T-3", "offline"), due: t0.Add(time.Hour)})
		s := &fakeSender{}
		d := notify.NewDispatcher(db, s, options("a"))
		step(t, d, t0.Add(2*time.Second))
		step(t, d, t0.Add(3*time.Second))
		got := s.sent()
		if len(got) != 2 {
			t.Fatalf("sent %d messages, want 2: %+v", len(got), got)
		}
		slices.SortFunc(got, func(a, b sent) int { return strings.Compare(a.Msg.ID, b.Msg.ID) })
		m := got[0].Msg
		if got[0].Channel != "hook" || m.ID != "n1" || m.Event != posfleet.NotifyRaised || m.Tenant != "acme" ||
			m.Alarm == nil || m.Alarm.ID != "a1" || m.URL != base+"/terminals/acme/T%201" || m.AlarmURL != base+"/alarms/a1" || !m.Time.Equal(t0) {
			t.Errorf("n1: %+v", got[0])
		}
		m = got[1].Msg
		if got[1].Channel != "mail" || m.ID != "n2" || m.URL != base+"/incidents" || m.AlarmURL != base+"/alarms/a-inc" {
			t.Errorf("n2: %+v", got[1])
		}
		for _, id := range []string{"n1", "n2"} {
			if st := stateOf(t, db, id); st.State != "sent" || st.Attempts != 1 || !st.Sent.Equal(t0.Add(2*time.Second)) {
				t.Errorf("%s: %+v", id, st)
			}
		}
		if st := stateOf(t, db, "n3"); st.State != "pending" || st.Attempts != 0 {
			t.Errorf("n3 not due yet: %+v", st)
		}
		step(t, d, t0.Add(time.Hour))
		if ids := s.ids(); len(ids) != 3 || ids[2] != "n3" {
			t.Errorf("after n3 is due: sent %v", ids)
		}
	})
}

// TestDispatchReceiverDown10Minutes: the receiver is down for 10 minutes;
// nothing is lost, each notification is delivered exactly once after it
// comes back, in order, its attempts counted; the outbox depth and age
// show in the metrics meanwhile.
func TestDispatchReceiverDown10Minutes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "hook", name: "ops-hook"})
		addChannel(t, db, channelSpec{id: "other"})
		for i := range 3 {
			addRow(t, db, rowSpec{id: fmt.Sprintf("n%d", i), channel: "hook", alarm: alarmOf(fmt.Sprintf("a%d", i), "T-1", "tamper"),
				created: t0.Add(time.Duration(i) * time.Second)})
		}
		s := &fakeSender{}
		s.setFail(func(tg notify.Target, _ posfleet.NotifyMessage) error {
			if tg.ID == "hook" {
				return errDown
			}
			return nil
		})
		reg := prometheus.NewPedanticRegistry()
		o := options("a")
		now := t0
		o.Now = func() time.Time { return now }
		o.Metrics = reg
		d := notify.NewDispatcher(db, s, o)
		for ; now.Before(t0.Add(10 * time.Minute)); now = now.Add(5 * time.Second) {
			step(t, d, now)
			if now.Equal(t0.Add(5 * time.Minute)) {
				// Another channel is not held up by the dead one.
				addRow(t, db, rowSpec{id: "o1", channel: "other", alarm: alarmOf("b1", "T-9", "tamper"), created: now})
			}
		}
		if ids := s.ids(); !slices.Equal(ids, []string{"o1"}) {
			t.Fatalf("while the receiver was down: sent %v, want [o1]", ids)
		}
		first := stateOf(t, db, "n0")
		// Backoff: a handful of attempts in 10 minutes, not one per step.
		if first.State != "pending" || first.Attempts < 4 || first.Attempts > 10 || !strings.Contains(first.LastError, "connection refused") {
			t.Errorf("n0 after 10 minutes down: %+v", first)
		}
		for _, id := range []string{"n1", "n2"} {
			if st := stateOf(t, db, id); st.State != "pending" {
				t.Errorf("%s: %+v", id, st)
			}
		}
		err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP posfleet_notification_outbox_depth Notifications still to go, by channel (name), its type and state: pending, held (for a digest), suppressed (by the rate limit, for a summary).
# TYPE posfleet_notification_outbox_depth gauge
posfleet_notification_outbox_depth{channel="ops-hook",channel_type="webhook",state="held"} 0
posfleet_notification_outbox_depth{channel="ops-hook",channel_type="webhook",state="pending"} 3
posfleet_notification_outbox_depth{channel="ops-hook",channel_type="webhook",state="suppressed"} 0
posfleet_notification_outbox_depth{channel="other",channel_type="webhook",state="held"} 0
posfleet_notification_outbox_depth{channel="other",channel_type="webhook",state="pending"} 0
posfleet_notification_outbox_depth{channel="other",channel_type="webhook",state="suppressed"} 0
# HELP posfleet_notification_outbox_oldest_seconds How long the channel's oldest overdue notification (due, or failed before) has waited; 0 when none.
# TYPE posfleet_notification_outbox_oldest_seconds gauge
posfleet_notification_outbox_oldest_seconds{channel="ops-hook"} 600
posfleet_notification_outbox_oldest_seconds{channel="other"} 0
`), "posfleet_notification_outbox_depth", "posfleet_notification_outbox_oldest_seconds")
		if err != nil {
			t.Error(err)
		}

		s.setFail(nil)
		back := now
		for ; now.Before(back.Add(6*time.Minute)) && len(s.sent()) < 4; now = now.Add(5 * time.Second) {
			step(t, d, now)
		}
		for range 10 {
			step(t, d, now)
			now = now.Add(5 * time.Second)
		}
		if ids := s.ids(); !slices.Equal(ids, []string{"o1", "n0", "n1", "n2"}) {
			t.Fatalf("after the receiver came back: sent %v, want o1 then n0, n1, n2 once each", ids)
		}
		if d := now.Sub(back); d > 6*time.Minute {
			t.Errorf("delivered %s after the receiver came back", d)
		}
		for _, id := range []string{"n0", "n1", "n2"} {
			if st := stateOf(t, db, id); st.State != "sent" {
				t.Errorf("%s: %+v", id, st)
			}
		}
		if st := stateOf(t, db, "n0"); st.Attempts != first.Attempts+1 {
			t.Errorf("n0 attempts %d, want %d", st.Attempts, first.Attempts+1)
		}
		if st := stateOf(t, db, "n1"); st.Attempts != 1 {
			t.Errorf("n1 waited behind n0 without attempts of its own: %+v", st)
		}
		if v := testutil.ToFloat64(counter(t, reg, "posfleet_notifications_failed_total", "webhook")); v != float64(first.Attempts) {
			t.Errorf("failed_total %v, want %d", v, first.Attempts)
		}
		if v := testutil.ToFloat64(counter(t, reg, "posfleet_notifications_retried_total", "webhook")); v != float64(first.Attempts) {
			t.Errorf("retried_total %v, want %d", v, first.Attempts)
		}
		if v := testutil.ToFloat64(counter(t, reg, "posfleet_notifications_sent_total", "webhook")); v != 4 {
			t.Errorf("sent_total %v, want 4", v)
		}
	})
}

// counter returns a counter's value as a collector of one metric.
func counter(t *testing.T, reg *prometheus.Registry, name, typ string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "channel_type" && l.GetValue() == typ {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					g.Set(m.GetCounter().GetValue())
					return g
				}
			}
		}
	}
	t.Fatalf("no %s{channel_type=%q}", name, typ)
	return nil
}

// TestDispatchRestart: a dispatcher that stopped (without releasing the
// lease) is followed by a new one on the same database, which takes over
// once the lease expired and delivers what was left, failed attempts
// included.
func TestDispatchRestart(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "hook"})
		addRow(t, db, rowSpec{id: "n1", channel: "hook", alarm: alarmOf("a1", "T-1", "tamper")})
		addRow(t, db, rowSpec{id: "n2", channel: "hook", alarm: alarmOf("a2", "T-2", "tamper"), created: t0.Add(time.Millisecond)})
		s1 := &fakeSender{}
		s1.setFail(down)
		step(t, notify.NewDispatcher(db, s1, options("first")), t0)
		if st := stateOf(t, db, "n1"); st.Attempts != 1 || st.State != "pending" {
			t.Fatalf("n1 after a failure: %+v", st)
		}

		s2 := &fakeSender{}
		d2 := notify.NewDispatcher(db, s2, options("second"))
		step(t, d2, t0.Add(time.Second))
		if d2.Held() || len(s2.sent()) > 0 {
			t.Fatalf("took over a live lease: held %v, sent %v", d2.Held(), s2.ids())
		}
		later := t0.Add(notify.DefaultDispatcherOptions().TTL + notify.DefaultDispatcherOptions().RetryMin)
		step(t, d2, later)
		if !d2.Held() || !slices.Equal(s2.ids(), []string{"n1", "n2"}) {
			t.Fatalf("after the lease expired: held %v, sent %v", d2.Held(), s2.ids())
		}
		if st := stateOf(t, db, "n1"); st.State != "sent" || st.Attempts != 2 {
			t.Errorf("n1: %+v", st)
		}
	})
}

// TestDispatchCrashBeforeMark: the process dies after the receiver took a
// notification and before it was marked sent; the next dispatcher sends
// it again with the same ID (at least once), and marks it.
func TestDispatchCrashBeforeMark(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "hook"})
		addRow(t, db, rowSpec{id: "n1", channel: "hook", alarm: alarmOf("a1", "T-1", "tamper")})
		ctx, crash := context.WithCancel(context.Background())
		s := &fakeSender{after: crash}
		if err := notify.NewDispatcher(db, s, options("doomed")).Step(ctx, t0); err == nil {
			t.Fatal("a step whose process died reported no error")
		}
		if st := stateOf(t, db, "n1"); st.State != "pending" {
			t.Fatalf("marked %s by a dead process", st.State)
		}
		s.after = nil
		step(t, notify.NewDispatcher(db, s, options("next")), t0.Add(time.Minute))
		if ids := s.ids(); !slices.Equal(ids, []string{"n1", "n1"}) {
			t.Fatalf("sent %v, want n1 again with the same ID", ids)
		}
		if st := stateOf(t, db, "n1"); st.State != "sent" {
			t.Errorf("n1: %+v", st)
		}
	})
}

// TestRateLimitSummary: past a channel's rate the notifications are
// suppressed; once the channel is below its rate again, one summary says
// how many, and they are bundled into it.
func TestRateLimitSummary(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "chat", typ: posfleet.NotifyDingTalk, rate: 2})
		for i := range 5 {
			addRow(t, db, rowSpec{id: fmt.Sprintf("n%d", i), channel: "chat", alarm: alarmOf(fmt.Sprintf("a%d", i), "T-1", "offline"),
				created: t0.Add(time.Duration(i) * time.Millisecond)})
		}
		s := &fakeSender{}
		d := notify.NewDispatcher(db, s, options("a"))
		step(t, d, t0.Add(time.Second))
		if ids := s.ids(); !slices.Equal(ids, []string{"n0", "n1"}) {
			t.Fatalf("sent %v, want the first 2", ids)
		}
		for _, id := range []string{"n2", "n3", "n4"} {
			if st := stateOf(t, db, id); st.State != "suppressed" {
				t.Errorf("%s: %+v", id, st)
			}
		}
		step(t, d, t0.Add(10*time.Minute))
		addRow(t, db, rowSpec{id: "n5", channel: "chat", alarm: alarmOf("a5", "T-2", "offline"), created: t0.Add(30 * time.Minute)})
		step(t, d, t0.Add(30*time.Minute))
		if n := len(s.sent()); n != 2 {
			t.Fatalf("sent %d within the hour, want 2", n)
		}
		for _, now := range []time.Time{t0.Add(time.Hour + time.Second), t0.Add(time.Hour + 2*time.Second), t0.Add(2 * time.Hour)} {
			step(t, d, now)
		}
		got := s.sent()
		if len(got) != 3 {
			t.Fatalf("sent %v, want the 2 and one summary", s.ids())
		}
		sum := got[2].Msg
		if sum.Event != posfleet.NotifySummary || sum.Held != 4 || sum.URL != base+"/alarms" || sum.Alarm != nil || sum.AlarmURL != "" {
			t.Errorf("summary: %+v", sum)
		}
		if st := stateOf(t, db, sum.ID); st.State != "sent" || st.Event != "summary" {
			t.Errorf("summary row: %+v", st)
		}
		for _, id := range []string{"n2", "n3", "n4", "n5"} {
			if st := stateOf(t, db, id); st.State != "bundled" || st.Bundle != sum.ID {
				t.Errorf("%s: %+v, want bundled into %s", id, st, sum.ID)
			}
		}
	})
}

// TestDigestBundles: the held notifications of a channel whose digest is
// due go as one digest (each alarm once, as of its latest notification),
// a notifications row of its own; those not due yet wait.
func TestDigestBundles(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "mail", typ: posfleet.NotifyEmail})
		addChannel(t, db, channelSpec{id: "hook"})
		at := t0.Add(8 * time.Hour)
		a1, a2 := alarmOf("a1", "T-1", "firmware_outdated"), alarmOf("a2", "T-2", "firmware_outdated")
		a1r := a1
		a1r.State, a1r.Active = posfleet.AlarmResolved, false
		held := posfleet.NotificationHeld
		addRow(t, db, rowSpec{id: "h1", channel: "mail", state: held, alarm: a1, created: t0, due: at})
		addRow(t, db, rowSpec{id: "h2", channel: "mail", state: held, alarm: a2, created: t0.Add(time.Minute), due: at})
		addRow(t, db, rowSpec{id: "h3", channel: "mail", event: posfleet.NotifyResolved, state: held, alarm: a1r, created: t0.Add(2 * time.Minute), due: at})
		addRow(t, db, rowSpec{id: "h4", channel: "mail", state: held, alarm: alarmOf("a4", "T-4", "firmware_outdated"), created: at.Add(-time.Minute), due: at.Add(24 * time.Hour)})
		addRow(t, db, rowSpec{id: "h5", channel: "hook", state: held, alarm: alarmOf("a5", "T-5", "firmware_outdated"), created: t0, due: at})
		s := &fakeSender{}
		d := notify.NewDispatcher(db, s, options("a"))
		step(t, d, t0.Add(time.Hour))
		if len(s.sent()) != 0 {
			t.Fatalf("sent before the digest was due: %v", s.ids())
		}
		step(t, d, at)
		step(t, d, at.Add(time.Second))
		got := s.sent()
		if len(got) != 2 {
			t.Fatalf("sent %d messages, want one digest per channel: %+v", len(got), got)
		}
		slices.SortFunc(got, func(a, b sent) int { return strings.Compare(a.Channel, b.Channel) })
		hook, mail := got[0].Msg, got[1].Msg
		if mail.Event != posfleet.NotifyDigest || mail.URL != base+"/alarms" || len(mail.Alarms) != 2 ||
			mail.Alarms[0].ID != "a1" || mail.Alarms[0].State != posfleet.AlarmResolved || mail.Alarms[1].ID != "a2" {
			t.Errorf("mail digest: %+v", mail)
		}
		if hook.Event != posfleet.NotifyDigest || len(hook.Alarms) != 1 || hook.Alarms[0].ID != "a5" {
			t.Errorf("hook digest: %+v", hook)
		}
		for id, bundle := range map[string]string{"h1": mail.ID, "h2": mail.ID, "h3": mail.ID, "h5": hook.ID} {
			if st := stateOf(t, db, id); st.State != "bundled" || st.Bundle != bundle {
				t.Errorf("%s: %+v, want bundled into %s", id, st, bundle)
			}
		}
		if st := stateOf(t, db, mail.ID); st.State != "sent" || st.Event != "digest" {
			t.Errorf("digest row: %+v", st)
		}
		if st := stateOf(t, db, "h4"); st.State != "held" {
			t.Errorf("h4 (tomorrow's digest): %+v", st)
		}
	})
}

// TestDispatchLease: of two dispatchers on one database only the lease
// holder sends; when it stops it releases the lease and the other takes
// over at once.
func TestDispatchLease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "hook"})
		addRow(t, db, rowSpec{id: "n1", channel: "hook", alarm: alarmOf("a1", "T-1", "tamper")})
		sa, sb := &fakeSender{}, &fakeSender{}
		oa := options("a")
		oa.Every = 10 * time.Millisecond
		a, b := notify.NewDispatcher(db, sa, oa), notify.NewDispatcher(db, sb, options("b"))
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for len(sa.sent()) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		step(t, b, t0)
		if b.Held() || len(sb.sent()) != 0 {
			t.Fatalf("the standby: held %v, sent %v", b.Held(), sb.ids())
		}
		if !a.Held() || !slices.Equal(sa.ids(), []string{"n1"}) {
			t.Fatalf("the holder: held %v, sent %v", a.Held(), sa.ids())
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		addRow(t, db, rowSpec{id: "n2", channel: "hook", alarm: alarmOf("a2", "T-2", "tamper")})
		step(t, b, t0.Add(time.Second))
		if a.Held() || !b.Held() || !slices.Equal(sb.ids(), []string{"n2"}) || len(sa.sent()) != 1 {
			t.Fatalf("after the holder stopped: a held %v sent %v, b held %v sent %v", a.Held(), sa.ids(), b.Held(), sb.ids())
		}
	})
}

// TestDispatchMaxAge: a notification still undelivered after MaxAge is
// given up (failed, its last error kept for the record).
func TestDispatchMaxAge(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "hook"})
		addRow(t, db, rowSpec{id: "n1", channel: "hook", alarm: alarmOf("a1", "T-1", "tamper")})
		s := &fakeSender{}
		s.setFail(down)
		reg := prometheus.NewPedanticRegistry()
		o := options("a")
		o.MaxAge = time.Hour
		o.Metrics = reg
		d := notify.NewDispatcher(db, s, o)
		for now := t0; now.Before(t0.Add(2 * time.Hour)); now = now.Add(time.Minute) {
			step(t, d, now)
		}
		st := stateOf(t, db, "n1")
		if st.State != "failed" || !strings.Contains(st.LastError, "given up") || !strings.Contains(st.LastError, "connection refused") {
			t.Errorf("n1: %+v", st)
		}
		if v := testutil.ToFloat64(counter(t, reg, "posfleet_notifications_given_up_total", "webhook")); v != 1 {
			t.Errorf("given_up_total %v", v)
		}
		s.setFail(nil)
		step(t, d, t0.Add(3*time.Hour))
		if len(s.sent()) != 0 {
			t.Errorf("a given-up notification was sent: %v", s.ids())
		}
	})
}

// TestDispatchChannelGoneOrDisabled: a deleted channel's notification
// fails at once; a disabled channel's waits and goes out once the channel
// is enabled again.
func TestDispatchChannelGoneOrDisabled(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "paused", disabled: true})
		addRow(t, db, rowSpec{id: "gone", channel: "nosuch", alarm: alarmOf("a1", "T-1", "tamper")})
		addRow(t, db, rowSpec{id: "p1", channel: "paused", alarm: alarmOf("a2", "T-2", "tamper")})
		s := &fakeSender{}
		d := notify.NewDispatcher(db, s, options("a"))
		step(t, d, t0)
		if st := stateOf(t, db, "gone"); st.State != "failed" || st.LastError != "channel deleted" {
			t.Errorf("gone: %+v", st)
		}
		if st := stateOf(t, db, "p1"); st.State != "pending" || st.LastError != "channel disabled" || st.Attempts != 0 {
			t.Errorf("p1: %+v", st)
		}
		if _, err := db.ExecContext(context.Background(), `UPDATE channels SET enabled = $1 WHERE id = 'paused'`, true); err != nil {
			t.Fatal(err)
		}
		for now := t0; now.Before(t0.Add(6 * time.Minute)); now = now.Add(30 * time.Second) {
			step(t, d, now)
		}
		if ids := s.ids(); !slices.Equal(ids, []string{"p1"}) {
			t.Errorf("sent %v, want p1 once enabled", ids)
		}
	})
}

// TestDispatchPermanentError: a message the receiver refuses for good
// waits RetryMax and does not hold up the channel's next ones.
func TestDispatchPermanentError(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "hook"})
		addRow(t, db, rowSpec{id: "bad", channel: "hook", alarm: alarmOf("a1", "T-1", "tamper")})
		addRow(t, db, rowSpec{id: "good", channel: "hook", alarm: alarmOf("a2", "T-2", "tamper"), created: t0.Add(time.Millisecond)})
		s := &fakeSender{}
		s.setFail(func(_ notify.Target, m posfleet.NotifyMessage) error {
			if m.ID == "bad" {
				return &notify.PermanentError{Err: errors.New("HTTP 400: bad request")}
			}
			return nil
		})
		d := notify.NewDispatcher(db, s, options("a"))
		step(t, d, t0.Add(time.Second))
		if ids := s.ids(); !slices.Equal(ids, []string{"good"}) {
			t.Errorf("sent %v", ids)
		}
		st := stateOf(t, db, "bad")
		if st.State != "pending" || st.Attempts != 1 || !st.Due.Equal(t0.Add(time.Second).Add(notify.DefaultDispatcherOptions().RetryMax)) || st.LastError != "HTTP 400: bad request" {
			t.Errorf("bad: %+v", st)
		}
	})
}

// TestDispatchTest: "send test" sends at once, returns the receiver's
// refusal (without the channel's URL token or secret) and records the
// attempt.
func TestDispatchTest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		addChannel(t, db, channelSpec{id: "ding", typ: posfleet.NotifyDingTalk, url: "https://oapi.dingtalk.com/robot/send?access_token=TOKEN123", secret: "SECabcdef"})
		s := &fakeSender{}
		d := notify.NewDispatcher(db, s, options("a"))
		if err := d.Test(ctx, "ding", "alice"); err != nil {
			t.Fatal(err)
		}
		got := s.sent()
		if len(got) != 1 || got[0].Msg.Event != posfleet.NotifyTest || got[0].Msg.Tenant != "acme" || got[0].Msg.URL != base+"/notifications" {
			t.Fatalf("sent %+v", got)
		}
		if st := stateOf(t, db, got[0].Msg.ID); st.State != "sent" || st.Event != "test" {
			t.Errorf("test row: %+v", st)
		}
		s.setFail(func(tg notify.Target, _ posfleet.NotifyMessage) error {
			return fmt.Errorf("Post %q: errcode 310000: sign not match (secret %s)", tg.URL, tg.Secret)
		})
		err := d.Test(ctx, "ding", "alice")
		if err == nil || !strings.Contains(err.Error(), "sign not match") {
			t.Fatalf("err %v, want the receiver's", err)
		}
		if strings.Contains(err.Error(), "TOKEN123") || strings.Contains(err.Error(), "SECabcdef") {
			t.Errorf("the error shows the channel's token or secret: %v", err)
		}
		var failed int
		db.QueryRowContext(ctx, `SELECT COUNT(*) FROM notifications WHERE event = 'test' AND state = 'failed' AND last_error LIKE '%sign not match%' AND last_error NOT LIKE '%TOKEN123%'`).Scan(&failed)
		if failed != 1 {
			t.Errorf("failed test rows: %d", failed)
		}
		if err := d.Test(ctx, "nosuch", "alice"); posfleet.ErrorKind(err) != posfleet.NotFound {
			t.Errorf("unknown channel: %v", err)
		}
	})
}

// TestMetricsOutbox: the gauges read the outbox and the alarms at each
// scrape: depth per channel and state, the oldest overdue notification's
// age, alarms per state, the lease.
func TestMetricsOutbox(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		addChannel(t, db, channelSpec{id: "hook", name: "ops"})
		addChannel(t, db, channelSpec{id: "mail", name: "crew", typ: posfleet.NotifyEmail, disabled: true})
		addRow(t, db, rowSpec{id: "p1", channel: "hook", alarm: alarmOf("a1", "T-1", "tamper"), created: t0.Add(-90 * time.Second)})
		addRow(t, db, rowSpec{id: "p2", channel: "hook", alarm: alarmOf("a2", "T-2", "offline"), due: t0.Add(time.Hour)}) // quiet hours: not late
		addRow(t, db, rowSpec{id: "h1", channel: "mail", state: posfleet.NotificationHeld, alarm: alarmOf("a3", "T-3", "firmware_outdated"), due: t0.Add(time.Hour)})
		addRow(t, db, rowSpec{id: "s1", channel: "mail", state: posfleet.NotificationSuppressed, alarm: alarmOf("a4", "T-4", "offline")})
		addRow(t, db, rowSpec{id: "x1", channel: "hook", state: posfleet.NotificationSent, alarm: alarmOf("a5", "T-5", "offline")})
		for i, a := range []struct {
			state  string
			active bool
		}{{"open", true}, {"open", true}, {"open", false}, {"acknowledged", true}, {"resolved", false}} {
			_, err := db.ExecContext(ctx, `INSERT INTO alarms (id, tenant, terminal, kind, incident, urgent, merchant, region, state, active, opened_ms, updated_ms)
				VALUES ($1, 'acme', $2, 'offline', '', $3, '', '', $4, $5, $6, $6)`, fmt.Sprintf("al%d", i), fmt.Sprintf("T-%d", i), false, a.state, a.active, store.Millis(t0))
			if err != nil {
				t.Fatal(err)
			}
		}
		reg := prometheus.NewPedanticRegistry()
		o := options("a")
		o.Metrics = reg
		d := notify.NewDispatcher(db, &fakeSender{}, o)
		want := `
# HELP posfleet_alarms Alarms not resolved, by state (open, acknowledged, assigned) and whether their evidence is there (active).
# TYPE posfleet_alarms gauge
posfleet_alarms{active="false",state="acknowledged"} 0
posfleet_alarms{active="false",state="assigned"} 0
posfleet_alarms{active="false",state="open"} 1
posfleet_alarms{active="true",state="acknowledged"} 1
posfleet_alarms{active="true",state="assigned"} 0
posfleet_alarms{active="true",state="open"} 2
# HELP posfleet_notification_outbox_depth Notifications still to go, by channel (name), its type and state: pending, held (for a digest), suppressed (by the rate limit, for a summary).
# TYPE posfleet_notification_outbox_depth gauge
posfleet_notification_outbox_depth{channel="crew",channel_type="email",state="held"} 1
posfleet_notification_outbox_depth{channel="crew",channel_type="email",state="pending"} 0
posfleet_notification_outbox_depth{channel="crew",channel_type="email",state="suppressed"} 1
posfleet_notification_outbox_depth{channel="ops",channel_type="webhook",state="held"} 0
posfleet_notification_outbox_depth{channel="ops",channel_type="webhook",state="pending"} 2
posfleet_notification_outbox_depth{channel="ops",channel_type="webhook",state="suppressed"} 0
# HELP posfleet_notification_outbox_oldest_seconds How long the channel's oldest overdue notification (due, or failed before) has waited; 0 when none.
# TYPE posfleet_notification_outbox_oldest_seconds gauge
posfleet_notification_outbox_oldest_seconds{channel="crew"} 0
posfleet_notification_outbox_oldest_seconds{channel="ops"} 90
# HELP posfleet_notify_lease_held 1 while this process holds the notify lease and delivers notifications.
# TYPE posfleet_notify_lease_held gauge
posfleet_notify_lease_held 0
`
		names := []string{"posfleet_alarms", "posfleet_notification_outbox_depth", "posfleet_notification_outbox_oldest_seconds", "posfleet_notify_lease_held"}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
			t.Error(err)
		}
		step(t, d, t0.Add(-time.Hour)) // nothing is due yet: only the lease
		if !d.Held() {
			t.Fatal("lease not taken")
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP posfleet_notify_lease_held 1 while this process holds the notify lease and delivers notifications.
# TYPE posfleet_notify_lease_held gauge
posfleet_notify_lease_held 1
`), "posfleet_notify_lease_held"); err != nil {
			t.Error(err)
		}
		if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
			t.Errorf("lint: %v %v", probs, err)
		}
	})
}

// TestDispatchSlowChannel: a receiver that hangs costs its own channel
// one SendTimeout, counted as a failed attempt; the other channels are
// delivered in the same step.
func TestDispatchSlowChannel(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		addChannel(t, db, channelSpec{id: "slow"})
		addChannel(t, db, channelSpec{id: "fast"})
		addRow(t, db, rowSpec{id: "s1", channel: "slow", alarm: alarmOf("a1", "T-1", "tamper")})
		addRow(t, db, rowSpec{id: "f1", channel: "fast", alarm: alarmOf("a2", "T-2", "tamper"), created: t0.Add(time.Millisecond)})
		s := &fakeSender{}
		hang := func(ctx context.Context, tg notify.Target) error {
			if tg.ID == "slow" {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
		o := options("a")
		o.SendTimeout = 200 * time.Millisecond
		d := notify.NewDispatcher(db, ctxSender{s, hang}, o)
		start := time.Now()
		step(t, d, t0.Add(time.Second))
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("step took %s", took)
		}
		if ids := s.ids(); !slices.Equal(ids, []string{"f1"}) {
			t.Errorf("sent %v, want f1", ids)
		}
		if st := stateOf(t, db, "s1"); st.State != "pending" || st.Attempts != 1 || !strings.Contains(st.LastError, "deadline") {
			t.Errorf("s1: %+v", st)
		}
	})
}

// ctxSender runs gate (which may wait for the send's context) before s.
type ctxSender struct {
	s    *fakeSender
	gate func(context.Context, notify.Target) error
}

func (c ctxSender) Send(ctx context.Context, t notify.Target, m posfleet.NotifyMessage) error {
	if err := c.gate(ctx, t); err != nil {
		return err
	}
	return c.s.Send(ctx, t, m)
}
