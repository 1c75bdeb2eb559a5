package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/posfleet/posfleet/server"
)

// Alerting are serve's flags for alarms and notifications.
type Alerting struct {
	AlarmDebounce    time.Duration `name:"alarm-debounce" help:"How long an alarm's evidence must stay away before the alarm is resolved; evidence back within it reopens the same alarm and notifies nobody again." default:"${alarm_debounce}" env:"POSFLEET_ALARM_DEBOUNCE"`
	AlarmFoldGrace   time.Duration `name:"alarm-fold-grace" help:"How long the notification of an alarm that an incident or a burst of offline terminals may explain (failed transactions or receipts, offline) waits, so that one found meanwhile folds it: many terminals at once are one notification." default:"${alarm_fold_grace}" env:"POSFLEET_ALARM_FOLD_GRACE"`
	AlarmRetention   time.Duration `name:"alarm-retention" help:"Resolved alarms (with their history) and delivered notifications older than this are deleted (hourly); live ones never are." default:"${alarm_retention}" env:"POSFLEET_ALARM_RETENTION"`
	PublicURL        string        `name:"public-url" help:"Where users reach the web UI (https://posfleet.example.com): the links in notifications start with it. Empty: http://<http-addr>." env:"POSFLEET_PUBLIC_URL" placeholder:"URL"`
	SMTPAddr         string        `name:"smtp-addr" help:"Mail server (host:port) that e-mail channels send through." env:"POSFLEET_SMTP_ADDR" placeholder:"HOST:PORT"`
	SMTPFrom         string        `name:"smtp-from" help:"From address of notification e-mails." env:"POSFLEET_SMTP_FROM"`
	SMTPUser         string        `name:"smtp-user" help:"SMTP AUTH user name; the password in POSFLEET_SMTP_PASSWORD or --smtp-password-file, never a flag." env:"POSFLEET_SMTP_USER"`
	SMTPPasswordFile string        `name:"smtp-password-file" help:"File holding the SMTP password." type:"path" env:"POSFLEET_SMTP_PASSWORD_FILE"`
	SMTPTLS          string        `name:"smtp-tls" help:"starttls (required, never skipped), tls (implicit, port 465) or none (a local relay)." default:"starttls" enum:"starttls,tls,none" env:"POSFLEET_SMTP_TLS"`
	NotifyEvery      time.Duration `name:"notify-every" help:"How often the notification outbox is polled for due notifications." default:"${notify_every}" env:"POSFLEET_NOTIFY_EVERY"`
	NotifyRetryMax   time.Duration `name:"notify-retry-max" help:"Longest wait between two attempts to deliver a notification (the backoff doubles up to it)." default:"${notify_retry_max}" env:"POSFLEET_NOTIFY_RETRY_MAX"`
}

func alertingVars(s server.Config) map[string]string {
	return map[string]string{
		"alarm_debounce":   s.Alerting.Alarms.Debounce.String(),
		"alarm_fold_grace": s.Alerting.Alarms.FoldGrace.String(),
		"alarm_retention":  s.Alerting.Retention.String(),
		"notify_every":     s.Alerting.Dispatcher.Every.String(),
		"notify_retry_max": s.Alerting.Dispatcher.RetryMax.String(),
	}
}

func (a Alerting) apply(cfg *server.Config) error {
	al := &cfg.Alerting
	al.Alarms.Debounce, al.Alarms.FoldGrace, al.Retention = a.AlarmDebounce, a.AlarmFoldGrace, a.AlarmRetention
	al.PublicURL = a.PublicURL
	al.SMTP.Addr, al.SMTP.From, al.SMTP.Username, al.SMTP.TLS = a.SMTPAddr, a.SMTPFrom, a.SMTPUser, a.SMTPTLS
	al.SMTP.Password = os.Getenv("POSFLEET_SMTP_PASSWORD")
	if a.SMTPPasswordFile != "" {
		b, err := os.ReadFile(a.SMTPPasswordFile)
		if err != nil {
			return fmt.Errorf("serve: smtp password: %w", err)
		}
		al.SMTP.Password = strings.TrimSpace(string(b))
	}
	al.Dispatcher.Every, al.Dispatcher.RetryMax = a.NotifyEvery, a.NotifyRetryMax
	al.Dispatcher.RetryMin = min(al.Dispatcher.RetryMin, a.NotifyRetryMax)
	if a.NotifyEvery <= 0 || a.NotifyRetryMax <= 0 {
		return fmt.Errorf("serve: --notify-every and --notify-retry-max must be positive")
	}
	// The rest (--alarm-debounce, --public-url, --smtp-from with
	// --smtp-addr) is server.AlertingConfig.Validate's.
	return nil
}
