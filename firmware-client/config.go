package firmwareclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/posfleet/posfleet"
)

// Config is everything a Client needs. Zero fields take the value of
// DefaultConfig.
type Config struct {
	// Broker is the server's MQTT address: tcp://host:1883, or
	// ssl://host:8883 (also tls:// or mqtts://) for MQTT over TLS.
	Broker string
	// Tenant, Terminal and Secret are the terminal's provisioned identity.
	Tenant, Terminal, Secret string
	// TLS is the TLS configuration of ssl:// connections: the server's CA in
	// RootCAs and, when the server asks for one, the terminal's client
	// certificate in Certificates. nil uses the system roots.
	TLS *tls.Config
	// Dial, when set, opens the TCP connection to the broker (host:port);
	// TLS is then layered on top by the client for ssl:// URLs. A simulator
	// uses it to spread terminals over several source addresses, or to cut
	// a terminal's link as a dead cellular connection would. nil dials
	// directly.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// StoreDir holds the terminal's outbox and seq (one bbolt file,
	// outbox.db). Put it on storage that survives a reboot.
	StoreDir string
	// Store, when set, is used instead of StoreDir: one Store shared by
	// many clients (a simulator). The client does not close it.
	Store *Store
	// Limits bound the outbox.
	Limits Limits

	// Inventory is what the terminal is and runs. When Model is set it is
	// reported when Run starts (the fw message "on boot"); commands update
	// its Firmware and BootReason.
	Inventory posfleet.Inventory
	// HeartbeatInterval is the period of automatic heartbeats; a negative
	// value turns them off (the firmware calls ReportHeartbeat itself).
	HeartbeatInterval time.Duration
	// Heartbeat fills each automatic heartbeat with the terminal's readings
	// (battery, signal, paper...). The client sets seq, ts and, when the
	// function leaves it nil, uptime_s. nil sends uptime only.
	Heartbeat func() posfleet.Heartbeat

	// Flash installs a downloaded, verified firmware package. It returns nil
	// once the new firmware runs (then the client reports done and the new
	// inventory), or an error saying why it failed. A Flash that restarts
	// the terminal never returns: the client finds the outcome at the next
	// start (see Config.Inventory). nil refuses updates.
	Flash func(ctx context.Context, u Update) error
	// Reboot restarts the terminal. nil refuses reboots.
	Reboot func(ctx context.Context) error
	// OnCommand, when set, sees every well-formed command for this terminal
	// before it is carried out (to show "updating..." on the screen, say).
	// It runs on the command goroutine and should return quickly.
	OnCommand func(ctx context.Context, cmd posfleet.Command)
	// Download bounds firmware downloads.
	Download DownloadOptions

	// ConnectTimeout bounds one connection attempt (TCP, TLS, CONNECT).
	ConnectTimeout time.Duration
	// AckTimeout is how long the client waits for the PUBACK of a message
	// (or a SUBACK) before it takes the connection for dead and reconnects.
	AckTimeout time.Duration
	// KeepAlive is the MQTT keep-alive: how soon a dead connection is noticed
	// on both sides.
	KeepAlive time.Duration
	// ReconnectMin and ReconnectMax bound the wait between connection
	// attempts: it doubles from ReconnectMin up to ReconnectMax, and each
	// wait is drawn at random below that bound (full jitter).
	ReconnectMin, ReconnectMax time.Duration
	// InFlight is how many messages may wait for their PUBACK at once.
	InFlight int

	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// Now is the terminal's clock; nil means time.Now.
	Now func() time.Time
}

// Limits bound a terminal's outbox. When either is reached the outbox gives
// up heartbeats first (oldest first), then faults, inventory and acks, and
// transactions last, and counts every message it gives up (Stats.Dropped).
type Limits struct {
	MaxMessages int
	MaxBytes    int64
}

// DownloadOptions bound a firmware download.
type DownloadOptions struct {
	// Timeout bounds the whole download.
	Timeout time.Duration
	// MaxBytes is the largest package accepted.
	MaxBytes int64
	// Dir receives the package while it is downloaded and flashed; "" uses
	// StoreDir, or the system's temporary directory with a shared Store.
	Dir string
	// Client is the HTTP client; nil uses one with Timeout.
	Client *http.Client
}

// Update is a firmware package ready to flash.
type Update struct {
	// Target is the version the package installs.
	Target string
	// Path is the downloaded package, verified against SHA256. The client
	// removes it after Flash returns.
	Path string
	// SHA256 is its hex digest, as the command gave it.
	SHA256 string
	// Size is its length in bytes.
	Size int64
}

// DefaultConfig returns the defaults for the zero fields of a Config.
func DefaultConfig() Config {
	return Config{
		Limits: Limits{
			// A terminal offline for a week at one heartbeat a minute makes
			// about 10,000 heartbeats; 50,000 messages leaves room for that
			// and for a busy shop's transactions, and heartbeats go first.
			MaxMessages: 50000,
			// 16 MiB of flash: a transaction is about 300 bytes, so still
			// more than 50,000 transactions.
			MaxBytes: 16 << 20,
		},
		// PROTOCOL.md §1: default 60 s; the server calls a terminal offline
		// after three missed heartbeats.
		HeartbeatInterval: 60 * time.Second,
		Download: DownloadOptions{
			// Generous for a cellular link, but bounded: a stuck download
			// must not keep the terminal in "updating" for ever.
			Timeout: 10 * time.Minute,
			// Payment terminal firmware packages are tens of MiB.
			MaxBytes: 256 << 20,
		},
		// Enough for a TLS handshake over a poor 2G link.
		ConnectTimeout: 30 * time.Second,
		// The broker gives its spool 10 s to store a message; 30 s more
		// covers a slow link before the connection is taken for dead.
		AckTimeout: 30 * time.Second,
		// Cellular NATs forget idle connections after a few minutes; 60 s
		// keeps the mapping alive and finds a dead link within 90 s.
		KeepAlive: 60 * time.Second,
		// A fleet of thousands losing the broker at once spreads its
		// reconnects over up to 2 minutes instead of hammering the
		// restarted broker in the same second.
		ReconnectMin: time.Second,
		ReconnectMax: 2 * time.Minute,
		// Below the server's duplicate window (64 seqs) so that messages
		// resent after a reconnect are never mistaken for old duplicates, and
		// enough to flush a store at link speed rather than one round trip
		// per message.
		InFlight: 32,
	}
}

// withDefaults fills zero fields and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if cfg.Limits.MaxMessages == 0 {
		cfg.Limits.MaxMessages = d.Limits.MaxMessages
	}
	if cfg.Limits.MaxBytes == 0 {
		cfg.Limits.MaxBytes = d.Limits.MaxBytes
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = d.HeartbeatInterval
	}
	if cfg.Download.Timeout == 0 {
		cfg.Download.Timeout = d.Download.Timeout
	}
	if cfg.Download.MaxBytes == 0 {
		cfg.Download.MaxBytes = d.Download.MaxBytes
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = d.ConnectTimeout
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = d.AckTimeout
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = d.KeepAlive
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = d.ReconnectMin
	}
	if cfg.ReconnectMax == 0 {
		cfg.ReconnectMax = d.ReconnectMax
	}
	if cfg.InFlight == 0 {
		cfg.InFlight = d.InFlight
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	ref := posfleet.TerminalRef{Tenant: cfg.Tenant, Terminal: cfg.Terminal}
	if err := ref.Validate(); err != nil {
		return cfg, fmt.Errorf("firmwareclient: config: %w", err)
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return cfg, fmt.Errorf("firmwareclient: config: broker URL: %w", err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
	default:
		return cfg, fmt.Errorf("firmwareclient: config: broker URL %q: want tcp:// or ssl://", cfg.Broker)
	}
	if u.Host == "" {
		return cfg, fmt.Errorf("firmwareclient: config: broker URL %q has no host", cfg.Broker)
	}
	switch {
	case cfg.Secret == "":
		return cfg, errors.New("firmwareclient: config: no secret")
	case cfg.Store == nil && cfg.StoreDir == "":
		return cfg, errors.New("firmwareclient: config: no StoreDir (nor shared Store)")
	case cfg.Limits.MaxMessages < 1 || cfg.Limits.MaxBytes < posfleet.MaxPayloadBytes:
		return cfg, fmt.Errorf("firmwareclient: config: limits %+v: want at least 1 message and %d bytes", cfg.Limits, posfleet.MaxPayloadBytes)
	case cfg.ConnectTimeout < 0 || cfg.AckTimeout < 0 || cfg.KeepAlive < time.Second || cfg.Download.Timeout < 0:
		return cfg, errors.New("firmwareclient: config: timeouts must be positive, KeepAlive at least 1 s")
	case cfg.ReconnectMin <= 0 || cfg.ReconnectMax < cfg.ReconnectMin:
		return cfg, errors.New("firmwareclient: config: want 0 < ReconnectMin <= ReconnectMax")
	case cfg.InFlight < 1 || cfg.InFlight > 64:
		// Above 64 a resent message could fall out of the server's
		// duplicate window and be dropped as a duplicate.
		return cfg, errors.New("firmwareclient: config: InFlight must be 1..64")
	}
	if cfg.Inventory.Model != "" && cfg.Inventory.Firmware == "" {
		return cfg, errors.New("firmwareclient: config: Inventory has a Model but no Firmware")
	}
	return cfg, nil
}
