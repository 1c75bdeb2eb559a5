package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/posfleet/posfleet/web/auth"
)

// sessionCookie is the name of the signed-in browser's cookie.
const sessionCookie = "posfleet_session"

// session is what the cookie carries, signed with the store's session key:
// who signed in, the tenant they see, when it expires, and the CSRF token
// every form of that session must echo.
type session struct {
	Name    string `json:"n"`
	Tenant  string `json:"t"`
	Expires int64  `json:"e"`
	CSRF    string `json:"c"`
}

// sessions signs and checks session cookies.
type sessions struct {
	key    []byte
	ttl    time.Duration
	secure bool // set the Secure attribute (served over TLS)
	now    func() time.Time
}

func (s *sessions) encode(v session) string {
	payload, _ := json.Marshal(v)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.sign(p))
}

func (s *sessions) sign(p string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(p))
	return m.Sum(nil)
}

func (s *sessions) decode(c string) (session, bool) {
	p, sig, ok := strings.Cut(c, ".")
	if !ok {
		return session{}, false
	}
	// Strict: a non-canonical encoding (other unused low bits in the last
	// character) is not the cookie that was signed.
	want, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(want, s.sign(p)) {
		return session{}, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(p)
	if err != nil {
		return session{}, false
	}
	var v session
	if json.Unmarshal(raw, &v) != nil || s.now().Unix() >= v.Expires {
		return session{}, false
	}
	return v, true
}

// start sets the cookie of a new session for p.
func (s *sessions) start(w http.ResponseWriter, p auth.Principal) session {
	csrf := make([]byte, 18)
	rand.Read(csrf)
	v := session{Name: p.Name, Tenant: p.Tenant, Expires: s.now().Add(s.ttl).Unix(), CSRF: base64.RawURLEncoding.EncodeToString(csrf)}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.encode(v), Path: "/",
		MaxAge: int(s.ttl / time.Second), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	return v
}

func (s *sessions) end(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

// TokenVerifier checks API tokens.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, token string) (auth.Principal, error)
}

// SignInChecker checks a user's password.
type SignInChecker interface {
	SignIn(ctx context.Context, name, password string) (auth.Principal, error)
}

type ctxKey int

const (
	principalKey ctxKey = iota
	sessionKey
)

// PrincipalFrom returns who is asking, set by the authentication middleware.
func PrincipalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey).(auth.Principal)
	return p, ok
}

func sessionFrom(ctx context.Context) (session, bool) {
	s, ok := ctx.Value(sessionKey).(session)
	return s, ok
}

// authenticate finds the principal of a request: a Bearer token or a
// session cookie. Cookie-authenticated requests that change something must
// carry the session's CSRF token (form field or X-CSRF-Token header); token
// requests need none, since browsers never send the header by themselves.
func (s *Server) authenticate(r *http.Request) (*http.Request, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return r, errUnauthorized
		}
		p, err := s.tokens.VerifyToken(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			if errors.Is(err, auth.ErrBadToken) {
				return r, errUnauthorized
			}
			return r, err
		}
		return r.WithContext(context.WithValue(r.Context(), principalKey, p)), nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return r, errUnauthorized
	}
	v, ok := s.sessions.decode(c.Value)
	if !ok {
		return r, errUnauthorized
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		got := r.Header.Get("X-CSRF-Token")
		if got == "" {
			got = r.PostFormValue("csrf")
		}
		if !hmac.Equal([]byte(got), []byte(v.CSRF)) {
			return r, errCSRF
		}
	}
	ctx := context.WithValue(r.Context(), principalKey, auth.Principal{Name: v.Name, Tenant: v.Tenant})
	return r.WithContext(context.WithValue(ctx, sessionKey, v)), nil
}

// signInLimiter slows down password guessing: a few tries per minute per
// client address and per user name, with a small burst for typos. The maps
// are bounded; when full, the oldest half is forgotten.
type signInLimiter struct {
	mu      sync.Mutex
	byKey   map[string]*rate.Limiter
	every   rate.Limit
	burst   int
	maxKeys int
}

func newSignInLimiter() *signInLimiter {
	return &signInLimiter{byKey: map[string]*rate.Limiter{}, every: rate.Every(12 * time.Second), burst: 5, maxKeys: 10000}
}

func (l *signInLimiter) allow(r *http.Request, name string) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := true
	for _, k := range []string{"ip:" + host, "user:" + name} {
		lim := l.byKey[k]
		if lim == nil {
			if len(l.byKey) >= l.maxKeys {
				n := 0
				for k := range l.byKey {
					delete(l.byKey, k)
					if n++; n >= l.maxKeys/2 {
						break
					}
				}
			}
			lim = rate.NewLimiter(l.every, l.burst)
			l.byKey[k] = lim
		}
		if !lim.Allow() {
			ok = false
		}
	}
	return ok
}
