package posfleet

import (
	"encoding/json"
	"fmt"
	"time"
)

// Evidence is what raised one flag: one struct per flag, in this file. The
// JSON of each struct is the flag's "evidence" object of PROTOCOL.md §3;
// its fields are declared in the order of their JSON keys (sorted, as they
// were when evidence was a map), and a key that is present only in some
// cases is a pointer or omitted when zero, so the API's bytes stay as they
// were.
type Evidence interface {
	// EvidenceFor returns the flag this evidence explains.
	EvidenceFor() FlagName
}

// NewEvidence returns an empty evidence value of flag f's type, or nil for
// an unknown flag.
func NewEvidence(f FlagName) Evidence {
	switch f {
	case FlagOffline:
		return &OfflineEvidence{}
	case FlagFirmwareOutdated:
		return &FirmwareOutdatedEvidence{}
	case FlagFirmwareBlocked:
		return &FirmwareBlockedEvidence{}
	case FlagUpdateFailed:
		return &UpdateFailedEvidence{}
	case FlagAmountMismatch:
		return &AmountMismatchEvidence{}
	case FlagTxnFailures:
		return &TxnFailuresEvidence{}
	case FlagReceiptFailures:
		return &ReceiptFailuresEvidence{}
	case FlagRefundAnomaly:
		return &RefundAnomalyEvidence{}
	case FlagHardwareFault:
		return &HardwareFaultEvidence{}
	case FlagTamper:
		return &TamperEvidence{}
	case FlagWeakNetwork:
		return &WeakNetworkEvidence{}
	case FlagBattery:
		return &BatteryEvidence{}
	case FlagClockSkew:
		return &ClockSkewEvidence{}
	case FlagBadData:
		return &BadDataEvidence{}
	case FlagFallbackRate:
		return &FallbackRateEvidence{}
	case FlagMoved:
		return &MovedEvidence{}
	case FlagSilent:
		return &SilentEvidence{}
	case FlagWearDue:
		return &WearDueEvidence{}
	}
	return nil
}

// DecodeEvidence decodes the JSON evidence of flag f; JSON null is nil.
func DecodeEvidence(f FlagName, data []byte) (Evidence, error) {
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	ev := NewEvidence(f)
	if ev == nil {
		return nil, fmt.Errorf("evidence: unknown flag %q", f)
	}
	if err := json.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("evidence of %s: %w", f, err)
	}
	return ev, nil
}

// UnmarshalJSON decodes a flag with the evidence type of its name.
func (f *Flag) UnmarshalJSON(data []byte) error {
	type plain Flag
	var raw struct {
		plain
		Evidence json.RawMessage `json:"evidence"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	ev, err := DecodeEvidence(raw.Name, raw.Evidence)
	if err != nil {
		return err
	}
	*f = Flag(raw.plain)
	f.Evidence = ev
	return nil
}

// The reasons of OfflineEvidence.
const (
	// OfflineLastWill: the broker delivered the terminal's last will, its
	// connection ended without a goodbye.
	OfflineLastWill = "last_will"
	// OfflineNoMessage: nothing was heard for longer than the threshold.
	OfflineNoMessage = "no_message"
)

// OfflineEvidence explains offline.
type OfflineEvidence struct {
	LastSeen time.Time `json:"last_seen"`
	// LastTxn is the last transaction's time; zero when there was none.
	LastTxn time.Time `json:"last_txn,omitzero"`
	// Reason is OfflineLastWill or OfflineNoMessage.
	Reason string `json:"reason"`
	// SilentS and ThresholdS: for OfflineNoMessage, how long nothing was
	// heard and how long is allowed, in seconds.
	SilentS    *int64 `json:"silent_s,omitempty"`
	ThresholdS *int64 `json:"threshold_s,omitempty"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
	// WasSelling: the terminal took payments shortly before it went quiet.
	WasSelling bool `json:"was_selling"`
}

// FirmwareOutdatedEvidence explains firmware_outdated.
type FirmwareOutdatedEvidence struct {
	// BelowMinimum is set when the policy has a minimum.
	BelowMinimum *bool  `json:"below_minimum,omitempty"`
	Firmware     string `json:"firmware"`
	Minimum      string `json:"minimum,omitempty"`
	Model        string `json:"model"`
	// SHA256 is set when URL is.
	SHA256 *string `json:"sha256,omitempty"`
	Target string  `json:"target"`
	URL    string  `json:"url,omitempty"`
}

// FirmwareBlockedEvidence explains firmware_blocked.
type FirmwareBlockedEvidence struct {
	Blocked  []string `json:"blocked"`
	Firmware string   `json:"firmware"`
	Model    string   `json:"model"`
	// SHA256 is set when URL is.
	SHA256 *string `json:"sha256,omitempty"`
	Target string  `json:"target"`
	URL    string  `json:"url,omitempty"`
}

// UpdateFailedEvidence explains update_failed.
type UpdateFailedEvidence struct {
	Error      string    `json:"error"`
	Firmware   string    `json:"firmware"`
	ReportedAt time.Time `json:"reported_at"`
	Target     string    `json:"target"`
}

// AmountMismatchEvidence explains amount_mismatch.
type AmountMismatchEvidence struct {
	Count        int             `json:"count"`
	Transactions []MismatchedTxn `json:"transactions"`
	WindowH      int             `json:"window_h"`
}

// MismatchedTxn is an approved sale that charged another amount than the
// one entered (amounts in minor units).
type MismatchedTxn struct {
	AmountCharged int64     `json:"amount_charged"`
	AmountEntered int64     `json:"amount_entered"`
	At            time.Time `json:"at"`
	Currency      string    `json:"currency"`
	Difference    int64     `json:"difference"`
	ID            string    `json:"id"`
}

// TxnFailuresEvidence explains txn_failures.
type TxnFailuresEvidence struct {
	ByCause FailuresByCause `json:"by_cause"`
	// ChanceRate is the failure rate a terminal may have without a visit;
	// Chance is how likely such a terminal is to fail at least Failed of
	// Total (the flag needs it under the configured alpha, 1%).
	Chance     float64 `json:"chance"`
	ChanceRate float64 `json:"chance_rate"`
	// ExcusedByIncident counts host-side failures an incident explains;
	// omitted when none.
	ExcusedByIncident int `json:"excused_by_incident,omitempty"`
	Failed            int `json:"failed"`
	// Latest are the latest failures that count (null when none is kept).
	Latest    []FailedTxn `json:"latest"`
	Minimum   int         `json:"minimum"`
	Rate      float64     `json:"rate"`
	Threshold float64     `json:"threshold"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
	Total      int                `json:"total"`
}

// FailuresByCause counts the failures that count against a terminal.
type FailuresByCause struct {
	Network  int `json:"network"`
	Terminal int `json:"terminal"`
}

// FailedTxn is one failed transaction.
type FailedTxn struct {
	At     time.Time `json:"at"`
	Cause  Cause     `json:"cause"`
	ID     string    `json:"id"`
	Result string    `json:"result"`
}

// ReceiptFailuresEvidence explains receipt_failures.
type ReceiptFailuresEvidence struct {
	FailedReceipts int `json:"failed_receipts"`
	// Paper and PaperOutAt are set when the printer is out of paper.
	Paper      string    `json:"paper,omitempty"`
	PaperOutAt time.Time `json:"paper_out_at,omitzero"`
	Threshold  int       `json:"threshold"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
	// Transactions is omitted when none is in the window.
	Transactions []ReceiptTxn `json:"transactions,omitempty"`
	WindowH      int          `json:"window_h"`
}

// ReceiptTxn is an approved payment without a printed receipt.
type ReceiptTxn struct {
	At time.Time `json:"at"`
	ID string    `json:"id"`
}

// RefundAnomalyEvidence explains refund_anomaly.
type RefundAnomalyEvidence struct {
	Count        int         `json:"count"`
	Transactions []RefundTxn `json:"transactions"`
}

// RefundTxn is an anomalous refund; amounts in minor units, nil when the
// terminal did not send them.
type RefundTxn struct {
	Amount         *int64    `json:"amount,omitempty"`
	At             time.Time `json:"at"`
	ID             string    `json:"id"`
	OriginalAmount *int64    `json:"original_amount,omitempty"`
	// Reason is invalid_amount or exceeds_original.
	Reason string `json:"reason"`
}

// HardwareFaultEvidence explains hardware_fault.
type HardwareFaultEvidence struct {
	Faults []RaisedFault `json:"faults"`
}

// RaisedFault is an open fault that raises hardware_fault.
type RaisedFault struct {
	Code      string    `json:"code"`
	Component string    `json:"component"`
	Detail    string    `json:"detail"`
	Severity  string    `json:"severity"`
	Since     time.Time `json:"since"`
}

// TamperEvidence explains tamper.
type TamperEvidence struct {
	Events []TamperEvent `json:"events"`
}

// TamperEvent is one tamper fault a terminal reported.
type TamperEvent struct {
	At        time.Time `json:"at"`
	Code      string    `json:"code"`
	Component string    `json:"component"`
}

// WeakNetworkEvidence explains weak_network.
type WeakNetworkEvidence struct {
	Heartbeats int `json:"heartbeats"`
	// MedianSignalDBm and P90HostRTTMs are nil when no heartbeat had the reading.
	MedianSignalDBm    *float64 `json:"median_signal_dbm,omitempty"`
	P90HostRTTMs       *int     `json:"p90_host_rtt_ms,omitempty"`
	RTTThresholdMs     int      `json:"rtt_threshold_ms"`
	SignalThresholdDBm int      `json:"signal_threshold_dbm"`
	SlowHost           bool     `json:"slow_host"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
	WeakSignal bool               `json:"weak_signal"`
}

// BatteryEvidence explains battery: a low battery (BatteryPct, Charging,
// LowHeartbeats, LowSince, ThresholdPct) or heat (ReportedAt, TempC,
// TempThresholdC), or both; the fields of the other reason are nil or zero.
type BatteryEvidence struct {
	BatteryPct     *int      `json:"battery_pct,omitempty"`
	Charging       *bool     `json:"charging,omitempty"`
	LowHeartbeats  *int      `json:"low_heartbeats,omitempty"`
	LowSince       time.Time `json:"low_since,omitzero"`
	ReportedAt     time.Time `json:"reported_at,omitzero"`
	TempC          *float64  `json:"temp_c,omitempty"`
	TempThresholdC *float64  `json:"temp_threshold_c,omitempty"`
	ThresholdPct   *int      `json:"threshold_pct,omitempty"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
}

// ClockSkewEvidence explains clock_skew.
type ClockSkewEvidence struct {
	Heartbeats int       `json:"heartbeats"`
	ServerTS   time.Time `json:"server_ts"`
	// SkewS is the terminal's clock minus the server's, in seconds.
	SkewS      int64     `json:"skew_s"`
	TerminalTS time.Time `json:"terminal_ts"`
	ThresholdS int64     `json:"threshold_s"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
}

// BadDataEvidence explains bad_data: in the window, at least Threshold
// messages were rejected and fewer than the allowed share accepted (none,
// by default). It names the reasons, never a value of the messages.
type BadDataEvidence struct {
	// Accepted is how many messages were accepted in the window (counted
	// from the terminal's first rejection on).
	Accepted int64 `json:"accepted"`
	// ByReason counts the rejections in the window by reason.
	ByReason map[Reason]int64 `json:"by_reason"`
	// Count is how many messages were rejected in the window.
	Count         int64     `json:"count"`
	FirstRejected time.Time `json:"first_rejected"`
	// LastAccepted is the last accepted message, before the window; zero
	// when none ever was.
	LastAccepted time.Time `json:"last_accepted,omitzero"`
	LastRejected time.Time `json:"last_rejected"`
	// Share is the least share of rejected messages that raises the flag
	// (1: every message); Threshold the least count.
	Share     float64 `json:"share"`
	Threshold int     `json:"threshold"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
	WindowS    int64              `json:"window_s"`
}

// EvidenceFor implements Evidence.
func (*BadDataEvidence) EvidenceFor() FlagName { return FlagBadData }

// FallbackRateEvidence explains fallback_rate: of the terminal's last Total
// card-present chip transactions (entry chip or fallback), Count fell back
// to the stripe, at least Minimum and at least Threshold of them.
type FallbackRateEvidence struct {
	Count int `json:"count"`
	// Latest are the latest fallbacks, a sample; Count counts them all.
	Latest    []FallbackTxn `json:"latest"`
	Minimum   int           `json:"minimum"`
	Rate      float64       `json:"rate"`
	Threshold float64       `json:"threshold"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
	Total      int                `json:"total"`
	// Window is how many chip transactions the rule looks at.
	Window int `json:"window"`
}

// FallbackTxn is one transaction that fell back from chip to stripe.
type FallbackTxn struct {
	At time.Time `json:"at"`
	ID string    `json:"id"`
}

// EvidenceFor implements Evidence.
func (*FallbackRateEvidence) EvidenceFor() FlagName { return FlagFallbackRate }

// MovedEvidence explains moved: the terminal's reported location (Lat,
// Lon) is DistanceM metres from its provisioned site (SiteLat, SiteLon),
// farther than ThresholdM, in Heartbeats heartbeats in a row since Since.
type MovedEvidence struct {
	DistanceM  int64     `json:"distance_m"`
	Heartbeats int       `json:"heartbeats"`
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	Since      time.Time `json:"since"`
	SiteLat    float64   `json:"site_lat"`
	SiteLon    float64   `json:"site_lon"`
	ThresholdM int64     `json:"threshold_m"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
}

// EvidenceFor implements Evidence.
func (*MovedEvidence) EvidenceFor() FlagName { return FlagMoved }

// SilentEvidence explains silent: the terminal was heard in each of the
// Missed hours, in which it usually sells (learned over Weeks weeks of its
// own sales), and sold nothing since LastSale. Chance is how often so many
// usual hours pass without a sale in the terminal's own history; the flag
// needs at least MinimumHours of them and Chance at most Threshold.
type SilentEvidence struct {
	Chance   float64   `json:"chance"`
	LastSale time.Time `json:"last_sale,omitzero"`
	// MinimumHours is the fewest usual hours without a sale that raise it.
	MinimumHours int `json:"minimum_hours"`
	// Missed are the starts of the usual hours without a sale, oldest first.
	Missed    []time.Time `json:"missed"`
	Threshold float64     `json:"threshold"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
	Weeks      int                `json:"weeks"`
}

// EvidenceFor implements Evidence.
func (*SilentEvidence) EvidenceFor() FlagName { return FlagSilent }

// Wear parts, as WearForecast.Part names them.
const (
	WearPrinterHead = "printer_head"
	WearChipReader  = "chip_reader"
	WearBattery     = "battery"
)

// WearDueEvidence explains wear_due: the parts forecast to reach their
// rated life within HorizonDays days.
type WearDueEvidence struct {
	HorizonDays float64        `json:"horizon_days"`
	Parts       []WearForecast `json:"parts"`
	// Thresholds are the thresholds the rule applied, with their sources,
	// when an override set any of them; omitted when all are the defaults.
	Thresholds []AppliedThreshold `json:"thresholds,omitempty"`
}

// WearForecast is one part's forecast: its Counter (an hb field) is at
// Value and moves by PerDay a day (least squares over the samples of the
// last days), so it reaches RatedLife (for battery_health_pct: falls to
// it) in DaysLeft days (0: already there).
type WearForecast struct {
	Counter   string  `json:"counter"`
	DaysLeft  float64 `json:"days_left"`
	Part      string  `json:"part"`
	PerDay    float64 `json:"per_day"`
	RatedLife int64   `json:"rated_life"`
	Samples   int     `json:"samples"`
	Value     int64   `json:"value"`
}

// EvidenceFor implements Evidence.
func (*WearDueEvidence) EvidenceFor() FlagName { return FlagWearDue }

// EvidenceFor implements Evidence.
func (*OfflineEvidence) EvidenceFor() FlagName { return FlagOffline }

// EvidenceFor implements Evidence.
func (*FirmwareOutdatedEvidence) EvidenceFor() FlagName { return FlagFirmwareOutdated }

// EvidenceFor implements Evidence.
func (*FirmwareBlockedEvidence) EvidenceFor() FlagName { return FlagFirmwareBlocked }

// EvidenceFor implements Evidence.
func (*UpdateFailedEvidence) EvidenceFor() FlagName { return FlagUpdateFailed }

// EvidenceFor implements Evidence.
func (*AmountMismatchEvidence) EvidenceFor() FlagName { return FlagAmountMismatch }

// EvidenceFor implements Evidence.
func (*TxnFailuresEvidence) EvidenceFor() FlagName { return FlagTxnFailures }

// EvidenceFor implements Evidence.
func (*ReceiptFailuresEvidence) EvidenceFor() FlagName { return FlagReceiptFailures }

// EvidenceFor implements Evidence.
func (*RefundAnomalyEvidence) EvidenceFor() FlagName { return FlagRefundAnomaly }

// EvidenceFor implements Evidence.
func (*HardwareFaultEvidence) EvidenceFor() FlagName { return FlagHardwareFault }

// EvidenceFor implements Evidence.
func (*TamperEvidence) EvidenceFor() FlagName { return FlagTamper }

// EvidenceFor implements Evidence.
func (*WeakNetworkEvidence) EvidenceFor() FlagName { return FlagWeakNetwork }

// EvidenceFor implements Evidence.
func (*BatteryEvidence) EvidenceFor() FlagName { return FlagBattery }

// EvidenceFor implements Evidence.
func (*ClockSkewEvidence) EvidenceFor() FlagName { return FlagClockSkew }
