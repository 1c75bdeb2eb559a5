package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/posfleet/posfleet/mqttsource"
	"github.com/posfleet/posfleet/web"
)

// Roles says which parts of posfleet one process runs, so that web servers
// and collectors can scale out as separate processes.
//
//   - broker: the embedded MQTT broker; terminals connect to it. It hands
//     messages to the collector in the same process, so it needs the
//     collector role.
//   - collector: the spool and the InfluxDB writer. Without the broker role
//     it needs --mqtt-source (an external broker) to get messages from.
//   - web: the web UI, the JSON API and the EMQX authentication endpoints.
//   - health: the health engine on the whole stream, for a cluster. It
//     needs --mqtt-source and subscribes there to fleet/v1/# with a plain
//     (not shared) subscription and a persistent session (clean session
//     off, --health-client-id, QoS 1), so that it judges every message of
//     every terminal in order. It feeds only the health engine and the
//     command tracker (no spool, no InfluxDB: the collectors store), is
//     restored from its snapshot at start, and publishes the engine's view
//     to the database while it holds the lease "health" (healthview). Run
//     two for redundancy: both compute the same state, one writes.
//
// Which combine: broker needs collector; collector without broker needs
// --mqtt-source; health needs --mqtt-source and runs without broker and
// collector (it has a subscription of its own), alone or with web.
// Anything combines with web. The health view is published by the health
// role, and by a single box (broker and collector without --mqtt-source,
// the default), whose embedded broker sees the whole stream; a collector
// on the shared subscription sees only its share and does not publish.
//
// Every process serves /healthz and /metrics on --http-addr whatever its
// roles, so that each one can be probed and scraped.
type Roles struct {
	Broker, Collector, Web, Health bool
}

// AllRoles is posfleet in one process, the default.
var AllRoles = Roles{Broker: true, Collector: true, Web: true}

// ParseRoles reads a comma-separated subset of broker, collector, web and health.
func ParseRoles(names []string) (Roles, error) {
	var r Roles
	for _, n := range names {
		switch strings.TrimSpace(n) {
		case "broker":
			r.Broker = true
		case "collector":
			r.Collector = true
		case "web":
			r.Web = true
		case "health":
			r.Health = true
		case "":
		default:
			return Roles{}, fmt.Errorf("serve: --roles: unknown role %q (want broker, collector, web, health)", n)
		}
	}
	return r, nil
}

// String lists the roles as --roles takes them.
func (r Roles) String() string {
	var s []string
	if r.Broker {
		s = append(s, "broker")
	}
	if r.Collector {
		s = append(s, "collector")
	}
	if r.Web {
		s = append(s, "web")
	}
	if r.Health {
		s = append(s, "health")
	}
	return strings.Join(s, ",")
}

// publishesHealth tells whether the process publishes the health view:
// the health role, or one box whose embedded broker sees every message.
func (r Roles) publishesHealth(haveSource bool) bool {
	return r.Health || (r.Broker && r.Collector && !haveSource)
}

// check refuses combinations that would accept data with nowhere to put
// it, or run a collector with nothing to collect.
func (r Roles) check(haveSource bool) error {
	switch {
	case !r.Broker && !r.Collector && !r.Web && !r.Health:
		return errors.New("serve: --roles: no role (want a subset of broker,collector,web,health)")
	case r.Health && (r.Broker || r.Collector):
		return errors.New("serve: --roles: the health role runs without broker and collector (it consumes the whole stream on a subscription of its own); run it in a process of its own, alone or with web")
	case r.Health && !haveSource:
		return errors.New("serve: --roles: the health role needs --mqtt-source (the external MQTT broker whose whole stream it consumes)")
	case r.Broker && !r.Collector:
		return errors.New("serve: --roles: the broker role needs the collector role in the same process (the broker hands every message to it before acknowledging)")
	case r.Collector && !r.Broker && !haveSource:
		return errors.New("serve: --roles: a collector without the broker role needs --mqtt-source (an external MQTT broker to consume from)")
	case haveSource && !r.Collector && !r.Health:
		return errors.New("serve: --mqtt-source needs the collector or the health role")
	}
	return nil
}

// startSource starts the external-broker subscriber feeding the collector
// (shared subscription), or the health role's engine (the whole stream).
func (s *Server) startSource() error {
	opts := s.cfg.Source
	opts.Logger, opts.Metrics = s.log, s.metrics
	var sink mqttsource.Sink = s.col
	if s.cfg.Roles.Health {
		opts.ClientID, opts.Filter = s.cfg.HealthClientID, mqttsource.StreamFilter
		sink = newHealthSink(s.engine, s.cmds)
	}
	src, err := mqttsource.New(opts, sink)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.src, s.stopSource, s.sourceDone = src, cancel, done
	// A part of the server: its error, dropped before, now stops it.
	s.parts.Go(func() error {
		defer close(done)
		if err := src.Run(ctx); err != nil {
			return fmt.Errorf("serve: mqtt source: %w", err)
		}
		return nil
	})
	return nil
}

// stopSourceAndWait ends the subscriber's session, after the Accepts in
// flight are answered, before the collector closes under it.
func (s *Server) stopSourceAndWait() {
	if s.stopSource == nil {
		return
	}
	s.stopSource()
	<-s.sourceDone
	s.stopSource, s.src = nil, nil
}

// withEMQX adds the EMQX authentication endpoints to the web role's
// handler when a token for them is configured. Every role serves /healthz
// and /metrics; the pages and the API belong to the web role.
func (s *Server) withEMQX(h http.Handler) http.Handler {
	if !s.cfg.Roles.Web || s.cfg.EMQXToken == "" {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("/emqx/", web.EMQXHandler(web.EMQXOptions{Authenticator: s.reg, Token: s.cfg.EMQXToken, Logger: s.log, Metrics: s.metrics}))
	return mux
}
