package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Machine is what the run ran on.
type Machine struct {
	CPUs      int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	MemoryMiB int64  `json:"memory_mib"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	LoadAvg   string `json:"loadavg_at_start"`
	Date      string `json:"date"`
}

// Summary is one system over all repetitions.
type Summary struct {
	System           string  `json:"system"`
	Runs             int     `json:"runs"`
	StoredPerSecMed  float64 `json:"stored_per_s_median"`
	StoredPerSecMin  float64 `json:"stored_per_s_min"`
	StoredPerSecMax  float64 `json:"stored_per_s_max"`
	Lost             int64   `json:"lost_total"`
	P50msMed         float64 `json:"latency_p50_ms_median"`
	P99msMax         float64 `json:"latency_p99_ms_worst"`
	CPUPerMillionMed float64 `json:"cpu_s_per_million_median"`
	PeakRSSMiBMax    float64 `json:"peak_rss_mib_max"`
}

// Target is one of the targets and whether this run met it.
type Target struct {
	What  string `json:"what"`
	Value string `json:"value"`
	Met   bool   `json:"met"`
}

// Report is the whole result of a run.
type Report struct {
	Scenario string         `json:"scenario"`
	Machine  Machine        `json:"machine"`
	Options  map[string]any `json:"options"`
	Ceiling  []CeilingRun   `json:"ceiling,omitempty"`
	Runs     []SystemRun    `json:"runs,omitempty"`
	Summary  []Summary      `json:"summary,omitempty"`
	// CeilingMedian is the median over repetitions of each repetition's
	// best writer count.
	CeilingMedian   float64      `json:"ceiling_stored_per_s_median,omitempty"`
	RatioTelegraf   float64      `json:"ratio_posfleet_telegraf,omitempty"`
	RatioCeiling    float64      `json:"ratio_posfleet_ceiling,omitempty"`
	Connections     *Connections `json:"connections,omitempty"`
	Targets         []Target     `json:"targets"`
	Notes           []string     `json:"notes,omitempty"`
	ElapsedSeconds  float64      `json:"elapsed_seconds"`
	started         time.Time
	loadGenerator   string
	systemsMeasured []string
}

func newReport(o options) *Report {
	r := &Report{Scenario: o.Scenario, Machine: machine(), started: time.Now()}
	r.Options = map[string]any{"reps": o.Reps}
	if len(o.PosfleetEnv) > 0 {
		r.Options["posfleet_env"] = o.PosfleetEnv
	}
	if o.Scenario == "throughput" {
		r.Options["terminals"] = o.Terminals
		r.Options["inflight_per_terminal"] = o.Inflight
		r.Options["max_rate_seconds"] = o.Duration.Seconds()
		r.Options["latency_seconds"] = o.LatencyDuration.Seconds()
		r.Options["poll_ms"] = o.Poll.Milliseconds()
		r.Options["latency_count"] = o.LatencyCount
		r.Options["ceiling_lines"] = o.CeilingLines
		r.Options["ceiling_writers"] = o.CeilingWriters
		r.Options["load_generator"] = generatorDescription(o.Generator)
	} else {
		r.Options["terminals"] = o.ConnTerminals
		r.Options["heartbeat_s"] = o.Heartbeat.Seconds()
		r.Options["source_addrs"] = o.SourceAddrs
		r.Options["load_generator"] = "separate process (posbench conngen) of firmware-client terminals sharing one outbox file"
	}
	return r
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339)}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kib int64
			if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kib); n == 1 {
				m.MemoryMiB = kib / 1024
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize computes the per-system summaries, the ratios and the
// throughput targets.
func (r *Report) summarize() {
	r.ElapsedSeconds = time.Since(r.started).Seconds()
	best := map[int]float64{}
	for _, c := range r.Ceiling {
		best[c.Rep] = max(best[c.Rep], c.StoredPerSec)
	}
	var ceil []float64
	for _, v := range best {
		ceil = append(ceil, v)
	}
	r.CeilingMedian = median(ceil)
	r.Summary, r.Targets, r.RatioTelegraf, r.RatioCeiling = nil, nil, 0, 0
	for _, name := range []string{"posfleet", "posfleet (fsync interval)", "mosquitto+telegraf"} {
		var s Summary
		var rates, p50, cpu []float64
		s.System = name
		for _, run := range r.Runs {
			if run.System != name {
				continue
			}
			s.Runs++
			s.Lost += run.Lost + run.LatencyLost
			rates = append(rates, run.StoredPerSec)
			p50 = append(p50, run.P50ms)
			cpu = append(cpu, run.CPUPerMillion)
			s.P99msMax = max(s.P99msMax, run.P99ms)
			s.PeakRSSMiBMax = max(s.PeakRSSMiBMax, run.PeakRSSMiB)
		}
		if s.Runs == 0 {
			continue
		}
		s.StoredPerSecMed, s.StoredPerSecMin, s.StoredPerSecMax = median(rates), slices.Min(rates), slices.Max(rates)
		s.P50msMed, s.CPUPerMillionMed = median(p50), median(cpu)
		r.Summary = append(r.Summary, s)
	}
	pf := r.summary("posfleet")
	tg := r.summary("mosquitto+telegraf")
	if pf == nil {
		return
	}
	failed := 0
	for _, run := range r.Runs {
		if run.System == "posfleet" && run.Error != "" {
			failed++
		}
	}
	r.Targets = append(r.Targets, Target{
		What:  "posfleet: zero loss in every run, including at the maximum rate",
		Value: fmt.Sprintf("%d lost over %d runs (%d failed)", pf.Lost, pf.Runs, failed),
		Met:   pf.Lost == 0 && failed == 0,
	})
	if tg != nil && tg.StoredPerSecMed > 0 {
		r.RatioTelegraf = pf.StoredPerSecMed / tg.StoredPerSecMed
		r.Targets = append(r.Targets, Target{
			What:  "posfleet throughput >= 3x Mosquitto+Telegraf",
			Value: fmt.Sprintf("%.2fx", r.RatioTelegraf),
			Met:   r.RatioTelegraf >= 3,
		})
	}
	if r.CeilingMedian > 0 {
		r.RatioCeiling = pf.StoredPerSecMed / r.CeilingMedian
		r.Targets = append(r.Targets, Target{
			What:  "posfleet throughput >= 60% of the InfluxDB ceiling",
			Value: fmt.Sprintf("%.0f%%", 100*r.RatioCeiling),
			Met:   r.RatioCeiling >= 0.6,
		})
	}
	r.Targets = append(r.Targets, Target{
		What:  "posfleet p99 publish-to-queryable < 2 s at half the maximum rate",
		Value: fmt.Sprintf("%.0f ms (worst run)", pf.P99msMax),
		Met:   pf.P99msMax > 0 && pf.P99msMax < 2000,
	})
	// The targets: CPU per stored message against InfluxDB's own per
	// point in the same run, throughput against Mosquitto+Telegraf, latency.
	worst := 0.0
	for _, run := range r.Runs {
		if run.System == "posfleet" && run.InfluxCPUPerMillion > 0 {
			worst = max(worst, run.CPUPerMillion/run.InfluxCPUPerMillion)
		}
	}
	if worst > 0 {
		r.Targets = append(r.Targets, Target{
			What:  "target: posfleet CPU per stored message <= 0.5 x InfluxDB's CPU per point, in the same run",
			Value: fmt.Sprintf("%.2f (worst run)", worst),
			Met:   worst <= 0.5,
		})
	}
	if r.RatioTelegraf > 0 {
		r.Targets = append(r.Targets, Target{
			What:  "target: posfleet throughput >= 5x Mosquitto+Telegraf",
			Value: fmt.Sprintf("%.2fx", r.RatioTelegraf),
			Met:   r.RatioTelegraf >= 5,
		})
	}
	r.Targets = append(r.Targets, Target{
		What:  "target: posfleet p99 publish-to-queryable <= 1 s at half the maximum rate, every run",
		Value: fmt.Sprintf("%.0f ms (worst run)", pf.P99msMax),
		Met:   pf.P99msMax > 0 && pf.P99msMax <= 1000,
	})
}

func (r *Report) summary(name string) *Summary {
	for i := range r.Summary {
		if r.Summary[i].System == name {
			return &r.Summary[i]
		}
	}
	return nil
}

// write stores the JSON and the Markdown of the report in dir.
func (r *Report) write(dir, scenario string) error {
	if r.ElapsedSeconds == 0 {
		r.ElapsedSeconds = time.Since(r.started).Seconds()
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, scenario+".json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, scenario+".md"), []byte(r.Markdown()), 0o644)
}

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// Markdown renders the report as the tables the README quotes.
func (r *Report) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "### posbench %s, %s\n\n", r.Scenario, m.Date[:10])
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %d MiB RAM, Linux %s, %s; load average at start %s. Shared machine: other work ran at the same time, so figures are noisy.\n\n",
		m.CPUs, m.CPUModel, m.MemoryMiB, m.Kernel, m.GoVersion, m.LoadAvg)
	if r.Scenario == "throughput" {
		fmt.Fprintf(&b, "Load: %v terminals (%v), QoS 1, %v in flight per terminal, %v s at maximum rate then %v s at half that rate; %v repetitions, systems alternating; one InfluxDB 1.8.10, a database per system and repetition; stored = counted in InfluxDB with Flux.\n\n",
			r.Options["terminals"], r.Options["load_generator"], r.Options["inflight_per_terminal"], r.Options["max_rate_seconds"], r.Options["latency_seconds"], r.Options["reps"])
		b.WriteString("| system | stored msgs/s (median, min-max) | lost | p50 / p99 latency at half rate | CPU s per M msgs | peak RSS |\n")
		b.WriteString("|---|---|---|---|---|---|\n")
		if r.CeilingMedian > 0 {
			var w []string
			for _, c := range r.Ceiling {
				w = append(w, fmt.Sprintf("r%d/%dw %.0f", c.Rep, c.Writers, c.StoredPerSec))
			}
			fmt.Fprintf(&b, "| InfluxDB ceiling (direct 5,000-line writes) | %.0f (%s) | 0 | - | - | - |\n", r.CeilingMedian, strings.Join(w, ", "))
		}
		for _, s := range r.Summary {
			fmt.Fprintf(&b, "| %s | %.0f (%.0f-%.0f) | %d | %.0f ms / %.0f ms | %.1f | %.0f MiB |\n",
				s.System, s.StoredPerSecMed, s.StoredPerSecMin, s.StoredPerSecMax, s.Lost, s.P50msMed, s.P99msMax, s.CPUPerMillionMed, s.PeakRSSMiBMax)
		}
		b.WriteString("\n")
		if r.RatioTelegraf > 0 {
			fmt.Fprintf(&b, "posfleet / Mosquitto+Telegraf: **%.2fx**. ", r.RatioTelegraf)
		}
		if r.RatioCeiling > 0 {
			fmt.Fprintf(&b, "posfleet / InfluxDB ceiling: **%.0f%%**.", 100*r.RatioCeiling)
		}
		b.WriteString("\n\nPer run (CPU s/M: the system's own processes, then the load generator and influxd; CPUs busy: the share of all CPUs used by system, generator and influxd, then by every other process of the shared machine, during the maximum-rate phase):\n\n| rep | system | acked msgs/s | stored msgs/s | stored | lost | CPU s/M (generator, influxd) | CPUs busy (others) | p50 / p99 / max ms | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, run := range r.Runs {
			if run.Error != "" {
				fmt.Fprintf(&b, "| %d | %s | failed: %s ||||||||\n", run.Rep, run.System, run.Error)
				continue
			}
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.0f | %d | %d | %.1f (%.1f, %.1f) | %.0f%% (%.0f%%) | %.0f / %.0f / %.0f | %.0f |\n",
				run.Rep, run.System, run.AckedPerSec, run.StoredPerSec, run.Stored, run.Lost+run.LatencyLost,
				run.CPUPerMillion, run.GeneratorCPUPerMillion, run.InfluxCPUPerMillion, 100*run.MachineBusy, 100*run.OthersBusy,
				run.P50ms, run.P99ms, run.MaxMs, run.PeakRSSMiB)
		}
		first := true
		for _, run := range r.Runs {
			p := run.Pipeline
			if p == nil {
				continue
			}
			if first {
				b.WriteString("\nposfleet's own figures over the maximum-rate phase (from its /metrics):\n\n| rep | system | spool commits | messages per commit | commit (write+fsync) mean | InfluxDB writes | lines per write | write mean |\n|---|---|---|---|---|---|---|---|\n")
				first = false
			}
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.1f | %.2f ms | %.0f | %.0f | %.0f ms |\n", run.Rep, run.System, p.SpoolCommits, p.MsgsPerCommit, p.CommitMeanMs, p.WriteBatches, p.LinesPerBatch, p.WriteMeanMs)
		}
		b.WriteString("\nThe half-rate latency phase (what weighs on its tail: the CPUs used by the system, the load generator with the count poller, and influxd, and the whole machine's share busy; the harness's count polls, which InfluxDB pays for; posfleet's writes to InfluxDB, counted slow over 512 ms, the slowest given as its histogram bucket's bound). Each message is sent on its own at this rate, one write per message, as a terminal sends it:\n\n| rep | system | rate msgs/s | p50 / p99 ms | CPUs: system, generator, influxd | machine busy | count poll mean / max | InfluxDB writes (slow) | write mean / slowest |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, run := range r.Runs {
			if run.Error != "" {
				continue
			}
			writes := "-"
			if p := run.LatencyPipeline; p != nil {
				bound := "<="
				if p.WriteMaxOver {
					bound = ">"
				}
				writes = fmt.Sprintf("%.0f (%.0f) | %.0f / %s %.0f ms", p.WriteBatches, p.SlowWrites, p.WriteMeanMs, bound, p.WriteMaxMs)
			} else {
				writes += " | -"
			}
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.0f / %.0f | %.2f, %.2f, %.2f | %.0f%% | %.0f / %.0f ms | %s |\n",
				run.Rep, run.System, run.LatencyRate, run.P50ms, run.P99ms, run.LatencySystemCores, run.LatencyGenCores, run.LatencyInfluxCores,
				100*run.LatencyAllBusy, run.PollMeanMs, run.PollMaxMs, writes)
		}
		for _, run := range r.Runs {
			if run.Error == "" && run.LatencyCount == latencyCountStats && run.LatencyPointsWritten != run.LatencyStored {
				fmt.Fprintf(&b, "\nNote: rep %d %s: InfluxDB took %d points in the latency phase but %d carry seq (other measurements, or points written twice): its latencies are approximate.\n",
					run.Rep, run.System, run.LatencyPointsWritten, run.LatencyStored)
			}
		}
		how := "a Flux count of the phase's points"
		if len(r.Runs) > 0 && r.Runs[0].LatencyCount == latencyCountStats {
			how = "the points InfluxDB's shards took (SHOW STATS, in-memory counters), checked against a Flux count at the end"
		}
		b.WriteString("\nLatency is publish-to-queryable by time-to-count: the k-th message published is taken as queryable at the first count poll finding k messages (" + how + "; polled every " + fmt.Sprint(r.Options["poll_ms"]) + " ms; the resolution is one poll). CPU is user+system of the pipeline's own processes (posfleet; mosquitto+telegraf) over the maximum-rate phase, per million messages stored.\n")
	}
	if c := r.Connections; c != nil {
		c.markdown(&b)
	}
	if len(r.Targets) > 0 {
		b.WriteString("\nTargets:\n\n")
		for _, t := range r.Targets {
			fmt.Fprintf(&b, "- %s: %s: **%s**\n", t.What, t.Value, mark(t.Met))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	return b.String()
}
