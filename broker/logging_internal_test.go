package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
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
