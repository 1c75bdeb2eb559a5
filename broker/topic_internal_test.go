package broker

import (
	"testing"

	"github.com/posfleet/posfleet"
)

func TestIsTopic(t *testing.T) {
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0001"}
	other := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0002"}
	for _, ch := range []posfleet.Channel{posfleet.ChannelCommand, posfleet.ChannelStatus} {
		if !isTopic(posfleet.Topic(ref, ch), ref, ch) {
			t.Errorf("%s: not its own topic", posfleet.Topic(ref, ch))
		}
		for _, topic := range []string{
			posfleet.Topic(other, ch),
			posfleet.Topic(ref, ch) + "/x",
			posfleet.Topic(ref, ch)[1:],
			posfleet.TopicRoot + "/acme/T-0001",
			posfleet.TopicRoot + "/acme/T-0001/",
			posfleet.TopicRoot + "/acme/T-00011/" + string(ch),
			posfleet.TopicRoot + "/acme/+/" + string(ch),
			posfleet.TopicRoot + "/acme/#",
			"",
		} {
			if isTopic(topic, ref, ch) {
				t.Errorf("%q taken for %s", topic, posfleet.Topic(ref, ch))
			}
		}
	}
	if isTopic(posfleet.Topic(ref, posfleet.ChannelCommand), ref, posfleet.ChannelStatus) {
		t.Error("cmd taken for status")
	}
}

// TestUplinkOf: the fast path of a publish's topic takes exactly the
// terminal's own uplink topics, as posfleet.ParseTopic with the session's
// ref would, and returns the package's constants.
func TestUplinkOf(t *testing.T) {
	ref := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0001"}
	other := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-0002"}
	for _, ch := range posfleet.UplinkChannels {
		got, ok := uplinkOf(posfleet.Topic(ref, ch), ref)
		if !ok || got != ch {
			t.Errorf("%s: got %q %v", posfleet.Topic(ref, ch), got, ok)
		}
		for _, topic := range []string{
			posfleet.Topic(other, ch),
			posfleet.Topic(ref, ch) + "/x",
			posfleet.Topic(ref, ch)[1:],
			posfleet.TopicRoot + "/acme/T-00011/" + string(ch),
			posfleet.TopicRoot + "/acme/+/" + string(ch),
			posfleet.TopicRoot + "/acme/T-0001/",
			"",
		} {
			if _, ok := uplinkOf(topic, ref); ok {
				t.Errorf("%q taken for %s", topic, posfleet.Topic(ref, ch))
			}
		}
	}
	for _, topic := range []string{posfleet.Topic(ref, posfleet.ChannelCommand), posfleet.TopicRoot + "/acme/T-0001/unknown"} {
		if _, ok := uplinkOf(topic, ref); ok {
			t.Errorf("%q taken for an uplink topic", topic)
		}
	}
}
