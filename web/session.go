package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
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
	// ID names the session, so that signing out can end it for good;
	// Epoch is the user's session generation at sign-in (posfleet.Principal).
	ID    string `json:"i"`
	Epoch uint64 `json:"g"`
}

// sessions signs and checks session cookies.
type sessions struct {
	key    []byte
	ttl    time.Duration
	secure bool // set the Secure attribute (served over TLS)
	now    func() time.Time
}

func (s *sessions) encode(v session) string { return s.seal("", v) }

// seal signs v as a cookie value; purpose keeps the signatures of one kind
// of cookie from being valid for another (a device cookie is no session).
func (s *sessions) seal(purpose string, v any) string {
	payload, _ := json.Marshal(v)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.sign(purpose, p))
}

func (s *sessions) sign(purpose, p string) []byte {
	m := hmac.New(sha256.New, s.key)
	if purpose != "" {
		m.Write([]byte(purpose + "|"))
	}
	m.Write([]byte(p))
	return m.Sum(nil)
}

// open checks a sealed cookie value and decodes it into v.
func (s *sessions) open(purpose, c string, v any) bool {
	p, sig, ok := strings.Cut(c, ".")
	if !ok {
		return false
	}
	// Strict: a non-canonical encoding (other unused low bits in the last
	// character) is not the cookie that was signed.
	want, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(want, s.sign(purpose, p)) {
		return false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(p)
	if err != nil {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

func (s *sessions) decode(c string) (session, bool) {
	var v session
	if !s.open("", c, &v) || s.now().Unix() >= v.Expires {
		return session{}, false
	}
	return v, true
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start sets the cookie of a new session for p.
func (s *sessions) start(w http.ResponseWriter, p posfleet.Principal) session {
	v := session{Name: p.Name, Tenant: p.Tenant, Expires: s.now().Add(s.ttl).Unix(), CSRF: randomString(18), ID: randomString(16), Epoch: p.Epoch}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.encode(v), Path: "/",
		MaxAge: int(s.ttl / time.Second), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	return v
}

func (s *sessions) end(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

// deviceCookie marks a browser where a user signed in before: sign-ins
// from it as that user have a budget of their own (limiter.go), so that a
// stranger guessing the user's password cannot lock the user out of the
// devices it uses.
const deviceCookie = "posfleet_device"

// deviceTTL is how long a browser stays known without signing in again.
const deviceTTL = 365 * 24 * time.Hour

type device struct {
	ID      string `json:"i"`
	Name    string `json:"n"`
	Expires int64  `json:"e"`
}

// knownDevice returns the device ID of r's browser when name signed in
// there before, "" otherwise.
func (s *sessions) knownDevice(r *http.Request, name string) string {
	c, err := r.Cookie(deviceCookie)
	if err != nil {
		return ""
	}
	var d device
	if !s.open("device", c.Value, &d) || d.Name != name || d.ID == "" || s.now().Unix() >= d.Expires {
		return ""
	}
	return d.ID
}

// markDevice sets the device cookie for name, keeping the browser's
// device ID when it had one for name.
func (s *sessions) markDevice(w http.ResponseWriter, r *http.Request, name string) {
	id := s.knownDevice(r, name)
	if id == "" {
		id = randomString(12)
	}
	v := s.seal("device", device{ID: id, Name: name, Expires: s.now().Add(deviceTTL).Unix()})
	http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: v, Path: "/login", MaxAge: int(deviceTTL / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
}

// loginCookie carries the sign-in form's CSRF token (a double-submit
// cookie): the form must echo it, which a page of another site cannot
// read, so it cannot sign a browser in to an account of its choosing.
const loginCookie = "posfleet_login"

// loginToken returns the browser's sign-in CSRF token, setting a new one
// when it has none.
func (s *sessions) loginToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) == 24 {
		return c.Value
	}
	tok := randomString(18)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/login", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
	return tok
}

// loginTokenOK reports whether a sign-in form echoes the browser's token.
func loginTokenOK(r *http.Request) bool {
	c, err := r.Cookie(loginCookie)
	got := r.PostFormValue("csrf")
	return err == nil && c.Value != "" && hmac.Equal([]byte(got), []byte(c.Value))
}

// SessionChecker says whether a signed session cookie still counts, and
// ends one on sign-out. A session that no longer counts is an error of
// kind posfleet.Unauthorized (auth.ErrSessionEnded).
type SessionChecker interface {
	CheckSession(ctx context.Context, name string, epoch uint64, id string) error
	EndSession(ctx context.Context, id string, expires time.Time) error
}

// SessionReader is a SessionChecker that also returns the user's role and
// regions as they are now (auth.Store.Session); without it, a session has
// the role of a user stored before roles.
type SessionReader interface {
	Session(ctx context.Context, name string, epoch uint64, id string) (posfleet.Principal, error)
}

// TokenVerifier checks API tokens. An unknown or revoked token is an error
// of kind posfleet.Unauthorized (auth.ErrBadToken); any other error is the
// store failing.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, token string) (posfleet.Principal, error)
}

// SignInChecker checks a user's password. A wrong name or password is an
// error of kind posfleet.Unauthorized (auth.ErrBadCredentials).
type SignInChecker interface {
	SignIn(ctx context.Context, name, password string) (posfleet.Principal, error)
}

type ctxKey int

const (
	principalKey ctxKey = iota
	sessionKey
)

// PrincipalFrom returns who is asking, set by the authentication middleware.
func PrincipalFrom(ctx context.Context) (posfleet.Principal, bool) {
	p, ok := ctx.Value(principalKey).(posfleet.Principal)
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
		tok, ok := bearerToken(h)
		if !ok {
			return r, errUnauthorized
		}
		p, err := s.tokens.VerifyToken(r.Context(), tok)
		if err != nil {
			if posfleet.ErrorKind(err) == posfleet.Unauthorized { // auth.ErrBadToken
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
	p := posfleet.Principal{Name: v.Name, Tenant: v.Tenant, Epoch: v.Epoch}
	var err2 error
	if sr, ok := s.opts.Users.(SessionReader); ok {
		// The role, language and time zone as they are now: a change counts
		// at the next request.
		var cur posfleet.Principal
		if cur, err2 = sr.Session(r.Context(), v.Name, v.Epoch, v.ID); err2 == nil {
			p.Role, p.Regions, p.Language, p.TimeZone = cur.Role, cur.Regions, cur.Language, cur.TimeZone
		}
	} else {
		err2 = s.opts.Users.CheckSession(r.Context(), v.Name, v.Epoch, v.ID)
	}
	if err := err2; err != nil {
		if posfleet.ErrorKind(err) == posfleet.Unauthorized { // auth.ErrSessionEnded
			return r, errUnauthorized
		}
		return r, err
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
	ctx := context.WithValue(r.Context(), principalKey, p)
	return r.WithContext(context.WithValue(ctx, sessionKey, v)), nil
}

// bearerToken takes the token of an Authorization header. The scheme is
// case-insensitive (RFC 7235 §2.1, RFC 6750 §2.1): "bearer x" is "Bearer x".
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
