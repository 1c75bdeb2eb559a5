package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// listener is the broker's own mochi listener, used instead of mochi's TCP
// listener because that one:
//   - stops accepting for good at the first Accept error (EMFILE under a
//     connection storm would leave a running broker that nobody can reach);
//   - gives a connection unlimited time to send its CONNECT;
//   - cannot tell its health or its bound address before serving.
//
// It also carries each connection's session (see conn) from the CONNECT
// hooks to the packet hooks.
type listener struct {
	id             string
	ln             net.Listener
	tlsConf        *tls.Config // nil for plain TCP
	connectTimeout time.Duration
	log            *slog.Logger

	mu      sync.Mutex
	closed  bool
	serving bool
	conns   map[*conn]struct{}
	wg      sync.WaitGroup // connection goroutines
	stop    chan struct{}  // closed by Close
	done    chan struct{}  // closed when Serve returns

	acceptErr atomic.Pointer[error] // the last Accept error, nil once Accept succeeds again
}

// conn is a client connection as the broker hands it to mochi.
type conn struct {
	net.Conn
	raw  net.Conn // the TCP connection under TLS, closed without a TLS goodbye on shutdown
	sess atomic.Pointer[session]
}

// SyscallConn gives mochi the socket of a plain TCP connection, which it
// then reads without holding a read buffer while the terminal is idle; a
// TLS connection has none to give (its bytes must go through TLS).
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok || c.Conn != c.raw {
		return nil, errNoSocket
	}
	return sc.SyscallConn()
}

var errNoSocket = errors.New("broker: connection gives no socket")

func newListener(id string, ln net.Listener, tlsConf *tls.Config, connectTimeout time.Duration, log *slog.Logger) *listener {
	return &listener{
		id:             id,
		ln:             ln,
		tlsConf:        tlsConf,
		connectTimeout: connectTimeout,
		log:            log.With("listener", id),
		conns:          make(map[*conn]struct{}),
		stop:           make(chan struct{}),
		done:           make(chan struct{}),
	}
}

// ID implements listeners.Listener.
func (l *listener) ID() string { return l.id }

// Address implements listeners.Listener.
func (l *listener) Address() string { return l.ln.Addr().String() }

// Protocol implements listeners.Listener.
func (l *listener) Protocol() string {
	if l.tlsConf != nil {
		return "tcp+tls"
	}
	return "tcp"
}

// Init implements listeners.Listener; the socket is already bound.
func (l *listener) Init(*slog.Logger) error { return nil }

// markServing records that mochi will call Serve (it does so on a goroutine
// of its own), so that Close waits for the accept loop to end.
func (l *listener) markServing() {
	l.mu.Lock()
	l.serving = true
	l.mu.Unlock()
}

// Serve implements listeners.Listener: it accepts until Close, retrying
// failed accepts with a growing pause as net/http does.
func (l *listener) Serve(establish listeners.EstablishFn) {
	defer close(l.done)

	var pause time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				l.acceptErr.Store(&err)
				l.log.Error("listener closed unexpectedly", "err", err)
				return
			}
			l.acceptErr.Store(&err)
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed, retrying", "err", err, "retry_in", pause)
			select {
			case <-l.stop:
				return
			case <-time.After(pause):
			}
			continue
		}
		pause = 0
		if l.acceptErr.Load() != nil {
			l.acceptErr.Store(nil)
		}
		c := &conn{Conn: nc, raw: nc}
		if l.tlsConf != nil {
			c.Conn = tls.Server(nc, l.tlsConf)
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = nc.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handle(c, establish)
	}
}

func (l *listener) handle(c *conn, establish listeners.EstablishFn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
	}()
	// Until mochi sets the keepalive deadline after CONNECT, this one bounds
	// the TLS handshake and the wait for CONNECT.
	_ = c.SetDeadline(time.Now().Add(l.connectTimeout))
	if err := establish(l.id, c); err != nil {
		l.ended(c, err)
	}
}

// ended logs the end of a connection. It is out of line so that its frame
// is not on the stack of every idle connection, under mochi's read loop:
// with less there, the garbage collector halves an idle connection's stack
// to 4 KiB.
//
//go:noinline
func (l *listener) ended(c *conn, err error) {
	l.log.Debug("connection ended", "remote", c.RemoteAddr().String(), "err", err)
}

// Close implements listeners.Listener: it stops accepting, has mochi
// disconnect its clients, closes connections still before or in CONNECT,
// and waits for all of them to finish.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	serving := l.serving
	close(l.stop)
	// A client that does not read must not hold up shutdown: the
	// DISCONNECT mochi writes next gets a second at most.
	for c := range l.conns {
		_ = c.raw.SetWriteDeadline(time.Now().Add(time.Second))
	}
	l.mu.Unlock()

	_ = l.ln.Close()
	if serving {
		<-l.done
	}
	closeClients(l.id)

	l.mu.Lock()
	for c := range l.conns {
		_ = c.raw.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// health returns an error when the listener does not accept connections.
func (l *listener) health() error {
	l.mu.Lock()
	serving, closed := l.serving, l.closed
	l.mu.Unlock()
	if !serving || closed {
		return fmt.Errorf("broker: %s listener not serving", l.id)
	}
	select {
	case <-l.done:
		return fmt.Errorf("broker: %s listener stopped", l.id)
	default:
	}
	if err := l.acceptErr.Load(); err != nil {
		return fmt.Errorf("broker: %s listener: accept: %w", l.id, *err)
	}
	return nil
}
