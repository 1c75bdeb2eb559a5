// SPDX-License-Identifier: MIT

package mqtt

import (
	"bufio"
	"io"
	"net"
	"sync"
	"syscall"
)

// posfleet patch: a client's packets are read through a packetReader. Upstream
// gives every client a bufio.Reader of ClientNetReadBufferSize (2 KiB by
// default), held for the whole life of the connection although an idle
// client has nothing in it. For a connection that exposes its socket
// (syscall.Conn, as *net.TCPConn does), the server reads through a
// rawReader instead: it waits for the socket to be readable without any
// buffer, takes a buffer from a pool shared by all clients only when there
// is data, and gives it back as soon as its bytes are consumed. An idle
// client then holds no read buffer, and the pooled buffer can be large
// enough (ClientNetPooledReadBufferSize) that a burst of publishes is read
// in one system call. Other connections (TLS, websockets, pipes) keep the
// bufio.Reader.

// packetReader is what a client's fixed headers and packets are read from.
type packetReader interface {
	io.Reader
	io.ByteReader
}

// defaultPooledReadBufferSize is the default size of the pooled read buffers
// (posfleet patch).
const defaultPooledReadBufferSize = 16 * 1024

// newPacketReader returns the reader of a client connection: a rawReader
// when the connection gives access to its socket, else a bufio.Reader.
func newPacketReader(c net.Conn, o *Options) packetReader {
	if r := newRawReader(c, o.ClientNetPooledReadBufferSize); r != nil {
		return r
	}
	return bufio.NewReaderSize(c, o.ClientNetReadBufferSize)
}

var readBufPools struct {
	sync.Mutex
	bySize map[int]*sync.Pool
}

// readBufPool returns the pool of read buffers of the given size.
func readBufPool(size int) *sync.Pool {
	readBufPools.Lock()
	defer readBufPools.Unlock()
	if p, ok := readBufPools.bySize[size]; ok {
		return p
	}
	if readBufPools.bySize == nil {
		readBufPools.bySize = make(map[int]*sync.Pool)
	}
	p := &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}}
	readBufPools.bySize[size] = p
	return p
}

// rawConnOf returns the raw socket of c, if it has one it can be read from
// directly.
func rawConnOf(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
