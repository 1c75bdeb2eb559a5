package posfleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Decode validates one uplink payload of terminal ref on channel ch and
// returns the decoded message, or a *Rejection saying why it was refused.
//
// The checks run in this order and the first failure is returned:
// size (too_large), channel (unknown_channel), card data anywhere in the
// payload (card_data), UTF-8 JSON object syntax (not_json), then seq and ts
// (missing_seq, missing_ts, wrong_type, out_of_range), then the channel's
// fields in the order of PROTOCOL.md's tables, each one checked for
// presence (missing_field), JSON type (wrong_type) and range (out_of_range).
//
// Unknown fields are ignored, null stands for an absent field, and a field
// given twice counts with its last value, as encoding/json does. Field names
// are matched exactly (encoding/json would also accept "SEQ" for "seq").
// Integer fields take integer JSON numbers only: 1.5, 1e3 and "1" are
// wrong_type. Enumerations match exactly.
//
// Decode is on the broker's path for every message. It parses the payload
// once without building a generic tree, looking for card data in the same
// pass, returns the package's constants for enumerations, and allocates
// once for the message and once for all its free text (a heartbeat has
// none). A heartbeat or transaction given back with Message.Release is
// decoded into again instead of a new allocation.
func Decode(ref TerminalRef, ch Channel, payload []byte, received time.Time) (*Message, error) {
	m, rej := decode(ch, payload)
	if rej != nil {
		return nil, rej
	}
	m.Terminal, m.Channel, m.Received = ref, ch, received
	return m, nil
}

func decode(ch Channel, payload []byte) (*Message, *Rejection) {
	if len(payload) > MaxPayloadBytes {
		return nil, &Rejection{Reason: ReasonTooLarge, Detail: detailTooLarge}
	}
	// The channel comes from the topic, which the terminal chose: it is not
	// named in the detail either.
	if !ch.Uplink() {
		return nil, &Rejection{Reason: ReasonUnknownChannel, Detail: "not an uplink channel"}
	}
	// Card data is looked for before anything else, so that a payload with
	// a card number is counted as such whatever else is wrong with it. The
	// parser looks for it in the same pass (parser.scan): on a payload that
	// parses, it sees every string and number jsonCardData would, and
	// reads them the same way. A payload that does not parse takes the
	// separate scan, then the checks in their order.
	keys := keysOf(ch)
	c := check{b: payload, ch: ch}
	p := parser{b: payload, scan: true}
	p.ws()
	parsed := p.i < len(p.b) && p.b[p.i] == '{' && p.object(keys, c.vals[:len(keys)])
	if parsed {
		p.ws()
		parsed = p.i == len(p.b)
	}
	if p.card || !parsed && jsonCardData(payload) {
		return nil, &Rejection{Reason: ReasonCardData, Detail: "card data (a card number in some layout; see ContainsCardData)"}
	}
	// A payload that parsed is ASCII outside its strings, and the parser
	// saw whether they are.
	if (!parsed || p.odd) && !utf8.Valid(payload) {
		return nil, &Rejection{Reason: ReasonNotJSON, Detail: "invalid UTF-8"}
	}
	if !parsed {
		p.i = 0
		if p.ws(); p.i == len(p.b) || p.b[p.i] != '{' {
			if json.Valid(payload) {
				return nil, &Rejection{Reason: ReasonNotJSON, Detail: "want a JSON object"}
			}
			return nil, &Rejection{Reason: ReasonNotJSON, Detail: "invalid JSON"}
		}
		// Again without the scan, for where the syntax breaks.
		p = parser{b: payload}
		p.ws()
		if p.object(keys, c.vals[:len(keys)]) {
			p.ws()
		}
		return nil, p.syntaxError()
	}

	// Direct calls, not a table of funcs: through a func value the check
	// would escape to the heap.
	var m *Message
	switch ch {
	case ChannelHeartbeat:
		m = decodeHeartbeat(&c)
	case ChannelFault:
		m = decodeFault(&c)
	case ChannelFirmware:
		m = decodeInventory(&c)
	case ChannelTxn:
		m = decodeTxn(&c)
	case ChannelStatus:
		m = decodeStatus(&c)
	case ChannelAck:
		m = decodeAck(&c)
	}
	if c.rej != nil {
		if m != nil {
			m.Release()
		}
		return nil, c.rej
	}
	return m, nil
}

var detailTooLarge = fmt.Sprintf("payload over %d bytes", MaxPayloadBytes)

// maxFields is the most fields a schema knows (hb, with its extensions).
const maxFields = 17

// keysOf returns the JSON names of the fields of ch, an uplink channel.
func keysOf(ch Channel) []string {
	switch ch {
	case ChannelHeartbeat:
		return hbKeys
	case ChannelFault:
		return faultKeys
	case ChannelFirmware:
		return fwKeys
	case ChannelTxn:
		return txnKeys
	case ChannelAck:
		return ackKeys
	default:
		return statusKeys
	}
}

// Field indexes into the keys of every channel with a header.
const (
	fSeq = iota
	fTS
	fFirst // the channel's own fields start here
)

// Rules shared by several channels.
var (
	seqRule        = intRange(1, math.MaxInt64)
	nonNegative64  = intRange(0, math.MaxInt64)
	nonNegativeInt = intRange(0, math.MaxInt) // for fields of Go type int
	msRule         = intRange(0, 600000)
	id64           = textRule{min: 1, max: 64, want: "want 1..64 characters"}
	opt64          = textRule{max: 64, want: "want at most 64 characters"}
	detail256      = textRule{max: 256, want: "want at most 256 characters"}
)

func header(c *check) Header {
	if c.rej == nil && c.vals[fSeq].missing() {
		c.rej = &Rejection{Reason: ReasonMissingSeq, Field: "seq", Detail: "required"}
	}
	seq, _ := c.integer(fSeq, seqRule, false)
	if c.rej == nil && c.vals[fTS].missing() {
		c.rej = &Rejection{Reason: ReasonMissingTS, Field: "ts", Detail: "required"}
	}
	ts, _ := c.timestamp(fTS)
	return Header{Seq: seq, TS: ts}
}

// hb

var hbKeys = []string{"seq", "ts", "uptime_s", "battery_pct", "charging", "temp_c", "signal_dbm", "net", "host_rtt_ms", "paper", "pending_txns", "lat", "lon",
	"prints", "card_insertions", "battery_cycles", "battery_health_pct"}

const (
	hbUptime = fFirst + iota
	hbBattery
	hbCharging
	hbTemp
	hbSignal
	hbNet
	hbRTT
	hbPaper
	hbPending
	hbLat
	hbLon
	hbPrints
	hbCardInsertions
	hbBatteryCycles
	hbBatteryHealth
)

var (
	batteryRule = intRange(0, 100)
	signalRule  = intRange(-150, 0)
	tempRule    = numberRule{min: -60, max: 150, want: "want number -60..150"}
	netRule     = enumRule(NetEthernet, NetWiFi, Net2G, Net3G, Net4G, Net5G)
	paperRule   = enumRule(PaperOK, PaperLow, PaperOut)
	latRule     = numberRule{min: -90, max: 90, want: "want latitude -90..90 degrees"}
	lonRule     = numberRule{min: -180, max: 180, want: "want longitude -180..180 degrees"}
)

// heartbeatBlock holds a heartbeat message and the targets of its optional
// pointers, so that decoding one costs one allocation.
type heartbeatBlock struct {
	m                             Message
	hb                            Heartbeat
	uptime                        int64
	battery, signal, rtt, pending int
	temp, lat, lon                float64
	charging                      bool
	prints, insertions, cycles    int64
	health                        int
}

// pooledBlock is a block Message.Release can put back in its pool.
type pooledBlock interface{ release() }

var heartbeatPool = sync.Pool{New: func() any { return new(heartbeatBlock) }}

func (b *heartbeatBlock) release() {
	*b = heartbeatBlock{}
	heartbeatPool.Put(b)
}

func decodeHeartbeat(c *check) *Message {
	b := heartbeatPool.Get().(*heartbeatBlock)
	b.m.Heartbeat, b.m.block = &b.hb, b
	h := &b.hb
	h.Header = header(c)
	if n, ok := c.integer(hbUptime, nonNegative64, false); ok {
		b.uptime, h.UptimeS = n, &b.uptime
	}
	if n, ok := c.integer(hbBattery, batteryRule, false); ok {
		b.battery, h.BatteryPct = int(n), &b.battery
	}
	if v, ok := c.boolean(hbCharging, false); ok {
		b.charging, h.Charging = v, &b.charging
	}
	if f, ok := c.number(hbTemp, tempRule); ok {
		b.temp, h.TempC = f, &b.temp
	}
	if n, ok := c.integer(hbSignal, signalRule, false); ok {
		b.signal, h.SignalDBm = int(n), &b.signal
	}
	h.Net = c.enum(hbNet, netRule, false)
	if n, ok := c.integer(hbRTT, msRule, false); ok {
		b.rtt, h.HostRTTMs = int(n), &b.rtt
	}
	h.Paper = c.enum(hbPaper, paperRule, false)
	if n, ok := c.integer(hbPending, nonNegativeInt, false); ok {
		b.pending, h.PendingTxns = int(n), &b.pending
	}
	// lat and lon (README, "PROTOCOL extensions"): optional, but both or
	// neither, so that a location is never half a reading.
	lat, hasLat := c.number(hbLat, latRule)
	lon, hasLon := c.number(hbLon, lonRule)
	switch {
	case c.rej != nil:
	case hasLat && hasLon:
		b.lat, b.lon, h.Lat, h.Lon = lat, lon, &b.lat, &b.lon
	case hasLat:
		c.fail(ReasonMissingField, hbLon, "required with lat")
	case hasLon:
		c.fail(ReasonMissingField, hbLat, "required with lon")
	}
	// Wear counters (README, "PROTOCOL extensions"): optional lifetime
	// counters of the parts that wear out, never negative. That they only
	// grow between two part replacements is the health engine's to judge
	// (a decrease is a new part), the message alone cannot tell.
	if n, ok := c.integer(hbPrints, nonNegative64, false); ok {
		b.prints, h.Prints = n, &b.prints
	}
	if n, ok := c.integer(hbCardInsertions, nonNegative64, false); ok {
		b.insertions, h.CardInsertions = n, &b.insertions
	}
	if n, ok := c.integer(hbBatteryCycles, nonNegative64, false); ok {
		b.cycles, h.BatteryCycles = n, &b.cycles
	}
	if n, ok := c.integer(hbBatteryHealth, batteryRule, false); ok {
		b.health, h.BatteryHealthPct = int(n), &b.health
	}
	return &b.m
}

// fault

var faultKeys = []string{"seq", "ts", "component", "code", "severity", "state", "detail"}

const (
	faultComponent = fFirst + iota
	faultCode
	faultSeverity
	faultState
	faultDetail
)

var (
	componentRule = enumRule(ComponentPrinter, ComponentMSR, ComponentICC, ComponentNFC, ComponentKeypad,
		ComponentDisplay, ComponentBattery, ComponentModem, ComponentSecureElement, ComponentStorage,
		ComponentClock, ComponentApp)
	faultCodeRule  = textRule{min: 1, max: 64, chars: printableNoSpace, want: "want 1..64 printable ASCII characters without spaces"}
	severityRule   = enumRule(SeverityInfo, SeverityWarning, SeverityCritical)
	faultStateRule = enumRule(FaultRaised, FaultCleared)
)

type faultBlock struct {
	m Message
	f Fault
}

func decodeFault(c *check) *Message {
	b := new(faultBlock)
	b.m.Fault = &b.f
	f := &b.f
	f.Header = header(c)
	f.Component = c.enum(faultComponent, componentRule, true)
	code := c.text(faultCode, faultCodeRule, true)
	f.Severity = c.enum(faultSeverity, severityRule, true)
	f.State = c.enum(faultState, faultStateRule, true)
	detail := c.text(faultDetail, detail256, false)
	if c.rej != nil {
		return nil
	}
	s := texts(code, detail)
	f.Code, f.Detail = s[0], s[1]
	return &b.m
}

// fw

var fwKeys = []string{"seq", "ts", "model", "serial", "firmware", "app", "boot_reason", "update"}

const (
	fwModel = fFirst + iota
	fwSerial
	fwFirmware
	fwApp
	fwBootReason
	fwUpdate
	fwUpdTarget // the fields of update
	fwUpdStatus
	fwUpdError
)

var (
	updateKeys = []string{"target", "status", "error"}
	// fwNames names the fields of fw in rejections, those of update included.
	fwNames = append(fwKeys[:len(fwKeys):len(fwKeys)], "update.target", "update.status", "update.error")
)

var (
	firmwareRule   = textRule{min: 1, max: 64, chars: noSpace, want: "want 1..64 characters without whitespace"}
	bootReasonRule = enumRule(BootPowerOn, BootUpdate, BootWatchdog, BootCrash, BootUser)
	updStatusRule  = enumRule(UpdateDownloading, UpdateInstalled, UpdateFailed)
)

type inventoryBlock struct {
	m   Message
	inv Inventory
	upd UpdateAttempt
}

func decodeInventory(c *check) *Message {
	b := new(inventoryBlock)
	b.m.Inventory = &b.inv
	inv := &b.inv
	inv.Header = header(c)
	model := c.text(fwModel, id64, true)
	serial := c.text(fwSerial, opt64, false)
	firmware := c.text(fwFirmware, firmwareRule, true)
	app := c.text(fwApp, opt64, false)
	inv.BootReason = c.enum(fwBootReason, bootReasonRule, false)
	var target, uerr []byte
	start, hasUpdate := c.object(fwUpdate)
	if hasUpdate {
		// The update's fields go after fw's own in the same values, so
		// that one check goes through all (and the values stay on the stack).
		p := parser{b: c.b, i: start}
		p.object(updateKeys, c.vals[fwUpdTarget:fwUpdError+1]) // cannot fail: the whole payload parsed
		target = c.text(fwUpdTarget, id64, true)
		b.upd.Status = c.enum(fwUpdStatus, updStatusRule, true)
		uerr = c.text(fwUpdError, detail256, false)
	}
	if c.rej != nil {
		return nil
	}
	s := texts(model, serial, firmware, app, target, uerr)
	inv.Model, inv.Serial, inv.Firmware, inv.App = s[0], s[1], s[2], s[3]
	if hasUpdate {
		b.upd.Target, b.upd.Error = s[4], s[5]
		inv.Update = &b.upd
	}
	return &b.m
}

// txn

var txnKeys = []string{"seq", "ts", "id", "type", "entry", "currency", "amount_entered", "amount_charged",
	"original_id", "original_amount", "result", "rc", "host_ms", "receipt", "offline", "host"}

const (
	txnID = fFirst + iota
	txnType
	txnEntry
	txnCurrency
	txnAmountEntered
	txnAmountCharged
	txnOriginalID
	txnOriginalAmount
	txnResult
	txnRC
	txnHostMs
	txnReceipt
	txnOffline
	txnHost
)

var (
	txnTypeRule  = enumRule(TxnSale, TxnRefund, TxnVoid, TxnPreauth, TxnCompletion)
	entryRule    = enumRule(EntrySwipe, EntryChip, EntryTap, EntryQR, EntryManual, EntryFallback)
	currencyRule = textRule{min: 3, max: 3, chars: upperLetters, want: "want 3 uppercase letters (ISO 4217)"}
	resultRule   = enumRule(ResultApproved, ResultDeclined, ResultError, ResultTimeout, ResultCancelled)
	rcRule       = textRule{min: 2, max: 2, chars: responseCode, want: "want 2 characters 0-9 A-Z"}
	receiptRule  = enumRule(ReceiptPrinted, ReceiptFailed, ReceiptSkipped)
	// hostRule: the acquirer or switch that answered (README, "PROTOCOL
	// extensions"), a short token like a terminal ID.
	hostRule = textRule{min: 1, max: 32, chars: idChars, want: "want 1..32 characters A-Z a-z 0-9 . _ -"}
)

type txnBlock struct {
	m                          Message
	t                          Transaction
	entered, charged, original int64
	hostMs                     int
}

var txnPool = sync.Pool{New: func() any { return new(txnBlock) }}

func (b *txnBlock) release() {
	*b = txnBlock{}
	txnPool.Put(b)
}

func decodeTxn(c *check) *Message {
	b := txnPool.Get().(*txnBlock)
	b.m.Txn, b.m.block = &b.t, b
	t := &b.t
	t.Header = header(c)
	id := c.text(txnID, id64, true)
	t.Type = c.enum(txnType, txnTypeRule, true)
	t.Entry = c.enum(txnEntry, entryRule, false)
	currency := c.text(txnCurrency, currencyRule, false)
	if n, ok := c.integer(txnAmountEntered, nonNegative64, false); ok {
		b.entered, t.AmountEntered = n, &b.entered
	}
	if n, ok := c.integer(txnAmountCharged, nonNegative64, false); ok {
		b.charged, t.AmountCharged = n, &b.charged
	}
	origID := c.text(txnOriginalID, opt64, false)
	if n, ok := c.integer(txnOriginalAmount, nonNegative64, false); ok {
		b.original, t.OriginalAmount = n, &b.original
	}
	t.Result = c.enum(txnResult, resultRule, true)
	rc := c.text(txnRC, rcRule, false)
	if n, ok := c.integer(txnHostMs, msRule, false); ok {
		b.hostMs, t.HostMs = int(n), &b.hostMs
	}
	t.Receipt = c.enum(txnReceipt, receiptRule, false)
	t.Offline, _ = c.boolean(txnOffline, false)
	host := c.text(txnHost, hostRule, false)
	if c.rej != nil {
		b.release()
		return nil
	}
	s := texts(id, currency, origID, rc, host)
	t.ID, t.Currency, t.OriginalID, t.RC, t.Host = s[0], s[1], s[2], s[3], s[4]
	return &b.m
}

// status

// statusKeys has no seq or ts: the last will is fixed when the terminal
// connects, so it cannot carry either.
var statusKeys = []string{"online"}

type statusBlock struct {
	m Message
	s Status
}

func decodeStatus(c *check) *Message {
	b := new(statusBlock)
	b.m.Status = &b.s
	b.s.Online, _ = c.boolean(0, true)
	return &b.m
}

// ack

var ackKeys = []string{"seq", "ts", "cmd_id", "status", "detail"}

const (
	ackCmdID = fFirst + iota
	ackStatus
	ackDetail
)

var ackStatusRule = enumRule(AckAccepted, AckRejected, AckDone, AckFailed)

type ackBlock struct {
	m Message
	a Ack
}

func decodeAck(c *check) *Message {
	b := new(ackBlock)
	b.m.Ack = &b.a
	a := &b.a
	a.Header = header(c)
	cmdID := c.text(ackCmdID, id64, true)
	a.Status = c.enum(ackStatus, ackStatusRule, true)
	detail := c.text(ackDetail, detail256, false)
	if c.rej != nil {
		return nil
	}
	s := texts(cmdID, detail)
	a.CmdID, a.Detail = s[0], s[1]
	return &b.m
}

// Rules.

// intRule is the range of an integer field.
type intRule struct {
	min, max int64
	want     string // the rejection detail
}

func intRange(lo, hi int64) intRule {
	if hi == math.MaxInt64 || hi == math.MaxInt {
		return intRule{lo, hi, fmt.Sprintf("want integer >= %d", lo)}
	}
	return intRule{lo, hi, fmt.Sprintf("want integer %d..%d", lo, hi)}
}

// numberRule is the range of a number field.
type numberRule struct {
	min, max float64
	want     string
}

// textRule is the length, in characters, and alphabet of a string field.
type textRule struct {
	min, max int
	chars    func(rune) bool // nil: any character
	want     string
}

// enum is the values a string field may take.
type enum struct {
	values []string
	want   string
}

func enumRule(values ...string) enum {
	return enum{values, "want one of " + strings.Join(values, ", ")}
}

func printableNoSpace(r rune) bool { return r > ' ' && r <= '~' }
func noSpace(r rune) bool          { return !unicode.IsSpace(r) }
func upperLetters(r rune) bool     { return r >= 'A' && r <= 'Z' }
func responseCode(r rune) bool     { return r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' }
func idChars(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// check validates the fields of one JSON object. Its methods do nothing once
// a rule is broken and keep the first failure, so that a rejection names
// the first field in the protocol's order, not in the payload's.
//
// The field values are held in c, not pointed to, and rejections take field
// names from the global tables, not through c: escape analysis does not
// tell one part of c from another, and any pointer in c that reaches the
// heap (c.rej does) would take the values, and c, with it. As it is, c
// stays on Decode's stack.
type check struct {
	b    []byte  // the payload
	ch   Channel // whose fields these are
	rej  *Rejection
	vals [maxFields]value // by index into the channel's keys (fw: and update's after)
}

// fail records a broken rule.
func (c *check) fail(r Reason, i int, detail string) {
	var name string
	if c.ch == ChannelFirmware {
		name = fwNames[i]
	} else {
		name = keysOf(c.ch)[i]
	}
	c.rej = &Rejection{Reason: r, Field: name, Detail: detail}
}

// get returns field i when it is present and no rule is broken yet, and
// fails a required field that is absent or null.
func (c *check) get(i int, required bool) (value, bool) {
	if c.rej != nil {
		return value{}, false
	}
	v := c.vals[i]
	if v.missing() {
		if required {
			c.fail(ReasonMissingField, i, "required")
		}
		return value{}, false
	}
	return v, true
}

func (c *check) integer(i int, r intRule, required bool) (int64, bool) {
	v, ok := c.get(i, required)
	if !ok {
		return 0, false
	}
	var n int64
	integer, fits := false, false
	if v.kind == kindNumber {
		n, integer, fits = parseInt(c.raw(v))
	}
	if !integer {
		c.fail(ReasonWrongType, i, "want integer")
		return 0, false
	}
	if !fits || n < r.min || n > r.max {
		c.fail(ReasonOutOfRange, i, r.want)
		return 0, false
	}
	return n, true
}

func (c *check) number(i int, r numberRule) (float64, bool) {
	v, ok := c.get(i, false)
	if !ok {
		return 0, false
	}
	if v.kind != kindNumber {
		c.fail(ReasonWrongType, i, "want number")
		return 0, false
	}
	f, err := strconv.ParseFloat(string(c.raw(v)), 64)
	if err != nil || f < r.min || f > r.max {
		c.fail(ReasonOutOfRange, i, r.want)
		return 0, false
	}
	return f, true
}

func (c *check) boolean(i int, required bool) (bool, bool) {
	v, ok := c.get(i, required)
	if !ok {
		return false, false
	}
	if v.kind != kindBool {
		c.fail(ReasonWrongType, i, "want boolean")
		return false, false
	}
	return v.t, true
}

// enum returns the matching constant, so that enumerations cost no
// allocation; "" when absent.
func (c *check) enum(i int, e enum, required bool) string {
	v, ok := c.get(i, required)
	if !ok {
		return ""
	}
	if v.kind != kindString {
		c.fail(ReasonWrongType, i, "want string")
		return ""
	}
	s := content(c.raw(v), v.esc)
	for _, want := range e.values {
		if string(s) == want {
			return want
		}
	}
	c.fail(ReasonOutOfRange, i, e.want)
	return ""
}

// text returns the decoded content of a string field, still aliasing the
// payload when it has no escapes; nil when absent.
func (c *check) text(i int, r textRule, required bool) []byte {
	v, ok := c.get(i, required)
	if !ok {
		return nil
	}
	if v.kind != kindString {
		c.fail(ReasonWrongType, i, "want string")
		return nil
	}
	s := content(c.raw(v), v.esc)
	n := 0
	for _, r2 := range string(s) {
		if r.chars != nil && !r.chars(r2) {
			n = -1
			break
		}
		n++
	}
	if n < r.min || n > r.max {
		c.fail(ReasonOutOfRange, i, r.want)
		return nil
	}
	return s
}

// timestamp returns an RFC 3339 date-time field, parsed as encoding/json
// parses a time.Time but strictly: time.Time.UnmarshalText falls back to a
// lenient parse that takes offsets such as +25:00, which json.Marshal then
// refuses to write back.
func (c *check) timestamp(i int) (time.Time, bool) {
	v, ok := c.get(i, false)
	if !ok {
		return time.Time{}, false
	}
	if v.kind != kindString {
		c.fail(ReasonWrongType, i, "want string")
		return time.Time{}, false
	}
	s := content(c.raw(v), v.esc)
	var t time.Time
	if !rfc3339Shape(s) || t.UnmarshalText(s) != nil {
		c.fail(ReasonOutOfRange, i, "want RFC 3339 date-time")
		return time.Time{}, false
	}
	return t, true
}

// object returns where an object field starts in the payload.
func (c *check) object(i int) (int, bool) {
	v, ok := c.get(i, false)
	if !ok {
		return 0, false
	}
	if v.kind != kindObject {
		c.fail(ReasonWrongType, i, "want object")
		return 0, false
	}
	return int(v.start), true
}

// texts turns the text fields of a message into strings with a single
// allocation: they share one backing string.
func texts(parts ...[]byte) [6]string {
	var out [6]string
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return out
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, p := range parts {
		sb.Write(p)
	}
	all := sb.String()
	off := 0
	for k, p := range parts {
		out[k] = all[off : off+len(p)]
		off += len(p)
	}
	return out
}

// rfc3339Shape reports whether s has the exact shape of an RFC 3339
// date-time as Go and most libraries write it (upper-case T and Z), with a
// zone offset of at most 23:59; time's parser checks the other ranges.
func rfc3339Shape(s []byte) bool {
	const shape = "dddd-dd-ddTdd:dd:dd"
	if len(s) < len(shape)+1 {
		return false
	}
	for k := 0; k < len(shape); k++ {
		if shape[k] == 'd' && !isDigit(s[k]) || shape[k] != 'd' && s[k] != shape[k] {
			return false
		}
	}
	s = s[len(shape):]
	if s[0] == '.' {
		k := 1
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k == 1 {
			return false
		}
		s = s[k:]
	}
	if len(s) == 1 {
		return s[0] == 'Z'
	}
	return len(s) == 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':' &&
		isDigit(s[1]) && isDigit(s[2]) && isDigit(s[4]) && isDigit(s[5]) &&
		(s[1]-'0')*10+s[2]-'0' < 24 && s[4] < '6'
}

// parseInt parses a JSON number as an integer. integer is false when it
// has a fraction or an exponent (1.5, 1.0, 1e3); fits is false when it
// overflows int64.
func parseInt(b []byte) (n int64, integer, fits bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	var u uint64
	fits = true
	for _, c := range b {
		if !isDigit(c) {
			return 0, false, false
		}
		d := uint64(c - '0')
		if u > (math.MaxUint64-d)/10 {
			fits = false // keep looking for a fraction: 1e400 is no integer
		}
		u = u*10 + d
	}
	switch {
	case !fits:
		return 0, true, false
	case neg && u <= 1<<63:
		return int64(-u), true, true
	case !neg && u <= math.MaxInt64:
		return int64(u), true, true
	}
	return 0, true, false
}

// JSON parsing. The parser validates the whole payload as strictly as
// encoding/json (RFC 8259, no trailing data) while recording the values of
// the fields a channel knows; unknown values are checked and skipped. It
// does not allocate unless a key has escapes. It recurses into nested
// values: MaxPayloadBytes bounds the depth to 8192.

type kind uint8

const (
	kindAbsent kind = iota
	kindNull
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

// value is the JSON value of a field. It locates the value's text in the
// payload rather than holding a slice of it: without pointers, the field
// values stay on the stack.
type value struct {
	kind       kind
	esc        bool // a string with escapes
	t          bool // a boolean's value
	start, end int32
}

// missing reports whether the field counts as absent: null means absent.
func (v value) missing() bool { return v.kind == kindAbsent || v.kind == kindNull }

// raw returns the JSON text of v.
func (c *check) raw(v value) []byte { return c.b[v.start:v.end] }

// content returns the decoded content of the JSON string raw.
func content(raw []byte, esc bool) []byte {
	if !esc {
		return raw[1 : len(raw)-1]
	}
	// Rare (json.Marshal escapes only <, >, &, control characters and
	// U+2028/9), so encoding/json decodes it, with its exact rules for
	// surrogates. It gets a copy: handing it the payload would make escape
	// analysis move the field values to the heap on every call.
	var s string
	if json.Unmarshal(bytes.Clone(raw), &s) != nil {
		return nil // cannot happen: the parser checked the escapes
	}
	return []byte(s)
}

type parser struct {
	b []byte
	i int
	// scan: look for card data in every string (key or value) and number
	// met, as jsonCardData does; card: found, and parsing stopped there.
	scan, card bool
	// odd: a string had a byte outside ASCII (or DEL)
	odd bool
}

func (p *parser) syntaxError() *Rejection {
	return &Rejection{Reason: ReasonNotJSON, Detail: fmt.Sprintf("invalid JSON at byte %d", p.i)}
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object parses the object at p.i, storing the values of the given keys in
// vals; false on a syntax error.
func (p *parser) object(keys []string, vals []value) bool {
	p.i++ // '{'
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return true
	}
	next := 0 // the key expected next: terminals send them in the schema's order
	for {
		if p.i == len(p.b) || p.b[p.i] != '"' {
			return false
		}
		// The key expected next, as it is in the schema, is taken whole:
		// no escapes, and too few digits for card data (TestKeysHoldNoCardData).
		k := -1
		if next < len(keys) {
			if name := keys[next]; len(p.b)-p.i > len(name)+1 && p.b[p.i+1+len(name)] == '"' && string(p.b[p.i+1:p.i+1+len(name)]) == name {
				k = next
				p.i += len(name) + 2
			}
		}
		if k < 0 {
			start := p.i
			esc, ok := p.str()
			if !ok {
				return false
			}
			k = keyIndex(keys, p.b[start:p.i], esc)
		}
		p.ws()
		if p.i == len(p.b) || p.b[p.i] != ':' {
			return false
		}
		p.i++
		p.ws()
		v, ok := p.value()
		if !ok {
			return false
		}
		if k >= 0 {
			vals[k] = v
			next = k + 1
		}
		p.ws()
		if p.i == len(p.b) {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.ws()
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// keyIndex returns the index in keys of the quoted key, -1 if unknown.
func keyIndex(keys []string, quoted []byte, esc bool) int {
	if len(keys) == 0 {
		return -1
	}
	key := content(quoted, esc)
	for k, name := range keys {
		if string(key) == name {
			return k
		}
	}
	return -1
}

func (p *parser) array() bool {
	p.i++ // '['
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return true
	}
	for {
		if _, ok := p.value(); !ok {
			return false
		}
		p.ws()
		if p.i == len(p.b) {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.ws()
		case ']':
			p.i++
			return true
		default:
			return false
		}
	}
}

func (p *parser) value() (value, bool) {
	if p.i == len(p.b) {
		return value{}, false
	}
	start := p.i
	switch c := p.b[p.i]; {
	case c == '"':
		esc, ok := p.str()
		return value{kind: kindString, esc: esc, start: int32(start), end: int32(p.i)}, ok
	case c == '{':
		ok := p.object(nil, nil)
		return value{kind: kindObject, start: int32(start), end: int32(p.i)}, ok
	case c == '[':
		ok := p.array()
		return value{kind: kindArray}, ok
	case c == 't':
		return value{kind: kindBool, t: true}, p.literal("true")
	case c == 'f':
		return value{kind: kindBool}, p.literal("false")
	case c == 'n':
		return value{kind: kindNull}, p.literal("null")
	case c == '-' || isDigit(c):
		ok := p.number()
		return value{kind: kindNumber, start: int32(start), end: int32(p.i)}, ok
	}
	return value{}, false
}

func (p *parser) literal(lit string) bool {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return false
	}
	p.i += len(lit)
	return true
}

// str checks the string at p.i and moves past it; esc reports escapes.
// With p.scan it counts, in the same pass, the digits and hex digits of the
// string: text with fewer than 10 digits and 26 hex digits cannot hold card
// data under any rule (see prescan), and most keys and values have far
// fewer. Only the rest, and text with escapes or bytes outside printable
// ASCII, go through ContainsCardData's rules.
func (p *parser) str() (esc, ok bool) {
	b := p.b
	var digits, hexes int
	var seen uint8 // the classes of the bytes met
	for i := p.i + 1; i < len(b); {
		c := b[i]
		k := strClass[c]
		if k&clStop == 0 {
			seen |= k
			digits += int(k & clDigit)
			hexes += int(k&clHex) >> 1
			i++
			continue
		}
		switch {
		case c == '"':
			if seen&clOdd != 0 {
				p.odd = true
			}
			if p.scan && (esc || seen&clOdd != 0 || digits >= 10 || hexes >= 26) && stringCardData(b[p.i+1:i], esc) {
				p.card = true
				return esc, false
			}
			p.i = i + 1
			return esc, true
		case c == '\\':
			esc = true
			if i+1 == len(b) {
				return esc, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(b[i+2:]); !ok {
					return esc, false
				}
				i += 6
			default:
				return esc, false
			}
		default: // a control character
			return esc, false
		}
	}
	return esc, false
}

// The classes of bytes in a JSON string, for parser.str.
const (
	clDigit = 1 << iota // 0-9
	clHex               // 0-9 a-f A-F
	clOdd               // DEL or not ASCII: text for the normalising rules
	clStop              // '"', '\\' or a control character
)

var strClass = byteClasses(func(c byte) uint8 {
	switch {
	case c == '"' || c == '\\' || c < ' ':
		return clStop
	case c >= 0x7f:
		return clOdd
	}
	return 0
})

// stringCardData is jsonCardData for the inside of one JSON string.
func stringCardData(s []byte, esc bool) bool {
	if esc {
		s = unescape(s)
	}
	return containsCardDataBytes(s)
}

// number checks the JSON number at p.i and moves past it.
func (p *parser) number() bool {
	b, i := p.b, p.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i == len(b):
		return false
	case b[i] == '0':
		i++
	case isDigit(b[i]):
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		// Of a number, the integer part can be a card number (see
		// jsonCardData): 13 digits at least.
		if p.scan && i-start >= 13 && cardRun(b[start:i]) {
			p.card = true
			return false
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	p.i = i
	return true
}
