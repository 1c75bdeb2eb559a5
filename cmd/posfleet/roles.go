package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/posfleet/posfleet/mqttsource"
	"github.com/posfleet/posfleet/web"
)

// Roles says which parts of posfleet one process runs, so that web servers
// and collectors can scale out as separate processes.
//
//   - broker: the embedded MQTT broker; terminals connect to it. It hands
//     messages to the collector in the same process, so it needs the
//     collector role.
//   - collector: the spool and the InfluxDB writer. Without the broker role
//     it needs --mqtt-source (an external broker) to get messages from.
//   - web: the web UI, the JSON API and the EMQX authentication endpoints.
//
// Every process serves /healthz and /metrics on --http-addr whatever its
// roles, so that each one can be probed and scraped.
type Roles struct {
	Broker, Collector, Web bool
}

// AllRoles is posfleet in one process, the default.
var AllRoles = Roles{Broker: true, Collector: true, Web: true}

// ParseRoles reads a comma-separated subset of broker, collector and web.
func ParseRoles(names []string) (Roles, error) {
	var r Roles
	for _, n := range names {
		switch strings.TrimSpace(n) {
		case "broker":
			r.Broker = true
		case "collector":
			r.Collector = true
		case "web":
			r.Web = true
		case "":
		default:
			return Roles{}, fmt.Errorf("serve: --roles: unknown role %q (want broker, collector, web)", n)
		}
	}
	return r, nil
}

// String lists the roles as --roles takes them.
func (r Roles) String() string {
	var s []string
	if r.Broker {
		s = append(s, "broker")
	}
	if r.Collector {
		s = append(s, "collector")
	}
	if r.Web {
		s = append(s, "web")
	}
	return strings.Join(s, ",")
}

// check refuses combinations that would accept data with nowhere to put
// it, or run a collector with nothing to collect.
func (r Roles) check(haveSource bool) error {
	switch {
	case !r.Broker && !r.Collector && !r.Web:
		return errors.New("serve: --roles: no role (want a subset of broker,collector,web)")
	case r.Broker && !r.Collector:
		return errors.New("serve: --roles: the broker role needs the collector role in the same process (the broker hands every message to it before acknowledging)")
	case r.Collector && !r.Broker && !haveSource:
		return errors.New("serve: --roles: a collector without the broker role needs --mqtt-source (an external MQTT broker to consume from)")
	case haveSource && !r.Collector:
		return errors.New("serve: --mqtt-source needs the collector role")
	}
	return nil
}

// ScaleOut holds the flags of the scaled-out layout: roles, the external
// broker, the EMQX endpoints. Secrets come from files or the environment,
// never from flags, which show in process listings.
type ScaleOut struct {
	Roles                  []string `name:"roles" help:"What this process runs: a comma-separated subset of broker, collector, web." default:"broker,collector,web" env:"POSFLEET_ROLES"`
	MQTTSource             string   `name:"mqtt-source" help:"External MQTT broker the collector consumes from with a shared subscription (tcp://host:1883, ssl://host:8883)." env:"POSFLEET_MQTT_SOURCE" placeholder:"URL"`
	MQTTSourceUsername     string   `name:"mqtt-source-username" help:"Username of the collector on the external broker." default:"posfleet-collector" env:"POSFLEET_MQTT_SOURCE_USERNAME"`
	MQTTSourcePasswordFile string   `name:"mqtt-source-password-file" help:"File holding the collector's password on the external broker (or set POSFLEET_MQTT_SOURCE_PASSWORD)." type:"path" env:"POSFLEET_MQTT_SOURCE_PASSWORD_FILE"`
	MQTTSourceClientPrefix string   `name:"mqtt-source-client-prefix" help:"Client ID prefix on the external broker; the host name is appended. The ID must survive restarts: the broker keeps the collector's unacknowledged messages in its session." default:"posfleet-collector-" env:"POSFLEET_MQTT_SOURCE_CLIENT_PREFIX"`
	MQTTSourceCAFile       string   `name:"mqtt-source-ca-file" help:"CA certificates (PEM) to verify an ssl:// external broker; default the system's." type:"path" env:"POSFLEET_MQTT_SOURCE_CA_FILE"`
	EMQXAuthTokenFile      string   `name:"emqx-auth-token-file" help:"File holding the bearer token EMQX sends to /emqx/authn and /emqx/authz (or set POSFLEET_EMQX_AUTH_TOKEN); the endpoints are off without it." type:"path" env:"POSFLEET_EMQX_AUTH_TOKEN_FILE"`
}

func (f *ScaleOut) apply(cfg *Config) error {
	roles, err := ParseRoles(f.Roles)
	if err != nil {
		return err
	}
	cfg.Roles = roles
	if f.MQTTSource != "" {
		cfg.Source.Broker = f.MQTTSource
		cfg.Source.Username = f.MQTTSourceUsername
		if cfg.Source.Password, err = secret("POSFLEET_MQTT_SOURCE_PASSWORD", f.MQTTSourcePasswordFile); err != nil {
			return fmt.Errorf("serve: --mqtt-source-password-file: %w", err)
		}
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("serve: client ID for --mqtt-source: %w", err)
		}
		cfg.Source.ClientID = f.MQTTSourceClientPrefix + host
		if f.MQTTSourceCAFile != "" {
			pem, err := os.ReadFile(f.MQTTSourceCAFile)
			if err != nil {
				return fmt.Errorf("serve: --mqtt-source-ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("serve: --mqtt-source-ca-file %s: no PEM certificate in it", f.MQTTSourceCAFile)
			}
			cfg.Source.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
	}
	if cfg.EMQXToken, err = secret("POSFLEET_EMQX_AUTH_TOKEN", f.EMQXAuthTokenFile); err != nil {
		return fmt.Errorf("serve: --emqx-auth-token-file: %w", err)
	}
	return nil
}

// secret reads a secret from file, or else from the environment variable env.
func secret(env, file string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// startSource starts the external-broker subscriber feeding the collector.
func (s *Server) startSource() error {
	opts := s.cfg.Source
	opts.Logger, opts.Metrics = s.log, s.metrics
	src, err := mqttsource.New(opts, s.col)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.src, s.stopSource, s.sourceDone = src, cancel, make(chan struct{})
	go func() {
		defer close(s.sourceDone)
		src.Run(ctx)
	}()
	return nil
}

// stopSourceAndWait ends the subscriber's session, after the Accepts in
// flight are answered, before the collector closes under it.
func (s *Server) stopSourceAndWait() {
	if s.stopSource == nil {
		return
	}
	s.stopSource()
	<-s.sourceDone
	s.stopSource, s.src = nil, nil
}

// withEMQX adds the EMQX authentication endpoints to the web role's
// handler when a token for them is configured. Every role serves /healthz
// and /metrics; the pages and the API belong to the web role.
func (s *Server) withEMQX(h http.Handler) http.Handler {
	if !s.cfg.Roles.Web || s.cfg.EMQXToken == "" {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("/emqx/", web.EMQXHandler(web.EMQXOptions{Authenticator: s.reg, Token: s.cfg.EMQXToken, Logger: s.log, Metrics: s.metrics}))
	return mux
}
