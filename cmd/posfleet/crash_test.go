package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/internal/testport"
)

// builds holds the commands built by goBuild, by package.
var builds sync.Map

type build struct {
	once sync.Once
	path string
	err  error
}

// goBuild builds the command in pkg (relative to this package) once per
// test run and returns its path.
func goBuild(t *testing.T, pkg, name string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &build{})
	b := v.(*build)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", name+"-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// binary builds the posfleet command once per test run.
func binary(t *testing.T) string { return goBuild(t, ".", "posfleet") }

// process is one `posfleet serve` run as a child process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func startServe(t *testing.T, bin, dataDir, mqttAddr, httpAddr, influxURL string) *process {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(dataDir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--data-dir", dataDir, "serve",
		"--mqtt-addr", mqttAddr, "--http-addr", httpAddr,
		"--influx-url", influxURL, "--influx-bucket", influxtest.Bucket, "--batch-wait", "20ms")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logf}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", mqttAddr); err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("posfleet serve exited at start:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("posfleet serve did not listen within 30 s")
	return nil
}

func (p *process) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.log.Close()
}

// TestCrashAndOutageLoseNothing streams QoS 1 heartbeats from 20 terminals
// while InfluxDB is stopped for 30 s and, during that outage, `posfleet
// serve` is killed with SIGKILL and started again. Every message a terminal
// got a PUBACK for must be in InfluxDB exactly once.
func TestCrashAndOutageLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("45 s of streaming")
	}
	bin := binary(t)
	influx := influxtest.Start(t)
	dataDir := t.TempDir()
	const terminals = 20
	importFleet(t, bin, dataDir, terminals)
	mqttAddr, httpAddr := testport.Addr(t), testport.Addr(t)
	proc := startServe(t, bin, dataDir, mqttAddr, httpAddr, influx.URL)
	fleet := startHeartbeatFleet(mqttAddr, terminals)
	step := func(d time.Duration, what string) {
		time.Sleep(d)
		t.Log(what)
	}
	step(3*time.Second, "stopping InfluxDB for 30 s")
	influx.Stop()
	step(7*time.Second, "killing posfleet serve with SIGKILL")
	proc.kill()
	step(2*time.Second, "starting posfleet serve again")
	proc = startServe(t, bin, dataDir, mqttAddr, httpAddr, influx.URL)
	step(21*time.Second, "starting InfluxDB again")
	if err := influx.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	step(3*time.Second, "stopping the terminals")
	total := fleet.stop()
	assertStoredOnce(t, influx, fleet)
	t.Logf("%d acknowledged messages from %d terminals through a 30 s InfluxDB outage and a SIGKILL: all stored exactly once", total, terminals)

	// A graceful stop flushes and exits 0.
	proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-proc.done:
		if code := proc.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code after SIGTERM = %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Error("posfleet serve did not stop within 20 s of SIGTERM")
	}
	if _, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
		t.Error("still serving HTTP after SIGTERM")
	}
}

// importFleet provisions terminals 1..n of fleetCSV with `posfleet terminals
// import` into dataDir.
func importFleet(t *testing.T, bin, dataDir string, n int) {
	t.Helper()
	csvPath := filepath.Join(t.TempDir(), "fleet.csv")
	if err := os.WriteFile(csvPath, []byte(fleetCSV(n)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--data-dir", dataDir, "terminals", "import", csvPath, "--secrets-out", filepath.Join(t.TempDir(), "secrets.csv")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d added", n+1)) {
		t.Fatalf("terminals import: %v\n%s", err, out)
	}
}

// heartbeatFleet is terminals 1..n publishing numbered QoS 1 heartbeats,
// about 50 a second each. A heartbeat without a PUBACK within 3 s is
// refused: the terminal resends the same seq on a new connection, as a real
// one resends from its store, so seqs are acknowledged in order.
type heartbeatFleet struct {
	mu      sync.Mutex
	acked   []int64 // highest seq acknowledged per terminal
	refused int     // publishes without a PUBACK (resent)
	done    chan struct{}
	wg      sync.WaitGroup
}

func startHeartbeatFleet(mqttAddr string, n int) *heartbeatFleet {
	f := &heartbeatFleet{acked: make([]int64, n+1), done: make(chan struct{})}
	base := time.Now().UTC().Add(-time.Hour)
	for i := 1; i <= n; i++ {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			id := fmt.Sprintf("acme:T-%04d", i)
			topic := fmt.Sprintf("fleet/v1/acme/T-%04d/hb", i)
			var c mqtt.Client
			for seq := int64(1); ; {
				select {
				case <-f.done:
					if c != nil {
						c.Disconnect(0)
					}
					return
				default:
				}
				if c == nil {
					var err error
					if c, err = connect(mqttAddr, id, id, secretOf(i)); err != nil {
						c = nil
						time.Sleep(200 * time.Millisecond)
						continue
					}
				}
				payload := fmt.Sprintf(`{"seq":%d,"ts":%q,"uptime_s":%d}`, seq, base.Add(time.Duration(seq)*time.Second).Format(time.RFC3339), seq)
				tok := c.Publish(topic, 1, false, payload)
				if !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
					f.mu.Lock()
					f.refused++
					f.mu.Unlock()
					c.Disconnect(0)
					c = nil
					time.Sleep(100 * time.Millisecond)
					continue
				}
				f.mu.Lock()
				f.acked[i] = seq
				f.mu.Unlock()
				seq++
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return f
}

// total is the number of heartbeats acknowledged so far.
func (f *heartbeatFleet) total() (n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.acked {
		n += a
	}
	return n
}

// refusals is the number of publishes refused so far.
func (f *heartbeatFleet) refusals() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

// stop ends the terminals and returns the heartbeats acknowledged.
func (f *heartbeatFleet) stop() int64 {
	close(f.done)
	f.wg.Wait()
	return f.total()
}

// assertStoredOnce checks that InfluxDB holds every heartbeat the stopped
// fleet got a PUBACK for, exactly once: per terminal, as many distinct
// seqs as acknowledged, and as many points in all.
func assertStoredOnce(t *testing.T, influx *influxtest.Server, f *heartbeatFleet) {
	t.Helper()
	want := f.total()
	waitFor(t, "every acknowledged message in InfluxDB", func() bool { return count(t, influx, "heartbeat", "seq") >= want })
	if n := count(t, influx, "heartbeat", "seq"); n != want {
		t.Fatalf("InfluxDB holds %d heartbeats, terminals got %d acknowledgements", n, want)
	}
	rows := flux(t, influx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "heartbeat" and r._field == "seq") |> group(columns: ["terminal"]) |> distinct() |> count()`, influxtest.Bucket))
	for _, r := range rows {
		var i int
		fmt.Sscanf(r["terminal"], "T-%d", &i)
		if w := fmt.Sprint(f.acked[i]); r["_value"] != w {
			t.Errorf("%s: %s distinct seqs stored, %s acknowledged", r["terminal"], r["_value"], w)
		}
	}
}
