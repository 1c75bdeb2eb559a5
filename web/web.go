// Package web serves posfleet's HTTP side: the pages (templ), the JSON API,
// /healthz and /metrics. Errors become HTTP statuses in one place
// (errors.go); authentication is a session cookie for people and a Bearer
// token for scripts (session.go).
package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one component's health: nil while it is up.
type Check func(ctx context.Context) error

// Options configures the HTTP side.
type Options struct {
	// Checks are the components /healthz reports on, by name.
	Checks map[string]Check
	// Gatherer is what /metrics exposes; nil means the default registry.
	Gatherer prometheus.Gatherer
	// MetricsToken, when set, is a bearer token that may read /metrics
	// (Prometheus's authorization.credentials_file). /metrics also answers
	// an administrator's API token or session; nobody else.
	MetricsToken string
	// Users signs people in, checks API tokens and sessions; nil serves
	// only /healthz and /metrics (the latter then to MetricsToken alone).
	Users Users
	// SessionKey signs session cookies (32 random bytes, kept across restarts).
	SessionKey []byte
	// SessionTTL is how long a sign-in lasts: a working day.
	SessionTTL time.Duration
	// SignInLimits bound password guessing; zero fields take
	// DefaultSignInLimits.
	SignInLimits SignInLimits
	// SecureCookies marks cookies Secure: set it when posfleet is served
	// over HTTPS (directly or behind a proxy).
	SecureCookies bool
	// Events gives the latest rejections and security events.
	Events Events
	// Health, Directory, Commander and Commands serve the JSON API; without
	// Health the API answers only /api/v1/me.
	Health    Health
	Directory Directory
	Commander Commander
	Commands  CommandLog
	// Series is the time-series store the pages chart from; nil leaves
	// the charts out.
	Series Series
	// Provisioner serves POST /api/v1/terminals/import.
	Provisioner Provisioner
	// SavePolicy keeps a firmware policy that PUT /api/v1/policy (or the
	// Firmware page) accepted, as a new version by the user or token by.
	SavePolicy func(ctx context.Context, body []byte, by string) error
	// PolicyHistory serves GET /api/v1/policy/history and the Firmware
	// page's history; nil shows none.
	PolicyHistory PolicyHistory
	// Visits keeps the visits that "visit done" and POST .../serviced
	// applied; nil keeps them only in the health engine.
	Visits VisitLog
	// AllowHTTPFirmware accepts http:// package URLs in the firmware
	// policy; by default only https:// ones are.
	AllowHTTPFirmware bool
	// Alarms serves the alarm pages and /api/v1/alarms; nil mounts
	// neither.
	Alarms Alarms
	// Campaigns serves the campaign pages and /api/v1/campaigns; nil
	// mounts neither.
	Campaigns Campaigns
	// Notifications serves the channels and routes page and
	// /api/v1/channels, /api/v1/routes and /api/v1/notifications; nil
	// mounts none of them.
	Notifications Notifications
	// Thresholds keeps the thresholds document's versions and serves
	// /api/v1/thresholds and the Thresholds page (thresholds.go); nil
	// mounts neither.
	Thresholds Thresholds
	// Audit keeps the audit log: every mutating request of a signed-in
	// user or token, every sign-in and failed one (audit.go); it serves
	// /audit, /audit.csv and /api/v1/audit. nil records nothing.
	Audit  AuditLog
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports the first option that cannot work: a configuration
// error, which New returns rather than serving something half-built.
func (o Options) Validate() error {
	switch {
	case o.Users != nil && len(o.SessionKey) < 16:
		return errors.New("web: a session key of at least 16 bytes is needed to sign cookies")
	case o.SessionTTL < 0:
		return fmt.Errorf("web: session TTL %v: want a positive duration, or 0 for the default", o.SessionTTL)
	}
	return nil
}

// New builds the HTTP server's handler; it is the one constructor of the
// web side, and its error is a configuration error (Options.Validate).
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	g := opts.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	s := &Server{opts: opts, log: log.With("component", "web"), limiter: newSignInLimiter(opts.SignInLimits, opts.Now)}
	s.mux = &routes{ServeMux: http.NewServeMux(), log: s.log}
	s.mux.Handle("GET /metrics", s.metricsAuth(promhttp.HandlerFor(g, promhttp.HandlerOpts{})))
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	if opts.Users != nil {
		s.tokens, s.signin = opts.Users, opts.Users
		s.sessions = &sessions{key: opts.SessionKey, ttl: opts.SessionTTL, secure: opts.SecureCookies, now: opts.Now}
		s.mountUI()
		s.mountPages()
		s.mux.HandleFunc("GET /api/v1/me", s.api(s.handleMe))
		if ua, ok := opts.Users.(UserAdmin); ok {
			s.mountUserAdmin(ua)
		}
		if pr, ok := opts.Users.(Preferences); ok {
			s.mountAccount(pr)
		}
		if opts.Health != nil {
			s.mountAPI()
		}
		if opts.Alarms != nil {
			s.mountAlarms()
		}
		if opts.Notifications != nil {
			s.mountNotifications()
		}
		if opts.Campaigns != nil {
			s.mountCampaignAPI()
		}
		if opts.Audit != nil {
			s.mountAudit()
		}
		if opts.Thresholds != nil {
			s.mountThresholds()
		}
		if opts.Provisioner != nil {
			s.mux.HandleFunc("POST /api/v1/terminals/import", s.api(s.handleImport))
		}
		s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) { writeError(w, s.log, errNotFound) })
	}
	return s, nil
}

// metricsAuth lets the metrics token or an administrator read h.
func (s *Server) metricsAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := bearerToken(r.Header.Get("Authorization")); ok && s.opts.MetricsToken != "" &&
			subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.MetricsToken)) == 1 {
			h.ServeHTTP(w, r)
			return
		}
		if s.sessions == nil {
			writeError(w, s.log, errUnauthorized)
			return
		}
		r, err := s.authenticate(r)
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		if p, _ := PrincipalFrom(r.Context()); !may(p, adminAll) {
			writeError(w, s.log, errAdminOnly)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status := http.StatusOK
	body := map[string]string{}
	for name, check := range s.opts.Checks {
		if err := check(ctx); err != nil {
			// Status words only: /healthz needs no credentials, and the
			// error names internal addresses (the InfluxDB URL, its
			// bucket). The log has the detail.
			status = http.StatusServiceUnavailable
			body[name] = "down"
			s.log.Warn("health check failed", "check", name, "err", err)
		} else {
			body[name] = "ok"
		}
	}
	writeJSON(w, status, body)
}
