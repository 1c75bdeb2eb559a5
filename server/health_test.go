package server

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/posfleet/posfleet"
)

type observed []int64

func (o *observed) Observe(m *posfleet.Message) { *o = append(*o, m.Header().Seq) }

// TestHealthSinkDropsRedeliveries: the health role's sink hands each
// message to the engine once: a QoS 1 redelivery or a retained replay
// (same seq, same ts) is dropped, a terminal that starts its seqs again
// (later ts) is not.
func TestHealthSinkDropsRedeliveries(t *testing.T) {
	var got observed
	sink := newHealthSink(&got)
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	hb := func(seq int, ts string) []byte {
		return []byte(`{"seq":` + strconv.Itoa(seq) + `,"ts":"` + ts + `","uptime_s":5,"battery_pct":80}`)
	}
	for _, m := range []struct {
		seq int
		ts  string
	}{
		{1, "2026-03-02T08:00:00Z"},
		{2, "2026-03-02T08:01:00Z"},
		{1, "2026-03-02T08:00:00Z"}, // redelivered
		{2, "2026-03-02T08:01:00Z"}, // redelivered
		{3, "2026-03-02T08:02:00Z"},
		{1, "2026-03-02T09:00:00Z"}, // seqs start again after a reset
	} {
		if err := sink.Accept(context.Background(), ref, posfleet.ChannelHeartbeat, hb(m.seq, m.ts)); err != nil {
			t.Fatal(err)
		}
	}
	if want := []int64{1, 2, 3, 1}; len(got) != len(want) || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 1 {
		t.Fatalf("observed seqs %v, want %v", got, want)
	}
	var rej *posfleet.Rejection
	if err := sink.Accept(context.Background(), ref, posfleet.ChannelHeartbeat, []byte(`{`)); err == nil || !errors.As(err, &rej) {
		t.Fatalf("bad JSON: %v, want a rejection", err)
	}
}
