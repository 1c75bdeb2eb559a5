package web

import (
	"context"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/notifications"
)

// Notifications is what the web side reads and changes of the
// notification channels, routes and outbox (package alarm's Store, and the
// notify package for "send test", through the server's adapter). A
// channel's URL and secret are write-only: SaveChannel takes them,
// nothing gives them back.
type Notifications interface {
	Channels(ctx context.Context, tenant string) ([]posfleet.NotifyChannel, error)
	Channel(ctx context.Context, id string) (posfleet.NotifyChannel, error)
	SaveChannel(ctx context.Context, ch posfleet.NotifyChannel, sec posfleet.NotifySecrets, by string) (posfleet.NotifyChannel, error)
	DeleteChannel(ctx context.Context, id string) error
	TestChannel(ctx context.Context, id, by string) error
	Routes(ctx context.Context, tenant string) ([]posfleet.NotifyRoute, error)
	SaveRoute(ctx context.Context, r posfleet.NotifyRoute, by string) (posfleet.NotifyRoute, error)
	DeleteRoute(ctx context.Context, id string) error
	RecentNotifications(ctx context.Context, tenant string, state string, n int) ([]posfleet.Notification, error)
}

// Limits and defaults of channels and routes.
const (
	defaultRatePerHour = 60
	maxRatePerHour     = 10_000
	maxRecipients      = 50
	maxSecretLen       = 512
	maxURLLen          = 2048
	maxNameLen         = 128
	defaultRecent      = 100
	maxRecent          = 500
	// defaultTimeZone is the route form's time zone: posfleet's fleets are
	// in China.
	defaultTimeZone = "Asia/Shanghai"
)

var (
	errChannelNotFound = &posfleet.Error{Kind: posfleet.NotFound, Code: "not_found", Message: "no such channel"}
	errRouteNotFound   = &posfleet.Error{Kind: posfleet.NotFound, Code: "not_found", Message: "no such route"}
	errNotifyAdminOnly = &posfleet.Error{Kind: posfleet.Forbidden, Code: "forbidden",
		Message: "only an administrator (a user or token of all tenants) may change notification channels and routes"}
)

// mountNotifications adds the channels, routes and notifications API and
// the page that manages them.
func (s *Server) mountNotifications() {
	s.mux.HandleFunc("GET /api/v1/channels", s.api(s.handleChannelsAPI))
	s.mux.HandleFunc("POST /api/v1/channels", s.api(s.notifyAdmin(saveAPI(s, "channel", s.saveChannel))))
	s.mux.HandleFunc("PUT /api/v1/channels/{id}", s.api(s.notifyAdmin(saveAPI(s, "channel", s.saveChannel))))
	s.mux.HandleFunc("DELETE /api/v1/channels/{id}", s.api(s.notifyAdmin(deleteAPI(s, s.deleteChannel))))
	s.mux.HandleFunc("POST /api/v1/channels/{id}/test", s.api(s.notifyAdmin(s.handleTestChannelAPI)))
	s.mux.HandleFunc("GET /api/v1/routes", s.api(s.handleRoutesAPI))
	s.mux.HandleFunc("POST /api/v1/routes", s.api(s.notifyAdmin(saveAPI(s, "route", s.saveRoute))))
	s.mux.HandleFunc("PUT /api/v1/routes/{id}", s.api(s.notifyAdmin(saveAPI(s, "route", s.saveRoute))))
	s.mux.HandleFunc("DELETE /api/v1/routes/{id}", s.api(s.notifyAdmin(deleteAPI(s, s.deleteRoute))))
	s.mux.HandleFunc("GET /api/v1/notifications", s.api(s.handleNotificationsAPI))

	s.mux.HandleFunc("GET /notifications", s.page(s.handleNotificationsPage))
	s.mux.HandleFunc("POST /notifications/channels", s.page(s.notifyAdminPage(s.handleChannelForm)))
	s.mux.HandleFunc("POST /notifications/channels/{id}", s.page(s.notifyAdminPage(s.handleChannelForm)))
	s.mux.HandleFunc("POST /notifications/channels/{id}/delete", s.page(s.notifyAdminPage(s.handleDeleteChannelForm)))
	s.mux.HandleFunc("POST /notifications/channels/{id}/test", s.page(s.notifyAdminPage(s.handleTestChannelForm)))
	s.mux.HandleFunc("POST /notifications/routes", s.page(s.notifyAdminPage(s.handleRouteForm)))
	s.mux.HandleFunc("POST /notifications/routes/{id}", s.page(s.notifyAdminPage(s.handleRouteForm)))
	s.mux.HandleFunc("POST /notifications/routes/{id}/delete", s.page(s.notifyAdminPage(s.handleDeleteRouteForm)))
}

// notifyAdmin lets only administrators change channels and routes: the
// project has no tenant administrators, and a channel's URL is where a
// tenant's alarms go.
func (s *Server) notifyAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !principal(r).admin {
			writeError(w, s.log, errNotifyAdminOnly)
			return
		}
		h(w, r)
	}
}

func (s *Server) notifyAdminPage(h func(http.ResponseWriter, *http.Request, layout.Page)) func(http.ResponseWriter, *http.Request, layout.Page) {
	return func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		if !principal(r).admin {
			s.renderError(w, r, errNotifyAdminOnly)
			return
		}
		h(w, r, frame)
	}
}

// notifyTenant is the tenant of a list: the tenant parameter, which must be
// one the caller sees (another is "not found"), else the caller's scope.
func notifyTenant(r *http.Request) (string, error) {
	p, _ := PrincipalFrom(r.Context())
	t := strings.TrimSpace(r.URL.Query().Get("tenant"))
	if t == "" || t == posfleet.AllTenants {
		return tenantScope(p), nil
	}
	if !p.Sees(t) {
		return "", errNotFound
	}
	return t, nil
}

// visibleChannel reads a channel the caller may see.
func (s *Server) visibleChannel(ctx context.Context, id string) (posfleet.NotifyChannel, error) {
	p, _ := PrincipalFrom(ctx)
	if id == "" || len(id) > 128 {
		return posfleet.NotifyChannel{}, errChannelNotFound
	}
	ch, err := s.opts.Notifications.Channel(ctx, id)
	if posfleet.ErrorKind(err) == posfleet.NotFound || (err == nil && !p.Sees(ch.Tenant)) {
		return posfleet.NotifyChannel{}, errChannelNotFound
	}
	return ch, err
}

// visibleRoute finds a route the caller may see.
func (s *Server) visibleRoute(ctx context.Context, id string) (posfleet.NotifyRoute, error) {
	p, _ := PrincipalFrom(ctx)
	routes, err := s.opts.Notifications.Routes(ctx, tenantScope(p))
	if err != nil {
		return posfleet.NotifyRoute{}, err
	}
	for _, rt := range routes {
		if rt.ID == id && p.Sees(rt.Tenant) {
			return rt, nil
		}
	}
	return posfleet.NotifyRoute{}, errRouteNotFound
}

// readOnly are the fields of a channel or route as listed that a request
// may carry back (a client that GETs, edits and PUTs) but cannot set.
type readOnly struct {
	ID        string    `json:"id,omitempty"`
	Created   time.Time `json:"created,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
	Updated   time.Time `json:"updated,omitzero"`
}

// ChannelRequest is the body of POST /api/v1/channels and PUT
// /api/v1/channels/{id}. URL and Secret are write-only: omitted keeps
// them (on PUT), "" removes them. Enabled and RatePerHour omitted are
// true and 60 on POST, unchanged on PUT.
type ChannelRequest struct {
	readOnly
	Tenant      string                     `json:"tenant"`
	Name        string                     `json:"name"`
	Type        posfleet.NotifyChannelType `json:"type"`
	URL         *string                    `json:"url,omitempty"`
	Secret      *string                    `json:"secret,omitempty"`
	To          []string                   `json:"to,omitempty"`
	Language    string                     `json:"language,omitempty"`
	Enabled     *bool                      `json:"enabled,omitempty"`
	RatePerHour *int                       `json:"rate_per_hour,omitempty"`
	// URLHint and HasSecret are shown, never set.
	URLHint   string `json:"url_hint,omitempty"`
	HasSecret bool   `json:"has_secret,omitempty"`
}

// checkName refuses an empty, long or unprintable name.
func checkName(field, name string) error {
	switch {
	case name == "":
		return refusal(field+": give it a name", "notifications.refused.name_empty")
	case len(name) > maxNameLen:
		return refusal(fmt.Sprintf("%s: at most %d characters", field, maxNameLen), "notifications.refused.name_too_long", "Max", maxNameLen)
	case strings.IndexFunc(name, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		return refusal(field+": only printable characters", "notifications.refused.name_unprintable")
	}
	return nil
}

// checkTenant refuses what is not one tenant's ID: channels and routes
// belong to one tenant.
func checkTenant(t string) error {
	if t == "" || t == posfleet.AllTenants || !posfleet.ValidID(t) {
		return refusal("tenant: want a tenant ID (a channel or route belongs to one tenant)", "notifications.refused.tenant")
	}
	return nil
}

// buildChannel checks a channel request and makes the channel to save:
// new when id is "", else the channel id with the request's changes.
func (s *Server) buildChannel(ctx context.Context, req ChannelRequest, id string) (posfleet.NotifyChannel, posfleet.NotifySecrets, error) {
	var ch posfleet.NotifyChannel
	sec := posfleet.NotifySecrets{URL: req.URL, Secret: req.Secret}
	req.Tenant, req.Name = strings.TrimSpace(req.Tenant), strings.TrimSpace(req.Name)
	if id != "" {
		old, err := s.visibleChannel(ctx, id)
		if err != nil {
			return ch, sec, err
		}
		if req.Tenant != "" && req.Tenant != old.Tenant {
			return ch, sec, refusal("tenant: a channel's tenant cannot change; make a new channel", "notifications.refused.channel_tenant_fixed")
		}
		ch = old
		req.Tenant = old.Tenant
	} else {
		ch.Enabled, ch.RatePerHour = true, defaultRatePerHour
	}
	if err := checkTenant(req.Tenant); err != nil {
		return ch, sec, err
	}
	if err := checkName("name", req.Name); err != nil {
		return ch, sec, err
	}
	if !slices.Contains(posfleet.NotifyChannelTypes, req.Type) {
		return ch, sec, refusal("type: want webhook, email, dingtalk, wecom, feishu or slack", "notifications.refused.type")
	}
	if id != "" && req.Type != ch.Type && req.URL == nil && req.Type != posfleet.NotifyEmail {
		return ch, sec, refusal("url: a channel that changes type needs its new URL", "notifications.refused.url_type_changed")
	}
	switch {
	case req.Type == posfleet.NotifyEmail && req.URL != nil && *req.URL != "":
		return ch, sec, refusal("url: an e-mail channel sends through the server's SMTP settings; leave url out and list the recipients in to", "notifications.refused.url_email")
	case req.Type != posfleet.NotifyEmail && id == "" && (req.URL == nil || *req.URL == ""):
		return ch, sec, refusal("url: a "+string(req.Type)+" channel needs the URL to post to", "notifications.refused.url_needed")
	case req.Type != posfleet.NotifyEmail && req.URL != nil:
		if *req.URL == "" {
			return ch, sec, refusal("url: a "+string(req.Type)+" channel needs the URL to post to", "notifications.refused.url_needed")
		}
		if err := checkChannelURL(*req.URL); err != nil {
			return ch, sec, err
		}
	}
	if req.Secret != nil && len(*req.Secret) > maxSecretLen {
		return ch, sec, refusal(fmt.Sprintf("secret: at most %d characters", maxSecretLen), "notifications.refused.secret_too_long", "Max", maxSecretLen)
	}
	var to []string
	for _, addr := range req.To {
		if addr = strings.TrimSpace(addr); addr == "" {
			continue
		}
		a, err := mail.ParseAddress(addr)
		if err != nil {
			return ch, sec, refusal(fmt.Sprintf("to: %q is not an e-mail address", addr), "notifications.refused.to_not_address", "Address", addr)
		}
		if !slices.Contains(to, a.Address) {
			to = append(to, a.Address)
		}
	}
	switch {
	case req.Type == posfleet.NotifyEmail && len(to) == 0:
		return ch, sec, refusal("to: an e-mail channel needs at least one recipient", "notifications.refused.to_needed")
	case req.Type != posfleet.NotifyEmail && len(to) > 0:
		return ch, sec, refusal("to: only e-mail channels have recipients", "notifications.refused.to_email_only")
	case len(to) > maxRecipients:
		return ch, sec, refusal(fmt.Sprintf("to: at most %d recipients", maxRecipients), "notifications.refused.to_too_many", "Max", maxRecipients)
	}
	switch req.Language {
	case "":
		if ch.Language == "" {
			ch.Language = "en"
		}
	case "en", "zh-CN":
		ch.Language = req.Language
	default:
		return ch, sec, refusal(`language: want "en" or "zh-CN"`, "notifications.refused.language")
	}
	if req.RatePerHour != nil {
		if *req.RatePerHour < 1 || *req.RatePerHour > maxRatePerHour {
			return ch, sec, refusal(fmt.Sprintf("rate_per_hour: want a whole number from 1 to %d", maxRatePerHour), "notifications.refused.rate", "Max", maxRatePerHour)
		}
		ch.RatePerHour = *req.RatePerHour
	}
	if req.Enabled != nil {
		ch.Enabled = *req.Enabled
	}
	ch.ID, ch.Tenant, ch.Name, ch.Type, ch.To = id, req.Tenant, req.Name, req.Type, to
	return ch, sec, nil
}

// checkChannelURL accepts an absolute http(s) URL: a chat robot's or a
// webhook receiver's.
func checkChannelURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case len(raw) > maxURLLen:
		return refusal(fmt.Sprintf("url: at most %d characters", maxURLLen), "notifications.refused.url_too_long", "Max", maxURLLen)
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return refusal("url: want an absolute http:// or https:// URL", "notifications.refused.url_absolute")
	case u.User != nil:
		return refusal("url: no user or password in the URL; a webhook signs with its secret", "notifications.refused.url_user")
	}
	return nil
}

// secretInURL finds the parts of an error's text that may carry a
// channel's secrets: URLs (chat robots carry their token in the query)
// and token-like query parameters.
var (
	urlInText   = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*)://([^/\s"'?#@]*@)?([^/\s"'?#]+)[^\s"']*`)
	tokenInText = regexp.MustCompile(`(?i)\b(access_token|token|key|secret|sign)=[^&\s"']+`)
)

// redactSecrets keeps a receiver's error readable without the channel's
// URL and secret, which are never shown back: a URL is cut to its scheme
// and host.
func redactSecrets(msg string) string {
	msg = urlInText.ReplaceAllString(msg, "$1://$3/…")
	return tokenInText.ReplaceAllString(msg, "$1=…")
}

// --- API ---

func (s *Server) handleChannelsAPI(w http.ResponseWriter, r *http.Request) {
	tenant, err := notifyTenant(r)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	list, err := s.opts.Notifications.Channels(r.Context(), tenant)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": list})
}

// saveChannel checks and saves a channel for the API and the page.
func (s *Server) saveChannel(ctx context.Context, req ChannelRequest, id string) (posfleet.NotifyChannel, error) {
	ch, sec, err := s.buildChannel(ctx, req, id)
	if err != nil {
		return ch, err
	}
	p, _ := PrincipalFrom(ctx)
	saved, err := s.opts.Notifications.SaveChannel(ctx, ch, sec, p.Name)
	if err != nil {
		return saved, err
	}
	// Never log the URL or the secret: only that they changed.
	s.log.Info("channel saved", "channel", saved.ID, "tenant", saved.Tenant, "type", saved.Type,
		"url_changed", sec.URL != nil, "secret_changed", sec.Secret != nil, "by", p.Name)
	return saved, nil
}

// deleteChannel deletes a channel the caller may see.
func (s *Server) deleteChannel(ctx context.Context, id string) error {
	if _, err := s.visibleChannel(ctx, id); err != nil {
		return err
	}
	if err := s.opts.Notifications.DeleteChannel(ctx, id); err != nil {
		if posfleet.ErrorKind(err) == posfleet.NotFound {
			return errChannelNotFound
		}
		return err
	}
	p, _ := PrincipalFrom(ctx)
	s.log.Info("channel deleted", "channel", id, "by", p.Name)
	return nil
}

// testChannel sends a test message; a refusal of the receiver (or the
// network) is receiverErr, a message without the channel's secrets.
func (s *Server) testChannel(ctx context.Context, id string) (receiverErr string, err error) {
	if _, err := s.visibleChannel(ctx, id); err != nil {
		return "", err
	}
	p, _ := PrincipalFrom(ctx)
	err = s.opts.Notifications.TestChannel(ctx, id, p.Name)
	if err == nil {
		s.log.Info("channel tested", "channel", id, "by", p.Name)
		return "", nil
	}
	if _, ok := statusOf(err); ok {
		if posfleet.ErrorKind(err) == posfleet.NotFound {
			return "", errChannelNotFound
		}
		return "", err // the channel is disabled, the SMTP server not configured…
	}
	msg := redactSecrets(err.Error())
	s.log.Warn("channel test failed", "channel", id, "by", p.Name, "err", msg)
	return msg, nil
}

func (s *Server) handleTestChannelAPI(w http.ResponseWriter, r *http.Request) {
	msg, err := s.testChannel(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		writeError(w, s.log, err)
	case msg != "":
		writeJSON(w, http.StatusBadGateway, map[string]any{"sent": false, "error": map[string]string{"code": "receiver_failed", "message": msg}})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"sent": true})
	}
}

func (s *Server) handleRoutesAPI(w http.ResponseWriter, r *http.Request) {
	tenant, err := notifyTenant(r)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	list, err := s.opts.Notifications.Routes(r.Context(), tenant)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"routes": list})
}

// RouteRequest is the body of POST /api/v1/routes and PUT
// /api/v1/routes/{id}: a NotifyRoute's fields. Enabled omitted is true on
// POST, unchanged on PUT.
type RouteRequest struct {
	readOnly
	Tenant     string   `json:"tenant"`
	Name       string   `json:"name"`
	Channel    string   `json:"channel"`
	Kinds      []string `json:"kinds,omitempty"`
	UrgentOnly bool     `json:"urgent_only,omitempty"`
	Regions    []string `json:"regions,omitempty"`
	QuietStart string   `json:"quiet_start,omitempty"`
	QuietEnd   string   `json:"quiet_end,omitempty"`
	TimeZone   string   `json:"time_zone,omitempty"`
	Digest     bool     `json:"digest,omitempty"`
	DigestAt   string   `json:"digest_at,omitempty"`
	Resolved   bool     `json:"resolved"`
	Enabled    *bool    `json:"enabled,omitempty"`
}

// checkClock accepts a time of day, "HH:MM".
func checkClock(field, v string) error {
	if _, err := time.Parse("15:04", v); err != nil || len(v) != 5 {
		return refusal(field+`: want a time of day such as "22:00"`, "notifications.refused.clock")
	}
	return nil
}

// buildRoute checks a route request and makes the route to save: new when
// id is "", else the route id with the request's changes.
func (s *Server) buildRoute(ctx context.Context, req RouteRequest, id string) (posfleet.NotifyRoute, error) {
	rt := posfleet.NotifyRoute{Enabled: true}
	req.Tenant, req.Name, req.Channel = strings.TrimSpace(req.Tenant), strings.TrimSpace(req.Name), strings.TrimSpace(req.Channel)
	if id != "" {
		old, err := s.visibleRoute(ctx, id)
		if err != nil {
			return rt, err
		}
		if req.Tenant != "" && req.Tenant != old.Tenant {
			return rt, refusal("tenant: a route's tenant cannot change; make a new route", "notifications.refused.route_tenant_fixed")
		}
		rt, req.Tenant = old, old.Tenant
	}
	if err := checkName("name", req.Name); err != nil {
		return rt, err
	}
	if req.Channel == "" {
		return rt, refusal("channel: say which channel the route notifies", "notifications.refused.channel_needed")
	}
	ch, err := s.visibleChannel(ctx, req.Channel)
	if posfleet.ErrorKind(err) == posfleet.NotFound {
		return rt, refusal("channel: no such channel", "notifications.refused.channel_unknown")
	}
	if err != nil {
		return rt, err
	}
	if req.Tenant == "" {
		req.Tenant = ch.Tenant
	}
	if err := checkTenant(req.Tenant); err != nil {
		return rt, err
	}
	if ch.Tenant != req.Tenant {
		return rt, refusal("channel: the channel belongs to another tenant", "notifications.refused.channel_other_tenant")
	}
	var kinds []string
	for _, k := range req.Kinds {
		k = strings.TrimSpace(k)
		if !posfleet.ValidAlarmKind(k) {
			return rt, refusal(fmt.Sprintf("kinds: unknown kind %q; kinds are the flag names, incident and mass_offline", k), "notifications.refused.kind", "Kind", k)
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	var regions []string
	for _, g := range req.Regions {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(regions, g) {
			if len(g) > maxNameLen {
				return rt, refusal("regions: a region's name is too long", "notifications.refused.region_too_long")
			}
			regions = append(regions, g)
		}
	}
	if (req.QuietStart == "") != (req.QuietEnd == "") {
		return rt, refusal("quiet_start, quiet_end: give both, or neither for no quiet hours", "notifications.refused.quiet_both")
	}
	if req.QuietStart != "" {
		if err := checkClock("quiet_start", req.QuietStart); err != nil {
			return rt, err
		}
		if err := checkClock("quiet_end", req.QuietEnd); err != nil {
			return rt, err
		}
		if req.QuietStart == req.QuietEnd {
			return rt, refusal("quiet_end: the quiet hours end when they start", "notifications.refused.quiet_empty")
		}
	}
	if req.TimeZone != "" {
		if _, err := time.LoadLocation(req.TimeZone); err != nil || len(req.TimeZone) > 64 {
			return rt, refusal(fmt.Sprintf("time_zone: unknown time zone %q; want an IANA name such as Asia/Shanghai", req.TimeZone), "notifications.refused.time_zone", "Zone", req.TimeZone)
		}
	}
	if req.Digest {
		if req.DigestAt == "" {
			req.DigestAt = "09:00"
		}
		if err := checkClock("digest_at", req.DigestAt); err != nil {
			return rt, err
		}
	} else if req.DigestAt != "" {
		if err := checkClock("digest_at", req.DigestAt); err != nil {
			return rt, err
		}
	}
	if req.Enabled != nil {
		rt.Enabled = *req.Enabled
	}
	rt.ID, rt.Tenant, rt.Name, rt.Channel, rt.Kinds, rt.UrgentOnly, rt.Regions = id, req.Tenant, req.Name, req.Channel, kinds, req.UrgentOnly, regions
	rt.QuietStart, rt.QuietEnd, rt.TimeZone, rt.Digest, rt.DigestAt, rt.Resolved = req.QuietStart, req.QuietEnd, req.TimeZone, req.Digest, req.DigestAt, req.Resolved
	return rt, nil
}

// saveRoute checks and saves a route for the API and the page.
func (s *Server) saveRoute(ctx context.Context, req RouteRequest, id string) (posfleet.NotifyRoute, error) {
	rt, err := s.buildRoute(ctx, req, id)
	if err != nil {
		return rt, err
	}
	p, _ := PrincipalFrom(ctx)
	saved, err := s.opts.Notifications.SaveRoute(ctx, rt, p.Name)
	if err != nil {
		return saved, err
	}
	s.log.Info("route saved", "route", saved.ID, "tenant", saved.Tenant, "channel", saved.Channel, "by", p.Name)
	return saved, nil
}

// deleteRoute deletes a route the caller may see.
func (s *Server) deleteRoute(ctx context.Context, id string) error {
	if _, err := s.visibleRoute(ctx, id); err != nil {
		return err
	}
	if err := s.opts.Notifications.DeleteRoute(ctx, id); err != nil {
		if posfleet.ErrorKind(err) == posfleet.NotFound {
			return errRouteNotFound
		}
		return err
	}
	p, _ := PrincipalFrom(ctx)
	s.log.Info("route deleted", "route", id, "by", p.Name)
	return nil
}

// notificationStates are the states of the outbox, in its order.
var notificationStates = []posfleet.NotificationState{posfleet.NotificationPending, posfleet.NotificationHeld,
	posfleet.NotificationSent, posfleet.NotificationFailed, posfleet.NotificationSuppressed, posfleet.NotificationBundled}

// parseRecent reads the state and limit of the recent notifications.
func parseRecent(q url.Values) (string, int, error) {
	state, n := strings.TrimSpace(q.Get("state")), defaultRecent
	if state != "" && !slices.Contains(notificationStates, posfleet.NotificationState(state)) {
		return "", 0, badRequest("state: want pending, held, sent, failed, suppressed or bundled")
	}
	if v := q.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > maxRecent {
			return "", 0, badRequest(fmt.Sprintf("limit: want a whole number from 1 to %d", maxRecent))
		}
		n = l
	}
	return state, n, nil
}

func (s *Server) handleNotificationsAPI(w http.ResponseWriter, r *http.Request) {
	tenant, err := notifyTenant(r)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	state, n, err := parseRecent(r.URL.Query())
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	list, err := s.opts.Notifications.RecentNotifications(r.Context(), tenant, state, n)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"notifications": list})
}

// --- page ---

// notifyNotices are the page's messages after a redirect (?done=), by
// their catalogue IDs: fixed texts, so that a link cannot make the page
// say anything else.
var notifyNotices = map[string]string{
	"channel-saved":   "notifications.notice.channel_saved",
	"channel-deleted": "notifications.notice.channel_deleted",
	"test-sent":       "notifications.notice.test_sent",
	"route-saved":     "notifications.notice.route_saved",
	"route-deleted":   "notifications.notice.route_deleted",
}

func (s *Server) handleNotificationsPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	var v notifications.View
	if id, ok := notifyNotices[r.URL.Query().Get("done")]; ok {
		v.Notice = locale.T(r.Context(), id)
	}
	s.notificationsPage(w, r, frame, http.StatusOK, v)
}

// notificationsPage renders the page with the channels, routes and recent
// notifications the caller sees.
func (s *Server) notificationsPage(w http.ResponseWriter, r *http.Request, frame layout.Page, status int, v notifications.View) {
	ctx := r.Context()
	frame.Title, frame.Active = locale.T(r.Context(), "nav.notifications"), "/notifications"
	p, _ := PrincipalFrom(ctx)
	tenant := tenantScope(p)
	v.Frame, v.Admin, v.Types, v.States, v.DefaultTimeZone = frame, p.Admin() && may(p, adminAll), posfleet.NotifyChannelTypes, notificationStates, defaultTimeZone
	v.DefaultLanguage = locale.From(ctx).Lang
	for _, k := range alarmKinds(ctx) {
		v.Kinds = append(v.Kinds, notifications.Option{Value: k.Value, Label: k.Label})
	}
	state, n, err := parseRecent(r.URL.Query())
	if err != nil {
		state, n = "", defaultRecent
	}
	v.State = state
	if v.Channels, err = s.opts.Notifications.Channels(ctx, tenant); err != nil {
		s.renderError(w, r, err)
		return
	}
	if v.Routes, err = s.opts.Notifications.Routes(ctx, tenant); err != nil {
		s.renderError(w, r, err)
		return
	}
	if v.Recent, err = s.opts.Notifications.RecentNotifications(ctx, tenant, state, n); err != nil {
		s.renderError(w, r, err)
		return
	}
	s.render(w, r, status, notifications.Page(v))
}

// notifyRefused shows why a form was refused on the page, with the error's
// status; a failure of the server's own is a plain error page.
func (s *Server) notifyRefused(w http.ResponseWriter, r *http.Request, frame layout.Page, v notifications.View, err error) {
	status, msg, ok := s.actionRefused(err)
	if !ok {
		s.renderError(w, r, err)
		return
	}
	v.Error = refusedText(r.Context(), err, msg)
	s.notificationsPage(w, r, frame, status, v)
}

// splitList reads a list typed in one field: separated by commas,
// semicolons or new lines (not spaces: a region's name or "Name <addr>"
// may hold some).
func splitList(v string) []string {
	var out []string
	for _, e := range strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ';' || c == '\n' || c == '\r' }) {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func (s *Server) handleChannelForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	id := r.PathValue("id")
	rate, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("rate_per_hour")))
	if err != nil {
		rate = -1 // buildChannel says what is wrong
	}
	enabled := r.PostFormValue("enabled") != ""
	req := ChannelRequest{Tenant: r.PostFormValue("tenant"), Name: r.PostFormValue("name"),
		Type: posfleet.NotifyChannelType(r.PostFormValue("type")), To: splitList(r.PostFormValue("to")),
		Language: r.PostFormValue("language"), Enabled: &enabled, RatePerHour: &rate}
	// An empty URL or secret field keeps what the channel has: they are
	// never shown, so the form cannot hold them.
	if u := strings.TrimSpace(r.PostFormValue("url")); u != "" {
		req.URL = &u
	}
	if sec := r.PostFormValue("secret"); sec != "" {
		req.Secret = &sec
	} else if r.PostFormValue("clear_secret") != "" {
		empty := ""
		req.Secret = &empty
	}
	if _, err := s.saveChannel(r.Context(), req, id); err != nil {
		v := notifications.View{}
		if id == "" {
			v.ChannelDraft = notifications.ChannelDraft{Tenant: req.Tenant, Name: req.Name, Type: string(req.Type),
				To: strings.Join(req.To, ", "), Language: req.Language, Enabled: enabled, RatePerHour: r.PostFormValue("rate_per_hour")}
		}
		s.notifyRefused(w, r, frame, v, err)
		return
	}
	http.Redirect(w, r, "/notifications?done=channel-saved", http.StatusSeeOther)
}

// confirmed reports whether a delete form's confirmation box is ticked.
func confirmed(r *http.Request) error {
	if r.PostFormValue("confirm") != "yes" {
		return badRequest(locale.T(r.Context(), "notifications.tick_to_delete"))
	}
	return nil
}

func (s *Server) handleDeleteChannelForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	err := confirmed(r)
	if err == nil {
		err = s.deleteChannel(r.Context(), r.PathValue("id"))
	}
	if err != nil {
		s.notifyRefused(w, r, frame, notifications.View{}, err)
		return
	}
	http.Redirect(w, r, "/notifications?done=channel-deleted", http.StatusSeeOther)
}

func (s *Server) handleTestChannelForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	id := r.PathValue("id")
	msg, err := s.testChannel(r.Context(), id)
	if err != nil {
		s.notifyRefused(w, r, frame, notifications.View{}, err)
		return
	}
	if msg != "" {
		s.notificationsPage(w, r, frame, http.StatusBadGateway, notifications.View{TestFailed: msg, TestChannel: id})
		return
	}
	http.Redirect(w, r, "/notifications?done=test-sent", http.StatusSeeOther)
}

func (s *Server) handleRouteForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, badRequest("the form is too large"))
		return
	}
	id := r.PathValue("id")
	enabled := r.PostFormValue("enabled") != ""
	req := RouteRequest{Tenant: r.PostFormValue("tenant"), Name: r.PostFormValue("name"), Channel: r.PostFormValue("channel"),
		Kinds: r.PostForm["kinds"], UrgentOnly: r.PostFormValue("urgent_only") != "", Regions: splitList(r.PostFormValue("regions")),
		QuietStart: strings.TrimSpace(r.PostFormValue("quiet_start")), QuietEnd: strings.TrimSpace(r.PostFormValue("quiet_end")),
		TimeZone: strings.TrimSpace(r.PostFormValue("time_zone")), Digest: r.PostFormValue("digest") != "",
		DigestAt: strings.TrimSpace(r.PostFormValue("digest_at")), Resolved: r.PostFormValue("resolved") != "", Enabled: &enabled}
	if !req.Digest {
		req.DigestAt = "" // the form always sends its time field
	}
	if _, err := s.saveRoute(r.Context(), req, id); err != nil {
		v := notifications.View{}
		if id == "" {
			v.RouteDraft = notifications.RouteDraft{NotifyRoute: posfleet.NotifyRoute{Tenant: req.Tenant, Name: req.Name, Channel: req.Channel,
				Kinds: req.Kinds, UrgentOnly: req.UrgentOnly, Regions: req.Regions, QuietStart: req.QuietStart, QuietEnd: req.QuietEnd,
				TimeZone: req.TimeZone, Digest: req.Digest, DigestAt: req.DigestAt, Resolved: req.Resolved, Enabled: enabled}, Set: true}
		}
		s.notifyRefused(w, r, frame, v, err)
		return
	}
	http.Redirect(w, r, "/notifications?done=route-saved", http.StatusSeeOther)
}

func (s *Server) handleDeleteRouteForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	err := confirmed(r)
	if err == nil {
		err = s.deleteRoute(r.Context(), r.PathValue("id"))
	}
	if err != nil {
		s.notifyRefused(w, r, frame, notifications.View{}, err)
		return
	}
	http.Redirect(w, r, "/notifications?done=route-deleted", http.StatusSeeOther)
}

// saveAPI answers POST (create: 201) and PUT (replace: 200) of a channel
// or a route with {key: what was saved}.
func saveAPI[Req, T any](s *Server, key string, save func(context.Context, Req, string) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		id := r.PathValue("id")
		v, err := save(r.Context(), req, id)
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		status := http.StatusOK
		if id == "" {
			status = http.StatusCreated
		}
		writeJSON(w, status, map[string]any{key: v})
	}
}

// deleteAPI answers DELETE of a channel or a route.
func deleteAPI(s *Server, del func(context.Context, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := del(r.Context(), id); err != nil {
			writeError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	}
}
