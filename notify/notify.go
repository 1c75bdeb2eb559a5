// Package notify delivers the notifications outbox (the alarm package
// writes it): a Dispatcher, under the lease "notify", takes the due
// notifications, renders each for its channel's type and sends it, with
// retries and backoff, a rate limit per channel, and the daily digests.
//
// Delivery is at least once: a notification is marked sent only after the
// receiver accepted it, so a process killed in between sends it again
// after restart, with the same ID (receivers drop repeats by it).
package notify

import (
	"context"
	"errors"

	"github.com/posfleet/posfleet"
)

// Target is a channel with its write-only parts and its readers' time
// zone: what a Sender needs.
type Target struct {
	posfleet.NotifyChannel
	URL    string
	Secret string
	// TimeZone is the IANA zone of the times in its messages (its route's,
	// else its tenant's default); "" is its language's default
	// (locale.DefaultZone: Asia/Shanghai for zh-CN, UTC otherwise).
	TimeZone string
}

// Sender delivers one message to one channel.
type Sender interface {
	Send(ctx context.Context, t Target, m posfleet.NotifyMessage) error
}

// PermanentError is a refusal that retrying cannot fix (a bad URL, a 4xx
// other than 408 and 429, a chat service's "invalid token"). The
// dispatcher still keeps the notification (nothing is lost), but retries
// it at the longest backoff and shows the error.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
