package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/broker"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/influxdb"
	"github.com/posfleet/posfleet/mqttsource"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/web"
)

// ServeCmd runs the server. Its defaults come from the components' own
// DefaultOptions (see defaultVars), so that there is one place per default.
type ServeCmd struct {
	MQTTAddr             string        `name:"mqtt-addr" help:"MQTT listener (TCP)." default:"${mqtt_addr}" env:"POSFLEET_MQTT_ADDR"`
	MQTTTLSAddr          string        `name:"mqtt-tls-addr" help:"MQTT listener (TLS), used when --tls-cert and --tls-key are set." default:"${mqtt_tls_addr}" env:"POSFLEET_MQTT_TLS_ADDR"`
	TLSCert              string        `help:"TLS certificate (PEM) for the MQTT TLS listener." type:"path" env:"POSFLEET_TLS_CERT"`
	TLSKey               string        `help:"TLS private key (PEM) for the MQTT TLS listener." type:"path" env:"POSFLEET_TLS_KEY"`
	HTTPAddr             string        `name:"http-addr" help:"HTTP listener: web UI, API, /healthz, /metrics (with credentials)." default:":8080" env:"POSFLEET_HTTP_ADDR"`
	HTTPMaxConns         int           `name:"http-max-connections" help:"HTTP connections served at once; further ones wait for a free slot." default:"${http_max_conns}" env:"POSFLEET_HTTP_MAX_CONNECTIONS"`
	MetricsTokenFile     string        `name:"metrics-token-file" help:"File holding a bearer token that may read /metrics on --http-addr (Prometheus: authorization.credentials_file). Administrators' API tokens may read it too." type:"path" env:"POSFLEET_METRICS_TOKEN_FILE"`
	MetricsAddr          string        `name:"metrics-addr" help:"Off when empty: serve /metrics without credentials on this address, a listener of its own. Keep it on loopback or a port only Prometheus reaches (e.g. 127.0.0.1:9090)." env:"POSFLEET_METRICS_ADDR" placeholder:"HOST:PORT"`
	RateLimit            float64       `help:"Messages per second one terminal may publish before it is slowed down." default:"${rate}" env:"POSFLEET_RATE_LIMIT"`
	RateBurst            int           `help:"Messages one terminal may publish in a burst (an offline store flushing)." default:"${burst}" env:"POSFLEET_RATE_BURST"`
	ReceiveMaximum       int           `help:"QoS 1 messages one terminal may have in the broker's hands, spooled but not yet acknowledged." default:"${receive_max}" env:"POSFLEET_RECEIVE_MAXIMUM"`
	InfluxURL            string        `name:"influx-url" help:"InfluxDB URL (v2 API; InfluxDB 2.x, or 1.8 with flux-enabled)." default:"http://127.0.0.1:8086" env:"POSFLEET_INFLUX_URL"`
	InfluxOrg            string        `name:"influx-org" help:"InfluxDB organisation (ignored by InfluxDB 1.8)." env:"POSFLEET_INFLUX_ORG"`
	InfluxBucket         string        `name:"influx-bucket" help:"InfluxDB bucket; on InfluxDB 1.8 'database/retention-policy'." default:"posfleet/autogen" env:"POSFLEET_INFLUX_BUCKET"`
	InfluxTokenFile      string        `name:"influx-token-file" help:"File holding the InfluxDB token (or set POSFLEET_INFLUX_TOKEN; 1.8: user:password). Never a flag: flags show in process listings." type:"path" env:"POSFLEET_INFLUX_TOKEN_FILE"`
	Fsync                string        `help:"Spool durability: 'always' (fsync before every acknowledgement, group commit) or 'interval' (process crash safe; an OS crash loses up to --fsync-interval)." default:"${fsync}" enum:"always,interval" env:"POSFLEET_FSYNC"`
	FsyncInterval        time.Duration `help:"fsync period with --fsync=interval." default:"${fsync_interval}" env:"POSFLEET_FSYNC_INTERVAL"`
	BatchLines           int           `help:"Lines per InfluxDB write." default:"${batch_lines}" env:"POSFLEET_BATCH_LINES"`
	BatchWait            time.Duration `help:"Longest wait to fill a write batch." default:"${batch_wait}" env:"POSFLEET_BATCH_WAIT"`
	InfluxWriters        int           `name:"influx-writers" help:"InfluxDB writes under way at once (the next batch is gathered meanwhile)." default:"${writers}" env:"POSFLEET_INFLUX_WRITERS"`
	MaxSpoolMiB          int64         `name:"max-spool-mib" help:"Spool size (MiB) at which publishes are refused while InfluxDB is down." default:"${max_spool_mib}" env:"POSFLEET_MAX_SPOOL_MIB"`
	EventWindow          time.Duration `help:"Aggregation window of security events and rejections: the first from a source is stored at once, the rest of the window as one point with a count." default:"${event_window}" env:"POSFLEET_EVENT_WINDOW"`
	MaxEventSources      int           `help:"Sources (terminal or username, and address) aggregated at once; past it, events are aggregated per kind without their source." default:"${max_event_keys}" env:"POSFLEET_MAX_EVENT_SOURCES"`
	AuthSourceFailures   float64       `help:"Failed CONNECTs per second one source address (IPv6: /64) may cost an argon2id verification; over it, CONNECTs are refused at once. Negative: no bound." default:"${auth_source_rate}" env:"POSFLEET_AUTH_SOURCE_FAILURES"`
	AuthSourceBurst      int           `help:"Failed CONNECTs one source address may make in a burst (verifications under way included)." default:"${auth_source_burst}" env:"POSFLEET_AUTH_SOURCE_BURST"`
	AuthUsernameFailures float64       `help:"Failed CONNECTs per second one username may cost an argon2id verification; terminals already verified since the start (or ever, with the cache key file) are never refused by it. Negative: no bound." default:"${auth_username_rate}" env:"POSFLEET_AUTH_USERNAME_FAILURES"`
	AuthUsernameBurst    int           `help:"Failed CONNECTs one username may make in a burst." default:"${auth_username_burst}" env:"POSFLEET_AUTH_USERNAME_BURST"`
	AllowHTTPFirmware    bool          `name:"allow-http-firmware" help:"Accept http:// package URLs in the firmware policy (by default only https://). The terminals still check each package's SHA-256." env:"POSFLEET_ALLOW_HTTP_FIRMWARE"`
	SecureCookies        bool          `help:"Mark session cookies Secure: set it when users reach posfleet over HTTPS (directly or through a proxy)." env:"POSFLEET_SECURE_COOKIES"`
	PprofAddr            string        `name:"pprof-addr" help:"Debugging aid, off when empty: serve Go's runtime profiles (/debug/pprof/: heap, goroutines, CPU) on this address, a listener of their own. Keep it on loopback (e.g. 127.0.0.1:6060): the profiles need no login and show the process's internals." env:"POSFLEET_PPROF_ADDR" placeholder:"HOST:PORT"`

	ScaleOut `embed:""`
}

// defaultVars fills the ${…} defaults of the command line from the
// components' DefaultOptions.
func defaultVars() kong.Vars {
	b, c, r := broker.DefaultOptions(), collector.DefaultOptions(), registry.DefaultOptions()
	return kong.Vars{
		"event_window":        c.EventWindow.String(),
		"max_event_keys":      fmt.Sprint(c.MaxEventKeys),
		"auth_source_rate":    fmt.Sprint(r.SourceFailuresPerSecond),
		"auth_source_burst":   fmt.Sprint(r.SourceFailureBurst),
		"auth_username_rate":  fmt.Sprint(r.UsernameFailuresPerSecond),
		"auth_username_burst": fmt.Sprint(r.UsernameFailureBurst),
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
		"http_max_conns":      fmt.Sprint(DefaultHTTPLimits().MaxConns),
	}
}

// Run runs the server until ctx ends (SIGINT, SIGTERM), then shuts down
// gracefully: the collector gets its flush time.
func (cmd *ServeCmd) Run(ctx context.Context, g *Globals) error {
	cfg, err := cmd.config(g)
	if err != nil {
		return err
	}
	srv, err := NewServer(cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func (cmd *ServeCmd) config(g *Globals) (Config, error) {
	cfg := DefaultConfig(g.DataDir)
	cfg.Logger = g.Logger
	if err := cmd.ScaleOut.apply(&cfg); err != nil {
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
	if cmd.HTTPMaxConns < 1 {
		return cfg, fmt.Errorf("serve: --http-max-connections %d: want at least 1", cmd.HTTPMaxConns)
	}
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
	if cfg.MetricsToken != "" && len(cfg.MetricsToken) < 16 {
		return cfg, errors.New("serve: the metrics token is shorter than 16 characters; make a long random one (openssl rand -hex 32)")
	}
	cfg.SecureCookies = cmd.SecureCookies
	cfg.AllowHTTPFirmware = cmd.AllowHTTPFirmware
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
	if cmd.EventWindow <= 0 || cmd.MaxEventSources < 1 || cmd.AuthSourceFailures == 0 || cmd.AuthSourceBurst < 1 || cmd.AuthUsernameFailures == 0 || cmd.AuthUsernameBurst < 1 {
		return cfg, errors.New("serve: --event-window, --max-event-sources, --auth-source-burst and --auth-username-burst must be positive, --auth-source-failures and --auth-username-failures not zero")
	}
	cfg.Registry.SourceFailuresPerSecond, cfg.Registry.SourceFailureBurst = cmd.AuthSourceFailures, cmd.AuthSourceBurst
	cfg.Registry.UsernameFailuresPerSecond, cfg.Registry.UsernameFailureBurst = cmd.AuthUsernameFailures, cmd.AuthUsernameBurst
	if cmd.BatchLines < 1 || cmd.BatchWait <= 0 || cmd.MaxSpoolMiB < 1 || cmd.RateLimit <= 0 || cmd.RateBurst < 1 {
		return cfg, errors.New("serve: --batch-lines, --batch-wait, --max-spool-mib, --rate-limit and --rate-burst must be positive")
	}
	if cmd.ReceiveMaximum < 1 || cmd.ReceiveMaximum > 65535 {
		return cfg, fmt.Errorf("serve: --receive-maximum %d: want 1..65535", cmd.ReceiveMaximum)
	}
	if cmd.InfluxWriters < 1 || cmd.InfluxWriters > 64 {
		return cfg, fmt.Errorf("serve: --influx-writers %d: want 1..64", cmd.InfluxWriters)
	}
	return cfg, nil
}

// HTTPLimits bound what one HTTP client can hold: slow or idle clients
// are cut off, and the number of connections is capped.
type HTTPLimits struct {
	// ReadHeaderTimeout: a request's headers must arrive within it.
	ReadHeaderTimeout time.Duration
	// ReadTimeout: the whole request, body included (a terminal import
	// of a large fleet's CSV over a slow link is the longest).
	ReadTimeout time.Duration
	// WriteTimeout: from the end of the request's headers to the end of
	// the answer (the largest is a work-list CSV).
	WriteTimeout time.Duration
	// IdleTimeout: a keep-alive connection waiting for its next request.
	IdleTimeout time.Duration
	// MaxConns is how many connections are served at once; the kernel
	// queues further ones until a slot frees.
	MaxConns int
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
}

// DefaultHTTPLimits returns the limits of the HTTP listeners.
func DefaultHTTPLimits() HTTPLimits {
	return HTTPLimits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		// Browsers keep a connection for the next click; a minute covers
		// reading a page.
		IdleTimeout: time.Minute,
		// Far above what the people and scripts of one fleet use (a
		// browser opens six), low enough that a flood of connections
		// runs into it before into the file-descriptor limit.
		MaxConns:       1000,
		MaxHeaderBytes: 64 << 10,
	}
}

// Config is everything a Server needs.
type Config struct {
	DataDir  string
	HTTPAddr string
	// HTTP bounds the HTTP listeners' clients.
	HTTP HTTPLimits
	// MetricsToken, when set, is a bearer token that may read /metrics on
	// HTTPAddr (administrators' API tokens may too).
	MetricsToken string
	// MetricsAddr, when set, serves /metrics without credentials on a
	// listener of its own (loopback, or a port only Prometheus reaches).
	MetricsAddr string
	// SecureCookies marks session cookies Secure (HTTPS in front of posfleet).
	SecureCookies bool
	// AllowHTTPFirmware accepts http:// package URLs in the firmware policy.
	AllowHTTPFirmware bool
	Broker            broker.Options
	Collector         collector.Options
	Registry          registry.Options
	Influx            influxdb.Config
	Logger            *slog.Logger
	// Roles says which parts run in this process (see roles.go).
	Roles Roles
	// Source, when its Broker is set, makes the collector consume from an
	// external MQTT broker as well as (or instead of) the embedded one.
	Source mqttsource.Options
	// SnapshotInterval is how often the health engine's state is saved.
	SnapshotInterval time.Duration
	// EMQXToken, when set, enables the EMQX HTTP authentication and
	// authorization endpoints of the web role; EMQX must send it as a
	// bearer token.
	EMQXToken string
	// PprofAddr, when set, serves net/http/pprof on a listener of its own
	// (see pprof.go); "" leaves it off.
	PprofAddr string
}

// DefaultConfig returns the components' defaults with their files under dataDir.
func DefaultConfig(dataDir string) Config {
	cfg := Config{
		DataDir:   dataDir,
		HTTPAddr:  ":8080",
		HTTP:      DefaultHTTPLimits(),
		Broker:    broker.DefaultOptions(),
		Collector: collector.DefaultOptions(),
		Registry:  registry.DefaultOptions(),
		Influx:    influxdb.Config{URL: "http://127.0.0.1:8086", Bucket: "posfleet/autogen"},
		Roles:     AllRoles,
		// A minute of evidence at most is lost with a crash; writing 100,000
		// terminals' state takes about a second of one core.
		SnapshotInterval: time.Minute,
		Source:           mqttsource.DefaultOptions(),
	}
	cfg.Broker.DataDir = filepath.Join(dataDir, "broker")
	cfg.Collector.SpoolDir = filepath.Join(dataDir, "spool")
	return cfg
}

// Server is posfleet in one process: registry, collector (spool and
// InfluxDB writer), MQTT broker and HTTP.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *prometheus.Registry

	reg        *registry.Registry
	users      *auth.Store
	sessionKey []byte
	store      *influxdb.Store
	col        *collector.Collector
	brk        *broker.Broker
	http       *http.Server
	httpLn     net.Listener
	metricsSrv *http.Server
	metricsLn  net.Listener
	pprof      *http.Server
	pprofLn    net.Listener

	engine     *health.Engine
	cmds       *commands.Tracker
	stopHealth context.CancelFunc
	healthDone chan struct{}

	src        *mqttsource.Subscriber
	stopSource context.CancelFunc
	sourceDone chan struct{}
}

// NewServer checks cfg; Start opens everything.
func NewServer(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("serve: no data directory")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log}, nil
}

// The collector hands every accepted message to the health engine and the
// command tracker (Start: collector.Options.Observers).
var (
	_ collector.Observer = (*health.Engine)(nil)
	_ collector.Observer = (*commands.Tracker)(nil)
)

// Start opens the registry, the store, the collector, the broker and the
// HTTP listener, in the order data flows backwards, so that nothing is
// accepted before there is somewhere to put it. Listeners are bound when
// it returns. InfluxDB is not waited for: the spool is the somewhere, and
// pingStore only logs whether InfluxDB answers.
func (s *Server) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.cfg.Roles.check(s.cfg.Source.Broker != ""); err != nil {
		return err
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}
	s.metrics = prometheus.NewRegistry()
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.cfg.PprofAddr != "" {
		// Before the slow parts (loading the health snapshot and the broker
		// sessions), so that they can be profiled too.
		if err := s.startPprof(); err != nil {
			return err
		}
	}

	ropts := registryOptions(s.cfg.DataDir, s.cfg.Registry)
	ropts.Logger = s.log
	if s.reg, err = registry.Open(filepath.Join(s.cfg.DataDir, "registry.db"), ropts); err != nil {
		return err
	}
	if s.users, err = auth.Open(filepath.Join(s.cfg.DataDir, "users.db"), auth.DefaultOptions()); err != nil {
		return err
	}
	if s.sessionKey, err = s.users.SessionKey(); err != nil {
		return fmt.Errorf("serve: session key: %w", err)
	}
	if s.store, err = influxdb.Open(s.cfg.Influx); err != nil {
		return err
	}
	copts := s.cfg.Collector
	copts.Logger, copts.Metrics = s.log, s.metrics
	copts.IsKnown = func(ref posfleet.TerminalRef) bool {
		_, err := s.reg.Get(context.Background(), ref)
		return err == nil
	}
	checks := map[string]web.Check{"timeseries": s.store.Ping}
	if s.cfg.Roles.Collector {
		if err := s.startHealth(ctx); err != nil {
			return err
		}
		copts.Observers = []collector.Observer{s.engine, s.cmds}
		if s.col, err = collector.New(copts, influxdb.Encoder{}, s.store); err != nil {
			return err
		}
		checks["collector"] = func(context.Context) error { return s.col.Healthy() }
	}
	if s.cfg.Source.Broker != "" {
		if err := s.startSource(); err != nil {
			return err
		}
		checks["mqtt_source"] = func(context.Context) error { return s.src.Healthy() }
	}
	if s.cfg.Roles.Broker {
		bopts := s.cfg.Broker
		bopts.Logger, bopts.Metrics = s.log, s.metrics
		if s.brk, err = broker.New(bopts, s.reg, s.col, s.col); err != nil {
			return err
		}
		if err := s.brk.Start(ctx); err != nil {
			return err
		}
		checks["broker"] = func(context.Context) error { return s.brk.Healthy() }
	}
	if s.httpLn, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("serve: http listener: %w", err)
	}
	s.httpLn = netutil.LimitListener(s.httpLn, s.cfg.HTTP.maxConns())
	wopts := web.Options{
		Logger:            s.log,
		Gatherer:          s.metrics,
		Checks:            checks,
		Users:             s.users,
		SessionKey:        s.sessionKey,
		SecureCookies:     s.cfg.SecureCookies,
		Series:            s.store,
		MetricsToken:      s.cfg.MetricsToken,
		AllowHTTPFirmware: s.cfg.AllowHTTPFirmware,
	}
	wopts.Provisioner = s.reg
	if s.col != nil {
		wopts.Events = s.col
		wopts.Health, wopts.Directory, wopts.Commands, wopts.SavePolicy = s.engine, s.reg, s.cmds, s.savePolicy
		wopts.Provisioner = provisionNotifier{reg: s.reg, engine: s.engine}
	}
	if s.brk != nil {
		wopts.Commander = s.brk
	}
	wh, err := web.New(wopts)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.http = s.cfg.HTTP.server(s.withEMQX(wh), s.log)
	hs, ln := s.http, s.httpLn // Close clears s.http, maybe before this goroutine runs
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	if s.cfg.MetricsAddr != "" {
		if err := s.startMetrics(); err != nil {
			return err
		}
	}
	mqttAddr := "-"
	if s.brk != nil {
		mqttAddr = s.brk.TCPAddr().String()
	}
	memLimit := "none (set GOMEMLIMIT)"
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		memLimit = fmt.Sprintf("%d MiB", l>>20)
	}
	// InfluxDB is asked only now, in the background: a store that is down
	// or hangs must not keep the listeners closed (the spool exists so
	// that it need not). /healthz reports it as "timeseries" meanwhile.
	go s.pingStore(s.store)
	s.log.Info("posfleet serving", "memory_limit", memLimit, "roles", s.cfg.Roles.String(), "mqtt", mqttAddr, "mqtt_source", s.cfg.Source.Broker, "http", s.httpLn.Addr().String(), "influx", s.cfg.Influx.URL, "data", s.cfg.DataDir)
	return nil
}

// storePingTimeout bounds the start-up check of InfluxDB; the client's
// own request timeout (30 s by default) is far too long to wait for a log line.
const storePingTimeout = 5 * time.Second

// pingStore logs whether InfluxDB answers at start. It never blocks start-up.
func (s *Server) pingStore(store *influxdb.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), storePingTimeout)
	defer cancel()
	if err := store.Ping(ctx); err != nil {
		// Not fatal: the spool keeps everything until InfluxDB is back.
		s.log.Warn("InfluxDB not reachable at start; spooling until it is", "err", err)
		return
	}
	s.log.Info("InfluxDB reachable", "url", s.cfg.Influx.URL)
}

// Run starts the server and serves until ctx ends, then closes it.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	s.log.Info("shutting down")
	return s.Close()
}

// MQTTAddr is the bound MQTT TCP address, nil without the broker role.
func (s *Server) MQTTAddr() net.Addr {
	if s.brk == nil {
		return nil
	}
	return s.brk.TCPAddr()
}

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() net.Addr { return s.httpLn.Addr() }

// server makes an http.Server with the limits.
func (l HTTPLimits) server(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func (l HTTPLimits) maxConns() int {
	if l.MaxConns < 1 {
		return DefaultHTTPLimits().MaxConns
	}
	return l.MaxConns
}

// startMetrics serves /metrics without credentials on a listener of its
// own, for a Prometheus that reaches it where nobody else does.
func (s *Server) startMetrics() error {
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("serve: metrics listener: %w", err)
	}
	s.metricsLn = netutil.LimitListener(ln, 64)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	s.metricsSrv = s.cfg.HTTP.server(mux, s.log)
	go func() {
		if err := s.metricsSrv.Serve(s.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "err", err)
		}
	}()
	s.log.Info("metrics served without credentials", "addr", ln.Addr().String())
	return nil
}

// MetricsAddr is the bound address of the metrics listener, nil when off.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// Registry gives tests and commands the terminal registry.
func (s *Server) Registry() *registry.Registry { return s.reg }

// Close stops taking traffic first (HTTP, broker), then lets the collector
// flush its spool to InfluxDB, then closes the files.
func (s *Server) Close() error {
	var errs []error
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.http.Shutdown(ctx))
		cancel()
		s.http = nil
	}
	if s.metricsSrv != nil {
		errs = append(errs, s.metricsSrv.Close())
		s.metricsSrv = nil
	}
	errs = append(errs, s.stopPprof())
	s.stopSourceAndWait()
	if s.brk != nil {
		errs = append(errs, s.brk.Close())
		s.brk = nil
	}
	if s.col != nil {
		errs = append(errs, s.col.Close())
		s.col = nil
	}
	errs = append(errs, s.closeHealth())
	if s.store != nil {
		s.store.Close()
		s.store = nil
	}
	if s.reg != nil {
		errs = append(errs, s.reg.Close())
		s.reg = nil
	}
	if s.users != nil {
		errs = append(errs, s.users.Close())
		s.users = nil
	}
	return errors.Join(errs...)
}
