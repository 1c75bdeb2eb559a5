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
