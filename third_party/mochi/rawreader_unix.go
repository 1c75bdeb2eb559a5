// SPDX-License-Identifier: MIT

//go:build unix

package mqtt

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// rawReader reads a client's packets straight from its socket, holding a
// pooled buffer only while that buffer has bytes not yet consumed (posfleet
// patch, see packetReader). It is used by the client's read loop only.
type rawReader struct {
	rc     syscall.RawConn
	conn   net.Conn
	pool   *sync.Pool // of *[]byte of size bytes
	size   int
	buf    *[]byte // the pooled buffer holding unread bytes (*buf)[r:w], nil when none
	r, w   int
	readFn func(fd uintptr) bool // rr.readFd, made once

	// The read in progress, for readFd.
	dst []byte // read into dst, or into a pooled buffer if nil
	n   int
	err error
}

// newRawReader returns a rawReader of c with pooled buffers of size bytes,
// or nil if c has no socket to read from or size is not positive.
func newRawReader(c net.Conn, size int) *rawReader {
	if size <= 0 {
		return nil
	}
	rc := rawConnOf(c)
	if rc == nil {
		return nil
	}
	rr := &rawReader{rc: rc, conn: c, pool: readBufPool(size), size: size}
	rr.readFn = rr.readFd
	return rr
}

// ReadByte implements io.ByteReader.
func (rr *rawReader) ReadByte() (byte, error) {
	if rr.buf == nil {
		if err := rr.fill(); err != nil {
			return 0, err
		}
	}
	b := (*rr.buf)[rr.r]
	rr.r++
	if rr.r == rr.w {
		rr.release()
	}
	return b, nil
}

// Read implements io.Reader. It reads at most once from the socket: into p
// directly when nothing is buffered and p is at least a buffer's size, else
// into a pooled buffer.
func (rr *rawReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if rr.buf == nil {
		if len(p) >= rr.size {
			return rr.read(p)
		}
		if err := rr.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*rr.buf)[rr.r:rr.w])
	rr.r += n
	if rr.r == rr.w {
		rr.release()
	}
	return n, nil
}

// release gives the drained buffer back to the pool.
func (rr *rawReader) release() {
	rr.pool.Put(rr.buf)
	rr.buf = nil
	rr.r, rr.w = 0, 0
}

// fill reads into a pooled buffer, which must not be held.
func (rr *rawReader) fill() error {
	n, err := rr.read(nil)
	if err != nil {
		return err
	}
	rr.r, rr.w = 0, n
	return nil
}

// read waits until the socket is readable and reads once, into p, or into
// a pooled buffer (rr.buf) if p is nil. It returns io.EOF at the end of
// the stream.
func (rr *rawReader) read(p []byte) (int, error) {
	rr.dst, rr.n, rr.err = p, 0, nil
	err := rr.rc.Read(rr.readFn)
	rr.dst = nil
	if err != nil || rr.err != nil {
		return 0, rr.readError(err)
	}
	return rr.n, nil
}

// readError returns the error of a read that failed with err from the
// RawConn, or else with rr.err from the socket, as a net.Conn would.
//
// Out of line, so that its frame is not under the parked read loop (see
// detachClient).
//
//go:noinline
func (rr *rawReader) readError(err error) error {
	if err != nil {
		// The deadline passed or the connection was closed while waiting.
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "raw-read" {
			oe.Op = "read"
		}
		return err
	}
	if rr.err == io.EOF {
		return io.EOF
	}
	return &net.OpError{Op: "read", Net: rr.conn.LocalAddr().Network(), Source: rr.conn.LocalAddr(), Addr: rr.conn.RemoteAddr(), Err: os.NewSyscallError("read", rr.err)}
}

// readFd is the RawConn.Read callback: it reports false (wait for
// readability, then call again) when the socket has nothing to read. A
// pooled buffer is taken only for the read itself, and kept only if bytes
// were read into it.
func (rr *rawReader) readFd(fd uintptr) bool {
	dst := rr.dst
	var b *[]byte
	if dst == nil {
		b = rr.pool.Get().(*[]byte)
		dst = *b
	}
	for {
		n, err := syscall.Read(int(fd), dst)
		if err == syscall.EINTR {
			continue
		}
		if err == nil && n > 0 {
			rr.n, rr.buf = n, b
			return true
		}
		if b != nil {
			rr.pool.Put(b)
		}
		if err == syscall.EAGAIN {
			return false
		}
		if err == nil {
			err = io.EOF
		}
		rr.err = err
		return true
	}
}
