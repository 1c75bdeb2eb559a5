// Command posterm simulates a fleet of payment terminals for posfleet, each
// a real firmware-client with its own MQTT connection and credentials:
//
//	posterm provision -n 300 --tenant demo --out fleet.csv
//	posfleet terminals import fleet.csv
//	posterm simulate --fleet fleet.csv --broker tcp://127.0.0.1:1883 --time-scale 60
//
// provision writes the provisioning CSV (with a secret column, so that it
// is also the simulator's credentials) and a labels file that names each
// terminal's scenario and the flags the server should raise for it.
// Scenarios are data: scenarios/field.json is built in, --scenarios reads
// another file of the same shape. So is each firmware version's behaviour
// (a fee, crashes under load): scenarios/firmware.json, or --firmware.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // --zone in a distroless image, which has no zoneinfo

	"github.com/alecthomas/kong"

	"github.com/posfleet/posfleet"
)

// CLI is the whole command line.
type CLI struct {
	LogLevel string `help:"Log level: debug, info, warn, error." default:"warn" enum:"debug,info,warn,error" env:"POSTERM_LOG_LEVEL"`

	Provision ProvisionCmd `cmd:"" help:"Write a provisioning CSV and a scenario labels file for a simulated fleet."`
	Simulate  SimulateCmd  `cmd:"" help:"Run a simulated fleet against a posfleet server."`
	Scenarios ScenariosCmd `cmd:"" help:"List the scenarios of a scenario file."`
}

// Globals are what every command gets.
type Globals struct {
	Logger         *slog.Logger
	Stdout, Stderr io.Writer
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type exitRequest int

func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = int(e)
		}
	}()
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("posterm"),
		kong.Description("Simulated payment terminals for posfleet."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(exitRequest(c)) }),
		kong.UsageOnError(),
	)
	if err != nil {
		fmt.Fprintln(stderr, "posterm:", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, "posterm:", err)
		return 2
	}
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[cli.LogLevel]
	g := &Globals{
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		Stdout: stdout, Stderr: stderr,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(g); err != nil {
		fmt.Fprintln(stderr, "posterm:", err)
		return 1
	}
	return 0
}

// ProvisionCmd writes fleet.csv and fleet.labels.csv.
type ProvisionCmd struct {
	N         int    `short:"n" help:"Number of terminals." default:"100"`
	Tenant    string `help:"Tenant of the terminals." default:"demo"`
	Out       string `help:"Provisioning CSV to write (tenant,terminal,model,merchant,site,region,lat,lon,secret)." default:"fleet.csv" type:"path"`
	Labels    string `help:"Labels CSV to write (tenant,terminal,scenario,expected_flag); default: next to --out, .labels.csv." type:"path"`
	Scenarios string `help:"Scenario file (JSON); default: the built-in field scenarios." type:"existingfile"`
	Mix       string `help:"Override shares, e.g. 'firmware_fee_bug=0.1,tamper=0.02'."`
	Seed      uint64 `help:"Random seed: the same seed gives the same assignment of scenarios." default:"1"`
}

// Run writes the files.
func (cmd *ProvisionCmd) Run(g *Globals) error {
	scen, err := LoadScenarios(cmd.Scenarios)
	if err != nil {
		return err
	}
	if err := scen.SetShares(cmd.Mix); err != nil {
		return err
	}
	fleet, labels, err := Provision(cmd.Tenant, cmd.N, scen, cmd.Seed)
	if err != nil {
		return err
	}
	if cmd.Labels == "" {
		cmd.Labels = labelsPath(cmd.Out)
	}
	for _, p := range []string{cmd.Out, cmd.Labels} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	if err := writeFile(cmd.Out, func(w io.Writer) error { return WriteFleet(w, fleet) }); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if err := os.Chmod(cmd.Out, 0o600); err != nil { // it holds secrets
		return fmt.Errorf("provision: %w", err)
	}
	if err := writeFile(cmd.Labels, func(w io.Writer) error { return WriteLabels(w, labels) }); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	counts := map[string]int{}
	for _, l := range scenarioOf(labels) {
		counts[l]++
	}
	fmt.Fprintf(g.Stdout, "wrote %d terminals to %s and their scenarios to %s:\n", len(fleet), cmd.Out, cmd.Labels)
	for _, s := range scen.Scenarios {
		if s.FleetWide {
			fmt.Fprintf(g.Stdout, "  %-24s fleet-wide  expect %s\n", s.Name, strings.Join(s.Expect, ", "))
		} else if counts[s.Name] > 0 {
			fmt.Fprintf(g.Stdout, "  %-24s %5d       expect %s\n", s.Name, counts[s.Name], orNone(s.Expect))
		}
	}
	return nil
}

func orNone(flags []string) string {
	if len(flags) == 0 {
		return "no flag"
	}
	return strings.Join(flags, ", ")
}

// ScenariosCmd lists the scenarios.
type ScenariosCmd struct {
	Scenarios string `help:"Scenario file (JSON); default: the built-in one." type:"existingfile"`
}

// Run prints the scenarios.
func (cmd *ScenariosCmd) Run(g *Globals) error {
	scen, err := LoadScenarios(cmd.Scenarios)
	if err != nil {
		return err
	}
	for _, s := range scen.Scenarios {
		share := fmt.Sprintf("%4.1f%%", s.Share*100)
		if s.FleetWide {
			share = "fleet"
		} else if s.Name == "healthy" {
			share = "rest"
		}
		fmt.Fprintf(g.Stdout, "%-24s %6s  expect %-40s %s\n", s.Name, share, orNone(s.Expect), s.Description)
	}
	return nil
}

// SimulateCmd runs a fleet.
type SimulateCmd struct {
	Fleet        string        `help:"Provisioning CSV with a secret column (from provision)." required:"" type:"existingfile"`
	Labels       string        `help:"Labels CSV giving each terminal's scenario; default: next to --fleet, .labels.csv. Without it every terminal is healthy." type:"path"`
	Broker       string        `help:"MQTT URL of posfleet (tcp:// or ssl://)." default:"tcp://127.0.0.1:1883"`
	Scenarios    string        `help:"Scenario file (JSON); default: the built-in one." type:"existingfile"`
	Firmware     string        `help:"Firmware catalogue (JSON): how each firmware version behaves; default: the built-in one." type:"existingfile"`
	Download     bool          `help:"Download update packages from their URLs; default: each URL's own bytes are its package (no network)."`
	Heartbeat    time.Duration `help:"Heartbeat interval (real time)." default:"60s"`
	TimeScale    float64       `help:"Simulated seconds per real second: 60 runs a shop's day in 24 minutes." default:"1"`
	StartHour    float64       `help:"Simulated time of day at the start (9.5 = 09:30)." default:"9"`
	Zone         string        `help:"Time zone of the shops: their trading hours are local hours there (IANA name, e.g. Asia/Shanghai)." default:"UTC"`
	RealClock    bool          `help:"Run the shops on the real clock in --zone, not a simulated day from --start-hour: a terminal sells in the hours its messages' timestamps say (--time-scale then only multiplies rates)."`
	History      time.Duration `help:"Before going live, each terminal reports its transactions of this long before (e.g. 48h), by its shop's hours, as stored ones with their timestamps, so that the server's time series show its trading hours from the start. Once per --store-dir." default:"0"`
	HistoryRate  float64       `help:"Scale of the history's transaction rate (0.25: a quarter of the live rate)." default:"1"`
	Duration     time.Duration `help:"Stop after this long (0: run until interrupted)." default:"0"`
	Limit        int           `help:"Run only the first N terminals of the fleet (0: all)." default:"0"`
	Ramp         int           `help:"Terminals started per second." default:"200"`
	SourceAddrs  string        `help:"Comma-separated local IP addresses to spread connections over (e.g. 127.0.0.1,127.0.0.2)."`
	StoreDir     string        `help:"Directory of the terminals' shared outbox and of the firmware their updates installed (kept across restarts); default: a temporary directory removed at the end." type:"path"`
	Fsync        bool          `help:"fsync the outbox on every write, as a real terminal does (slower)."`
	ReconnectMax time.Duration `help:"Longest wait between reconnection attempts." default:"30s"`
	Progress     time.Duration `help:"Interval of the progress line on stderr (0: none)." default:"1s"`
	Pprof        string        `help:"Serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060, to measure the simulator itself."`
}

// Run runs the simulation until interrupted or --duration.
func (cmd *SimulateCmd) Run(ctx context.Context, g *Globals) error {
	f, err := os.Open(cmd.Fleet)
	if err != nil {
		return err
	}
	fleet, err := ReadFleet(f)
	f.Close()
	if err != nil {
		return err
	}
	if cmd.Limit > 0 && cmd.Limit < len(fleet) {
		fleet = fleet[:cmd.Limit]
	}
	scen, err := LoadScenarios(cmd.Scenarios)
	if err != nil {
		return err
	}
	fw, err := LoadFirmware(cmd.Firmware)
	if err != nil {
		return err
	}
	var download *http.Client
	if cmd.Download {
		download = &http.Client{}
	}
	zone, err := time.LoadLocation(cmd.Zone)
	if err != nil {
		return fmt.Errorf("simulate: --zone: %w", err)
	}
	assigned := map[posfleet.TerminalRef]string{}
	lp := cmd.Labels
	if lp == "" {
		lp = labelsPath(cmd.Fleet)
	}
	if lf, err := os.Open(lp); err == nil {
		labels, err := ReadLabels(lf)
		lf.Close()
		if err != nil {
			return err
		}
		assigned = scenarioOf(labels)
	} else if cmd.Labels != "" {
		return err
	}
	var addrs []net.IP
	for _, a := range strings.Split(cmd.SourceAddrs, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		ip := net.ParseIP(a)
		if ip == nil {
			return fmt.Errorf("simulate: --source-addrs: %q is not an IP address", a)
		}
		addrs = append(addrs, ip)
	}
	dir := cmd.StoreDir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
	} else {
		if dir, err = os.MkdirTemp("", "posterm-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	sim, err := NewSimulation(SimOptions{
		Broker: cmd.Broker, Fleet: fleet, Scenarios: assigned, File: scen,
		Firmware: fw, Download: download,
		Heartbeat: cmd.Heartbeat, TimeScale: cmd.TimeScale, StartHour: cmd.StartHour,
		Zone: zone, RealClock: cmd.RealClock, History: cmd.History, HistoryRate: cmd.HistoryRate,
		StoreDir: dir, Sync: cmd.Fsync, Ramp: cmd.Ramp, SourceAddrs: addrs,
		ReconnectMax: cmd.ReconnectMax, Logger: g.Logger,
	})
	if err != nil {
		return err
	}
	if cmd.Pprof != "" {
		ln, err := net.Listen("tcp", cmd.Pprof)
		if err != nil {
			return fmt.Errorf("simulate: --pprof: %w", err)
		}
		defer ln.Close()
		go http.Serve(ln, nil) // net/http/pprof registers on the default mux
	}
	if cmd.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Duration)
		defer cancel()
	}
	fmt.Fprintf(g.Stderr, "simulating %d terminals against %s (time scale %g, heartbeat %v)\n", len(fleet), cmd.Broker, cmd.TimeScale, cmd.Heartbeat)
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if cmd.Progress <= 0 {
			return
		}
		t := time.NewTicker(cmd.Progress)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				if !sim.start.IsZero() {
					fmt.Fprintf(g.Stderr, "\r%s\033[K", progressLine(sim, sim.Totals()))
				}
			}
		}
	}()
	start := time.Now()
	err = sim.Run(ctx)
	close(stopProgress)
	<-progressDone
	if cmd.Progress > 0 {
		fmt.Fprintln(g.Stderr)
	}
	writeSummary(g.Stdout, sim.Totals(), time.Since(start))
	return err
}

func progressLine(sim *Simulation, t Totals) string {
	now := time.Now()
	return fmt.Sprintf("%s sim %s | connected %d/%d | reported %d acked %d (txn %d/%d) | backlog %d | dropped %d | connect failures %d | errors %d",
		now.Sub(sim.start).Truncate(time.Second), sim.SimTime(now).Format("15:04"),
		t.Connected, t.Terminals, t.Reported.Total(), t.Acked.Total(), t.Reported.Txn, t.Acked.Txn,
		t.Backlog, t.Dropped.Total(), t.ConnectFailures, t.RunErrors+t.ReportErrors+t.Refused)
}

func writeSummary(w io.Writer, t Totals, elapsed time.Duration) {
	fmt.Fprintf(w, "summary after %v: %d terminals, %d started, %d connected at the end\n",
		elapsed.Truncate(time.Second), t.Terminals, t.Started, t.Connected)
	fmt.Fprintf(w, "  %-10s %10s %10s %10s\n", "channel", "reported", "acked", "dropped")
	for _, ch := range []posfleet.Channel{posfleet.ChannelHeartbeat, posfleet.ChannelFault, posfleet.ChannelFirmware, posfleet.ChannelTxn, posfleet.ChannelAck} {
		fmt.Fprintf(w, "  %-10s %10d %10d %10d\n", ch, t.Reported.Get(ch), t.Acked.Get(ch), t.Dropped.Get(ch))
	}
	fmt.Fprintf(w, "  %-10s %10d %10d %10d\n", "total", t.Reported.Total(), t.Acked.Total(), t.Dropped.Total())
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(t.Acked.Total()) / s
	}
	fmt.Fprintf(w, "  acked rate %.1f msg/s; backlog %d messages (%d bytes) left in the outbox\n", rate, t.Backlog, t.BacklogBytes)
	fmt.Fprintf(w, "  connects %d, connect failures %d, connections lost %d, commands %d\n", t.Connects, t.ConnectFailures, t.Lost, t.Commands)
	fmt.Fprintf(w, "  errors: reports refused %d, reports failed %d, terminals stopped %d\n", t.Refused, t.ReportErrors, t.RunErrors)
	type kv struct {
		err string
		n   int
	}
	var errs []kv
	for e, n := range t.LastErrors {
		errs = append(errs, kv{e, n})
	}
	sort.Slice(errs, func(i, j int) bool {
		return errs[i].n > errs[j].n || errs[i].n == errs[j].n && errs[i].err < errs[j].err
	})
	for i, e := range errs {
		if i == 5 {
			fmt.Fprintf(w, "  ... and %d other errors\n", len(errs)-5)
			break
		}
		fmt.Fprintf(w, "  last error of %d terminals: %.160s\n", e.n, e.err)
	}
}
