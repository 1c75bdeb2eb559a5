package firmwareclient_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	firmwareclient "github.com/posfleet/posfleet/firmware-client"
	"github.com/posfleet/posfleet/server/servertest"
)

// terminal is a client of the i-th provisioned terminal, running until the
// test ends (or until its stop is called).
type terminal struct {
	*firmwareclient.Client
	stop func()
}

func startTerminal(t *testing.T, url string, i int, dir string, mod func(*firmwareclient.Config)) *terminal {
	t.Helper()
	ref := servertest.Ref(i)
	cfg := firmwareclient.Config{
		Broker: url, Tenant: ref.Tenant, Terminal: ref.Terminal, Secret: servertest.Secret(i),
		StoreDir:  dir,
		Inventory: posfleet.Inventory{Model: "A920", Serial: "SN-" + ref.Terminal, Firmware: "2.4.1", App: "7.1.0"},
		Heartbeat: func() posfleet.Heartbeat {
			return posfleet.Heartbeat{BatteryPct: ptr(77), Net: posfleet.Net4G, SignalDBm: ptr(-85), Paper: posfleet.PaperOK}
		},
		// Fast reconnects: the tests wait for them.
		ReconnectMin: 100 * time.Millisecond,
		ReconnectMax: time.Second,
		AckTimeout:   5 * time.Second,
		Logger:       testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := firmwareclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := c.Close(); err != nil {
				t.Error(err)
			}
			<-done
		})
	}
	t.Cleanup(stop)
	return &terminal{Client: c, stop: stop}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// TestAgainstServer runs terminals against the real broker, collector and
// InfluxDB. The subtests share one server and use a terminal each.
func TestAgainstServer(t *testing.T) {
	srv := servertest.Start(t, 8, servertest.WithTLS())
	t.Run("every channel reaches InfluxDB", func(t *testing.T) { testEveryChannel(t, srv, 1) })
	t.Run("TLS", func(t *testing.T) { testTLS(t, srv, 5) })
	t.Run("last will when the connection is cut", func(t *testing.T) { testLastWill(t, srv, 2) })
	t.Run("commands", func(t *testing.T) { testCommands(t, srv, 3) })
	t.Run("command queued while offline, slow flash", func(t *testing.T) { testQueuedCommand(t, srv, 6) })
	t.Run("broker outage and terminal restart", func(t *testing.T) { testOutage(t, srv, 4) })
}

func testEveryChannel(t *testing.T, srv *servertest.Server, i int) {
	ctx := context.Background()
	ref := servertest.Ref(i)
	c := startTerminal(t, srv.URL(), i, t.TempDir(), func(cfg *firmwareclient.Config) {
		cfg.Reboot = func(context.Context) error { return nil }
	})
	servertest.Eventually(t, 10*time.Second, "connection", c.Connected)
	f := posfleet.Fault{Component: posfleet.ComponentPrinter, Code: "PAPER_OUT", Severity: posfleet.SeverityWarning, Detail: "paper out"}
	must(t, c.RaiseFault(ctx, f))
	must(t, c.ClearFault(ctx, f))
	must(t, c.ReportTransaction(ctx, sale("S-1", 1999)))
	must(t, c.ReportHeartbeat(ctx, posfleet.Heartbeat{TempC: ptr(41.5), HostRTTMs: ptr(900)}))
	must(t, srv.SendCommand(ctx, ref, posfleet.Command{ID: "CMD-R1", Type: posfleet.CmdReboot}))

	// boot inventory + reboot inventory; boot heartbeat + one; raise +
	// clear; one sale; accepted + done; online status.
	want := map[string]int{"firmware": 2, "heartbeat": 2, "fault": 2, "txn": 1, "ack": 2, "status": 1}
	for m, n := range want {
		servertest.Eventually(t, 15*time.Second, fmt.Sprintf("%d %s points", n, m), func() bool {
			return len(srv.Points(ctx, m, ref)) >= n
		})
	}
	txn := srv.Points(ctx, "txn", ref)[0]
	for k, v := range map[string]string{"id": "S-1", "amount_entered": "1999", "amount_charged": "1999", "result": "approved",
		"entry": "chip", "receipt": "printed", "rc": "00", "offline": "false", "currency": "CNY", "type": "sale"} {
		if txn[k] != v {
			t.Errorf("txn %s = %q, want %q", k, txn[k], v)
		}
	}
	inv := srv.Points(ctx, "firmware", ref)
	if last := inv[len(inv)-1]; last["boot_reason"] != posfleet.BootUser || last["firmware"] != "2.4.1" {
		t.Errorf("inventory after reboot %v, want boot_reason user", last)
	}
	if st := srv.Points(ctx, "status", ref); st[0]["online"] != "true" {
		t.Errorf("status %v, want online", st[0])
	}
	servertest.Eventually(t, 10*time.Second, "outbox empty", func() bool { return c.Stats().Backlog == 0 })
	s := c.Stats()
	if s.Acked.Total() != s.Reported.Total() || s.Acked.Txn != 1 || s.Dropped.Total() != 0 {
		t.Errorf("stats %+v: want everything reported acknowledged", s)
	}
	if cnt := srv.Collector().Counters(ref); cnt.Gaps != 0 || len(cnt.Rejected) != 0 {
		t.Errorf("server counted gaps or rejections: %+v", cnt)
	}
}

func testTLS(t *testing.T, srv *servertest.Server, i int) {
	ctx := context.Background()
	ref := servertest.Ref(i)
	var dialed atomic.Int32
	cases := []struct {
		name string
		mod  func(*firmwareclient.Config)
		ok   bool
	}{
		{"trusted", func(cfg *firmwareclient.Config) { cfg.TLS = &tls.Config{RootCAs: srv.RootCAs} }, true},
		{"own dialer", func(cfg *firmwareclient.Config) {
			cfg.TLS = &tls.Config{RootCAs: srv.RootCAs}
			cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dialed.Add(1)
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
		}, true},
		{"untrusted", func(cfg *firmwareclient.Config) {}, false},
	}
	// One store for all: the terminal's seq must go on from case to case,
	// or the server drops its messages as duplicates.
	dir := t.TempDir()
	for k, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startTerminal(t, srv.TLSURL(), i, dir, tc.mod)
			if !tc.ok {
				servertest.Eventually(t, 10*time.Second, "a refused handshake", func() bool { return c.Stats().ConnectFailures > 0 })
				if s := c.Stats(); s.Connects != 0 || !strings.Contains(s.LastError, "certificate") {
					t.Errorf("connects %d, last error %q: want a certificate error", s.Connects, s.LastError)
				}
				return
			}
			servertest.Eventually(t, 10*time.Second, "connection", c.Connected)
			id := fmt.Sprintf("TLS-%d", k)
			must(t, c.ReportTransaction(ctx, sale(id, 500)))
			servertest.Eventually(t, 10*time.Second, id+" in InfluxDB", func() bool {
				for _, p := range srv.Points(ctx, "txn", ref) {
					if p["id"] == id {
						return true
					}
				}
				return false
			})
			c.stop()
		})
	}
	if dialed.Load() == 0 {
		t.Error("Config.Dial was not used")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testLastWill(t *testing.T, srv *servertest.Server, i int) {
	ctx := context.Background()
	ref := servertest.Ref(i)
	proxy := servertest.NewProxy(t, srv.Addr())
	c := startTerminal(t, proxy.URL(), i, t.TempDir(), nil)
	servertest.Eventually(t, 10*time.Second, "connection", c.Connected)
	offline := func() int {
		n := 0
		for _, p := range srv.Points(ctx, "status", ref) {
			if p["online"] == "false" {
				n++
			}
		}
		return n
	}
	if n := offline(); n != 0 {
		t.Fatalf("%d offline statuses before the cut", n)
	}
	proxy.Cut()
	servertest.Eventually(t, 15*time.Second, "last will stored as status online=false", func() bool { return offline() == 1 })
	// The client notices, reconnects and says it is online again.
	servertest.Eventually(t, 15*time.Second, "reconnection", func() bool { return c.Stats().Connects >= 2 && c.Connected() })
	servertest.Eventually(t, 15*time.Second, "status online again", func() bool {
		st := srv.Points(ctx, "status", ref)
		return len(st) == 3 && st[2]["online"] == "true"
	})
}

func testCommands(t *testing.T, srv *servertest.Server, i int) {
	ctx := context.Background()
	ref := servertest.Ref(i)
	pkg := []byte(strings.Repeat("firmware 2.5.0 image ", 4096))
	sum := sha256.Sum256(pkg)
	good := hex.EncodeToString(sum[:])
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pkg/2.5.0.bin" {
			http.NotFound(w, r)
			return
		}
		w.Write(pkg)
	}))
	t.Cleanup(web.Close)

	var mu sync.Mutex
	var flashed []firmwareclient.Update
	var flashedSum string
	c := startTerminal(t, srv.URL(), i, t.TempDir(), func(cfg *firmwareclient.Config) {
		cfg.Flash = func(_ context.Context, u firmwareclient.Update) error {
			b, err := os.ReadFile(u.Path)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			mu.Lock()
			defer mu.Unlock()
			flashed = append(flashed, u)
			flashedSum = hex.EncodeToString(s[:])
			return nil
		}
	})
	servertest.Eventually(t, 10*time.Second, "connection", c.Connected)

	acks := func(id string) []string {
		var got []string
		for _, p := range srv.Points(ctx, "ack", ref) {
			if p["cmd_id"] == id {
				got = append(got, p["status"]+": "+p["detail"])
			}
		}
		return got
	}
	bad := strings.Repeat("ab", 32)
	cases := []struct {
		name string
		cmd  posfleet.Command
		want []string // ack statuses and detail prefixes, in order
	}{
		{"bad checksum", posfleet.Command{ID: "CMD-U1", Type: posfleet.CmdUpdateFirmware, Target: "2.5.0", URL: web.URL + "/pkg/2.5.0.bin", SHA256: bad},
			[]string{"accepted", "failed: sha256 mismatch: package has " + good + ", command says " + bad}},
		{"package not found", posfleet.Command{ID: "CMD-U2", Type: posfleet.CmdUpdateFirmware, Target: "2.5.0", URL: web.URL + "/pkg/none.bin", SHA256: good},
			[]string{"accepted", "failed: download: server answered 404 Not Found"}},
		{"no url", posfleet.Command{ID: "CMD-U3", Type: posfleet.CmdUpdateFirmware, Target: "2.5.0", SHA256: good},
			[]string{"rejected: malformed update: url"}},
		{"not supported", posfleet.Command{ID: "CMD-R1", Type: posfleet.CmdReboot},
			[]string{"rejected: this terminal does not take remote reboots"}},
		{"good update", posfleet.Command{ID: "CMD-U4", Type: posfleet.CmdUpdateFirmware, Target: "2.5.0", URL: web.URL + "/pkg/2.5.0.bin", SHA256: good},
			[]string{"accepted", "done: running 2.5.0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			must(t, srv.SendCommand(ctx, ref, tc.cmd))
			servertest.Eventually(t, 15*time.Second, fmt.Sprintf("%d acks of %s", len(tc.want), tc.cmd.ID), func() bool {
				return len(acks(tc.cmd.ID)) >= len(tc.want)
			})
			got := acks(tc.cmd.ID)
			if len(got) != len(tc.want) {
				t.Fatalf("acks %q, want %q", got, tc.want)
			}
			for k := range got {
				if !strings.HasPrefix(got[k], tc.want[k]) {
					t.Errorf("ack %d = %q, want %q...", k, got[k], tc.want[k])
				}
			}
		})
	}
	t.Run("flashed once, the verified package", func(t *testing.T) {
		mu.Lock()
		defer mu.Unlock()
		if len(flashed) != 1 || flashed[0].Target != "2.5.0" || flashedSum != good || flashed[0].Size != int64(len(pkg)) {
			t.Errorf("flashed %+v (sha256 %s), want 2.5.0 once with sha256 %s", flashed, flashedSum, good)
		}
		if _, err := os.Stat(flashed[0].Path); !os.IsNotExist(err) {
			t.Errorf("package file left behind: %v", err)
		}
	})
	t.Run("inventories", func(t *testing.T) {
		// Boot, then per update attempt that got past validation: downloading
		// and its outcome.
		var got []string
		servertest.Eventually(t, 10*time.Second, "7 inventories", func() bool {
			got = got[:0]
			for _, p := range srv.Points(ctx, "firmware", ref) {
				got = append(got, fmt.Sprintf("%s/%s/%s", p["firmware"], p["boot_reason"], p["update_status"]))
			}
			return len(got) >= 7
		})
		want := []string{"2.4.1/power_on/", "2.4.1/power_on/downloading", "2.4.1/power_on/failed",
			"2.4.1/power_on/downloading", "2.4.1/power_on/failed", "2.4.1/power_on/downloading", "2.5.0/update/installed"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("inventories\n%v\nwant\n%v", got, want)
		}
		if inv := c.Inventory(); inv.Firmware != "2.5.0" || inv.BootReason != posfleet.BootUpdate {
			t.Errorf("client inventory %+v", inv)
		}
	})
	t.Run("redelivered command is not carried out twice", func(t *testing.T) {
		before := c.Stats().Commands
		must(t, srv.SendCommand(ctx, ref, posfleet.Command{ID: "CMD-U4", Type: posfleet.CmdUpdateFirmware, Target: "2.5.0", URL: web.URL + "/pkg/2.5.0.bin", SHA256: good}))
		servertest.Eventually(t, 10*time.Second, "command received", func() bool { return c.Stats().Commands > before })
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		n := len(flashed)
		mu.Unlock()
		if n != 1 || len(acks("CMD-U4")) != 2 {
			t.Errorf("flashed %d times, %d acks", n, len(acks("CMD-U4")))
		}
	})
	t.Run("command for another terminal", func(t *testing.T) {
		// The broker's ACL lets no terminal subscribe to another's commands,
		// so this one is handed to the client directly.
		firmwareclient.HandleCommand(c.Client, "fleet/v1/acme/T-0007/cmd",
			[]byte(`{"id":"CMD-X","type":"update_firmware","target":"9.9.9","url":"http://127.0.0.1:1/x","sha256":"`+good+`"}`))
		servertest.Eventually(t, 10*time.Second, "ack", func() bool { return len(acks("CMD-X")) == 1 })
		if got := acks("CMD-X")[0]; !strings.HasPrefix(got, "rejected: command for another terminal") {
			t.Errorf("ack %q, want rejected", got)
		}
	})
	t.Run("malformed commands", func(t *testing.T) {
		cases := []struct{ id, payload, want string }{
			{"CMD-M1", `{"id":"CMD-M1","type":"update_firmware","target":42}`, "rejected: malformed command"},
			{"CMD-M2", `{"id":"CMD-M2","type":"format_disk"}`, `rejected: unknown command type "format_disk"`},
			{"CMD-M3", `{"id":"CMD-M3","type":"update_firmware","target":"2.6.0","url":"ftp://x/y","sha256":"` + good + `"}`, "rejected: malformed update: url"},
			{"CMD-M4", `{"id":"CMD-M4","type":"update_firmware","target":"2.6.0","url":"http://x/y","sha256":"abc"}`, "rejected: malformed update: sha256"},
		}
		for _, tc := range cases {
			firmwareclient.HandleCommand(c.Client, posfleet.Topic(ref, posfleet.ChannelCommand), []byte(tc.payload))
		}
		for _, tc := range cases {
			servertest.Eventually(t, 10*time.Second, "ack of "+tc.id, func() bool { return len(acks(tc.id)) == 1 })
			if got := acks(tc.id)[0]; !strings.HasPrefix(got, tc.want) {
				t.Errorf("ack of %s %q, want %q...", tc.id, got, tc.want)
			}
		}
	})
}

// testQueuedCommand: a command sent while the terminal is off reaches it
// when it comes back (persistent session), and a slow Flash does not stop
// the terminal's telemetry: commands run off the MQTT receive loop.
func testQueuedCommand(t *testing.T, srv *servertest.Server, i int) {
	ctx := context.Background()
	ref := servertest.Ref(i)
	dir := t.TempDir()
	pkg := []byte("firmware 3.0.0")
	sum := sha256.Sum256(pkg)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(pkg) }))
	t.Cleanup(web.Close)

	c := startTerminal(t, srv.URL(), i, dir, nil)
	servertest.Eventually(t, 10*time.Second, "first connection", c.Connected)
	c.stop()
	must(t, srv.SendCommand(ctx, ref, posfleet.Command{ID: "CMD-Q1", Type: posfleet.CmdUpdateFirmware, Target: "3.0.0",
		URL: web.URL + "/3.0.0.bin", SHA256: hex.EncodeToString(sum[:])}))

	release := make(chan struct{})
	flashing := make(chan struct{})
	c = startTerminal(t, srv.URL(), i, dir, func(cfg *firmwareclient.Config) {
		cfg.Flash = func(ctx context.Context, u firmwareclient.Update) error {
			close(flashing)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	select {
	case <-flashing:
	case <-time.After(15 * time.Second):
		t.Fatal("the queued command did not arrive")
	}
	// While Flash blocks, the terminal still reports and is acknowledged.
	must(t, c.ReportTransaction(ctx, sale("Q-1", 700)))
	servertest.Eventually(t, 10*time.Second, "a sale acknowledged during the flash", func() bool {
		for _, p := range srv.Points(ctx, "txn", ref) {
			if p["id"] == "Q-1" {
				return true
			}
		}
		return false
	})
	close(release)
	servertest.Eventually(t, 10*time.Second, "update done", func() bool {
		for _, p := range srv.Points(ctx, "ack", ref) {
			if p["cmd_id"] == "CMD-Q1" && p["status"] == posfleet.AckDone {
				return true
			}
		}
		return false
	})
}

// testOutage: the broker stops for 30 s while the terminal keeps
// transacting, and the terminal restarts during the outage. Afterwards every
// transaction is in InfluxDB exactly once, in seq order, offline where it
// was stored offline.
func testOutage(t *testing.T, srv *servertest.Server, i int) {
	ctx := context.Background()
	ref := servertest.Ref(i)
	dir := t.TempDir()
	mod := func(cfg *firmwareclient.Config) { cfg.HeartbeatInterval = time.Second }
	c := startTerminal(t, srv.URL(), i, dir, mod)
	servertest.Eventually(t, 10*time.Second, "connection", c.Connected)

	n := 0
	offline := map[string]bool{}
	transact := func(c *terminal, count int, off bool) {
		for range count {
			n++
			id := fmt.Sprintf("S-%04d", n)
			must(t, c.ReportTransaction(ctx, sale(id, int64(100+n))))
			offline[id] = off
			time.Sleep(100 * time.Millisecond)
		}
	}
	transact(c, 10, false)

	start := time.Now()
	srv.StopBroker()
	servertest.Eventually(t, 10*time.Second, "client offline", func() bool { return !c.Connected() })
	transact(c, 100, true) // ~10 s
	c.stop()               // the terminal reboots during the outage
	c = startTerminal(t, srv.URL(), i, dir, mod)
	for time.Since(start) < 30*time.Second {
		transact(c, 1, true)
	}
	if c.Connected() {
		t.Fatal("connected during the outage")
	}
	srv.StartBroker()
	servertest.Eventually(t, 15*time.Second, "reconnection", c.Connected)
	transact(c, 10, false)
	servertest.Eventually(t, 30*time.Second, "outbox empty", func() bool { return c.Stats().Backlog == 0 })

	var pts []map[string]string
	servertest.Eventually(t, 15*time.Second, fmt.Sprintf("%d transactions in InfluxDB", n), func() bool {
		pts = srv.Points(ctx, "txn", ref)
		return len(pts) >= n
	})
	if len(pts) != n {
		t.Errorf("%d transactions in InfluxDB, want %d", len(pts), n)
	}
	sort.Slice(pts, func(a, b int) bool { return atoi(pts[a]["seq"]) < atoi(pts[b]["seq"]) })
	seen := map[string]int{}
	wrongOffline := 0
	for k, p := range pts {
		id := p["id"]
		seen[id]++
		// Reported in id order, so seq order is id order.
		if want := fmt.Sprintf("S-%04d", k+1); id != want {
			t.Errorf("transaction %d by seq is %s, want %s", k, id, want)
			break
		}
		if (p["offline"] == "true") != offline[id] {
			wrongOffline++
		}
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s stored %d times", id, k)
		}
	}
	if wrongOffline > 0 {
		t.Errorf("%d transactions with the wrong offline flag", wrongOffline)
	}
	cnt := srv.Collector().Counters(ref)
	if cnt.Gaps != 0 || len(cnt.Rejected) != 0 {
		t.Errorf("server counted %d gaps, rejections %v", cnt.Gaps, cnt.Rejected)
	}
	// Heartbeats kept coming, offline too, and arrived with the rest.
	if hb := len(srv.Points(ctx, "heartbeat", ref)); hb < 30 {
		t.Errorf("%d heartbeats stored, want at least 30 over the ~45 s", hb)
	}
	t.Logf("%d transactions, %d stored offline; server duplicates dropped: %d", n, countTrue(offline), cnt.Duplicates)
}

func atoi(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}
