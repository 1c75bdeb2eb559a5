package journal

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/store"
)

// EventWriter writes the collector's security events and rejections to
// the database in batches: the collector's EventSink. Rejection and
// Security never block (the broker's packet path calls them): they queue,
// and a goroutine writes what is queued, one transaction a batch. A
// flood is already folded by the collector's aggregation windows; should
// the database stall, what does not fit in the queue is dropped and
// counted (Dropped).
type EventWriter struct {
	db    *store.DB
	log   *slog.Logger
	queue chan event
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	// dropped counts events not written (queue full or a failed write).
	dropped atomic.Int64
}

var _ collector.EventSink = (*EventWriter)(nil)

// event is one queued security event or rejection.
type event struct {
	rej *posfleet.RejectionEvent
	sec *posfleet.SecurityRecord
	// flushed, when set, is closed once what came before is written (Flush).
	flushed chan struct{}
}

// Bounds of the event writer.
const (
	// eventQueue: events waiting for the writer. The aggregation windows
	// store at most one event per source and window, and the collector
	// aggregates at most 10,000 sources of each kind by default: room for
	// both kinds' first events of a flood from everywhere at once (the
	// writer keeps about 12,000 events a second on SQLite, 37,000 on
	// PostgreSQL); only a stalled database fills it. About 200 bytes each.
	eventQueue = 20_000
	// eventBatch: the most events written in one transaction.
	eventBatch = 500
)

// NewEventWriter starts a writer on db; log may be nil. Close writes what
// is queued and stops it.
func NewEventWriter(db *store.DB, log *slog.Logger) *EventWriter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &EventWriter{db: db, log: log.With("component", "journal"), queue: make(chan event, eventQueue), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Rejection queues a rejection (or a window's summary of them).
func (w *EventWriter) Rejection(ev posfleet.RejectionEvent) { w.put(event{rej: &ev}) }

// Security queues a security record (or a window's summary of them).
func (w *EventWriter) Security(rec posfleet.SecurityRecord) { w.put(event{sec: &rec}) }

func (w *EventWriter) put(e event) {
	select {
	case w.queue <- e:
	default:
		if w.dropped.Add(1)%1000 == 1 {
			w.log.Warn("security events or rejections not kept: the database is behind", "dropped", w.dropped.Load())
		}
	}
}

// Dropped is how many events were not written since the start.
func (w *EventWriter) Dropped() int64 { return w.dropped.Load() }

// Close writes what is queued (at most timeout long) and stops the writer.
func (w *EventWriter) Close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// Flush waits until what was queued before it is written, or ctx ends.
func (w *EventWriter) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case w.queue <- event{flushed: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *EventWriter) run() {
	defer close(w.done)
	batch := make([]event, 0, eventBatch)
	for {
		select {
		case e := <-w.queue:
			batch = append(batch[:0], e)
			batch = w.gather(batch)
			w.write(batch)
		case <-w.stop:
			deadline := time.Now().Add(timeout)
			for len(w.queue) > 0 && time.Now().Before(deadline) {
				batch = w.gather(batch[:0])
				w.write(batch)
			}
			return
		}
	}
}

// gather adds what is queued to batch, up to eventBatch.
func (w *EventWriter) gather(batch []event) []event {
	for len(batch) < eventBatch {
		select {
		case e := <-w.queue:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

func (w *EventWriter) write(batch []event) {
	defer func() {
		for _, e := range batch {
			if e.flushed != nil {
				close(e.flushed)
			}
		}
	}()
	var rej, sec []any // the rows' values, rejCols and secCols each
	for _, e := range batch {
		switch {
		case e.rej != nil:
			r := e.rej
			// The collector redacted what the terminal chose already; the
			// terminal's own name was authenticated. Redact again all the
			// same: card data must never reach the database.
			rej = append(rej, newID(), posfleet.Redact(r.Terminal.Tenant), posfleet.Redact(r.Terminal.Terminal), store.Millis(r.Time),
				posfleet.Redact(string(r.Channel)), string(r.Reason), posfleet.Redact(r.Field), max(r.Count, 1))
		case e.sec != nil:
			s := e.sec.SecurityEvent.Redacted()
			sec = append(sec, newID(), s.Terminal.Tenant, s.Terminal.Terminal, store.Millis(s.Time),
				string(s.Kind), s.Username, s.Topic, s.Remote, e.sec.Known, max(e.sec.Count, 1))
		}
	}
	n := len(rej)/len(rejCols) + len(sec)/len(secCols)
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := w.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := insertRows(ctx, tx, w.db.Dialect, "rejections", rejCols, rej); err != nil {
			return err
		}
		return insertRows(ctx, tx, w.db.Dialect, "security_events", secCols, sec)
	})
	if err != nil {
		w.dropped.Add(int64(n))
		w.log.Error("security events and rejections not kept", "events", n, "err", err)
	}
}

// The columns of the event tables, in the order write lays out values.
var (
	rejCols = []string{"id", "tenant", "terminal", "at_ms", "channel", "reason", "field", "count"}
	secCols = []string{"id", "tenant", "terminal", "at_ms", "kind", "username", "topic", "remote", "known", "count"}
)

// rowsPerInsert bounds the rows of one INSERT: 100 rows of 10 values
// stay far below both engines' limits on parameters.
const rowsPerInsert = 100

// insertRows inserts values (len(cols) a row) into table, rowsPerInsert
// rows a statement.
func insertRows(ctx context.Context, tx *sql.Tx, d store.Dialect, table string, cols []string, values []any) error {
	width := len(cols)
	for len(values) > 0 {
		rows := min(len(values)/width, rowsPerInsert)
		q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " + d.Values(rows, width)
		if _, err := tx.ExecContext(ctx, q, values[:rows*width]...); err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		values = values[rows*width:]
	}
	return nil
}

// Events reads the security events and rejections of the database for
// the web (web.Events): every replica shows the same. Counters are a
// terminal's message counters, which only a collector has (in memory,
// since its start): CountersOf, nil for zero counters.
type Events struct {
	DB         *store.DB
	CountersOf func(posfleet.TerminalRef) posfleet.MessageCounts
	Log        *slog.Logger
}

// Counters returns ref's message counters (see Events.CountersOf).
func (e Events) Counters(ref posfleet.TerminalRef) posfleet.MessageCounts {
	if e.CountersOf == nil {
		return posfleet.MessageCounts{}
	}
	return e.CountersOf(ref)
}

func (e Events) logErr(msg string, err error) {
	if e.Log != nil {
		e.Log.Error(msg, "err", err)
	}
}

// RecentRejections returns a tenant's ("" for all) newest n rejections,
// newest first; nil when the database fails (logged).
func (e Events) RecentRejections(tenant string, n int) []posfleet.RejectionEvent {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := RecentRejections(ctx, e.DB, tenant, n)
	if err != nil {
		e.logErr("rejections not read", err)
	}
	return out
}

// RecentSecurity returns the newest n security events naming a tenant (""
// for all), newest first; nil when the database fails (logged).
func (e Events) RecentSecurity(tenant string, n int) []posfleet.SecurityRecord {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := RecentSecurity(ctx, e.DB, tenant, n)
	if err != nil {
		e.logErr("security events not read", err)
	}
	return out
}

// TerminalRejections returns one terminal's newest n rejections, newest
// first; nil when the database fails (logged).
func (e Events) TerminalRejections(ref posfleet.TerminalRef, n int) []posfleet.RejectionEvent {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rows, err := e.DB.QueryContext(ctx, rejectionCols+`WHERE tenant = $2 AND terminal = $3 ORDER BY at_ms DESC LIMIT $1`, n, ref.Tenant, ref.Terminal)
	out, err := scanRejections(rows, err)
	if err != nil {
		e.logErr("rejections not read", err)
	}
	return out
}

// TerminalSecurity returns the newest n security events naming one
// provisioned terminal, newest first; nil when the database fails (logged).
func (e Events) TerminalSecurity(ref posfleet.TerminalRef, n int) []posfleet.SecurityRecord {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rows, err := e.DB.QueryContext(ctx, securityCols+`WHERE tenant = $2 AND terminal = $3 AND known ORDER BY at_ms DESC LIMIT $1`, n, ref.Tenant, ref.Terminal)
	out, err := scanSecurity(rows, err)
	if err != nil {
		e.logErr("security events not read", err)
	}
	return out
}

const (
	rejectionCols = `SELECT tenant, terminal, at_ms, channel, reason, field, count FROM rejections `
	securityCols  = `SELECT tenant, terminal, at_ms, kind, username, topic, remote, known, count FROM security_events `
)

// RecentRejections returns a tenant's ("" for all) newest n rejections,
// newest first.
func RecentRejections(ctx context.Context, db *store.DB, tenant string, n int) ([]posfleet.RejectionEvent, error) {
	const cols = rejectionCols
	var rows *sql.Rows
	var err error
	if tenant == "" {
		rows, err = db.QueryContext(ctx, cols+`ORDER BY at_ms DESC LIMIT $1`, n)
	} else {
		rows, err = db.QueryContext(ctx, cols+`WHERE tenant = $2 ORDER BY at_ms DESC LIMIT $1`, n, tenant)
	}
	return scanRejections(rows, err)
}

func scanRejections(rows *sql.Rows, err error) ([]posfleet.RejectionEvent, error) {
	if err != nil {
		return nil, fmt.Errorf("journal: rejections: %w", err)
	}
	defer rows.Close()
	var out []posfleet.RejectionEvent
	for rows.Next() {
		var (
			r       posfleet.RejectionEvent
			at      int64
			ch, rsn string
		)
		if err := rows.Scan(&r.Terminal.Tenant, &r.Terminal.Terminal, &at, &ch, &rsn, &r.Field, &r.Count); err != nil {
			return nil, fmt.Errorf("journal: rejections: %w", err)
		}
		r.Time, r.Channel, r.Reason = store.Time(at), posfleet.Channel(ch), posfleet.Reason(rsn)
		out = append(out, r)
	}
	return out, rows.Err()
}

// RecentSecurity returns the newest n security events naming a tenant (""
// for all), newest first.
func RecentSecurity(ctx context.Context, db *store.DB, tenant string, n int) ([]posfleet.SecurityRecord, error) {
	const cols = securityCols
	var rows *sql.Rows
	var err error
	if tenant == "" {
		rows, err = db.QueryContext(ctx, cols+`ORDER BY at_ms DESC LIMIT $1`, n)
	} else {
		rows, err = db.QueryContext(ctx, cols+`WHERE tenant = $2 ORDER BY at_ms DESC LIMIT $1`, n, tenant)
	}
	return scanSecurity(rows, err)
}

func scanSecurity(rows *sql.Rows, err error) ([]posfleet.SecurityRecord, error) {
	if err != nil {
		return nil, fmt.Errorf("journal: security events: %w", err)
	}
	defer rows.Close()
	var out []posfleet.SecurityRecord
	for rows.Next() {
		var (
			r    posfleet.SecurityRecord
			at   int64
			kind string
		)
		if err := rows.Scan(&r.Terminal.Tenant, &r.Terminal.Terminal, &at, &kind, &r.Username, &r.Topic, &r.Remote, &r.Known, &r.Count); err != nil {
			return nil, fmt.Errorf("journal: security events: %w", err)
		}
		r.Time, r.Kind = store.Time(at), posfleet.SecurityKind(kind)
		out = append(out, r)
	}
	return out, rows.Err()
}
