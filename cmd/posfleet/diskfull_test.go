package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/internal/testport"
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
	importFleet(t, bin, dataDir, terminals)
	mqttAddr, httpAddr := testport.Addr(t), testport.Addr(t)
	proc := startServe(t, bin, dataDir, mqttAddr, httpAddr, influx.URL)
	fleet := startHeartbeatFleet(mqttAddr, terminals)
	step := func(d time.Duration, what string) {
		time.Sleep(d)
		t.Log(what)
	}
	step(2*time.Second, "stopping InfluxDB")
	influx.Stop()
	step(3*time.Second, "filling the disk for 10 s")
	fault.fill(t, proc.cmd.Process.Pid)
	time.Sleep(time.Second) // what was under way settles
	before := fleet.total()
	time.Sleep(9 * time.Second)
	during := fleet.total() - before
	refusedWhileFull := fleet.refusals()
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
	want := fleet.stop()
	assertStoredOnce(t, influx, fleet)
	t.Logf("%d acknowledged messages through InfluxDB down, the disk full for 10 s and a SIGKILL: all stored exactly once", want)
}
