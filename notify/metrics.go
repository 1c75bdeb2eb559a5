package notify

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// scrapeTimeout bounds the queries of one scrape: a slow database must
// not make /metrics hang.
const scrapeTimeout = 2 * time.Second

// outboxStates are the states of notifications still to go, the outbox
// depth's state label.
var outboxStates = []posfleet.NotificationState{posfleet.NotificationPending, posfleet.NotificationHeld, posfleet.NotificationSuppressed}

// metrics counts deliveries (counters, by channel type: a handful of
// values) and reads the outbox and the alarms from the database at each
// scrape (gauges by channel: channels are few, set up by hand), so that
// every replica reports the same depth whoever holds the lease.
type metrics struct {
	d                               *Dispatcher
	sentC, failedC, retriedC, upC   *prometheus.CounterVec
	depth, oldest, alarms, leaseNow *prometheus.Desc
}

func newMetrics(d *Dispatcher, reg prometheus.Registerer) *metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"channel_type"})
	}
	m := &metrics{d: d,
		sentC:    counter("posfleet_notifications_sent_total", "Notifications the receiver accepted (tests included), by channel type."),
		failedC:  counter("posfleet_notifications_failed_total", "Delivery attempts that failed (each is retried unless given up), by channel type."),
		retriedC: counter("posfleet_notifications_retried_total", "Delivery attempts of notifications that had failed before, by channel type."),
		upC:      counter("posfleet_notifications_given_up_total", "Notifications given up (older than the maximum age, or their channel deleted), by channel type."),
		depth: prometheus.NewDesc("posfleet_notification_outbox_depth",
			"Notifications still to go, by channel (name), its type and state: pending, held (for a digest), suppressed (by the rate limit, for a summary).",
			[]string{"channel", "channel_type", "state"}, nil),
		oldest: prometheus.NewDesc("posfleet_notification_outbox_oldest_seconds",
			"How long the channel's oldest overdue notification (due, or failed before) has waited; 0 when none.",
			[]string{"channel"}, nil),
		alarms: prometheus.NewDesc("posfleet_alarms",
			"Alarms not resolved, by state (open, acknowledged, assigned) and whether their evidence is there (active).",
			[]string{"state", "active"}, nil),
		leaseNow: prometheus.NewDesc("posfleet_notify_lease_held",
			"1 while this process holds the notify lease and delivers notifications.", nil, nil),
	}
	for _, t := range posfleet.NotifyChannelTypes {
		for _, c := range []*prometheus.CounterVec{m.sentC, m.failedC, m.retriedC, m.upC} {
			c.WithLabelValues(string(t))
		}
	}
	if reg != nil {
		reg.MustRegister(m.sentC, m.failedC, m.retriedC, m.upC, m)
	}
	return m
}

func (m *metrics) sent(typ string)    { m.sentC.WithLabelValues(typ).Inc() }
func (m *metrics) failed(typ string)  { m.failedC.WithLabelValues(typ).Inc() }
func (m *metrics) retried(typ string) { m.retriedC.WithLabelValues(typ).Inc() }
func (m *metrics) givenUp(typ string) { m.upC.WithLabelValues(typ).Inc() }

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.depth
	ch <- m.oldest
	ch <- m.alarms
	ch <- m.leaseNow
}

// Collect implements prometheus.Collector: the gauges, read from the
// database. A failed query leaves its gauges out of this scrape (logged)
// rather than failing the whole of /metrics.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	held := 0.0
	if m.d.Held() {
		held = 1
	}
	ch <- prometheus.MustNewConstMetric(m.leaseNow, prometheus.GaugeValue, held)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if err := m.collectOutbox(ctx, ch); err != nil {
		m.d.log.Warn("outbox metrics not read", "err", err)
	}
	if err := m.collectAlarms(ctx, ch); err != nil {
		m.d.log.Warn("alarm metrics not read", "err", err)
	}
}

type chanLabels struct{ name, typ string }

func (m *metrics) collectOutbox(ctx context.Context, ch chan<- prometheus.Metric) error {
	db := m.d.db
	labels := map[string]chanLabels{}
	rows, err := db.QueryContext(ctx, `SELECT id, name, type FROM channels`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var l chanLabels
		if err := rows.Scan(&id, &l.name, &l.typ); err != nil {
			rows.Close()
			return err
		}
		labels[id] = l
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	of := func(id string) chanLabels {
		if l, ok := labels[id]; ok {
			return l
		}
		return chanLabels{id, "unknown"} // deleted; its rows fail at the next step
	}

	// Two tenants may name a channel alike: their series are summed.
	type depthKey struct {
		chanLabels
		state string
	}
	depth := map[depthKey]float64{}
	oldest := map[string]float64{}
	for _, l := range labels {
		for _, s := range outboxStates {
			depth[depthKey{l, string(s)}] = 0
		}
		oldest[l.name] = 0
	}
	rows, err = db.QueryContext(ctx, `SELECT channel_id, state, COUNT(*) FROM notifications
		WHERE state IN ('pending', 'held', 'suppressed') GROUP BY channel_id, state`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, state string
		var n int64
		if err := rows.Scan(&id, &state, &n); err != nil {
			rows.Close()
			return err
		}
		depth[depthKey{of(id), state}] += float64(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	// Overdue: due now, or failed before (its due is the next retry).
	// A notification waiting for its quiet hours to end is not late, so
	// it counts from when it was due; a retried one from its creation
	// (its first due is not kept).
	now := m.d.opts.Now()
	rows, err = db.QueryContext(ctx, `SELECT channel_id, MIN(CASE WHEN attempts = 0 THEN due_ms ELSE created_ms END) FROM notifications
		WHERE state = 'pending' AND (due_ms <= $1 OR attempts > 0) GROUP BY channel_id`, store.Millis(now))
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var since int64
		if err := rows.Scan(&id, &since); err != nil {
			rows.Close()
			return err
		}
		age := max(now.Sub(store.Time(since)).Seconds(), 0)
		name := of(id).name
		oldest[name] = max(oldest[name], age)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for k, v := range depth {
		ch <- prometheus.MustNewConstMetric(m.depth, prometheus.GaugeValue, v, k.name, k.typ, k.state)
	}
	for name, v := range oldest {
		ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, v, name)
	}
	return nil
}

func (m *metrics) collectAlarms(ctx context.Context, ch chan<- prometheus.Metric) error {
	type key struct {
		state  string
		active bool
	}
	n := map[key]float64{}
	for _, s := range posfleet.AlarmStates {
		if s != posfleet.AlarmResolved {
			n[key{string(s), true}], n[key{string(s), false}] = 0, 0
		}
	}
	rows, err := m.d.db.QueryContext(ctx, `SELECT state, active, COUNT(*) FROM alarms WHERE state <> 'resolved' GROUP BY state, active`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k key
		var c int64
		if err := rows.Scan(&k.state, &k.active, &c); err != nil {
			return err
		}
		n[k] += float64(c)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for k, v := range n {
		active := "false"
		if k.active {
			active = "true"
		}
		ch <- prometheus.MustNewConstMetric(m.alarms, prometheus.GaugeValue, v, k.state, active)
	}
	return nil
}
