package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/broker"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/web"
)

// TestErrorTable: every error reaches an API client (JSON) and a browser
// (HTML) with the same status, wrapped or not, and the sentinels of the
// other packages carry the status and code the API has always answered.
func TestErrorTable(t *testing.T) {
	_, policyErr := health.ParsePolicy([]byte("models: [\n"))
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
		msg    string // a part of the message; "" skips the check
	}{
		{"plain error", errors.New("disk on fire"), 500, "internal", "something went wrong"},
		{"internal kind", posfleet.Errorf(posfleet.Internal, "x", "secret detail"), 500, "internal", "something went wrong"},
		{"invalid", posfleet.Errorf(posfleet.Invalid, "", "bad"), 400, "bad_request", "bad"},
		{"unauthorized", posfleet.KindError(posfleet.Unauthorized, "detail"), 401, "unauthorized", "sign in"},
		{"forbidden", posfleet.Errorf(posfleet.Forbidden, "forbidden", "no"), 403, "forbidden", "no"},
		{"too large", posfleet.Errorf(posfleet.TooLarge, "too_large", "big"), 413, "too_large", "big"},
		{"rate limited", posfleet.KindError(posfleet.TooManyRequests, "detail"), 429, "too_many_requests", "wait a minute"},
		{"unavailable", posfleet.Errorf(posfleet.Unavailable, "no_broker", "none"), 503, "no_broker", "none"},
		{"health.ErrUnknownTerminal", fmt.Errorf("mark serviced: %w", health.ErrUnknownTerminal), 404, "not_found", "no such page or terminal"},
		{"registry.ErrNotFound", fmt.Errorf("get: %w", registry.ErrNotFound), 404, "not_found", "no such page or terminal"},
		{"auth.ErrNotFound", auth.ErrNotFound, 404, "not_found", ""},
		{"broker.ErrNoSession", fmt.Errorf("broker: send command: %w", broker.ErrNoSession), 409, "not_reachable", "nothing was queued"},
		{"health.PolicyError", fmt.Errorf("set policy: %w", policyErr), 400, "bad_policy", "firmware policy: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			web.WriteError(rec, tc.err)
			var body struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("JSON: %v: %s", err, rec.Body)
			}
			if rec.Code != tc.status || body.Error.Code != tc.code || !strings.Contains(body.Error.Message, tc.msg) {
				t.Errorf("JSON: %d %s, want %d %s with %q", rec.Code, rec.Body, tc.status, tc.code, tc.msg)
			}
			if strings.Contains(rec.Body.String(), "secret detail") || strings.Contains(rec.Body.String(), "disk on fire") {
				t.Errorf("JSON shows the detail of a server failure: %s", rec.Body)
			}
			page := httptest.NewRecorder()
			web.RenderError(page, httptest.NewRequest("GET", "/", nil), tc.err)
			if page.Code != tc.status || !strings.Contains(page.Body.String(), body.Error.Message) {
				t.Errorf("HTML: %d %q, want %d %q", page.Code, page.Body, tc.status, body.Error.Message)
			}
		})
	}
	t.Run("bad_policy has its line", func(t *testing.T) {
		rec := httptest.NewRecorder()
		web.WriteError(rec, &health.PolicyError{Line: 3, Reason: "why"})
		want := "{\n  \"error\": {\n    \"code\": \"bad_policy\",\n    \"line\": 3,\n    \"message\": \"firmware policy: line 3: why\"\n  }\n}\n"
		if rec.Code != 400 || rec.Body.String() != want {
			t.Errorf("%d %q, want 400 %q", rec.Code, rec.Body, want)
		}
	})
}

// TestServicedNeverConnected: marking a terminal serviced that never
// connected is the same status on the page as in the API (404, the kind
// of health.ErrUnknownTerminal), with the page's explanation.
func TestServicedNeverConnected(t *testing.T) {
	f := newUIFixture(t, func(o *web.Options) { o.Directory = oneTerminal{"acme", "T-9"} })
	f.seed(t)
	c, csrf := f.session(t, "ops-acme")
	f.engine.Provision(posfleet.TerminalRef{Tenant: "acme", Terminal: "T-9"})
	resp, body := post(t, c, f.srv.URL+"/terminals/acme/T-9/serviced", url.Values{"csrf": {csrf}, "note": {"x"}})
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "nothing to clear") {
		t.Errorf("serviced form of a terminal that never connected: %s, want 404 with the reason: %.300s", resp.Status, body)
	}
}

// oneTerminal is a registry of one provisioned terminal.
type oneTerminal posfleet.TerminalRef

func (o oneTerminal) Get(_ context.Context, ref posfleet.TerminalRef) (posfleet.RegisteredTerminal, error) {
	if ref != posfleet.TerminalRef(o) {
		return posfleet.RegisteredTerminal{}, fmt.Errorf("get %s: %w", ref, registry.ErrNotFound)
	}
	return posfleet.RegisteredTerminal{TerminalRef: ref, Model: "A920", Site: "Shop 9"}, nil
}

// TestNewRefusesBadOptions: a configuration error is New's error, never a
// panic or a server half-built.
func TestNewRefusesBadOptions(t *testing.T) {
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	for _, tc := range []struct {
		name string
		opts web.Options
		want string
	}{
		{"short session key", web.Options{Users: users, SessionKey: []byte("short")}, "session key"},
		{"negative session TTL", web.Options{Users: users, SessionKey: make([]byte, 32), SessionTTL: -time.Hour}, "session TTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := web.New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) || h != nil {
				t.Errorf("New = %v, %v; want an error about %s", h, err, tc.want)
			}
		})
	}
	if _, err := web.New(web.Options{}); err != nil {
		t.Errorf("New with no options (only /healthz and /metrics): %v", err)
	}
}
