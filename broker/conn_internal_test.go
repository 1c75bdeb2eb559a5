package broker

import (
	"crypto/tls"
	"net"
	"testing"
)

// TestConnGivesSocketOfPlainTCPOnly: mochi reads a connection that gives
// its socket straight from it; a TLS connection's bytes must go through
// TLS, so it gives none.
func TestConnGivesSocketOfPlainTCPOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	plain := &conn{Conn: c, raw: c}
	if rc, err := plain.SyscallConn(); err != nil || rc == nil {
		t.Errorf("plain TCP: %v, %v; want its socket", rc, err)
	}
	overTLS := &conn{Conn: tls.Server(c, &tls.Config{}), raw: c}
	if rc, err := overTLS.SyscallConn(); err == nil || rc != nil {
		t.Errorf("TLS: %v, %v; want an error", rc, err)
	}
}
