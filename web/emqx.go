package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
)

// Authenticator checks a terminal's MQTT credentials (the registry).
//
// An error that is a context error, or has a method Temporary() bool
// returning true, means the check could not be made; any other error
// refuses the credentials.
type Authenticator interface {
	Authenticate(ctx context.Context, username string, password []byte) (posfleet.TerminalRef, error)
}

// SourceAuthenticator is an Authenticator that also bounds the failed
// verifications of each client address (the registry): EMQX passes the
// terminal's address as peerhost.
type SourceAuthenticator interface {
	AuthenticateFrom(ctx context.Context, username string, password []byte, source netip.Addr) (posfleet.TerminalRef, error)
}

// EMQXOptions configures the EMQX HTTP authentication and authorization endpoints.
type EMQXOptions struct {
	Authenticator Authenticator
	// Token is the bearer token EMQX must send (configured as a header of
	// its HTTP authenticator and authorizer); without it anyone reaching
	// the port could test secrets.
	Token   string
	Logger  *slog.Logger
	Metrics prometheus.Registerer
}

// EMQX's answers (EMQX 5 HTTP authn/authz: HTTP 200 with a JSON "result").
// "ignore" hands the decision to the next authenticator or authorizer of
// EMQX's chain; posfleet says it for usernames that are no terminal's, such
// as the collectors' account, which lives in EMQX's built-in database.
const (
	emqxAllow  = "allow"
	emqxDeny   = "deny"
	emqxIgnore = "ignore"
)

// emqxRequest is what EMQX is configured to send (see deploy/README.md):
//
//	authn: {"username":"${username}","password":"${password}","clientid":"${clientid}","peerhost":"${peerhost}"}
//	authz: {"username":"${username}","clientid":"${clientid}","topic":"${topic}","action":"${action}"}
type emqxRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	ClientID string `json:"clientid"`
	// PeerHost is the terminal's address: failed verifications are
	// bounded per address as on the embedded broker. Optional.
	PeerHost string `json:"peerhost"`
	Topic    string `json:"topic"`
	Action   string `json:"action"`
}

type emqxResponse struct {
	Result      string `json:"result"`
	IsSuperuser bool   `json:"is_superuser"`
}

// maxEMQXRequest bounds a request body: EMQX sends a few short strings.
const maxEMQXRequest = 8 << 10

// EMQXHandler serves POST /emqx/authn and POST /emqx/authz in the format of
// EMQX 5's HTTP authenticator and authorizer, with the rules of the
// embedded broker: a terminal connects with client ID = username =
// {tenant}:{terminal} and its secret, publishes only under its own topics
// (posfleet.MayPublish) and subscribes only to its own cmd topic
// (posfleet.MaySubscribe).
func EMQXHandler(opts EMQXOptions) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "emqx_auth")
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posfleet_emqx_auth_requests_total",
		Help: "Requests of EMQX to the HTTP authentication and authorization endpoints, by endpoint and answer.",
	}, []string{"endpoint", "result"})
	if opts.Metrics != nil {
		if err := opts.Metrics.Register(results); err != nil {
			log.Warn("metrics not registered", "err", err)
		}
	}
	authorized := func(r *http.Request) bool {
		want := "Bearer " + opts.Token
		got := r.Header.Get("Authorization")
		return opts.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	}
	serve := func(endpoint string, decide func(context.Context, emqxRequest) (string, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !authorized(r) {
				results.WithLabelValues(endpoint, "unauthorized").Inc()
				http.Error(w, "bearer token required", http.StatusUnauthorized)
				return
			}
			var req emqxRequest
			// Keys must match exactly (EMQX sends lower-case ones); other
			// keys an operator added to the request template pass.
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEMQXRequest))
			if err == nil {
				err = checkKeys(body, reflect.TypeFor[emqxRequest](), true)
			}
			if err == nil {
				err = json.Unmarshal(body, &req)
			}
			if err != nil {
				results.WithLabelValues(endpoint, "bad_request").Inc()
				http.Error(w, "want a JSON object", http.StatusBadRequest)
				return
			}
			result, err := decide(r.Context(), req)
			if err != nil {
				// A 5xx makes EMQX take the answer as "ignore" and go on
				// down its chain; with posfleet last, that is a refusal,
				// and the terminal retries.
				results.WithLabelValues(endpoint, "unavailable").Inc()
				log.Warn("cannot decide now", "endpoint", endpoint, "username", emqxClip(req.Username, 64), "err", err)
				http.Error(w, "cannot decide now", http.StatusServiceUnavailable)
				return
			}
			results.WithLabelValues(endpoint, result).Inc()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			json.NewEncoder(w).Encode(emqxResponse{Result: result})
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /emqx/authn", serve("authn", func(ctx context.Context, req emqxRequest) (string, error) {
		ref, err := posfleet.ParseClientID(req.Username)
		if err != nil {
			return emqxIgnore, nil // not a terminal: EMQX's own users
		}
		if req.ClientID != req.Username {
			log.Debug("connect refused: client id differs from username", "username", req.Username)
			return emqxDeny, nil
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var got posfleet.TerminalRef
		src, perr := netip.ParseAddr(req.PeerHost)
		if sa, ok := opts.Authenticator.(SourceAuthenticator); ok && perr == nil {
			got, err = sa.AuthenticateFrom(ctx, req.Username, []byte(req.Password), src.Unmap())
		} else {
			got, err = opts.Authenticator.Authenticate(ctx, req.Username, []byte(req.Password))
		}
		switch {
		case err != nil && emqxUnavailable(err):
			return "", err
		case err != nil:
			log.Debug("connect refused", "username", req.Username, "err", err)
			return emqxDeny, nil
		case got != ref:
			log.Error("authenticator returned another terminal than the username names; refusing", "username", req.Username, "got", got.String())
			return emqxDeny, nil
		}
		return emqxAllow, nil
	}))
	mux.HandleFunc("POST /emqx/authz", serve("authz", func(_ context.Context, req emqxRequest) (string, error) {
		ref, err := posfleet.ParseClientID(req.Username)
		if err != nil {
			return emqxIgnore, nil
		}
		if req.ClientID != req.Username {
			return emqxDeny, nil
		}
		ok := false
		switch req.Action {
		case "publish":
			ok = posfleet.MayPublish(ref, req.Topic)
		case "subscribe":
			ok = posfleet.MaySubscribe(ref, req.Topic)
		}
		if !ok {
			log.Debug("denied", "terminal", ref.String(), "action", emqxClip(req.Action, 16), "topic", emqxClip(req.Topic, 256))
			return emqxDeny, nil
		}
		return emqxAllow, nil
	}))
	return mux
}

func emqxUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func emqxClip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
