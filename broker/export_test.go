package broker

// Retained returns the retained message of topic, for tests that check
// retained messages survive a restart (no terminal may subscribe to them).
func (b *Broker) Retained(topic string) ([]byte, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.srv == nil {
		return nil, false
	}
	pk, ok := b.srv.Topics.Retained.Get(topic)
	if !ok {
		return nil, false
	}
	return pk.Payload, true
}
