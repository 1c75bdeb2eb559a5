package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestTinyRun runs the whole throughput scenario for a few seconds:
// ceiling, posfleet serve, and Mosquitto+Telegraf when both are installed
// (they are not in CI, where only posfleet's part must pass).
func TestTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts InfluxDB and posfleet")
	}
	if _, err := influxtest.Binary(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	out := t.TempDir()
	systems := "posfleet"
	withTelegraf := false
	o := defaultOptions()
	if err := o.binaries(t.Context(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if o.Telegraf != "" && o.Mosquitto != "" {
		systems, withTelegraf = "posfleet,telegraf", true
	} else {
		t.Log("Mosquitto or Telegraf not installed: posfleet only")
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"-reps", "1", "-terminals", "10", "-duration", "1s", "-latency-duration", "1s",
		"-ceiling-lines", "2000", "-ceiling-writers", "1", "-systems", systems, "-posfleet", o.Posfleet,
		"-out", out, "-timeout", "2m", "-drain-max", "30s"}, &stdout, &stderr)
	t.Log(stderr.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	b, err := os.ReadFile(filepath.Join(out, "throughput.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}

	t.Run("ceiling", func(t *testing.T) {
		if len(rep.Ceiling) != 1 || rep.Ceiling[0].Stored != 2000 || rep.Ceiling[0].StoredPerSec <= 0 {
			t.Errorf("ceiling %+v, want 2000 lines stored", rep.Ceiling)
		}
	})
	check := func(t *testing.T, name string) {
		var found bool
		for _, r := range rep.Runs {
			if r.System != name {
				continue
			}
			found = true
			switch {
			case r.Error != "":
				t.Errorf("%s failed: %s", name, r.Error)
			case r.Acked == 0 || r.Stored != r.Acked || r.Lost != 0:
				t.Errorf("%s: %d acked, %d stored, %d lost; want all acknowledged stored", name, r.Acked, r.Stored, r.Lost)
			case r.LatencyAcked == 0 || r.LatencyStored != r.LatencyAcked || r.P99ms <= 0 || r.P50ms > r.P99ms:
				t.Errorf("%s latency phase: %d acked, %d stored, p50 %v p99 %v", name, r.LatencyAcked, r.LatencyStored, r.P50ms, r.P99ms)
			case r.CPUSeconds <= 0 || r.PeakRSSMiB <= 0:
				t.Errorf("%s: CPU %v s, peak RSS %v MiB: not measured", name, r.CPUSeconds, r.PeakRSSMiB)
			case name == "posfleet" && (r.Pipeline == nil || r.Pipeline.SpoolCommits < 1 || r.Pipeline.WriteBatches < 1):
				t.Errorf("posfleet's metrics not read: %+v", r.Pipeline)
			case !strings.Contains(r.Schema, "tenant") || !strings.Contains(r.Schema, "terminal") || !strings.Contains(r.Schema, "seq"):
				t.Errorf("%s: stored heartbeat %q lacks tenant, terminal or seq", name, r.Schema)
			}
		}
		if !found {
			t.Errorf("no %s run in the results", name)
		}
	}
	t.Run("posfleet", func(t *testing.T) { check(t, "posfleet") })
	t.Run("telegraf", func(t *testing.T) {
		if !withTelegraf {
			t.Skip("Mosquitto or Telegraf not installed")
		}
		check(t, "mosquitto+telegraf")
		for _, f := range []string{"mosquitto.conf", "telegraf.conf"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("configuration not recorded with the results: %v", err)
			}
		}
	})
	t.Run("report", func(t *testing.T) {
		md, err := os.ReadFile(filepath.Join(out, "throughput.md"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"| posfleet |", "InfluxDB ceiling", "nproc", "Targets:"} {
			if want == "nproc" {
				want = "CPUs ("
			}
			if !strings.Contains(string(md), want) {
				t.Errorf("Markdown lacks %q", want)
			}
		}
		if !strings.Contains(stdout.String(), "| posfleet |") {
			t.Error("the table is not printed")
		}
	})
}

func TestLatencies(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name    string
		times   []time.Time
		samples []countSample
		base    int64
		want    []float64
		missing int64
	}{
		{"each at the first poll counting it", []time.Time{at(0), at(10), at(20)},
			[]countSample{{At: at(50), N: 1}, {At: at(100), N: 3}}, 0, []float64{50, 90, 80}, 0},
		{"base count of earlier messages", []time.Time{at(0), at(10)},
			[]countSample{{At: at(50), N: 5}, {At: at(60), N: 6}, {At: at(70), N: 7}}, 5, []float64{60, 60}, 0},
		{"never counted", []time.Time{at(0), at(10), at(20)},
			[]countSample{{At: at(50), N: 1}}, 0, []float64{50}, 2},
		{"no samples", []time.Time{at(0)}, nil, 0, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing := latencies(tt.times, tt.samples, tt.base)
			if missing != tt.missing || len(got) != len(tt.want) {
				t.Fatalf("got %v (missing %d), want %v (missing %d)", got, missing, tt.want, tt.missing)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("latency %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestShardPointsOK: the points a database's shards took, from a SHOW
// STATS answer of InfluxDB 1.8 (other databases' shards left out).
func TestShardPointsOK(t *testing.T) {
	const stats = `{"results":[{"statement_id":0,"series":[` +
		`{"name":"shard","tags":{"database":"posfleet_r1","id":"1"},"columns":["diskBytes","writePointsOk","writeReq"],"values":[[59696256,1200,3]]},` +
		`{"name":"shard","tags":{"database":"posfleet_r1","id":"2"},"columns":["diskBytes","writePointsOk","writeReq"],"values":[[40,34,1]]},` +
		`{"name":"shard","tags":{"database":"telegraf_r1","id":"3"},"columns":["diskBytes","writePointsOk","writeReq"],"values":[[40,999,1]]}]}]}`
	n, err := shardPointsOK(strings.NewReader(stats), "posfleet_r1")
	if err != nil || n != 1234 {
		t.Fatalf("got %d, %v; want 1234", n, err)
	}
	if n, err := shardPointsOK(strings.NewReader(stats), "none"); err != nil || n != 0 {
		t.Errorf("no shard yet: %d, %v", n, err)
	}
	if _, err := shardPointsOK(strings.NewReader(`{"results":[{"error":"not allowed"}]}`), "posfleet_r1"); err == nil {
		t.Error("an error answer was taken")
	}
}

// TestPollTimes: the mean and longest count query of the latency phase.
func TestPollTimes(t *testing.T) {
	if m, l := pollTimes(nil); m != 0 || l != 0 {
		t.Errorf("no samples: %v %v", m, l)
	}
	s := []countSample{{Took: 10 * time.Millisecond}, {Took: 30 * time.Millisecond}, {Took: 50 * time.Millisecond}}
	if m, l := pollTimes(s); m != 30 || l != 50 {
		t.Errorf("got mean %v, longest %v; want 30, 50", m, l)
	}
}

// TestPipelineSlowWrites: slow InfluxDB writes and the slowest one's
// bucket, from the differences of posfleet's write-time histogram.
func TestPipelineSlowWrites(t *testing.T) {
	b := func(le string) string { return writeBucket + `le="` + le + `"}` }
	before := map[string]float64{"posfleet_write_seconds_count": 10, b("0.256"): 8, b("0.512"): 10, b("1.024"): 10, b("+Inf"): 10,
		"posfleet_write_batches_total": 10}
	after := map[string]float64{"posfleet_write_seconds_count": 20, b("0.256"): 15, b("0.512"): 17, b("1.024"): 19, b("+Inf"): 20,
		"posfleet_write_batches_total": 20}
	p := pipelineStats(before, after, 100)
	if p.SlowWrites != 3 || p.WriteMaxMs != 1024 || !p.WriteMaxOver {
		t.Errorf("slow %v, slowest %v ms (over: %v); want 3, over 1024", p.SlowWrites, p.WriteMaxMs, p.WriteMaxOver)
	}
	if _, err := json.Marshal(p); err != nil {
		t.Error(err)
	}
	after[b("1.024")], after[b("+Inf")] = 20, 20
	if p := pipelineStats(before, after, 100); p.WriteMaxMs != 1024 {
		t.Errorf("slowest <= %v ms, want 1024", p.WriteMaxMs)
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	tests := []struct {
		q    float64
		want float64
	}{{0.5, 5}, {0.99, 10}, {1, 10}, {0.1, 1}}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			if got := percentile(v, tt.q); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}

func TestProcReadings(t *testing.T) {
	// Burn CPU until the reading grows by 0.1 s: on a loaded machine that
	// takes longer than 0.1 s of wall time, so the bound is a generous 20 s
	// rather than a fixed spin (a fixed spin flakes when the CPU is shared).
	before, err := cpuSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x, grown := 0, 0.0
	for start := time.Now(); time.Since(start) < 20*time.Second && grown < 0.1; {
		for range 1_000_000 {
			x++
		}
		after, _ := cpuSeconds(os.Getpid())
		grown = after - before
	}
	if grown < 0.1 {
		t.Errorf("CPU seconds grew by only %v in 20 s of spinning (%d)", grown, x)
	}
	hwm, err := memKiB(os.Getpid(), "VmHWM")
	if err != nil || hwm < 1024 {
		t.Errorf("VmHWM = %d KiB, %v", hwm, err)
	}
	if _, err := memKiB(os.Getpid(), "NoSuchField"); err == nil {
		t.Error("a missing field is not an error")
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-scenario", "connections", "-conn-terminals", "100"}, true},
		{[]string{"-scenario", "latency"}, false},
		{[]string{"-systems", "posfleet,emqx"}, false},
		{[]string{"-ceiling-writers", "2,zero"}, false},
		{[]string{"-reps", "0"}, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseFlags(tt.args, &bytes.Buffer{})
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestMessage checks the generator's payloads: what the fmt templates they
// replace produced, and valid by the protocol.
func TestMessage(t *testing.T) {
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, seq := range []int64{1, 2, 11, 999_999} {
		ts := base.Add(time.Duration(seq) * time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00")
		ch, got := message(seq, base)
		want := fmt.Sprintf(`{"seq":%d,"ts":%q,"id":"TX-%d","type":"sale","entry":"tap","currency":"CNY","amount_entered":1250,"amount_charged":1250,"result":"approved","rc":"00","host_ms":380,"receipt":"printed"}`, seq, ts, seq)
		wantCh := posfleet.ChannelTxn
		if seq%10 == 1 {
			want = fmt.Sprintf(`{"seq":%d,"ts":%q,"uptime_s":%d,"battery_pct":80,"signal_dbm":-80,"net":"4g","host_rtt_ms":400,"paper":"ok"}`, seq, ts, seq)
			wantCh = posfleet.ChannelHeartbeat
		}
		if ch != wantCh || string(got) != want {
			t.Errorf("message(%d) = %s %s, want %s %s", seq, ch, got, wantCh, want)
		}
		if _, err := posfleet.Decode(posfleet.TerminalRef{Tenant: "acme", Terminal: "T-00001"}, ch, got, base); err != nil {
			t.Errorf("message(%d) refused: %v", seq, err)
		}
	}
}

// TestMessageReusedBuffer: the raw generator builds every payload of a
// terminal in one buffer, with the second of its timestamp cached; the
// payloads are those of message.
func TestMessageReusedBuffer(t *testing.T) {
	base := time.Date(2026, 11, 22, 10, 0, 0, 999_000_000, time.UTC)
	var ts tsCache
	var buf []byte
	for seq := int64(1); seq <= 2500; seq++ {
		wantCh, want := message(seq, base)
		var ch posfleet.Channel
		ch, buf = appendMessage(buf[:0], seq, base, &ts)
		if ch != wantCh || string(buf) != string(want) {
			t.Fatalf("seq %d: %s %s, want %s %s", seq, ch, buf, wantCh, want)
		}
	}
}

// TestRawClientWire: the raw generator's PUBLISH is what paho's codec
// reads back, and its PUBACK reader completes the right publish and skips
// other packets.
func TestRawClientWire(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	c := &rawClient{conn: cli, w: bufio.NewWriter(cli), pending: make(map[uint16]*rawToken)}
	go c.readAcks(bufio.NewReader(cli))
	payload := bytes.Repeat([]byte("x"), 200) // a two-byte remaining length
	tok := c.Publish("fleet/acme/T-00001/txn", payload)
	go c.Flush()
	pk, err := pahopackets.ReadPacket(srv)
	if err != nil {
		t.Fatal(err)
	}
	pp, ok := pk.(*pahopackets.PublishPacket)
	if !ok || pp.Qos != 1 || pp.TopicName != "fleet/acme/T-00001/txn" || pp.MessageID != 1 || !bytes.Equal(pp.Payload, payload) {
		t.Fatalf("read back %v", pk)
	}
	// A PINGRESP, then the PUBACK.
	if _, err := srv.Write([]byte{pahopackets.Pingresp << 4, 0, pahopackets.Puback << 4, 2, 0, 1}); err != nil {
		t.Fatal(err)
	}
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish not completed: %v", tok.Error())
	}
	srv.Close()
	tok2 := c.Publish("fleet/acme/T-00001/txn", payload)
	c.Flush()
	if !tok2.WaitTimeout(5*time.Second) || tok2.Error() == nil {
		t.Fatal("a publish on a lost connection did not fail")
	}
}

// TestStartTriesOtherPorts: a port found free can be taken by another
// process before posfleet binds it. The first start then tries other
// ports, and the error of a start that fails says why.
func TestStartTriesOtherPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts posfleet")
	}
	o := defaultOptions()
	o.Influxd = "unused"
	if err := o.binaries(t.Context(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	calls := 0
	freeAddr = func() string {
		calls++
		if calls == 1 {
			return taken.Addr().String() // the MQTT address of the first try
		}
		return pickFreeAddr()
	}
	defer func() { freeAddr = pickFreeAddr }()

	// Accepts everything: this test is about the listeners, not the data.
	fakeInflux := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"name":"influxdb","status":"pass","version":"1.8.10"}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer fakeInflux.Close()
	procs := &children{}
	defer procs.stopAll()
	s := &posfleetSystem{bin: o.Posfleet, dir: t.TempDir(), procs: procs,
		influx: &influx{srv: &influxtest.Server{URL: fakeInflux.URL}},
		creds:  fleetCredentials(2)}
	addr, err := s.Start(t.Context(), "db")
	if err != nil {
		t.Fatalf("start with the first MQTT port taken: %v", err)
	}
	if addr == taken.Addr().String() || calls < 6 {
		t.Errorf("started on %s after %d addresses chosen; want other ports than the taken %s", addr, calls, taken.Addr())
	}
	s.Stop()

	// A restart keeps its ports: with the MQTT port taken it fails, and
	// says why.
	s.mqtt = taken.Addr().String()
	_, err = s.Start(t.Context(), "db")
	t.Logf("restart on a taken port: %v", err)
	if err == nil || !errors.Is(err, errAddrInUse) || !strings.Contains(err.Error(), "bind: address already in use") {
		t.Errorf("restart on a taken port: %v; want the log's reason", err)
	}
}
