package web

import (
	"log/slog"
	"net/http"
)

// WriteError and RenderError expose the two ways an error reaches a
// client, so that a test checks they agree on every kind.
func WriteError(w http.ResponseWriter, err error) { writeError(w, slog.New(slog.DiscardHandler), err) }

func RenderError(w http.ResponseWriter, r *http.Request, err error) {
	(&Server{log: slog.New(slog.DiscardHandler)}).renderError(w, r, err)
}
