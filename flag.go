package posfleet

import (
	"fmt"
	"time"
)

// FlagName names one health flag of PROTOCOL.md §2.
type FlagName string

// The health flags of PROTOCOL.md §2, spelled as in the JSON contract.
const (
	FlagOffline          FlagName = "offline"
	FlagFirmwareOutdated FlagName = "firmware_outdated"
	FlagFirmwareBlocked  FlagName = "firmware_blocked"
	FlagUpdateFailed     FlagName = "update_failed"
	FlagAmountMismatch   FlagName = "amount_mismatch"
	FlagTxnFailures      FlagName = "txn_failures"
	FlagReceiptFailures  FlagName = "receipt_failures"
	FlagRefundAnomaly    FlagName = "refund_anomaly"
	FlagHardwareFault    FlagName = "hardware_fault"
	FlagTamper           FlagName = "tamper"
	FlagWeakNetwork      FlagName = "weak_network"
	FlagBattery          FlagName = "battery"
	FlagClockSkew        FlagName = "clock_skew"
	// FlagBadData is a compatible extension of PROTOCOL.md §2 (README,
	// "PROTOCOL extensions"): a connected terminal whose messages are all
	// rejected. Its absence from a client's list of flags changes nothing
	// else.
	FlagBadData FlagName = "bad_data"
	// FlagFallbackRate and FlagMoved are compatible extensions of
	// PROTOCOL.md §2 (README, "PROTOCOL extensions"): chip-to-stripe
	// fallbacks above a rate (a worn chip reader, or skimming), and a
	// terminal reporting a location far from its provisioned site (a
	// stolen or re-sited terminal). A terminal that sends no fallbacks or
	// no location never raises them.
	FlagFallbackRate FlagName = "fallback_rate"
	FlagMoved        FlagName = "moved"
	// FlagSilent, FlagWearDue: more compatible extensions (README,
	// "PROTOCOL extensions"). silent: a terminal online but not selling in
	// hours in which it usually sells, learned from its own history (the
	// shop may be closed for the day, or its cashiers may have given up on
	// it: someone calls the merchant before a crew drives there). wear_due:
	// a part (printer head, chip reader, battery) forecast to reach its
	// rated life within a horizon, from optional counters in hb, so that a
	// crew brings it on a visit. A terminal without a sales history or
	// without the counters never raises them.
	FlagSilent  FlagName = "silent"
	FlagWearDue FlagName = "wear_due"
)

// FlagKind says who acts on a flag: a crew on site, a firmware update, or
// someone looking into the transactions.
type FlagKind string

// The flag kinds of PROTOCOL.md §2.
const (
	KindMaintenance FlagKind = "maintenance"
	KindUpdate      FlagKind = "update"
	KindInvestigate FlagKind = "investigate"
)

// FlagSpec is what the vocabulary says about one flag: its name, who acts on
// it and whether it is urgent whatever its evidence.
type FlagSpec struct {
	Name FlagName
	Kind FlagKind
	// Urgent: PROTOCOL.md §2 marks a blocked firmware and tamper as urgent.
	Urgent bool
}

// FlagSpecs is the one table of flag identity, in the order of PROTOCOL.md
// §2, which is the order in which a terminal's flags are reported. Other
// packages derive their indices and masks from it (health's flag index is a
// flag's position here), so a flag is added or moved in this table only.
var FlagSpecs = [...]FlagSpec{
	{Name: FlagOffline, Kind: KindMaintenance},
	{Name: FlagFirmwareOutdated, Kind: KindUpdate},
	{Name: FlagFirmwareBlocked, Kind: KindUpdate, Urgent: true},
	{Name: FlagUpdateFailed, Kind: KindUpdate},
	{Name: FlagAmountMismatch, Kind: KindInvestigate},
	{Name: FlagTxnFailures, Kind: KindMaintenance},
	{Name: FlagReceiptFailures, Kind: KindMaintenance},
	{Name: FlagRefundAnomaly, Kind: KindInvestigate},
	{Name: FlagHardwareFault, Kind: KindMaintenance},
	{Name: FlagTamper, Kind: KindMaintenance, Urgent: true},
	{Name: FlagWeakNetwork, Kind: KindMaintenance},
	{Name: FlagBattery, Kind: KindMaintenance},
	{Name: FlagClockSkew, Kind: KindMaintenance},
	// After the flags of §2, so that their indices (and snapshots) stay.
	{Name: FlagBadData, Kind: KindInvestigate},
	{Name: FlagFallbackRate, Kind: KindMaintenance},
	{Name: FlagMoved, Kind: KindInvestigate},
	{Name: FlagSilent, Kind: KindInvestigate},
	{Name: FlagWearDue, Kind: KindMaintenance},
}

// FlagNames lists every flag's name in the order of FlagSpecs.
var FlagNames = func() []FlagName {
	out := make([]FlagName, len(FlagSpecs))
	for i, s := range FlagSpecs {
		out[i] = s.Name
	}
	return out
}()

// FlagIndex returns f's position in FlagSpecs, or -1 for an unknown flag.
func FlagIndex(f FlagName) int {
	for i := range FlagSpecs {
		if FlagSpecs[i].Name == f {
			return i
		}
	}
	return -1
}

// Spec returns the flag's entry of FlagSpecs; the zero FlagSpec (no kind)
// for an unknown flag.
func (f FlagName) Spec() FlagSpec {
	if i := FlagIndex(f); i >= 0 {
		return FlagSpecs[i]
	}
	return FlagSpec{}
}

// ParseFlagName returns the flag named s, or an error naming the valid flags
// (an API filter with a typo must be refused, not silently match nothing).
func ParseFlagName(s string) (FlagName, error) {
	if i := FlagIndex(FlagName(s)); i >= 0 {
		return FlagSpecs[i].Name, nil
	}
	return "", fmt.Errorf("unknown flag %q: want one of %v", s, FlagNames)
}

// Kind returns the flag's kind; the empty kind for an unknown flag.
func (f FlagName) Kind() FlagKind { return f.Spec().Kind }

// Urgent reports whether the flag is urgent whatever its evidence.
func (f FlagName) Urgent() bool { return f.Spec().Urgent }

// Flag is one raised health flag of a terminal with the evidence that raised it.
type Flag struct {
	Name FlagName `json:"flag"`
	Kind FlagKind `json:"kind"`
	// Since is when the flag was raised (by the time of its first evidence).
	Since time.Time `json:"since"`
	// Urgent is set for flags that need action before anything else
	// (tamper, a blocked firmware, firmware below the policy's minimum).
	Urgent bool `json:"urgent,omitempty"`
	// Evidence holds the numbers, timestamps and transaction IDs that raised
	// the flag: the flag's evidence type of evidence.go (*OfflineEvidence
	// for offline, and so on).
	Evidence Evidence `json:"evidence"`
}

// Cause is who or what a failed transaction is to be blamed on (DOMAIN.md,
// "Telling causes apart").
type Cause string

// The causes of a failed transaction. CauseNone is an approved transaction.
const (
	CauseNone     Cause = ""
	CauseCard     Cause = "card"
	CauseHost     Cause = "host"
	CauseNetwork  Cause = "network"
	CauseTerminal Cause = "terminal"
	CauseOperator Cause = "operator"
)

// Causes lists the causes of failure in a stable order for reports.
var Causes = []Cause{CauseCard, CauseHost, CauseNetwork, CauseTerminal, CauseOperator}

// CountsAgainstTerminal reports whether a failure of this cause says
// something is wrong with the terminal or its link (PROTOCOL.md §2,
// txn_failures): card-side declines, the bank and the cashier do not.
func (c Cause) CountsAgainstTerminal() bool { return c == CauseTerminal || c == CauseNetwork }

// ClassifyTransaction returns the cause of a transaction's failure, or
// CauseNone when it was approved. It looks at one transaction alone, so a
// timeout is blamed on the network; whether many terminals timed out at once
// (a host incident) only the fleet view can tell, see HostSideFailure.
func ClassifyTransaction(t *Transaction) Cause {
	switch t.Result {
	case ResultApproved:
		return CauseNone
	case ResultCancelled:
		// The cashier or the cardholder stopped it at the counter.
		return CauseOperator
	case ResultTimeout:
		return CauseNetwork
	}
	switch t.RC {
	case "14", "51", "54", "55", "57", "41", "43", "05":
		return CauseCard
	case "91", "96", "68":
		return CauseHost
	case "13":
		return CauseOperator
	case "12", "30":
		// 12 invalid transaction and 30 format error: the host could not
		// make sense of what the terminal sent.
		return CauseTerminal
	}
	if t.Result == ResultError {
		// An error with no host answer (or an unknown one) happened in the
		// terminal: reader, application, storage.
		return CauseTerminal
	}
	if t.RC == "" {
		// A decline without a response code was decided by the terminal
		// itself (offline limits, chip refusal).
		return CauseTerminal
	}
	// Any other decline code is the issuer's decision about this card.
	return CauseCard
}

// HostSideFailure reports whether a transaction failed the way a host outage
// makes transactions fail (PROTOCOL.md §2, incidents): response code 91, 96
// or 68, or a timeout.
func HostSideFailure(t *Transaction) bool {
	if t.Result == ResultTimeout {
		return true
	}
	if t.Result == ResultApproved {
		return false
	}
	switch t.RC {
	case "91", "96", "68":
		return true
	}
	return false
}
