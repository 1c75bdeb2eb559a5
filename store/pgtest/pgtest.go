// Package pgtest starts a private PostgreSQL for tests, as influxtest does
// for InfluxDB: initdb into a temporary directory, postgres on a free
// loopback port (as the postgres user when the tests run as root, since
// PostgreSQL refuses to run as root), stopped by PID. The binaries are
// Debian's postgresql package (/usr/lib/postgresql/<version>/bin) or the
// first initdb on PATH; POSTGRES_BIN names another directory. Without
// them tests are skipped locally and fail under CI=true.
//
// One server serves a test binary (Main); each test gets a database of
// its own (Database).
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/posfleet/posfleet/internal/testport"
)

// Server is a running PostgreSQL.
type Server struct {
	Dir  string
	Port int
	cmd  *exec.Cmd
	// release gives the reserved port back.
	release func()
}

var (
	once    sync.Once
	shared  *Server
	errOnce error
)

// BinDir finds the directory of initdb and postgres.
func BinDir() (string, error) {
	if d := os.Getenv("POSTGRES_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL not found: install Debian's postgresql package (apt-get install postgresql) or set POSTGRES_BIN")
}

func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// Main runs the tests of a package and stops the shared server after
// them: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	os.Exit(code)
}

// Shared returns the test binary's server, started on first use. Without
// PostgreSQL the test is skipped, or fails under CI=true.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	once.Do(func() { shared, errOnce = Start() })
	if errOnce != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("PostgreSQL: %v", errOnce)
		}
		tb.Skipf("PostgreSQL: %v", errOnce)
	}
	return shared
}

// Database creates an empty database for this test and returns its URL;
// it is dropped when the test ends.
func Database(tb testing.TB) string {
	tb.Helper()
	s := Shared(tb)
	b := make([]byte, 6)
	rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		admin, err := sql.Open("pgx", s.URL("postgres"))
		if err != nil {
			return
		}
		defer admin.Close()
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	return s.URL(name)
}

// URL is the URL of database name on the server.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, name)
}

// Start runs initdb into a new temporary directory and starts postgres.
func Start() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "posfleet-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir}
	if err := s.start(bin); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// asPostgres runs commands as the postgres user when we are root.
func asPostgres(cmd *exec.Cmd, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return errors.New("running as root and there is no postgres user to run PostgreSQL as (Debian's postgresql package creates it)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}); err != nil {
		return err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Env = append(os.Environ(), "HOME="+dir)
	return nil
}

func (s *Server) start(bin string) error {
	data := filepath.Join(s.Dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
	if err := asPostgres(initdb, s.Dir); err != nil {
		return err
	}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, lastLines(out, 10))
	}
	if err := asPostgres(&exec.Cmd{}, s.Dir); err != nil { // chown what initdb wrote
		return err
	}
	for attempt := 0; attempt < 3; attempt++ {
		port, release, err := testport.Reserve()
		if err != nil {
			return err
		}
		s.Port, s.release = port, release
		logf, err := os.Create(filepath.Join(s.Dir, "postgres.log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.Dir,
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=200", "-c", "shared_buffers=64MB")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := asPostgres(cmd, s.Dir); err != nil {
			logf.Close()
			return err
		}
		// Its own process group: a test binary killed by a timeout
		// leaves no postgres behind to hold the port (Stop signals it).
		cmd.SysProcAttr.Setpgid = true
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("postgres: %w", err)
		}
		logf.Close()
		s.cmd = cmd
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if err := s.waitReady(exited, 30*time.Second); err == nil {
			return nil
		}
		s.kill()
		s.release()
		s.release = nil
	}
	out, _ := os.ReadFile(filepath.Join(s.Dir, "postgres.log"))
	return fmt.Errorf("postgres did not start: %s", lastLines(out, 10))
}

func (s *Server) waitReady(exited chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("postgres exited")
		default:
		}
		db, err := sql.Open("pgx", s.URL("postgres"))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = db.PingContext(ctx)
			cancel()
			db.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("postgres not ready in time")
}

// Stop stops postgres (fast shutdown, by PID) and removes its directory.
func (s *Server) Stop() {
	s.kill()
	if s.release != nil {
		s.release()
	}
	os.RemoveAll(s.Dir)
}

// kill stops postgres: SIGINT (fast shutdown), SIGKILL to its process
// group after 5 s.
func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() {
			for i := 0; i < 100; i++ {
				if syscall.Kill(s.cmd.Process.Pid, 0) != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			close(done)
		}()
		<-done
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
