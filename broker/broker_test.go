package broker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/broker"
)

func TestConnect(t *testing.T) {
	e := start(t, nil)
	e.auth.unavailable[termC.String()] = true

	tests := []struct {
		name               string
		clientID, username string
		password           string
		wantErr            error
		wantEvent          bool
		wantTerminal       posfleet.TerminalRef // in the auth_failed event
	}{
		{"good", termA.String(), termA.String(), secretOf(termA), nil, false, posfleet.TerminalRef{}},
		{"unknown terminal", "acme:T-9999", "acme:T-9999", "whatever", pahopackets.ErrorRefusedBadUsernameOrPassword, true, posfleet.TerminalRef{Tenant: "acme", Terminal: "T-9999"}},
		{"wrong secret", termB.String(), termB.String(), "not-the-secret", pahopackets.ErrorRefusedBadUsernameOrPassword, true, termB},
		{"client id differs from username", termA.String() + "x", termA.String(), secretOf(termA), pahopackets.ErrorRefusedBadUsernameOrPassword, true, termA},
		{"another terminal's client id", termB.String(), termA.String(), secretOf(termA), pahopackets.ErrorRefusedBadUsernameOrPassword, true, termA},
		{"username not tenant:terminal", "nobody", "nobody", "x", pahopackets.ErrorRefusedBadUsernameOrPassword, true, posfleet.TerminalRef{}},
		{"registry unavailable", termC.String(), termC.String(), secretOf(termC), pahopackets.ErrorRefusedServerUnavailable, false, posfleet.TerminalRef{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.sec.kind(posfleet.SecurityAuthFailed))
			c, err := e.dial(t, tt.clientID, tt.username, tt.password, nil)
			if !errors.Is(err, tt.wantErr) && (err == nil || tt.wantErr == nil || err.Error() != tt.wantErr.Error()) {
				t.Fatalf("connect error = %v, want %v", err, tt.wantErr)
			}
			events := e.sec.kind(posfleet.SecurityAuthFailed)[before:]
			if !tt.wantEvent {
				if len(events) != 0 {
					t.Fatalf("unexpected auth_failed events: %+v", events)
				}
				if err == nil && (!c.IsConnected() || e.b.Connected() != 1) {
					t.Fatalf("connected: client %v, broker counts %d", c.IsConnected(), e.b.Connected())
				}
				return
			}
			if len(events) != 1 {
				t.Fatalf("got %d auth_failed events, want 1", len(events))
			}
			ev := events[0]
			if ev.Terminal != tt.wantTerminal || ev.Username != tt.username || ev.Remote == "" || ev.Time.IsZero() {
				t.Errorf("event = %+v, want terminal %v username %q", ev, tt.wantTerminal, tt.username)
			}
		})
	}
}

func TestSecurityEventUsernameTruncated(t *testing.T) {
	e := start(t, nil)
	long := strings.Repeat("é", 100) // 200 bytes; a cut at 64 falls inside no rune, at 63 it would
	if _, err := e.dial(t, long, long, "x", nil); err == nil {
		t.Fatal("connect succeeded")
	}
	evs := e.sec.kind(posfleet.SecurityAuthFailed)
	if len(evs) != 1 {
		t.Fatalf("got %d events", len(evs))
	}
	if u := evs[0].Username; len(u) > 64 || !strings.HasPrefix(long, u) || len(u) < 60 {
		t.Errorf("username in event = %q (%d bytes), want a 64-byte prefix", u, len(u))
	}
}

func TestPublishIsAcknowledgedAfterSink(t *testing.T) {
	e := start(t, nil)
	const delay = 300 * time.Millisecond
	e.sink.set(delay, nil)
	c := e.client(t, termA, nil)

	began := time.Now()
	tok := c.Publish(posfleet.Topic(termA, posfleet.ChannelHeartbeat), 1, false, hb(1))
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	acked := time.Now()
	if acked.Sub(began) < delay {
		t.Errorf("acknowledged after %v, before the sink's %v", acked.Sub(began), delay)
	}
	got := e.sink.all()
	want := []accepted{{termA, posfleet.ChannelHeartbeat, hb(1)}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("sink got %+v, want %+v", got, want)
	}
	e.sink.mu.Lock()
	returned := e.sink.returned
	e.sink.mu.Unlock()
	if returned.After(acked) {
		t.Errorf("sink returned at %v, after the acknowledgement at %v", returned, acked)
	}

	t.Run("qos0", func(t *testing.T) {
		e.sink.set(0, nil)
		publish(t, c, posfleet.Topic(termA, posfleet.ChannelHeartbeat), 0, hb(2))
		eventually(t, 2*time.Second, "QoS 0 heartbeat in sink", func() bool {
			return len(e.sink.of(termA, posfleet.ChannelHeartbeat)) == 2
		})
	})
}

func TestPublishDenied(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, termA, nil)
	tests := []struct{ name, topic string }{
		{"another terminal", posfleet.Topic(termB, posfleet.ChannelHeartbeat)},
		{"another tenant", posfleet.Topic(termC, posfleet.ChannelTxn)},
		{"own cmd topic", posfleet.Topic(termA, posfleet.ChannelCommand)},
		{"outside fleet", "telemetry/acme/T-0001"},
		{"too deep", posfleet.Topic(termA, posfleet.ChannelHeartbeat) + "/x"},
		// mochi drops these before any hook unless the broker steps in.
		{"$SYS", "$SYS/x"},
		{"$SYS any case", "$sys/broker/clients"},
		{"other $ topic", "$posfleet/x"},
		{"wildcard", "fleet/v1/acme/+/hb"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.sec.kind(posfleet.SecurityPublishDenied))
			// Acknowledged (MQTT 3.1.1 has no negative PUBACK) but dropped.
			publish(t, c, tt.topic, 1, hb(100+i))
			evs := e.sec.kind(posfleet.SecurityPublishDenied)[before:]
			if len(evs) != 1 || evs[0].Topic != tt.topic || evs[0].Terminal != termA {
				t.Fatalf("events = %+v, want one for %s", evs, tt.topic)
			}
			// The same connection goes on working.
			publish(t, c, posfleet.Topic(termA, posfleet.ChannelHeartbeat), 1, hb(i+1))
			if !c.IsConnected() {
				t.Fatal("connection cut")
			}
		})
	}
	for _, m := range e.sink.all() {
		if m.Ref != termA || m.Channel != posfleet.ChannelHeartbeat || strings.Contains(m.Payload, `"seq":10`) {
			t.Errorf("denied message reached the sink: %+v", m)
		}
	}
	if n := len(e.sink.all()); n != len(tests) {
		t.Errorf("sink has %d messages, want the %d valid ones", n, len(tests))
	}
}

func TestUplinkNotForwarded(t *testing.T) {
	e := start(t, nil)
	spy := e.client(t, termB, nil)
	got := make(chan string, 10)
	for _, f := range []string{"#", "fleet/v1/+/+/hb", posfleet.Topic(termA, posfleet.ChannelHeartbeat)} {
		tok := spy.Subscribe(f, 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() })
		tok.WaitTimeout(5 * time.Second)
	}
	a := e.client(t, termA, nil)
	publish(t, a, posfleet.Topic(termA, posfleet.ChannelHeartbeat), 1, hb(1))
	select {
	case topic := <-got:
		t.Fatalf("terminal B received %s", topic)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestSubscribe(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, termA, nil)

	denied := []string{
		posfleet.Topic(termB, posfleet.ChannelCommand),
		posfleet.Topic(termA, posfleet.ChannelHeartbeat),
		"fleet/v1/acme/+/cmd",
		"#",
	}
	for _, f := range denied {
		t.Run("denied "+f, func(t *testing.T) {
			before := len(e.sec.kind(posfleet.SecuritySubscribeDenied))
			tok := c.Subscribe(f, 1, nil)
			if !tok.WaitTimeout(5 * time.Second) {
				t.Fatal("no SUBACK")
			}
			if code := tok.(*paho.SubscribeToken).Result()[f]; code != 0x80 {
				t.Errorf("SUBACK code = %#x, want 0x80", code)
			}
			evs := e.sec.kind(posfleet.SecuritySubscribeDenied)[before:]
			if len(evs) != 1 || evs[0].Topic != f || evs[0].Terminal != termA {
				t.Errorf("events = %+v", evs)
			}
		})
	}

	t.Run("own cmd and SendCommand", func(t *testing.T) {
		cmds := make(chan paho.Message, 1)
		own := posfleet.Topic(termA, posfleet.ChannelCommand)
		tok := c.Subscribe(own, 1, func(_ paho.Client, m paho.Message) { cmds <- m })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		if code := tok.(*paho.SubscribeToken).Result()[own]; code != 1 {
			t.Fatalf("SUBACK code = %#x, want 1", code)
		}
		cmd := posfleet.Command{ID: "c-1", Type: posfleet.CmdUpdateFirmware, Target: "2.4.1", URL: "https://fw.example/a920-2.4.1.bin", SHA256: strings.Repeat("ab", 32)}
		if err := e.b.SendCommand(context.Background(), termA, cmd); err != nil {
			t.Fatalf("SendCommand: %v", err)
		}
		select {
		case m := <-cmds:
			var got posfleet.Command
			if err := json.Unmarshal(m.Payload(), &got); err != nil || got != cmd {
				t.Errorf("received %s (%v), want %+v", m.Payload(), err, cmd)
			}
			if m.Qos() != 1 || m.Topic() != own {
				t.Errorf("received on %s with QoS %d", m.Topic(), m.Qos())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("command not delivered")
		}
	})

	t.Run("SendCommand errors", func(t *testing.T) {
		ctx := context.Background()
		if err := e.b.SendCommand(ctx, termB, posfleet.Command{ID: "c-2", Type: posfleet.CmdReboot}); !errors.Is(err, broker.ErrNoSession) {
			t.Errorf("to a terminal without session: %v, want ErrNoSession", err)
		}
		if err := e.b.SendCommand(ctx, termA, posfleet.Command{ID: "c-3", Type: "format_disk"}); err == nil {
			t.Error("unknown command type accepted")
		}
		if err := e.b.SendCommand(ctx, termA, posfleet.Command{Type: posfleet.CmdReboot}); err == nil {
			t.Error("command without id accepted")
		}
		if err := e.b.SendCommand(ctx, posfleet.TerminalRef{Tenant: "a/b", Terminal: "x"}, posfleet.Command{ID: "c", Type: posfleet.CmdReboot}); err == nil {
			t.Error("invalid terminal accepted")
		}
	})
}

func TestSinkVerdicts(t *testing.T) {
	t.Run("rejection keeps the connection", func(t *testing.T) {
		e := start(t, nil)
		e.sink.set(0, func(_ posfleet.TerminalRef, _ posfleet.Channel, p []byte) error {
			if strings.Contains(string(p), "garbage") {
				return &posfleet.Rejection{Reason: posfleet.ReasonNotJSON}
			}
			return nil
		})
		c := e.client(t, termA, nil)
		topic := posfleet.Topic(termA, posfleet.ChannelTxn)
		publish(t, c, topic, 1, "garbage")
		publish(t, c, topic, 1, `{"seq":2}`)
		if got := e.sink.of(termA, posfleet.ChannelTxn); len(got) != 1 || got[0] != `{"seq":2}` {
			t.Errorf("sink has %q", got)
		}
		if !c.IsConnected() {
			t.Error("connection cut after a rejection")
		}
	})

	t.Run("sink failure disconnects without acknowledging", func(t *testing.T) {
		e := start(t, nil)
		e.sink.set(0, func(posfleet.TerminalRef, posfleet.Channel, []byte) error {
			return errors.New("spool: disk full")
		})
		lost := make(chan error, 1)
		c := e.client(t, termA, func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
		})
		tok := c.Publish(posfleet.Topic(termA, posfleet.ChannelTxn), 1, false, `{"seq":1}`)
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatal("client not disconnected")
		}
		if tok.WaitTimeout(200*time.Millisecond) && tok.Error() == nil {
			t.Error("publish acknowledged although the sink failed")
		}
		if len(e.sink.all()) != 0 {
			t.Error("sink recorded the message")
		}
	})
}

func TestWill(t *testing.T) {
	own := posfleet.Topic(termA, posfleet.ChannelStatus)
	const offline = `{"online":false}`

	t.Run("connection lost", func(t *testing.T) {
		e := start(t, nil)
		var kill func()
		c := e.client(t, termA, func(o *paho.ClientOptions) {
			o.SetWill(own, offline, 1, true)
			kill = killable(o)
		})
		publish(t, c, own, 1, `{"online":true}`)
		kill()
		eventually(t, 5*time.Second, "will in sink", func() bool {
			got := e.sink.of(termA, posfleet.ChannelStatus)
			return len(got) == 2 && got[1] == offline
		})
		if p, ok := e.b.Retained(own); ok {
			t.Errorf("will retained as %q; the broker retains nothing", p)
		}
	})

	t.Run("clean disconnect sends no will", func(t *testing.T) {
		e := start(t, nil)
		c := e.client(t, termA, func(o *paho.ClientOptions) { o.SetWill(own, offline, 1, true) })
		c.Disconnect(100)
		eventually(t, 2*time.Second, "disconnect", func() bool { return e.b.Connected() == 0 })
		time.Sleep(100 * time.Millisecond)
		if got := e.sink.of(termA, posfleet.ChannelStatus); len(got) != 0 {
			t.Errorf("sink got %q", got)
		}
	})

	t.Run("will on a foreign topic is dropped", func(t *testing.T) {
		e := start(t, nil)
		foreign := posfleet.Topic(termB, posfleet.ChannelStatus)
		var kill func()
		c := e.client(t, termA, func(o *paho.ClientOptions) {
			o.SetWill(foreign, offline, 1, true)
			kill = killable(o)
		})
		evs := e.sec.kind(posfleet.SecurityWillDenied)
		if len(evs) != 1 || evs[0].Topic != foreign || evs[0].Terminal != termA {
			t.Fatalf("events = %+v", evs)
		}
		publish(t, c, posfleet.Topic(termA, posfleet.ChannelHeartbeat), 1, hb(1))
		kill()
		eventually(t, 2*time.Second, "disconnect", func() bool { return e.b.Connected() == 0 })
		time.Sleep(100 * time.Millisecond)
		for _, m := range e.sink.all() {
			if m.Channel == posfleet.ChannelStatus {
				t.Errorf("will reached the sink: %+v", m)
			}
		}
		if _, ok := e.b.Retained(foreign); ok {
			t.Error("foreign will retained")
		}
	})

	t.Run("broker shutdown sends no will", func(t *testing.T) {
		e := start(t, nil)
		e.client(t, termA, func(o *paho.ClientOptions) { o.SetWill(own, offline, 1, true) })
		if err := e.b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := e.sink.of(termA, posfleet.ChannelStatus); len(got) != 0 {
			t.Errorf("sink got %q", got)
		}
	})
}

func TestPersistentSession(t *testing.T) {
	dir := t.TempDir()
	e := start(t, func(o *broker.Options) { o.DataDir = dir })
	cmdTopic := posfleet.Topic(termA, posfleet.ChannelCommand)
	fwTopic := posfleet.Topic(termA, posfleet.ChannelFirmware)
	const fw = `{"seq":1,"ts":"2025-01-02T03:04:05Z","model":"A920","firmware":"2.4.1"}`

	// The terminal subscribes with a persistent session, reports its
	// firmware, and goes away cleanly.
	received := make(chan string, 10)
	persistentClient := func(t *testing.T) paho.Client {
		return e.client(t, termA, func(o *paho.ClientOptions) {
			o.SetCleanSession(false)
			o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
				if m.Topic() == cmdTopic {
					received <- string(m.Payload())
				}
			})
		})
	}
	c := persistentClient(t)
	if tok := c.Subscribe(cmdTopic, 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	// A refused subscription must not come back as a granted one after the restart.
	if tok := c.Subscribe(posfleet.Topic(termB, posfleet.ChannelCommand), 1, nil); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("no SUBACK")
	}
	publish(t, c, fwTopic, 1, fw)
	c.Disconnect(100)
	eventually(t, 2*time.Second, "disconnect", func() bool { return e.b.Connected() == 0 })

	// A command queued while it is offline, then a restart.
	ctx := context.Background()
	if err := e.b.SendCommand(ctx, termA, posfleet.Command{ID: "before-restart", Type: posfleet.CmdReboot}); err != nil {
		t.Fatalf("SendCommand while offline: %v", err)
	}
	restart := func(t *testing.T) {
		if err := e.b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		e.startWith(t, func() broker.Options { o := testOptions(); o.DataDir = dir; return o }())
	}
	restart(t)

	if p, ok := e.b.Retained(fwTopic); ok {
		t.Errorf("fw retained as %q after restart; the broker retains nothing", p)
	}
	if err := e.b.SendCommand(ctx, termB, posfleet.Command{ID: "x", Type: posfleet.CmdReboot}); !errors.Is(err, broker.ErrNoSession) {
		t.Errorf("SendCommand to terminal B after restart = %v, want ErrNoSession (a refused subscription was restored)", err)
	}
	// The restored session takes a command while the terminal is still away.
	if err := e.b.SendCommand(ctx, termA, posfleet.Command{ID: "after-restart", Type: posfleet.CmdReboot}); err != nil {
		t.Fatalf("SendCommand after restart: %v", err)
	}

	c = persistentClient(t)
	var ids []string
	for len(ids) < 2 {
		select {
		case p := <-received:
			var cmd posfleet.Command
			if err := json.Unmarshal([]byte(p), &cmd); err != nil {
				t.Fatalf("command %q: %v", p, err)
			}
			ids = append(ids, cmd.ID)
		case <-time.After(5 * time.Second):
			t.Fatalf("got commands %v, want before-restart and after-restart", ids)
		}
	}
	// mochi resends a session's queued messages from a map: the order of
	// queued commands is not kept, so each command stands alone (its own id).
	slices.Sort(ids)
	if strings.Join(ids, ",") != "after-restart,before-restart" {
		t.Errorf("commands = %v", ids)
	}
	// Acknowledged commands are gone from the store: a further restart
	// delivers nothing again.
	time.Sleep(100 * time.Millisecond) // let the PUBACKs arrive
	c.Disconnect(100)
	eventually(t, 2*time.Second, "disconnect", func() bool { return e.b.Connected() == 0 })
	restart(t)
	persistentClient(t)
	select {
	case p := <-received:
		t.Errorf("command delivered twice: %s", p)
	case <-time.After(300 * time.Millisecond):
	}
	if err := e.b.SendCommand(ctx, termA, posfleet.Command{ID: "third", Type: posfleet.CmdReboot}); err != nil {
		t.Fatalf("SendCommand to the restored, reconnected session: %v", err)
	}
	select {
	case <-received:
	case <-time.After(5 * time.Second):
		t.Fatal("command not delivered to the reconnected session")
	}

	t.Run("second broker on the same data dir fails", func(t *testing.T) {
		o := testOptions()
		o.DataDir = dir
		b, err := broker.New(o, e.auth, e.sink, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Start(ctx); err == nil || !strings.Contains(err.Error(), "broker.db") {
			t.Errorf("Start = %v, want an error naming broker.db", err)
		}
	})
}

func TestCleanSessionNotQueued(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, termA, nil)
	if tok := c.Subscribe(posfleet.Topic(termA, posfleet.ChannelCommand), 1, nil); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("no SUBACK")
	}
	c.Disconnect(100)
	eventually(t, 2*time.Second, "disconnect", func() bool { return e.b.Connected() == 0 })
	err := e.b.SendCommand(context.Background(), termA, posfleet.Command{ID: "c", Type: posfleet.CmdReboot})
	if !errors.Is(err, broker.ErrNoSession) {
		t.Errorf("SendCommand after a clean session ended = %v, want ErrNoSession", err)
	}
}

func TestRateLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := start(t, func(o *broker.Options) {
		o.RatePerSecond = 20
		o.RateBurst = 10
		o.Metrics = reg
	})
	fast := e.client(t, termA, nil)
	calm := e.client(t, termB, nil)

	const n = 30 // 10 in the burst, then 20 at 20/s: about a second
	var wg sync.WaitGroup
	var fastTook time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		began := time.Now()
		for i := 1; i <= n; i++ {
			tok := fast.Publish(posfleet.Topic(termA, posfleet.ChannelTxn), 1, false, hb(i))
			tok.WaitTimeout(5 * time.Second)
		}
		fastTook = time.Since(began)
	}()
	eventually(t, 5*time.Second, "terminal A slowed", func() bool {
		return counter(t, reg, "posfleet_broker_rate_limited_total", nil) > 0
	})
	// Terminal B stays within its own burst while A waits for tokens; had it
	// to wait for A's bucket, 8 publishes would take 400 ms.
	began := time.Now()
	for i := 1; i <= 8; i++ {
		publish(t, calm, posfleet.Topic(termB, posfleet.ChannelHeartbeat), 1, hb(i))
	}
	if took := time.Since(began); took > 300*time.Millisecond {
		t.Errorf("terminal B took %v for 8 publishes while A was slowed", took)
	}
	wg.Wait()
	if fastTook < 900*time.Millisecond {
		t.Errorf("terminal A published %d messages in %v, want at least 1 s at 20/s", n, fastTook)
	}
	got := e.sink.of(termA, posfleet.ChannelTxn)
	if len(got) != n {
		t.Fatalf("sink has %d of %d messages", len(got), n)
	}
	for i, p := range got {
		if p != hb(i+1) {
			t.Fatalf("message %d = %s, out of order or lost", i, p)
		}
	}
	if !fast.IsConnected() {
		t.Error("rate-limited terminal disconnected")
	}
}

func TestPacketSize(t *testing.T) {
	e := start(t, nil)
	lost := make(chan struct{}, 1)
	c := e.client(t, termA, func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { lost <- struct{}{} })
	})
	topic := posfleet.Topic(termA, posfleet.ChannelTxn)

	big := `{"seq":1,"pad":"` + strings.Repeat("x", 20<<10) + `"}`
	publish(t, c, topic, 1, big)
	if got := e.sink.of(termA, posfleet.ChannelTxn); len(got) != 1 || len(got[0]) != len(big) {
		t.Fatalf("20 KiB payload did not reach the sink whole")
	}
	publish(t, c, topic, 1, `{"seq":2}`)

	huge := strings.Repeat("x", 70<<10) // over the 64 KiB packet limit
	c.Publish(topic, 1, false, huge)
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("client sending a packet over MaxPacketBytes not disconnected")
	}
	if n := len(e.sink.of(termA, posfleet.ChannelTxn)); n != 2 {
		t.Errorf("sink has %d messages, want 2", n)
	}
}

func TestConnectTimeout(t *testing.T) {
	e := start(t, func(o *broker.Options) { o.ConnectTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	began := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a connection that sent no CONNECT")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("broker kept a silent connection open")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("closed after %v", took)
	}
}

func TestLifecycle(t *testing.T) {
	b, err := broker.New(testOptions(), newFakeAuth(), &recSink{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Healthy(); err == nil {
		t.Error("healthy before Start")
	}
	if b.TCPAddr() != nil || b.TLSAddr() != nil || b.Connected() != 0 {
		t.Error("addresses or connections before Start")
	}
	ctx := context.Background()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Healthy(); err != nil {
		t.Errorf("Healthy after Start: %v", err)
	}
	if err := b.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	for i := 0; i < 2; i++ {
		if err := b.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if err := b.Healthy(); err == nil {
		t.Error("healthy after Close")
	}
	if err := b.SendCommand(ctx, termA, posfleet.Command{ID: "x", Type: posfleet.CmdReboot}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("SendCommand after Close = %v, want ErrClosed", err)
	}

	t.Run("close without start", func(t *testing.T) {
		b, err := broker.New(testOptions(), newFakeAuth(), &recSink{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})

	t.Run("bad options", func(t *testing.T) {
		tests := []struct {
			name string
			mod  func(*broker.Options)
		}{
			{"cert without key", func(o *broker.Options) { o.CertFile = "x.pem" }},
			{"tiny packets", func(o *broker.Options) { o.MaxPacketBytes = 10 }},
			{"negative burst", func(o *broker.Options) { o.RateBurst = -1 }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				o := testOptions()
				tt.mod(&o)
				if _, err := broker.New(o, newFakeAuth(), &recSink{}, nil); err == nil {
					t.Error("New accepted bad options")
				}
			})
		}
		if _, err := broker.New(testOptions(), nil, &recSink{}, nil); err == nil {
			t.Error("New accepted a nil Authenticator")
		}
	})

	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		o := testOptions()
		o.TCPAddr = ln.Addr().String()
		b, err := broker.New(o, newFakeAuth(), &recSink{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(ctx); err == nil {
			b.Close()
			t.Error("Start on a used address succeeded")
		}
	})
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	e := start(t, func(o *broker.Options) {
		o.CertFile, o.KeyFile = certFile, keyFile
		o.TLSAddr = "127.0.0.1:0"
	})
	if e.b.TLSAddr() == nil {
		t.Fatal("no TLS listener")
	}
	tlsAddr := e.b.TLSAddr().String()
	c := e.client(t, termA, func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("ssl://" + tlsAddr)
		o.SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	})
	publish(t, c, posfleet.Topic(termA, posfleet.ChannelHeartbeat), 1, hb(1))
	if len(e.sink.all()) != 1 {
		t.Error("message over TLS not in sink")
	}
	if err := e.b.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}

	t.Run("unreadable certificate", func(t *testing.T) {
		o := testOptions()
		o.CertFile, o.KeyFile = filepath.Join(dir, "missing.pem"), keyFile
		_, err := broker.New(o, newFakeAuth(), &recSink{}, nil)
		if err == nil || !strings.Contains(err.Error(), "missing.pem") || !strings.Contains(err.Error(), keyFile) {
			t.Errorf("New = %v, want an error naming both files", err)
		}
	})
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := start(t, func(o *broker.Options) { o.Metrics = reg })
	e.sink.set(0, func(_ posfleet.TerminalRef, _ posfleet.Channel, p []byte) error {
		if string(p) == "bad" {
			return &posfleet.Rejection{Reason: posfleet.ReasonNotJSON}
		}
		return nil
	})
	c := e.client(t, termA, nil)
	_, _ = e.dial(t, termB.String(), termB.String(), "wrong", nil)
	publish(t, c, posfleet.Topic(termA, posfleet.ChannelHeartbeat), 1, hb(1))
	publish(t, c, posfleet.Topic(termA, posfleet.ChannelHeartbeat), 1, "bad")
	publish(t, c, posfleet.Topic(termB, posfleet.ChannelHeartbeat), 1, hb(2))
	c.Subscribe(posfleet.Topic(termB, posfleet.ChannelCommand), 1, nil).WaitTimeout(5 * time.Second)

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"posfleet_broker_connections", nil, 1},
		{"posfleet_broker_connects_total", nil, 1},
		{"posfleet_broker_auth_failures_total", nil, 1},
		{"posfleet_broker_publishes_total", map[string]string{"result": "accepted"}, 1},
		{"posfleet_broker_publishes_total", map[string]string{"result": "rejected"}, 1},
		{"posfleet_broker_publishes_total", map[string]string{"result": "denied"}, 1},
		{"posfleet_broker_acl_denials_total", map[string]string{"kind": "publish"}, 1},
		{"posfleet_broker_acl_denials_total", map[string]string{"kind": "subscribe"}, 1},
		{"posfleet_broker_acl_denials_total", map[string]string{"kind": "will"}, 0},
		{"posfleet_broker_rate_limited_total", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := counter(t, reg, tt.name, tt.labels); got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
			}
		})
	}
	if _, err := broker.New(func() broker.Options { o := testOptions(); o.Metrics = reg; return o }(), newFakeAuth(), &recSink{}, nil); err == nil {
		t.Error("a second broker registered on the same registry")
	}
}

// counter returns the value of a counter or gauge with the given labels.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metric
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

// selfSigned writes a certificate for localhost and 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "posfleet test"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestStoreWritesOnlyChanges checks that reconnecting terminals whose session
// did not change, and their uplink traffic, cost no write to the store: a
// fleet reconnecting after a restart must not queue behind an fsync each.
func TestStoreWritesOnlyChanges(t *testing.T) {
	dir := t.TempDir()
	e := start(t, func(o *broker.Options) { o.DataDir = dir })
	session := func(t *testing.T) {
		c := e.client(t, termA, func(o *paho.ClientOptions) { o.SetCleanSession(false) })
		if tok := c.Subscribe(posfleet.Topic(termA, posfleet.ChannelCommand), 1, nil); !tok.WaitTimeout(5 * time.Second) {
			t.Fatal("no SUBACK")
		}
		publish(t, c, posfleet.Topic(termA, posfleet.ChannelStatus), 1, `{"online":true}`)
		for i := 1; i <= 10; i++ {
			publish(t, c, posfleet.Topic(termA, posfleet.ChannelTxn), 1, hb(i))
		}
		c.Disconnect(100)
		eventually(t, 2*time.Second, "disconnect", func() bool { return e.b.Connected() == 0 })
	}
	session(t)
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	before := lastTxID(t, dir)
	e.startWith(t, func() broker.Options { o := testOptions(); o.DataDir = dir; return o }())
	for i := 0; i < 5; i++ {
		session(t)
	}
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	// Opening the file is one write transaction (mochi creates its bucket).
	if writes := lastTxID(t, dir) - before; writes > 1 {
		t.Errorf("%d write transactions for 5 unchanged sessions with 55 publishes, want at most 1", writes)
	}
}

func lastTxID(t *testing.T, dir string) int {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "broker.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int
	_ = db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil })
	return id
}

// A fleet connecting at once with persistent sessions (the first start of a
// fleet, or a restart with a new data directory) shares write transactions:
// each new session and its subscription used to cost a bbolt transaction
// and an fsync of its own, all behind the store's lock, so connections piled
// up while the disk synced one session at a time.
func TestNewSessionsShareCommits(t *testing.T) {
	dir := t.TempDir()
	e := start(t, func(o *broker.Options) { o.DataDir = dir })
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	before := lastTxID(t, dir)
	e.startWith(t, func() broker.Options { o := testOptions(); o.DataDir = dir; return o }())

	const n = 100
	refs := make([]posfleet.TerminalRef, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range refs {
		refs[i] = posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%03d", i)}
		e.auth.secrets[refs[i].String()] = secretOf(refs[i])
	}
	for i := range refs {
		wg.Add(1)
		go func(ref posfleet.TerminalRef) {
			defer wg.Done()
			c, err := e.dial(t, ref.String(), ref.String(), secretOf(ref), func(o *paho.ClientOptions) { o.SetCleanSession(false) })
			if err != nil {
				errs <- err
				return
			}
			if tok := c.Subscribe(posfleet.Topic(ref, posfleet.ChannelCommand), 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				errs <- fmt.Errorf("subscribe %s: %v", ref, tok.Error())
				return
			}
			c.Disconnect(100)
		}(refs[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "disconnects", func() bool { return e.b.Connected() == 0 })
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	writes := lastTxID(t, dir) - before
	t.Logf("%d write transactions for %d new sessions with a subscription each", writes, n)
	// One transaction each was 2n (plus one at start-up).
	if writes > n {
		t.Errorf("%d write transactions for %d new sessions with a subscription each, want at most %d (shared)", writes, n, n)
	}

	// Every session and subscription was written: each comes back after a restart.
	e.startWith(t, func() broker.Options { o := testOptions(); o.DataDir = dir; return o }())
	for _, ref := range refs {
		if err := e.b.SendCommand(context.Background(), ref, posfleet.Command{ID: "c-" + ref.Terminal, Type: posfleet.CmdReboot}); err != nil {
			t.Errorf("SendCommand to %s after restart: %v (session or subscription not stored)", ref, err)
		}
	}
}
