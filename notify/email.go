package notify

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/wneessen/go-mail"
)

// emailHTML is the HTML part. html/template escapes every value (names
// come from terminals and operators) and refuses non-http(s) links.
var emailHTML = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family: sans-serif; line-height: 1.4">
<h2 style="margin: 0 0 .5em{{if .Urgent}}; color: #b00020{{end}}">{{.Title}}</h2>
<p>{{.Lead}}</p>
{{- if .Facts}}
<ul>
{{- range .Facts}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}
{{- with .AllItems}}
<ul>
{{- range .}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}
{{- range .Links}}
<p><a href="{{.URL}}">{{.Label}}</a><br><small>{{.URL}}</small></p>
{{- end}}
<p style="color: #666"><small>{{.Footer}}</small></p>
</body>
</html>
`))

// emailSubjectPrefix starts every subject, for mail filters.
const emailSubjectPrefix = "[posfleet] "

func (s *Senders) sendEmail(ctx context.Context, t Target, m posfleet.NotifyMessage) error {
	cfg := s.SMTP
	if cfg.Addr == "" || cfg.From == "" {
		return permanent("notify: email: no SMTP server configured (--smtp-addr, --smtp-from)")
	}
	if len(t.To) == 0 {
		return permanent("notify: email: the channel has no recipients")
	}
	r := render(t, m, nil)
	var html strings.Builder
	if err := emailHTML.Execute(&html, r); err != nil {
		return permanent("notify: email: render: %w", err)
	}

	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(cfg.From); err != nil {
		return permanent("notify: email: from %q: %w", cfg.From, err)
	}
	if err := msg.To(t.To...); err != nil {
		return permanent("notify: email: recipients: %w", err)
	}
	msg.Subject(emailSubjectPrefix + r.Title)
	msg.SetDateWithValue(s.now())
	// The same notification sent again (at least once) keeps its
	// Message-ID, so mail clients can drop the repeat too.
	msg.SetMessageIDWithValue(m.ID + "@" + mailDomain(cfg.From))
	msg.SetGenHeader(mail.Header(HeaderNotificationID), m.ID)
	msg.SetGenHeader(mail.HeaderUserAgent, "posfleet")
	msg.SetBodyString(mail.TypeTextPlain, r.plain())
	msg.AddAlternativeString(mail.TypeTextHTML, html.String())

	client, err := s.smtpClient()
	if err != nil {
		return err
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return smtpError(err)
	}
	return nil
}

func (s *Senders) smtpClient() (*mail.Client, error) {
	cfg := s.SMTP
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, permanent("notify: email: SMTP address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, permanent("notify: email: SMTP port %q is not a number", portStr)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultSMTPTimeout
	}
	opts := []mail.Option{mail.WithPort(port), mail.WithTimeout(timeout)}
	if cfg.TLSConfig != nil {
		tc := cfg.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		opts = append(opts, mail.WithTLSConfig(tc))
	}
	// AUTH PLAIN and LOGIN send the password as is: go-mail refuses them
	// without TLS unless told otherwise, which "none" (a relay the
	// operator chose to trust, usually on localhost) does.
	plain, login := mail.SMTPAuthPlain, mail.SMTPAuthLogin
	switch strings.ToLower(cfg.TLS) {
	case "", "starttls":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case "tls":
		opts = append(opts, mail.WithSSL())
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
		plain, login = mail.SMTPAuthPlainNoEnc, mail.SMTPAuthLoginNoEnc
	default:
		return nil, permanent("notify: email: SMTP TLS mode %q: want starttls, tls or none", cfg.TLS)
	}
	if cfg.Username != "" {
		opts = append(opts, mail.WithOpportunisticSMTPAuth(plain, login),
			mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	c, err := mail.NewClient(host, opts...)
	if err != nil {
		return nil, permanent("notify: email: SMTP client: %w", err)
	}
	return c, nil
}

// smtpError maps a failed delivery: a 5xx answer (recipient unknown,
// authentication refused, message rejected) is permanent; a 4xx or a
// connection failure is retried.
func smtpError(err error) error {
	var se *mail.SendError
	if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
		return &PermanentError{Err: fmt.Errorf("notify: email: %w", err)}
	}
	// Outside a SendError: the answer to AUTH (535: credentials refused).
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return &PermanentError{Err: fmt.Errorf("notify: email: %w", err)}
	}
	return fmt.Errorf("notify: email: %w", err)
}

// mailDomain is the domain of the From address, for the Message-ID.
func mailDomain(from string) string {
	from = strings.TrimSuffix(strings.TrimSpace(from), ">")
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i < len(from)-1 {
		return from[i+1:]
	}
	return "posfleet.invalid"
}
