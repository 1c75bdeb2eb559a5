package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
)

// Commands in a cluster. A process with the embedded broker sends a
// command at once (broker.SendCommand). A process that reaches no terminal
// (a web replica) queues it in the database (outboxCommander); the holder
// of the health lease publishes the queue on its broker: the embedded one
// of a box beside web replicas, or the external broker's connection of the
// health role (runOutbox). Delivery is at least once: after a takeover a
// command may go out twice, and terminals keep one by its ID.

// outboxCommander queues commands in the database (web.Commander).
type outboxCommander struct{ db *store.DB }

// SendCommand checks cmd and queues it for the health lease's holder.
func (o outboxCommander) SendCommand(ctx context.Context, ref posfleet.TerminalRef, cmd posfleet.Command) error {
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("send command: %w", err)
	}
	if cmd.ID == "" {
		return errors.New("send command: empty id")
	}
	return journal.QueueCommand(ctx, o.db, ref, cmd, time.Now())
}

// outboxEvery is how often the lease's holder looks for queued commands;
// outboxBatch bounds one look.
const (
	outboxEvery = time.Second
	outboxBatch = 200
)

// startOutbox runs runOutbox where this process publishes the health view
// and reaches terminals (a broker of its own or the external broker's
// connection); Close stops it first, before the parts it uses.
func (s *Server) startOutbox() {
	if s.publisher == nil || (s.brk == nil && s.src == nil) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.stopOutbox = func() { cancel(); <-done }
	go func() {
		defer close(done)
		s.runOutbox(ctx)
	}()
}

// runOutbox publishes queued commands while this process holds the
// health lease, until ctx ends.
func (s *Server) runOutbox(ctx context.Context) {
	t := time.NewTicker(outboxEvery)
	defer t.Stop()
	log := s.log.With("component", "outbox")
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.publisher == nil || !s.publisher.Held() {
			continue
		}
		pending, err := journal.PendingCommands(ctx, s.db, outboxBatch)
		if err != nil {
			log.Warn("queued commands not read", "err", err)
			continue
		}
		for _, q := range pending {
			if err := s.publishCommand(ctx, q.Terminal, q.Command); err != nil {
				// A terminal with no session yet (embedded broker) or a
				// broker connection down: tried again next time.
				log.Debug("queued command not sent yet", "terminal", q.Terminal.String(), "id", q.Command.ID, "err", err)
				continue
			}
			if _, err := journal.MarkCommandPublished(ctx, s.db, q.Command.ID, time.Now()); err != nil {
				log.Warn("sent command not marked", "id", q.Command.ID, "err", err)
				continue
			}
			log.Info("queued command sent", "terminal", q.Terminal.String(), "type", q.Command.Type, "id", q.Command.ID)
		}
	}
}

// publishCommand sends one command on this process's way to the terminals.
func (s *Server) publishCommand(ctx context.Context, ref posfleet.TerminalRef, cmd posfleet.Command) error {
	if s.brk != nil {
		return s.brk.SendCommand(ctx, ref, cmd) // broker.ErrNoSession until the terminal has a session
	}
	if s.src != nil {
		payload, err := json.Marshal(cmd)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return s.src.Publish(pctx, posfleet.Topic(ref, posfleet.ChannelCommand), payload)
	}
	return errors.New("no broker in this process")
}
