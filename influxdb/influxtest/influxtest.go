// Package influxtest runs a real InfluxDB 1.8 server (influxd, with Flux
// enabled) on a loopback port for tests and benchmarks, with its data in a
// temporary directory. posfleet talks to it through the v2 API only, as it
// does to InfluxDB 2.x in production.
//
// The binary is found in $POSFLEET_INFLUXD, in .tools/bin/influxd under the
// module root (where `make influxd` installs it), or on $PATH. Without it,
// tests are skipped locally and fail under CI=true.
package influxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testport"
)

// Database is the database the helpers create; the v2 bucket is Database+"/autogen".
const Database = "posfleet"

// Bucket is the v2 API bucket of Database's default retention policy.
const Bucket = Database + "/autogen"

// Server is one running influxd.
type Server struct {
	URL  string
	Dir  string
	bin  string
	port int
	rpc  int
	cmd  *exec.Cmd
	exit chan struct{}
	log  *os.File
	// release gives the reserved ports back (Close); Stop keeps them for
	// Restart.
	release func()
}

// Binary returns the path of influxd, or an error saying how to install it.
func Binary() (string, error) {
	if p := os.Getenv("POSFLEET_INFLUXD"); p != "" {
		return p, nil
	}
	if root, err := ModuleRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", "influxd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("influxd"); err == nil {
		return p, nil
	}
	return "", errors.New("influxd not found: run `make influxd` (installs InfluxDB 1.8.10 into .tools/bin) or set POSFLEET_INFLUXD")
}

// ModuleRoot finds the directory holding go.mod above the working directory,
// where .tools/bin is.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs influxd for the test, creates Database, and stops it and
// removes its data when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal(err)
		}
		tb.Skip(err)
	}
	s, err := StartIn(context.Background(), bin, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	if err := s.CreateDatabase(Database); err != nil {
		tb.Fatal(err)
	}
	return s
}

// StartIn runs influxd with its data in dir on reserved loopback ports
// (see internal/testport: they stay reserved across Stop and Restart until
// Close) and waits until it answers. If influxd cannot bind them after
// all, it tries other ports.
func StartIn(ctx context.Context, bin, dir string) (*Server, error) {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var port, rpc int
		var releasePort, releaseRPC func()
		if port, releasePort, err = testport.Reserve(); err != nil {
			return nil, err
		}
		if rpc, releaseRPC, err = testport.Reserve(); err != nil {
			releasePort()
			return nil, err
		}
		s := &Server{Dir: dir, bin: bin, port: port, rpc: rpc, URL: fmt.Sprintf("http://127.0.0.1:%d", port),
			release: func() { releasePort(); releaseRPC() }}
		if err = s.start(ctx); err == nil {
			return s, nil
		}
		s.release()
		if !errors.Is(err, errExitedAtStart) {
			return nil, err
		}
	}
	return nil, err
}

var errExitedAtStart = errors.New("influxd exited at start")

func (s *Server) start(ctx context.Context) error {
	conf := filepath.Join(s.Dir, "influxd.conf")
	if err := os.WriteFile(conf, []byte(Config(s.Dir, s.port, s.rpc)), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "influxd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "run", "-config", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("influxtest: start %s: %w", s.bin, err)
	}
	s.cmd, s.log, s.exit = cmd, logf, make(chan struct{})
	go func() { cmd.Wait(); close(s.exit) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			s.Stop()
			return err
		}
		select {
		case <-s.exit:
			s.cmd = nil
			logf.Close()
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("influxtest: %w: %s", errExitedAtStart, lastLines(b, 5))
		default:
		}
		if s.answers(conf) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("influxtest: influxd did not answer within 60 s; see %s", logf.Name())
}

// answers reports whether the influxd answering on s.URL is this one, the
// one run with configuration file conf. Another test's influxd may answer
// on the port while this one is still starting (and about to fail to bind
// it); a database created there would vanish when that test stops it.
func (s *Server) answers(conf string) bool {
	resp, err := http.Get(s.URL + "/debug/vars")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var vars struct {
		Cmdline []string `json:"cmdline"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&vars) != nil {
		return false
	}
	return slices.Contains(vars.Cmdline, conf)
}

// Config returns an influxd 1.8 configuration: loopback only, Flux on, no
// reporting, quiet logs, data under dir.
func Config(dir string, httpPort, rpcPort int) string {
	return fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%[3]d"
[meta]
  dir = %[1]q
[data]
  dir = %[4]q
  wal-dir = %[5]q
  query-log-enabled = false
  index-version = "inmem"
[http]
  enabled = true
  bind-address = "127.0.0.1:%[2]d"
  auth-enabled = false
  log-enabled = false
  flux-enabled = true
  flux-log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[logging]
  level = "warn"
`, filepath.Join(dir, "meta"), httpPort, rpcPort, filepath.Join(dir, "data"), filepath.Join(dir, "wal"))
}

// CreateDatabase creates a database through the 1.x query endpoint (the v2
// API of 1.8 cannot create buckets).
func (s *Server) CreateDatabase(name string) error {
	resp, err := http.PostForm(s.URL+"/query", url.Values{"q": {"CREATE DATABASE " + name}})
	if err != nil {
		return fmt.Errorf("influxtest: create database: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("influxtest: create database: %s", resp.Status)
	}
	// A statement's failure comes back as 200 with an error in the body.
	var body struct {
		Error   string `json:"error"`
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("influxtest: create database: %w", err)
	}
	if body.Error != "" {
		return fmt.Errorf("influxtest: create database: %s", body.Error)
	}
	for _, r := range body.Results {
		if r.Error != "" {
			return fmt.Errorf("influxtest: create database: %s", r.Error)
		}
	}
	return nil
}

// Stop shuts influxd down (SIGTERM, SIGKILL after 10 s) and waits for it
// to exit. Its data stays in Dir for Restart.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exit:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exit
	}
	s.log.Close()
	s.cmd = nil
}

// Close stops influxd and gives its ports back.
func (s *Server) Close() {
	s.Stop()
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

// Restart starts influxd again on the same port and data.
func (s *Server) Restart(ctx context.Context) error {
	s.Stop()
	if err := s.start(ctx); err != nil {
		return err
	}
	// influxd 1.8 may not have saved a database created just before it
	// stopped; creating it again is harmless.
	return s.CreateDatabase(Database)
}

// Count returns the number of points of a measurement (counting field f)
// in the last years, through Flux on the v2 query API.
func (s *Server) Count(ctx context.Context, measurement, field string) (int64, error) {
	q := fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == %q and r._field == %q) |> group() |> count()`, Bucket, measurement, field)
	rows, err := s.Flux(ctx, q)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
	}
	var n int64
	fmt.Sscan(rows[0]["_value"], &n)
	return n, nil
}

// Flux runs a query on /api/v2/query and returns the rows of its annotated
// CSV answer as column→value maps (all values as text).
func (s *Server) Flux(ctx context.Context, q string) ([]map[string]string, error) {
	body := fmt.Sprintf(`{"query":%q,"type":"flux","dialect":{"annotations":[]}}`, q)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/v2/query", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("influxtest: flux: %w", err)
	}
	defer resp.Body.Close()
	return parseCSV(resp)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
