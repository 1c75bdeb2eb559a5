package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestPprofAddr: --pprof-addr serves the heap profile on a listener of its
// own, and the public HTTP listener does not serve it. The process runs the
// web role only, against an InfluxDB that is not there (the server starts
// anyway), so that the test needs nothing but loopback.
func TestPprofAddr(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	cli, _, err := parse([]string{"--data-dir", dir, "serve", "--roles", "web",
		"--http-addr", "127.0.0.1:0", "--pprof-addr", "127.0.0.1:0",
		"--influx-url", "http://127.0.0.1:1"}, &out, &errb)
	if err != nil {
		t.Fatal(err, errb.String())
	}
	cfg, err := cli.Serve.config(&Globals{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfg)
	if srv.PprofAddr() == nil {
		t.Fatal("no pprof listener with --pprof-addr")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(url string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	gzipMagic := []byte{0x1f, 0x8b}
	resp, body := get("http://" + srv.PprofAddr().String() + "/debug/pprof/heap")
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, gzipMagic) {
		t.Errorf("pprof listener /debug/pprof/heap: %d, %d bytes; want 200 and a gzipped profile", resp.StatusCode, len(body))
	}
	resp, body = get("http://" + srv.HTTPAddr().String() + "/debug/pprof/heap")
	if resp.StatusCode == http.StatusOK && bytes.HasPrefix(body, gzipMagic) {
		t.Error("the public HTTP listener serves /debug/pprof/heap")
	}

	t.Run("off by default", func(t *testing.T) {
		cli, _, err := parse([]string{"--data-dir", dir, "serve"}, &out, &errb)
		if err != nil {
			t.Fatal(err)
		}
		if cfg, _ := cli.Serve.config(&Globals{DataDir: dir}); cfg.PprofAddr != "" {
			t.Errorf("PprofAddr %q without --pprof-addr", cfg.PprofAddr)
		}
	})
}
