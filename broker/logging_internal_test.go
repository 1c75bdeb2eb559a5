package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
)

// TestDroppedConnectionsAreNotWarnings: a terminal's link going away is
// routine on cellular networks; a real packet error still is a warning.
func TestDroppedConnectionsAreNotWarnings(t *testing.T) {
	cases := []struct {
		err  error
		warn bool
	}{
		{errors.New("write tcp 127.0.0.1:1883->127.0.0.1:4000: write: connection reset by peer"), false},
		{errors.New("write: broken pipe"), false},
		{io.EOF, false},
		{errors.New("malformed packet: protocol violation"), true},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		log := slog.New(redactPackets(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
		rec := slog.NewRecord(time.Now(), slog.LevelWarn, "error processing packet", 0)
		rec.AddAttrs(slog.Any("error", c.err))
		log.Handler().Handle(context.Background(), rec)
		if got := strings.Contains(buf.String(), "level=WARN"); got != c.warn {
			t.Errorf("%v: logged as warning = %v, want %v (%q)", c.err, got, c.warn, buf.String())
		}
	}
}

// TestLogsWithholdCardData: a topic, username or client ID holding a card
// number reaches no log line, whether the broker or mochi logs it, as a
// string, an error or inside a packet summary.
func TestLogsWithholdCardData(t *testing.T) {
	pan := "4" + strings.Repeat("1", 14)
	for d := '0'; d <= '9'; d++ { // complete it to pass Luhn
		if posfleet.ContainsCardData(pan + string(d)) {
			pan += string(d)
			break
		}
	}
	dotted := pan[:4] + "." + pan[4:8] + "." + pan[8:12] + "." + pan[12:]
	var buf bytes.Buffer
	log := slog.New(redactPackets(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	pk := packets.Packet{TopicName: "fleet/v1/acme/t2/" + pan + "/#"}
	log.Warn("error processing packet", "error", errors.New("protocol violation: topic contains wildcards"), "client", "acme:"+dotted, "pk", pk)
	log.Warn("cannot authenticate terminal now", "terminal", "acme:"+pan, "err", fmt.Errorf("registry: %s: unavailable", pan))
	log.With("topic", "fleet/v1/acme/t2/"+dotted).Info("x", slog.Group("g", "username", "acme:"+pan))
	log.Info("will", "will", mqtt.Will{TopicName: "fleet/v1/acme/" + pan + "/status"})
	out := buf.String()
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, out)
	if strings.Contains(digits, pan) {
		t.Errorf("card digits found in the log")
	}
	if n := strings.Count(out, posfleet.RedactedMarker); n < 6 {
		t.Errorf("%d values withheld, want 6 at least", n)
	}
}
