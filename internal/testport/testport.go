// Package testport hands test servers loopback ports that stay theirs for
// as long as a test needs them, restarts included.
//
// A port found free with listen(":0") comes from the kernel's ephemeral
// range, and while a test has its server stopped (an outage, a crash and
// restart) any other process may be given the same port, by its own
// listen(":0") or by an outgoing connection. The server's restart then
// fails to bind, or a client reaches someone else's server. Reserve picks
// ports below the ephemeral range, which the kernel never hands out by
// itself, and holds a lock file per port, so that test packages running in
// parallel never pick the same one. The lock goes with the process, so a
// killed test run leaves nothing reserved.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// span is how many ports below the ephemeral range are used.
const span = 10000

// Reserve returns a loopback port nobody listens on, reserved for this
// process until release is called.
func Reserve() (port int, release func(), err error) {
	lo := ephemeralLow()
	if lo-span < 1024 {
		return listenZero()
	}
	dir, err := lockDir()
	if err != nil {
		return 0, nil, err
	}
	for attempt := 0; attempt < 500; attempt++ {
		p := lo - span + rand.IntN(span)
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDONLY, 0o644) // flock needs no write access
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // another test process holds it
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			f.Close() // something outside the tests listens there
			continue
		}
		l.Close()
		return p, func() { f.Close() }, nil
	}
	return 0, nil, fmt.Errorf("testport: no free port in %d-%d after 500 tries", lo-span, lo-1)
}

// lockDir is the directory of the lock files, shared by the test runs of
// every user of the machine (sticky, like /tmp); it is made once a process.
var lockDir = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(os.TempDir(), "posfleet-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", fmt.Errorf("testport: %w", err)
	}
	os.Chmod(dir, 0o777|os.ModeSticky) // against the umask; fails harmlessly if another user made it
	return dir, nil
})

// Port reserves a port for the rest of the test.
func Port(tb testing.TB) int {
	tb.Helper()
	p, release, err := Reserve()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(release)
	return p
}

// Addr reserves a port for the rest of the test and returns it as
// 127.0.0.1:port.
func Addr(tb testing.TB) string {
	tb.Helper()
	return "127.0.0.1:" + strconv.Itoa(Port(tb))
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return lo
}

// listenZero is the fallback when the ephemeral range starts too low to
// leave room below it: a port the kernel picks, reserved by nothing.
func listenZero() (int, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, fmt.Errorf("testport: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, func() {}, nil
}
