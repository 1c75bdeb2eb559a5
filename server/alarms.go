package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/alarm"
	"github.com/posfleet/posfleet/notify"
	"github.com/posfleet/posfleet/web"
)

// AlertingConfig configures alarms and notifications.
type AlertingConfig struct {
	// Alarms are the alarm rules (the debounce, what incidents fold).
	Alarms alarm.Options
	// PublicURL is where users reach the web UI: the links in
	// notifications start with it. "" is http://<HTTPAddr>, with
	// localhost for an unspecified host.
	PublicURL string
	// SMTP is the mail server of e-mail channels.
	SMTP notify.SMTPConfig
	// Dispatcher delivers the outbox.
	Dispatcher notify.DispatcherOptions
	// Retention: resolved alarms (with their history) and delivered
	// notifications older than this are deleted, hourly.
	Retention time.Duration
}

// DefaultAlertingConfig returns the defaults.
func DefaultAlertingConfig() AlertingConfig {
	// 12 months: PCI DSS 10.5.1 keeps a year of history; an alarm's
	// history is who did what about a terminal next to card data.
	return AlertingConfig{Alarms: alarm.DefaultOptions(), Dispatcher: notify.DefaultDispatcherOptions(), Retention: 365 * 24 * time.Hour}
}

// Validate reports the first setting that cannot work.
func (c AlertingConfig) Validate() error {
	switch {
	case c.Retention < time.Hour:
		return fmt.Errorf("alarms: retention %v: want an hour or more", c.Retention)
	case c.Alarms.Debounce < 0 || c.Alarms.FoldGrace < 0:
		return fmt.Errorf("alarms: debounce %v, fold grace %v: want 0 or more", c.Alarms.Debounce, c.Alarms.FoldGrace)
	case c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://"):
		return fmt.Errorf("alarms: public URL %q: want http:// or https://", c.PublicURL)
	case c.SMTP.Addr != "" && c.SMTP.From == "":
		return fmt.Errorf("notifications: an SMTP server needs a From address")
	}
	return nil
}

// publicURL is the base of links in notifications.
func (s *Server) publicURL() string {
	if u := strings.TrimRight(s.cfg.Alerting.PublicURL, "/"); u != "" {
		return u
	}
	addr := s.cfg.HTTPAddr
	if s.httpLn != nil {
		addr = s.httpLn.Addr().String()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// alertingParts are the notification dispatcher and its goroutine.
type alertingParts struct {
	disp   *notify.Dispatcher
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startDispatcher runs the notification dispatcher in a process with the
// web role (one box included): the lease "notify" picks one of them to
// deliver. The web replicas are where "send test" is asked for and where
// a deployment gives the SMTP settings.
func (s *Server) startDispatcher() {
	if !s.cfg.Roles.Web {
		return
	}
	opts := s.cfg.Alerting.Dispatcher
	opts.BaseURL, opts.Logger, opts.Metrics = s.publicURL(), s.log, s.metrics
	if s.users != nil {
		opts.Tenants = s.users // a tenant's default language and zone for its channels
	}
	senders := &notify.Senders{SMTP: s.cfg.Alerting.SMTP, Logger: s.log}
	a := &alertingParts{disp: notify.NewDispatcher(s.db, senders, opts)}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.done.Add(2)
	go func() {
		defer a.done.Done()
		a.disp.Run(ctx)
	}()
	go func() {
		defer a.done.Done()
		s.pruneAlarms(ctx)
	}()
	s.alerting = a
}

// stopDispatcher stops it and waits (it releases its lease).
func (s *Server) stopDispatcher() {
	if s.alerting == nil {
		return
	}
	s.alerting.cancel()
	s.alerting.done.Wait()
	s.alerting = nil
}

// alarmsWeb gives the web side the alarms, channels and routes.
func (s *Server) alarmsWeb(o *web.Options) {
	st := &alarm.Store{DB: s.db}
	o.Alarms = st
	o.Notifications = notificationsWeb{Store: st, s: s}
}

// notificationsWeb is web.Notifications: the channels and routes of the
// alarm store; "send test" through the dispatcher's senders.
type notificationsWeb struct {
	*alarm.Store
	s *Server
}

var (
	_ web.Alarms        = (*alarm.Store)(nil)
	_ web.Notifications = notificationsWeb{}
)

func (n notificationsWeb) TestChannel(ctx context.Context, id, by string) error {
	if n.s.alerting == nil {
		return posfleet.Errorf(posfleet.Unavailable, "no_dispatcher", "this process sends no notifications")
	}
	err := n.s.alerting.disp.Test(ctx, id, by)
	var pe *posfleet.Error
	if errors.As(err, &pe) && pe.Code == "not_delivered" {
		// The receiver refused: the web answers 502 with its (redacted)
		// answer, not 503 as if posfleet were down.
		return errors.New(pe.Message)
	}
	return err
}

func (n notificationsWeb) RecentNotifications(ctx context.Context, tenant, state string, limit int) ([]posfleet.Notification, error) {
	return alarm.RecentNotifications(ctx, n.DB, tenant, state, limit)
}

// pruneEvery is how often old alarms and notifications are deleted.
const pruneEvery = time.Hour

// pruneAlarms deletes, every pruneEvery until ctx ends, the resolved
// alarms and finished notifications older than the retention.
func (s *Server) pruneAlarms(ctx context.Context) {
	t := time.NewTimer(time.Minute) // not in the rush of the start
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a, n, err := alarm.Prune(ctx, s.db, time.Now().Add(-s.cfg.Alerting.Retention), 1000)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("old alarms not pruned", "err", err)
		case a+n > 0:
			s.log.Info("old alarms and notifications pruned", "alarms", a, "notifications", n)
		}
		t.Reset(pruneEvery)
	}
}
