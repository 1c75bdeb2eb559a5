// Package servertest runs posfleet in the test's process exactly as
// `posfleet serve` runs it (server.New), on loopback ports, in a temporary
// data directory, against a real InfluxDB (influxtest). The server can be
// stopped and started again on the same addresses and data directory, to
// test outages; a Proxy between a terminal and the broker can cut the TCP
// connection under both.
package servertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/broker"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/server"
)

// Tenant is the tenant of the provisioned terminals.
const Tenant = "acme"

// Ref returns the i-th provisioned terminal, acme:T-000i.
func Ref(i int) posfleet.TerminalRef {
	return posfleet.TerminalRef{Tenant: Tenant, Terminal: fmt.Sprintf("T-%04d", i)}
}

// Secret returns the secret of the i-th terminal.
func Secret(i int) string { return fmt.Sprintf("test-secret-%04d-0123456789abcdef", i) }

// Server is posfleet, running.
type Server struct {
	Influx *influxtest.Server

	// RootCAs trusts the broker's TLS certificate (WithTLS).
	RootCAs *x509.CertPool

	t     testing.TB
	dir   string
	cfg   server.Config
	token string // an administrator's API token
	mu    sync.Mutex
	srv   *server.Server
}

// Option changes how Start sets the server up.
type Option func(*Server)

// WithConfig edits the server's configuration before it starts (the health
// engine's thresholds scaled to a simulation, say).
func WithConfig(edit func(*server.Config)) Option {
	return func(s *Server) { edit(&s.cfg) }
}

// WithTLS adds an MQTT-over-TLS listener with a self-signed certificate
// for 127.0.0.1, trusted by RootCAs.
func WithTLS() Option {
	return func(s *Server) {
		s.t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			s.t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "posfleet test broker"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			IsCA:         true, BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			s.t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			s.t.Fatal(err)
		}
		certFile, keyFile := filepath.Join(s.dir, "cert.pem"), filepath.Join(s.dir, "key.pem")
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
			s.t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		s.RootCAs = x509.NewCertPool()
		s.RootCAs.AddCert(cert)
		s.cfg.Broker.TLSAddr, s.cfg.Broker.CertFile, s.cfg.Broker.KeyFile = "127.0.0.1:0", certFile, keyFile
	}
}

// Config is the configuration Start begins with: `posfleet serve`'s
// defaults in dir, on loopback ports, with short batches and cheap hashes,
// writing to influx.
func Config(dir string, influx *influxtest.Server) server.Config {
	cfg := server.DefaultConfig(filepath.Join(dir, "data"))
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Broker.TCPAddr = "127.0.0.1:0"
	cfg.Influx.URL, cfg.Influx.Bucket = influx.URL, influxtest.Bucket
	cfg.Collector.BatchWait = 20 * time.Millisecond
	cfg.Registry.HashMemoryKiB = 64 // speed over hardness in tests
	return cfg
}

// Start starts posfleet, provisions terminals 1..n (none for 0) and stops
// it when the test ends.
func Start(t testing.TB, n int, options ...Option) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), Influx: influxtest.Start(t)}
	s.cfg = Config(s.dir, s.Influx)
	for _, o := range options {
		o(s)
	}
	s.StartBroker()
	t.Cleanup(s.StopBroker)
	token, err := s.Server().Users().CreateToken(context.Background(), "servertest", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	s.token = token
	var csv strings.Builder
	csv.WriteString("tenant,terminal,model,merchant,site,region,lat,lon,secret\n")
	for i := 1; i <= n; i++ {
		r := Ref(i)
		fmt.Fprintf(&csv, "%s,%s,A920,M-%d,Shop %d,North,31.2,121.4,%s\n", r.Tenant, r.Terminal, i%3, i, Secret(i))
	}
	if n > 0 {
		s.Import(csv.String())
	}
	return s
}

// Import provisions the terminals of a provisioning CSV (PROTOCOL.md §4)
// through the API, as an administrator would.
func (s *Server) Import(csv string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.Server().HTTPAddr().String()+"/api/v1/terminals/import", strings.NewReader(csv))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("import: %s: %.300s", resp.Status, body)
	}
}

// Server is the running posfleet; it changes with every StartBroker.
func (s *Server) Server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Collector is the running server's collector.
func (s *Server) Collector() *collector.Collector { return s.Server().Collector() }

// Health is the running server's health engine.
func (s *Server) Health() *health.Engine { return s.Server().Health() }

// URL is the broker's address as a terminal's Config.Broker.
func (s *Server) URL() string { return "tcp://" + s.Addr() }

// Addr is the broker's TCP address.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Broker.TCPAddr
}

// StartBroker starts posfleet, on the addresses it had before if it ran
// already, with the same data directory (registry, spool, broker sessions,
// health snapshot).
func (s *Server) StartBroker() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	// The ports may still be held for a moment after a stop.
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var srv *server.Server
		if srv, err = server.New(s.cfg); err != nil {
			s.t.Fatal(err)
		}
		if err = srv.Start(context.Background()); err == nil {
			s.srv = srv
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatal(err)
		}
	}
	s.cfg.HTTPAddr = s.srv.HTTPAddr().String()
	s.cfg.Broker.TCPAddr = s.srv.MQTTAddr().String()
	if a := s.srv.MQTTTLSAddr(); a != nil {
		s.cfg.Broker.TLSAddr = a.String()
	}
}

// TLSURL is the broker's TLS address as a terminal's Config.Broker (WithTLS).
func (s *Server) TLSURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "ssl://" + s.cfg.Broker.TLSAddr
}

// StopBroker stops posfleet (broker, collector, web); terminals lose their
// connections.
func (s *Server) StopBroker() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	if err := s.srv.Close(); err != nil {
		s.t.Error(err)
	}
	s.srv = nil
}

// Connected returns how many clients the broker has now.
func (s *Server) Connected() int {
	srv := s.Server()
	if srv == nil {
		return 0
	}
	return srv.Broker().Connected()
}

// SendCommand sends a command to a terminal through the broker.
func (s *Server) SendCommand(ctx context.Context, ref posfleet.TerminalRef, cmd posfleet.Command) error {
	srv := s.Server()
	if srv == nil {
		return broker.ErrClosed
	}
	return srv.Broker().SendCommand(ctx, ref, cmd)
}

// Rows runs a Flux query and fails the test on error.
func (s *Server) Rows(ctx context.Context, flux string) []map[string]string {
	s.t.Helper()
	rows, err := s.Influx.Flux(ctx, flux)
	if err != nil {
		s.t.Fatal(err)
	}
	return rows
}

// Points returns the points of measurement m for terminal ref, one map per
// point (fields and tags, keyed by name, plus "_time"), in time order.
func (s *Server) Points(ctx context.Context, m string, ref posfleet.TerminalRef) []map[string]string {
	s.t.Helper()
	q := fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z)
	 |> filter(fn: (r) => r._measurement == %q and r.tenant == %q and r.terminal == %q)
	 |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
	 |> group() |> sort(columns: ["_time"])`, influxtest.Bucket, m, ref.Tenant, ref.Terminal)
	return s.Rows(ctx, q)
}

// Eventually polls cond every 100 ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Proxy forwards TCP connections to a target and can cut them all at once,
// as a dead cellular link would: neither side says goodbye.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// NewProxy listens on a loopback port and forwards to target; it is closed
// when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// URL is the proxy's address as a terminal's Config.Broker.
func (p *Proxy) URL() string { return "tcp://" + p.ln.Addr().String() }

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { io.Copy(out, in); out.Close() }()
		go func() { io.Copy(in, out); in.Close() }()
	}
}

// Cut closes every forwarded connection. On the broker's side the client
// vanished without DISCONNECT, so its last will is published.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		c.Close()
	}
	p.conns = nil
}

// Close stops the proxy and cuts its connections.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
