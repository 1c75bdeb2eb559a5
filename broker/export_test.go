package broker

// Retained returns the retained message of topic, for tests that check
// the broker keeps none (no client may subscribe to uplink topics).
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

// CompletingSubmitter is the Sink the broker completes through SubmitTo.
type CompletingSubmitter = completingSubmitter
