package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/store"
)

// fleetCSV provisions n terminals of tenant acme with known secrets, and one
// of tenant other.
func fleetCSV(n int) string {
	var b strings.Builder
	b.WriteString("tenant,terminal,model,merchant,site,region,lat,lon,secret\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "acme,T-%04d,A920,Merchant %d,Shop %d,north,31.2,121.4,%s\n", i, i, i, secretOf(i))
	}
	fmt.Fprintf(&b, "other,T-0001,A80,Other shop,Other site,south,22.5,114.0,%s\n", secretOf(9999))
	return b.String()
}

func secretOf(i int) string { return fmt.Sprintf("secret-of-terminal-%06d", i) }

// testServer runs the real server in-process on loopback ports with its own
// data directory and InfluxDB.
func testServer(t testing.TB, influx *influxtest.Server, terminals int) *server.Server {
	t.Helper()
	dir := t.TempDir()
	provision(t, filepath.Join(dir, "registry.db"), testConfig(dir, influx).Registry, terminals)
	return startServer(t, testConfig(dir, influx))
}

// testMetricsToken reads /metrics in the tests.
const testMetricsToken = "test-metrics-token-0123456789"

// testConfig is the server's configuration for tests: loopback ports,
// short batches, cheap hashes.
func testConfig(dir string, influx *influxtest.Server) server.Config {
	cfg := server.DefaultConfig(dir)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.MetricsToken = testMetricsToken
	cfg.Broker.TCPAddr = "127.0.0.1:0"
	cfg.Influx.URL, cfg.Influx.Bucket = influx.URL, influxtest.Bucket
	cfg.Collector.BatchWait = 20 * time.Millisecond
	cfg.Registry.HashMemoryKiB = 64 // tests provision many terminals; speed over hardness here
	return cfg
}

// startServer starts a server with cfg and closes it when the test ends.
func startServer(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// provision imports n terminals into the database of the data directory
// of path (once the registry file, now beside the database).
func provision(t testing.TB, path string, opts registry.Options, n int) {
	t.Helper()
	dataDir := filepath.Dir(path)
	db, err := store.Open(context.Background(), store.URLFor(dataDir, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, err := registry.Open(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := reg.Import(context.Background(), strings.NewReader(fleetCSV(n)), nil); err != nil {
		t.Fatal(err)
	}
}

// terminal connects a paho client as acme:T-000i (or with the given
// overrides) and returns it, or the connect error.
func connect(addr, clientID, username, password string) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetUsername(username).
		SetPassword(password).
		SetCleanSession(false).
		SetProtocolVersion(4). // else paho retries a refused CONNECT as MQTT 3.1
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	return c, tok.Error()
}

func mustConnect(t *testing.T, addr string, i int) mqtt.Client {
	t.Helper()
	id := fmt.Sprintf("acme:T-%04d", i)
	c, err := connect(addr, id, id, secretOf(i))
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c mqtt.Client, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("publish %s: no PUBACK within 10 s", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// metric returns the value of one Prometheus sample line (name with labels
// exactly as exposed), 0 when absent.
func metric(t *testing.T, srv *server.Server, sample string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+srv.HTTPAddr().String()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testMetricsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, sample+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, sample+" "), 64)
			return v
		}
	}
	return 0
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func flux(t *testing.T, influx *influxtest.Server, q string) []map[string]string {
	t.Helper()
	rows, err := influx.Flux(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func count(t *testing.T, influx *influxtest.Server, measurement, field string) int64 {
	t.Helper()
	n, err := influx.Count(context.Background(), measurement, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sum adds up an integer field of a measurement: the events an aggregated
// point stands for (its count field).
func sum(t *testing.T, influx *influxtest.Server, measurement, field string) int64 {
	t.Helper()
	rows := flux(t, influx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == %q and r._field == %q) |> group() |> sum()`, influxtest.Bucket, measurement, field))
	if len(rows) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(rows[0]["_value"], 10, 64)
	return n
}

// signInWeb signs a user in through the sign-in form (with its CSRF token)
// and returns a client holding the session.
func signInWeb(t *testing.T, base, name, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page (status %d)", resp.StatusCode)
	}
	resp, err = c.PostForm(base+"/login", url.Values{"name": {name}, "password": {password}, "csrf": {string(m[1])}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path == "/login" {
		t.Fatalf("sign in as %s: %s at %s", name, resp.Status, resp.Request.URL.Path)
	}
	return c
}
