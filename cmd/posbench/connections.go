package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/posfleet/posfleet"
	firmwareclient "github.com/posfleet/posfleet/firmware-client"
	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// Connections is the result of the connections scenario.
type Connections struct {
	Terminals        int      `json:"terminals"`
	PosfleetEnv      []string `json:"posfleet_env,omitempty"`
	HeartbeatSeconds float64  `json:"heartbeat_seconds"`
	ProvisionSeconds float64  `json:"provision_seconds"`
	// Initial connection of the fleet (ramped).
	Connected      int     `json:"connected"`
	ConnectSeconds float64 `json:"connect_seconds"`
	// Server memory: RSS before any terminal, with all connected, peak.
	BaselineRSSMiB     float64 `json:"baseline_rss_mib"`
	ConnectedRSSMiB    float64 `json:"connected_rss_mib"`
	PerTerminalKiB     float64 `json:"rss_per_terminal_kib"`
	PeakRSSMiB         float64 `json:"peak_rss_mib"`
	PeakRSSRestartMiB  float64 `json:"peak_rss_after_restart_mib"`
	IdleCPUPercent     float64 `json:"idle_cpu_percent_of_one_core"`
	IdleWindowSeconds  float64 `json:"idle_window_seconds"`
	GeneratorRSSMiB    float64 `json:"generator_rss_mib"`
	ServerStartSeconds float64 `json:"server_start_seconds"`
	// Reconnect storm after SIGKILL and restart: seconds from the kill
	// until the given share of the fleet is connected again and has had a
	// publish acknowledged by the new server.
	Back50Seconds  float64 `json:"back_50_seconds"`
	Back90Seconds  float64 `json:"back_90_seconds"`
	Back99Seconds  float64 `json:"back_99_seconds"`
	BackAllSeconds float64 `json:"back_all_seconds"`
	BackAtEnd      int     `json:"back_at_end"`
	StormCPU       float64 `json:"storm_server_cpu_seconds"`
	ConnectFails   uint64  `json:"generator_connect_failures"`
	StormFails     uint64  `json:"storm_connect_failures"`
	StoredPoints   int64   `json:"stored_points"`
}

func (c *Connections) markdown(b *strings.Builder) {
	settings := "default settings"
	if len(c.PosfleetEnv) > 0 {
		settings = "default settings, environment " + strings.Join(c.PosfleetEnv, " ")
	}
	fmt.Fprintf(b, "Connections: %d terminals (firmware-client library, heartbeat every %.0f s, the library's default reconnect backoff), each its own MQTT connection to `posfleet serve` (%s) on loopback, from a separate generator process.\n\n", c.Terminals, c.HeartbeatSeconds, settings)
	b.WriteString("| measure | value |\n|---|---|\n")
	fmt.Fprintf(b, "| connected | %d of %d (in %.1f s, ramped) |\n", c.Connected, c.Terminals, c.ConnectSeconds)
	fmt.Fprintf(b, "| server RSS: no terminal / all connected / peak | %.0f / %.0f / %.0f MiB |\n", c.BaselineRSSMiB, c.ConnectedRSSMiB, c.PeakRSSMiB)
	fmt.Fprintf(b, "| server RSS per connected terminal | %.1f KiB |\n", c.PerTerminalKiB)
	fmt.Fprintf(b, "| server CPU at idle (heartbeats only) | %.1f%% of one core (over %.0f s) |\n", c.IdleCPUPercent, c.IdleWindowSeconds)
	fmt.Fprintf(b, "| restart after SIGKILL: server up again | %.1f s |\n", c.ServerStartSeconds)
	fmt.Fprintf(b, "| back and publishing after the kill: 50%% / 90%% / 99%% / all | %s / %s / %s / %s |\n", secs(c.Back50Seconds), secs(c.Back90Seconds), secs(c.Back99Seconds), secs(c.BackAllSeconds))
	fmt.Fprintf(b, "| server peak RSS after the restart | %.0f MiB |\n", c.PeakRSSRestartMiB)
	fmt.Fprintf(b, "| server CPU during the storm | %.1f s |\n", c.StormCPU)
	fmt.Fprintf(b, "| failed connection attempts (refused, timed out): initial connect / storm | %d / %d |\n", c.ConnectFails-c.StormFails, c.StormFails)
	b.WriteString("\n")
}

func secs(s float64) string {
	if s <= 0 {
		return "not reached"
	}
	return fmt.Sprintf("%.1f s", s)
}

// genStatus is one status line of the connection generator.
type genStatus struct {
	Connected int    `json:"connected"`
	Back      int    `json:"back"`
	Marked    bool   `json:"marked"`
	Fails     uint64 `json:"connect_failures"`
	Started   int    `json:"started"`
}

func benchConnections(ctx context.Context, o options, progress io.Writer) (*Report, error) {
	rep := newReport(o)
	c := &Connections{Terminals: o.ConnTerminals, HeartbeatSeconds: o.Heartbeat.Seconds(), PosfleetEnv: o.PosfleetEnv, IdleWindowSeconds: o.IdleWindow.Seconds()}
	rep.Connections = c
	err := runConnections(ctx, o, progress, c)
	rep.ElapsedSeconds = time.Since(rep.started).Seconds()
	rep.Targets = append(rep.Targets,
		Target{
			What:  "15,000 connected terminals at no more than 1 GiB RSS",
			Value: fmt.Sprintf("%d connected, peak %.0f MiB", c.Connected, max(c.PeakRSSMiB, c.PeakRSSRestartMiB)),
			Met:   c.Connected >= 15000 && max(c.PeakRSSMiB, c.PeakRSSRestartMiB) <= 1024,
		},
		Target{
			What:  "all back within 60 s after a restart",
			Value: secs(c.BackAllSeconds),
			Met:   c.Connected >= 15000 && c.BackAllSeconds > 0 && c.BackAllSeconds <= 60,
		},
		Target{
			What:  "target: at most 24 KiB of server RSS per connected terminal at 15,000",
			Value: fmt.Sprintf("%.1f KiB", c.PerTerminalKiB),
			Met:   c.Connected >= 15000 && c.PerTerminalKiB > 0 && c.PerTerminalKiB <= 24,
		},
		Target{
			What:  "target: all back within 10 s after a SIGKILL restart",
			Value: secs(c.BackAllSeconds),
			Met:   c.Connected >= 15000 && c.BackAllSeconds > 0 && c.BackAllSeconds <= 10,
		})
	return rep, err
}

func runConnections(ctx context.Context, o options, progress io.Writer, c *Connections) error {
	work, cleanup, err := o.workDir()
	if err != nil {
		return err
	}
	defer cleanup()
	if err := o.binaries(ctx, work); err != nil {
		return err
	}
	procs := &children{}
	defer procs.stopAll()
	if err := os.MkdirAll(filepath.Join(work, "influxd"), 0o700); err != nil {
		return err
	}
	srv, err := influxtest.StartIn(ctx, o.Influxd, filepath.Join(work, "influxd"))
	if err != nil {
		return err
	}
	defer srv.Close()
	in := &influx{srv: srv, http: newHTTPClient()}
	const db = "connections"
	if err := in.createDB(db); err != nil {
		return err
	}
	ps := &posfleetSystem{bin: o.Posfleet, dir: filepath.Join(work, "server"), influx: in, creds: fleetCredentials(o.ConnTerminals), procs: procs, defaults: true, env: o.PosfleetEnv}
	logf(progress, "provisioning %d terminals and starting posfleet", o.ConnTerminals)
	t0 := time.Now()
	if err := ps.provision(ctx); err != nil {
		return err
	}
	c.ProvisionSeconds = time.Since(t0).Seconds()
	ps.pprof = o.PprofDir != ""
	addr, err := ps.Start(ctx, db)
	if err != nil {
		return err
	}
	defer ps.Stop()
	time.Sleep(2 * time.Second)
	rss0, _ := memKiB(ps.PIDs()[0], "VmRSS")
	c.BaselineRSSMiB = float64(rss0) / 1024

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	gen, stdin, status, err := startGenerator(procs, work, exe, addr, o)
	if err != nil {
		return err
	}
	defer gen.stop(syscall.SIGTERM, 30*time.Second)
	waitFor := func(what string, within time.Duration, done func(genStatus) bool) (genStatus, error) {
		deadline := time.Now().Add(within)
		shown := time.Now()
		for {
			st := status()
			if time.Since(shown) >= 10*time.Second {
				shown = time.Now()
				var rss int64
				if p := ps.PIDs(); len(p) > 0 {
					rss, _ = memKiB(p[0], "VmRSS")
				}
				logf(progress, "%s: %d started, %d connected, %d back since the kill, %d connection failures; server RSS %d MiB", what, st.Started, st.Connected, st.Back, st.Fails, rss>>10)
			}
			if done(st) {
				return st, nil
			}
			if gen.exited() {
				return st, fmt.Errorf("connection generator exited (log %s)", filepath.Join(work, "conngen.log"))
			}
			if time.Now().After(deadline) {
				return st, fmt.Errorf("%s: not within %v", what, within)
			}
			select {
			case <-ctx.Done():
				return st, ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
		}
	}

	logf(progress, "connecting %d terminals (%d per second)", o.ConnTerminals, rampOf(o))
	t0 = time.Now()
	st, err := waitFor("all connected", o.ConnectMax, func(s genStatus) bool { return s.Connected >= o.ConnTerminals })
	c.Connected = st.Connected
	c.ConnectSeconds = time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	c.ConnectFails = st.Fails
	logf(progress, "%d connected in %.1f s; settling, then measuring idle CPU for %v", c.Connected, c.ConnectSeconds, o.IdleWindow)
	time.Sleep(5 * time.Second)
	pid := ps.PIDs()[0]
	cpu0 := usage(pid)
	time.Sleep(o.IdleWindow)
	c.IdleCPUPercent = 100 * (usage(pid) - cpu0) / o.IdleWindow.Seconds()
	rss1, _ := memKiB(pid, "VmRSS")
	c.ConnectedRSSMiB = float64(rss1) / 1024
	c.PerTerminalKiB = float64(rss1-rss0) / float64(c.Connected)
	c.PeakRSSMiB = peakRSS(pid)
	if g, err := memKiB(gen.pid(), "VmRSS"); err == nil {
		c.GeneratorRSSMiB = float64(g) / 1024
	}
	logf(progress, "RSS %.0f MiB (%.1f KiB per terminal), idle CPU %.1f%%", c.ConnectedRSSMiB, c.PerTerminalKiB, c.IdleCPUPercent)
	if o.PprofDir != "" {
		// After the RSS reading: a heap profile runs a GC.
		if err := os.MkdirAll(o.PprofDir, 0o755); err == nil {
			for _, p := range []string{"heap", "goroutine"} {
				if err := saveProfile(ctx, ps.pprofAddr, "/debug/pprof/"+p, filepath.Join(o.PprofDir, "connections."+p+".pb.gz")); err != nil {
					logf(progress, "pprof: %v", err)
				}
			}
			// The runtime's memory statistics (stacks, heap in use and
			// released) close the text form of the heap profile.
			text := filepath.Join(o.PprofDir, "connections.heap.txt")
			if err := saveProfile(ctx, ps.pprofAddr, "/debug/pprof/heap?debug=1", text); err != nil {
				logf(progress, "pprof: %v", err)
			} else if b, err := os.ReadFile(text); err == nil {
				if i := strings.Index(string(b), "# runtime.MemStats"); i >= 0 {
					_ = os.WriteFile(filepath.Join(o.PprofDir, "connections.memstats.txt"), b[i:], 0o644)
				}
			}
		}
	}

	// The storm: mark the generator's counters, kill the server, start it
	// again on the same data and port.
	if _, err := io.WriteString(stdin, "mark\n"); err != nil {
		return err
	}
	if _, err := waitFor("generator mark", 30*time.Second, func(s genStatus) bool { return s.Marked }); err != nil {
		return err
	}
	failsAtMark := status().Fails
	logf(progress, "killing posfleet (SIGKILL) and starting it again")
	tKill := time.Now()
	ps.kill()
	if _, err := ps.Start(ctx, db); err != nil {
		return err
	}
	c.ServerStartSeconds = time.Since(tKill).Seconds()
	pid = ps.PIDs()[0]
	n := o.ConnTerminals
	milestones := []struct {
		share float64
		at    *float64
	}{{0.5, &c.Back50Seconds}, {0.9, &c.Back90Seconds}, {0.99, &c.Back99Seconds}, {1, &c.BackAllSeconds}}
	st, err = waitFor("all back", o.ConnectMax, func(s genStatus) bool {
		for _, m := range milestones {
			if *m.at == 0 && float64(s.Back) >= m.share*float64(n) {
				*m.at = time.Since(tKill).Seconds()
			}
		}
		return s.Back >= n
	})
	c.BackAtEnd, c.ConnectFails, c.StormFails = st.Back, st.Fails, st.Fails-failsAtMark
	c.StormCPU = usage(pid)
	c.PeakRSSRestartMiB = peakRSS(pid)
	logf(progress, "back after the kill: 50%% %s, 90%% %s, 99%% %s, all %s", secs(c.Back50Seconds), secs(c.Back90Seconds), secs(c.Back99Seconds), secs(c.BackAllSeconds))
	if n, err := in.count(ctx, db); err == nil {
		c.StoredPoints = n
	}
	return err
}

func rampOf(o options) int { return 500 }

// startGenerator runs `posbench conngen` as a separate process (the
// generator needs a file descriptor per terminal, as the server does) and
// returns a function giving its latest status.
func startGenerator(procs *children, work, exe, addr string, o options) (*child, io.Writer, func() genStatus, error) {
	logf, err := os.OpenFile(filepath.Join(work, "conngen.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.Command(exe, "conngen", "-broker", "tcp://"+addr, "-n", itoa(o.ConnTerminals),
		"-heartbeat", o.Heartbeat.String(), "-source-addrs", itoa(o.SourceAddrs), "-ramp", itoa(rampOf(o)),
		"-store", filepath.Join(work, "conngen", "outbox.db"))
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, nil, fmt.Errorf("start connection generator: %w", err)
	}
	ch := &child{name: "conngen", cmd: cmd, log: logf, done: make(chan struct{})}
	var latest atomic.Pointer[genStatus]
	latest.Store(&genStatus{})
	var reading sync.WaitGroup
	reading.Add(1)
	go func() {
		defer reading.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var st genStatus
			if json.Unmarshal(sc.Bytes(), &st) == nil {
				latest.Store(&st)
			}
		}
	}()
	// Wait reads stdout to its end first, as exec requires.
	go func() { reading.Wait(); ch.err = cmd.Wait(); close(ch.done) }()
	procs.mu.Lock()
	procs.procs = append(procs.procs, ch)
	procs.mu.Unlock()
	return ch, stdin, func() genStatus { return *latest.Load() }, nil
}

// connGenMain is `posbench conngen`: n firmware-client terminals sharing
// one outbox file, connected to a broker at a ramp, heartbeating. Every
// second it prints its status as a JSON line; "mark" on stdin starts
// counting which terminals have reconnected and published since.
func connGenMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("posbench conngen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", "", "MQTT URL of the server")
	n := fs.Int("n", 1000, "terminals")
	hb := fs.Duration("heartbeat", time.Minute, "heartbeat interval")
	sources := fs.Int("source-addrs", 4, "127.0.0.x source addresses, from 127.0.0.2")
	ramp := fs.Int("ramp", 500, "terminals started per second")
	storePath := fs.String("store", "", "shared outbox file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := connGen(ctx, *broker, *n, *hb, *sources, *ramp, *storePath, stdin, stdout); err != nil {
		fmt.Fprintln(stderr, "posbench conngen:", err)
		return 1
	}
	return 0
}

func connGen(ctx context.Context, broker string, n int, hb time.Duration, sources, ramp int, storePath string, stdin io.Reader, stdout io.Writer) error {
	if storePath == "" || broker == "" {
		return errors.New("-broker and -store are required")
	}
	store, err := firmwareclient.OpenStore(storePath, firmwareclient.StoreOptions{NoSync: true})
	if err != nil {
		return err
	}
	defer store.Close()
	creds := fleetCredentials(n)
	clients := make([]*firmwareclient.Client, n)
	for i, cr := range creds {
		var d net.Dialer
		d.KeepAlive = -1
		if sources > 0 {
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%sources))}
		}
		battery := 40 + i%60
		cl, err := firmwareclient.New(firmwareclient.Config{
			Broker: broker, Tenant: cr.Tenant, Terminal: cr.Terminal, Secret: cr.Secret,
			Dial:              d.DialContext,
			Store:             store,
			Inventory:         posfleet.Inventory{Model: "A920", Serial: "SN" + cr.Terminal, Firmware: "2.4.1", App: "1.0.0"},
			HeartbeatInterval: hb,
			Heartbeat: func() posfleet.Heartbeat {
				var h posfleet.Heartbeat
				h.BatteryPct, h.SignalDBm = &battery, ptr(-75)
				h.Net, h.Paper = "4g", "ok"
				return h
			},
		})
		if err != nil {
			return err
		}
		clients[i] = cl
	}
	var started atomic.Int64
	var wg sync.WaitGroup
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(max(1, ramp/20)))
		defer tick.Stop()
		per := max(1, ramp/20)
		for i := 0; i < n; {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for j := 0; j < per && i < n; j, i = j+1, i+1 {
				wg.Add(1)
				go func(c *firmwareclient.Client) { defer wg.Done(); c.Run(ctx) }(clients[i])
				started.Add(1)
			}
		}
	}()
	var markMu sync.Mutex
	var marks []uint64 // StatusSent of each terminal at the mark
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "mark" {
				m := make([]uint64, n)
				for i, c := range clients {
					m[i] = c.Stats().StatusSent
				}
				markMu.Lock()
				marks = m
				markMu.Unlock()
			}
		}
	}()
	enc := json.NewEncoder(stdout)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		markMu.Lock()
		m := marks
		markMu.Unlock()
		st := genStatus{Marked: m != nil, Started: int(started.Load())}
		for i, c := range clients[:st.Started] {
			s := c.Stats()
			if s.Connected {
				st.Connected++
				if m != nil && s.StatusSent > m[i] {
					st.Back++
				}
			}
			st.Fails += s.ConnectFailures
		}
		if err := enc.Encode(st); err != nil {
			break // the harness went away
		}
	}
	for _, c := range clients {
		c.Close()
	}
	wg.Wait()
	return nil
}

func ptr[T any](v T) *T { return &v }
