package health

import (
	"math"
	"time"

	"github.com/posfleet/posfleet"
)

// The per-terminal state. Its fields are exported only so that encoding/gob
// can write it to a snapshot; the types themselves are unexported. Times are
// Unix milliseconds (0 = never): half the size of a time.Time and no
// location pointer for the garbage collector to follow.

// nFlagsV1 is the number of flags of snapshot version 1 (PROTOCOL.md §2),
// nFlagsV2 of version 2 (with bad_data).
const (
	nFlagsV1 = 13
	nFlagsV2 = 14
)

// nFlags is the number of flags; a flag's index in the per-terminal arrays
// and its bit in a flagMask are its position in posfleet.FlagSpecs.
const nFlags = len(posfleet.FlagSpecs)

// flagMask has one bit per flag.
type flagMask uint32

// A flagMask holds every flag: a compile error here says it needs a wider type.
var _ [32 - nFlags]struct{}

// The indices of the flags the rules name, derived from posfleet.FlagSpecs.
var (
	fOffline          = flagIndex(posfleet.FlagOffline)
	fFirmwareOutdated = flagIndex(posfleet.FlagFirmwareOutdated)
	fFirmwareBlocked  = flagIndex(posfleet.FlagFirmwareBlocked)
	fUpdateFailed     = flagIndex(posfleet.FlagUpdateFailed)
	fAmountMismatch   = flagIndex(posfleet.FlagAmountMismatch)
	fTxnFailures      = flagIndex(posfleet.FlagTxnFailures)
	fReceiptFailures  = flagIndex(posfleet.FlagReceiptFailures)
	fRefundAnomaly    = flagIndex(posfleet.FlagRefundAnomaly)
	fHardwareFault    = flagIndex(posfleet.FlagHardwareFault)
	fTamper           = flagIndex(posfleet.FlagTamper)
	fWeakNetwork      = flagIndex(posfleet.FlagWeakNetwork)
	fBattery          = flagIndex(posfleet.FlagBattery)
	fClockSkew        = flagIndex(posfleet.FlagClockSkew)
	fBadData          = flagIndex(posfleet.FlagBadData)
	fFallbackRate     = flagIndex(posfleet.FlagFallbackRate)
	fMoved            = flagIndex(posfleet.FlagMoved)
	fSilent           = flagIndex(posfleet.FlagSilent)
	fWearDue          = flagIndex(posfleet.FlagWearDue)
)

// The masks of the flags each kind of message (or time alone) can change.
var (
	mOffline       = maskOf(posfleet.FlagOffline)
	mHardwareFault = maskOf(posfleet.FlagHardwareFault)
	mTamper        = maskOf(posfleet.FlagTamper)
	mTxnFailures   = maskOf(posfleet.FlagTxnFailures)
	mFirmware      = maskOf(posfleet.FlagFirmwareOutdated, posfleet.FlagFirmwareBlocked, posfleet.FlagUpdateFailed)
	mTxn           = maskOf(posfleet.FlagAmountMismatch, posfleet.FlagTxnFailures, posfleet.FlagReceiptFailures, posfleet.FlagRefundAnomaly)
	mHeartbeat     = maskOf(posfleet.FlagReceiptFailures, posfleet.FlagWeakNetwork, posfleet.FlagBattery, posfleet.FlagClockSkew)
	mBadData       = maskOf(posfleet.FlagBadData)
	mFallbackRate  = maskOf(posfleet.FlagFallbackRate)
	mMoved         = maskOf(posfleet.FlagMoved)
	mSilent        = maskOf(posfleet.FlagSilent)
	mWearDue       = maskOf(posfleet.FlagWearDue)
	// mTimeBased: flags whose evidence ages out (offline deadlines, the
	// 24-hour windows, bad_data's window) and that Tick therefore re-judges.
	mTimeBased = maskOf(posfleet.FlagOffline, posfleet.FlagAmountMismatch, posfleet.FlagReceiptFailures, posfleet.FlagRefundAnomaly,
		posfleet.FlagBadData, posfleet.FlagSilent)
)

const mAll = flagMask(1)<<nFlags - 1

// flagIndex returns f's index, panicking at start-up for a flag that is not
// in posfleet.FlagSpecs: a rule named a flag the vocabulary does not have.
func flagIndex(f posfleet.FlagName) int {
	i := posfleet.FlagIndex(f)
	if i < 0 {
		panic("health: flag " + string(f) + " is not in posfleet.FlagSpecs")
	}
	return i
}

func maskOf(fs ...posfleet.FlagName) flagMask {
	var m flagMask
	for _, f := range fs {
		m |= 1 << flagIndex(f)
	}
	return m
}

// Cause indices; 0 is an approved transaction.
const (
	cNone = iota
	cCard
	cHost
	cNetwork
	cTerminal
	cOperator
	nCauses
)

var causeByIndex = [nCauses]posfleet.Cause{posfleet.CauseNone, posfleet.CauseCard, posfleet.CauseHost,
	posfleet.CauseNetwork, posfleet.CauseTerminal, posfleet.CauseOperator}

func causeIndex(c posfleet.Cause) int {
	for i, x := range causeByIndex {
		if x == c {
			return i
		}
	}
	return cTerminal
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func tm(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// txnOutcome packs one transaction of the ring into 8 bytes:
// received time in ms << 8 | host-side bit (1<<3) | cause index.
type txnOutcome = uint64

func packOutcome(at int64, cause int, hostSide bool) txnOutcome {
	v := uint64(at)<<8 | uint64(cause)
	if hostSide {
		v |= 1 << 3
	}
	return v
}

func unpackOutcome(v txnOutcome) (at int64, cause int, hostSide bool) {
	return int64(v >> 8), int(v & 7), v&(1<<3) != 0
}

// hbSample is what weak_network needs of one heartbeat.
type hbSample struct {
	At        int64
	RTT       int32 // -1: absent
	Off       int32 // ts minus received, in seconds: the clock offset plus the delivery delay
	Signal    int16
	HasSignal bool
	// Live is false for a heartbeat whose delivery delay differs from the
	// one before it (liveHeartbeat): the outbox of a terminal that was
	// offline, delivering readings taken minutes ago in a burst.
	Live bool
}

// liveClock is the clock offsets of the last clockSkewWindow live
// heartbeats (hbSample.Live), in a ring.
type liveClock struct {
	At          [clockSkewWindow]int64
	Off         [clockSkewWindow]int32 // as hbSample.Off
	Next, Count uint8
}

func (c *liveClock) add(at int64, off int32) {
	c.At[c.Next], c.Off[c.Next] = at, off
	c.Next = (c.Next + 1) % clockSkewWindow
	if c.Count < clockSkewWindow {
		c.Count++
	}
}

// fillLiveClock takes Clock from the heartbeat ring in the state of a
// snapshot written before Clock was kept.
func (s *termState) fillLiveClock() {
	if s.Clock.Count > 0 {
		return
	}
	for j := int(s.HBCount) - 1; j >= 0; j-- { // oldest first
		if h := &s.HB[(int(s.HBNext)-1-j+2*HeartbeatRing)%HeartbeatRing]; h.Live {
			s.Clock.add(h.At, h.Off)
		}
	}
}

// hbInfo is the last heartbeat, for queries and the single-heartbeat rules.
type hbInfo struct {
	At, TS    int64
	Uptime    int64 // -1: absent
	TempC     float32
	HasTemp   bool
	Battery   int8 // -1: absent
	Charging  bool
	Signal    int16
	HasSignal bool
	RTT       int32 // -1: absent
	Pending   int32 // -1: absent
	Net       string
	Paper     string
}

// evt is one piece of evidence: a transaction or fault event.
type evt struct {
	At   int64
	ID   string
	A, B int64
	Note string
}

// evRing keeps the last EvidenceRing events of one kind.
type evRing struct {
	E     [EvidenceRing]evt
	Next  uint8
	Count uint8
	// Hourly counts every event of the last 24 hours by the hour it
	// happened in (Hour is the newest hour, in Unix hours): the ring keeps
	// the latest few as samples, these count them all (total).
	Hourly [24]uint16
	Hour   int32
}

const hourMs = int64(time.Hour / time.Millisecond)

func (r *evRing) add(e evt) {
	r.E[r.Next] = e
	r.Next = (r.Next + 1) % EvidenceRing
	if r.Count < EvidenceRing {
		r.Count++
	}
	h := int32(e.At / hourMs)
	switch {
	case h > r.Hour:
		for x := max(r.Hour+1, h-23); x <= h; x++ {
			r.Hourly[x%24] = 0
		}
		r.Hour = h
	case h <= r.Hour-24:
		return // older than the counts reach
	}
	if c := &r.Hourly[h%24]; *c < math.MaxUint16 {
		*c++
	}
}

// total counts the events from the hour of from up to now: the whole
// count behind the ring's samples, to the hour (the oldest hour counts
// whole). Never fewer than the ring holds since from.
func (r *evRing) total(from, now int64) int {
	if r == nil {
		return 0
	}
	inRing, _ := r.countSince(from)
	oldest := r.E[(int(r.Next)-int(r.Count)+EvidenceRing)%EvidenceRing].At
	if r.Count < EvidenceRing || oldest < from {
		return inRing // the ring reaches back past from: it holds them all
	}
	n := 0
	for h := int32(from / hourMs); h <= int32(now/hourMs) && h <= r.Hour; h++ {
		if h > r.Hour-24 && h >= 0 {
			n += int(r.Hourly[h%24])
		}
	}
	return max(n, inRing)
}

// since returns the events at or after from, oldest first.
func (r *evRing) since(from int64) []evt {
	if r == nil {
		return nil
	}
	var out []evt
	for i := int(r.Count); i > 0; i-- {
		e := r.E[(int(r.Next)-i+EvidenceRing)%EvidenceRing]
		if e.At >= from {
			out = append(out, e)
		}
	}
	return out
}

// countSince is since without the allocation.
func (r *evRing) countSince(from int64) (n int, first int64) {
	if r == nil {
		return 0, 0
	}
	for i := int(r.Count); i > 0; i-- {
		e := &r.E[(int(r.Next)-i+EvidenceRing)%EvidenceRing]
		if e.At >= from {
			if n == 0 {
				first = e.At
			}
			n++
		}
	}
	return n, first
}

type openFault struct {
	Component, Code, Severity, Detail string
	At                                int64
}

// fwCounters count a terminal's transactions since it got its current
// firmware, for the suspect-firmware comparison.
type fwCounters struct {
	Txns, Sales, Mismatches, TerminalFailures uint32
}

// ServiceRecord is one crew visit closed with MarkServiced.
type ServiceRecord struct {
	At      time.Time           `json:"at"`
	By      string              `json:"by"`
	Note    string              `json:"note,omitempty"`
	Cleared []posfleet.FlagName `json:"cleared"`
}

type termState struct {
	Ref      posfleet.TerminalRef
	Merchant string

	FirstSeen, LastSeen int64
	WillAt              int64 // the last will arrived and nothing since
	LastTxnAt           int64
	// AcceptedAt is the last accepted message; LastSeen counts rejected
	// ones too (the terminal was heard, whatever it said).
	AcceptedAt int64
	// Rejects counts rejected messages for bad_data; nil for a terminal
	// that never sent one.
	Rejects *rejLog

	Model, Serial, Firmware, App, BootReason string
	InvAt                                    int64
	Update                                   posfleet.UpdateAttempt
	UpdateAt                                 int64

	HB      [HeartbeatRing]hbSample
	HBNext  uint8
	HBCount uint8
	LastHB  hbInfo
	// Clock is what clock_skew judges: the last live heartbeats, kept
	// apart from HB so that a replayed backlog, which is not live, does
	// not push them out (and clear the flag with no evidence either way).
	Clock        liveClock
	LowBatStreak uint8
	LowBatSince  int64
	PaperOutAt   int64

	Faults []openFault
	Tamper *evRing

	Txn      [TxnRing]txnOutcome
	TxnNext  uint8
	TxnCount uint8
	Failures *evRing
	Mismatch *evRing
	Receipt  *evRing
	Refund   *evRing
	// Chip holds the last card-present chip transactions for
	// fallback_rate, and Loc the reported location for moved
	// (flag_signals.go); nil until the terminal sends one.
	Chip *chipLog
	Loc  *locState
	// Hours is the hour-of-week sales baseline for silent and
	// UsualSaleHours (hours.go), from the first sale; Wear the wear
	// counters' samples for wear_due (flag_wear.go), from the first
	// heartbeat with one. Host is the host of the last transaction that
	// named one, for incidents per host (incident.go).
	Hours *saleHours
	Wear  *wearState
	Host  string

	Causes         [nCauses]uint32
	FW             fwCounters
	LastHostFailAt int64
	HostFailFirst  int64
	HostFailRun    uint32
	HostFails      uint32

	// raised is when each flag was raised (0: not raised), by flag index.
	// Snapshots hold it as RaisedAt, a slice, so that adding a flag
	// changes no snapshot's layout (Snapshot and Restore copy it).
	raised [nFlags]int64
	// RaisedAt is raised in a snapshot (version 3 on): set only while
	// Snapshot writes the terminal and until Restore has read it.
	RaisedAt []int64
	// Raised is raised as snapshots of version 2 wrote it (14 flags), and
	// Since as those of version 1 did (the 13 flags of PROTOCOL.md §2);
	// Restore moves them to raised and Snapshot never writes them (gob
	// leaves a nil pointer out, and reads an array into one).
	Raised     *[nFlagsV2]int64
	Since      *[nFlagsV1]int64
	ServicedAt int64
	Service    []ServiceRecord
	// KPI holds the payment KPIs firmware campaigns compare (kpi.go);
	// nil until the terminal's first transaction or crash boot.
	KPI *kpiState

	// dirty: in its shard's change feed (changes.go); not in a snapshot.
	dirty bool
}

// intern returns the constant for a known protocol word, so that a
// terminal's state does not pin the decoder's copy of "4g" or "ok".
func intern(s string) string {
	for _, c := range internTable {
		if c == s {
			return c
		}
	}
	return s
}

var internTable = []string{
	posfleet.NetEthernet, posfleet.NetWiFi, posfleet.Net2G, posfleet.Net3G, posfleet.Net4G, posfleet.Net5G,
	posfleet.PaperOK, posfleet.PaperLow, posfleet.PaperOut,
	posfleet.SeverityInfo, posfleet.SeverityWarning, posfleet.SeverityCritical,
	posfleet.ComponentPrinter, posfleet.ComponentMSR, posfleet.ComponentICC, posfleet.ComponentNFC,
	posfleet.ComponentKeypad, posfleet.ComponentDisplay, posfleet.ComponentBattery, posfleet.ComponentModem,
	posfleet.ComponentSecureElement, posfleet.ComponentStorage, posfleet.ComponentClock, posfleet.ComponentApp,
	posfleet.BootPowerOn, posfleet.BootUpdate, posfleet.BootWatchdog, posfleet.BootCrash, posfleet.BootUser,
}
