package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves Go's runtime profiles on cfg.PprofAddr, a listener of
// its own: the public HTTP listener must never expose them, since they need
// no login and show memory contents such as goroutine arguments and the
// command line. The mux is built here rather than taken from
// http.DefaultServeMux, where importing net/http/pprof also registers them.
func (s *Server) startPprof() error {
	ln, err := net.Listen("tcp", s.cfg.PprofAddr)
	if err != nil {
		return fmt.Errorf("serve: pprof listener: %w", err)
	}
	s.pprofLn = ln
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		s.log.Warn("the profiling endpoint is reachable from other hosts; bind --pprof-addr to loopback", "pprof", a.String())
	}
	mux := http.NewServeMux()
	// Index also serves the named profiles: /debug/pprof/heap, goroutine,
	// allocs, block, mutex, threadcreate.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No WriteTimeout: a CPU profile or a trace streams for as long as its
	// ?seconds= asks.
	s.pprof = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.serve("pprof", s.pprof, ln)
	s.log.Info("profiling endpoint on", "pprof", ln.Addr().String())
	return nil
}

// stopPprof closes the profiling listener and any profile being streamed:
// a shutdown does not wait for a 30-second CPU profile.
func (s *Server) stopPprof() error {
	if s.pprof == nil {
		return nil
	}
	err := s.pprof.Close()
	s.pprof, s.pprofLn = nil, nil
	return err
}

// PprofAddr is the bound profiling address, nil when --pprof-addr is off.
func (s *Server) PprofAddr() net.Addr {
	if s.pprofLn == nil {
		return nil
	}
	return s.pprofLn.Addr()
}
