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
//
// Every process serves /healthz and /metrics on --http-addr whatever its
// roles, so that each one can be probed and scraped.
type Roles struct {
	Broker, Collector, Web bool
}

// AllRoles is posfleet in one process, the default.
var AllRoles = Roles{Broker: true, Collector: true, Web: true}

// ParseRoles reads a comma-separated subset of broker, collector and web.
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
		case "":
		default:
			return Roles{}, fmt.Errorf("serve: --roles: unknown role %q (want broker, collector, web)", n)
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
	return strings.Join(s, ",")
}

// check refuses combinations that would accept data with nowhere to put
// it, or run a collector with nothing to collect.
func (r Roles) check(haveSource bool) error {
	switch {
	case !r.Broker && !r.Collector && !r.Web:
		return errors.New("serve: --roles: no role (want a subset of broker,collector,web)")
	case r.Broker && !r.Collector:
		return errors.New("serve: --roles: the broker role needs the collector role in the same process (the broker hands every message to it before acknowledging)")
	case r.Collector && !r.Broker && !haveSource:
		return errors.New("serve: --roles: a collector without the broker role needs --mqtt-source (an external MQTT broker to consume from)")
	case haveSource && !r.Collector:
		return errors.New("serve: --mqtt-source needs the collector role")
	}
	return nil
}

// startSource starts the external-broker subscriber feeding the collector.
func (s *Server) startSource() error {
	opts := s.cfg.Source
	opts.Logger, opts.Metrics = s.log, s.metrics
	src, err := mqttsource.New(opts, s.col)
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
