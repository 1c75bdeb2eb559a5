package health_test

import (
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

const tenant = "acme"

func ref(id string) posfleet.TerminalRef { return posfleet.TerminalRef{Tenant: tenant, Terminal: id} }

func ptr[T any](v T) *T { return &v }

// term feeds one terminal's messages into an engine, stamped with the
// current time (the fake clock inside a synctest bubble).
type term struct {
	e   *health.Engine
	ref posfleet.TerminalRef
	seq int64
	n   int // transaction IDs
}

func newTerm(e *health.Engine, id string) *term { return &term{e: e, ref: ref(id)} }

func (t *term) header() posfleet.Header {
	t.seq++
	return posfleet.Header{Seq: t.seq, TS: time.Now().UTC()}
}

func (t *term) send(m *posfleet.Message) {
	m.Terminal = t.ref
	if m.Received.IsZero() {
		m.Received = time.Now().UTC()
	}
	t.e.Observe(m)
}

// hb sends a healthy heartbeat changed by mods.
func (t *term) hb(mods ...func(*posfleet.Heartbeat)) {
	h := &posfleet.Heartbeat{Header: t.header(), UptimeS: ptr[int64](3600), BatteryPct: ptr(80), Charging: ptr(false),
		TempC: ptr(35.0), SignalDBm: ptr(-70), Net: posfleet.Net4G, HostRTTMs: ptr(250), Paper: posfleet.PaperOK, PendingTxns: ptr(0)}
	for _, m := range mods {
		m(h)
	}
	t.send(&posfleet.Message{Channel: posfleet.ChannelHeartbeat, Heartbeat: h})
}

// txn sends a sale of 1000 approved and printed, changed by mods.
func (t *term) txn(mods ...func(*posfleet.Transaction)) string {
	t.n++
	x := &posfleet.Transaction{Header: t.header(), ID: t.ref.Terminal + "-" + itoa(t.n), Type: posfleet.TxnSale,
		Entry: posfleet.EntryChip, Currency: "CNY", AmountEntered: ptr[int64](1000), AmountCharged: ptr[int64](1000),
		Result: posfleet.ResultApproved, RC: "00", HostMs: ptr(300), Receipt: posfleet.ReceiptPrinted}
	for _, m := range mods {
		m(x)
	}
	t.send(&posfleet.Message{Channel: posfleet.ChannelTxn, Txn: x})
	return x.ID
}

func (t *term) txns(n int, mods ...func(*posfleet.Transaction)) {
	for range n {
		t.txn(mods...)
	}
}

func (t *term) fault(component, code, severity, state string) {
	t.send(&posfleet.Message{Channel: posfleet.ChannelFault, Fault: &posfleet.Fault{Header: t.header(),
		Component: component, Code: code, Severity: severity, State: state}})
}

func (t *term) inv(model, fw string, upd *posfleet.UpdateAttempt) {
	t.send(&posfleet.Message{Channel: posfleet.ChannelFirmware, Inventory: &posfleet.Inventory{Header: t.header(),
		Model: model, Serial: "S-" + t.ref.Terminal, Firmware: fw, App: "1.0.0", BootReason: posfleet.BootPowerOn, Update: upd}})
}

func (t *term) status(online bool) {
	t.send(&posfleet.Message{Channel: posfleet.ChannelStatus, Status: &posfleet.Status{Online: online}})
}

// reject tells the engine the collector refused one of t's messages.
func (t *term) reject(r posfleet.Reason) {
	t.e.ObserveRejection(posfleet.RejectionEvent{Time: time.Now().UTC(), Terminal: t.ref, Channel: posfleet.ChannelTxn, Reason: r})
}

func (t *term) rejects(n int, r posfleet.Reason) {
	for range n {
		t.reject(r)
		time.Sleep(time.Second)
	}
}

func (t *term) has(f posfleet.FlagName) bool {
	h, ok := t.e.Terminal(t.ref)
	return ok && h.Has(f)
}

func (t *term) flag(tb testing.TB, f posfleet.FlagName) posfleet.Flag {
	tb.Helper()
	h, ok := t.e.Terminal(t.ref)
	if !ok {
		tb.Fatalf("terminal %s unknown", t.ref)
	}
	for _, fl := range h.Flags {
		if fl.Name == f {
			return fl
		}
	}
	tb.Fatalf("terminal %s: no %s flag; flags %v", t.ref, f, h.Flags)
	return posfleet.Flag{}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Transaction modifiers.
func result(r, rc string) func(*posfleet.Transaction) {
	return func(x *posfleet.Transaction) { x.Result, x.RC = r, rc }
}

func charged(v int64) func(*posfleet.Transaction) {
	return func(x *posfleet.Transaction) { x.AmountCharged = ptr(v) }
}

func receipt(r string) func(*posfleet.Transaction) {
	return func(x *posfleet.Transaction) { x.Receipt = r }
}

func refund(amount, original int64) func(*posfleet.Transaction) {
	return func(x *posfleet.Transaction) {
		x.Type, x.AmountEntered, x.AmountCharged = posfleet.TxnRefund, ptr(amount), ptr(amount)
		x.OriginalID, x.OriginalAmount = "orig", ptr(original)
	}
}

var (
	timeout       = result(posfleet.ResultTimeout, "")
	terminalError = result(posfleet.ResultError, "")
)
