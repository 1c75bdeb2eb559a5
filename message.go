package posfleet

import "time"

// MaxPayloadBytes is the largest payload the protocol accepts (PROTOCOL.md §1).
const MaxPayloadBytes = 16 << 10

// Header is carried by every uplink message except status.
type Header struct {
	// Seq increases by one with every message of a terminal, on any channel,
	// across reboots; the server uses it to drop duplicates and count gaps.
	Seq int64 `json:"seq"`
	// TS is when it happened, by the terminal's clock.
	TS time.Time `json:"ts"`
}

// Network types a heartbeat reports in Heartbeat.Net.
const (
	NetEthernet = "eth"
	NetWiFi     = "wifi"
	Net2G       = "2g"
	Net3G       = "3g"
	Net4G       = "4g"
	Net5G       = "5g"
)

// Paper states a heartbeat reports in Heartbeat.Paper.
const (
	PaperOK  = "ok"
	PaperLow = "low"
	PaperOut = "out"
)

// Heartbeat is the periodic "I am alive" message on the hb channel.
// Optional numbers are pointers: absent is not zero (a mains-powered model
// has no battery, a terminal that never reached the host has no round trip).
type Heartbeat struct {
	Header
	UptimeS     *int64   `json:"uptime_s,omitempty"`
	BatteryPct  *int     `json:"battery_pct,omitempty"`
	Charging    *bool    `json:"charging,omitempty"`
	TempC       *float64 `json:"temp_c,omitempty"`
	SignalDBm   *int     `json:"signal_dbm,omitempty"`
	Net         string   `json:"net,omitempty"`
	HostRTTMs   *int     `json:"host_rtt_ms,omitempty"`
	Paper       string   `json:"paper,omitempty"`
	PendingTxns *int     `json:"pending_txns,omitempty"`
	// Lat and Lon are where the terminal says it is (WGS 84 degrees, from
	// its GPS or its cell), an optional extension of PROTOCOL §1 (README,
	// "PROTOCOL extensions"): both or neither.
	Lat *float64 `json:"lat,omitempty"`
	Lon *float64 `json:"lon,omitempty"`
	// Prints, CardInsertions and BatteryCycles are lifetime counters of the
	// parts that wear out (printer head, chip reader, battery), and
	// BatteryHealthPct the battery's capacity left (0–100): optional
	// extensions of PROTOCOL §1 (README, "PROTOCOL extensions") for the
	// wear_due forecast. A counter that goes down is a new part.
	Prints           *int64 `json:"prints,omitempty"`
	CardInsertions   *int64 `json:"card_insertions,omitempty"`
	BatteryCycles    *int64 `json:"battery_cycles,omitempty"`
	BatteryHealthPct *int   `json:"battery_health_pct,omitempty"`
}

// Components a fault can name in Fault.Component.
const (
	ComponentPrinter       = "printer"
	ComponentMSR           = "msr"
	ComponentICC           = "icc"
	ComponentNFC           = "nfc"
	ComponentKeypad        = "keypad"
	ComponentDisplay       = "display"
	ComponentBattery       = "battery"
	ComponentModem         = "modem"
	ComponentSecureElement = "secure_element"
	ComponentStorage       = "storage"
	ComponentClock         = "clock"
	ComponentApp           = "app"
)

// Fault severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Fault states.
const (
	FaultRaised  = "raised"
	FaultCleared = "cleared"
)

// MaxFaultDetail is the longest Fault.Detail, in characters.
const MaxFaultDetail = 256

// Fault is a hardware or software fault raised or cleared, on the fault channel.
type Fault struct {
	Header
	Component string `json:"component"`
	Code      string `json:"code"`
	Severity  string `json:"severity"`
	State     string `json:"state"`
	Detail    string `json:"detail,omitempty"`
}

// Boot reasons of Inventory.BootReason.
const (
	BootPowerOn  = "power_on"
	BootUpdate   = "update"
	BootWatchdog = "watchdog"
	BootCrash    = "crash"
	BootUser     = "user"
)

// Update statuses of UpdateAttempt.Status.
const (
	UpdateDownloading = "downloading"
	UpdateInstalled   = "installed"
	UpdateFailed      = "failed"
)

// UpdateAttempt is the outcome of the last firmware update a terminal tried.
type UpdateAttempt struct {
	Target string `json:"target"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Inventory is what a terminal is and runs, on the retained fw channel.
type Inventory struct {
	Header
	Model      string         `json:"model"`
	Serial     string         `json:"serial,omitempty"`
	Firmware   string         `json:"firmware"`
	App        string         `json:"app,omitempty"`
	BootReason string         `json:"boot_reason,omitempty"`
	Update     *UpdateAttempt `json:"update,omitempty"`
}

// Transaction types.
const (
	TxnSale       = "sale"
	TxnRefund     = "refund"
	TxnVoid       = "void"
	TxnPreauth    = "preauth"
	TxnCompletion = "completion"
)

// Entry modes.
const (
	EntrySwipe    = "swipe"
	EntryChip     = "chip"
	EntryTap      = "tap"
	EntryQR       = "qr"
	EntryManual   = "manual"
	EntryFallback = "fallback" // chip failed, stripe used
)

// Transaction results.
const (
	ResultApproved  = "approved"
	ResultDeclined  = "declined"
	ResultError     = "error"
	ResultTimeout   = "timeout"
	ResultCancelled = "cancelled"
)

// Receipt outcomes.
const (
	ReceiptPrinted = "printed"
	ReceiptFailed  = "failed"
	ReceiptSkipped = "skipped"
)

// Transaction is one payment, refund or void on the txn channel. It never
// carries card data. Amounts are integers in minor units (fen, cents).
type Transaction struct {
	Header
	ID             string `json:"id"`
	Type           string `json:"type"`
	Entry          string `json:"entry,omitempty"`
	Currency       string `json:"currency,omitempty"`
	AmountEntered  *int64 `json:"amount_entered,omitempty"`
	AmountCharged  *int64 `json:"amount_charged,omitempty"`
	OriginalID     string `json:"original_id,omitempty"`
	OriginalAmount *int64 `json:"original_amount,omitempty"`
	Result         string `json:"result"`
	RC             string `json:"rc,omitempty"`
	HostMs         *int   `json:"host_ms,omitempty"`
	Receipt        string `json:"receipt,omitempty"`
	Offline        bool   `json:"offline,omitempty"`
	// Host is the acquirer or switch that answered (or failed to), an
	// optional extension of PROTOCOL §1 (README, "PROTOCOL extensions"):
	// host incidents are grouped by it.
	Host string `json:"host,omitempty"`
}

// Status is the retained online state; {"online":false} is the terminal's last will.
type Status struct {
	Online bool `json:"online"`
}

// Ack statuses.
const (
	AckAccepted = "accepted"
	AckRejected = "rejected"
	AckDone     = "done"
	AckFailed   = "failed"
)

// Ack is a terminal's answer to a command, on the ack channel.
type Ack struct {
	Header
	CmdID  string `json:"cmd_id"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Command types.
const (
	CmdUpdateFirmware = "update_firmware"
	CmdReboot         = "reboot"
)

// Command is sent by the server to a terminal's cmd topic.
type Command struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Target string `json:"target,omitempty"`
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Message is one decoded, validated uplink message. Exactly one of the
// channel pointers is set, matching Channel.
type Message struct {
	Terminal TerminalRef
	Channel  Channel
	// Received is when the server accepted it, by the server's clock.
	Received time.Time

	Heartbeat *Heartbeat
	Fault     *Fault
	Inventory *Inventory
	Txn       *Transaction
	Status    *Status
	Ack       *Ack

	// block is what Decode allocated the message in, for Release; nil for
	// a message made otherwise.
	block pooledBlock
}

// Release hands a message Decode returned back for reuse by a later
// Decode: the caller, and whatever it gave the message to, must not use
// the message or any pointer into it afterwards (its strings stay valid:
// they are never reused). Releasing is optional: a message never
// released is garbage collected. Release does nothing on a message Decode
// did not make, or one released already.
func (m *Message) Release() {
	if b := m.block; b != nil {
		m.block = nil
		b.release()
	}
}

// Header returns the message's seq and ts; the zero Header for status.
func (m *Message) Header() Header {
	switch {
	case m.Heartbeat != nil:
		return m.Heartbeat.Header
	case m.Fault != nil:
		return m.Fault.Header
	case m.Inventory != nil:
		return m.Inventory.Header
	case m.Txn != nil:
		return m.Txn.Header
	case m.Ack != nil:
		return m.Ack.Header
	}
	return Header{}
}
