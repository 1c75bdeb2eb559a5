// Package journal keeps what people and terminals did in the control-plane
// database (package store, tables of migration 00004_journal), so that it
// survives a restart and every web replica shows the same:
//
//   - commands sent to terminals and their acks (Commands, the Store of a
//     commands.Tracker);
//   - the firmware policy's versions (AddPolicy, LatestPolicy,
//     PolicyHistory, ImportPolicyFile);
//   - crew visits (AddVisit, PendingVisits, VisitsToApply, MarkVisitApplied, Visits);
//   - security events and rejections (EventWriter, the collector's event
//     sink; Events, their reader for the web), bounded by Prune.
//
// Every function works on SQLite and PostgreSQL alike (one SQL text, $n
// parameters, times in Unix milliseconds, IDs made here).
package journal

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// newID returns a random ID of 32 hex digits.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// timeout bounds one call of an interface without a context of its own.
const timeout = 10 * time.Second
