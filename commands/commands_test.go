package commands_test

import (
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
