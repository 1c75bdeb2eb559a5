package collector_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/influxdb"
	"github.com/posfleet/posfleet/influxdb/influxtest"
)

var term = posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0001"}

func testOptions(t *testing.T) collector.Options {
	opts := collector.DefaultOptions()
	opts.SpoolDir = filepath.Join(t.TempDir(), "spool")
	opts.BatchWait = 20 * time.Millisecond
	opts.RetryMin, opts.RetryMax = 20*time.Millisecond, 500*time.Millisecond
	return opts
}

func startInflux(t *testing.T) (*influxtest.Server, *influxdb.Store) {
	t.Helper()
	srv := influxtest.Start(t)
	st, err := influxdb.Open(influxdb.Config{URL: srv.URL, Bucket: influxtest.Bucket, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return srv, st
}

func newCollector(t *testing.T, opts collector.Options, w collector.PointWriter) *collector.Collector {
	t.Helper()
	c, err := collector.New(opts, influxdb.Encoder{}, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func hb(seq int64, ts time.Time) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"ts":%q,"battery_pct":80,"signal_dbm":-71,"net":"4g","host_rtt_ms":420,"paper":"ok","uptime_s":3600,"charging":false,"temp_c":36.5,"pending_txns":0}`, seq, ts.Format(time.RFC3339Nano))
}

// waitCount polls InfluxDB until measurement/field has want points or the
// deadline passes, and returns the last count.
func waitCount(t *testing.T, srv *influxtest.Server, measurement, field string, want int64) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		n, err = srv.Count(ctx, measurement, field)
		if err != nil {
			t.Fatal(err)
		}
		if n >= want {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

func TestEveryChannelStoredWithItsValues(t *testing.T) {
	srv, st := startInflux(t)
	c := newCollector(t, testOptions(t), st)
	ctx := context.Background()
	ts := time.Date(2026, 11, 22, 10, 42, 7, 0, time.UTC)
	msgs := []struct {
		ch      posfleet.Channel
		payload string
	}{
		{posfleet.ChannelHeartbeat, string(hb(1, ts))},
		{posfleet.ChannelFault, `{"seq":2,"ts":"2026-11-22T10:42:08Z","component":"printer","code":"PAPER_OUT","severity":"warning","state":"raised","detail":"roll empty"}`},
		{posfleet.ChannelFirmware, `{"seq":3,"ts":"2026-11-22T10:42:09Z","model":"A920","serial":"SN123","firmware":"2.4.1","app":"7.1","boot_reason":"update","update":{"target":"2.4.1","status":"installed"}}`},
		{posfleet.ChannelTxn, `{"seq":4,"ts":"2026-11-22T10:42:10Z","id":"tx-1","type":"sale","entry":"chip","currency":"CNY","amount_entered":1999,"amount_charged":2011,"result":"approved","rc":"00","host_ms":830,"receipt":"printed"}`},
		{posfleet.ChannelAck, `{"seq":5,"ts":"2026-11-22T10:42:11Z","cmd_id":"c-1","status":"done","detail":"rebooted"}`},
		{posfleet.ChannelStatus, `{"online":true}`},
	}
	for _, m := range msgs {
		if err := c.Accept(ctx, term, m.ch, []byte(m.payload)); err != nil {
			t.Fatalf("%s: %v", m.ch, err)
		}
	}
	if n := waitCount(t, srv, "status", "online", 1); n != 1 {
		t.Fatalf("status points = %d, want 1", n)
	}
	checks := []struct {
		measurement, field, want string
	}{
		{"heartbeat", "battery_pct", "80"},
		{"heartbeat", "signal_dbm", "-71"},
		{"heartbeat", "temp_c", "36.5"},
		{"heartbeat", "host_rtt_ms", "420"},
		{"heartbeat", "charging", "false"},
		{"fault", "code", "PAPER_OUT"},
		{"fault", "detail", "roll empty"},
		{"firmware", "firmware", "2.4.1"},
		{"firmware", "update_status", "installed"},
		{"txn", "amount_entered", "1999"},
		{"txn", "amount_charged", "2011"},
		{"txn", "rc", "00"},
		{"txn", "id", "tx-1"},
		{"ack", "cmd_id", "c-1"},
		{"status", "online", "true"},
	}
	for _, ck := range checks {
		t.Run(ck.measurement+"/"+ck.field, func(t *testing.T) {
			rows, err := srv.Flux(ctx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == %q and r._field == %q)`, influxtest.Bucket, ck.measurement, ck.field))
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 {
				t.Fatalf("rows = %d, want 1", len(rows))
			}
			if got := rows[0]["_value"]; got != ck.want {
				t.Errorf("value = %q, want %q", got, ck.want)
			}
			if rows[0]["tenant"] != "acme" || rows[0]["terminal"] != "T-0001" {
				t.Errorf("tags tenant=%q terminal=%q", rows[0]["tenant"], rows[0]["terminal"])
			}
		})
	}
	// The terminal's clock, not the server's, dates the point.
	rows, err := srv.Flux(ctx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "heartbeat" and r._field == "battery_pct")`, influxtest.Bucket))
	if err != nil || len(rows) != 1 {
		t.Fatalf("heartbeat rows: %v %v", rows, err)
	}
	got, _ := time.Parse(time.RFC3339Nano, rows[0]["_time"])
	if want := influxdb.PointTime(posfleet.Header{Seq: 1, TS: ts}); !got.Equal(want) {
		t.Errorf("heartbeat time = %v, want %v", got, want)
	}
	if rows[0]["net"] != "4g" || rows[0]["paper"] != "ok" {
		t.Errorf("heartbeat tags net=%q paper=%q", rows[0]["net"], rows[0]["paper"])
	}
}

func TestRejectedMessagesAreCountedNotStored(t *testing.T) {
	srv, st := startInflux(t)
	c := newCollector(t, testOptions(t), st)
	ctx := context.Background()
	big := `{"seq":9,"ts":"2026-11-22T10:00:00Z","detail":"` + strings.Repeat("x", posfleet.MaxPayloadBytes) + `"}`
	bad := []struct {
		name   string
		ch     posfleet.Channel
		body   string
		reason posfleet.Reason
	}{
		{"not json", posfleet.ChannelHeartbeat, `{"seq":1,`, posfleet.ReasonNotJSON},
		{"missing seq", posfleet.ChannelHeartbeat, `{"ts":"2026-11-22T10:00:00Z"}`, posfleet.ReasonMissingSeq},
		{"missing ts", posfleet.ChannelHeartbeat, `{"seq":2}`, posfleet.ReasonMissingTS},
		{"wrong type", posfleet.ChannelHeartbeat, `{"seq":3,"ts":"2026-11-22T10:00:00Z","battery_pct":"full"}`, posfleet.ReasonWrongType},
		{"out of range", posfleet.ChannelHeartbeat, `{"seq":4,"ts":"2026-11-22T10:00:00Z","battery_pct":101}`, posfleet.ReasonOutOfRange},
		{"too large", posfleet.ChannelFault, big, posfleet.ReasonTooLarge},
		{"unknown channel", posfleet.Channel("gps"), `{"seq":5,"ts":"2026-11-22T10:00:00Z"}`, posfleet.ReasonUnknownChannel},
		{"card data", posfleet.ChannelTxn, `{"seq":6,"ts":"2026-11-22T10:00:00Z","id":"4111111111111111","type":"sale","result":"approved"}`, posfleet.ReasonCardData},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			err := c.Accept(ctx, term, b.ch, []byte(b.body))
			var rej *posfleet.Rejection
			if !errors.As(err, &rej) || rej.Reason != b.reason {
				t.Fatalf("Accept = %v, want rejection %s", err, b.reason)
			}
		})
	}
	// A valid message after all that still goes through.
	if err := c.Accept(ctx, term, posfleet.ChannelHeartbeat, hb(7, time.Now())); err != nil {
		t.Fatal(err)
	}
	if n := waitCount(t, srv, "rejected", "count", int64(len(bad))); n != int64(len(bad)) {
		t.Fatalf("rejected points = %d, want %d", n, len(bad))
	}
	if n := waitCount(t, srv, "heartbeat", "seq", 1); n != 1 {
		t.Fatalf("heartbeat points = %d, want 1 (only the valid one)", n)
	}
	for _, m := range []string{"txn", "fault"} {
		if n, _ := srv.Count(ctx, m, "seq"); n != 0 {
			t.Errorf("%s points = %d, want 0", m, n)
		}
	}
	cnt := c.Counters(term)
	for _, b := range bad {
		if cnt.Rejected[b.reason] != 1 {
			t.Errorf("counter %s = %d, want 1", b.reason, cnt.Rejected[b.reason])
		}
	}
	recent := c.RecentRejections("acme", 100)
	if len(recent) != len(bad) || recent[0].Reason != posfleet.ReasonCardData {
		t.Errorf("recent rejections = %+v", recent)
	}
	if other := c.RecentRejections("other-tenant", 100); len(other) != 0 {
		t.Errorf("another tenant sees %d rejections", len(other))
	}
	// No trace of the card number anywhere in the store.
	rows, err := srv.Flux(ctx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z)`, influxtest.Bucket))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		for _, v := range r {
			if strings.Contains(v, "4111111111111111") {
				t.Fatalf("card number stored: %v", r)
			}
		}
	}
}

func TestDuplicatesDroppedAndGapsCounted(t *testing.T) {
	srv, st := startInflux(t)
	c := newCollector(t, testOptions(t), st)
	ctx := context.Background()
	ts := time.Now().UTC()
	for _, seq := range []int64{1, 2, 2, 3, 1, 7, 5, 5} {
		if err := c.Accept(ctx, term, posfleet.ChannelHeartbeat, hb(seq, ts.Add(time.Duration(seq)*time.Second))); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	// 1,2,3,7,5 are new; 2,1,5 are duplicates; 4..6 were a gap of 3 when 7 came.
	if n := waitCount(t, srv, "heartbeat", "seq", 5); n != 5 {
		t.Fatalf("stored %d heartbeats, want 5", n)
	}
	cnt := c.Counters(term)
	if cnt.Duplicates != 3 || cnt.Gaps != 3 {
		t.Errorf("duplicates=%d gaps=%d, want 3 and 3", cnt.Duplicates, cnt.Gaps)
	}
}

// TestStoreDownNothingLost stops InfluxDB for 30 s during a steady stream:
// every accepted message must be there exactly once afterwards.
func TestStoreDownNothingLost(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage")
	}
	srv, st := startInflux(t)
	c := newCollector(t, testOptions(t), st)
	ctx := context.Background()
	const terminals = 20
	var (
		mu       sync.Mutex
		accepted int64
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for i := range terminals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%04d", i)}
			ts := time.Now().UTC()
			for seq := int64(1); ; seq++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if err := c.Accept(ctx, ref, posfleet.ChannelHeartbeat, hb(seq, ts.Add(time.Duration(seq)*time.Millisecond))); err != nil {
					t.Errorf("accept: %v", err)
					return
				}
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(2 * time.Second)
	srv.Stop()
	time.Sleep(30 * time.Second)
	if err := c.Healthy(); err == nil {
		t.Error("collector healthy while InfluxDB is down")
	}
	if c.Stats().SpoolEntries == 0 {
		t.Error("nothing waiting in the spool during the outage")
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if n := waitCount(t, srv, "heartbeat", "seq", accepted); n != accepted {
		t.Fatalf("stored %d heartbeats, accepted %d", n, accepted)
	}
	t.Logf("%d messages from %d terminals, InfluxDB down 30 s: all stored once", accepted, terminals)
	if err := c.Healthy(); err != nil {
		t.Errorf("still unhealthy after recovery: %v", err)
	}
}

// TestSpoolSurvivesRestart closes the collector while the store is down and
// opens a new one on the same spool: it writes what the first one could not.
func TestSpoolSurvivesRestart(t *testing.T) {
	srv, st := startInflux(t)
	opts := testOptions(t)
	opts.FlushTimeout = 200 * time.Millisecond
	srv.Stop()
	c1, err := collector.New(opts, influxdb.Encoder{}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	base := time.Now().Add(-time.Minute)
	for seq := int64(1); seq <= 50; seq++ {
		if err := c1.Accept(ctx, term, posfleet.ChannelHeartbeat, hb(seq, base.Add(time.Duration(seq)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	c2 := newCollector(t, opts, st)
	// The duplicate filter came back from the spool: seq 50 again (a
	// redelivery: the same message) is dropped.
	if err := c2.Accept(ctx, term, posfleet.ChannelHeartbeat, hb(50, base.Add(50*time.Second))); err != nil {
		t.Fatal(err)
	}
	if n := waitCount(t, srv, "heartbeat", "seq", 50); n != 50 {
		t.Fatalf("stored %d, want 50", n)
	}
	if d := c2.Counters(term).Duplicates; d != 1 {
		t.Errorf("duplicates after restart = %d, want 1", d)
	}
}

// flakyWriter refuses any batch holding a line with "poison" the way
// InfluxDB refuses a bad line, and records what it stored.
type flakyWriter struct {
	mu     sync.Mutex
	stored []string
}

func (w *flakyWriter) WriteLines(_ context.Context, lines []byte) error {
	if strings.Contains(string(lines), "poison") {
		return &collector.BatchRejectedError{Err: errors.New("400 bad line")}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range strings.Split(strings.TrimSuffix(string(lines), "\n"), "\n") {
		w.stored = append(w.stored, l)
	}
	return nil
}

// TestRefusedLineGoesToDeadLetter: one line the store refuses must not
// block the spool nor take its batch-mates with it.
func TestRefusedLineGoesToDeadLetter(t *testing.T) {
	w := &flakyWriter{}
	opts := testOptions(t)
	opts.BatchWait = 300 * time.Millisecond // one batch for all
	c := newCollector(t, opts, w)
	ctx := context.Background()
	for seq := int64(1); seq <= 9; seq++ {
		body := hb(seq, time.Now())
		if seq == 5 {
			body = fmt.Appendf(nil, `{"seq":5,"ts":%q,"cmd_id":"poison","status":"done"}`, time.Now().Format(time.RFC3339))
			if err := c.Accept(ctx, term, posfleet.ChannelAck, body); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := c.Accept(ctx, term, posfleet.ChannelHeartbeat, body); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		n := len(w.stored)
		w.mu.Unlock()
		if n == 8 && c.Stats().SpoolEntries == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.stored) != 8 {
		t.Fatalf("stored %d lines, want 8", len(w.stored))
	}
	dl, err := os.ReadFile(filepath.Join(opts.SpoolDir, "dead-letter.lp"))
	if err != nil || !strings.Contains(string(dl), "poison") || strings.Count(string(dl), "\n") != 1 {
		t.Fatalf("dead letter file = %q, %v", dl, err)
	}
}

func TestAcceptAfterCloseFails(t *testing.T) {
	c := newCollector(t, testOptions(t), &flakyWriter{})
	c.Close()
	if err := c.Accept(context.Background(), term, posfleet.ChannelHeartbeat, hb(1, time.Now())); !errors.Is(err, collector.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want ErrClosed", err)
	}
}

func TestSpoolFullRefuses(t *testing.T) {
	opts := testOptions(t)
	opts.MaxSpoolBytes = 2000
	down := writerFunc(func(context.Context, []byte) error { return errors.New("connection refused") })
	c := newCollector(t, opts, down)
	ctx := context.Background()
	var err error
	for seq := int64(1); seq < 100 && err == nil; seq++ {
		err = c.Accept(ctx, term, posfleet.ChannelHeartbeat, hb(seq, time.Now()))
	}
	if !errors.Is(err, collector.ErrSpoolFull) {
		t.Fatalf("Accept with a full spool = %v, want ErrSpoolFull", err)
	}
}

type writerFunc func(context.Context, []byte) error

func (f writerFunc) WriteLines(ctx context.Context, b []byte) error { return f(ctx, b) }

// TestSecurityEvents: events are counted per provisioned terminal, kept
// among the latest for their tenant, and stored; made-up names are stored
// under _unknown and get no per-terminal state.
func TestSecurityEvents(t *testing.T) {
	srv, st := startInflux(t)
	opts := testOptions(t)
	opts.IsKnown = func(r posfleet.TerminalRef) bool { return r == term }
	c := newCollector(t, opts, st)
	now := time.Now()
	c.RecordSecurity(posfleet.SecurityEvent{Time: now, Kind: posfleet.SecurityAuthFailed, Terminal: term, Username: term.String(), Remote: "127.0.0.1:5000"})
	c.RecordSecurity(posfleet.SecurityEvent{Time: now, Kind: posfleet.SecurityPublishDenied, Terminal: term, Username: term.String(), Topic: "fleet/v1/acme/T-0002/hb"})
	ghost := posfleet.TerminalRef{Tenant: "acme", Terminal: "ghost"}
	c.RecordSecurity(posfleet.SecurityEvent{Time: now, Kind: posfleet.SecurityAuthFailed, Terminal: ghost, Username: "acme:ghost 4111111111111111"})

	cnt := c.Counters(term)
	if cnt.Security[posfleet.SecurityAuthFailed] != 1 || cnt.Security[posfleet.SecurityPublishDenied] != 1 {
		t.Errorf("terminal counters = %v", cnt.Security)
	}
	if g := c.Counters(ghost); len(g.Security) != 0 {
		t.Errorf("state kept for an unprovisioned name: %v", g.Security)
	}
	recent := c.RecentSecurity("acme", 10)
	if len(recent) != 3 || recent[0].Terminal != ghost || recent[0].Known || !recent[2].Known {
		t.Fatalf("recent = %+v", recent)
	}
	if strings.Contains(recent[0].Username, "4111") {
		t.Errorf("card-like number kept in a username: %q", recent[0].Username)
	}
	if n := waitCount(t, srv, "security", "count", 3); n != 3 {
		t.Fatalf("stored %d security events, want 3", n)
	}
	rows, err := srv.Flux(context.Background(), fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "security" and r._field == "count")`, influxtest.Bucket))
	if err != nil {
		t.Fatal(err)
	}
	byTerminal := map[string]int{}
	for _, r := range rows {
		byTerminal[r["terminal"]]++
	}
	if byTerminal["T-0001"] != 2 || byTerminal["_unknown"] != 1 {
		t.Errorf("stored by terminal: %v", byTerminal)
	}
}

// TestSubmitPipelined submits without waiting, as the broker does: answers
// come in submission order, a seq submitted twice while the first copy is
// still on its way is stored and fed to the health engine once, and Close
// answers everything handed over. Every observer sees each accepted
// message once. The same with SubmitTo, answered through a Completer.
func TestSubmitPipelined(t *testing.T) {
	t.Run("Submit", func(t *testing.T) { testSubmitPipelined(t, false) })
	t.Run("SubmitTo", func(t *testing.T) { testSubmitPipelined(t, true) })
}

// chanCompleter passes each tag completed without error to a channel.
type chanCompleter struct {
	t       *testing.T
	answers chan int
}

func (c chanCompleter) Complete(tag uint64, err error) {
	if err != nil {
		c.t.Errorf("submission %d answered %v", tag, err)
	}
	c.answers <- int(tag)
}

func testSubmitPipelined(t *testing.T, completer bool) {
	srv, st := startInflux(t)
	opts := testOptions(t)
	engine, cmds := &seqObserver{}, &seqObserver{}
	opts.Observers = []collector.Observer{engine, cmds}
	c := newCollector(t, opts, st)
	ctx := context.Background()
	ts := time.Now().UTC()
	seqs := []int64{1, 2, 3, 3, 4, 2, 6}
	answers := make(chan int, len(seqs))
	for i, seq := range seqs {
		payload := hb(seq, ts.Add(time.Duration(seq)*time.Second))
		var err error
		if completer {
			err = c.SubmitTo(ctx, term, posfleet.ChannelHeartbeat, payload, chanCompleter{t, answers}, uint64(i))
		} else {
			err = c.Submit(ctx, term, posfleet.ChannelHeartbeat, payload, func(err error) {
				if err != nil {
					t.Errorf("submission %d answered %v", i, err)
				}
				answers <- i
			})
		}
		if err != nil {
			t.Fatalf("Submit seq %d: %v", seq, err)
		}
	}
	// A duplicate already durable may be answered at once; everything else
	// comes in submission order.
	var got []int
	for range seqs {
		select {
		case i := <-answers:
			got = append(got, i)
		case <-time.After(10 * time.Second):
			t.Fatalf("answers so far %v, want %d", got, len(seqs))
		}
	}
	last := -1
	for _, i := range got {
		if seqs[i] == 2 && i == 5 {
			continue // seq 2 again: may overtake if seq 2 was durable by then
		}
		if i < last {
			t.Fatalf("answer order %v: submission %d after %d", got, i, last)
		}
		last = i
	}
	if n := waitCount(t, srv, "heartbeat", "seq", 5); n != 5 {
		t.Fatalf("stored %d heartbeats, want 5 (1,2,3,4,6)", n)
	}
	for name, o := range map[string]*seqObserver{"first observer": engine, "second observer": cmds} {
		if got := o.String(); got != "[1 2 3 4 6]" {
			t.Errorf("%s saw %v, want [1 2 3 4 6]", name, got)
		}
	}
	if cnt := c.Counters(term); cnt.Duplicates != 2 || cnt.Gaps != 1 {
		t.Errorf("duplicates=%d gaps=%d, want 2 and 1", cnt.Duplicates, cnt.Gaps)
	}
}

// TestSeqNeverDropsWhatWasNotStored: messages far below the highest seq that
// were never seen are stored, a terminal counting again from 1 (or sending
// one bogus seq far ahead) is not silenced, and only real copies are dropped.
func TestSeqNeverDropsWhatWasNotStored(t *testing.T) {
	base := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	at := func(sec int64) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	type msg struct {
		seq int64
		ts  time.Time
	}
	run := func(from, to int64, ts func(int64) time.Time) []msg {
		var out []msg
		for s := from; s <= to; s++ {
			out = append(out, msg{s, ts(s)})
		}
		return out
	}
	cases := []struct {
		name              string
		msgs              []msg
		stored, dups, rst int
	}{
		{"late messages far below the high mark", append(run(20000, 20099, at),
			msg{19990, at(19990)}, msg{19950, at(19950)}, msg{19900, at(19900)}, msg{19800, at(19800)},
			msg{19800, at(19800)}, msg{20050, at(20050)}), 104, 2, 0},
		{"one bogus seq far ahead, then the real ones", append(append(run(1, 10, at),
			msg{900001, at(11)}), run(11, 400, func(s int64) time.Time { return at(s + 1) })...), 401, 0, 1},
		{"outbox wiped: counting again from 1", append(append(run(1, 300, at),
			run(1, 50, func(s int64) time.Time { return at(10000 + s) })...), msg{20, at(10020)}), 350, 1, 1},
		// The filter starts over at a reset: a late copy from before it is
		// stored again, which the store keeps as one point.
		{"copy from before a reset", append(append(run(1, 300, at),
			run(1, 50, func(s int64) time.Time { return at(10000 + s) })...), msg{300, at(300)}), 351, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &flakyWriter{}
			c := newCollector(t, testOptions(t), w)
			ctx := context.Background()
			for _, m := range tc.msgs {
				if err := c.Accept(ctx, term, posfleet.ChannelHeartbeat, hb(m.seq, m.ts)); err != nil {
					t.Fatalf("seq %d: %v", m.seq, err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for c.Stats().SpoolEntries > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			w.mu.Lock()
			stored := len(w.stored)
			w.mu.Unlock()
			cnt := c.Counters(term)
			if stored != tc.stored || cnt.Duplicates != int64(tc.dups) || cnt.SeqResets != int64(tc.rst) {
				t.Errorf("stored %d, duplicates %d, resets %d; want %d, %d, %d", stored, cnt.Duplicates, cnt.SeqResets, tc.stored, tc.dups, tc.rst)
			}
		})
	}
}

// seqObserver is a collector.Observer that records the seqs it is given.
type seqObserver struct {
	mu   sync.Mutex
	seqs []int64
}

func (o *seqObserver) Observe(m *posfleet.Message) {
	o.mu.Lock()
	o.seqs = append(o.seqs, m.Header().Seq)
	o.mu.Unlock()
}

func (o *seqObserver) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprint(o.seqs)
}
