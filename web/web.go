// Package web serves posfleet's HTTP side: the health and metrics endpoints
// now, the JSON API and the templ pages as they come.
package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one component's health: nil while it is up.
type Check func(ctx context.Context) error

// Options configures the HTTP handler.
type Options struct {
	// Checks are the components /healthz reports on, by name.
	Checks map[string]Check
	// Gatherer is what /metrics exposes; nil means the default registry.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// Handler returns the HTTP handler.
func Handler(opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := opts.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		status := http.StatusOK
		body := map[string]string{}
		for name, check := range opts.Checks {
			if err := check(ctx); err != nil {
				status = http.StatusServiceUnavailable
				body[name] = err.Error()
				log.Warn("health check failed", "check", name, "err", err)
			} else {
				body[name] = "ok"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	})
	return mux
}
