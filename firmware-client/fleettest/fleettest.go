// Package fleettest runs the real server side of posfleet in the test's
// process, on loopback ports: the registry, the collector with its spool,
// a real InfluxDB (influxtest) and the embedded MQTT broker, wired as
// `posfleet serve` wires them. The broker can be stopped and started again
// on the same address and session store, to test outages; a Proxy between
// a terminal and the broker can cut the TCP connection under both.
package fleettest

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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/broker"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/influxdb"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/registry"
)

// Tenant is the tenant of the provisioned terminals.
const Tenant = "acme"

// Ref returns the i-th provisioned terminal, acme:T-000i.
func Ref(i int) posfleet.TerminalRef {
	return posfleet.TerminalRef{Tenant: Tenant, Terminal: fmt.Sprintf("T-%04d", i)}
}

// Secret returns the secret of the i-th terminal.
func Secret(i int) string { return fmt.Sprintf("test-secret-%04d-0123456789abcdef", i) }

// Server is the server side, running.
type Server struct {
	Influx    *influxtest.Server
	Registry  *registry.Registry
	Collector *collector.Collector
	Store     *influxdb.Store

	// RootCAs trusts the broker's TLS certificate (WithTLS).
	RootCAs *x509.CertPool

	t         testing.TB
	dir       string
	addr      string
	tlsAddr   string
	certFile  string
	keyFile   string
	mu        sync.Mutex
	broker    *broker.Broker
	observers []collector.Observer
}

// Option changes how Start sets the server up.
type Option func(*Server)

// WithObserver hands every accepted message to o as well (a health
// engine, say), as posfleet serve does; observers are called in the order
// given.
func WithObserver(o collector.Observer) Option {
	return func(s *Server) { s.observers = append(s.observers, o) }
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
		s.certFile, s.keyFile = filepath.Join(s.dir, "cert.pem"), filepath.Join(s.dir, "key.pem")
		if err := os.WriteFile(s.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(s.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
			s.t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		s.RootCAs = x509.NewCertPool()
		s.RootCAs.AddCert(cert)
		s.tlsAddr = "127.0.0.1:0"
	}
}

// Start provisions terminals 1..n (none for 0), starts everything and stops it when the
// test ends.
func Start(t testing.TB, n int, options ...Option) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	for _, o := range options {
		o(s)
	}
	s.Influx = influxtest.Start(t)
	ropts := registry.DefaultOptions()
	ropts.HashMemoryKiB = 64 // speed over hardness in tests
	reg, err := registry.Open(filepath.Join(s.dir, "registry.db"), ropts)
	if err != nil {
		t.Fatal(err)
	}
	s.Registry = reg
	t.Cleanup(func() { reg.Close() })
	var csv strings.Builder
	csv.WriteString("tenant,terminal,model,merchant,site,region,lat,lon,secret\n")
	for i := 1; i <= n; i++ {
		r := Ref(i)
		fmt.Fprintf(&csv, "%s,%s,A920,M-%d,Shop %d,North,31.2,121.4,%s\n", r.Tenant, r.Terminal, i%3, i, Secret(i))
	}
	if n > 0 {
		s.Import(csv.String())
	}
	if s.Store, err = influxdb.Open(influxdb.Config{URL: s.Influx.URL, Bucket: influxtest.Bucket}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Store.Close)
	copts := collector.DefaultOptions()
	copts.SpoolDir = filepath.Join(s.dir, "spool")
	copts.BatchWait = 20 * time.Millisecond
	copts.Observers = s.observers
	copts.IsKnown = func(ref posfleet.TerminalRef) bool {
		_, err := reg.Get(context.Background(), ref)
		return err == nil
	}
	if s.Collector, err = collector.New(copts, influxdb.Encoder{}, s.Store); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Collector.Close() })
	s.StartBroker()
	t.Cleanup(s.StopBroker)
	return s
}

// Import provisions the terminals of a provisioning CSV (PROTOCOL.md §4).
func (s *Server) Import(csv string) {
	s.t.Helper()
	if _, err := s.Registry.Import(context.Background(), strings.NewReader(csv), nil); err != nil {
		s.t.Fatal(err)
	}
}

// URL is the broker's address as a terminal's Config.Broker.
func (s *Server) URL() string { return "tcp://" + s.Addr() }

// Addr is the broker's TCP address.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// StartBroker starts the broker, on the address it had before if it ran
// already, with the same session store.
func (s *Server) StartBroker() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broker != nil {
		return
	}
	opts := broker.DefaultOptions()
	opts.TCPAddr = s.addr
	if s.certFile != "" {
		opts.TLSAddr, opts.CertFile, opts.KeyFile = s.tlsAddr, s.certFile, s.keyFile
	}
	opts.DataDir = filepath.Join(s.dir, "broker")
	// No security recorder: these tests do not look at security events.
	b, err := broker.New(opts, s.Registry, s.Collector, s.Collector)
	if err != nil {
		s.t.Fatal(err)
	}
	// The port may still be held for a moment after a stop.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = b.Start(context.Background())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
		if b, err = broker.New(opts, s.Registry, s.Collector, s.Collector); err != nil {
			s.t.Fatal(err)
		}
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.broker = b
	s.addr = b.TCPAddr().String()
	if a := b.TLSAddr(); a != nil {
		s.tlsAddr = a.String()
	}
}

// TLSURL is the broker's TLS address as a terminal's Config.Broker (WithTLS).
func (s *Server) TLSURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "ssl://" + s.tlsAddr
}

// StopBroker stops the broker; terminals lose their connections.
func (s *Server) StopBroker() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broker == nil {
		return
	}
	if err := s.broker.Close(); err != nil {
		s.t.Error(err)
	}
	s.broker = nil
}

// Connected returns how many clients the broker has now.
func (s *Server) Connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broker == nil {
		return 0
	}
	return s.broker.Connected()
}

// SendCommand sends a command to a terminal through the broker.
func (s *Server) SendCommand(ctx context.Context, ref posfleet.TerminalRef, cmd posfleet.Command) error {
	s.mu.Lock()
	b := s.broker
	s.mu.Unlock()
	if b == nil {
		return broker.ErrClosed
	}
	return b.SendCommand(ctx, ref, cmd)
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
