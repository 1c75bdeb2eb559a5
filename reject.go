package posfleet

import "fmt"

// Reason says why a message was rejected. Reasons are stable identifiers:
// they are metric labels, InfluxDB tags and API values.
type Reason string

// The rejection reasons of PROTOCOL.md §1 "Bad input".
const (
	ReasonTooLarge       Reason = "too_large"       // payload over MaxPayloadBytes
	ReasonNotJSON        Reason = "not_json"        // not a UTF-8 JSON object
	ReasonMissingSeq     Reason = "missing_seq"     // no seq
	ReasonMissingTS      Reason = "missing_ts"      // no ts
	ReasonMissingField   Reason = "missing_field"   // a field the channel requires is absent
	ReasonWrongType      Reason = "wrong_type"      // a field has the wrong JSON type
	ReasonOutOfRange     Reason = "out_of_range"    // a value outside its range or enumeration
	ReasonUnknownChannel Reason = "unknown_channel" // the topic's last level is no uplink channel
	ReasonCardData       Reason = "card_data"       // a PAN-like number (13-19 digits, Luhn) anywhere
)

// Reasons lists every rejection reason, for metrics initialisation and docs.
var Reasons = []Reason{
	ReasonTooLarge, ReasonNotJSON, ReasonMissingSeq, ReasonMissingTS, ReasonMissingField,
	ReasonWrongType, ReasonOutOfRange, ReasonUnknownChannel, ReasonCardData,
}

// Rejection is the error for a message that is refused. Detail names the
// field and the rule, never the value: a rejected payload may hold card data
// and nothing of it may reach logs or pages.
type Rejection struct {
	Reason Reason
	Field  string // the JSON field at fault, "" when the whole message is
	Detail string
}

// Error implements error.
func (r *Rejection) Error() string {
	s := "rejected: " + string(r.Reason)
	if r.Field != "" {
		s += ": " + r.Field
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	return s
}

func reject(reason Reason, field, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Field: field, Detail: fmt.Sprintf(format, args...)}
}
