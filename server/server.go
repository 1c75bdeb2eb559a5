// Package server is posfleet's composition root: it opens the registry,
// the users, the time-series store, the health engine, the collector, the
// MQTT broker (or the external broker's subscriber) and the HTTP listeners,
// wires them as `posfleet serve` runs them, and stops them in order.
// cmd/posfleet maps its flags onto Config; tests start the same thing
// through servertest.
package server

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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/broker"
	"github.com/posfleet/posfleet/campaign"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/influxdb"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/mqttsource"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/web"
)

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
	DataDir string
	// DatabaseURL is the control-plane database (store.Open); "" means the
	// SQLite file store.DefaultFile in DataDir.
	DatabaseURL string
	HTTPAddr    string
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
	// Health is the health engine's configuration; its Logger, Merchant
	// and Site are filled in by the server (the registry's terminals).
	Health health.Config
	Influx influxdb.Config
	Logger *slog.Logger
	// Roles says which parts run in this process (see roles.go).
	Roles Roles
	// Source, when its Broker is set, makes the collector consume from an
	// external MQTT broker as well as (or instead of) the embedded one.
	Source mqttsource.Options
	// SnapshotInterval is how often the health engine's state is saved.
	SnapshotInterval time.Duration
	// ThresholdsFile, when set, is a thresholds document (YAML or JSON,
	// health.Thresholds) imported as version 1 when the database has none.
	ThresholdsFile string
	// EMQXToken, when set, enables the EMQX HTTP authentication and
	// authorization endpoints of the web role; EMQX must send it as a
	// bearer token.
	EMQXToken string
	// PprofAddr, when set, serves net/http/pprof on a listener of its own
	// (see pprof.go); "" leaves it off.
	PprofAddr string
	// EventRetention bounds the security events and rejections kept in
	// the database (see journal.Retention).
	EventRetention journal.Retention
	// AuditRetention is how long audit entries are kept in the database
	// (a year, PCI DSS 10.5.1; see journal.Retention.AuditMaxAge).
	AuditRetention time.Duration
	// Alerting configures alarms and notifications.
	Alerting AlertingConfig
	// HealthClientID is the health role's client ID on the external
	// broker (--mqtt-source); stable per instance, since the broker keeps
	// its persistent session.
	HealthClientID string
	// Publisher configures the health view's publisher (roles.go says
	// where it runs); its Logger and Site are the server's.
	Publisher healthview.PublisherOptions
	// Campaigns are the firmware campaigns' settings (campaigns.go);
	// CampaignInterval is how often the runner steps (0: 5 s).
	Campaigns        campaign.Options
	CampaignInterval time.Duration
	// CampaignGate replaces the gates' rules (nil: campaign's defaults):
	// tests whose soaks last seconds lower the minimum exposures.
	CampaignGate *campaign.GateRules
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
		Health:    health.DefaultConfig(),
		Influx:    influxdb.DefaultConfig(),
		Roles:     AllRoles,
		// A minute of evidence at most is lost with a crash; writing 100,000
		// terminals' state takes about a second of one core.
		SnapshotInterval: time.Minute,
		Source:           mqttsource.DefaultOptions(),
		EventRetention:   journal.DefaultRetention(),
		AuditRetention:   journal.DefaultAuditRetention,
		Alerting:         DefaultAlertingConfig(),
		Publisher:        healthview.DefaultPublisherOptions(),
		Campaigns:        campaign.DefaultOptions(),
	}
	cfg.Broker.DataDir = filepath.Join(dataDir, "broker")
	cfg.Collector.SpoolDir = filepath.Join(dataDir, "spool")
	return cfg
}

// minMetricsToken is the shortest metrics token accepted: a bearer token
// anyone on the network path may try to guess.
const minMetricsToken = 16

// Validate reports the first option out of its range, of the server's own
// or of a component's (each component's Validate, checked once here).
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("serve: no data directory")
	}
	if c.HTTP.MaxConns < 1 {
		return fmt.Errorf("serve: HTTP.MaxConns %d: want at least 1", c.HTTP.MaxConns)
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < minMetricsToken {
		return errors.New("serve: the metrics token is shorter than 16 characters; make a long random one (openssl rand -hex 32)")
	}
	if err := c.Roles.check(c.Source.Broker != ""); err != nil {
		return err
	}
	if c.Roles.Health && c.HealthClientID == "" {
		return errors.New("serve: the health role needs a client ID on the external broker (--health-client-id)")
	}
	errs := []error{c.Broker.Validate(), c.Collector.Validate(), c.Registry.Validate(), c.Health.Validate(), c.Influx.Validate(), c.EventRetention.Validate(), c.auditRetention().Validate(), c.Alerting.Validate(), c.Campaigns.Validate()}
	if c.Source.Broker != "" {
		errs = append(errs, c.Source.Validate())
	}
	return errors.Join(errs...)
}

// Server is posfleet in one process: registry, collector (spool and
// InfluxDB writer), MQTT broker and HTTP.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *prometheus.Registry

	// parts runs the long-running parts (listeners, the health engine's
	// clock, the snapshot loop, the external source); failed ends when
	// one of them returns an error.
	parts  *errgroup.Group
	failed context.Context

	db         *store.DB
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
	journal    *journalParts
	stopHealth context.CancelFunc

	healthDone chan struct{}

	publisher     *healthview.Publisher
	alerting      *alertingParts
	stopPublisher context.CancelFunc
	publisherDone chan struct{}
	// stopOutbox stops the sender of queued commands (outbox.go).
	stopOutbox func()
	// campaigns is the campaign store; stopCampaigns stops its runner
	// (campaigns.go).
	campaigns     *campaign.Store
	stopCampaigns func()

	src        *mqttsource.Subscriber
	stopSource context.CancelFunc
	sourceDone chan struct{}
}

// New checks cfg; Start or Run opens everything.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
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
	_ collector.Observer          = (*health.Engine)(nil)
	_ collector.RejectionObserver = (*health.Engine)(nil)
	_ collector.Observer          = (*commands.Tracker)(nil)
)

// Run starts the server and serves until ctx ends (SIGINT, SIGTERM) or one
// of its long-running parts fails, then closes it in order: the collector
// gets its flush time. It returns the failing part's error, if any.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	return s.wait(ctx)
}

// wait serves until ctx ends or a part fails, then closes the server.
func (s *Server) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case <-s.failed.Done():
		s.log.Error("a part of the server failed; shutting down")
	}
	cerr := s.Close()
	return errors.Join(s.parts.Wait(), cerr)
}

// Start opens the registry, the store, the collector, the broker and the
// HTTP listener, in the order data flows backwards, so that nothing is
// accepted before there is somewhere to put it. Listeners are bound when
// it returns. InfluxDB is not waited for: the spool is the somewhere, and
// pingStore only logs whether InfluxDB answers. Close stops what Start
// started; Run does both.
func (s *Server) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}
	s.parts, s.failed = errgroup.WithContext(context.Background())
	s.metrics = prometheus.NewRegistry()
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.cfg.PprofAddr != "" {
		// Before the slow parts (loading the health snapshot and the broker
		// sessions), so that they can be profiled too.
		if err := s.startPprof(); err != nil {
			return err
		}
	}
	if err := s.openStores(ctx); err != nil {
		return err
	}
	s.openJournal()
	checks, err := s.startPipeline(ctx)
	if err != nil {
		return err
	}
	if err := s.startHTTP(checks); err != nil {
		return err
	}
	s.startOutbox()
	s.startCampaigns()
	s.startDispatcher()
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
	if s.cfg.Roles.Collector || s.cfg.Roles.Web {
		go s.pingStore(s.store) // the health role alone has no use for it
	}
	s.log.Info("posfleet serving", "memory_limit", memLimit, "roles", s.cfg.Roles.String(), "mqtt", mqttAddr, "mqtt_source", s.cfg.Source.Broker, "http", s.httpLn.Addr().String(), "influx", s.cfg.Influx.URL, "data", s.cfg.DataDir)
	return nil
}

// openStores opens the registry, the users and the time-series store.
func (s *Server) openStores(ctx context.Context) (err error) {
	if s.db, err = store.Open(ctx, store.URLFor(s.cfg.DataDir, s.cfg.DatabaseURL)); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ropts := s.cfg.Registry
	ropts.Logger = s.log
	if s.reg, err = OpenRegistry(ctx, s.db, s.cfg.DataDir, ropts); err != nil {
		return err
	}
	// Users and tokens are in the database; a previous release's users.db
	// in the data directory is imported at first start.
	uopts := auth.DefaultOptions()
	uopts.DataDir, uopts.Logger = s.cfg.DataDir, s.log
	if s.users, err = auth.New(ctx, s.db, uopts); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if s.sessionKey, err = s.users.SessionKey(); err != nil {
		return fmt.Errorf("serve: session key: %w", err)
	}
	if s.store, err = influxdb.Open(s.cfg.Influx); err != nil {
		return err
	}
	return nil
}

// startPipeline starts what messages flow through, from the end: the
// health engine, the collector, the external source, the broker. It
// returns the /healthz checks of what it started.
func (s *Server) startPipeline(ctx context.Context) (checks map[string]web.Check, err error) {
	copts := s.cfg.Collector
	copts.Logger, copts.Metrics = s.log, s.metrics
	s.journalCollector(&copts)
	copts.IsKnown = func(ref posfleet.TerminalRef) bool {
		_, err := s.reg.Get(context.Background(), ref)
		return err == nil
	}
	checks = map[string]web.Check{}
	if s.cfg.Roles.Collector || s.cfg.Roles.Web {
		// The health role alone never writes or reads series.
		checks["timeseries"] = s.store.Ping
	}
	if s.cfg.Roles.Health {
		if err := s.startHealth(ctx); err != nil {
			return nil, err
		}
	}
	if s.cfg.Roles.Collector {
		if err := s.startHealth(ctx); err != nil {
			return nil, err
		}
		// Terminals provisioned by other processes (the command line,
		// another replica) count as never connected too.
		eng := s.engine
		s.reg.OnProvisioned(func(refs []posfleet.TerminalRef) { eng.Provision(refs...) })
		copts.Observers = []collector.Observer{s.engine, s.cmds}
		if s.col, err = collector.New(copts, influxdb.Encoder{}, s.store); err != nil {
			return nil, err
		}
		checks["collector"] = func(context.Context) error { return s.col.Healthy() }
	}
	if s.cfg.Roles.publishesHealth(s.cfg.Source.Broker != "") {
		if err := s.startPublisher(); err != nil {
			return nil, err
		}
	}
	if s.cfg.Source.Broker != "" {
		if err := s.startSource(); err != nil {
			return nil, err
		}
		checks["mqtt_source"] = func(context.Context) error { return s.src.Healthy() }
	}
	if s.cfg.Roles.Broker {
		bopts := s.cfg.Broker
		bopts.Logger, bopts.Metrics = s.log, s.metrics
		if s.brk, err = broker.New(bopts, s.reg, s.col, s.col); err != nil {
			return nil, err
		}
		if err := s.brk.Start(ctx); err != nil {
			return nil, err
		}
		checks["broker"] = func(context.Context) error { return s.brk.Healthy() }
	}
	return checks, nil
}

// startHTTP binds the HTTP listener and serves the web handler on it.
func (s *Server) startHTTP(checks map[string]web.Check) (err error) {
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
	s.journalWeb(&wopts)
	s.auditWeb(&wopts)
	s.alarmsWeb(&wopts)
	if s.col != nil {
		wopts.Health, wopts.Directory = s.engine, s.reg
		wopts.Provisioner = provisionNotifier{reg: s.reg, engine: s.engine}
	}
	s.readHealthView(&wopts)
	s.campaignsWeb(&wopts)
	if s.brk != nil {
		wopts.Commander = s.brk
	} else if wopts.Health != nil {
		// No terminal reachable from here: commands wait in the database
		// for the holder of the health lease (outbox.go).
		wopts.Commander = outboxCommander{db: s.db}
	}
	wh, err := web.New(wopts)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.http = s.cfg.HTTP.server(s.withEMQX(wh), s.log)
	s.serve("http", s.http, s.httpLn) // Close clears s.http, maybe before the part runs
	return nil
}

// serve runs hs on ln as a part of the server: an error other than its
// closing stops the server.
func (s *Server) serve(name string, hs *http.Server, ln net.Listener) {
	s.parts.Go(func() error {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(name+" server stopped", "err", err)
			return fmt.Errorf("serve: %s: %w", name, err)
		}
		return nil
	})
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

// MQTTAddr is the bound MQTT TCP address, nil without the broker role.
func (s *Server) MQTTAddr() net.Addr {
	if s.brk == nil {
		return nil
	}
	return s.brk.TCPAddr()
}

// MQTTTLSAddr is the bound MQTT TLS address, nil without a TLS listener.
func (s *Server) MQTTTLSAddr() net.Addr {
	if s.brk == nil {
		return nil
	}
	return s.brk.TLSAddr()
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
	s.serve("metrics", s.metricsSrv, s.metricsLn)
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

// DB is the control-plane database.
func (s *Server) DB() *store.DB { return s.db }

// Users gives tests the users and API tokens of the web UI.
func (s *Server) Users() *auth.Store { return s.users }

// Publisher is the health view's publisher, nil where it does not run
// (roles.go).
func (s *Server) Publisher() *healthview.Publisher { return s.publisher }

// Health is the health engine, nil without the collector or health role.
func (s *Server) Health() *health.Engine { return s.engine }

// Collector is the collector, nil without the collector role.
func (s *Server) Collector() *collector.Collector { return s.col }

// Broker is the embedded MQTT broker, nil without the broker role.
func (s *Server) Broker() *broker.Broker { return s.brk }

// Source is the external broker's subscriber, nil without --mqtt-source.
func (s *Server) Source() *mqttsource.Subscriber { return s.src }

// Store is the time-series store.
func (s *Server) Store() *influxdb.Store { return s.store }

// Metrics is the server's Prometheus registry.
func (s *Server) Metrics() *prometheus.Registry { return s.metrics }

// Close stops taking traffic first (HTTP, broker), then lets the collector
// flush its spool to InfluxDB, then closes the files. It waits for the
// long-running parts to end; their errors are Run's to return.
func (s *Server) Close() error {
	var errs []error
	if s.stopCampaigns != nil {
		s.stopCampaigns()
		s.stopCampaigns = nil
	}
	if s.stopOutbox != nil {
		s.stopOutbox()
		s.stopOutbox = nil
	}
	s.stopDispatcher()
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
	s.closeJournal()
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
	if s.parts != nil {
		s.parts.Wait()
	}
	// Last: everything above may still write to it while closing.
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db = nil
	}
	return errors.Join(errs...)
}
