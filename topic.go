package posfleet

import (
	"errors"
	"strings"
)

// TopicRoot is the first level of every posfleet topic; the version in it
// changes only with an incompatible protocol.
const TopicRoot = "fleet/v1"

// Channel is the last level of a terminal's topic: what kind of message it carries.
type Channel string

// The channels of PROTOCOL.md §1.
const (
	ChannelHeartbeat Channel = "hb"
	ChannelFault     Channel = "fault"
	ChannelFirmware  Channel = "fw"
	ChannelTxn       Channel = "txn"
	ChannelStatus    Channel = "status"
	ChannelAck       Channel = "ack"
	ChannelCommand   Channel = "cmd" // downlink only
)

// UplinkChannels are the channels a terminal may publish on.
var UplinkChannels = []Channel{ChannelHeartbeat, ChannelFault, ChannelFirmware, ChannelTxn, ChannelStatus, ChannelAck}

// Uplink reports whether terminals publish on c.
func (c Channel) Uplink() bool {
	switch c {
	case ChannelHeartbeat, ChannelFault, ChannelFirmware, ChannelTxn, ChannelStatus, ChannelAck:
		return true
	}
	return false
}

// ErrNotFleetTopic is returned by ParseTopic for a topic outside fleet/v1/{tenant}/{terminal}/{channel}.
var ErrNotFleetTopic = errors.New("not a fleet/v1/{tenant}/{terminal}/{channel} topic")

// Topic returns the topic of a terminal's channel.
func Topic(r TerminalRef, c Channel) string {
	return TopicRoot + "/" + r.Tenant + "/" + r.Terminal + "/" + string(c)
}

// ParseTopic splits a topic into the terminal it belongs to and its channel.
// The channel is returned as found, known or not: an unknown channel is a
// rejection reason of its own (see Decode), not a malformed topic. An
// unknown channel holding card data is returned as RedactedMarker: it is
// stored and shown with the rejection.
func ParseTopic(topic string) (TerminalRef, Channel, error) {
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/")
	if !ok {
		return TerminalRef{}, "", ErrNotFleetTopic
	}
	tenant, rest, ok1 := strings.Cut(rest, "/")
	terminal, ch, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || strings.Contains(ch, "/") || ch == "" {
		return TerminalRef{}, "", ErrNotFleetTopic
	}
	r := TerminalRef{Tenant: tenant, Terminal: terminal}
	if r.Validate() != nil {
		return TerminalRef{}, "", ErrNotFleetTopic
	}
	c := Channel(ch)
	if !c.Uplink() && c != ChannelCommand {
		c = Channel(Redact(ch))
	}
	return r, c, nil
}
