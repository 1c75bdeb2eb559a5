package testport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestReservedPortIsBelowTheEphemeralRangeAndLocked(t *testing.T) {
	p, release, err := Reserve()
	if err != nil {
		t.Fatal(err)
	}
	lo := ephemeralLow()
	if p >= lo || p < lo-span {
		t.Errorf("port %d, want in [%d, %d)", p, lo-span, lo)
	}
	lockedByOther := func() bool {
		f, err := os.Open(filepath.Join(os.TempDir(), "posfleet-test-ports", strconv.Itoa(p)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil
	}
	if !lockedByOther() {
		t.Error("a reserved port's lock could be taken by another test")
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("the reserved port cannot be listened on: %v", err)
	}
	l.Close()
	release()
	if lockedByOther() {
		t.Error("a released port stays locked")
	}
}

func TestReservedPortsDiffer(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 50; i++ {
		p := Port(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
