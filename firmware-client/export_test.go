package firmwareclient

import (
	"context"

	"github.com/posfleet/posfleet"
)

// OutboxMessage is a message waiting in a client's outbox, for tests.
type OutboxMessage struct {
	Seq     int64
	Channel posfleet.Channel
	Payload []byte
}

// Outbox returns what waits in c's outbox, in seq order.
func Outbox(c *Client) []OutboxMessage {
	recs, err := c.box.after(0, 1<<30)
	if err != nil {
		panic(err)
	}
	out := make([]OutboxMessage, len(recs))
	for i, r := range recs {
		out[i] = OutboxMessage{Seq: r.seq, Channel: r.ch, Payload: r.payload}
	}
	return out
}

// HandleCommand hands a message to c as if it had arrived on topic: the
// broker's ACL never lets a foreign command through, so this is the only
// way to see how the client answers one.
func HandleCommand(c *Client, topic string, payload []byte) {
	c.handle(context.Background(), topic, payload)
}
