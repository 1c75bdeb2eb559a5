package web

import (
	"context"
	"embed"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/login"
)

//go:embed static
var staticFS embed.FS

// Users is what the web needs of the user store.
type Users interface {
	TokenVerifier
	SignInChecker
	SessionChecker
	// UserExists reports whether name is a user: the sign-in budgets of
	// existing users are kept apart, those of other names share one.
	UserExists(ctx context.Context, name string) bool
}

// Events gives the latest rejected messages and security events.
type Events interface {
	RecentRejections(tenant string, n int) []posfleet.RejectionEvent
	RecentSecurity(tenant string, n int) []posfleet.SecurityRecord
	// Counters are a terminal's message counters since the collector
	// started: gaps, duplicates, seq resets, rejections, security events.
	Counters(ref posfleet.TerminalRef) posfleet.MessageCounts
}

// Server is posfleet's HTTP side: pages, API, health and metrics.
type Server struct {
	opts     Options
	log      *slog.Logger
	mux      *routes // the mux with the role policy (roles.go)
	tokens   TokenVerifier
	signin   SignInChecker
	sessions *sessions
	limiter  *signInLimiter
	choices  choiceCache // the terminal list's suggestions (terminal_list.go)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	if !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/static/") {
		// The browser's language until the asker is known (the sign-in
		// page); the API speaks English and UTC, so it needs none.
		r = withLocale(r)
	}
	if s.opts.Audit != nil && mutating(r) {
		s.serveAudited(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// mountUI adds the pages and the sign-in flow.
func (s *Server) mountUI() {
	s.mux.Handle("GET /static/", http.FileServerFS(staticFS))
	s.mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		s.loginPage(w, r, http.StatusOK, login.View{Next: safeNext(r.URL.Query().Get("next"))})
	})
	s.mux.HandleFunc("POST /login", s.handleSignIn)
	s.mux.HandleFunc("POST /logout", s.page(func(w http.ResponseWriter, r *http.Request, _ layout.Page) {
		// The cookie is ended for good, not only removed from this browser:
		// a copy of it no longer counts either.
		if v, ok := sessionFrom(r.Context()); ok {
			if err := s.opts.Users.EndSession(r.Context(), v.ID, time.Unix(v.Expires, 0)); err != nil {
				s.renderError(w, r, err)
				return
			}
			s.log.Info("signed out", "user", v.Name)
		}
		s.sessions.end(w)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	}))
	s.mux.HandleFunc("GET /security", s.page(s.handleSecurity))
	if s.opts.Campaigns != nil {
		s.mountCampaignPages()
	}
}

// loginPage renders the sign-in form with the browser's CSRF token.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, status int, v login.View) {
	v.CSRF = s.sessions.loginToken(w, r)
	s.render(w, r, status, login.Page(v))
}

func (s *Server) handleSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	name, password := r.PostFormValue("name"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	shown := posfleet.Redact(name)
	if !loginTokenOK(r) {
		s.loginPage(w, r, http.StatusForbidden, login.View{Name: shown, Next: next, Error: locale.T(r.Context(), "login.stale_form")})
		return
	}
	ctx := r.Context()
	try, ok := s.limiter.try(clientAddress(r), s.sessions.knownDevice(r, name), name, s.opts.Users.UserExists(ctx, name))
	if !ok {
		s.log.Info("sign-in refused: too many attempts", "user", shown, "remote", r.RemoteAddr)
		s.auditSignIn(r, name, posfleet.Principal{}, errTooMany.Code)
		s.loginPage(w, r, http.StatusTooManyRequests, login.View{Name: shown, Next: next, Error: locale.T(ctx, "login.too_many")})
		return
	}
	p, err := s.signin.SignIn(ctx, name, password)
	if err != nil {
		if posfleet.ErrorKind(err) != posfleet.Unauthorized { // auth.ErrBadCredentials
			try.refund() // the store failed, not the guess
			s.log.Error("sign-in failed", "err", err)
			s.auditSignIn(r, name, posfleet.Principal{}, auditOutcome(http.StatusInternalServerError))
			s.renderError(w, r, err)
			return
		}
		s.log.Info("sign-in refused", "user", shown, "remote", r.RemoteAddr)
		s.auditSignIn(r, name, posfleet.Principal{}, errUnauthorized.Code)
		s.loginPage(w, r, http.StatusUnauthorized, login.View{Name: shown, Next: next, Error: locale.T(ctx, "login.wrong")})
		return
	}
	try.refund()
	s.sessions.start(w, p)
	s.sessions.markDevice(w, r, p.Name)
	s.log.Info("signed in", "user", p.Name, "tenant", p.Tenant)
	s.auditSignIn(r, p.Name, p, posfleet.AuditOK)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect on this site: a path that starts
// with one "/" not followed by another, with no backslash (browsers read
// "/\\host" as "//host", another site), no scheme or host once parsed and no
// control characters (which browsers strip before reading the URL).
// Anything else is "/".
func safeNext(next string) string {
	if len(next) < 1 || next[0] != '/' || len(next) > 2048 {
		return "/"
	}
	if len(next) > 1 && next[1] == '/' {
		return "/"
	}
	for _, c := range next {
		// A backslash anywhere: http.Redirect cleans the path, which turns
		// "/x/../\\host" into "/\\host".
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil {
		return "/"
	}
	return next
}

// page wraps a page handler: no session sends the browser to sign in.
func (s *Server) page(h func(http.ResponseWriter, *http.Request, layout.Page)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r, err := s.authenticate(r)
		if err != nil {
			if err == errUnauthorized {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.renderError(w, r, err)
			return
		}
		notePrincipal(r) // refused requests are audited too
		r = withLocale(r)
		if err := allowed(r); err != nil {
			s.renderError(w, r, err)
			return
		}
		if err := s.inRegion(r); err != nil {
			s.renderError(w, r, err)
			return
		}
		h(w, r, s.frame(r))
	}
}

// frame is the layout of a page for the signed-in principal of r.
func (s *Server) frame(r *http.Request) layout.Page {
	p, _ := PrincipalFrom(r.Context())
	sess, _ := sessionFrom(r.Context())
	frame := layout.Page{User: p.Name, Tenant: p.Tenant, CSRF: sess.CSRF, Active: r.URL.Path,
		Perms: pagePerms(p), Campaigns: s.opts.Campaigns != nil && campaignsShown(p)}
	s.navFrame(r, &frame)
	return frame
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := c.Render(r.Context(), w); err != nil {
		s.log.Error("render page", "path", r.URL.Path, "err", err)
	}
}

// renderError shows an error on a page as plain text with its status; API
// clients get JSON from writeError instead.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	st, ok := statusOf(err)
	if !ok {
		s.log.Error("page failed", "path", r.URL.Path, "err", err)
	}
	if _, signedIn := sessionFrom(r.Context()); !signedIn || r.Method != http.MethodGet {
		http.Error(w, st.Message, st.Status)
		return
	}
	// A signed-in person keeps the navigation: the error inside the layout.
	frame := s.frame(r)
	frame.Title = layout.StatusText(r.Context(), st.Status)
	s.render(w, r, st.Status, layout.ErrorPage(frame, st.Status, st.Message))
}

// tenantScope is the tenant filter of a principal's queries: "" for all.
func tenantScope(p posfleet.Principal) string {
	if p.Admin() {
		return ""
	}
	return p.Tenant
}

// me answers who the caller is: a cheap way for scripts to check a token.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	me := map[string]any{"name": p.Name, "tenant": p.Tenant, "token": p.Token, "role": p.EffectiveRole()}
	if len(p.Regions) > 0 {
		me["regions"] = p.Regions
	}
	if len(p.Scopes) > 0 {
		me["scopes"] = p.Scopes
	}
	writeJSON(w, http.StatusOK, me)
}

// api wraps a JSON API handler with authentication.
func (s *Server) api(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r, err := s.authenticate(r)
		if err == nil {
			notePrincipal(r) // refused requests are audited too
			err = allowed(r)
		}
		if err == nil {
			err = s.inRegion(r)
		}
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		h(w, r)
	}
}
