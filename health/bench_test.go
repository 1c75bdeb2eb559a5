package health_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// traffic generates realistic messages for a set of terminals, reusing one
// message of each kind so that only what the engine keeps stays allocated.
type traffic struct {
	refs  []posfleet.TerminalRef
	hb    posfleet.Heartbeat
	txn   posfleet.Transaction
	fault posfleet.Fault
	inv   posfleet.Inventory
	m     posfleet.Message
	base  time.Time
	n     int
}

func newTraffic(tenants, terminals, offset int) *traffic {
	tr := &traffic{base: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
	tenantNames := make([]string, tenants)
	for i := range tenantNames {
		tenantNames[i] = fmt.Sprintf("tenant%d", i)
	}
	for i := range terminals {
		tr.refs = append(tr.refs, posfleet.TerminalRef{Tenant: tenantNames[i%tenants], Terminal: fmt.Sprintf("T%07d", offset+i)})
	}
	tr.hb = posfleet.Heartbeat{UptimeS: ptr[int64](3600), BatteryPct: ptr(70), Charging: ptr(false), TempC: ptr(38.5),
		SignalDBm: ptr(-80), Net: posfleet.Net4G, HostRTTMs: ptr(400), Paper: posfleet.PaperOK, PendingTxns: ptr(0)}
	tr.txn = posfleet.Transaction{ID: "x", Type: posfleet.TxnSale, Entry: posfleet.EntryTap, Currency: "CNY",
		AmountEntered: ptr[int64](2500), AmountCharged: ptr[int64](2500), HostMs: ptr(600)}
	return tr
}

// message k of terminal i: an inventory first, then a heartbeat every fifth
// message and transactions in between, with faults and problems on a
// realistic share of the terminals.
func (tr *traffic) message(i, k int) *posfleet.Message {
	tr.n++
	ref := tr.refs[i]
	now := tr.base.Add(time.Duration(k) * 12 * time.Second)
	h := posfleet.Header{Seq: int64(k + 1), TS: now}
	tr.m = posfleet.Message{Terminal: ref, Received: now}
	switch {
	case k == 0:
		tr.inv = posfleet.Inventory{Header: h, Model: "A920", Serial: "S1", Firmware: "2.4.1", App: "1.2.0", BootReason: posfleet.BootPowerOn}
		if i%3 == 0 {
			tr.inv.Firmware = "2.5.1"
		}
		tr.m.Channel, tr.m.Inventory = posfleet.ChannelFirmware, &tr.inv
	case k%5 == 0:
		tr.hb.Header = h
		*tr.hb.SignalDBm = -80
		if i%30 == 0 {
			*tr.hb.SignalDBm = -110
		}
		tr.m.Channel, tr.m.Heartbeat = posfleet.ChannelHeartbeat, &tr.hb
	case k == 7 && i%10 == 0:
		tr.fault = posfleet.Fault{Header: h, Component: posfleet.ComponentPrinter, Code: "PAPER_OUT",
			Severity: posfleet.SeverityWarning, State: posfleet.FaultRaised}
		if i%100 == 0 {
			tr.fault.Component, tr.fault.Code = posfleet.ComponentSecureElement, "TAMPER"
		}
		tr.m.Channel, tr.m.Fault = posfleet.ChannelFault, &tr.fault
	default:
		t := &tr.txn
		t.Header = h
		t.ID = "x"
		t.Result, t.RC, t.Receipt = posfleet.ResultApproved, "00", posfleet.ReceiptPrinted
		*t.AmountCharged = 2500
		switch {
		case i%20 == 0 && k%4 == 0:
			t.Result, t.RC = posfleet.ResultError, ""
			t.ID = strconv.Itoa(tr.n)
		case k%17 == 0:
			t.Result, t.RC = posfleet.ResultDeclined, "51"
		case i%50 == 0 && k == 9:
			*t.AmountCharged = 2515
			t.ID = strconv.Itoa(tr.n)
		case i%40 == 0 && k%11 == 0:
			t.Receipt = posfleet.ReceiptFailed
			t.ID = strconv.Itoa(tr.n)
		}
		tr.m.Channel, tr.m.Txn = posfleet.ChannelTxn, t
	}
	return &tr.m
}

// perTerminal is how many messages each terminal sends to reach a steady
// state: a full transaction ring and a full heartbeat ring.
const perTerminal = 80

func feedFleet(e *health.Engine, tr *traffic) {
	for k := range perTerminal {
		for i := range tr.refs {
			e.Observe(tr.message(i, k))
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

const benchTerminals = 100_000

// BenchmarkMemoryPerTerminal feeds 100,000 terminals to a steady state and
// reports the engine's heap per terminal. Run it with -benchtime=1x.
func BenchmarkMemoryPerTerminal(b *testing.B) {
	for b.Loop() {
		tr := newTraffic(10, benchTerminals, 0)
		before := heapInUse()
		e := health.New(health.Config{})
		feedFleet(e, tr)
		after := heapInUse()
		b.ReportMetric(float64(after-before)/benchTerminals, "bytes/terminal")
		if fs := e.FleetSummary(""); fs.Total != benchTerminals {
			b.Fatalf("terminals = %d", fs.Total)
		}
		runtime.KeepAlive(e)
	}
}

// BenchmarkMemoryPerTerminalAllSignals is BenchmarkMemoryPerTerminal with
// every optional signal sent: the four wear counters and a location in
// each heartbeat, the host in each transaction.
func BenchmarkMemoryPerTerminalAllSignals(b *testing.B) {
	for b.Loop() {
		tr := newTraffic(10, benchTerminals, 0)
		tr.hb.Prints, tr.hb.CardInsertions, tr.hb.BatteryCycles, tr.hb.BatteryHealthPct = ptr[int64](52_000), ptr[int64](31_000), ptr[int64](210), ptr(88)
		tr.hb.Lat, tr.hb.Lon = ptr(31.2304), ptr(121.4737)
		tr.txn.Host = "cup-sh"
		before := heapInUse()
		e := health.New(health.Config{})
		feedFleet(e, tr)
		after := heapInUse()
		b.ReportMetric(float64(after-before)/benchTerminals, "bytes/terminal")
		runtime.KeepAlive(e)
	}
}

// BenchmarkObserve measures messages per second through the engine alone,
// from as many goroutines as GOMAXPROCS, over 10,000 terminals each.
func BenchmarkObserve(b *testing.B) {
	b.Run("feed=off", func(b *testing.B) { benchObserve(b, false) })
	// With the change feed on and drained every second, as the
	// healthview publisher does.
	b.Run("feed=on", func(b *testing.B) { benchObserve(b, true) })
}

func benchObserve(b *testing.B, feed bool) {
	e := health.New(health.Config{})
	if feed {
		e.TrackChanges(true)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					e.Drain()
				}
			}
		}()
	}
	var id atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		g := int(id.Add(1))
		tr := newTraffic(10, 10_000, g*10_000)
		i, k := 0, 0
		for pb.Next() {
			e.Observe(tr.message(i, k))
			if i++; i == len(tr.refs) {
				i, k = 0, k+1
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

var (
	snapOnce sync.Once
	snapBuf  []byte
)

// BenchmarkRestore measures a restart: restoring 100,000 terminals at a
// steady state from a snapshot.
func BenchmarkRestore(b *testing.B) {
	snapOnce.Do(func() {
		e := health.New(health.Config{})
		feedFleet(e, newTraffic(10, benchTerminals, 0))
		var buf bytes.Buffer
		start := time.Now()
		if err := e.Snapshot(&buf); err != nil {
			b.Fatal(err)
		}
		b.Logf("snapshot of %d terminals: %.1f MiB in %v", benchTerminals, float64(buf.Len())/(1<<20), time.Since(start))
		snapBuf = buf.Bytes()
	})
	b.SetBytes(int64(len(snapBuf)))
	for b.Loop() {
		e := health.New(health.Config{})
		if err := e.Restore(bytes.NewReader(snapBuf)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTick measures one pass of the Run loop over 100,000 terminals
// (offline deadlines, 24-hour windows, incident counts).
func BenchmarkTick(b *testing.B) {
	e := health.New(health.Config{})
	tr := newTraffic(10, benchTerminals, 0)
	feedFleet(e, tr)
	now := tr.base.Add(perTerminal * 12 * time.Second)
	for b.Loop() {
		e.Tick(now)
	}
}

// TestObserveSteadyStateAllocations guards the claim of the package doc:
// a heartbeat or an approved sale of a known terminal allocates nothing.
func TestObserveSteadyStateAllocations(t *testing.T) {
	t.Run("feed=off", func(t *testing.T) { testObserveAllocations(t, false) })
	t.Run("feed=on", func(t *testing.T) { testObserveAllocations(t, true) })
}

func testObserveAllocations(t *testing.T, feed bool) {
	e := health.New(health.Config{})
	e.TrackChanges(feed)
	tr := newTraffic(1, 1, 0)
	for k := range perTerminal {
		e.Observe(tr.message(0, k))
	}
	k := perTerminal
	allocs := testing.AllocsPerRun(200, func() {
		k++
		if k%17 == 0 || k == 7 {
			k++ // skip the decline and the fault; both are fine, but keep the mix plain
		}
		e.Observe(tr.message(0, k))
	})
	if allocs != 0 {
		t.Errorf("Observe allocates %.1f times per message", allocs)
	}
}

// TestChangeFeedAllocations: recording transitions on the message path
// allocates nothing once the feed's buffers have grown (Drain keeps them).
func TestChangeFeedAllocations(t *testing.T) {
	e := health.New(health.Config{})
	e.TrackChanges(true)
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	off := &posfleet.Message{Terminal: ref, Channel: posfleet.ChannelStatus, Status: &posfleet.Status{Online: false}, Received: now}
	on := &posfleet.Message{Terminal: ref, Channel: posfleet.ChannelStatus, Status: &posfleet.Status{Online: true}, Received: now}
	flap := func() { e.Observe(off); e.Observe(on) }
	for range 300 {
		flap()
	}
	if c := e.Drain(); len(c.Transitions) != 600 {
		t.Fatalf("%d transitions, want 600", len(c.Transitions))
	}
	if allocs := testing.AllocsPerRun(200, flap); allocs != 0 {
		t.Errorf("a flag raised and cleared allocates %.1f times", allocs)
	}
	if c := e.Drain(); len(c.Transitions) != 402 {
		t.Fatalf("%d transitions, want 402", len(c.Transitions))
	}
}
