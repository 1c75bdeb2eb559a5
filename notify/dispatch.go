package notify

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/alarm"
	"github.com/posfleet/posfleet/store"
)

// LeaseName is the lease the dispatchers share: one of them delivers at a
// time, so that two replicas never send the same notification at once.
const LeaseName = "notify"

// maxParallel bounds the channels delivered to at once in one step.
const maxParallel = 8

// maxErrorLen bounds a notification's last_error: a receiver may answer a
// failure with a whole HTML page.
const maxErrorLen = 500

// DispatcherOptions configures a Dispatcher. Zero values take their
// DefaultDispatcherOptions value.
type DispatcherOptions struct {
	// Holder names this dispatcher in the lease; "" is hostname:pid:random.
	Holder string
	// TTL is how long the lease lasts after its last renewal: how soon a
	// standby takes over from a holder that died without releasing it.
	TTL time.Duration
	// Every is how often the outbox is polled (and the lease renewed).
	Every time.Duration
	// RetryMin and RetryMax bound the backoff between attempts: it
	// doubles from RetryMin at each failure up to RetryMax, with jitter.
	RetryMin, RetryMax time.Duration
	// MaxAge is how long a notification is tried before it is given up
	// (state failed, kept for the record).
	MaxAge time.Duration
	// SendTimeout bounds one send, so that a receiver that hangs holds up
	// its own channel only, and a step ends before the lease expires.
	SendTimeout time.Duration
	// Batch is how many due notifications one step takes.
	Batch int
	// BaseURL is the public URL of the web UI: the links in messages
	// start with it ("https://posfleet.example.com").
	BaseURL string
	Logger  *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// Metrics, when set, gets the delivery counters and the outbox and
	// alarm gauges (metrics.go).
	Metrics prometheus.Registerer
	// Tenants, when set, gives a tenant's default language and time zone
	// (the user store's, table tenant_settings): the language of a channel
	// that has none, and the zone of one whose routes name none.
	Tenants TenantDefaults
}

// TenantDefaults reads a tenant's defaults ("" for none set).
type TenantDefaults interface {
	TenantDefaults(ctx context.Context, tenant string) (posfleet.TenantSettings, error)
}

// DefaultDispatcherOptions returns the defaults.
func DefaultDispatcherOptions() DispatcherOptions {
	return DispatcherOptions{
		// 15 s: a standby takes over within seconds of a crash, while a
		// step (sends bounded by SendTimeout) always ends well within it.
		TTL: 15 * time.Second,
		// 1 s: the issue asks for a tamper's webhook within 5 s of the
		// alarm; polling an indexed (state, due_ms) range is cheap.
		Every: time.Second,
		// 5 s: a receiver restarting or a brief network hiccup is over by
		// the first retry...
		RetryMin: 5 * time.Second,
		// ...and 5 m: a receiver down for long still gets its backlog
		// within minutes of coming back, without being hammered meanwhile.
		RetryMax: 5 * time.Minute,
		// 72 h: a receiver broken over a long weekend still gets what it
		// missed; older than that a notification is news nobody needs.
		MaxAge: 72 * time.Hour,
		// 10 s: longer than any healthy webhook, SMTP or chat API answer,
		// and shorter than TTL, so a step stuck on a dead receiver ends
		// before the lease it renewed runs out.
		SendTimeout: 10 * time.Second,
		// 100: a burst (an outage's folded alarms go as one) drains in a
		// few steps while one step stays short.
		Batch: 100,
	}
}

func (o DispatcherOptions) withDefaults() DispatcherOptions {
	d := DefaultDispatcherOptions()
	if o.Holder == "" {
		host, _ := os.Hostname()
		o.Holder = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), newID()[:8])
	}
	for _, p := range []struct{ v, d *time.Duration }{
		{&o.TTL, &d.TTL}, {&o.Every, &d.Every}, {&o.RetryMin, &d.RetryMin}, {&o.RetryMax, &d.RetryMax},
		{&o.MaxAge, &d.MaxAge}, {&o.SendTimeout, &d.SendTimeout},
	} {
		if *p.v <= 0 {
			*p.v = *p.d
		}
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.Batch < 1 {
		o.Batch = d.Batch
	}
	o.BaseURL = strings.TrimSuffix(o.BaseURL, "/")
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Dispatcher delivers the notifications outbox while it holds the lease
// "notify"; a standby only renews its claim.
//
// Each step it bundles the held notifications whose digest is due into
// one digest per channel, bundles the notifications a channel's rate
// limit suppressed into one summary once the channel is below its limit
// again, and sends the due pending notifications, oldest first: in order
// within a channel, channels in parallel. Digests and summaries are
// notifications rows themselves, written in the transaction that bundles
// their parts, so they are as durable as any.
//
// A failed send is retried with exponential backoff; while a receiver
// fails, its channel's later notifications wait behind the failed one
// (order is kept). A notification refused for good (PermanentError)
// waits RetryMax between tries and does not hold the channel up: the
// refusal may be of this message only. A notification older than MaxAge
// is given up: state failed, its last error kept.
//
// A disabled channel is paused, not dropped: its notifications wait
// (tried again every RetryMax) and go out when it is enabled again, or are
// given up at MaxAge. A deleted channel's notifications fail at once.
type Dispatcher struct {
	db      *store.DB
	send    Sender
	opts    DispatcherOptions
	log     *slog.Logger
	metrics *metrics

	lease store.Lease
	held  atomic.Bool
}

// NewDispatcher returns a dispatcher of db's outbox through s; Run
// delivers.
func NewDispatcher(db *store.DB, s Sender, opts DispatcherOptions) *Dispatcher {
	opts = opts.withDefaults()
	d := &Dispatcher{db: db, send: s, opts: opts,
		log:   opts.Logger.With("component", "notify", "holder", opts.Holder),
		lease: store.Lease{Name: LeaseName, Holder: opts.Holder, TTL: opts.TTL}}
	d.metrics = newMetrics(d, opts.Metrics)
	return d
}

// Held reports whether this dispatcher held the lease at its last step.
func (d *Dispatcher) Held() bool { return d.held.Load() }

// Holder is this dispatcher's name in the lease.
func (d *Dispatcher) Holder() string { return d.opts.Holder }

// Run steps every Every until ctx ends, then releases the lease, so that
// a standby takes over at once.
func (d *Dispatcher) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.Every)
	defer t.Stop()
	for {
		if err := d.Step(ctx, d.opts.Now()); err != nil && ctx.Err() == nil {
			d.log.Warn("notifications step failed; trying again at the next", "err", err)
		}
		select {
		case <-ctx.Done():
			end, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := d.db.Release(end, &d.lease); err != nil {
				d.log.Warn("notify lease not released; a standby takes over when it expires", "err", err)
			}
			d.held.Store(false)
			return nil
		case <-t.C:
		}
	}
}

// Step renews (or tries to take) the lease and, while it is held, makes
// the due digests and summaries and delivers the due notifications. Run
// calls it; tests drive it with their own clock. A failed send is not an
// error of Step (it is recorded on the notification); a database failure
// is.
func (d *Dispatcher) Step(ctx context.Context, now time.Time) error {
	fence := d.lease.Fence
	held, err := d.db.Acquire(ctx, &d.lease, now)
	if err != nil && ctx.Err() != nil {
		// Stopping, not lost: Run releases the lease under its fence, so
		// that a standby need not wait for the TTL.
		d.lease.Fence = fence
		return ctx.Err()
	}
	if err != nil {
		d.held.Store(false)
		return fmt.Errorf("notify: lease: %w", err)
	}
	if held != d.held.Load() {
		if held {
			d.log.Info("notify lease taken: delivering notifications", "fence", d.lease.Fence)
		} else {
			d.log.Info("notify lease held by another replica: standing by")
		}
		d.held.Store(held)
	}
	if !held {
		return nil
	}
	errDigest := d.bundleDigests(ctx, now)
	errSummary := d.bundleSummaries(ctx, now)
	errDeliver := d.deliver(ctx, now)
	err = errors.Join(errDigest, errSummary, errDeliver)
	if errors.Is(err, store.ErrFenced) {
		d.log.Info("notify lease lost to another replica during a step")
		d.held.Store(false)
	}
	return err
}

// row is one notifications row as the dispatcher reads it.
type row struct {
	ID, Tenant, Channel, AlarmID string
	Event                        posfleet.NotificationEvent
	Body                         string
	Created, Due                 int64
	Attempts                     int
	LastError                    string
}

const rowCols = `id, tenant, channel_id, alarm_id, event, body, created_ms, due_ms, attempts, last_error`

func scanRow(r interface{ Scan(...any) error }) (row, error) {
	var n row
	var event string
	err := r.Scan(&n.ID, &n.Tenant, &n.Channel, &n.AlarmID, &event, &n.Body, &n.Created, &n.Due, &n.Attempts, &n.LastError)
	n.Event = posfleet.NotificationEvent(event)
	return n, err
}

// bundle is the body of a digest or summary row, what it carries:
// {"alarms": [Alarm...]} or {"held": N}. (A raised or resolved row's body
// is the Alarm itself; a test row's is {"by": user}.) The bundled rows
// name it in their bundle column.
type bundle struct {
	Alarms []posfleet.Alarm `json:"alarms,omitempty"`
	Held   int              `json:"held,omitempty"`
}

// loadChannel reads a channel with its write-only parts (the alarm
// store's ChannelTarget); ok is false when there is none.
func loadChannel(ctx context.Context, db *store.DB, id string) (t Target, ok bool, err error) {
	ch, rawURL, secret, err := (&alarm.Store{DB: db}).ChannelTarget(ctx, id)
	if posfleet.ErrorKind(err) == posfleet.NotFound {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("notify: %w", err)
	}
	return Target{NotifyChannel: ch, URL: rawURL, Secret: secret}, true, nil
}

// target reads a channel to send to, with its readers' language and time
// zone: the channel's language, else its tenant's default; the zone of its
// first route that names one (a route's quiet hours and digest are in
// it), else its tenant's default zone, else the language's
// (locale.DefaultZone). A failure to read the routes or the tenant's
// defaults is logged: a message in the default zone beats none.
func (d *Dispatcher) target(ctx context.Context, id string) (Target, bool, error) {
	t, ok, err := loadChannel(ctx, d.db, id)
	if err != nil || !ok {
		return t, ok, err
	}
	routes, err := (&alarm.Store{DB: d.db}).Routes(ctx, t.Tenant)
	if err != nil {
		d.log.Warn("routes of a channel not read; its messages show times in its tenant's zone", "channel_id", id, "err", err)
	}
	for _, rt := range routes {
		if rt.Channel == t.ID && rt.TimeZone != "" {
			t.TimeZone = rt.TimeZone
			break
		}
	}
	if d.opts.Tenants != nil && (t.Language == "" || t.TimeZone == "") {
		ts, err := d.opts.Tenants.TenantDefaults(ctx, t.Tenant)
		if err != nil {
			d.log.Warn("tenant defaults not read; the channel's messages use the defaults", "tenant", t.Tenant, "err", err)
		}
		if t.Language == "" {
			t.Language = ts.Language
		}
		if t.TimeZone == "" {
			t.TimeZone = ts.TimeZone
		}
	}
	return t, true, nil
}

// bundleDigests turns each channel's held notifications whose digest is
// due into one digest notification, due at once.
func (d *Dispatcher) bundleDigests(ctx context.Context, now time.Time) error {
	chans, err := d.channelsWith(ctx, `SELECT DISTINCT channel_id FROM notifications WHERE state = 'held' AND due_ms <= $1`, store.Millis(now))
	if err != nil {
		return fmt.Errorf("notify: digests: %w", err)
	}
	var errs []error
	for _, ch := range chans {
		errs = append(errs, d.bundleDigest(ctx, ch, now))
	}
	return errors.Join(errs...)
}

func (d *Dispatcher) bundleDigest(ctx context.Context, chID string, now time.Time) error {
	var id string
	var n int
	err := d.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := d.lease.Check(ctx, tx, d.db.Dialect); err != nil {
			return err
		}
		q := `SELECT ` + rowCols + ` FROM notifications WHERE channel_id = $1 AND state = 'held' AND due_ms <= $2 ORDER BY created_ms, id`
		if d.db.Dialect == store.Postgres {
			q += ` FOR UPDATE`
		}
		parts, err := queryRows(ctx, tx, q, chID, store.Millis(now))
		if err != nil || len(parts) == 0 {
			return err
		}
		// Each alarm once, as of its latest notification (raised, then
		// resolved before the digest: the digest says resolved).
		var b bundle
		at := map[string]int{}
		for _, p := range parts {
			var a posfleet.Alarm
			if err := json.Unmarshal([]byte(p.Body), &a); err != nil {
				d.log.Warn("held notification with an unreadable alarm left out of its digest", "id", p.ID, "err", err)
				continue
			}
			key := a.ID
			if key == "" {
				key = p.ID
			}
			if i, ok := at[key]; ok {
				b.Alarms[i] = a
				continue
			}
			at[key] = len(b.Alarms)
			b.Alarms = append(b.Alarms, a)
		}
		id, n = newID(), len(parts)
		if err := insertBundle(ctx, tx, id, parts[0].Tenant, chID, posfleet.NotifyDigest, b, now, store.Millis(now)); err != nil {
			return err
		}
		return markBundled(ctx, tx, parts, id)
	})
	if err != nil {
		return fmt.Errorf("notify: digest for channel %s: %w", chID, err)
	}
	if n > 0 {
		d.log.Debug("digest made", "id", id, "channel", chID, "notifications", n)
	}
	return nil
}

// bundleSummaries makes, for each channel whose rate limit suppressed
// notifications and which is below its limit again, one summary of them,
// due before anything else of the channel.
func (d *Dispatcher) bundleSummaries(ctx context.Context, now time.Time) error {
	chans, err := d.channelsWith(ctx, `SELECT DISTINCT channel_id FROM notifications WHERE state = 'suppressed' AND due_ms <= $1`, store.Millis(now))
	if err != nil {
		return fmt.Errorf("notify: summaries: %w", err)
	}
	var errs []error
	for _, chID := range chans {
		errs = append(errs, d.bundleSummary(ctx, chID, now))
	}
	return errors.Join(errs...)
}

func (d *Dispatcher) bundleSummary(ctx context.Context, chID string, now time.Time) error {
	ch, ok, err := loadChannel(ctx, d.db, chID)
	if err != nil {
		return err
	}
	if ok && !ch.Enabled {
		return nil // paused: summarized once it is enabled again
	}
	if ok && ch.RatePerHour > 0 {
		sent, err := d.sentLastHour(ctx, chID, now)
		if err != nil {
			return err
		}
		if sent >= ch.RatePerHour {
			return nil
		}
	}
	err = d.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := d.lease.Check(ctx, tx, d.db.Dialect); err != nil {
			return err
		}
		q := `SELECT ` + rowCols + ` FROM notifications WHERE channel_id = $1 AND state = 'suppressed' AND due_ms <= $2 ORDER BY created_ms, id`
		if d.db.Dialect == store.Postgres {
			q += ` FOR UPDATE`
		}
		parts, err := queryRows(ctx, tx, q, chID, store.Millis(now))
		if err != nil || len(parts) == 0 {
			return err
		}
		if !ok {
			// A deleted channel: nothing to summarize to.
			for _, p := range parts {
				if _, err := tx.ExecContext(ctx, `UPDATE notifications SET state = 'failed', last_error = 'channel deleted' WHERE id = $1`, p.ID); err != nil {
					return err
				}
			}
			return nil
		}
		due := parts[0].Due
		for _, p := range parts {
			due = min(due, p.Due)
		}
		// Due as early as the oldest it stands for: sent before the
		// channel's newer notifications, in the order they happened.
		id := newID()
		if err := insertBundle(ctx, tx, id, parts[0].Tenant, chID, posfleet.NotifySummary, bundle{Held: len(parts)}, now, due); err != nil {
			return err
		}
		return markBundled(ctx, tx, parts, id)
	})
	if err != nil {
		return fmt.Errorf("notify: summary for channel %s: %w", chID, err)
	}
	return nil
}

func (d *Dispatcher) channelsWith(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func queryRows(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, query string, args ...any) ([]row, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		n, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func insertBundle(ctx context.Context, tx *sql.Tx, id, tenant, chID string, event posfleet.NotificationEvent, b bundle, now time.Time, due int64) error {
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO notifications (id, tenant, channel_id, alarm_id, event, body, state, created_ms, due_ms)
		VALUES ($1, $2, $3, '', $4, $5, 'pending', $6, $7)`, id, tenant, chID, string(event), string(body), store.Millis(now), due)
	return err
}

func markBundled(ctx context.Context, tx *sql.Tx, parts []row, bundleID string) error {
	for _, p := range parts {
		if _, err := tx.ExecContext(ctx, `UPDATE notifications SET state = 'bundled', bundle = $2 WHERE id = $1`, p.ID, bundleID); err != nil {
			return err
		}
	}
	return nil
}

// sentLastHour counts what the channel was sent in the hour before now,
// for its rate limit ("send test" is not counted: it is asked for).
func (d *Dispatcher) sentLastHour(ctx context.Context, chID string, now time.Time) (int, error) {
	var n int
	err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM notifications WHERE channel_id = $1 AND state = 'sent' AND sent_ms >= $2 AND event <> 'test'`,
		chID, store.Millis(now.Add(-time.Hour))).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("notify: rate of channel %s: %w", chID, err)
	}
	return n, nil
}

// deliver sends a batch of the due pending notifications, oldest first,
// each channel's in order, channels in parallel.
func (d *Dispatcher) deliver(ctx context.Context, now time.Time) error {
	due, err := queryRows(ctx, d.db, `SELECT `+rowCols+` FROM notifications WHERE state = 'pending' AND due_ms <= $1
		ORDER BY due_ms, created_ms, id LIMIT $2`, store.Millis(now), d.opts.Batch)
	if err != nil {
		return fmt.Errorf("notify: due notifications: %w", err)
	}
	var order []string
	byChannel := map[string][]row{}
	for _, n := range due {
		if _, ok := byChannel[n.Channel]; !ok {
			order = append(order, n.Channel)
		}
		byChannel[n.Channel] = append(byChannel[n.Channel], n)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, maxParallel)
	)
	for _, chID := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := d.deliverChannel(ctx, chID, byChannel[chID], now); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// limited reports whether the rate limit applies to ev: the messages
// that stand for others (summaries, digests) and tests go out anyway, or
// a summary would wait for itself.
func limited(ev posfleet.NotificationEvent) bool {
	return ev == posfleet.NotifyRaised || ev == posfleet.NotifyResolved
}

func (d *Dispatcher) deliverChannel(ctx context.Context, chID string, rows []row, now time.Time) error {
	ch, ok, err := d.target(ctx, chID)
	if err != nil {
		return err
	}
	typ := string(ch.Type)
	if !ok {
		typ = "unknown"
	}
	sent := -1 // this hour's count, read when first needed
	for i, n := range rows {
		switch {
		case now.Sub(store.Time(n.Created)) > d.opts.MaxAge:
			reason := fmt.Sprintf("given up after %s and %d attempts", d.opts.MaxAge, n.Attempts)
			if n.LastError != "" {
				reason += ": " + n.LastError
			}
			if err := d.giveUp(ctx, n, typ, reason); err != nil {
				return err
			}
			continue
		case !ok:
			if err := d.giveUp(ctx, n, typ, "channel deleted"); err != nil {
				return err
			}
			continue
		case !ch.Enabled:
			// Paused: every due notification of the channel waits.
			return d.pause(ctx, rows[i:], now)
		}
		if ch.RatePerHour > 0 && limited(n.Event) {
			if sent < 0 {
				if sent, err = d.sentLastHour(ctx, chID, now); err != nil {
					return err
				}
			}
			if sent >= ch.RatePerHour {
				if _, err := d.db.ExecContext(ctx, `UPDATE notifications SET state = 'suppressed' WHERE id = $1 AND state = 'pending'`, n.ID); err != nil {
					return fmt.Errorf("notify: suppress %s: %w", n.ID, err)
				}
				continue
			}
		}
		m, err := d.message(n)
		if err != nil {
			if err := d.giveUp(ctx, n, typ, err.Error()); err != nil {
				return err
			}
			continue
		}
		if n.Attempts > 0 {
			d.metrics.retried(typ)
		}
		sctx, cancel := context.WithTimeout(ctx, d.opts.SendTimeout)
		errSend := d.send.Send(sctx, ch, m)
		cancel()
		if errSend == nil {
			// Only now: a crash before this line sends it again, with
			// the same ID (at least once).
			if _, err := d.db.ExecContext(ctx, `UPDATE notifications SET state = 'sent', sent_ms = $2, attempts = attempts + 1
				WHERE id = $1 AND state = 'pending'`, n.ID, store.Millis(now)); err != nil {
				return fmt.Errorf("notify: %s sent, not marked (it will be sent again): %w", n.ID, err)
			}
			d.metrics.sent(typ)
			sent++
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err() // stopping: not the receiver's fault
		}
		d.metrics.failed(typ)
		permanent := IsPermanent(errSend)
		wait := d.backoff(n.Attempts+1, permanent)
		msg := truncate(redact(errSend.Error(), ch))
		next := store.Millis(now.Add(wait))
		d.log.Warn("notification not delivered; retrying", "id", n.ID, "channel", ch.Name, "channel_type", typ,
			"attempts", n.Attempts+1, "retry_in", wait.String(), "permanent", permanent, "err", msg)
		if _, err := d.db.ExecContext(ctx, `UPDATE notifications SET attempts = attempts + 1, last_error = $2, due_ms = $3
			WHERE id = $1 AND state = 'pending'`, n.ID, msg, next); err != nil {
			return fmt.Errorf("notify: failure of %s: %w", n.ID, err)
		}
		if permanent {
			continue // refused this message: the next may go through
		}
		// The receiver is down: the channel's later notifications wait
		// behind this one, so that they arrive in order.
		if _, err := d.db.ExecContext(ctx, `UPDATE notifications SET due_ms = $2
			WHERE channel_id = $1 AND state = 'pending' AND due_ms < $2`, chID, next); err != nil {
			return fmt.Errorf("notify: hold channel %s back: %w", chID, err)
		}
		return nil
	}
	return nil
}

// pause puts a disabled channel's due notifications off by RetryMax.
func (d *Dispatcher) pause(ctx context.Context, rows []row, now time.Time) error {
	next := store.Millis(now.Add(d.opts.RetryMax))
	for _, n := range rows {
		if _, err := d.db.ExecContext(ctx, `UPDATE notifications SET due_ms = $2, last_error = 'channel disabled'
			WHERE id = $1 AND state = 'pending'`, n.ID, next); err != nil {
			return fmt.Errorf("notify: pause %s: %w", n.ID, err)
		}
	}
	return nil
}

func (d *Dispatcher) giveUp(ctx context.Context, n row, typ, reason string) error {
	if _, err := d.db.ExecContext(ctx, `UPDATE notifications SET state = 'failed', last_error = $2 WHERE id = $1 AND state = 'pending'`,
		n.ID, truncate(reason)); err != nil {
		return fmt.Errorf("notify: give %s up: %w", n.ID, err)
	}
	d.metrics.givenUp(typ)
	d.log.Warn("notification given up", "id", n.ID, "channel_id", n.Channel, "attempts", n.Attempts, "reason", reason)
	return nil
}

// backoff is the wait after the attempt-th failure: RetryMin doubled at
// each failure up to RetryMax, the upper half of it at random (so that
// the notifications of a receiver that was down do not all come back at
// the same instant); RetryMax for a permanent refusal.
func (d *Dispatcher) backoff(attempt int, permanent bool) time.Duration {
	if permanent {
		return d.opts.RetryMax
	}
	w := d.opts.RetryMin
	for i := 1; i < attempt && w < d.opts.RetryMax; i++ {
		w *= 2
	}
	w = min(w, d.opts.RetryMax)
	return w/2 + rand.N(w/2+1)
}

// message builds what the channel renders from a notification.
func (d *Dispatcher) message(n row) (posfleet.NotifyMessage, error) {
	m := posfleet.NotifyMessage{ID: n.ID, Event: n.Event, Tenant: n.Tenant, Time: store.Time(n.Created)}
	switch n.Event {
	case posfleet.NotifyDigest, posfleet.NotifySummary:
		var b bundle
		if err := json.Unmarshal([]byte(n.Body), &b); err != nil {
			return m, fmt.Errorf("unreadable %s body: %v", n.Event, err)
		}
		m.Alarms, m.Held = b.Alarms, b.Held
		m.URL = d.opts.BaseURL + "/alarms"
	case posfleet.NotifyTest:
		m.URL = d.opts.BaseURL + "/notifications"
	default:
		var a posfleet.Alarm
		if err := json.Unmarshal([]byte(n.Body), &a); err != nil {
			return m, fmt.Errorf("unreadable alarm: %v", err)
		}
		if a.ID == "" {
			a.ID = n.AlarmID
		}
		m.Alarm = &a
		m.URL = d.alarmPage(a)
		m.AlarmURL = d.opts.BaseURL + "/alarms/" + url.PathEscape(a.ID)
	}
	return m, nil
}

// alarmPage is the page that shows what an alarm is about: its
// terminal's, the incidents', or for a burst the list of the alarms
// folded into it.
func (d *Dispatcher) alarmPage(a posfleet.Alarm) string {
	if a.Kind == posfleet.AlarmKindBurst {
		return d.opts.BaseURL + "/alarms?" + url.Values{"parent": {a.ID}, "state": {"all"}}.Encode()
	}
	if a.Kind == posfleet.AlarmKindCampaign {
		return d.opts.BaseURL + "/campaigns/" + url.PathEscape(a.Incident)
	}
	if a.Kind == posfleet.AlarmKindIncident || a.Terminal == "" {
		return d.opts.BaseURL + "/incidents"
	}
	return d.opts.BaseURL + "/terminals/" + url.PathEscape(a.Tenant) + "/" + url.PathEscape(a.Terminal)
}

// Test sends a test message to a channel at once (not through the
// outbox, even when the channel is disabled: testing one before enabling
// it is the point) and returns the receiver's refusal, so that "send
// test" shows it. The attempt is kept as a sent or failed notification.
// by is who asked (logged).
func (d *Dispatcher) Test(ctx context.Context, channelID, by string) error {
	ch, ok, err := d.target(ctx, channelID)
	if err != nil {
		return err
	}
	if !ok {
		return posfleet.Errorf(posfleet.NotFound, "channel_not_found", "no channel %q", channelID)
	}
	now := d.opts.Now()
	m := posfleet.NotifyMessage{ID: newID(), Event: posfleet.NotifyTest, Tenant: ch.Tenant,
		URL: d.opts.BaseURL + "/notifications", Time: now}
	sctx, cancel := context.WithTimeout(ctx, d.opts.SendTimeout)
	errSend := d.send.Send(sctx, ch, m)
	cancel()
	typ := string(ch.Type)
	state, sentMs, lastErr := "sent", store.Millis(now), ""
	if errSend != nil {
		state, sentMs, lastErr = "failed", 0, truncate(redact(errSend.Error(), ch))
		d.metrics.failed(typ)
	} else {
		d.metrics.sent(typ)
	}
	d.log.Info("test notification", "id", m.ID, "channel", ch.Name, "by", by, "state", state, "err", lastErr)
	body, _ := json.Marshal(struct {
		By string `json:"by"`
	}{by})
	if _, err := d.db.ExecContext(ctx, `INSERT INTO notifications (id, tenant, channel_id, alarm_id, event, body, state, created_ms, due_ms, attempts, last_error, sent_ms)
		VALUES ($1, $2, $3, '', 'test', $4, $5, $6, $6, 1, $7, $8)`,
		m.ID, ch.Tenant, ch.ID, string(body), state, store.Millis(now), lastErr, sentMs); err != nil {
		d.log.Warn("test notification not recorded", "id", m.ID, "err", err)
	}
	if errSend != nil {
		// The message is shown to the user who asked; the detail keeps
		// the refusal (PermanentError) for errors.As, redacted as well.
		return &posfleet.Error{Kind: posfleet.Unavailable, Code: "not_delivered",
			Message: fmt.Sprintf("the test message to %s was not delivered: %s", ch.Name, lastErr),
			Err:     &redactedError{text: lastErr, err: errSend}}
	}
	return nil
}

// redact takes a channel's URL (chat robots carry their token in it) and
// secret out of an error's text: it is stored and shown, they are
// write-only.
func redact(s string, t Target) string {
	if t.URL != "" {
		hint := "(the channel's URL)"
		if u, err := url.Parse(t.URL); err == nil && u.Host != "" {
			hint = u.Scheme + "://" + u.Host + "/…"
		}
		s = strings.ReplaceAll(s, t.URL, hint)
		if u, err := url.Parse(t.URL); err == nil && u.RawQuery != "" {
			s = strings.ReplaceAll(s, u.RawQuery, "…")
		}
	}
	if len(t.Secret) >= 4 {
		s = strings.ReplaceAll(s, t.Secret, "…")
	}
	return s
}

// redactedError is a sender's error with its text redacted.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

func truncate(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	s = s[:maxErrorLen]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// newID returns a new notification ID: 128 random bits in hex, like the
// alarm package's.
func newID() string {
	var b [16]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
