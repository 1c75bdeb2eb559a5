package broker

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"github.com/posfleet/posfleet"
)

// session is what the broker knows of an authenticated connection. It lives
// in the connection (conn.sess), so it goes away with it.
type session struct {
	ref     posfleet.TerminalRef
	limiter *rate.Limiter // nil: no limit
	acks    *ackQueue
	hctx    handOffCtx // used by the connection's read loop only
	// deniedTopic is the topic of a publish OnPacketRead renamed to
	// deniedTopicMarker; the read loop sets it and OnPublish, next on the
	// same goroutine, takes it.
	deniedTopic string
	// pubs completes the publishes handed to a completingSubmitter; the
	// first one sets it, on the read loop.
	pubs pubCompleter
}

// ownChannel returns ch as a string of its own: the constant of a known
// channel, else a copy.
func ownChannel(ch posfleet.Channel) posfleet.Channel {
	for _, c := range posfleet.UplinkChannels {
		if c == ch {
			return c
		}
	}
	return posfleet.Channel(strings.Clone(string(ch)))
}

// isTopic reports whether topic is posfleet.Topic(ref, ch), without making
// that string: a session keeps no copies of its topics, thousands of
// terminals would hold them.
func isTopic(topic string, ref posfleet.TerminalRef, ch posfleet.Channel) bool {
	rest, ok := ownTopicRest(topic, ref)
	return ok && rest == string(ch)
}

// uplinkOf returns the uplink channel of topic when it is
// posfleet.Topic(ref, ch) for one of posfleet.UplinkChannels: the common
// case of a terminal publishing on its own topics, checked without
// parsing the topic again (the session's ref was validated at CONNECT).
// Anything else, ok false, takes posfleet.ParseTopic.
func uplinkOf(topic string, ref posfleet.TerminalRef) (posfleet.Channel, bool) {
	rest, ok := ownTopicRest(topic, ref)
	if !ok {
		return "", false
	}
	for _, c := range posfleet.UplinkChannels {
		if rest == string(c) {
			return c, true
		}
	}
	return "", false
}

// ownTopicRest returns what follows ref's own topic prefix
// (TopicRoot/tenant/terminal/) in topic, and false when topic does not
// start with it.
func ownTopicRest(topic string, ref posfleet.TerminalRef) (string, bool) {
	for _, part := range [...]string{posfleet.TopicRoot, ref.Tenant, ref.Terminal} {
		if len(topic) <= len(part) || topic[:len(part)] != part || topic[len(part)] != '/' {
			return "", false
		}
		topic = topic[len(part)+1:]
	}
	return topic, true
}

// deniedTopicMarker replaces a publish topic that mochi would drop without
// calling any hook (see OnPacketRead). It passes mochi's checks and fails
// posfleet's ACL like any foreign topic.
const deniedTopicMarker = "$posfleet/denied"

// sessionOf returns the session of an authenticated client, nil for anything
// else (the inline client, sessions restored from the store, a client still
// in CONNECT).
func sessionOf(cl *mqtt.Client) *session {
	c, ok := cl.Net.Conn.(*conn)
	if !ok {
		return nil
	}
	return c.sess.Load()
}

// errSinkUnavailable is the stop cause of a terminal disconnected because the
// Sink could not store its message.
var errSinkUnavailable = errors.New("sink cannot store messages now")

// policy is the hook that carries posfleet's rules: authentication, ACL, the
// hand-off to the Sink, last wills and the rate limit.
type policy struct {
	mqtt.HookBase
	b *Broker
}

// ID implements mqtt.Hook.
func (h *policy) ID() string { return "posfleet-policy" }

// Provides implements mqtt.Hook.
func (h *policy) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck,
		mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnSubscribe, mqtt.OnPublish, mqtt.OnWillSent, mqtt.OnPacketRead:
		return true
	}
	return false
}

// OnConnect authenticates the client. It runs before mochi's
// OnConnectAuthenticate so that it can answer "server unavailable" when the
// Authenticator cannot decide, which a boolean hook cannot. It answers the
// CONNACK itself for every refusal and returns the code so mochi ends the
// connection.
func (h *policy) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	b := h.b
	c, ok := cl.Net.Conn.(*conn)
	if !ok {
		return h.refuse(cl, packets.ErrNotAuthorized)
	}
	username := string(pk.Connect.Username)
	ref, parseErr := posfleet.ParseClientID(username)
	fail := func(why string) error {
		b.m.authFailures.Inc()
		b.security(posfleet.SecurityAuthFailed, ref, username, "", cl.Net.Remote)
		b.log.Debug("connect refused", "reason", why, "username", truncate(username, maxEventUsername), "client_id", truncate(pk.Connect.ClientIdentifier, maxEventUsername), "remote", cl.Net.Remote)
		return h.refuse(cl, packets.ErrBadUsernameOrPassword)
	}
	switch {
	case parseErr != nil:
		return fail("username is not {tenant}:{terminal}")
	case pk.Connect.ClientIdentifier != username:
		return fail("client id differs from username")
	}

	ctx, cancel := context.WithTimeout(b.baseCtx, b.opts.ConnectTimeout)
	got, err := b.authenticate(ctx, username, pk.Connect.Password, cl.Net.Remote)
	cancel()
	switch {
	case err != nil && throttled(err):
		b.m.authThrottled.Inc()
		b.security(posfleet.SecurityAuthThrottled, ref, username, "", cl.Net.Remote)
		b.log.Debug("connect refused without checking", "reason", err.Error(), "username", truncate(username, maxEventUsername), "remote", cl.Net.Remote)
		return h.refuse(cl, packets.ErrConnectionRateExceeded)
	case err != nil && unavailable(err):
		b.log.Warn("cannot authenticate terminal now", "terminal", ref.String(), "err", err)
		return h.refuse(cl, packets.ErrServerUnavailable)
	case err != nil:
		return fail("credentials refused: " + err.Error())
	case got != ref:
		b.log.Error("authenticator returned another terminal than the username names; refusing", "username", username, "got", got.String())
		return fail("authenticator returned another terminal")
	}

	s := &session{
		ref:  ref,
		acks: newAckQueue(cl),
		hctx: handOffCtx{Context: b.baseCtx, timeout: b.opts.AcceptTimeout},
	}
	if b.opts.RatePerSecond > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(b.opts.RatePerSecond), b.opts.RateBurst)
	}
	// The will may only tell that this terminal went offline. A will
	// elsewhere is dropped rather than the connection refused: the terminal
	// still reports, and the collector's no-message timeout still notices
	// when it goes away.
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 {
		if !isTopic(cl.Properties.Will.TopicName, ref, posfleet.ChannelStatus) {
			b.m.aclDenials.WithLabelValues("will").Inc()
			b.security(posfleet.SecurityWillDenied, ref, username, cl.Properties.Will.TopicName, cl.Net.Remote)
			b.log.Debug("will on a foreign topic dropped", "terminal", ref.String(), "topic", truncate(cl.Properties.Will.TopicName, maxEventTopic))
			cl.Properties.Will = mqtt.Will{}
		} else {
			// The server should learn at once that the terminal is gone; a
			// delayed will would also be sent by mochi's event loop, outside
			// OnWillSent for clean sessions. Nothing is retained (see
			// OnPublish).
			cl.Properties.Will.WillDelayInterval = 0
			cl.Properties.Will.Retain = false
		}
	}
	c.sess.Store(s)
	return nil
}

// refuse sends a refusing CONNACK and returns the code, which makes mochi
// end the connection.
func (h *policy) refuse(cl *mqtt.Client, code packets.Code) error {
	ack := code
	if cl.Properties.ProtocolVersion < 5 {
		switch code {
		case packets.ErrBadUsernameOrPassword:
			// mochi maps 0x86 to the MQTT 3.1.1 return code 5 "not
			// authorized"; the protocol promises code 4 "bad user name or
			// password".
			ack = packets.ErrMalformedUsernameOrPassword
		case packets.ErrConnectionRateExceeded:
			// MQTT 3.1.1 has no such code; "server unavailable" makes the
			// client retry later.
			ack = packets.ErrServerUnavailable
		}
	}
	_ = h.b.srv.SendConnack(cl, ack, false, nil)
	return code
}

// authenticate asks the Authenticator, with the client's address when it
// takes one.
func (b *Broker) authenticate(ctx context.Context, username string, password []byte, remote string) (posfleet.TerminalRef, error) {
	if sa, ok := b.auth.(SourceAuthenticator); ok {
		var src netip.Addr
		if ap, err := netip.ParseAddrPort(remote); err == nil {
			src = ap.Addr()
		}
		return sa.AuthenticateFrom(ctx, username, password, src)
	}
	return b.auth.Authenticate(ctx, username, password)
}

// throttled tells an attempt refused for being over a budget (see
// Authenticator).
func throttled(err error) bool {
	var t interface{ Throttled() bool }
	return errors.As(err, &t) && t.Throttled()
}

// unavailable tells an Authenticator that could not decide from one that said no.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// OnConnectAuthenticate admits the clients OnConnect authenticated.
func (h *policy) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return sessionOf(cl) != nil
}

// OnSessionEstablished counts the connect.
func (h *policy) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.b.m.connects.Inc()
	h.b.log.Debug("terminal connected", "client", cl.ID, "remote", cl.Net.Remote, "protocol", cl.Properties.ProtocolVersion, "clean", cl.Properties.Clean)
}

// OnDisconnect logs the disconnect.
func (h *policy) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if sessionOf(cl) == nil {
		return // a session restored from the store, or a refused connect
	}
	h.b.log.Debug("terminal disconnected", "client", cl.ID, "err", err, "session_ended", expire)
}

// OnACLCheck lets authenticated terminals publish (ownership is checked in
// OnPublish, which can drop a packet without cutting the connection as mochi
// does to a v3 client failing this check) and read only their own cmd topic.
// mochi calls it for subscribe filters and again for every delivery.
func (h *policy) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if s := sessionOf(cl); s != nil {
		return write || isTopic(topic, s.ref, posfleet.ChannelCommand)
	}
	if cl.Net.Conn == nil && !write {
		// A session restored from the store, its terminal still away: it was
		// authenticated when it subscribed, and its client ID is its
		// username. Commands queue in it.
		ref, err := posfleet.ParseClientID(cl.ID)
		return err == nil && topic == posfleet.Topic(ref, posfleet.ChannelCommand)
	}
	return false
}

// OnSubscribe records the filters the ACL will refuse. It leaves the packet
// alone: mochi answers each refused filter with a failure code in SUBACK and
// keeps the connection.
func (h *policy) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	s := sessionOf(cl)
	if s == nil {
		return pk
	}
	for _, f := range pk.Filters {
		if isTopic(f.Filter, s.ref, posfleet.ChannelCommand) || !mqtt.IsValidFilter(f.Filter, false) {
			continue
		}
		h.b.m.aclDenials.WithLabelValues("subscribe").Inc()
		h.b.security(posfleet.SecuritySubscribeDenied, s.ref, s.ref.String(), f.Filter, cl.Net.Remote)
		h.b.log.Debug("subscribe denied", "terminal", s.ref.String(), "filter", truncate(f.Filter, maxEventTopic))
	}
	return pk
}

// OnPacketRead lets OnPublish see publishes mochi would drop unseen: mochi
// drops a publish to a topic it deems invalid for publishing ($SYS/...,
// wildcards) before any hook, without acknowledging it, so a QoS 1 sender
// waits for a PUBACK forever and no security event is recorded. Such a
// publish gets deniedTopicMarker as topic, the real one kept in the
// session, and is denied by OnPublish like any foreign topic.
func (h *policy) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || pk.TopicName == "" || mqtt.IsValidFilter(pk.TopicName, true) {
		return pk, nil
	}
	s := sessionOf(cl)
	if s == nil {
		return pk, nil
	}
	s.deniedTopic = pk.TopicName
	pk.TopicName = deniedTopicMarker
	return pk, nil
}

// OnPublish handles a terminal's publish: rate limit, ownership, then the
// Sink. A QoS 1 publish is acknowledged only once the Sink has it durable,
// which is what makes "acknowledged" mean "durable".
//
// Messages go to the Sink without waiting (see Submitter) and the
// connection's ackQueue writes each PUBACK when its message is stored, in
// arrival order; OnPublish then tells mochi the message is handled (see
// handled), so that mochi neither acknowledges, retains nor forwards it (no
// client may read uplink topics). QoS 2, which no terminal needs, waits
// instead until the message is durable and leaves the handshake to mochi.
func (h *policy) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	err := h.onPublish(cl, &pk)
	return pk, err
}

// onPublish is OnPublish on the packet in place, which it changes only when
// it returns nil. The packet (800 bytes) is passed by pointer below
// OnPublish: handling a publish takes that much less stack on every
// terminal's read loop (see third_party/mochi).
func (h *policy) onPublish(cl *mqtt.Client, pk *packets.Packet) error {
	b := h.b
	if cl.Net.Inline {
		return nil // SendCommand
	}
	s := sessionOf(cl)
	if s == nil {
		return packets.ErrRejectPacket
	}
	deniedTopic := s.deniedTopic
	s.deniedTopic = ""
	if err := b.throttle(s); err != nil {
		// Closing: leave the message unacknowledged, the terminal resends it.
		return packets.ErrRejectPacket
	}
	qos1 := pk.FixedHeader.Qos == 1
	// Room for this acknowledgement: a terminal has at most ReceiveMaximum
	// messages in the broker's hands. mochi acknowledges QoS 2 (no terminal
	// needs it, but a client may send it), after every earlier
	// acknowledgement.
	defer s.hctx.reset()
	room := b.opts.ReceiveMaximum
	if pk.FixedHeader.Qos == 2 {
		room = 1
	}
	if pk.FixedHeader.Qos > 0 {
		if err := s.acks.waitRoom(&s.hctx, room); err != nil {
			return b.stuck(cl, s, err)
		}
	}

	ref, ch := s.ref, posfleet.Channel("")
	if c, ok := uplinkOf(pk.TopicName, s.ref); ok {
		ch = c
	} else {
		tref, tch, err := posfleet.ParseTopic(pk.TopicName)
		if err != nil || tref != s.ref || tch == posfleet.ChannelCommand {
			topic := pk.TopicName
			if topic == deniedTopicMarker && deniedTopic != "" {
				topic = deniedTopic
			}
			b.m.aclDenials.WithLabelValues("publish").Inc()
			b.m.denied.Inc()
			b.security(posfleet.SecurityPublishDenied, s.ref, s.ref.String(), topic, cl.Net.Remote)
			b.log.Debug("publish denied", "terminal", s.ref.String(), "topic", truncate(topic, maxEventTopic))
			return s.refuse(pk, packets.ErrNotAuthorized)
		}
		// The topic's strings are slices of the packet's buffer (mochi
		// decodes without copying): handed on, and kept by the collector as
		// its map key at a terminal's first message, they would keep that
		// buffer alive for as long as the terminal is known. uplinkOf
		// returns the package's constants.
		ch = ownChannel(tch)
	}

	if pk.FixedHeader.Qos == 2 {
		// mochi acknowledges QoS 2, after every earlier acknowledgement.
		ctx, cancel := context.WithTimeout(b.baseCtx, b.opts.AcceptTimeout)
		err := b.sink.Accept(ctx, ref, ch, pk.Payload)
		cancel()
		if err != nil {
			return b.notStored(cl, s, pk, ch, err)
		}
		b.m.accepted.Inc()
		pk.FixedHeader.Retain = false
		return nil
	}

	var k uint64
	if qos1 {
		k = s.acks.add(pk.PacketID)
	}
	var err error
	if b.submitTo != nil {
		if s.pubs.s == nil {
			s.pubs = pubCompleter{b: b, cl: cl, s: s}
		}
		err = b.submitTo(&s.hctx, ref, ch, pk.Payload, &s.pubs, pubTag(k, qos1, ch))
	} else {
		d := pubDonePool.Get().(*pubDone)
		d.b, d.cl, d.s, d.ch, d.k, d.qos1 = b, cl, s, ch, k, qos1
		err = b.submit(&s.hctx, ref, ch, pk.Payload, d.fn)
	}
	if err != nil {
		var rej *posfleet.Rejection
		if qos1 && errors.As(err, &rej) {
			// Refuse, in order, through the entry added above. Any other
			// error fails the queue (notStored): nothing more is
			// acknowledged on this connection.
			s.acks.settle(k, refusal(s, packets.ErrPayloadFormatInvalid))
		}
		return b.notStored(cl, s, pk, ch, err)
	}
	handled(pk)
	return nil
}

// pubDone is the Submitter's done callback of one publish. They are pooled,
// with the func value made once per pubDone: a closure per message was one
// allocation of each message's path. A Submitter calls done once, or never
// when Submit returns an error (the pubDone is then left to the garbage
// collector).
type pubDone struct {
	b    *Broker
	cl   *mqtt.Client
	s    *session
	ch   posfleet.Channel
	k    uint64
	qos1 bool
	fn   func(error) // d.done
}

var pubDonePool sync.Pool

func init() {
	pubDonePool.New = func() any {
		d := new(pubDone)
		d.fn = d.done
		return d
	}
}

func (d *pubDone) done(err error) {
	b, cl, s, ch, k, qos1 := d.b, d.cl, d.s, d.ch, d.k, d.qos1
	*d = pubDone{fn: d.fn}
	pubDonePool.Put(d)
	b.published(cl, s, ch, k, qos1, err)
}

// completingSubmitter is a Submitter that also takes a Completer and a tag
// in place of a done function (the collector): a publish then needs no
// pubDone, whose round trip through a pool, from the read loop to the
// Sink's completion goroutine and back, was about 3% of the CPU of a
// message.
type completingSubmitter interface {
	SubmitTo(ctx context.Context, ref posfleet.TerminalRef, ch posfleet.Channel, payload []byte, to interface{ Complete(uint64, error) }, tag uint64) error
}

// pubCompleter completes one connection's publishes for a
// completingSubmitter; the tag of each is pubTag's.
type pubCompleter struct {
	b  *Broker
	cl *mqtt.Client
	s  *session
}

// pubTag packs what completing a publish needs: its acknowledgement's
// number, whether it has one (QoS 1), and its channel (an index in
// posfleet.UplinkChannels, 7 for another: it is only logged).
func pubTag(k uint64, qos1 bool, ch posfleet.Channel) uint64 {
	t := k<<4 | 7
	for i, c := range posfleet.UplinkChannels {
		if c == ch && i < 7 {
			t = k<<4 | uint64(i)
			break
		}
	}
	if qos1 {
		t |= 1 << 3
	}
	return t
}

// Complete implements completingSubmitter's Completer.
func (p *pubCompleter) Complete(tag uint64, err error) {
	var ch posfleet.Channel
	if i := int(tag & 7); i < len(posfleet.UplinkChannels) {
		ch = posfleet.UplinkChannels[i]
	}
	p.b.published(p.cl, p.s, ch, tag>>4, tag&(1<<3) != 0, err)
}

// published settles a publish the Sink took: acknowledged once stored;
// nothing more acknowledged on its connection, which is closed, when it
// could not be.
func (b *Broker) published(cl *mqtt.Client, s *session, ch posfleet.Channel, k uint64, qos1 bool, err error) {
	if err != nil {
		b.m.failed.Inc()
		if s.acks.fail() {
			b.cannotStore(cl, s, ch, err)
		}
		return
	}
	b.m.accepted.Inc()
	if qos1 {
		s.acks.settle(k, packets.CodeSuccess)
	}
}

// handled tells mochi that the broker dealt with a publish itself, so that
// mochi neither acknowledges, retains nor forwards it: mochi takes an
// ignored QoS 0 message as done. ErrRejectPacket would do the same, but
// mochi logs every rejection at debug level, boxing the whole packet even
// when debug logs are off: 5% of the CPU per message.
func handled(pk *packets.Packet) {
	pk.FixedHeader.Qos, pk.FixedHeader.Retain, pk.Ignore = 0, false, true
}

// refusal is the PUBACK code of a dropped message: MQTT 5 terminals learn
// why; MQTT 3.1.1 has no code, and a success makes the terminal move on.
func refusal(s *session, code packets.Code) packets.Code {
	if s.acks.v5 {
		return code
	}
	return packets.CodeSuccess
}

// refuse drops a publish, acknowledged in order, and returns what OnPublish
// returns to mochi: QoS 1 goes through the queue; QoS 2 is mochi's to
// answer (its queue is empty then), with the code for MQTT 5 and as an
// ignored message otherwise.
func (s *session) refuse(pk *packets.Packet, code packets.Code) error {
	switch pk.FixedHeader.Qos {
	case 1:
		s.acks.settle(s.acks.add(pk.PacketID), refusal(s, code))
	case 2:
		if s.acks.v5 {
			return code
		}
		return packets.CodeSuccessIgnore
	}
	return packets.ErrRejectPacket
}

// notStored handles a publish the Sink did not take: bad input is counted
// and refused (the connection stays); anything else leaves it
// unacknowledged and disconnects the terminal so that it resends.
func (b *Broker) notStored(cl *mqtt.Client, s *session, pk *packets.Packet, ch posfleet.Channel, err error) error {
	var rej *posfleet.Rejection
	if errors.As(err, &rej) {
		b.m.rejected.Inc()
		b.log.Debug("message rejected", "terminal", s.ref.String(), "channel", string(ch), "reason", string(rej.Reason))
		// An asynchronous publish has its refusal settled already; a QoS 2
		// one has none, since mochi did not get to acknowledge it.
		if pk.FixedHeader.Qos == 2 {
			return s.refuse(pk, packets.ErrPayloadFormatInvalid)
		}
		return packets.ErrRejectPacket
	}
	b.m.failed.Inc()
	if s.acks.fail() {
		b.cannotStore(cl, s, ch, err)
	}
	return packets.ErrRejectPacket
}

// stuck handles a publish that found no room to be acknowledged in time:
// its terminal's earlier messages are not stored after AcceptTimeout.
func (b *Broker) stuck(cl *mqtt.Client, s *session, err error) error {
	if errors.Is(err, errAckQueueFailed) {
		return packets.ErrRejectPacket // already being disconnected
	}
	if s.acks.fail() {
		b.cannotStore(cl, s, "", err)
	}
	return packets.ErrRejectPacket
}

// cannotStore disconnects a terminal whose message could not be stored, so
// that it resends after reconnecting. It may run on the Sink's goroutine, so
// the disconnect, which writes to the network, gets a goroutine of its own.
func (b *Broker) cannotStore(cl *mqtt.Client, s *session, ch posfleet.Channel, err error) {
	if b.closing.Load() {
		return
	}
	b.log.Warn("sink cannot store message; disconnecting terminal so that it resends", "terminal", s.ref.String(), "channel", string(ch), "err", err)
	go func() {
		if cl.Properties.ProtocolVersion == 5 {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerBusy)
		} else {
			// MQTT 3.1.1 has no server DISCONNECT; closing is the signal.
			cl.Stop(errSinkUnavailable)
		}
	}()
}

// OnWillSent hands a terminal's last will, its {"online":false} status, to
// the Sink so the server learns it went offline.
func (h *policy) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	b := h.b
	s := sessionOf(cl)
	if s == nil || b.closing.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(b.baseCtx, b.opts.AcceptTimeout)
	err := b.sink.Accept(ctx, s.ref, posfleet.ChannelStatus, pk.Payload)
	cancel()
	var rej *posfleet.Rejection
	switch {
	case err == nil:
		b.m.accepted.Inc()
		b.log.Debug("last will delivered", "terminal", s.ref.String())
	case errors.As(err, &rej):
		b.m.rejected.Inc()
		b.log.Info("last will rejected", "terminal", s.ref.String(), "reason", string(rej.Reason))
	default:
		b.m.failed.Inc()
		b.log.Warn("sink cannot store last will", "terminal", s.ref.String(), "err", err)
	}
}

// throttle waits until the terminal's token bucket allows one more publish.
// Waiting here stalls only that terminal's read loop: it is slowed, nothing
// it sends is lost, and its TCP window pushes back on it.
func (b *Broker) throttle(s *session) error {
	if s.limiter == nil || s.limiter.Allow() {
		return nil
	}
	r := s.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		return nil
	}
	b.m.rateLimited.Inc()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-b.baseCtx.Done():
		r.Cancel()
		return b.baseCtx.Err()
	}
}

// security records an event; it must not block.
func (b *Broker) security(kind posfleet.SecurityKind, ref posfleet.TerminalRef, username, topic, remote string) {
	b.sec.RecordSecurity(posfleet.SecurityEvent{
		Time:     time.Now(),
		Kind:     kind,
		Terminal: ref,
		Username: truncate(username, maxEventUsername),
		Topic:    truncate(topic, maxEventTopic),
		Remote:   remote,
	})
}

// truncate cuts s to at most n bytes and makes it valid UTF-8 (a cut may
// split a sequence, and a hostile client may send anything).
// Every value it cuts comes from a client, to be logged or stored: card data
// is withheld first, before the cut (a card number cut in two is no longer
// found, and its first digits would be kept).
func truncate(s string, n int) string {
	s = posfleet.Redact(s)
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
