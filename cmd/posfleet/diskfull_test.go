package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// diskFault fills and frees the disk under a server's data directory.
type diskFault interface {
	fill(t *testing.T, pid int)
	free(t *testing.T, pid int)
	String() string
}

// tmpfsFault is the real thing: the data directory is a small tmpfs, and
// filling it is writing a file until ENOSPC.
type tmpfsFault struct{ dir string }

func (f tmpfsFault) String() string { return "a 20 MiB tmpfs filled up" }

func (f tmpfsFault) fill(t *testing.T, _ int) {
	t.Helper()
	fh, err := os.Create(filepath.Join(f.dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := fh.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	// Single bytes too: no page left for the spool.
	for fh.Write(buf[:1]); ; {
		if _, err := fh.Write(buf[:1]); err != nil {
			return
		}
	}
}

func (f tmpfsFault) free(t *testing.T, _ int) {
	if err := os.Remove(filepath.Join(f.dir, "filler")); err != nil {
		t.Fatal(err)
	}
}

// fsizeFault stands in where the test may not mount: a file-size limit set
// on the server process (prlimit RLIMIT_FSIZE) stops its files from
// growing, and a write across the limit is cut short with EFBIG, as one
// across the end of a full disk is with ENOSPC.
type fsizeFault struct{ spoolDir string }

func (f fsizeFault) String() string { return "a file-size limit (no tmpfs: cannot mount here)" }

func prlimitFsize(pid int, cur uint64) error {
	lim := syscall.Rlimit{Cur: cur, Max: ^uint64(0)}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

func (f fsizeFault) fill(t *testing.T, pid int) {
	t.Helper()
	var largest int64
	filepath.Walk(filepath.Join(f.spoolDir, "log"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Size() > largest {
			largest = fi.Size()
		}
		return nil
	})
	if err := prlimitFsize(pid, uint64(largest)+512); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
}

func (f fsizeFault) free(t *testing.T, pid int) {
	if err := prlimitFsize(pid, ^uint64(0)); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
}

// smallDisk returns a data directory on a 20 MiB tmpfs where the test may
// mount one, else a plain directory and the file-size stand-in.
func smallDisk(t *testing.T) (string, diskFault) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=20m,mode=0700"); err == nil {
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		return dir, tmpfsFault{dir}
	}
	return dir, fsizeFault{filepath.Join(dir, "spool")}
}

// TestDiskFullWhileInfluxDown is the fault drill of the issue: InfluxDB is
// down, the data directory's disk fills for 10 s and is freed while
// terminals keep publishing QoS 1, then `posfleet serve` is killed and
// started again. The server refuses what it cannot store, starts again
// every time, and every message a terminal got a PUBACK for reaches
// InfluxDB exactly once.
func TestDiskFullWhileInfluxDown(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s drill")
	}
	bin := binary(t)
	influx := influxtest.Start(t)
	dataDir, fault := smallDisk(t)
	t.Logf("disk full: %s", fault)
	const terminals = 10
	csvPath := filepath.Join(t.TempDir(), "fleet.csv")
	if err := os.WriteFile(csvPath, []byte(fleetCSV(terminals)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--data-dir", dataDir, "terminals", "import", csvPath, "--secrets-out", filepath.Join(t.TempDir(), "secrets.csv")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d added", terminals+1)) {
		t.Fatalf("terminals import: %v\n%s", err, out)
	}
	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	proc := startServe(t, bin, dataDir, mqttAddr, httpAddr, influx.URL)

	var (
		mu      sync.Mutex
		acked   = make([]int64, terminals+1) // highest seq acknowledged per terminal, in order
		refused int                          // publishes without a PUBACK (resent)
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	base := time.Now().UTC().Add(-time.Hour)
	for i := 1; i <= terminals; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("acme:T-%04d", i)
			topic := fmt.Sprintf("fleet/v1/acme/T-%04d/hb", i)
			var c mqtt.Client
			for seq := int64(1); ; {
				select {
				case <-stop:
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
					mu.Lock()
					refused++
					mu.Unlock()
					c.Disconnect(0) // resend the same seq on a new connection
					c = nil
					time.Sleep(100 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[i] = seq
				mu.Unlock()
				seq++
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	total := func() (n int64) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range acked {
			n += a
		}
		return n
	}
	step := func(d time.Duration, what string) {
		time.Sleep(d)
		t.Log(what)
	}
	step(2*time.Second, "stopping InfluxDB")
	influx.Stop()
	step(3*time.Second, "filling the disk for 10 s")
	fault.fill(t, proc.cmd.Process.Pid)
	time.Sleep(time.Second) // what was under way settles
	before := total()
	time.Sleep(9 * time.Second)
	during := total() - before
	mu.Lock()
	refusedWhileFull := refused
	mu.Unlock()
	fault.free(t, proc.cmd.Process.Pid)
	t.Logf("disk freed: %d acknowledged while full, %d publishes refused so far", during, refusedWhileFull)
	if refusedWhileFull == 0 {
		t.Error("nothing refused while the disk was full")
	}
	step(3*time.Second, "killing posfleet serve with SIGKILL and starting it again")
	proc.kill()
	proc = startServe(t, bin, dataDir, mqttAddr, httpAddr, influx.URL)
	step(3*time.Second, "starting InfluxDB again")
	if err := influx.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	step(2*time.Second, "stopping the terminals")
	close(stop)
	wg.Wait()

	want := total()
	waitFor(t, "every acknowledged message in InfluxDB", func() bool { return count(t, influx, "heartbeat", "seq") >= want })
	if n := count(t, influx, "heartbeat", "seq"); n != want {
		t.Fatalf("InfluxDB holds %d heartbeats, terminals got %d acknowledgements", n, want)
	}
	rows := flux(t, influx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "heartbeat" and r._field == "seq") |> group(columns: ["terminal"]) |> distinct() |> count()`, influxtest.Bucket))
	for _, r := range rows {
		var i int
		fmt.Sscanf(r["terminal"], "T-%d", &i)
		if w := fmt.Sprint(acked[i]); r["_value"] != w {
			t.Errorf("%s: %s distinct seqs stored, %s acknowledged", r["terminal"], r["_value"], w)
		}
	}
	t.Logf("%d acknowledged messages through InfluxDB down, the disk full for 10 s and a SIGKILL: all stored exactly once", want)
}
