package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/posfleet/posfleet/server"
)

// ScaleOut holds the flags of the scaled-out layout: roles, the external
// broker, the EMQX endpoints. Secrets come from files or the environment,
// never from flags, which show in process listings.
type ScaleOut struct {
	Roles                  []string `name:"roles" help:"What this process runs: a comma-separated subset of broker, collector, web, health." default:"broker,collector,web" env:"POSFLEET_ROLES"`
	MQTTSource             string   `name:"mqtt-source" help:"External MQTT broker the collector consumes from with a shared subscription (tcp://host:1883, ssl://host:8883)." env:"POSFLEET_MQTT_SOURCE" placeholder:"URL"`
	MQTTSourceUsername     string   `name:"mqtt-source-username" help:"Username of the collector on the external broker." default:"posfleet-collector" env:"POSFLEET_MQTT_SOURCE_USERNAME"`
	MQTTSourcePasswordFile string   `name:"mqtt-source-password-file" help:"File holding the collector's password on the external broker (or set POSFLEET_MQTT_SOURCE_PASSWORD)." type:"path" env:"POSFLEET_MQTT_SOURCE_PASSWORD_FILE"`
	MQTTSourceClientPrefix string   `name:"mqtt-source-client-prefix" help:"Client ID prefix on the external broker; the host name is appended. The ID must survive restarts: the broker keeps the collector's unacknowledged messages in its session." default:"posfleet-collector-" env:"POSFLEET_MQTT_SOURCE_CLIENT_PREFIX"`
	MQTTSourceCAFile       string   `name:"mqtt-source-ca-file" help:"CA certificates (PEM) to verify an ssl:// external broker; default the system's." type:"path" env:"POSFLEET_MQTT_SOURCE_CA_FILE"`
	HealthClientID         string   `name:"health-client-id" help:"Client ID of the health role on the external broker (--mqtt-source); default posfleet-health- plus the host name. It must survive restarts and differ between the health processes: the broker keeps each one's session." env:"POSFLEET_HEALTH_CLIENT_ID"`
	EMQXAuthTokenFile      string   `name:"emqx-auth-token-file" help:"File holding the bearer token EMQX sends to /emqx/authn and /emqx/authz (or set POSFLEET_EMQX_AUTH_TOKEN); the endpoints are off without it." type:"path" env:"POSFLEET_EMQX_AUTH_TOKEN_FILE"`
}

func (f *ScaleOut) apply(cfg *server.Config) error {
	roles, err := server.ParseRoles(f.Roles)
	if err != nil {
		return err
	}
	cfg.Roles = roles
	cfg.HealthClientID = f.HealthClientID
	if cfg.HealthClientID == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("serve: --health-client-id: %w", err)
		}
		cfg.HealthClientID = "posfleet-health-" + host
	}
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
