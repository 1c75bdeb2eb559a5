package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/internal/testport"
	"github.com/posfleet/posfleet/mqttsource"
	"github.com/posfleet/posfleet/server"
)

// The external-broker tests run Mosquitto (the Debian package) as a child
// process. Without it they skip, except in CI, where a missing broker must
// not pass for a green run.

const collectorPassword = "collector-password-for-tests"

// mosquittoBin returns the mosquitto binary and its dynamic security plugin.
func mosquittoBin(t testing.TB) (bin, plugin string) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
			bin, err = "/usr/sbin/mosquitto", nil
		}
	}
	plugins, _ := filepath.Glob("/usr/lib/*/mosquitto_dynamic_security.so")
	if len(plugins) == 0 {
		plugins, _ = filepath.Glob("/usr/lib/mosquitto_dynamic_security.so")
	}
	if err != nil || len(plugins) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mosquitto (Debian package) with its dynamic security plugin is required in CI: %v", err)
		}
		t.Skip("mosquitto not installed (apt-get install mosquitto)")
	}
	return bin, plugins[0]
}

// mosquitto is one Mosquitto broker run by a test.
type mosquitto struct {
	addr string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// startMosquitto runs Mosquitto on a free loopback port with the given
// security lines (dynsec plugin or acl_file).
func startMosquitto(t testing.TB, dir, security string) *mosquitto {
	t.Helper()
	return startMosquittoAs(t, dir, "root", security)
}

// startMosquittoAs is startMosquitto with the user Mosquitto drops to
// (mosquitto.conf 'user'); the tests run as root keep root unless they
// test what the packaged user can read.
func startMosquittoAs(t testing.TB, dir, runAs, security string) *mosquitto {
	t.Helper()
	bin, _ := mosquittoBin(t)
	addr := testport.Addr(t) // reserved: it stays Mosquitto's across restarts
	host, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf(`# written by the test
listener %s %s
persistence false
max_inflight_messages 20
max_queued_messages 100000
log_dest stderr
log_type error
log_type warning
user %s
%s
`, port, host, runAs, security)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{addr: addr, log: &bytes.Buffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(bin, "-c", conf)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		m.cmd.Process.Kill()
		<-m.done
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.log)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return m
		}
		select {
		case <-m.done:
			t.Fatalf("mosquitto exited at start:\n%s", m.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("mosquitto did not listen within 10 s:\n%s", m.log)
	return nil
}

// mosquittoFromRegistry provisions n terminals with `posfleet terminals
// import`, writes Mosquitto's dynamic security file with `posfleet
// mosquitto dynsec` from the registry and the secrets output, and starts
// Mosquitto with it.
func mosquittoFromRegistry(t testing.TB, n int) *mosquitto {
	t.Helper()
	return mosquittoFromRegistryAs(t, n, "root")
}

// mosquittoFromRegistryAs is mosquittoFromRegistry with the user Mosquitto
// drops to; its directory is opened to that user for reading.
func mosquittoFromRegistryAs(t testing.TB, n int, runAs string) *mosquitto {
	t.Helper()
	_, plugin := mosquittoBin(t)
	dir := t.TempDir()
	if runAs != "root" {
		// t.TempDir's directories are 0700; the user must reach the file.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
	}
	fleet := filepath.Join(dir, "fleet.csv")
	secrets := filepath.Join(dir, "secrets.csv")
	pw := filepath.Join(dir, "collector.pw")
	dynsec := filepath.Join(dir, "dynamic-security.json")
	for name, body := range map[string]string{fleet: fleetCSV(n), pw: collectorPassword + "\n"} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	for _, args := range [][]string{
		{"--data-dir", data, "terminals", "import", fleet, "--secrets-out", secrets},
		{"--data-dir", data, "mosquitto", "dynsec", "--secrets", secrets, "--collector-password-file", pw, "--iterations", "10", "-o", dynsec},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("posfleet %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
	}
	return startMosquittoAs(t, dir, runAs, fmt.Sprintf("allow_anonymous false\nplugin %s\nplugin_opt_config_file %s\n", plugin, dynsec))
}

// TestMosquittoClientIDBound: with the dynamic security file of `posfleet
// mosquitto dynsec`, Mosquitto refuses a terminal's username and secret
// under another terminal's client ID (which would take over that
// terminal's session and have its messages stored as the other's), and
// accepts them under the terminal's own.
func TestMosquittoClientIDBound(t *testing.T) {
	mq := mosquittoFromRegistry(t, 2)
	for _, c := range []struct {
		name, clientID string
		ok             bool
	}{
		{"another terminal's client ID", "acme:T-0002", false},
		{"another tenant's terminal", "other:T-0001", false},
		{"a client ID of its own choosing", "anything", false},
		{"its own client ID", "acme:T-0001", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := connect(mq.addr, c.clientID, "acme:T-0001", secretOf(1))
			if err == nil {
				cl.Disconnect(0)
			}
			if (err == nil) != c.ok {
				t.Errorf("connect as acme:T-0001 with client ID %s: err = %v, want accepted %v", c.clientID, err, c.ok)
			}
		})
	}
}

// TestMosquittoReadsDynsecAsItsUser: Mosquitto started as root drops to
// its packaged user 'mosquitto' before loading the dynamic security
// plugin; the file `posfleet mosquitto dynsec` writes as root (mode 0600)
// is given to that user, so Mosquitto reads it and terminals connect.
func TestMosquittoReadsDynsecAsItsUser(t *testing.T) {
	mosquittoBin(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to start Mosquitto as the mosquitto user")
	}
	if _, err := user.Lookup(mosquittoUser); err != nil {
		t.Skipf("no user %s: %v", mosquittoUser, err)
	}
	mq := mosquittoFromRegistryAs(t, 1, mosquittoUser)
	cl, err := connect(mq.addr, "acme:T-0001", "acme:T-0001", secretOf(1))
	if err != nil {
		t.Fatalf("a provisioned terminal was refused by Mosquitto running as %s: %v", mosquittoUser, err)
	}
	cl.Disconnect(0)
}

// collectorServer runs an in-process posfleet with the collector role only,
// consuming from the external broker.
func collectorServer(t testing.TB, influx *influxtest.Server, brokerAddr, clientID string) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig(t.TempDir())
	cfg.Roles = server.Roles{Collector: true}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Influx.URL, cfg.Influx.Bucket = influx.URL, influxtest.Bucket
	cfg.Collector.BatchWait = 20 * time.Millisecond
	cfg.Source.Broker = "tcp://" + brokerAddr
	cfg.Source.ClientID = clientID
	cfg.Source.Username, cfg.Source.Password = "posfleet-collector", collectorPassword
	cfg.Source.RetryMin, cfg.Source.RetryMax = 50*time.Millisecond, time.Second
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	for deadline := time.Now().Add(30 * time.Second); srv.Source().Healthy() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not subscribed within 30 s", clientID)
		}
	}
	return srv
}

func hb(seq int) string {
	ts := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second)
	return fmt.Sprintf(`{"seq":%d,"ts":%q,"uptime_s":%d}`, seq, ts.Format(time.RFC3339), seq*60)
}

// seqsByTerminal returns the heartbeat seqs stored per terminal, sorted.
func seqsByTerminal(t *testing.T, influx *influxtest.Server) map[string][]int {
	t.Helper()
	rows := flux(t, influx, fmt.Sprintf(`from(bucket:%q) |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "heartbeat" and r._field == "seq")`, influxtest.Bucket))
	out := map[string][]int{}
	for _, r := range rows {
		n, err := strconv.Atoi(r["_value"])
		if err != nil {
			t.Fatalf("seq %q: %v", r["_value"], err)
		}
		out[r["terminal"]] = append(out[r["terminal"]], n)
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// checkExactlyOnce fails unless every terminal's heartbeats 1..perTerminal
// are stored, each once.
func checkExactlyOnce(t *testing.T, influx *influxtest.Server, terminals, perTerminal int) {
	t.Helper()
	got := seqsByTerminal(t, influx)
	for i := 1; i <= terminals; i++ {
		id := fmt.Sprintf("T-%04d", i)
		seqs := got[id]
		if len(seqs) != perTerminal {
			t.Errorf("%s: %d heartbeats stored, want %d", id, len(seqs), perTerminal)
		}
		for j, s := range seqs {
			if s != j+1 {
				t.Errorf("%s: stored seqs %v, want 1..%d each once", id, seqs, perTerminal)
				break
			}
		}
	}
}

// publishFleet connects terminals 1..n to the broker and publishes
// perTerminal QoS 1 heartbeats from each, concurrently; after each
// terminal's k-th message, at(k) is called (once per k, by the last
// terminal to reach it).
func publishFleet(t *testing.T, addr string, n, perTerminal int, pause time.Duration, at func(k int)) {
	t.Helper()
	clients := make([]mqtt.Client, n)
	for i := range clients {
		clients[i] = mustConnect(t, addr, i+1)
	}
	reached := make([]int, perTerminal+1)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("fleet/v1/acme/T-%04d/hb", i+1)
			for seq := 1; seq <= perTerminal; seq++ {
				tok := c.Publish(topic, 1, false, hb(seq))
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					errs <- fmt.Errorf("%s seq %d: no PUBACK: %v", topic, seq, tok.Error())
					return
				}
				mu.Lock()
				reached[seq]++
				last := reached[seq] == n
				mu.Unlock()
				if last && at != nil {
					at(seq)
				}
				time.Sleep(pause)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestMosquittoSharedSubscription: two collectors share one subscription
// on Mosquitto; every message is stored exactly once and both took part.
func TestMosquittoSharedSubscription(t *testing.T) {
	const terminals, perTerminal = 10, 30
	mq := mosquittoFromRegistry(t, terminals)
	influx := influxtest.Start(t)
	a := collectorServer(t, influx, mq.addr, "collector-a")
	b := collectorServer(t, influx, mq.addr, "collector-b")

	publishFleet(t, mq.addr, terminals, perTerminal, 0, nil)
	total := int64(terminals * perTerminal)
	waitFor(t, "every heartbeat in InfluxDB", func() bool { return count(t, influx, "heartbeat", "seq") >= total })
	checkExactlyOnce(t, influx, terminals, perTerminal)

	sa, sb := a.Source().Stats(), b.Source().Stats()
	t.Logf("collector a: %+v, collector b: %+v", sa, sb)
	if sa.Stored == 0 || sb.Stored == 0 {
		t.Errorf("the load was not shared: a stored %d, b stored %d", sa.Stored, sb.Stored)
	}
	if got := sa.Stored + sb.Stored; got < uint64(total) {
		t.Errorf("collectors stored %d messages, want at least %d", got, total)
	}
	if sa.Failed+sb.Failed != 0 {
		t.Errorf("failed: a %d, b %d", sa.Failed, sb.Failed)
	}

	t.Run("bad input is acknowledged, not redelivered", func(t *testing.T) {
		c := mustConnect(t, mq.addr, 1)
		publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, `{"seq":"not a number"}`)
		waitFor(t, "the rejection", func() bool { return a.Source().Stats().Rejected+b.Source().Stats().Rejected == 1 })
		time.Sleep(300 * time.Millisecond)
		if n := a.Source().Stats().Rejected + b.Source().Stats().Rejected; n != 1 {
			t.Errorf("rejected %d times, want once", n)
		}
	})
}

// startCollectorProcess runs `posfleet serve --roles collector
// --mqtt-source …` as a child process and waits until it is subscribed.
func startCollectorProcess(t *testing.T, bin, dataDir, prefix, brokerAddr, influxURL string) *process {
	t.Helper()
	p, _ := startRole(t, bin, dataDir, nil, []string{"--roles", "collector",
		"--mqtt-source", "tcp://" + brokerAddr, "--mqtt-source-client-prefix", prefix,
		"--influx-url", influxURL, "--influx-bucket", influxtest.Bucket, "--batch-wait", "20ms"})
	return p
}

// TestMosquittoCollectorKilled: two collector processes share the
// subscription; one is killed with SIGKILL mid-stream and started again.
// Every message must end up stored exactly once: what the dead collector
// had not acknowledged comes again from its session.
func TestMosquittoCollectorKilled(t *testing.T) {
	const terminals, perTerminal = 10, 60
	mq := mosquittoFromRegistry(t, terminals)
	influx := influxtest.Start(t)
	bin := binary(t)
	root := t.TempDir()
	dirA, dirB := filepath.Join(root, "a"), filepath.Join(root, "b")
	startCollectorProcess(t, bin, dirA, "ca-", mq.addr, influx.URL)
	b := startCollectorProcess(t, bin, dirB, "cb-", mq.addr, influx.URL)

	killed := make(chan struct{})
	publishFleet(t, mq.addr, terminals, perTerminal, 5*time.Millisecond, func(k int) {
		if k == perTerminal/3 {
			b.kill()
			close(killed)
		}
	})
	<-killed
	startCollectorProcess(t, bin, dirB, "cb-", mq.addr, influx.URL)
	total := int64(terminals * perTerminal)
	waitFor(t, "every heartbeat in InfluxDB", func() bool { return count(t, influx, "heartbeat", "seq") >= total })
	time.Sleep(500 * time.Millisecond) // let any late duplicate land before counting
	checkExactlyOnce(t, influx, terminals, perTerminal)
}

// TestMosquittoAuthFromRegistry: Mosquitto configured by posfleet from the
// registry refuses a wrong secret and an unknown terminal, and drops a
// publish as another terminal or on the terminal's own cmd topic.
func TestMosquittoAuthFromRegistry(t *testing.T) {
	mq := mosquittoFromRegistry(t, 2)
	for _, c := range []struct{ name, user, password string }{
		{"wrong secret", "acme:T-0001", secretOf(2)},
		{"unknown terminal", "acme:T-0404", secretOf(1)},
		{"collector password for a terminal", "acme:T-0001", collectorPassword},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := connect(mq.addr, c.user, c.user, c.password)
			if err == nil {
				cl.Disconnect(0)
				t.Fatal("connected")
			}
		})
	}

	// A plain subscriber as the collector sees what Mosquitto let through.
	seen := make(chan string, 100)
	obs := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + mq.addr).SetClientID("observer").
		SetUsername("posfleet-collector").SetPassword(collectorPassword).SetProtocolVersion(4).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { seen <- m.Topic() }))
	if tok := obs.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("collector user: %v", tok.Error())
	}
	defer obs.Disconnect(0)
	if tok := obs.Subscribe("fleet/v1/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	c1 := mustConnect(t, mq.addr, 1)
	publish(t, c1, "fleet/v1/acme/T-0002/hb", 1, false, hb(1)) // as another terminal
	publish(t, c1, "fleet/v1/acme/T-0001/cmd", 1, false, `{}`) // its own downlink
	publish(t, c1, "fleet/v1/acme/T-0001/hb", 1, false, hb(1)) // allowed: the marker
	select {
	case topic := <-seen:
		if topic != "fleet/v1/acme/T-0001/hb" {
			t.Errorf("Mosquitto forwarded %s, a publish the registry's rules deny", topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the allowed publish never arrived")
	}

	t.Run("subscribe to another terminal's commands", func(t *testing.T) {
		tok := c1.Subscribe("fleet/v1/acme/T-0002/cmd", 1, nil)
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("no SUBACK")
		}
		if q := tok.(*mqtt.SubscribeToken).Result()["fleet/v1/acme/T-0002/cmd"]; q != 0x80 {
			t.Errorf("SUBACK %#x, want 0x80 (refused)", q)
		}
		tok = c1.Subscribe("fleet/v1/acme/T-0001/cmd", 1, nil)
		if !tok.WaitTimeout(10*time.Second) || tok.(*mqtt.SubscribeToken).Result()["fleet/v1/acme/T-0001/cmd"] != 1 {
			t.Errorf("own cmd subscription refused: %v", tok.(*mqtt.SubscribeToken).Result())
		}
	})
}

// TestMosquittoACLFile: the ACL file of `posfleet mosquitto acl`, loaded by
// Mosquitto, lets a terminal publish under its own topics only.
func TestMosquittoACLFile(t *testing.T) {
	mosquittoBin(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	provisionDir := filepath.Join(data, "registry.db")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	provision(t, provisionDir, server.DefaultConfig(data).Registry, 2)
	acl := filepath.Join(dir, "acl")
	var out, errb bytes.Buffer
	if code := run([]string{"--data-dir", data, "mosquitto", "acl", "-o", acl}, &out, &errb); code != 0 {
		t.Fatalf("mosquitto acl: %d %s", code, errb.String())
	}
	// No passwords here: this broker checks the ACL file only.
	mq := startMosquitto(t, dir, "allow_anonymous true\nacl_file "+acl+"\n")

	seen := make(chan string, 100)
	obs := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + mq.addr).SetClientID("observer").
		SetUsername("posfleet-collector").SetProtocolVersion(4).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { seen <- m.Topic() }))
	if tok := obs.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("collector user: %v", tok.Error())
	}
	defer obs.Disconnect(0)
	if tok := obs.Subscribe("$share/posfleet/fleet/v1/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.(*mqtt.SubscribeToken).Result()["fleet/v1/#"] != 1 { // paho keys shared filters without $share/{group}/
		t.Fatalf("collector's shared subscription refused: %v %v", tok.Error(), tok.(*mqtt.SubscribeToken).Result())
	}
	c1, err := connect(mq.addr, "acme:T-0001", "acme:T-0001", "any")
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Disconnect(0)
	publish(t, c1, "fleet/v1/acme/T-0002/hb", 1, false, hb(1))
	publish(t, c1, "fleet/v1/other/T-0001/hb", 1, false, hb(1))
	publish(t, c1, "fleet/v1/acme/T-0001/hb", 1, false, hb(1))
	select {
	case topic := <-seen:
		if topic != "fleet/v1/acme/T-0001/hb" {
			t.Errorf("Mosquitto forwarded %s, a publish the ACL file denies", topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the allowed publish never arrived")
	}
}

var _ = mqttsource.Stats{}

// labelledScenario is a small fleet with one expected flag per terminal
// (none for T-0001), each raised by the evidence of a single message, so
// that it does not depend on which collector got which message.
var labelledScenario = []struct {
	flag     posfleet.FlagName // "" for a healthy terminal
	messages []string          // channel + " " + payload with %d for seq and %s for ts
}{
	{"", []string{
		`fw {"seq":%d,"ts":%q,"model":"A920","serial":"SN-1","firmware":"2.4.1","app":"7.1.0","boot_reason":"power_on"}`,
		`hb {"seq":%d,"ts":%q,"uptime_s":60,"battery_pct":80,"charging":true,"signal_dbm":-70,"host_rtt_ms":300,"paper":"ok"}`,
		`txn {"seq":%d,"ts":%q,"id":"TX-1","type":"sale","entry":"chip","currency":"CNY","amount_entered":1000,"amount_charged":1000,"result":"approved","rc":"00","host_ms":500,"receipt":"printed"}`,
	}},
	{posfleet.FlagTamper, []string{
		`fault {"seq":%d,"ts":%q,"component":"secure_element","code":"TAMPER","severity":"critical","state":"raised"}`,
	}},
	{posfleet.FlagHardwareFault, []string{
		`fault {"seq":%d,"ts":%q,"component":"printer","code":"PAPER_JAM","severity":"warning","state":"raised"}`,
	}},
	{posfleet.FlagAmountMismatch, []string{
		`txn {"seq":%d,"ts":%q,"id":"TX-2","type":"sale","entry":"tap","currency":"CNY","amount_entered":5000,"amount_charged":5500,"result":"approved","rc":"00","host_ms":400,"receipt":"printed"}`,
	}},
	{posfleet.FlagRefundAnomaly, []string{
		`txn {"seq":%d,"ts":%q,"id":"TX-3","type":"refund","entry":"chip","currency":"CNY","amount_entered":9000,"amount_charged":9000,"original_id":"TX-0","original_amount":4000,"result":"approved","rc":"00","host_ms":400,"receipt":"printed"}`,
	}},
	{posfleet.FlagUpdateFailed, []string{
		`fw {"seq":%d,"ts":%q,"model":"A920","serial":"SN-6","firmware":"2.4.1","app":"7.1.0","boot_reason":"update","update":{"target":"2.5.0","status":"failed","error":"checksum mismatch"}}`,
	}},
}

// playScenario publishes the scenario over MQTT, terminal i+1 for row i,
// and returns the number of messages.
func playScenario(t *testing.T, addr string) int {
	t.Helper()
	n := 0
	for i, row := range labelledScenario {
		c := mustConnect(t, addr, i+1)
		for j, m := range row.messages {
			ch, body, _ := strings.Cut(m, " ")
			ts := time.Now().UTC().Add(time.Duration(j-len(row.messages)) * time.Second).Format(time.RFC3339)
			publish(t, c, fmt.Sprintf("fleet/v1/acme/T-%04d/%s", i+1, ch), 1, false, fmt.Sprintf(body, j+1, ts))
			n++
		}
	}
	return n
}

// flagsOf returns the flags raised for each scenario terminal across the
// given servers' health engines (a terminal's flags are wherever its
// messages went).
func flagsOf(servers ...*server.Server) map[string][]string {
	out := map[string][]string{}
	for i := range labelledScenario {
		ref := posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%04d", i+1)}
		var names []string
		for _, s := range servers {
			if h, ok := s.Health().Terminal(ref); ok {
				for _, f := range h.Flags {
					names = append(names, string(f.Name))
				}
			}
		}
		slices.Sort(names)
		out[ref.Terminal] = slices.Compact(names)
	}
	return out
}

// TestMosquittoFlagsEqualEmbedded plays one labelled scenario into the
// embedded broker and into Mosquitto with two collectors on the shared
// subscription: the flags are the labels, and the same in both modes.
func TestMosquittoFlagsEqualEmbedded(t *testing.T) {
	n := len(labelledScenario)
	mq := mosquittoFromRegistry(t, n)
	influx := influxtest.Start(t)

	labels := map[string][]string{}
	for i, row := range labelledScenario {
		labels[fmt.Sprintf("T-%04d", i+1)] = nil
		if row.flag != "" {
			labels[fmt.Sprintf("T-%04d", i+1)] = []string{string(row.flag)}
		}
	}
	same := func(a, b map[string][]string) bool {
		for k := range labels {
			if !slices.Equal(a[k], b[k]) {
				return false
			}
		}
		return true
	}
	// Flags settle when the last message is observed; wait for the
	// labels, then report any difference.
	settle := func(what string, servers []*server.Server, want map[string][]string) map[string][]string {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && !same(flagsOf(servers...), want) {
			time.Sleep(100 * time.Millisecond)
		}
		got := flagsOf(servers...)
		for k := range labels {
			if !slices.Equal(got[k], want[k]) {
				t.Errorf("%s: %s flags %v, want %v", what, k, got[k], want[k])
			}
		}
		return got
	}

	embedded := testServer(t, influx, n)
	playScenario(t, embedded.MQTTAddr().String())
	want := settle("embedded", []*server.Server{embedded}, labels)

	a := collectorServer(t, influx, mq.addr, "flags-a")
	b := collectorServer(t, influx, mq.addr, "flags-b")
	playScenario(t, mq.addr)
	settle("external, two collectors", []*server.Server{a, b}, want)
	t.Logf("collector a stored %d, b stored %d", a.Source().Stats().Stored, b.Source().Stats().Stored)
}

// BenchmarkExternalBroker measures messages per second from 100 terminals
// publishing QoS 1 to Mosquitto, through two collectors on the shared
// subscription (each acknowledging after its spool), into InfluxDB: the
// clock stops when InfluxDB holds every message. Compare with
// BenchmarkEndToEnd, the embedded broker. Run with -benchtime=1x.
//
//	go test ./cmd/posfleet -run '^$' -bench ExternalBroker -benchtime 1x
func BenchmarkExternalBroker(b *testing.B) {
	const (
		terminals = 100
		perTerm   = 300
		inflight  = 16
	)
	mq := mosquittoFromRegistry(b, terminals)
	influx := influxtest.Start(b)
	col := []*server.Server{collectorServer(b, influx, mq.addr, "bench-a"), collectorServer(b, influx, mq.addr, "bench-b")}
	clients := make([]mqtt.Client, terminals)
	for i := range clients {
		id := fmt.Sprintf("acme:T-%04d", i+1)
		c, err := connect(mq.addr, id, id, secretOf(i+1))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Disconnect(0)
		clients[i] = c
	}
	base := time.Now().UTC().Add(-time.Hour)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			window := make(chan mqtt.Token, inflight)
			topic := fmt.Sprintf("fleet/v1/acme/T-%04d/txn", i+1)
			for seq := 1; seq <= perTerm; seq++ {
				ts := base.Add(time.Duration(seq) * time.Second).Format(time.RFC3339)
				payload := fmt.Sprintf(`{"seq":%d,"ts":%q,"id":"TX-%d","type":"sale","entry":"tap","currency":"CNY","amount_entered":1250,"amount_charged":1250,"result":"approved","rc":"00","host_ms":380,"receipt":"printed"}`, seq, ts, seq)
				if len(window) == cap(window) {
					if tok := <-window; !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
						b.Errorf("publish: %v", tok.Error())
						return
					}
				}
				window <- c.Publish(topic, 1, false, payload)
			}
			close(window)
			for tok := range window {
				if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
					b.Errorf("publish: %v", tok.Error())
				}
			}
		}()
	}
	wg.Wait()
	total := int64(terminals * perTerm)
	for {
		n, err := influx.Count(context.Background(), "txn", "seq")
		if err != nil {
			b.Fatal(err)
		}
		if n >= total {
			break
		}
		if time.Since(start) > 90*time.Second {
			b.Fatalf("only %d of %d stored; collectors: %+v %+v; duplicates %v %v", n, total, col[0].Source().Stats(), col[1].Source().Stats(),
				metricOf(col[0], "posfleet_messages_duplicate_total"), metricOf(col[1], "posfleet_messages_duplicate_total"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stored := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/stored.Seconds(), "stored_msgs/s")
	b.Logf("%d terminals, %d QoS 1 messages via Mosquitto and 2 collectors (stored %d and %d): all queryable in InfluxDB in %v",
		terminals, total, col[0].Source().Stats().Stored, col[1].Source().Stats().Stored, stored.Round(time.Millisecond))
}

func metricOf(s *server.Server, name string) float64 {
	mfs, _ := s.Metrics().Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := 0.0
			for _, m := range mf.Metric {
				v += m.GetCounter().GetValue()
			}
			return v
		}
	}
	return -1
}
