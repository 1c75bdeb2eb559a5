package posfleet

// MessageCounts are what the pipeline did with one terminal's messages
// besides storing them, since the collector started: seq gaps (messages the
// terminal never delivered), duplicates dropped, seq resets (the terminal
// counting again from a lower seq: a wiped outbox, a re-provisioning),
// rejections by reason and security events by kind.
type MessageCounts struct {
	Gaps       int64                  `json:"seq_gaps"`
	Duplicates int64                  `json:"duplicates"`
	SeqResets  int64                  `json:"seq_resets"`
	Rejected   map[Reason]int64       `json:"rejected"`
	Security   map[SecurityKind]int64 `json:"security_events"`
}
