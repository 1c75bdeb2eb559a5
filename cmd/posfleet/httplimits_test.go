package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server"
)

// webOnly starts a web-role server on loopback with cfg changed by edit;
// InfluxDB is a closed loopback port (the web role starts without it).
func webOnly(t *testing.T, edit func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig(t.TempDir())
	cfg.Roles = server.Roles{Web: true}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Influx.URL = "http://127.0.0.1:1"
	edit(&cfg)
	return startServer(t, cfg)
}

// TestHTTPTimeoutsAndConnectionLimit: half-sent headers, half-sent bodies
// and idle keep-alive connections are all cut off, and no more than
// MaxConns connections are served at once.
func TestHTTPTimeoutsAndConnectionLimit(t *testing.T) {
	srv := webOnly(t, func(cfg *server.Config) {
		cfg.HTTP = server.HTTPLimits{ReadHeaderTimeout: 400 * time.Millisecond, ReadTimeout: 600 * time.Millisecond,
			WriteTimeout: time.Second, IdleTimeout: 400 * time.Millisecond, MaxConns: 20, MaxHeaderBytes: 8 << 10}
	})
	addr := srv.HTTPAddr().String()
	const n = 50
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		switch i % 3 {
		case 0: // headers never finished
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		case 1: // a body that never comes
			io.WriteString(c, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nname=a")
		case 2: // one request, then idle keep-alive
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		}
	}
	// Every connection is closed by the server within a few rounds of
	// the timeouts (the limit lets 20 at a time in).
	deadline := time.Now().Add(15 * time.Second)
	for i, c := range conns {
		c.SetReadDeadline(deadline)
		_, err := io.Copy(io.Discard, c)
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d (kind %d) still open after 15 s", i, i%3)
		}
	}
	if time.Now().After(deadline) {
		t.Fatal("timed out")
	}

	// The limit: with MaxConns connections held open, one more is served
	// only once a slot frees (here: when the held ones time out).
	held := make([]net.Conn, 0, 20)
	for range 20 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		conns = append(conns, c)
	}
	time.Sleep(150 * time.Millisecond)
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, c)
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the 21st connection: %v", err)
	}
	resp.Body.Close()
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("the 21st connection was served after %v, while 20 were held: no limit", waited)
	}
	for _, h := range held {
		h.Close()
	}
}

// TestMetricsListener: --metrics-addr serves /metrics without
// credentials on its own listener; the main port wants the token.
func TestMetricsListener(t *testing.T) {
	srv := webOnly(t, func(cfg *server.Config) {
		cfg.MetricsAddr = "127.0.0.1:0"
		cfg.MetricsToken = testMetricsToken
	})
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(url, token string) (int, string) {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("http://"+srv.HTTPAddr().String()+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("main port without credentials: %d", code)
	}
	if code, body := get("http://"+srv.HTTPAddr().String()+"/metrics", testMetricsToken); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("main port with the metrics token: %d", code)
	}
	if code, body := get("http://"+srv.MetricsAddr().String()+"/metrics", ""); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics listener: %d", code)
	}
	if code, _ := get("http://"+srv.MetricsAddr().String()+"/api/v1/fleet", ""); code != http.StatusNotFound {
		t.Errorf("metrics listener serves the API: %d", code)
	}
	if code, body := get("http://"+srv.HTTPAddr().String()+"/healthz", ""); strings.Contains(body, "127.0.0.1:1") {
		t.Errorf("healthz shows the InfluxDB URL: %d %s", code, body)
	}
}
