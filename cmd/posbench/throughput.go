package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// SystemRun is one system's measurements in one repetition.
type SystemRun struct {
	System string `json:"system"`
	Rep    int    `json:"rep"`
	DB     string `json:"database"`
	// Maximum-rate phase.
	Published     int64   `json:"published"`
	Acked         int64   `json:"acked"`
	PublishFailed int64   `json:"publish_failed"`
	Stored        int64   `json:"stored"`
	Lost          int64   `json:"lost"`
	AckedPerSec   float64 `json:"acked_per_s"`
	StoredPerSec  float64 `json:"stored_per_s"`
	StoreSeconds  float64 `json:"store_seconds"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUPerMillion float64 `json:"cpu_s_per_million"`
	// The other consumers of the machine's CPUs in the same phase: the
	// load generator (this process) and influxd, per million stored, and
	// the share of all CPUs used by the three together.
	GeneratorCPUPerMillion float64 `json:"generator_cpu_s_per_million"`
	InfluxCPUPerMillion    float64 `json:"influxd_cpu_s_per_million"`
	MachineBusy            float64 `json:"machine_busy_fraction"`
	OthersBusy             float64 `json:"other_processes_busy_fraction"`
	// Pipeline is posfleet's view of the maximum-rate phase (its metrics).
	Pipeline *PipelineStats `json:"posfleet_pipeline,omitempty"`
	// Schema is one stored heartbeat point: measurement, tags and fields.
	Schema string `json:"schema_sample,omitempty"`
	// Half-rate latency phase.
	LatencyRate      float64 `json:"latency_rate_per_s"`
	LatencyPublished int64   `json:"latency_published"`
	LatencyAcked     int64   `json:"latency_acked"`
	LatencyStored    int64   `json:"latency_stored"`
	LatencyLost      int64   `json:"latency_lost"`
	P50ms            float64 `json:"latency_p50_ms"`
	P99ms            float64 `json:"latency_p99_ms"`
	MaxMs            float64 `json:"latency_max_ms"`
	// What weighs on the latency phase: posfleet's own figures (its
	// InfluxDB writes, slow ones counted), the share of one CPU influxd
	// and the whole machine used, and the count polls' own time (each a
	// Flux count over the phase's points so far, which InfluxDB pays for).
	LatencyPipeline    *PipelineStats `json:"posfleet_pipeline_latency_phase,omitempty"`
	LatencySystemCores float64        `json:"latency_system_cores"`
	LatencyGenCores    float64        `json:"latency_generator_cores"`
	LatencyInfluxCores float64        `json:"latency_influxd_cores"`
	LatencyAllBusy     float64        `json:"latency_machine_busy_fraction"`
	PollMeanMs         float64        `json:"latency_count_poll_mean_ms"`
	PollMaxMs          float64        `json:"latency_count_poll_max_ms"`
	// LatencyCount is how the polls counted (-latency-count); with stats,
	// LatencyPointsWritten is the points InfluxDB took in the phase, which
	// should equal LatencyStored, the Flux count at its end.
	LatencyCount         string  `json:"latency_count"`
	LatencyPointsWritten int64   `json:"latency_points_written,omitempty"`
	PeakRSSMiB           float64 `json:"peak_rss_mib"`
	Error                string  `json:"error,omitempty"`
}

// CeilingRun is one direct-write measurement.
type CeilingRun struct {
	Rep          int     `json:"rep"`
	Writers      int     `json:"writers"`
	Lines        int     `json:"lines"`
	Stored       int64   `json:"stored"`
	Seconds      float64 `json:"seconds"`
	StoredPerSec float64 `json:"stored_per_s"`
	InfluxCPU    float64 `json:"influxd_cpu_s_per_million"`
}

func benchThroughput(ctx context.Context, o options, progress io.Writer) (*Report, error) {
	work, cleanup, err := o.workDir()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := o.binaries(ctx, work); err != nil {
		return nil, err
	}
	rep := newReport(o)
	// Whatever happens, the report has the summary of what was measured.
	defer rep.summarize()
	procs := &children{}
	defer procs.stopAll()

	logf(progress, "starting InfluxDB (%s)", o.Influxd)
	if err := os.MkdirAll(filepath.Join(work, "influxd"), 0o700); err != nil {
		return rep, err
	}
	srv, err := influxtest.StartIn(ctx, o.Influxd, filepath.Join(work, "influxd"))
	if err != nil {
		return rep, err
	}
	defer srv.Close()
	in := &influx{srv: srv, http: newHTTPClient()}
	creds := fleetCredentials(o.Terminals)

	var systems []system
	for _, name := range o.Systems {
		switch name {
		case "posfleet":
			systems = append(systems, &posfleetSystem{bin: o.Posfleet, influx: in, creds: creds, procs: procs, env: o.PosfleetEnv})
		case "posfleet-interval":
			systems = append(systems, &posfleetSystem{bin: o.Posfleet, influx: in, creds: creds, procs: procs, env: o.PosfleetEnv,
				name: "posfleet (fsync interval)", extra: []string{"--fsync", "interval"}})
		case "telegraf":
			if o.Telegraf == "" || o.Mosquitto == "" {
				msg := fmt.Sprintf("Mosquitto+Telegraf skipped: mosquitto=%q telegraf=%q (make bench installs them)", o.Mosquitto, o.Telegraf)
				if o.RequireAll {
					return rep, errors.New(msg)
				}
				rep.Notes = append(rep.Notes, msg)
				logf(progress, "%s", msg)
				continue
			}
			systems = append(systems, &telegrafSystem{mosquitto: o.Mosquitto, telegraf: o.Telegraf, influx: in, procs: procs, confDir: o.Out})
		}
	}

	var lines [][]byte
	if o.CeilingLines > 0 {
		perTerm := max(1, int64(o.CeilingLines/o.Terminals))
		if lines, err = lineProtocol(creds, perTerm, time.Now().Add(-3*time.Hour)); err != nil {
			return rep, err
		}
	}
	for r := 1; r <= o.Reps; r++ {
		// The order alternates, so that neither system always runs on a
		// fresh (or a warm, or a fuller) InfluxDB.
		order := []string{"ceiling"}
		for _, s := range systems {
			order = append(order, s.Name())
		}
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, name := range order {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			if name == "ceiling" {
				if len(lines) == 0 {
					continue
				}
				for _, w := range o.CeilingWriters {
					c, err := runCeiling(ctx, in, lines, r, w)
					if err != nil {
						return rep, err
					}
					logf(progress, "rep %d ceiling, %d writers: %d lines stored in %.2f s: %.0f lines/s", r, w, c.Stored, c.Seconds, c.StoredPerSec)
					rep.Ceiling = append(rep.Ceiling, c)
				}
				continue
			}
			i := slices.IndexFunc(systems, func(s system) bool { return s.Name() == name })
			sys := systems[i]
			if ps, ok := sys.(*posfleetSystem); ok {
				ps.reset(filepath.Join(work, dbName(ps.Name(), r)), o.PprofDir != "")
			}
			if ts, ok := sys.(*telegrafSystem); ok {
				ts.dir = filepath.Join(work, "telegraf")
			}
			res := runSystem(ctx, o, in, sys, creds, r, progress)
			rep.Runs = append(rep.Runs, res)
			if res.Error != "" {
				logf(progress, "rep %d %s: %s", r, name, res.Error)
				if name == "posfleet" {
					return rep, fmt.Errorf("%s: %s", name, res.Error)
				}
			}
		}
	}
	return rep, nil
}

// runCeiling writes lines directly, in 5,000-line batches from writers
// goroutines, into a fresh database.
func runCeiling(ctx context.Context, in *influx, lines [][]byte, r, writers int) (CeilingRun, error) {
	db := fmt.Sprintf("ceiling_r%d_w%d", r, writers)
	c := CeilingRun{Rep: r, Writers: writers, Lines: len(lines)}
	if err := in.createDB(db); err != nil {
		return c, err
	}
	pid := in.pid()
	cpu0 := usage(pid)
	took, err := in.ceiling(ctx, db, lines, 5000, writers)
	if err != nil {
		return c, err
	}
	cpu1 := usage(pid)
	if c.Stored, err = in.count(ctx, db); err != nil {
		return c, err
	}
	c.Seconds = took.Seconds()
	c.StoredPerSec = float64(c.Stored) / c.Seconds
	if c.Stored > 0 {
		c.InfluxCPU = (cpu1 - cpu0) / float64(c.Stored) * 1e6
	}
	if c.Stored != int64(len(lines)) {
		return c, fmt.Errorf("ceiling: %d lines written, %d stored", len(lines), c.Stored)
	}
	return c, nil
}

// runSystem runs one system through both phases; failures are recorded in
// the result, and the system is stopped in any case.
func runSystem(ctx context.Context, o options, in *influx, sys system, creds []credential, r int, progress io.Writer) (res SystemRun) {
	res = SystemRun{System: sys.Name(), Rep: r}
	res.DB = dbName(sys.Name(), r)
	err := func() error {
		if err := in.createDB(res.DB); err != nil {
			return err
		}
		defer sys.Stop()
		addr, err := sys.Start(ctx, res.DB)
		if err != nil {
			return err
		}
		f, err := connectFleet(ctx, addr, creds, o.Inflight, o.Generator)
		if err != nil {
			return err
		}
		defer f.close()
		pids := sys.PIDs()

		// Warm-up: one message end to end (Telegraf subscribes a moment
		// after it starts; a message before that is not for it).
		base1 := time.Now().Add(-3 * time.Hour)
		p0 := f.pubs[0]
		warm := func() error {
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				p0.seq = 0
				tok := p0.publish(base1)
				p0.client.Flush()
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					return fmt.Errorf("warm-up publish: %v", tok.Error())
				}
				if n, _, err := in.waitStored(ctx, res.DB, 1, 100*time.Millisecond, 2*time.Second); err != nil {
					return err
				} else if n >= 1 {
					return nil
				}
			}
			return errors.New("warm-up message not stored within 60 s")
		}
		if err := warm(); err != nil {
			return err
		}

		logf(progress, "rep %d %s: maximum rate, %d terminals, %v", r, sys.Name(), len(f.pubs), o.Duration)
		ps, _ := sys.(*posfleetSystem)
		var m0 map[string]float64
		if ps != nil {
			m0 = ps.metrics(ctx)
		}
		profiled := profilePhase(ctx, o, ps, in, res.DB, "", o.Duration, progress)
		cpu0 := usage(pids...)
		gen0, inf0, all0 := usage(os.Getpid()), usage(in.pid()), machineBusy()
		t0 := time.Now()
		st := f.maxRate(ctx, o.Duration, base1)
		ackedIn := time.Since(t0)
		profiled()
		dctx, cancel := context.WithTimeout(ctx, o.DrainMax)
		n, at, err := in.waitStored(dctx, res.DB, 1+st.Acked, 250*time.Millisecond, 30*time.Second)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		cpu1 := usage(pids...)
		gen1, inf1, all1 := usage(os.Getpid()), usage(in.pid()), machineBusy()
		wall := time.Since(t0).Seconds()
		if ps != nil {
			res.Pipeline = pipelineStats(m0, ps.metrics(ctx), st.Published)
		}
		res.Published, res.Acked, res.PublishFailed = st.Published, st.Acked, st.Failed
		res.Stored = n - 1
		res.Lost = max(0, res.Acked-res.Stored)
		res.AckedPerSec = float64(st.Acked) / ackedIn.Seconds()
		res.StoreSeconds = at.Sub(t0).Seconds()
		if res.StoreSeconds > 0 {
			res.StoredPerSec = float64(res.Stored) / res.StoreSeconds
		}
		if res.Stored > 0 {
			res.CPUSeconds = cpu1 - cpu0
			res.CPUPerMillion = res.CPUSeconds / float64(res.Stored) * 1e6
			res.GeneratorCPUPerMillion = (gen1 - gen0) / float64(res.Stored) * 1e6
			res.InfluxCPUPerMillion = (inf1 - inf0) / float64(res.Stored) * 1e6
		}
		{
			ours := cpu1 - cpu0 + gen1 - gen0 + inf1 - inf0
			res.MachineBusy = ours / wall / float64(runtime.NumCPU())
			res.OthersBusy = max(0, all1-all0-ours) / wall / float64(runtime.NumCPU())
		}
		res.Schema = in.schemaSample(ctx, res.DB, creds[0].Terminal)
		logf(progress, "rep %d %s: %d acked (%.0f/s), %d stored in %.2f s (%.0f/s), %d lost, CPU s/M: %.1f (generator %.1f, influxd %.1f), CPUs %.0f%% busy with these, %.0f%% with other processes",
			r, sys.Name(), res.Acked, res.AckedPerSec, res.Stored, res.StoreSeconds, res.StoredPerSec, res.Lost, res.CPUPerMillion,
			res.GeneratorCPUPerMillion, res.InfluxCPUPerMillion, 100*res.MachineBusy, 100*res.OthersBusy)
		if p := res.Pipeline; p != nil {
			logf(progress, "rep %d %s: %.0f spool commits of %.1f messages, %.2f ms each; %.0f InfluxDB writes of %.0f lines, %.1f ms each",
				r, sys.Name(), p.SpoolCommits, p.MsgsPerCommit, p.CommitMeanMs, p.WriteBatches, p.LinesPerBatch, p.WriteMeanMs)
		}
		if res.StoredPerSec < 1 {
			return errors.New("nothing stored at maximum rate")
		}

		// Latency at half the maximum rate: the points of this phase have
		// timestamps of their own hour, so the counts polled see only them.
		res.LatencyRate = res.StoredPerSec / 2
		base2 := time.Now().Add(-2 * time.Hour)
		since := base2.Add(-time.Minute)
		logf(progress, "rep %d %s: fixed rate %.0f msgs/s for %v", r, sys.Name(), res.LatencyRate, o.LatencyDuration)
		var samples []countSample
		var mu sync.Mutex
		var m2 map[string]float64
		if ps != nil {
			m2 = ps.metrics(ctx)
		}
		sys2, gen2, inf2, all2, t2 := usage(pids...), usage(os.Getpid()), usage(in.pid()), machineBusy(), time.Now()
		// The count polled: the points InfluxDB's shards took since the
		// phase began (cheap), or a Flux count of the phase's points.
		res.LatencyCount = o.LatencyCount
		count := func(ctx context.Context) (int64, error) { return in.countSince(ctx, res.DB, since) }
		if o.LatencyCount == latencyCountStats {
			w0, err := in.pointsWritten(ctx, res.DB)
			if err != nil {
				return err
			}
			count = func(ctx context.Context) (int64, error) {
				n, err := in.pointsWritten(ctx, res.DB)
				return n - w0, err
			}
		}
		pctx, stopPoll := context.WithCancel(ctx)
		polled := make(chan error, 1)
		go func() {
			for pctx.Err() == nil {
				at := time.Now()
				n, err := count(pctx)
				if err != nil {
					if pctx.Err() == nil {
						polled <- err
						return
					}
					break
				}
				mu.Lock()
				samples = append(samples, countSample{At: at, N: n, Took: time.Since(at)})
				mu.Unlock()
				select {
				case <-pctx.Done():
				case <-time.After(o.Poll):
				}
			}
			polled <- nil
		}()
		profiled2 := profilePhase(ctx, o, ps, in, res.DB, ".latency", o.LatencyDuration, progress)
		st2, times := f.fixedRate(ctx, res.LatencyRate, o.LatencyDuration, base2)
		profiled2()
		// Wait until the poller has seen every acknowledged message, or it
		// stops growing.
		deadline := time.Now().Add(o.DrainMax)
		var lastN int64 = -1
		grew := time.Now()
		for time.Now().Before(deadline) && ctx.Err() == nil {
			mu.Lock()
			var cur int64
			if len(samples) > 0 {
				cur = samples[len(samples)-1].N
			}
			mu.Unlock()
			if cur >= st2.Acked {
				break
			}
			if cur != lastN {
				lastN, grew = cur, time.Now()
			}
			if time.Since(grew) > 30*time.Second {
				break
			}
			time.Sleep(o.Poll)
		}
		stopPoll()
		if err := <-polled; err != nil {
			return err
		}
		if wall := time.Since(t2).Seconds(); wall > 0 {
			res.LatencySystemCores = (usage(pids...) - sys2) / wall
			res.LatencyGenCores = (usage(os.Getpid()) - gen2) / wall
			res.LatencyInfluxCores = (usage(in.pid()) - inf2) / wall
			res.LatencyAllBusy = (machineBusy() - all2) / wall / float64(runtime.NumCPU())
		}
		if ps != nil {
			res.LatencyPipeline = pipelineStats(m2, ps.metrics(ctx), st2.Published)
		}
		res.PeakRSSMiB = peakRSS(pids...)
		mu.Lock()
		defer mu.Unlock()
		ms, _ := latencies(times, samples, 0)
		res.LatencyPublished, res.LatencyAcked = st2.Published, st2.Acked
		if len(samples) > 0 {
			res.LatencyStored = samples[len(samples)-1].N
		}
		if o.LatencyCount == latencyCountStats {
			// What was stored, by the count the maximum-rate phase uses.
			res.LatencyPointsWritten = res.LatencyStored
			n, err := in.countSince(ctx, res.DB, since)
			if err != nil {
				return err
			}
			res.LatencyStored = n
		}
		res.LatencyLost = max(0, st2.Acked-res.LatencyStored)
		res.P50ms, res.P99ms, res.MaxMs = percentile(ms, 0.50), percentile(ms, 0.99), percentile(ms, 1)
		res.PollMeanMs, res.PollMaxMs = pollTimes(samples)
		logf(progress, "rep %d %s: latency p50 %.0f ms, p99 %.0f ms (%d of %d stored), peak RSS %.0f MiB",
			r, sys.Name(), res.P50ms, res.P99ms, res.LatencyStored, res.LatencyAcked, res.PeakRSSMiB)
		return nil
	}()
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// dbName is the database of a system's repetition.
func dbName(system string, r int) string {
	short := map[string]string{"posfleet": "posfleet", "posfleet (fsync interval)": "posfleet_interval", "mosquitto+telegraf": "telegraf"}[system]
	return fmt.Sprintf("%s_r%d", short, r)
}

// profilePhase starts posfleet's CPU profile over a phase of duration d
// (the maximum-rate one, phase "", or the latency one, ".latency") and
// saves its allocation profile, when -pprof-dir asks for them; the
// function it returns waits for the CPU profile and saves the allocations
// again (pprof -diff_base gives the phase's own). influxd's CPU profile of
// the same phase goes beside them (.influxd.cpu), from its own pprof
// endpoint, to see what posfleet's writes cost the database.
func profilePhase(ctx context.Context, o options, ps *posfleetSystem, in *influx, db, phase string, d time.Duration, progress io.Writer) func() {
	if ps == nil || ps.pprofAddr == "" {
		return func() {}
	}
	if err := os.MkdirAll(o.PprofDir, 0o755); err != nil {
		logf(progress, "pprof: %v", err)
		return func() {}
	}
	base := filepath.Join(o.PprofDir, db+phase)
	if err := saveProfile(ctx, ps.pprofAddr, "/debug/pprof/allocs", base+".allocs-before.pb.gz"); err != nil {
		logf(progress, "pprof: %v", err)
	}
	secs := itoa(max(1, int(d.Seconds())))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := saveProfile(ctx, ps.pprofAddr, "/debug/pprof/profile?seconds="+secs, base+".cpu.pb.gz"); err != nil {
			logf(progress, "pprof: %v", err)
		}
	})
	if in != nil {
		wg.Go(func() {
			addr := strings.TrimPrefix(in.srv.URL, "http://")
			if err := saveProfile(ctx, addr, "/debug/pprof/profile?seconds="+secs, base+".influxd.cpu.pb.gz"); err != nil {
				logf(progress, "pprof of influxd: %v", err)
			}
		})
	}
	return func() {
		wg.Wait()
		if err := saveProfile(ctx, ps.pprofAddr, "/debug/pprof/allocs", base+".allocs-after.pb.gz"); err != nil {
			logf(progress, "pprof: %v", err)
		}
	}
}
