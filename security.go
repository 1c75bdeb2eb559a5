package posfleet

import "time"

// SecurityKind names what a security event is about.
type SecurityKind string

// The security events of PROTOCOL.md §1: refused connections and ACL denials.
const (
	SecurityAuthFailed      SecurityKind = "auth_failed"
	SecurityPublishDenied   SecurityKind = "acl_publish_denied"
	SecuritySubscribeDenied SecurityKind = "acl_subscribe_denied"
	SecurityWillDenied      SecurityKind = "will_denied"
	// SecurityAuthThrottled is a CONNECT refused without checking its
	// secret: its source address or username was over its budget of failed
	// attempts.
	SecurityAuthThrottled SecurityKind = "auth_throttled"
)

// SecurityEvent is a refused connection or a denied publish or subscribe,
// kept so the vendor can see who knocked and how often. It never holds a
// password or a payload.
type SecurityEvent struct {
	Time time.Time
	Kind SecurityKind
	// Terminal is the terminal the client claimed to be; zero when the
	// username did not even parse as {tenant}:{terminal}.
	Terminal TerminalRef
	Username string // as presented, truncated
	Topic    string // the denied topic or filter, if any
	Remote   string // the client's network address
}

// Redacted returns e with card data withheld from every value the client
// chose: the username and topic become RedactedMarker, and a terminal whose
// IDs hold card data becomes the zero TerminalRef (as for a username that
// does not parse).
func (e SecurityEvent) Redacted() SecurityEvent {
	e.Username, e.Topic, e.Remote = Redact(e.Username), Redact(e.Topic), Redact(e.Remote)
	if ContainsCardData(e.Terminal.Tenant) || ContainsCardData(e.Terminal.Terminal) {
		e.Terminal = TerminalRef{}
	}
	return e
}
