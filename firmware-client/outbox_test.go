package firmwareclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	firmwareclient "github.com/posfleet/posfleet/firmware-client"
)

func ptr[T any](v T) *T { return &v }

// offlineClient returns a client that is never run: everything it reports
// stays in its outbox.
func offlineClient(t *testing.T, dir string, mod func(*firmwareclient.Config)) *firmwareclient.Client {
	t.Helper()
	cfg := firmwareclient.Config{
		Broker: "tcp://127.0.0.1:1", Tenant: "acme", Terminal: "T-0001", Secret: "s",
		StoreDir:  dir,
		Inventory: posfleet.Inventory{Model: "A920", Firmware: "2.4.1"},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := firmwareclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sale(id string, amount int64) posfleet.Transaction {
	return posfleet.Transaction{
		ID: id, Type: posfleet.TxnSale, Entry: posfleet.EntryChip, Currency: "CNY",
		AmountEntered: ptr(amount), AmountCharged: ptr(amount),
		Result: posfleet.ResultApproved, RC: "00", HostMs: ptr(420), Receipt: posfleet.ReceiptPrinted,
	}
}

// TestReportsPassDecode: every kind of message the library writes is one
// the server accepts, with seq 1, 2, 3... and the fields as reported.
func TestReportsPassDecode(t *testing.T) {
	ctx := context.Background()
	c := offlineClient(t, t.TempDir(), nil)
	reports := []struct {
		ch     posfleet.Channel
		report func() error
	}{
		{posfleet.ChannelHeartbeat, func() error {
			return c.ReportHeartbeat(ctx, posfleet.Heartbeat{BatteryPct: ptr(80), Charging: ptr(false), TempC: ptr(38.5),
				SignalDBm: ptr(-91), Net: posfleet.Net4G, HostRTTMs: ptr(700), Paper: posfleet.PaperLow, PendingTxns: ptr(0)})
		}},
		{posfleet.ChannelFault, func() error {
			return c.RaiseFault(ctx, posfleet.Fault{Component: posfleet.ComponentPrinter, Code: "PAPER_OUT", Severity: posfleet.SeverityWarning, Detail: "no paper"})
		}},
		{posfleet.ChannelFault, func() error {
			return c.ClearFault(ctx, posfleet.Fault{Component: posfleet.ComponentPrinter, Code: "PAPER_OUT", Severity: posfleet.SeverityInfo})
		}},
		{posfleet.ChannelFirmware, func() error {
			return c.ReportInventory(ctx, posfleet.Inventory{Model: "A920", Serial: "SN-1", Firmware: "2.4.1", App: "7.1", BootReason: posfleet.BootPowerOn})
		}},
		{posfleet.ChannelTxn, func() error { return c.ReportTransaction(ctx, sale("S-1", 1999)) }},
		{posfleet.ChannelTxn, func() error {
			return c.ReportTransaction(ctx, posfleet.Transaction{ID: "R-1", Type: posfleet.TxnRefund, Currency: "CNY",
				AmountEntered: ptr[int64](5000), OriginalID: "S-1", OriginalAmount: ptr[int64](1999), Result: posfleet.ResultDeclined, RC: "13"})
		}},
	}
	for _, r := range reports {
		if err := r.report(); err != nil {
			t.Fatalf("%s: %v", r.ch, err)
		}
	}
	// A reboot command answered by a terminal without a Reboot function:
	// an ack rejected.
	firmwareclient.HandleCommand(c, "fleet/v1/acme/T-0001/cmd", []byte(`{"id":"C-1","type":"reboot"}`))

	msgs := firmwareclient.Outbox(c)
	if len(msgs) != len(reports)+1 {
		t.Fatalf("outbox holds %d messages, want %d", len(msgs), len(reports)+1)
	}
	for i, m := range msgs {
		t.Run(fmt.Sprintf("%d-%s", i+1, m.Channel), func(t *testing.T) {
			if m.Seq != int64(i+1) {
				t.Errorf("seq %d, want %d", m.Seq, i+1)
			}
			dm, err := posfleet.Decode(c.Ref(), m.Channel, m.Payload, time.Now())
			if err != nil {
				t.Fatalf("server would refuse %s: %v", m.Payload, err)
			}
			if h := dm.Header(); h.Seq != m.Seq || time.Since(h.TS) > time.Minute {
				t.Errorf("header %+v", h)
			}
			if i < len(reports) && m.Channel != reports[i].ch {
				t.Errorf("channel %s, want %s", m.Channel, reports[i].ch)
			}
			if dm.Txn != nil && !dm.Txn.Offline {
				t.Error("transaction reported while not connected is not marked offline")
			}
			if dm.Ack != nil && (dm.Ack.CmdID != "C-1" || dm.Ack.Status != posfleet.AckRejected) {
				t.Errorf("ack %+v, want C-1 rejected", dm.Ack)
			}
		})
	}
}

// TestReportRefused: what the server would reject is refused at once and
// never stored, with the server's reason.
func TestReportRefused(t *testing.T) {
	ctx := context.Background()
	c := offlineClient(t, t.TempDir(), nil)
	// A Luhn-valid 16-digit number built at test time, not a real card.
	pan := luhnComplete("400000123456789")
	cases := []struct {
		name   string
		report func() error
		reason posfleet.Reason
	}{
		{"card number in a transaction id", func() error { return c.ReportTransaction(ctx, sale(pan, 100)) }, posfleet.ReasonCardData},
		{"card number in a fault detail", func() error {
			return c.RaiseFault(ctx, posfleet.Fault{Component: posfleet.ComponentMSR, Code: "READ", Severity: posfleet.SeverityInfo, Detail: "card " + pan})
		}, posfleet.ReasonCardData},
		{"battery over 100", func() error { return c.ReportHeartbeat(ctx, posfleet.Heartbeat{BatteryPct: ptr(101)}) }, posfleet.ReasonOutOfRange},
		{"unknown component", func() error {
			return c.RaiseFault(ctx, posfleet.Fault{Component: "toaster", Code: "X", Severity: posfleet.SeverityInfo})
		}, posfleet.ReasonOutOfRange},
		{"transaction with an empty id", func() error { return c.ReportTransaction(ctx, sale("", 100)) }, posfleet.ReasonOutOfRange},
		{"detail too long", func() error {
			return c.RaiseFault(ctx, posfleet.Fault{Component: posfleet.ComponentApp, Code: "X", Severity: posfleet.SeverityInfo, Detail: strings.Repeat("x", 300)})
		}, posfleet.ReasonOutOfRange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.report()
			var rej *posfleet.Rejection
			if !errors.As(err, &rej) || rej.Reason != tc.reason {
				t.Fatalf("err = %v, want a %s rejection", err, tc.reason)
			}
			if strings.Contains(err.Error(), pan) {
				t.Error("the error repeats the card number")
			}
		})
	}
	if n := len(firmwareclient.Outbox(c)); n != 0 {
		t.Errorf("outbox holds %d refused messages", n)
	}
	if got := c.Stats().Refused; got != uint64(len(cases)) {
		t.Errorf("Stats.Refused = %d, want %d", got, len(cases))
	}
}

// luhnComplete appends the Luhn check digit to digits.
func luhnComplete(digits string) string {
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return digits + string(rune('0'+(10-sum%10)%10))
}

// TestSeqSurvivesRestart: a new client on the same store continues the seq
// where the last one stopped, and keeps what was not sent.
func TestSeqSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c1 := offlineClient(t, dir, nil)
	for i := range 3 {
		if err := c1.ReportTransaction(ctx, sale(fmt.Sprintf("S-%d", i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c1.ReportTransaction(ctx, sale("late", 1)); !errors.Is(err, firmwareclient.ErrClosed) {
		t.Errorf("report after Close: %v, want ErrClosed", err)
	}
	c2 := offlineClient(t, dir, nil)
	for i := range 2 {
		if err := c2.ReportHeartbeat(ctx, posfleet.Heartbeat{Net: fmt.Sprint([]string{"eth", "wifi"}[i])}); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []int64
	for _, m := range firmwareclient.Outbox(c2) {
		seqs = append(seqs, m.Seq)
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
		t.Errorf("seqs after restart %v, want [1 2 3 4 5]", seqs)
	}
	if s := c2.Stats(); s.Backlog != 5 || s.BacklogBytes == 0 {
		t.Errorf("backlog %d (%d bytes), want 5", s.Backlog, s.BacklogBytes)
	}
}

// TestOutboxFull: a full outbox gives up heartbeats first, then events,
// transactions last, and counts what it gave up.
func TestOutboxFull(t *testing.T) {
	ctx := context.Background()
	hb := func(c *firmwareclient.Client) error { return c.ReportHeartbeat(ctx, posfleet.Heartbeat{}) }
	fault := func(c *firmwareclient.Client) error {
		return c.RaiseFault(ctx, posfleet.Fault{Component: posfleet.ComponentPrinter, Code: "PAPER_OUT", Severity: posfleet.SeverityWarning})
	}
	n := 0
	txn := func(c *firmwareclient.Client) error {
		n++
		return c.ReportTransaction(ctx, sale(fmt.Sprintf("S-%d", n), 100))
	}
	type step struct {
		report func(*firmwareclient.Client) error
		times  int
	}
	cases := []struct {
		name  string
		steps []step
		// want: what remains, by channel, in seq order, and what was dropped
		want    string
		dropped firmwareclient.ChannelCounts
		errs    int // reports that returned an outbox-full error
	}{
		{"heartbeats make room for transactions", []step{{hb, 3}, {txn, 4}},
			"txn txn txn txn", firmwareclient.ChannelCounts{Heartbeat: 3}, 0},
		{"oldest heartbeat goes first", []step{{hb, 2}, {fault, 1}, {hb, 2}},
			"hb fault hb hb", firmwareclient.ChannelCounts{Heartbeat: 1}, 0},
		{"events go before transactions", []step{{fault, 2}, {txn, 3}},
			"fault txn txn txn", firmwareclient.ChannelCounts{Fault: 1}, 0},
		{"a heartbeat is not stored in an outbox full of transactions", []step{{txn, 4}, {hb, 1}},
			"txn txn txn txn", firmwareclient.ChannelCounts{Heartbeat: 1}, 1},
		{"transactions go last, oldest first", []step{{txn, 6}},
			"txn txn txn txn", firmwareclient.ChannelCounts{Txn: 2}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := offlineClient(t, t.TempDir(), func(cfg *firmwareclient.Config) {
				cfg.Limits = firmwareclient.Limits{MaxMessages: 4, MaxBytes: 1 << 20}
			})
			errs := 0
			for _, s := range tc.steps {
				for range s.times {
					if err := s.report(c); err != nil {
						errs++
					}
				}
			}
			var got []string
			for _, m := range firmwareclient.Outbox(c) {
				got = append(got, string(m.Channel))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("outbox %v, want %s", got, tc.want)
			}
			if d := c.Stats().Dropped; d != tc.dropped {
				t.Errorf("dropped %+v, want %+v", d, tc.dropped)
			}
			if errs != tc.errs {
				t.Errorf("%d reports failed, want %d", errs, tc.errs)
			}
		})
	}
	t.Run("byte limit", func(t *testing.T) {
		c := offlineClient(t, t.TempDir(), func(cfg *firmwareclient.Config) {
			cfg.Limits = firmwareclient.Limits{MaxMessages: 1000, MaxBytes: 16 << 10}
		})
		for i := range 200 {
			if err := c.ReportTransaction(ctx, sale(fmt.Sprintf("S-%d", i), 100)); err != nil {
				t.Fatal(err)
			}
		}
		s := c.Stats()
		if s.BacklogBytes > 16<<10 || s.Dropped.Txn == 0 || uint64(s.Backlog)+s.Dropped.Txn != 200 {
			t.Errorf("backlog %d messages, %d bytes, dropped %d: want at most 16 KiB and 200 in all", s.Backlog, s.BacklogBytes, s.Dropped.Txn)
		}
		msgs := firmwareclient.Outbox(c)
		if last := msgs[len(msgs)-1]; last.Seq != 200 {
			t.Errorf("newest kept seq %d, want 200", last.Seq)
		}
	})
}

// TestConfig: bad configurations are refused by New with a reason.
func TestConfig(t *testing.T) {
	good := firmwareclient.Config{Broker: "tcp://127.0.0.1:1883", Tenant: "acme", Terminal: "T-1", Secret: "s", StoreDir: t.TempDir()}
	cases := []struct {
		name string
		mod  func(*firmwareclient.Config)
		want string
	}{
		{"good", func(*firmwareclient.Config) {}, ""},
		{"ssl", func(c *firmwareclient.Config) { c.Broker = "ssl://127.0.0.1:8883" }, ""},
		{"http broker", func(c *firmwareclient.Config) { c.Broker = "http://127.0.0.1" }, "want tcp:// or ssl://"},
		{"no host", func(c *firmwareclient.Config) { c.Broker = "tcp://" }, "no host"},
		{"bad terminal id", func(c *firmwareclient.Config) { c.Terminal = "T 1" }, "invalid id"},
		{"no secret", func(c *firmwareclient.Config) { c.Secret = "" }, "no secret"},
		{"no store", func(c *firmwareclient.Config) { c.StoreDir = "" }, "no StoreDir"},
		{"tiny store", func(c *firmwareclient.Config) { c.Limits.MaxBytes = 100 }, "limits"},
		{"in flight over the dedup window", func(c *firmwareclient.Config) { c.InFlight = 100 }, "InFlight"},
		{"model without firmware", func(c *firmwareclient.Config) { c.Inventory.Model = "A920" }, "no Firmware"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			cfg.StoreDir = t.TempDir()
			tc.mod(&cfg)
			c, err := firmwareclient.New(cfg)
			if err == nil {
				c.Close()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
