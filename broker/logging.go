package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
)

// redactPackets wraps the handler of the broker's and mochi's loggers so that
// packets and wills appear as a summary without payload: a payload is
// whatever a terminal sent, and a rejected one may hold card data that must
// never reach a log. Every other value from outside (a topic, a username, a
// client ID, an error quoting one) passes posfleet.Redact: an attribute that
// holds card data is logged as posfleet.RedactedMarker.
//
// It also demotes mochi's "publish packet error" to debug: mochi logs at
// error level every publish a hook refuses with a reason code, which for
// posfleet are expected, counted events (ACL denials and rejections of
// MQTT 5 terminals), not faults of the server. Likewise "error processing
// packet" when the cause is the peer's connection going away (reset, broken
// pipe, EOF): terminals on cellular links drop all the time, and the last
// will already tells the server.
func redactPackets(h slog.Handler) slog.Handler { return redactor{h} }

type redactor struct{ h slog.Handler }

func (r redactor) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactor) Handle(ctx context.Context, rec slog.Record) error {
	level := rec.Level
	if rec.Message == "publish packet error" || (rec.Message == "error processing packet" && peerGone(rec)) {
		level = slog.LevelDebug
		if !r.h.Enabled(ctx, level) {
			return nil
		}
	}
	out := slog.NewRecord(rec.Time, level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactor) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(a)
	}
	return redactor{r.h.WithAttrs(red)}
}

func (r redactor) WithGroup(name string) slog.Handler { return redactor{r.h.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindGroup:
		g := a.Value.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = redactAttr(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindString:
		return slog.String(a.Key, posfleet.Redact(a.Value.String()))
	case slog.KindAny, slog.KindLogValuer:
	default:
		return a
	}
	switch v := a.Value.Resolve().Any().(type) {
	case packets.Packet:
		return slog.String(a.Key, summary(&v))
	case *packets.Packet:
		if v == nil {
			return a
		}
		return slog.String(a.Key, summary(v))
	case mqtt.Will:
		return slog.String(a.Key, fmt.Sprintf("will topic=%q qos=%d retain=%t payload_bytes=%d", posfleet.Redact(v.TopicName), v.Qos, v.Retain, len(v.Payload)))
	case error:
		if posfleet.ContainsCardData(v.Error()) {
			return slog.String(a.Key, posfleet.RedactedMarker)
		}
	case fmt.Stringer:
		if posfleet.ContainsCardData(v.String()) {
			return slog.String(a.Key, posfleet.RedactedMarker)
		}
	case string:
		return slog.String(a.Key, posfleet.Redact(v))
	}
	return a
}

func summary(pk *packets.Packet) string {
	return fmt.Sprintf("type=%d topic=%q qos=%d retain=%t id=%d payload_bytes=%d",
		pk.FixedHeader.Type, posfleet.Redact(pk.TopicName), pk.FixedHeader.Qos, pk.FixedHeader.Retain, pk.PacketID, len(pk.Payload))
}

// peerGone reports whether a record's error says the client's connection went away.
func peerGone(rec slog.Record) bool {
	gone := false
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key != "error" {
			return true
		}
		var msg string
		if err, ok := a.Value.Any().(error); ok {
			msg = err.Error()
		} else {
			msg = a.Value.String()
		}
		gone = errors.Is(asError(a.Value.Any()), io.EOF) || errors.Is(asError(a.Value.Any()), net.ErrClosed) ||
			strings.Contains(msg, "connection reset by peer") || strings.Contains(msg, "broken pipe") || strings.Contains(msg, "i/o timeout")
		return false
	})
	return gone
}

func asError(v any) error {
	err, _ := v.(error)
	return err
}
