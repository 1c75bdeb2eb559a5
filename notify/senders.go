package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posfleet/posfleet"
)

// Senders delivers messages on every channel type: webhooks and chat
// robots over HTTP, e-mail over SMTP. The zero value works (default HTTP
// client, no SMTP server: e-mail channels fail permanently).
type Senders struct {
	// HTTP posts webhooks and chat messages; nil is a client with
	// DefaultHTTPTimeout that follows no redirects. Its own Timeout, if
	// any, applies as well as ctx's.
	HTTP *http.Client
	SMTP SMTPConfig
	// Now is the clock of signatures and Date headers; nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// SMTPConfig is the mail server e-mail channels send through (one per
// posfleet: channels only choose the recipients).
type SMTPConfig struct {
	Addr     string // host:port
	From     string // the From address
	Username string // SMTP AUTH (PLAIN or LOGIN) when set
	Password string
	// TLS is "starttls" (the default: STARTTLS is required, never
	// skipped), "tls" (implicit TLS, port 465) or "none" (a local relay).
	TLS     string
	Timeout time.Duration // connecting and each command; 0 is DefaultSMTPTimeout
	// TLSConfig, when set, replaces the default (the system's roots, the
	// server name from Addr): a private CA, or a test's certificate.
	TLSConfig *tls.Config
}

const (
	// DefaultHTTPTimeout bounds one POST when the context has no earlier
	// deadline: a receiver that hangs must not hold the dispatcher.
	DefaultHTTPTimeout = 15 * time.Second
	// DefaultSMTPTimeout bounds the SMTP dial and each command.
	DefaultSMTPTimeout = 30 * time.Second
	// maxResponse caps what is read of a receiver's answer: it is only
	// parsed for an error code and quoted in errors.
	maxResponse = 64 << 10
)

var _ Sender = (*Senders)(nil)

// defaultHTTP follows no redirects: a 301 or 302 turns a POST into a GET,
// whose 200 would mark a notification sent that nobody received. A
// redirect is answered as a (permanent) error instead, naming the status.
var defaultHTTP = &http.Client{
	Timeout: DefaultHTTPTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// Send renders m for t's type and delivers it. A refusal that retrying
// cannot fix is a *PermanentError; any other error is worth a retry.
func (s *Senders) Send(ctx context.Context, t Target, m posfleet.NotifyMessage) error {
	var err error
	switch t.Type {
	case posfleet.NotifyWebhook:
		err = s.sendWebhook(ctx, t, m)
	case posfleet.NotifyEmail:
		err = s.sendEmail(ctx, t, m)
	case posfleet.NotifyDingTalk:
		err = s.sendDingTalk(ctx, t, m)
	case posfleet.NotifyWeCom:
		err = s.sendWeCom(ctx, t, m)
	case posfleet.NotifyFeishu:
		err = s.sendFeishu(ctx, t, m)
	case posfleet.NotifySlack:
		err = s.sendSlack(ctx, t, m)
	default:
		return &PermanentError{Err: fmt.Errorf("notify: unknown channel type %q", t.Type)}
	}
	if err != nil {
		s.logger().Debug("send failed", "channel", t.ID, "type", t.Type, "notification", m.ID,
			"permanent", IsPermanent(err), "err", err)
	}
	return err
}

func (s *Senders) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Senders) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger.With("component", "notify")
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Senders) client() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	return defaultHTTP
}

func permanent(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// post sends a JSON body to rawURL and returns the answer's status and
// (capped) body. Transport failures and 5xx, 408 and 429 answers are
// retryable errors; other non-2xx answers and a bad URL are permanent.
//
// Errors never contain the URL: chat robots carry their token in it, and
// errors are shown in the notifications list.
func (s *Senders) post(ctx context.Context, what, rawURL string, body []byte, hdr http.Header) (int, []byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return 0, nil, permanent("notify: %s: the channel's URL is not an http(s) URL", what)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, permanent("notify: %s: the channel's URL is not usable", what)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "posfleet-notify")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := s.client().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, fmt.Errorf("notify: %s: post to %s: %w", what, u.Host, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("notify: %s: read the answer of %s: %w", what, u.Host, err)
	}
	if err := statusError(what, u.Host, resp.StatusCode, answer); err != nil {
		return resp.StatusCode, answer, err
	}
	return resp.StatusCode, answer, nil
}

// statusError maps an HTTP status to nil (2xx), a retryable error (5xx,
// 408, 429: the receiver is down or busy) or a permanent one (any other:
// a 4xx says the request itself is wrong; a redirect not followed is a
// misconfigured URL).
func statusError(what, host string, code int, answer []byte) error {
	if code >= 200 && code < 300 {
		return nil
	}
	err := fmt.Errorf("notify: %s: %s answered %d %s", what, host, code, quote(answer))
	if code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests {
		return err
	}
	return &PermanentError{Err: err}
}

// quote is the start of a receiver's answer, for an error message:
// printable, short, and redacted if it looks like card data.
func quote(b []byte) string {
	const max = 200
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
	if len(s) > max {
		s = truncateUTF8(s, max) + "…"
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "(empty)"
	}
	return fmt.Sprintf("%q", posfleet.Redact(s))
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
