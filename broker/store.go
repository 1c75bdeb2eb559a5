package broker

import (
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/posfleet/posfleet"
)

// store wraps mochi's bolt storage hook so that it keeps only what the broker
// needs across a restart: persistent sessions (client records and granted
// subscriptions) and commands in flight to terminals with persistent
// sessions. The broker retains nothing (see OnPublish); retained messages an
// earlier version stored are deleted at start-up.
//
// mochi's hook writes, with one fsync each, an in-flight record for every QoS 1
// message a terminal publishes (and deletes it a moment later), a client
// record at every connect, a subscription at every subscribe and $SYS
// counters every second. Uplink durability is the Sink's job, so none of that
// is needed; and a fleet reconnecting after a restart would queue behind
// thousands of fsyncs before getting its CONNACKs. The store therefore
// remembers a hash of every row it wrote (seeded from the file at start-up)
// and writes only rows that change, deletes only rows that exist.
//
// It also fixes two faults of the bolt hook of mochi v2.7.9: denied
// subscriptions were stored (and restored as active after a restart), and
// in-flight messages were stored without their packet ID, so they came back
// with ID 0.
type store struct {
	bolt.Hook
	closing *atomic.Bool // set by Broker.Close

	mu       sync.Mutex // serialises writes and guards the fields below
	stopped  bool
	closeErr error
	sessions map[string]*storedSession // by client ID
}

// storedSession is what the file holds for one client.
type storedSession struct {
	client   uint64            // hash of the client record; 0 = none
	subs     map[string]uint64 // filter → hash
	inflight map[uint16]uint64 // packet ID → hash
}

func (ss *storedSession) setSub(filter string, h uint64) {
	if ss.subs == nil {
		ss.subs = make(map[string]uint64, 1)
	}
	ss.subs[filter] = h
}

func (ss *storedSession) setInflight(id uint16, h uint64) {
	if ss.inflight == nil {
		ss.inflight = make(map[uint16]uint64)
	}
	ss.inflight[id] = h
}

func newStore(closing *atomic.Bool) *store {
	return &store{
		closing:  closing,
		sessions: make(map[string]*storedSession),
	}
}

// ID implements mqtt.Hook.
func (s *store) ID() string { return "posfleet-bolt" }

// Provides implements mqtt.Hook. It leaves out OnSysInfoTick and StoredSysInfo
// ($SYS counters are not worth an fsync a second) and OnWillSent (mochi
// rewrites the client record only to drop the will, which a restored session
// never sends anyway).
func (s *store) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnClientExpired,
		mqtt.StoredClients, mqtt.StoredSubscriptions,
		mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages:
		return true
	}
	return false
}

// Stop implements mqtt.Hook; it closes the file once no write is under way.
func (s *store) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	s.closeErr = s.Hook.Stop()
	return s.closeErr
}

// stopErr returns the error of closing the file (mochi drops it).
func (s *store) stopErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

// flush commits the writes the bolt hook queued (group commit: every
// connection writing at this moment shares one transaction and one fsync)
// and returns once they are durable. It runs outside s.mu, so that other
// connections can queue theirs meanwhile.
func (s *store) flush() {
	_ = s.Hook.Flush() // a failed commit is logged by the hook
}

// persistent reports whether cl's session outlives its connection (mochi's own rule).
func persistent(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func (s *store) session(id string) *storedSession {
	ss := s.sessions[id]
	if ss == nil {
		ss = &storedSession{} // maps made at their first entry: most terminals never have a command in flight
		s.sessions[id] = ss
	}
	return ss
}

// forget drops the bookkeeping of a client with nothing stored.
func (s *store) forget(id string) {
	if ss := s.sessions[id]; ss != nil && ss.client == 0 && len(ss.subs) == 0 && len(ss.inflight) == 0 {
		delete(s.sessions, id)
	}
}

// OnSessionEstablished stores the client record of a persistent session when
// it changed, and removes it when the client now asks for a clean session.
func (s *store) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	s.onSessionEstablished(cl, pk)
	s.flush()
}

func (s *store) onSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if !persistent(cl) {
		if ss := s.sessions[cl.ID]; ss != nil && ss.client != 0 {
			s.Hook.OnClientExpired(cl) // deletes the client record
			ss.client = 0
			s.forget(cl.ID)
		}
		return
	}
	h := hashClient(clientRecord(cl))
	ss := s.session(cl.ID)
	if ss.client == h {
		return
	}
	s.Hook.OnSessionEstablished(cl, pk)
	ss.client = h
}

// OnDisconnect removes the client record when the session ends with the connection.
func (s *store) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	s.onDisconnect(cl, err, expire)
	s.flush()
}

func (s *store) onDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if !expire || cl.StopCause() == packets.ErrSessionTakenOver {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if ss := s.sessions[cl.ID]; ss != nil && ss.client != 0 {
		s.Hook.OnClientExpired(cl)
		ss.client = 0
		s.forget(cl.ID)
	}
}

// OnClientExpired removes everything stored for an expired session.
func (s *store) OnClientExpired(cl *mqtt.Client) {
	s.onClientExpired(cl)
	s.flush()
}

func (s *store) onClientExpired(cl *mqtt.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	ss := s.sessions[cl.ID]
	if ss == nil {
		return
	}
	if ss.client != 0 {
		s.Hook.OnClientExpired(cl)
	}
	if len(ss.subs) > 0 {
		var filters packets.Subscriptions
		for f := range ss.subs {
			filters = append(filters, packets.Subscription{Filter: f})
		}
		s.Hook.OnUnsubscribed(cl, packets.Packet{Filters: filters})
	}
	for id := range ss.inflight {
		s.Hook.OnQosComplete(cl, packets.Packet{PacketID: id})
	}
	delete(s.sessions, cl.ID)
}

// OnSubscribed stores the granted subscriptions of a persistent session.
func (s *store) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	s.onSubscribed(cl, pk, reasonCodes)
	s.flush()
}

func (s *store) onSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if !persistent(cl) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	var keep packets.Subscriptions
	var codes []byte
	var hashes []uint64
	ss := s.session(cl.ID)
	for i, f := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] >= packets.ErrUnspecifiedError.Code {
			continue // refused: nothing to restore
		}
		h := hashSubscription(f.Filter, reasonCodes[i], f.Identifier, f.NoLocal, f.RetainHandling, f.RetainAsPublished)
		if ss.subs[f.Filter] == h {
			continue
		}
		keep = append(keep, f)
		codes = append(codes, reasonCodes[i])
		hashes = append(hashes, h)
	}
	if len(keep) == 0 {
		s.forget(cl.ID)
		return
	}
	s.Hook.OnSubscribed(cl, packets.Packet{Filters: keep}, codes)
	for i, f := range keep {
		ss.setSub(f.Filter, hashes[i])
	}
}

// OnUnsubscribed removes stored subscriptions.
func (s *store) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	s.onUnsubscribed(cl, pk)
	s.flush()
}

func (s *store) onUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	ss := s.sessions[cl.ID]
	if ss == nil {
		return
	}
	var drop packets.Subscriptions
	for _, f := range pk.Filters {
		if _, ok := ss.subs[f.Filter]; ok {
			drop = append(drop, f)
			delete(ss.subs, f.Filter)
		}
	}
	if len(drop) > 0 {
		s.Hook.OnUnsubscribed(cl, packets.Packet{Filters: drop})
	}
	s.forget(cl.ID)
}

// OnQosPublish stores a command in flight to a terminal with a persistent
// session. mochi calls it for the acknowledgements of inbound QoS 1/2
// messages too; those are not publishes and are skipped.
func (s *store) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	s.onQosPublish(cl, pk, sent, resends)
	s.flush()
}

func (s *store) onQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type != packets.Publish || !persistent(cl) {
		return
	}
	if _, ch, err := posfleet.ParseTopic(pk.TopicName); err != nil || ch != posfleet.ChannelCommand {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	h := hashMessage(pk.TopicName, pk.Payload, pk.FixedHeader.Qos, pk.PacketID)
	ss := s.session(cl.ID)
	if old, ok := ss.inflight[pk.PacketID]; ok && old == h {
		return // a resend
	}
	s.Hook.OnQosPublish(cl, pk, sent, resends)
	ss.setInflight(pk.PacketID, h)
}

// OnQosComplete removes a command the terminal acknowledged.
func (s *store) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	s.onQosComplete(cl, pk)
	s.flush()
}

func (s *store) onQosComplete(cl *mqtt.Client, pk packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	ss := s.sessions[cl.ID]
	if ss == nil {
		return
	}
	if _, ok := ss.inflight[pk.PacketID]; !ok {
		return
	}
	s.Hook.OnQosComplete(cl, pk)
	delete(ss.inflight, pk.PacketID)
	s.forget(cl.ID)
}

// OnQosDropped removes a command mochi gave up on.
func (s *store) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	s.OnQosComplete(cl, pk)
}

// StoredClients implements mqtt.Hook and seeds the write cache.
func (s *store) StoredClients() ([]storage.Client, error) {
	v, err := s.Hook.StoredClients()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range v {
		s.session(c.ID).client = hashClient(c)
	}
	return v, nil
}

// StoredSubscriptions implements mqtt.Hook and seeds the write cache.
func (s *store) StoredSubscriptions() ([]storage.Subscription, error) {
	v, err := s.Hook.StoredSubscriptions()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := v[:0]
	for _, sub := range v {
		if sub.Qos >= packets.ErrUnspecifiedError.Code {
			continue // a refusal stored by an older version: never restore it
		}
		s.session(sub.Client).setSub(sub.Filter, hashSubscription(sub.Filter, sub.Qos, sub.Identifier, sub.NoLocal, sub.RetainHandling, sub.RetainAsPublished))
		keep = append(keep, sub)
	}
	return keep, nil
}

// StoredInflightMessages implements mqtt.Hook, restores the packet IDs the
// bolt hook does not store (they are the last part of the key) and seeds the
// write cache.
func (s *store) StoredInflightMessages() ([]storage.Message, error) {
	v, err := s.Hook.StoredInflightMessages()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := v[:0]
	for _, m := range v {
		if m.PacketID == 0 {
			i := strings.LastIndexByte(m.ID, ':')
			id, err := strconv.ParseUint(m.ID[i+1:], 10, 16)
			if i < 0 || err != nil || id == 0 {
				s.Log.Warn("skipping stored in-flight message with unreadable key", "key", m.ID)
				continue
			}
			m.PacketID = uint16(id)
		}
		s.session(m.Client).setInflight(m.PacketID, hashMessage(m.TopicName, m.Payload, m.FixedHeader.Qos, m.PacketID))
		keep = append(keep, m)
	}
	return keep, nil
}

// StoredRetainedMessages implements mqtt.Hook: it deletes the retained
// messages an earlier version stored and restores none.
func (s *store) StoredRetainedMessages() ([]storage.Message, error) {
	v, err := s.Hook.StoredRetainedMessages()
	if err != nil {
		return nil, err
	}
	for _, m := range v {
		s.Hook.OnRetainedExpired(m.TopicName)
	}
	s.flush()
	return nil, nil
}

// clientRecord builds the record mochi's bolt hook stores for cl.
func clientRecord(cl *mqtt.Client) storage.Client {
	props := cl.Properties.Props.Copy(false)
	return storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval: props.SessionExpiryInterval,
			AuthenticationMethod:  props.AuthenticationMethod,
			AuthenticationData:    props.AuthenticationData,
			RequestProblemInfo:    props.RequestProblemInfo,
			RequestResponseInfo:   props.RequestResponseInfo,
			ReceiveMaximum:        props.ReceiveMaximum,
			TopicAliasMaximum:     props.TopicAliasMaximum,
			User:                  props.User,
			MaximumPacketSize:     props.MaximumPacketSize,
		},
	}
}

// hashClient hashes the parts of a client record a restored session uses:
// not the remote address (it changes with every connection) and not the will
// (a restored session never sends it).
func hashClient(c storage.Client) uint64 {
	c.Remote, c.T, c.Will = "", "", storage.ClientWill{}
	b, _ := c.MarshalBinary()
	return nonZero(fnvSum(b))
}

func hashSubscription(filter string, qos byte, id int, noLocal bool, retainHandling byte, retainAsPublished bool) uint64 {
	var buf bytes.Buffer
	buf.WriteString(filter)
	buf.WriteByte(0)
	buf.WriteByte(qos)
	buf.WriteByte(retainHandling)
	buf.WriteByte(boolByte(noLocal))
	buf.WriteByte(boolByte(retainAsPublished))
	buf.Write(binary.LittleEndian.AppendUint64(nil, uint64(id)))
	return nonZero(fnvSum(buf.Bytes()))
}

func hashMessage(topic string, payload []byte, qos byte, packetID uint16) uint64 {
	var buf bytes.Buffer
	buf.WriteString(topic)
	buf.WriteByte(0)
	buf.WriteByte(qos)
	buf.Write(binary.LittleEndian.AppendUint16(nil, packetID))
	buf.Write(payload)
	return nonZero(fnvSum(buf.Bytes()))
}

func fnvSum(b []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}

// nonZero keeps 0 free to mean "nothing stored".
func nonZero(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
