package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/posfleet/posfleet"
)

// chMail is one message the test's SMTP server accepted.
type chMail struct {
	User string // who authenticated
	From string
	To   []string
	Data []byte
}

// chSMTP is a real SMTP server on 127.0.0.1 (go-smtp): plain text, AUTH
// PLAIN accepted for one user.
type chSMTP struct {
	Addr string
	mu   sync.Mutex
	got  []chMail
	// rcptErr, when set, refuses every recipient.
	rcptErr error
}

const (
	chSMTPUser = "posfleet"
	chSMTPPass = "smtp-test-password"
)

func newChSMTP(t *testing.T) *chSMTP { return newChSMTPTLS(t, nil, false) }

// newChSMTPTLS starts the server with a certificate: offering STARTTLS
// (and AUTH only after it), or speaking TLS from the start (implicit).
func newChSMTPTLS(t *testing.T, tc *tls.Config, implicit bool) *chSMTP {
	t.Helper()
	srv := &chSMTP{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &chSession{srv: srv}, nil
	}))
	s.Domain = "localhost"
	s.AllowInsecureAuth = tc == nil // without TLS the client is told "none"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		l = tls.NewListener(l, tc)
	} else {
		s.TLSConfig = tc
	}
	srv.Addr = l.Addr().String()
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return srv
}

func (srv *chSMTP) refuse(err error) {
	srv.mu.Lock()
	srv.rcptErr = err
	srv.mu.Unlock()
}

func (srv *chSMTP) mails() []chMail {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return append([]chMail(nil), srv.got...)
}

type chSession struct {
	srv  *chSMTP
	user string
	cur  chMail
}

func (s *chSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *chSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != chSMTPUser || password != chSMTPPass {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *chSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = chMail{User: s.user, From: from}
	return nil
}

func (s *chSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	err := s.srv.rcptErr
	s.srv.mu.Unlock()
	if err != nil {
		return err
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *chSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.srv.mu.Lock()
	s.srv.got = append(s.srv.got, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *chSession) Reset()        { s.cur = chMail{} }
func (s *chSession) Logout() error { return nil }

func chEmailSenders(addr string) *Senders {
	return &Senders{
		Now: func() time.Time { return chNow },
		SMTP: SMTPConfig{Addr: addr, From: "posfleet@fleet.example", Username: chSMTPUser, Password: chSMTPPass,
			TLS: "none", Timeout: 5 * time.Second},
	}
}

func chEmailTarget(lang string) Target {
	return Target{NotifyChannel: posfleet.NotifyChannel{ID: "ch-mail", Tenant: "acme", Name: "Ops mail",
		Type: posfleet.NotifyEmail, To: []string{"ops@acme.example", "li@acme.example"}, Language: lang, Enabled: true}}
}

// chParsed is an e-mail taken apart.
type chParsed struct {
	Header mail.Header
	Parts  map[string]string // by media type, decoded
}

func chParse(t *testing.T, data []byte) chParsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not an e-mail: %v\n%s", err, data)
	}
	out := chParsed{Header: msg.Header, Parts: map[string]string{}}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p // multipart decodes quoted-printable itself
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			t.Fatalf("unexpected base64 part")
		}
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		out.Parts[pt] = string(b)
	}
	return out
}

func TestEmail(t *testing.T) {
	srv := newChSMTP(t)
	s := chEmailSenders(srv.Addr)
	m := chMessages()[posfleet.NotifyRaised]
	if err := s.Send(context.Background(), chEmailTarget(""), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.mails()
	if len(got) != 1 {
		t.Fatalf("the server got %d mails", len(got))
	}
	g := got[0]
	if g.User != chSMTPUser || g.From != "posfleet@fleet.example" ||
		strings.Join(g.To, ",") != "ops@acme.example,li@acme.example" {
		t.Errorf("envelope: user %q from %q to %v", g.User, g.From, g.To)
	}
	p := chParse(t, g.Data)
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(p.Header.Get("Subject"))
	if err != nil || subject != "[posfleet] URGENT tamper on acme/T-0001 (Noodle Bar *Chengdu*)" {
		t.Errorf("Subject %q (%v)", subject, err)
	}
	if from := p.Header.Get("From"); !strings.Contains(from, "posfleet@fleet.example") {
		t.Errorf("From %q", from)
	}
	if to := p.Header.Get("To"); !strings.Contains(to, "ops@acme.example") || !strings.Contains(to, "li@acme.example") {
		t.Errorf("To %q", to)
	}
	if id := p.Header.Get(HeaderNotificationID); id != m.ID {
		t.Errorf("%s = %q, want %q", HeaderNotificationID, id, m.ID)
	}
	if id := p.Header.Get("Message-Id"); id != "<"+m.ID+"@fleet.example>" {
		t.Errorf("Message-ID %q", id)
	}
	text, html := p.Parts["text/plain"], p.Parts["text/html"]
	if text == "" || html == "" {
		t.Fatalf("parts: %v", p.Parts)
	}
	for _, u := range []string{m.URL, m.AlarmURL} {
		if !strings.Contains(text, u) {
			t.Errorf("text part lacks %s:\n%s", u, text)
		}
		if !strings.Contains(html, `href="`+u+`"`) {
			t.Errorf("HTML part lacks a link to %s:\n%s", u, html)
		}
	}
	if !strings.Contains(text, "Opened: 2026-12-03 01:57:00 UTC") || !strings.Contains(html, "Tamper") {
		t.Errorf("parts lack the facts:\n%s\n%s", text, html)
	}
	if strings.Contains(string(g.Data), chEvidence) {
		t.Error("the evidence is in the mail")
	}
}

func TestEmailChinese(t *testing.T) {
	srv := newChSMTP(t)
	m := chMessages()[posfleet.NotifyRaised]
	if err := chEmailSenders(srv.Addr).Send(context.Background(), chEmailTarget("zh-CN"), m); err != nil {
		t.Fatal(err)
	}
	p := chParse(t, srv.mails()[0].Data)
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(p.Header.Get("Subject"))
	if err != nil || subject != "[posfleet] 紧急告警 tamper：acme/T-0001（Noodle Bar *Chengdu*）" {
		t.Errorf("Subject %q (%v)", subject, err)
	}
	if !strings.Contains(p.Parts["text/plain"], "开始时间：2026-12-03 09:57:00 UTC+8") || !strings.Contains(p.Parts["text/html"], `lang="zh-CN"`) {
		t.Errorf("parts are not Chinese:\n%s\n%s", p.Parts["text/plain"], p.Parts["text/html"])
	}
}

// TestEmailEscaped: names are escaped in the HTML part.
func TestEmailEscaped(t *testing.T) {
	srv := newChSMTP(t)
	m := chMessages()[posfleet.NotifyRaised]
	a := *m.Alarm
	a.Merchant = `<script>alert(1)</script>`
	m.Alarm = &a
	if err := chEmailSenders(srv.Addr).Send(context.Background(), chEmailTarget(""), m); err != nil {
		t.Fatal(err)
	}
	html := chParse(t, srv.mails()[0].Data).Parts["text/html"]
	if strings.Contains(html, "<script>") || !strings.Contains(html, "&lt;script&gt;") {
		t.Errorf("HTML part not escaped:\n%s", html)
	}
}

func TestEmailErrors(t *testing.T) {
	srv := newChSMTP(t)
	m := chMessages()[posfleet.NotifyTest]
	ctx := context.Background()

	// Wrong password: the server's 535 is permanent.
	s := chEmailSenders(srv.Addr)
	s.SMTP.Password = "wrong"
	if err := s.Send(ctx, chEmailTarget(""), m); !IsPermanent(err) {
		t.Errorf("wrong password: %v, want a permanent error", err)
	}
	// Recipient refused for good (550) or for now (450).
	srv.refuse(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	if err := chEmailSenders(srv.Addr).Send(ctx, chEmailTarget(""), m); !IsPermanent(err) {
		t.Errorf("550: %v, want a permanent error", err)
	}
	srv.refuse(&smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "try later"})
	if err := chEmailSenders(srv.Addr).Send(ctx, chEmailTarget(""), m); err == nil || IsPermanent(err) {
		t.Errorf("450: %v, want a retryable error", err)
	}
	srv.refuse(nil)
	// STARTTLS required but not offered: refused (never sent in clear).
	s = chEmailSenders(srv.Addr)
	s.SMTP.TLS = ""
	if err := s.Send(ctx, chEmailTarget(""), m); err == nil {
		t.Error("starttls against a server without it: sent")
	}
	if n := len(srv.mails()); n != 0 {
		t.Errorf("the server got %d mails", n)
	}
	// Nobody listening: retryable.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if err := chEmailSenders(addr).Send(ctx, chEmailTarget(""), m); err == nil || IsPermanent(err) {
		t.Errorf("connection refused: %v, want a retryable error", err)
	}
	// Configuration errors are permanent.
	for name, s := range map[string]*Senders{
		"no server":  {},
		"bad TLS":    {SMTP: SMTPConfig{Addr: srv.Addr, From: "a@b.example", TLS: "maybe"}},
		"bad addr":   {SMTP: SMTPConfig{Addr: "localhost", From: "a@b.example"}},
		"bad from":   {SMTP: SMTPConfig{Addr: srv.Addr, From: "not an address", TLS: "none"}},
		"no rcpt to": nil,
	} {
		tg := chEmailTarget("")
		if s == nil {
			s = chEmailSenders(srv.Addr)
			tg.To = nil
		}
		if err := s.Send(ctx, tg, m); !IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error", name, err)
		}
	}
	var pe *PermanentError
	if err := (&Senders{}).Send(ctx, chEmailTarget(""), m); !errors.As(err, &pe) {
		t.Errorf("no server: %T", err)
	}
}

// chCert is a self-signed certificate for 127.0.0.1, and a pool trusting it.
func chCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "posfleet test SMTP"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestEmailTLS: STARTTLS (the default) and implicit TLS, with AUTH over
// the encrypted connection; a certificate the client does not trust is
// refused.
func TestEmailTLS(t *testing.T) {
	cert, pool := chCert(t)
	m := chMessages()[posfleet.NotifyRaised]
	for _, c := range []struct {
		mode     string
		implicit bool
	}{{"", false}, {"starttls", false}, {"tls", true}} {
		t.Run("mode="+c.mode, func(t *testing.T) {
			srv := newChSMTPTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}}, c.implicit)
			s := chEmailSenders(srv.Addr)
			s.SMTP.TLS = c.mode
			s.SMTP.TLSConfig = &tls.Config{RootCAs: pool}
			if err := s.Send(context.Background(), chEmailTarget(""), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := srv.mails(); len(got) != 1 || got[0].User != chSMTPUser {
				t.Fatalf("the server got %+v", got)
			}
			// Without the test's CA the certificate is not trusted.
			s.SMTP.TLSConfig = nil
			if err := s.Send(context.Background(), chEmailTarget(""), m); err == nil {
				t.Error("sent to an untrusted server")
			}
			if n := len(srv.mails()); n != 1 {
				t.Errorf("the server got %d mails", n)
			}
		})
	}
}
