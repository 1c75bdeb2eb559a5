package posfleet

// The per-terminal access rule of PROTOCOL.md §1, in one place, so that the
// embedded broker, the HTTP authorization endpoint for external brokers and
// the generated Mosquitto configuration agree on it.

// MayPublish reports whether terminal r may publish on topic: only under its
// own fleet/v1/{tenant}/{terminal}/ and never on its cmd channel, which is
// the server's. An unknown channel under its own prefix is allowed here: the
// message is then refused as bad input (ReasonUnknownChannel), counted and
// shown to the vendor, which is more useful than a silent ACL drop.
func MayPublish(r TerminalRef, topic string) bool {
	got, ch, err := ParseTopic(topic)
	return err == nil && got == r && ch != ChannelCommand
}

// MaySubscribe reports whether terminal r may subscribe to filter: only to
// its own cmd topic, exactly (no wildcards).
func MaySubscribe(r TerminalRef, filter string) bool {
	return r.Validate() == nil && filter == Topic(r, ChannelCommand)
}

// SharedGroup is the shared-subscription group posfleet collectors join on an
// external broker, so that the broker splits the fleet's messages among them.
const SharedGroup = "posfleet"

// CollectorFilter is the filter a collector subscribes to on an external
// broker: every terminal's every channel, shared among the collectors.
const CollectorFilter = "$share/" + SharedGroup + "/" + TopicRoot + "/#"
