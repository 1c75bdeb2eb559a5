package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/posfleet/posfleet/server"
)

// ServeCmd runs the server. Its defaults come from the components' own
// DefaultOptions (see defaultVars), so that there is one place per default.
type ServeCmd struct {
	MQTTAddr             string        `name:"mqtt-addr" help:"MQTT listener (TCP)." default:"${mqtt_addr}" env:"POSFLEET_MQTT_ADDR"`
	MQTTTLSAddr          string        `name:"mqtt-tls-addr" help:"MQTT listener (TLS), used when --tls-cert and --tls-key are set." default:"${mqtt_tls_addr}" env:"POSFLEET_MQTT_TLS_ADDR"`
	TLSCert              string        `help:"TLS certificate (PEM) for the MQTT TLS listener." type:"path" env:"POSFLEET_TLS_CERT"`
	TLSKey               string        `help:"TLS private key (PEM) for the MQTT TLS listener." type:"path" env:"POSFLEET_TLS_KEY"`
	HTTPAddr             string        `name:"http-addr" help:"HTTP listener: web UI, API, /healthz, /metrics (with credentials)." default:"${http_addr}" env:"POSFLEET_HTTP_ADDR"`
	HTTPMaxConns         int           `name:"http-max-connections" help:"HTTP connections served at once; further ones wait for a free slot." default:"${http_max_conns}" env:"POSFLEET_HTTP_MAX_CONNECTIONS"`
	MetricsTokenFile     string        `name:"metrics-token-file" help:"File holding a bearer token that may read /metrics on --http-addr (Prometheus: authorization.credentials_file). Administrators' API tokens may read it too." type:"path" env:"POSFLEET_METRICS_TOKEN_FILE"`
	MetricsAddr          string        `name:"metrics-addr" help:"Off when empty: serve /metrics without credentials on this address, a listener of its own. Keep it on loopback or a port only Prometheus reaches (e.g. 127.0.0.1:9090)." env:"POSFLEET_METRICS_ADDR" placeholder:"HOST:PORT"`
	RateLimit            float64       `help:"Messages per second one terminal may publish before it is slowed down." default:"${rate}" env:"POSFLEET_RATE_LIMIT"`
	RateBurst            int           `help:"Messages one terminal may publish in a burst (an offline store flushing)." default:"${burst}" env:"POSFLEET_RATE_BURST"`
	ReceiveMaximum       int           `help:"QoS 1 messages one terminal may have in the broker's hands, spooled but not yet acknowledged." default:"${receive_max}" env:"POSFLEET_RECEIVE_MAXIMUM"`
	InfluxURL            string        `name:"influx-url" help:"InfluxDB URL (v2 API; InfluxDB 2.x, or 1.8 with flux-enabled)." default:"${influx_url}" env:"POSFLEET_INFLUX_URL"`
	InfluxOrg            string        `name:"influx-org" help:"InfluxDB organisation (ignored by InfluxDB 1.8)." env:"POSFLEET_INFLUX_ORG"`
	InfluxBucket         string        `name:"influx-bucket" help:"InfluxDB bucket; on InfluxDB 1.8 'database/retention-policy'." default:"${influx_bucket}" env:"POSFLEET_INFLUX_BUCKET"`
	InfluxTokenFile      string        `name:"influx-token-file" help:"File holding the InfluxDB token (or set POSFLEET_INFLUX_TOKEN; 1.8: user:password). Never a flag: flags show in process listings." type:"path" env:"POSFLEET_INFLUX_TOKEN_FILE"`
	Fsync                string        `help:"Spool durability: 'always' (fsync before every acknowledgement, group commit) or 'interval' (process crash safe; an OS crash loses up to --fsync-interval)." default:"${fsync}" enum:"always,interval" env:"POSFLEET_FSYNC"`
	FsyncInterval        time.Duration `help:"fsync period with --fsync=interval." default:"${fsync_interval}" env:"POSFLEET_FSYNC_INTERVAL"`
	BatchLines           int           `help:"Lines per InfluxDB write." default:"${batch_lines}" env:"POSFLEET_BATCH_LINES"`
	BatchWait            time.Duration `help:"Longest wait to fill a write batch." default:"${batch_wait}" env:"POSFLEET_BATCH_WAIT"`
	InfluxWriters        int           `name:"influx-writers" help:"InfluxDB writes under way at once, each for its share of the terminals so that their points arrive in time order (the next round is gathered meanwhile)." default:"${writers}" env:"POSFLEET_INFLUX_WRITERS"`
	MaxSpoolMiB          int64         `name:"max-spool-mib" help:"Spool size (MiB) at which publishes are refused while InfluxDB is down." default:"${max_spool_mib}" env:"POSFLEET_MAX_SPOOL_MIB"`
	EventWindow          time.Duration `help:"Aggregation window of security events and rejections: the first from a source is stored at once, the rest of the window as one point with a count." default:"${event_window}" env:"POSFLEET_EVENT_WINDOW"`
	MaxEventSources      int           `help:"Sources (terminal or username, and address) aggregated at once; past it, events are aggregated per kind without their source." default:"${max_event_keys}" env:"POSFLEET_MAX_EVENT_SOURCES"`
	EventRetention       time.Duration `help:"Security events and rejections older than this are deleted from the database (checked every few minutes)." default:"${event_retention}" env:"POSFLEET_EVENT_RETENTION"`
	AuditRetention       time.Duration `help:"Audit log entries (sign-ins, commands, policy and user changes...) older than this are deleted from the database; PCI DSS asks for a year." default:"${audit_retention}" env:"POSFLEET_AUDIT_RETENTION"`
	EventMaxRows         int64         `help:"Security events and rejections kept in the database, each; the oldest beyond it are deleted." default:"${event_max_rows}" env:"POSFLEET_EVENT_MAX_ROWS"`
	AuthSourceFailures   float64       `help:"Failed CONNECTs per second one source address (IPv6: /64) may cost an argon2id verification; over it, CONNECTs are refused at once. Negative: no bound." default:"${auth_source_rate}" env:"POSFLEET_AUTH_SOURCE_FAILURES"`
	AuthSourceBurst      int           `help:"Failed CONNECTs one source address may make in a burst (verifications under way included)." default:"${auth_source_burst}" env:"POSFLEET_AUTH_SOURCE_BURST"`
	AuthUsernameFailures float64       `help:"Failed CONNECTs per second one username may cost an argon2id verification; terminals already verified since the start (or ever, with the cache key file) are never refused by it. Negative: no bound." default:"${auth_username_rate}" env:"POSFLEET_AUTH_USERNAME_FAILURES"`
	AuthUsernameBurst    int           `help:"Failed CONNECTs one username may make in a burst." default:"${auth_username_burst}" env:"POSFLEET_AUTH_USERNAME_BURST"`
	RegistrySyncInterval time.Duration `name:"registry-sync-interval" help:"How often terminals provisioned or rotated by other processes (other replicas, 'posfleet terminals import' beside the server) are read from the database; each process holds all terminals in memory." default:"${registry_sync}" env:"POSFLEET_REGISTRY_SYNC_INTERVAL"`
	AllowHTTPFirmware    bool          `name:"allow-http-firmware" help:"Accept http:// package URLs in the firmware policy (by default only https://). The terminals still check each package's SHA-256." env:"POSFLEET_ALLOW_HTTP_FIRMWARE"`
	CampaignMinSoak      time.Duration `name:"campaign-min-soak" help:"Shortest soak a firmware campaign's wave may have before its gate is judged (a demo or a lab may shorten it; a gate needs hours of transactions to see much)." default:"${campaign_min_soak}" env:"POSFLEET_CAMPAIGN_MIN_SOAK"`
	Thresholds           string        `name:"thresholds" help:"A thresholds document (YAML or JSON: overrides per tenant and model of the flags' thresholds) imported when the database has none; later changes go through PUT /api/v1/thresholds or the Thresholds page." type:"path" env:"POSFLEET_THRESHOLDS" placeholder:"FILE"`
	SecureCookies        bool          `help:"Mark session cookies Secure: set it when users reach posfleet over HTTPS (directly or through a proxy)." env:"POSFLEET_SECURE_COOKIES"`
	PprofAddr            string        `name:"pprof-addr" help:"Debugging aid, off when empty: serve Go's runtime profiles (/debug/pprof/: heap, goroutines, CPU) on this address, a listener of their own. Keep it on loopback (e.g. 127.0.0.1:6060): the profiles need no login and show the process's internals." env:"POSFLEET_PPROF_ADDR" placeholder:"HOST:PORT"`

	ScaleOut `embed:""`
	Alerting `embed:""`
}

// defaultVars fills the ${…} defaults of the command line from
// server.DefaultConfig, which takes them from the components'
// DefaultOptions: each default is written once.
func defaultVars() kong.Vars {
	s := server.DefaultConfig("")
	b, c, r := s.Broker, s.Collector, s.Registry
	vars := kong.Vars{
		"http_addr":           s.HTTPAddr,
		"influx_url":          s.Influx.URL,
		"influx_bucket":       s.Influx.Bucket,
		"event_window":        c.EventWindow.String(),
		"max_event_keys":      fmt.Sprint(c.MaxEventKeys),
		"event_retention":     s.EventRetention.MaxAge.String(),
		"event_max_rows":      fmt.Sprint(s.EventRetention.MaxRows),
		"audit_retention":     s.AuditRetention.String(),
		"auth_source_rate":    fmt.Sprint(r.SourceFailuresPerSecond),
		"auth_source_burst":   fmt.Sprint(r.SourceFailureBurst),
		"auth_username_rate":  fmt.Sprint(r.UsernameFailuresPerSecond),
		"auth_username_burst": fmt.Sprint(r.UsernameFailureBurst),
		"registry_sync":       r.SyncInterval.String(),
		"mqtt_addr":           b.TCPAddr,
		"mqtt_tls_addr":       b.TLSAddr,
		"rate":                fmt.Sprint(b.RatePerSecond),
		"burst":               fmt.Sprint(b.RateBurst),
		"receive_max":         fmt.Sprint(b.ReceiveMaximum),
		"writers":             fmt.Sprint(c.Writers),
		"fsync":               c.Fsync,
		"fsync_interval":      c.FsyncInterval.String(),
		"batch_lines":         fmt.Sprint(c.BatchLines),
		"batch_wait":          c.BatchWait.String(),
		"max_spool_mib":       fmt.Sprint(c.MaxSpoolBytes >> 20),
		"http_max_conns":      fmt.Sprint(s.HTTP.MaxConns),
		"campaign_min_soak":   s.Campaigns.MinSoak.String(),
	}
	for k, v := range alertingVars(s) {
		vars[k] = v
	}
	return vars
}

// Run runs the server until ctx ends (SIGINT, SIGTERM) or a part of it
// fails, then shuts down gracefully: the collector gets its flush time.
func (cmd *ServeCmd) Run(ctx context.Context, g *Globals) error {
	cfg, err := cmd.config(g)
	if err != nil {
		return err
	}
	if percent, ok := defaultGCPercent(os.Getenv); ok {
		debug.SetGCPercent(percent)
		g.Logger.Info("garbage collector target set", "gogc", percent, "why", "default of posfleet serve; set GOGC to change it")
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// serveGCPercent is posfleet serve's GOGC when the environment sets none.
// Go's default, 100, lets the heap grow to twice what is live before a
// collection, and the runtime keeps that room: with thousands of idle
// connections it is most of the memory per terminal. At 50, 15,000
// connected terminals took 16–18 KiB each instead of 22–26 KiB, for about 4%
// more CPU per message at the maximum rate (README, Performance).
const serveGCPercent = 50

// defaultGCPercent returns the GC percent serve sets, and false when GOGC
// is set (the runtime has applied it already).
func defaultGCPercent(getenv func(string) string) (int, bool) {
	if getenv("GOGC") != "" {
		return 0, false
	}
	return serveGCPercent, true
}

func (cmd *ServeCmd) config(g *Globals) (server.Config, error) {
	cfg := server.DefaultConfig(g.DataDir)
	cfg.DatabaseURL = g.DatabaseURL
	cfg.Logger = g.Logger
	if err := cmd.ScaleOut.apply(&cfg); err != nil {
		return cfg, err
	}
	if err := cmd.Alerting.apply(&cfg); err != nil {
		return cfg, err
	}
	cfg.Broker.TCPAddr = cmd.MQTTAddr
	cfg.Broker.TLSAddr = cmd.MQTTTLSAddr
	cfg.Broker.CertFile, cfg.Broker.KeyFile = cmd.TLSCert, cmd.TLSKey
	if (cmd.TLSCert == "") != (cmd.TLSKey == "") {
		return cfg, errors.New("serve: --tls-cert and --tls-key go together")
	}
	cfg.Broker.RatePerSecond, cfg.Broker.RateBurst = cmd.RateLimit, cmd.RateBurst
	cfg.Broker.ReceiveMaximum = cmd.ReceiveMaximum
	cfg.HTTPAddr = cmd.HTTPAddr
	cfg.HTTP.MaxConns = cmd.HTTPMaxConns
	cfg.MetricsAddr = cmd.MetricsAddr
	cfg.MetricsToken = os.Getenv("POSFLEET_METRICS_TOKEN")
	if cmd.MetricsTokenFile != "" {
		b, err := os.ReadFile(cmd.MetricsTokenFile)
		if err != nil {
			return cfg, fmt.Errorf("serve: metrics token: %w", err)
		}
		cfg.MetricsToken = strings.TrimSpace(string(b))
	}
	cfg.SecureCookies = cmd.SecureCookies
	cfg.AllowHTTPFirmware = cmd.AllowHTTPFirmware
	cfg.Campaigns.MinSoak = cmd.CampaignMinSoak
	cfg.ThresholdsFile = cmd.Thresholds
	cfg.PprofAddr = cmd.PprofAddr
	cfg.Influx.URL, cfg.Influx.Org, cfg.Influx.Bucket = cmd.InfluxURL, cmd.InfluxOrg, cmd.InfluxBucket
	cfg.Influx.Token = os.Getenv("POSFLEET_INFLUX_TOKEN")
	if cmd.InfluxTokenFile != "" {
		b, err := os.ReadFile(cmd.InfluxTokenFile)
		if err != nil {
			return cfg, fmt.Errorf("serve: influx token: %w", err)
		}
		cfg.Influx.Token = strings.TrimSpace(string(b))
	}
	cfg.Collector.Fsync, cfg.Collector.FsyncInterval = cmd.Fsync, cmd.FsyncInterval
	cfg.Collector.BatchLines, cfg.Collector.BatchWait = cmd.BatchLines, cmd.BatchWait
	cfg.Collector.MaxSpoolBytes = cmd.MaxSpoolMiB << 20
	cfg.Collector.Writers = cmd.InfluxWriters
	cfg.Collector.EventWindow, cfg.Collector.MaxEventKeys = cmd.EventWindow, cmd.MaxEventSources
	cfg.EventRetention.MaxAge, cfg.EventRetention.MaxRows = cmd.EventRetention, cmd.EventMaxRows
	cfg.AuditRetention = cmd.AuditRetention
	cfg.Registry.SourceFailuresPerSecond, cfg.Registry.SourceFailureBurst = cmd.AuthSourceFailures, cmd.AuthSourceBurst
	cfg.Registry.UsernameFailuresPerSecond, cfg.Registry.UsernameFailureBurst = cmd.AuthUsernameFailures, cmd.AuthUsernameBurst
	cfg.Registry.SyncInterval = cmd.RegistrySyncInterval
	// Flag rules stricter than the components': the library takes a
	// negative rate for no limit and no spool bound for zero; the command
	// line keeps both on.
	if cmd.MaxSpoolMiB < 1 || cmd.RateLimit <= 0 {
		return cfg, errors.New("serve: --max-spool-mib and --rate-limit must be positive")
	}
	// Every other range (--receive-maximum, --influx-writers, --batch-lines,
	// --event-window, --auth-source-burst, ...) is its component's, checked
	// once by Validate.
	return cfg, cfg.Validate()
}
