package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/posfleet/posfleet/internal/testport"
)

// system is a pipeline under test: something that takes MQTT on addr and
// ends in a database of the run's InfluxDB.
type system interface {
	// Name is the label in the results.
	Name() string
	// Start runs the system writing into db and returns its MQTT address.
	Start(ctx context.Context, db string) (addr string, err error)
	// PIDs are the pipeline's own processes (for CPU and memory).
	PIDs() []int
	// Stop ends every process of the system.
	Stop()
}

// posfleetSystem is `posfleet serve`, a child process with its own data
// directory, provisioned through `posfleet terminals import`.
type posfleetSystem struct {
	bin, dir    string
	influx      *influx
	creds       []credential
	procs       *children
	mqtt        string
	http        string
	metricsAddr string // the credential-free metrics listener (--metrics-addr)
	db          string
	proc        *child
	provisioned bool // the terminals are imported
	started     bool // the addresses are chosen and were bound once
	// name is the label; extra are further serve flags; defaults keeps
	// the per-terminal rate limit (the connections scenario).
	name     string
	extra    []string
	defaults bool
	env      []string
	// pprof asks for posfleet's profiling listener (--pprof-addr), on
	// pprofAddr.
	pprof     bool
	pprofAddr string
}

func (s *posfleetSystem) Name() string {
	if s.name == "" {
		return "posfleet"
	}
	return s.name
}

func (s *posfleetSystem) PIDs() []int {
	if s.proc == nil {
		return nil
	}
	return []int{s.proc.pid()}
}

// provision writes the terminals to a CSV file with their secrets and
// imports it.
func (s *posfleetSystem) provision(ctx context.Context) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(s.dir, "terminals.csv")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"tenant", "terminal", "model", "merchant", "site", "region", "lat", "lon", "secret"})
	for i, c := range s.creds {
		w.Write([]string{c.Tenant, c.Terminal, "A920", "M-" + itoa(i/10), "S-" + itoa(i/5), "bench", "31.23", "121.47", c.Secret})
	}
	w.Flush()
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, s.bin, "--data-dir", filepath.Join(s.dir, "data"), "--log-level", "warn",
		"terminals", "import", path, "--secrets-out", filepath.Join(s.dir, "secrets.csv"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("posfleet terminals import: %w: %s", err, out)
	}
	s.provisioned = true
	return nil
}

// reset starts the system afresh in dir: provisioned again and on new
// ports at the next Start.
func (s *posfleetSystem) reset(dir string, pprof bool) {
	s.dir, s.pprof, s.pprofAddr = dir, pprof, ""
	s.provisioned, s.started = false, false
}

// Start provisions the terminals on first use and runs posfleet serve on
// free loopback ports; a later Start (a restart) reuses the data and ports.
func (s *posfleetSystem) Start(ctx context.Context, db string) (string, error) {
	if !s.provisioned {
		if err := s.provision(ctx); err != nil {
			return "", err
		}
	}
	s.db = db
	fresh := !s.started
	for attempt := 1; ; attempt++ {
		if fresh {
			s.mqtt, s.http, s.metricsAddr = freeAddr(), freeAddr(), freeAddr()
			if s.pprof {
				s.pprofAddr = freeAddr()
			}
		}
		err := s.start(ctx)
		// A free port is closed again before posfleet binds it, and
		// another process on the machine may take it in between: a
		// first start then tries other ports. A restart must keep its
		// ports (the terminals reconnect to them).
		if err == nil || !fresh || attempt == 3 || !errors.Is(err, errAddrInUse) {
			s.started = s.started || err == nil
			return s.mqtt, err
		}
	}
}

// start runs posfleet serve once on s's addresses and waits until it
// answers its health check.
func (s *posfleetSystem) start(ctx context.Context) error {
	args := []string{"--data-dir", filepath.Join(s.dir, "data"), "--log-level", "warn", "serve",
		"--mqtt-addr", s.mqtt, "--http-addr", s.http, "--metrics-addr", s.metricsAddr,
		"--influx-url", s.influx.srv.URL, "--influx-bucket", bucket(s.db)}
	if !s.defaults {
		// The throughput scenario measures the pipeline, not the
		// per-terminal limit that protects it from a runaway terminal.
		args = append(args, "--rate-limit", "1000000", "--rate-burst", "1000000")
	}
	if s.pprofAddr != "" {
		args = append(args, "--pprof-addr", s.pprofAddr)
	}
	args = append(args, s.extra...)
	logPath := filepath.Join(s.dir, "posfleet.log")
	p, err := s.procs.start(s.Name(), logPath, s.env, s.bin, args...)
	if err != nil {
		return err
	}
	s.proc = p
	if err := waitHTTP(ctx, p, "http://"+s.http+"/healthz", 60*time.Second); err != nil {
		return fmt.Errorf("posfleet: %w (log %s)", startFailure(err, p, logPath), logPath)
	}
	return nil
}

// kill ends posfleet at once (SIGKILL), as a crash or an OOM kill would.
func (s *posfleetSystem) kill() {
	if s.proc != nil {
		s.proc.stop(syscall.SIGKILL, 10*time.Second)
		s.proc = nil
	}
}

func (s *posfleetSystem) Stop() {
	if s.proc != nil {
		s.proc.stop(syscall.SIGTERM, 30*time.Second)
		s.proc = nil
	}
}

// telegrafSystem is Mosquitto and Telegraf (mqtt_consumer → influxdb_v2),
// each a child process with the configuration written by
// mosquittoConfig and telegrafConfig.
type telegrafSystem struct {
	mosquitto, telegraf string
	dir                 string
	confDir             string // where the configurations are copied for the results
	influx              *influx
	procs               *children
	mq, tg              *child
}

func (s *telegrafSystem) Name() string { return "mosquitto+telegraf" }

func (s *telegrafSystem) PIDs() []int {
	var p []int
	for _, c := range []*child{s.mq, s.tg} {
		if c != nil {
			p = append(p, c.pid())
		}
	}
	return p
}

func (s *telegrafSystem) Start(ctx context.Context, db string) (string, error) {
	dir := filepath.Join(s.dir, db)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	mconf := mosquittoConfig(port, dir)
	tconf := telegrafConfig("tcp://"+addr, s.influx.srv.URL, bucket(db))
	for name, text := range map[string]string{"mosquitto.conf": mconf, "telegraf.conf": tconf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			return "", err
		}
		if s.confDir != "" {
			// Recorded with the results, with this run's ports and database.
			if err := os.WriteFile(filepath.Join(s.confDir, name), []byte(text), 0o644); err != nil {
				return "", err
			}
		}
	}
	var err error
	if s.mq, err = s.procs.start("mosquitto", filepath.Join(dir, "mosquitto.log"), nil, s.mosquitto, "-c", filepath.Join(dir, "mosquitto.conf")); err != nil {
		return "", err
	}
	if err := waitTCP(ctx, s.mq, addr, 30*time.Second); err != nil {
		logPath := filepath.Join(dir, "mosquitto.log")
		return "", fmt.Errorf("mosquitto: %w (log %s)", startFailure(err, s.mq, logPath), logPath)
	}
	if s.tg, err = s.procs.start("telegraf", filepath.Join(dir, "telegraf.log"), nil, s.telegraf, "--config", filepath.Join(dir, "telegraf.conf")); err != nil {
		return "", err
	}
	return addr, nil
}

func (s *telegrafSystem) Stop() {
	// Telegraf first, so that it flushes what it holds while the broker is
	// still there to take its acknowledgements.
	if s.tg != nil {
		s.tg.stop(syscall.SIGTERM, 30*time.Second)
		s.tg = nil
	}
	if s.mq != nil {
		s.mq.stop(syscall.SIGTERM, 10*time.Second)
		s.mq = nil
	}
}

// mosquittoConfig is Mosquitto as a competent user sets it up for this
// load: loopback listener, queues large enough that a slow subscriber does
// not make it drop messages (the default of 1,000 queued messages per
// client drops silently), and an in-flight window towards Telegraf as
// large as Telegraf's max_undelivered_messages (Telegraf acknowledges a
// message only once it is written, so a small window caps throughput).
func mosquittoConfig(port, dir string) string {
	return fmt.Sprintf(`# Mosquitto 2.0 for the posbench throughput scenario.
per_listener_settings false
listener %s 127.0.0.1
allow_anonymous true
# Run as the invoking user (no privilege drop: the files are in a private directory).
user %s
persistence true
persistence_location %s/
autosave_interval 60
# A persistent subscriber that falls behind must not lose messages: the
# default (1000 per client) would drop them silently.
max_queued_messages 2000000
max_queued_bytes 0
# QoS 1 messages in flight towards one client; Telegraf acks after writing.
max_inflight_messages 10000
max_inflight_bytes 0
max_keepalive 120
log_dest file %s/mosquitto-broker.log
log_type error
log_type warning
connection_messages false
`, port, currentUser(), dir, dir)
}

// telegrafConfig is Telegraf's mqtt_consumer → influxdb_v2 for posfleet's
// topics and payloads: QoS 1 with a persistent session (Telegraf then
// acknowledges a message only after the output wrote it), topic parsing
// into tenant and terminal tags, the JSON payload's ts as the time, and
// InfluxDB's recommended 5,000 lines per write, flushed every second.
func telegrafConfig(broker, influxURL, bucket string) string {
	return fmt.Sprintf(`# Telegraf 1.37 for the posbench throughput scenario.
[agent]
  interval = "10s"
  round_interval = false
  metric_batch_size = 5000
  # Room for 40 full batches while InfluxDB is slow; beyond it Telegraf drops the oldest.
  metric_buffer_limit = 200000
  flush_interval = "1s"
  flush_jitter = "0s"
  precision = "1ns"
  omit_hostname = true
  quiet = true

[[inputs.mqtt_consumer]]
  servers = [%q]
  topics = ["fleet/v1/+/+/hb", "fleet/v1/+/+/txn"]
  qos = 1
  client_id = "telegraf-posbench"
  persistent_session = true
  # Messages read but not yet written; Mosquitto's max_inflight_messages matches it.
  max_undelivered_messages = 10000
  # The topic is parsed into tags below; the whole topic as a tag would only add cardinality.
  topic_tag = ""
  connection_timeout = "30s"
  keepalive = 60
  data_format = "json_v2"

  # fleet/v1/{tenant}/{terminal}/{channel}: the channel names the measurement.
  [[inputs.mqtt_consumer.topic_parsing]]
    topic = "fleet/v1/+/+/+"
    measurement = "_/_/_/_/measurement"
    tags = "_/_/tenant/terminal/_"

  [[inputs.mqtt_consumer.json_v2]]
    [[inputs.mqtt_consumer.json_v2.object]]
      path = "@this"
      timestamp_key = "ts"
      timestamp_format = "2006-01-02T15:04:05Z07:00"
      # Low-cardinality strings as tags, as posfleet's schema does.
      tags = ["net", "paper", "type", "entry", "result", "receipt"]

[[outputs.influxdb_v2]]
  urls = [%q]
  token = ""
  organization = ""
  bucket = %q
  # Loopback: compression would only cost CPU.
  content_encoding = "identity"
  timeout = "30s"
`, broker, influxURL, bucket)
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if os.Getuid() == 0 {
		return "root"
	}
	return "nobody"
}

// freeAddr returns a free loopback TCP address (a variable so that a
// test can hand out a taken one).
var freeAddr = pickFreeAddr

// pickFreeAddr reserves a loopback port for the rest of the run (see
// internal/testport): posbench's tests run beside other test packages
// that start and restart servers on ports of their own.
func pickFreeAddr() string {
	p, _, err := testport.Reserve()
	if err != nil {
		panic(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// saveProfile fetches a profile from posfleet's pprof listener (path as
// /debug/pprof/heap) into file.
func saveProfile(ctx context.Context, addr, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, p *child, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited at start", p.name)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not listening on %s within %v", p.name, addr, within)
}

// waitHTTP waits until url answers 200.
func waitHTTP(ctx context.Context, p *child, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited at start", p.name)
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not healthy at %s within %v", p.name, url, within)
}

// metrics scrapes posfleet's Prometheus metrics and sums each metric over
// its labels (name → value); nil when posfleet does not answer.
func (s *posfleetSystem) metrics(ctx context.Context) map[string]float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "posfleet_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 && !strings.HasPrefix(name, writeBucket) {
			name = name[:j]
		}
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			m[name] += v
		}
	}
	return m
}

// writeBucket is the prefix of posfleet's InfluxDB write-time histogram
// buckets, which metrics keeps by bucket (le label) to count slow writes.
const writeBucket = "posfleet_write_seconds_bucket{"

// slowWrite is the bucket bound above which an InfluxDB write counts as
// slow in the report: half the latency target.
const slowWrite = "0.512"

// PipelineStats are posfleet's own figures over a phase, from its metrics:
// where the time of a message goes.
type PipelineStats struct {
	SpoolCommits  float64 `json:"spool_commits"`
	MsgsPerCommit float64 `json:"messages_per_commit"`
	CommitMeanMs  float64 `json:"commit_mean_ms"`
	WriteBatches  float64 `json:"influx_write_batches"`
	LinesPerBatch float64 `json:"lines_per_batch"`
	WriteMeanMs   float64 `json:"influx_write_mean_ms"`
	// SlowWrites took more than 512 ms; WriteMaxMs is the upper bound of
	// the histogram bucket of the slowest write, or, with WriteMaxOver,
	// the largest bound, which the slowest write exceeded.
	SlowWrites         float64 `json:"influx_writes_over_512ms"`
	WriteMaxMs         float64 `json:"influx_write_max_ms_at_most"`
	WriteMaxOver       bool    `json:"influx_write_max_over_largest_bucket,omitempty"`
	DuplicatesDropped  float64 `json:"duplicates_dropped"`
	RejectedByPosfleet float64 `json:"rejected"`
}

func pipelineStats(before, after map[string]float64, messages int64) *PipelineStats {
	if before == nil || after == nil {
		return nil
	}
	d := func(k string) float64 { return after[k] - before[k] }
	p := &PipelineStats{
		SpoolCommits:       d("posfleet_spool_commit_seconds_count"),
		WriteBatches:       d("posfleet_write_batches_total"),
		DuplicatesDropped:  d("posfleet_messages_duplicate_total"),
		RejectedByPosfleet: d("posfleet_messages_rejected_total"),
	}
	if p.SpoolCommits > 0 {
		p.MsgsPerCommit = float64(messages) / p.SpoolCommits
		p.CommitMeanMs = 1000 * d("posfleet_spool_commit_seconds_sum") / p.SpoolCommits
	}
	if p.WriteBatches > 0 {
		p.LinesPerBatch = d("posfleet_write_points_total") / p.WriteBatches
		p.WriteMeanMs = 1000 * d("posfleet_write_seconds_sum") / d("posfleet_write_seconds_count")
	}
	writes := d("posfleet_write_seconds_count")
	p.SlowWrites = writes - d(writeBucket+`le="`+slowWrite+`"}`)
	// The slowest write is in the lowest bucket holding every write.
	type bucket struct {
		le  float64
		key string
	}
	var buckets []bucket
	for k := range after {
		if le, ok := strings.CutPrefix(k, writeBucket+`le="`); ok {
			if v, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64); err == nil {
				buckets = append(buckets, bucket{v, k})
			}
		}
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].le < buckets[j].le })
	for i, b := range buckets {
		if writes > 0 && d(b.key) >= writes {
			if math.IsInf(b.le, 1) && i > 0 { // JSON has no infinity
				p.WriteMaxMs, p.WriteMaxOver = 1000*buckets[i-1].le, true
			} else {
				p.WriteMaxMs = 1000 * b.le
			}
			break
		}
	}
	return p
}
