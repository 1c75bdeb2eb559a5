// Command posbench is posfleet's end-to-end benchmark. In one run, against
// one InfluxDB 1.8 server, it measures
//
//   - the ceiling: posfleet's line protocol written straight to InfluxDB in
//     5,000-line batches from several writers;
//   - posfleet serve, driven by simulated terminals publishing QoS 1 as fast
//     as acknowledgements allow, then at half that rate for latency;
//   - Mosquitto + Telegraf (mqtt_consumer, json_v2, influxdb_v2) under the
//     same load;
//
// alternating the systems and repeating, and writes the results as JSON
// and a Markdown table. `-scenario connections` measures instead how many
// terminals one server holds, its memory per terminal, its CPU at idle and
// how long the fleet takes to come back after the server is killed.
//
//	go run ./cmd/posbench                       # short default run (make bench)
//	go run ./cmd/posbench -reps 3 -duration 60s # longer
//	go run ./cmd/posbench -scenario connections -conn-terminals 15000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// options are the command line.
type options struct {
	Scenario string
	Reps     int
	// Throughput scenario.
	Terminals       int
	Inflight        int
	Generator       string
	Duration        time.Duration
	LatencyDuration time.Duration
	Poll            time.Duration
	LatencyCount    string // latencyCountStats or latencyCountFlux
	DrainMax        time.Duration
	CeilingLines    int
	CeilingWriters  []int
	Systems         []string
	RequireAll      bool
	// Connections scenario.
	ConnTerminals int
	Heartbeat     time.Duration
	SourceAddrs   int
	IdleWindow    time.Duration
	ConnectMax    time.Duration
	// Binaries and places.
	Posfleet, Influxd, Mosquitto, Telegraf string
	// PosfleetEnv is added to posfleet's environment (GOMEMLIMIT, GOGC).
	PosfleetEnv []string
	Out, Work   string
	Keep        bool
	Timeout     time.Duration
	Quiet       bool
	CPUProfile  string
	// PprofDir, when set, gets posfleet's own profiles (serve
	// --pprof-addr): CPU over the maximum-rate phase and allocations
	// before and after it; heap and goroutines with every terminal
	// connected.
	PprofDir string
}

func defaultOptions() options {
	return options{
		Scenario:        "throughput",
		Reps:            2,
		Terminals:       100,
		Inflight:        16,
		Generator:       generatorRaw,
		Duration:        10 * time.Second,
		LatencyDuration: 10 * time.Second,
		Poll:            100 * time.Millisecond,
		LatencyCount:    latencyCountStats,
		DrainMax:        3 * time.Minute,
		CeilingLines:    300_000,
		CeilingWriters:  []int{1, 2, 4},
		Systems:         []string{"posfleet", "posfleet-interval", "telegraf"},
		ConnTerminals:   15_000,
		Heartbeat:       60 * time.Second,
		SourceAddrs:     4,
		IdleWindow:      20 * time.Second,
		ConnectMax:      5 * time.Minute,
		Timeout:         30 * time.Minute,
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "conngen" {
		os.Exit(connGenMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := defaultOptions()
	fs := flag.NewFlagSet("posbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Scenario, "scenario", o.Scenario, "throughput or connections")
	fs.IntVar(&o.Reps, "reps", o.Reps, "repetitions (systems alternate their order)")
	fs.IntVar(&o.Terminals, "terminals", o.Terminals, "simulated terminals of the throughput scenario")
	fs.IntVar(&o.Inflight, "inflight", o.Inflight, "unacknowledged QoS 1 publishes per terminal")
	fs.StringVar(&o.Generator, "generator", o.Generator, "load generator: raw (MQTT 3.1.1 over TCP encoded by hand, each terminal's window in one write: cheap, so the systems get the CPU) or paho (the paho client)")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "publishing time of the maximum-rate phase")
	fs.DurationVar(&o.LatencyDuration, "latency-duration", o.LatencyDuration, "publishing time of the half-rate latency phase")
	fs.DurationVar(&o.Poll, "poll", o.Poll, "InfluxDB count polling period in the latency phase")
	fs.StringVar(&o.LatencyCount, "latency-count", o.LatencyCount, "how the latency phase counts what InfluxDB has: stats (the points its shards took, from SHOW STATS: in-memory counters, checked against a Flux count at the end) or flux (a Flux count of the phase's points at every poll, which InfluxDB pays for: 50-300 ms a query at half a million points)")
	fs.DurationVar(&o.DrainMax, "drain-max", o.DrainMax, "longest wait for a system to store what was acknowledged")
	fs.IntVar(&o.CeilingLines, "ceiling-lines", o.CeilingLines, "lines written directly to InfluxDB per ceiling measurement")
	writers := fs.String("ceiling-writers", joinInts(o.CeilingWriters), "comma-separated writer counts tried for the ceiling (the best counts)")
	systems := fs.String("systems", strings.Join(o.Systems, ","), "systems to run: posfleet (default durability: fsync before every acknowledgement), posfleet-interval (--fsync=interval, Mosquitto's class: a process crash loses nothing, an OS crash up to 100 ms), telegraf (Mosquitto+Telegraf)")
	fs.BoolVar(&o.RequireAll, "require-all", o.RequireAll, "fail instead of skipping Mosquitto+Telegraf when their binaries are missing")
	fs.IntVar(&o.ConnTerminals, "conn-terminals", o.ConnTerminals, "terminals of the connections scenario")
	fs.DurationVar(&o.Heartbeat, "heartbeat", o.Heartbeat, "heartbeat interval of the connections scenario")
	fs.IntVar(&o.SourceAddrs, "source-addrs", o.SourceAddrs, "127.0.0.x source addresses the connections are spread over")
	fs.DurationVar(&o.IdleWindow, "idle-window", o.IdleWindow, "CPU measurement window with every terminal connected")
	fs.DurationVar(&o.ConnectMax, "connect-max", o.ConnectMax, "longest wait for the fleet to connect (and to come back)")
	fs.StringVar(&o.Posfleet, "posfleet", "", "posfleet binary (default: built from this module)")
	env := fs.String("posfleet-env", "", "comma-separated NAME=VALUE added to posfleet's environment, e.g. GOMEMLIMIT=700MiB")
	fs.StringVar(&o.Influxd, "influxd", "", "influxd 1.8 binary (default: .tools/bin/influxd, $POSFLEET_INFLUXD, $PATH)")
	fs.StringVar(&o.Mosquitto, "mosquitto", "", "mosquitto binary (default: $PATH, /usr/sbin/mosquitto)")
	fs.StringVar(&o.Telegraf, "telegraf", "", "telegraf binary (default: .tools/bin/telegraf, $PATH)")
	fs.StringVar(&o.Out, "out", "", "results directory (default: cmd/posbench/results)")
	fs.StringVar(&o.Work, "work", "", "working directory for data and logs (default: a temporary one, removed)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the working directory")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound of the whole run")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress lines")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of posbench itself (the load generator) to this file")
	fs.StringVar(&o.PprofDir, "pprof-dir", "", "write posfleet's own profiles (serve --pprof-addr) to this directory: CPU over each maximum-rate and latency phase, allocations before and after them (the latency phase's named .latency), heap and goroutines with every terminal connected; influxd's CPU over the same phases (.influxd.cpu)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.CeilingWriters, err = parseInts(*writers); err != nil {
		return o, fmt.Errorf("-ceiling-writers: %w", err)
	}
	if *env != "" {
		o.PosfleetEnv = strings.Split(*env, ",")
	}
	o.Systems = strings.Split(*systems, ",")
	for _, s := range o.Systems {
		if s != "posfleet" && s != "posfleet-interval" && s != "telegraf" {
			return o, fmt.Errorf("-systems: unknown system %q", s)
		}
	}
	switch {
	case o.Scenario != "throughput" && o.Scenario != "connections":
		return o, fmt.Errorf("-scenario: want throughput or connections, not %q", o.Scenario)
	case o.LatencyCount != latencyCountStats && o.LatencyCount != latencyCountFlux:
		return o, fmt.Errorf("-latency-count %q: want %s or %s", o.LatencyCount, latencyCountStats, latencyCountFlux)
	case o.Generator != generatorRaw && o.Generator != generatorPaho:
		return o, fmt.Errorf("-generator %q: want %s or %s", o.Generator, generatorRaw, generatorPaho)
	case o.Reps < 1 || o.Terminals < 1 || o.Inflight < 1 || o.CeilingLines < 0 || o.ConnTerminals < 1:
		return o, errors.New("-reps, -terminals, -inflight, -conn-terminals must be positive")
	case o.Duration <= 0 || o.LatencyDuration <= 0 || o.Poll <= 0 || o.Heartbeat < time.Second:
		return o, errors.New("durations must be positive (heartbeat at least 1 s)")
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "posbench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	progress := stderr
	if o.Quiet {
		progress = io.Discard
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "posbench: -cpuprofile:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if o.Out == "" {
		root, err := influxtest.ModuleRoot()
		if err != nil {
			fmt.Fprintln(stderr, "posbench:", err)
			return 1
		}
		o.Out = filepath.Join(root, "cmd", "posbench", "results")
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		fmt.Fprintln(stderr, "posbench:", err)
		return 1
	}
	var rep *Report
	if o.Scenario == "connections" {
		rep, err = benchConnections(ctx, o, progress)
	} else {
		rep, err = benchThroughput(ctx, o, progress)
	}
	if rep != nil {
		if werr := rep.write(o.Out, o.Scenario); werr != nil {
			fmt.Fprintln(stderr, "posbench:", werr)
			return 1
		}
		fmt.Fprintln(stdout, rep.Markdown())
		fmt.Fprintf(stderr, "results: %s\n", filepath.Join(o.Out, o.Scenario+".json"))
	}
	if err != nil {
		fmt.Fprintln(stderr, "posbench:", err)
		return 1
	}
	return 0
}

// binaries resolves every program a scenario needs. A missing posfleet is
// built from this module.
func (o *options) binaries(ctx context.Context, work string) error {
	root, _ := influxtest.ModuleRoot()
	if o.Posfleet == "" {
		o.Posfleet = filepath.Join(work, "posfleet")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.Posfleet, "github.com/posfleet/posfleet/cmd/posfleet")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build posfleet: %w: %s", err, out)
		}
	}
	if o.Influxd == "" {
		if p := os.Getenv("POSFLEET_INFLUXD"); p != "" {
			o.Influxd = p
		} else if p := filepath.Join(root, ".tools", "bin", "influxd"); exists(p) {
			o.Influxd = p
		} else if p, err := exec.LookPath("influxd"); err == nil {
			o.Influxd = p
		} else {
			return errors.New("influxd not found: run `make influxd` or pass -influxd")
		}
	}
	if o.Telegraf == "" {
		if p := filepath.Join(root, ".tools", "bin", "telegraf"); exists(p) {
			o.Telegraf = p
		} else if p, err := exec.LookPath("telegraf"); err == nil {
			o.Telegraf = p
		}
	}
	if o.Mosquitto == "" {
		if p, err := exec.LookPath("mosquitto"); err == nil {
			o.Mosquitto = p
		} else if exists("/usr/sbin/mosquitto") {
			o.Mosquitto = "/usr/sbin/mosquitto"
		}
	}
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// workDir returns the working directory and its cleanup.
func (o *options) workDir() (string, func(), error) {
	if o.Work != "" {
		return o.Work, func() {}, os.MkdirAll(o.Work, 0o700)
	}
	d, err := os.MkdirTemp("", "posbench-")
	if err != nil {
		return "", nil, err
	}
	if o.Keep {
		return d, func() {}, nil
	}
	return d, func() { os.RemoveAll(d) }, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func parseInts(s string) ([]int, error) {
	var v []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		v = append(v, n)
	}
	return v, nil
}

// logf prints a progress line with the time.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}
