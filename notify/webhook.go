package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
)

// WebhookPayload is the body of a webhook notification: webhook channels
// POST one JSON document per notification.
//
// # Body
//
// Content-Type: application/json; the schema is
// notify/testdata/schemas/webhook.json (JSON Schema 2020-12):
//
//	{
//	  "id":        "…",          // the notification's ID: drop repeats by it
//	  "event":     "raised",     // raised | resolved | digest | summary | test
//	  "tenant":    "acme",
//	  "time":      "2026-12-03T02:00:00Z",  // when the event happened (RFC 3339)
//	  "url":       "https://posfleet.example/terminals/acme/T-0001",
//	  "alarm_url": "https://posfleet.example/alarms/…",  // raised and resolved only
//	  "alarm":     {…},          // raised and resolved: the alarm (the API's Alarm JSON, without evidence)
//	  "alarms":    [{…}, …],     // digest: its alarms
//	  "held":      12            // summary: how many notifications the rate limit held back
//	}
//
// Absent members are omitted, never null. Receivers must ignore members
// they do not know: new ones may be added.
//
// # Headers
//
//	X-Posfleet-Notification-Id: <id>            (the body's "id")
//	X-Posfleet-Timestamp:       <Unix seconds when sent>
//	X-Posfleet-Signature:       sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// The signature is sent only when the channel has a secret. A retry is a
// new request: same ID and body, new timestamp and signature.
//
// # Verifying
//
// Take the raw body bytes (before any JSON parsing), compute
// HMAC-SHA256 with the channel's secret over the timestamp header's
// value, a ".", and the body; compare its lowercase hex with the
// signature after "sha256=" in constant time; refuse a timestamp more
// than a few minutes from your clock (a replayed request), then drop
// an ID already seen. In Go: VerifyWebhook. In a shell:
//
//	printf '%s.%s' "$timestamp" "$body" | openssl dgst -sha256 -hmac "$secret"
//
// Answer 2xx once the notification is stored: anything else is retried
// (5xx, 408 and 429 soon, other 4xx at the longest backoff).
type WebhookPayload struct {
	ID       string                     `json:"id"`
	Event    posfleet.NotificationEvent `json:"event"`
	Tenant   string                     `json:"tenant"`
	Time     time.Time                  `json:"time"`
	URL      string                     `json:"url"`
	AlarmURL string                     `json:"alarm_url,omitempty"`
	Alarm    *posfleet.Alarm            `json:"alarm,omitempty"`
	Alarms   []posfleet.Alarm           `json:"alarms,omitempty"`
	Held     int                        `json:"held,omitempty"`
}

// The webhook's headers.
const (
	HeaderNotificationID = "X-Posfleet-Notification-Id"
	HeaderTimestamp      = "X-Posfleet-Timestamp"
	HeaderSignature      = "X-Posfleet-Signature"
)

// DefaultWebhookTolerance is how far a webhook's timestamp may be from the
// receiver's clock: room for clock skew and a slow network, too little
// for a captured request to be replayed much later.
const DefaultWebhookTolerance = 5 * time.Minute

// Errors of VerifyWebhook.
var (
	ErrWebhookSignature = errors.New("notify: webhook signature missing or wrong")
	ErrWebhookTimestamp = errors.New("notify: webhook timestamp missing or outside the tolerance")
)

func webhookPayload(m posfleet.NotifyMessage) WebhookPayload {
	p := WebhookPayload{
		ID: m.ID, Event: m.Event, Tenant: m.Tenant, Time: m.Time.UTC(),
		URL: m.URL, AlarmURL: m.AlarmURL, Held: m.Held,
	}
	// Evidence stays on the alarm page: it may name transactions, and the
	// receiver is outside posfleet's control.
	if m.Alarm != nil {
		a := *m.Alarm
		a.Evidence = nil
		p.Alarm = &a
	}
	for _, a := range m.Alarms {
		a.Evidence = nil
		p.Alarms = append(p.Alarms, a)
	}
	return p
}

// signWebhook is the X-Posfleet-Signature value of body sent at ts.
func signWebhook(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (s *Senders) sendWebhook(ctx context.Context, t Target, m posfleet.NotifyMessage) error {
	body, err := json.Marshal(webhookPayload(m))
	if err != nil {
		return permanent("notify: webhook: encode: %w", err)
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	h := http.Header{}
	h.Set(HeaderNotificationID, m.ID)
	h.Set(HeaderTimestamp, ts)
	if t.Secret != "" {
		h.Set(HeaderSignature, signWebhook(t.Secret, ts, body))
	}
	_, _, err = s.post(ctx, "webhook", t.URL, body, h)
	return err
}

// VerifyWebhook checks a received webhook: its signature (over the raw
// body) with the channel's secret, and its timestamp within tolerance of
// now (DefaultWebhookTolerance when tolerance is 0 or less). It returns an
// error wrapping ErrWebhookSignature or ErrWebhookTimestamp.
func VerifyWebhook(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrWebhookTimestamp, ts)
	}
	sent := time.Unix(sec, 0)
	if d := now.Sub(sent); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: sent at %s, %s from now", ErrWebhookTimestamp, sent.UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	got := h.Get(HeaderSignature)
	if secret == "" || !strings.HasPrefix(got, "sha256=") {
		return ErrWebhookSignature
	}
	want := signWebhook(secret, ts, body)
	if !hmac.Equal([]byte(strings.ToLower(got)), []byte(want)) {
		return ErrWebhookSignature
	}
	return nil
}
