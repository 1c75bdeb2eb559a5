package posfleet

import "time"

// SeriesPoint is one value of a time series at the start of its window.
type SeriesPoint struct {
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
}

// TxnSummary is one transaction as the terminal page lists it: identifiers,
// amounts and outcome only (the store never holds card data).
type TxnSummary struct {
	At            time.Time `json:"at"`
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Result        string    `json:"result"`
	Entry         string    `json:"entry,omitempty"`
	RC            string    `json:"rc,omitempty"`
	Currency      string    `json:"currency,omitempty"`
	AmountEntered *int64    `json:"amount_entered,omitempty"`
	AmountCharged *int64    `json:"amount_charged,omitempty"`
}

// Mismatch reports whether the amount charged differs from the amount entered.
func (t TxnSummary) Mismatch() bool {
	return t.AmountEntered != nil && t.AmountCharged != nil && *t.AmountEntered != *t.AmountCharged
}

// TerminalSeries is what the terminal page charts over a span ending at End.
type TerminalSeries struct {
	Start, End time.Time
	// Step is the width of the heartbeat windows (their mean) and Bucket
	// that of the transaction counts.
	Step, Bucket time.Duration
	Battery      []SeriesPoint // battery_pct
	Signal       []SeriesPoint // signal_dbm
	HostRTT      []SeriesPoint // host_rtt_ms
	// TxnsByResult counts transactions per Bucket by result (approved,
	// declined, error, timeout, cancelled); every result has every bucket.
	TxnsByResult map[string][]SeriesPoint
	// Mismatches counts approved sales with amount_charged ≠ amount_entered per Bucket.
	Mismatches []SeriesPoint
	// Recent are the latest transactions, newest first (at most the
	// store's limit, influxdb.MaxRecent).
	Recent []TxnSummary
}

// RejectionEvent is one refused message, without its payload, as the
// collector keeps it for the security page.
type RejectionEvent struct {
	Time     time.Time
	Terminal TerminalRef
	Channel  Channel
	Reason   Reason
	Field    string
	// Count is how many rejections of this terminal, channel and reason
	// the record stands for: 1 (or 0, read as 1) for a single one, more for
	// the summary of an aggregation window (collector Options.EventWindow).
	Count int64
}

// SecurityRecord is a security event as stored: Known says whether the
// terminal it names is provisioned (otherwise the name is only what the
// client claimed).
type SecurityRecord struct {
	SecurityEvent
	Known bool
	// Count is how many events of this kind, name and source address the
	// record stands for: 1 (or 0, read as 1) for a single event, more for
	// the summary of an aggregation window (collector Options.EventWindow).
	Count int64
}
