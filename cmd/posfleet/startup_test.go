package main

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// hungInflux is a fake InfluxDB that accepts connections and never answers.
func hungInflux(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestStartWithHungInflux: an InfluxDB that accepts and never answers must
// not hold up the listeners; the spool takes the data meanwhile, and
// /healthz says the time-series store is not ready.
func TestStartWithHungInflux(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, &influxtest.Server{URL: hungInflux(t)})
	cfg.Collector.FlushTimeout = 100 * time.Millisecond // Close need not wait for the hung store
	provision(t, filepath.Join(dir, "registry.db"), cfg.Registry, 1)
	start := time.Now()
	srv := startServer(t, cfg)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Start took %v with a hung InfluxDB, want listeners open within a couple of seconds", d.Round(time.Millisecond))
	}
	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("MQTT CONNECT answered %v after start", d.Round(time.Millisecond))
	}
	// A publish is acknowledged from the spool while InfluxDB hangs.
	publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, `{"seq":1,"ts":"2026-11-22T10:00:00Z","uptime_s":5}`)

	resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || body["timeseries"] == "ok" {
		t.Errorf("/healthz = %d %v, want 503 with timeseries not ok", resp.StatusCode, body)
	}
}
