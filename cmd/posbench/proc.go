package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// child is one process of a system under test. It runs in its own process
// group so that killing the group also takes whatever it started, and it
// dies with the harness (Pdeathsig) if the harness is killed.
type child struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// children tracks every process started, so that a failing run still
// stops them all.
type children struct {
	mu    sync.Mutex
	procs []*child
}

// start runs bin with args, output to logPath.
func (cs *children) start(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	cs.mu.Lock()
	cs.procs = append(cs.procs, c)
	cs.mu.Unlock()
	return c, nil
}

// pid is the child's process ID.
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the child's group and waits up to grace, then kills
// the group.
func (c *child) stop(sig syscall.Signal, grace time.Duration) {
	if c.exited() {
		c.log.Close()
		return
	}
	syscall.Kill(-c.pid(), sig)
	select {
	case <-c.done:
	case <-time.After(grace):
		syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
	c.log.Close()
}

// stopAll stops every child still running, most recent first.
func (cs *children) stopAll() {
	cs.mu.Lock()
	procs := cs.procs
	cs.procs = nil
	cs.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(syscall.SIGTERM, 10*time.Second)
	}
}

// errAddrInUse marks a child that exited at start because one of its
// addresses was taken.
var errAddrInUse = errors.New("address already in use")

// startFailure adds to err, when the child has exited, how it ended and
// the last lines of its log, so that a failed start says why without the
// log (which is gone with the run's temporary directory).
func startFailure(err error, c *child, logPath string) error {
	if !c.exited() {
		return err
	}
	tail := logTail(logPath, 5)
	err = fmt.Errorf("%w (%v): %s", err, c.err, tail)
	if strings.Contains(tail, "address already in use") {
		err = fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	return err
}

// logTail returns the last n lines of the file at path, joined by " | ".
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// cpuSeconds returns user+system CPU time of pid from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from the
	// last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks, nil
}

// memKiB returns a field of /proc/PID/status in KiB (VmHWM: peak RSS,
// VmRSS: current RSS).
func memKiB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n, err
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// usage sums the CPU seconds of pids; a process that is gone counts 0.
func usage(pids ...int) float64 {
	var s float64
	for _, p := range pids {
		if v, err := cpuSeconds(p); err == nil {
			s += v
		}
	}
	return s
}

// peakRSS sums the peak RSS (MiB) of pids.
func peakRSS(pids ...int) float64 {
	var s int64
	for _, p := range pids {
		if v, err := memKiB(p, "VmHWM"); err == nil {
			s += v
		}
	}
	return float64(s) / 1024
}

// machineBusy returns the CPU seconds all processes of the machine have
// spent outside idle and iowait, from /proc/stat: with the pipeline's,
// the generator's and influxd's own, it shows what the rest of a shared
// machine took during a measurement.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are already in user
			continue
		}
		busy += n
	}
	return float64(busy) / clockTicks
}
