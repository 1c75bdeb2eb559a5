package firmwareclient

import (
	"sync/atomic"

	"github.com/posfleet/posfleet"
)

// ChannelCounts holds one counter per uplink channel with a seq.
type ChannelCounts struct {
	Heartbeat, Fault, Firmware, Txn, Ack uint64
}

// Get returns the count of channel ch (0 for status and unknown channels).
func (cc ChannelCounts) Get(ch posfleet.Channel) uint64 {
	switch ch {
	case posfleet.ChannelHeartbeat:
		return cc.Heartbeat
	case posfleet.ChannelFault:
		return cc.Fault
	case posfleet.ChannelFirmware:
		return cc.Firmware
	case posfleet.ChannelTxn:
		return cc.Txn
	case posfleet.ChannelAck:
		return cc.Ack
	}
	return 0
}

// Total returns the sum over all channels.
func (cc ChannelCounts) Total() uint64 {
	return cc.Heartbeat + cc.Fault + cc.Firmware + cc.Txn + cc.Ack
}

// Add adds o to cc, for summing a fleet.
func (cc *ChannelCounts) Add(o ChannelCounts) {
	cc.Heartbeat += o.Heartbeat
	cc.Fault += o.Fault
	cc.Firmware += o.Firmware
	cc.Txn += o.Txn
	cc.Ack += o.Ack
}

func countsOf(a *[5]atomic.Uint64) ChannelCounts {
	// Index order is channelCodes'.
	return ChannelCounts{
		Heartbeat: a[0].Load(), Fault: a[1].Load(), Firmware: a[2].Load(), Txn: a[3].Load(), Ack: a[4].Load(),
	}
}

// Stats is a snapshot of a client's counters since New.
type Stats struct {
	// Connected is whether the client is connected now.
	Connected bool
	// Connects counts successful connections, ConnectFailures failed
	// attempts, Lost connections that broke.
	Connects, ConnectFailures, Lost uint64
	// Reported counts messages accepted into the outbox, Acked those the
	// broker acknowledged (and that left the outbox), Dropped those given
	// up because the outbox was full.
	Reported, Acked, Dropped ChannelCounts
	// Refused counts reports refused because the server would reject them
	// (posfleet.Decode), for example a field out of range or card data.
	Refused uint64
	// StatusSent counts status messages published.
	StatusSent uint64
	// Commands counts commands received, CommandsRefused those dropped
	// because too many were waiting.
	Commands, CommandsRefused uint64
	// Backlog and BacklogBytes are what waits in the outbox now.
	Backlog      int
	BacklogBytes int64
	// LastError is the latest connection or storage error, "" if none.
	LastError string
}

// counters are the live counters behind Stats.
type counters struct {
	connects, connectFailures, lost atomic.Uint64
	reported, acked, dropped        [5]atomic.Uint64
	refused, statusSent             atomic.Uint64
	commands, commandsRefused       atomic.Uint64
	lastErr                         atomic.Pointer[string]
}

func (s *counters) setErr(err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	s.lastErr.Store(&msg)
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	n, b := c.box.backlog()
	s := Stats{
		Connected:       c.connected.Load(),
		Connects:        c.st.connects.Load(),
		ConnectFailures: c.st.connectFailures.Load(),
		Lost:            c.st.lost.Load(),
		Reported:        countsOf(&c.st.reported),
		Acked:           countsOf(&c.st.acked),
		Dropped:         countsOf(&c.st.dropped),
		Refused:         c.st.refused.Load(),
		StatusSent:      c.st.statusSent.Load(),
		Commands:        c.st.commands.Load(),
		CommandsRefused: c.st.commandsRefused.Load(),
		Backlog:         n,
		BacklogBytes:    b,
	}
	if p := c.st.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}
