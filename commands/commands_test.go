package commands_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/commands"
)

func ack(ref posfleet.TerminalRef, id, status string, at time.Time) *posfleet.Message {
	return &posfleet.Message{Terminal: ref, Channel: posfleet.ChannelAck, Ack: &posfleet.Ack{Header: posfleet.Header{Seq: 1, TS: at}, CmdID: id, Status: status}}
}

func TestTracker(t *testing.T) {
	tr := commands.New()
	a := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	b := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-2"}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tr.Sent(a, posfleet.Command{ID: "c1", Type: posfleet.CmdReboot}, "ops", now)
	tr.Sent(a, posfleet.Command{ID: "c2", Type: posfleet.CmdUpdateFirmware, Target: "2.5.1"}, "ops", now.Add(time.Minute))
	tr.Observe(ack(a, "c2", posfleet.AckAccepted, now.Add(2*time.Minute)))
	tr.Observe(ack(a, "c2", posfleet.AckDone, now.Add(3*time.Minute)))
	tr.Observe(ack(b, "c1", posfleet.AckDone, now)) // another terminal's ack of the same id
	tr.Observe(ack(a, "unknown", posfleet.AckDone, now))
	got := tr.List(a)
	if len(got) != 2 || got[0].Command.ID != "c2" || got[0].Status != posfleet.AckDone || len(got[0].Acks) != 2 || got[1].Status != "" {
		t.Fatalf("List = %+v", got)
	}
	if len(tr.List(b)) != 0 {
		t.Error("terminal b has commands")
	}
	for i := range commands.PerTerminal + 5 {
		tr.Sent(b, posfleet.Command{ID: fmt.Sprint(i), Type: posfleet.CmdReboot}, "ops", now)
	}
	if l := tr.List(b); len(l) != commands.PerTerminal || l[0].Command.ID != fmt.Sprint(commands.PerTerminal+4) {
		t.Errorf("bounded list: %d, newest %s", len(l), l[0].Command.ID)
	}
}

// stuckStore is a Store whose writes hang until release closes.
type stuckStore struct{ release chan struct{} }

func (s stuckStore) AddCommand(ctx context.Context, _ posfleet.TerminalRef, _ commands.Record) error {
	return nil
}

func (s stuckStore) RemoveCommand(context.Context, posfleet.TerminalRef, string) error {
	return nil
}

func (s stuckStore) AddAcks(ctx context.Context, acks []commands.TerminalAck) ([]commands.TerminalAck, error) {
	<-s.release
	return nil, nil
}

func (s stuckStore) Commands(context.Context, posfleet.TerminalRef, int) ([]commands.Record, error) {
	return nil, nil
}

// TestObserveNeverBlocks: Observe is on every message's path. It allocates
// nothing for a message that is not an ack, and with the store stalled,
// acks beyond the queue are dropped rather than waited for.
func TestObserveNeverBlocks(t *testing.T) {
	st := stuckStore{release: make(chan struct{})}
	tr := commands.NewStored(st, nil)
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	hb := &posfleet.Message{Terminal: ref, Channel: posfleet.ChannelHeartbeat, Heartbeat: &posfleet.Heartbeat{}}
	if n := testing.AllocsPerRun(1000, func() { tr.Observe(hb) }); n != 0 {
		t.Errorf("Observe of a heartbeat allocates %v times", n)
	}
	done := make(chan struct{})
	go func() {
		for i := range 20_000 {
			tr.Observe(ack(ref, fmt.Sprint(i), posfleet.AckDone, time.Now()))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Observe blocked on a stalled store")
	}
	close(st.release)
	tr.Close()
}

// TestTrackerInMemoryKeepsTheLatestStatus: the in-memory Tracker takes a
// command's status from its latest ack by the terminal's time, as the
// journal does: not from an older ack arriving late, and not from
// "accepted" after "done" of the same second (it took the last to arrive).
func TestTrackerInMemoryKeepsTheLatestStatus(t *testing.T) {
	tr := commands.New()
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-1"}
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tr.Sent(ref, posfleet.Command{ID: "c1", Type: posfleet.CmdReboot}, "ops", at)
	tr.Observe(ack(ref, "c1", posfleet.AckDone, at.Add(2*time.Second)))
	tr.Observe(ack(ref, "c1", posfleet.AckAccepted, at.Add(2*time.Second)))
	if l := tr.List(ref); l[0].Status != posfleet.AckDone {
		t.Errorf("accepted after done of the same second: %q", l[0].Status)
	}
	tr.Observe(ack(ref, "c1", posfleet.AckAccepted, at.Add(time.Second)))
	if l := tr.List(ref); l[0].Status != posfleet.AckDone || len(l[0].Acks) != 3 {
		t.Errorf("an older ack arriving late: %q, %d acks", l[0].Status, len(l[0].Acks))
	}
}

// TestSupersedes: the status rule of both stores.
func TestSupersedes(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		status string
		at     time.Time
		cur    string
		curAt  time.Time
		want   bool
	}{
		{posfleet.AckAccepted, t0, "", time.Time{}, true},
		{posfleet.AckAccepted, t0, posfleet.AckDone, t0, false},
		{posfleet.AckDone, t0, posfleet.AckAccepted, t0, true},
		{posfleet.AckFailed, t0, posfleet.AckDone, t0, true},
		{posfleet.AckAccepted, t0, posfleet.AckAccepted, t0, true},
		{posfleet.AckAccepted, t0.Add(time.Millisecond), posfleet.AckDone, t0, true},
		{posfleet.AckDone, t0.Add(-time.Millisecond), posfleet.AckAccepted, t0, false},
		{posfleet.AckDone, t0.Add(500 * time.Microsecond), posfleet.AckFailed, t0, true}, // same millisecond
	} {
		if got := commands.Supersedes(c.status, c.at, c.cur, c.curAt); got != c.want {
			t.Errorf("Supersedes(%s at %v over %q at %v) = %v", c.status, c.at.Sub(t0), c.cur, c.curAt.Sub(t0), got)
		}
	}
}
