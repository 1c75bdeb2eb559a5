package mqttsource_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/internal/testport"
	"github.com/posfleet/posfleet/mqttsource"
)

// startMosquitto runs Mosquitto (Debian package) with anonymous access on a
// free loopback port. It skips without Mosquitto, except under CI=true.
func startMosquitto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
			bin, err = "/usr/sbin/mosquitto", nil
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto (Debian package) is required in CI")
		}
		t.Skip("mosquitto not installed")
	}
	addr := testport.Addr(t) // reserved: it stays Mosquitto's across restarts
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nlog_dest stderr\nlog_type error\nuser root\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
	}
	t.Fatalf("mosquitto did not start:\n%s", log.String())
	return ""
}

// sink records what it is given; it fails the first Accept of payload
// "fail-once" and rejects payload "bad".
type sink struct {
	mu     sync.Mutex
	calls  map[string]int
	failed bool
}

func (s *sink) Accept(_ context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := string(payload)
	s.calls[ref.String()+"/"+string(ch)+"/"+p]++
	switch {
	case p == "bad":
		return &posfleet.Rejection{Reason: posfleet.ReasonNotJSON}
	case p == "fail-once" && !s.failed:
		s.failed = true
		return errors.New("spool unavailable")
	}
	return nil
}

func (s *sink) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestAcknowledgement: a stored message is acknowledged once; a rejected one
// is acknowledged and never comes again; one the sink could not store is
// left unacknowledged and comes again after the subscriber reconnects; cmd
// topics never reach the sink; a retained message does.
func TestAcknowledgement(t *testing.T) {
	addr := startMosquitto(t)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("terminal").SetProtocolVersion(4))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(0)
	send := func(topic, payload string, retained bool) {
		t.Helper()
		if tok := pub.Publish(topic, 1, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// Retained before the collector subscribes: replayed on subscribe.
	send("fleet/v1/acme/T-0001/fw", "retained", true)

	sk := &sink{calls: map[string]int{}}
	opts := mqttsource.DefaultOptions()
	opts.Broker, opts.ClientID = "tcp://"+addr, "collector-1"
	opts.RetryMin, opts.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	// Mosquitto gives retained messages to a plain subscription but not
	// to a shared one; subscribe plainly so that the test sees a replay.
	opts.Filter = posfleet.TopicRoot + "/#"
	sub, err := mqttsource.New(opts, sk)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, "subscribed", func() bool { return sub.Healthy() == nil })

	send("fleet/v1/acme/T-0001/hb", "bad", false)
	send("fleet/v1/acme/T-0001/cmd", "command", false)
	waitFor(t, "the rejection", func() bool { return sub.Stats().Rejected == 1 })
	send("fleet/v1/acme/T-0001/hb", "fail-once", false)
	waitFor(t, "the failed message stored on redelivery", func() bool { return sk.count("acme:T-0001/hb/fail-once") == 2 })
	send("fleet/v1/acme/T-0001/hb", "after", false)
	waitFor(t, "a message after the reconnect", func() bool { return sk.count("acme:T-0001/hb/after") == 1 })
	time.Sleep(200 * time.Millisecond)

	st := sub.Stats()
	// Stored: fail-once, after, and the retained fw twice (replayed on the
	// first SUBSCRIBE and on the one after the reconnect; the collector's
	// duplicate filter and InfluxDB's point identity absorb the second).
	want := mqttsource.Stats{Stored: 4, Rejected: 1, Failed: 1, Ignored: 1}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if n := sk.count("acme:T-0001/hb/bad"); n != 1 {
		t.Errorf("the rejected message reached the sink %d times, want once (acknowledged, not redelivered)", n)
	}
	if n := sk.count("acme:T-0001/cmd/command"); n != 0 {
		t.Errorf("a cmd message reached the sink")
	}
	if n := sk.count("acme:T-0001/fw/retained"); n != 2 {
		t.Errorf("the retained message reached the sink %d times, want 2 (once per SUBSCRIBE)", n)
	}
}

func TestNewChecksOptions(t *testing.T) {
	sk := &sink{}
	for _, c := range []struct {
		name string
		opts mqttsource.Options
		sink mqttsource.Sink
	}{
		{"no broker", mqttsource.Options{ClientID: "c"}, sk},
		{"no client id", mqttsource.Options{Broker: "tcp://127.0.0.1:1"}, sk},
		{"no sink", mqttsource.Options{Broker: "tcp://127.0.0.1:1", ClientID: "c"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := mqttsource.New(c.opts, c.sink); err == nil {
				t.Error("no error")
			}
		})
	}
}

// orderSink records, per terminal, seqs that arrive after a higher one. It
// takes longer for some messages than for others, so that handling
// finishes out of order.
type orderSink struct {
	mu       sync.Mutex
	last     map[string]int
	reversed int
	n        int
}

func (s *orderSink) Accept(_ context.Context, ref posfleet.TerminalRef, _ posfleet.Channel, p []byte) error {
	seq, _ := strconv.Atoi(string(p))
	time.Sleep(time.Duration(seq%7) * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if seq <= s.last[ref.String()] {
		s.reversed++
	}
	s.last[ref.String()] = seq
	return nil
}

// TestDeliveryOrder: a terminal's messages reach the sink in the order it
// sent them, while messages are handled concurrently and finish out of
// order. Acknowledging out of order makes Mosquitto 2.0 reorder what it
// delivers next, by dozens of seqs, which the collector's duplicate filter
// would drop as old: this is the regression test for that loss.
func TestDeliveryOrder(t *testing.T) {
	const terminals, perTerminal = 20, 100
	addr := startMosquitto(t)
	sk := &orderSink{last: map[string]int{}}
	opts := mqttsource.DefaultOptions()
	opts.Broker, opts.ClientID = "tcp://"+addr, "collector-order"
	sub, err := mqttsource.New(opts, sk)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sub.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "subscribed", func() bool { return sub.Healthy() == nil })

	var wg sync.WaitGroup
	for i := 0; i < terminals; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("terminal-%d", i)).SetProtocolVersion(4))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Errorf("connect: %v", tok.Error())
				return
			}
			defer c.Disconnect(0)
			window := make(chan mqtt.Token, 16)
			for seq := 1; seq <= perTerminal; seq++ {
				if len(window) == cap(window) {
					(<-window).WaitTimeout(10 * time.Second)
				}
				window <- c.Publish(fmt.Sprintf("fleet/v1/acme/T-%04d/hb", i), 1, false, strconv.Itoa(seq))
			}
			close(window)
			for tok := range window {
				tok.WaitTimeout(10 * time.Second)
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every message", func() bool {
		sk.mu.Lock()
		defer sk.mu.Unlock()
		return sk.n >= terminals*perTerminal
	})
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if sk.reversed != 0 || sk.n != terminals*perTerminal {
		t.Errorf("%d messages, %d of them after a higher seq of their terminal; want %d, none", sk.n, sk.reversed, terminals*perTerminal)
	}
}

// TestPublish: the subscriber sends on its session (the health role sends
// queued commands this way) and says when it has no session.
func TestPublish(t *testing.T) {
	addr := startMosquitto(t)
	opts := mqttsource.DefaultOptions()
	opts.Broker, opts.ClientID = "tcp://"+addr, "health-1"
	opts.Filter = mqttsource.StreamFilter
	sub, err := mqttsource.New(opts, &sink{calls: map[string]int{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Publish(context.Background(), "fleet/v1/acme/T-0001/cmd", []byte("x")); !errors.Is(err, mqttsource.ErrNotConnected) {
		t.Fatalf("publish before the session: %v", err)
	}
	term := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("acme:T-0001").SetProtocolVersion(4))
	if tok := term.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer term.Disconnect(0)
	got := make(chan string, 1)
	if tok := term.Subscribe("fleet/v1/acme/T-0001/cmd", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "subscribed", func() bool { return sub.Healthy() == nil })
	if err := sub.Publish(context.Background(), "fleet/v1/acme/T-0001/cmd", []byte(`{"id":"c-1","type":"reboot"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != `{"id":"c-1","type":"reboot"}` {
			t.Errorf("terminal got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal got nothing")
	}
	// Its own subscription sees the cmd topic too: ignored, not handed on.
	waitFor(t, "the own command ignored", func() bool { return sub.Stats().Ignored == 1 })
}
