package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

const (
	emqxToken = "token-for-emqx"
	secret1   = "secret-of-terminal-000001"
)

// emqxServer serves the EMQX endpoints backed by a real registry holding
// acme:T-0001 and acme:T-0002.
func emqxServer(t *testing.T) *httptest.Server {
	t.Helper()
	reg, err := registry.Open(context.Background(), storetest.SQLite(t), registry.Options{HashMemoryKiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	csv := "tenant,terminal,model,merchant,site,region,lat,lon,secret\n" +
		"acme,T-0001,A920,M1,S1,north,,," + secret1 + "\n" +
		"acme,T-0002,A920,M1,S1,north,,,secret-of-terminal-000002\n"
	if _, err := reg.Import(context.Background(), strings.NewReader(csv), nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.EMQXHandler(web.EMQXOptions{Authenticator: reg, Token: emqxToken, Metrics: prometheus.NewRegistry()}))
	t.Cleanup(srv.Close)
	return srv
}

// post sends body as EMQX does and returns the status and the "result".
func emqxPost(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, ""
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, EMQX wants application/json", ct)
	}
	var out struct {
		Result      string `json:"result"`
		IsSuperuser *bool  `json:"is_superuser"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("response %q: %v", b, err)
	}
	if out.IsSuperuser == nil || *out.IsSuperuser {
		t.Errorf("is_superuser = %v, want false: a terminal is never exempt from the ACL", out.IsSuperuser)
	}
	return resp.StatusCode, out.Result
}

func TestEMQXAuthn(t *testing.T) {
	srv := emqxServer(t)
	url := srv.URL + "/emqx/authn"
	// The body is EMQX's configured template:
	// {"username":"${username}","password":"${password}","clientid":"${clientid}"}
	cases := []struct {
		name, token, body string
		status            int
		result            string
	}{
		{"allow", emqxToken, `{"username":"acme:T-0001","password":"` + secret1 + `","clientid":"acme:T-0001"}`, 200, "allow"},
		{"wrong secret", emqxToken, `{"username":"acme:T-0001","password":"secret-of-terminal-000002","clientid":"acme:T-0001"}`, 200, "deny"},
		{"unknown terminal", emqxToken, `{"username":"acme:T-0404","password":"` + secret1 + `","clientid":"acme:T-0404"}`, 200, "deny"},
		{"client id not the username", emqxToken, `{"username":"acme:T-0001","password":"` + secret1 + `","clientid":"acme:T-0002"}`, 200, "deny"},
		{"empty password", emqxToken, `{"username":"acme:T-0001","password":"","clientid":"acme:T-0001"}`, 200, "deny"},
		{"not a terminal: EMQX's next authenticator decides", emqxToken, `{"username":"posfleet-collector","password":"x","clientid":"c1"}`, 200, "ignore"},
		{"extra fields EMQX may send", emqxToken, `{"username":"acme:T-0001","password":"` + secret1 + `","clientid":"acme:T-0001","peerhost":"127.0.0.1","proto_ver":"4"}`, 200, "allow"},
		{"no token", "", `{"username":"acme:T-0001","password":"` + secret1 + `","clientid":"acme:T-0001"}`, 401, ""},
		{"wrong token", "guess", `{"username":"acme:T-0001","password":"` + secret1 + `","clientid":"acme:T-0001"}`, 401, ""},
		{"not JSON", emqxToken, `username=acme`, 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, result := emqxPost(t, url, c.token, c.body)
			if status != c.status || result != c.result {
				t.Errorf("got %d %q, want %d %q", status, result, c.status, c.result)
			}
		})
	}
	t.Run("GET is not served", func(t *testing.T) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

func TestEMQXAuthz(t *testing.T) {
	srv := emqxServer(t)
	url := srv.URL + "/emqx/authz"
	// EMQX's template: {"username":"${username}","clientid":"${clientid}","topic":"${topic}","action":"${action}"}
	req := func(user, client, topic, action string) string {
		b, _ := json.Marshal(map[string]string{"username": user, "clientid": client, "topic": topic, "action": action})
		return string(b)
	}
	cases := []struct {
		name, body, result string
	}{
		{"publish own heartbeat", req("acme:T-0001", "acme:T-0001", "fleet/v1/acme/T-0001/hb", "publish"), "allow"},
		{"publish own status (the will)", req("acme:T-0001", "acme:T-0001", "fleet/v1/acme/T-0001/status", "publish"), "allow"},
		{"publish as another terminal", req("acme:T-0001", "acme:T-0001", "fleet/v1/acme/T-0002/hb", "publish"), "deny"},
		{"publish as another tenant", req("acme:T-0001", "acme:T-0001", "fleet/v1/other/T-0001/hb", "publish"), "deny"},
		{"publish own cmd", req("acme:T-0001", "acme:T-0001", "fleet/v1/acme/T-0001/cmd", "publish"), "deny"},
		{"subscribe own cmd", req("acme:T-0001", "acme:T-0001", "fleet/v1/acme/T-0001/cmd", "subscribe"), "allow"},
		{"subscribe another's cmd", req("acme:T-0001", "acme:T-0001", "fleet/v1/acme/T-0002/cmd", "subscribe"), "deny"},
		{"subscribe everything", req("acme:T-0001", "acme:T-0001", "fleet/v1/#", "subscribe"), "deny"},
		{"unknown action", req("acme:T-0001", "acme:T-0001", "fleet/v1/acme/T-0001/hb", "all"), "deny"},
		{"client id not the username", req("acme:T-0001", "acme:T-0002", "fleet/v1/acme/T-0001/hb", "publish"), "deny"},
		{"not a terminal: EMQX's next authorizer decides", req("posfleet-collector", "c1", "$share/posfleet/fleet/v1/#", "subscribe"), "ignore"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, result := emqxPost(t, url, emqxToken, c.body)
			if status != 200 || result != c.result {
				t.Errorf("got %d %q, want 200 %q", status, result, c.result)
			}
		})
	}
}

// slowAuthenticator cannot decide: the registry is unavailable.
type slowAuthenticator struct{}

func (slowAuthenticator) Authenticate(ctx context.Context, _ string, _ []byte) (posfleet.TerminalRef, error) {
	return posfleet.TerminalRef{}, context.DeadlineExceeded
}

func TestEMQXAuthnUnavailable(t *testing.T) {
	srv := httptest.NewServer(web.EMQXHandler(web.EMQXOptions{Authenticator: slowAuthenticator{}, Token: emqxToken}))
	defer srv.Close()
	// A 5xx is "ignore" to EMQX: never an allow.
	status, _ := emqxPost(t, srv.URL+"/emqx/authn", emqxToken, `{"username":"acme:T-0001","password":"`+secret1+`","clientid":"acme:T-0001"}`)
	if status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", status)
	}
}

// TestEMQXBoundsFailuresPerPeer: failed verifications through EMQX are
// bounded per terminal address (peerhost) as on the embedded broker: once
// an address has spent its budget on wrong secrets, even a right secret
// from it is refused without a verification, while another address gets in.
func TestEMQXBoundsFailuresPerPeer(t *testing.T) {
	srv := emqxServer(t)
	authn := func(user, password, peer string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"username": user, "password": password, "clientid": user, "peerhost": peer})
		code, result := emqxPost(t, srv.URL+"/emqx/authn", emqxToken, string(body))
		if code != http.StatusOK {
			t.Fatalf("authn: %d", code)
		}
		return result
	}
	// Three wrong secrets for each of two terminals: within each username's
	// budget, over the address's (5 in a burst).
	for i := 0; i < 3; i++ {
		for _, user := range []string{"acme:T-0001", "acme:T-0002"} {
			if got := authn(user, "wrong secret, long enough", "192.0.2.7"); got != "deny" {
				t.Fatalf("wrong secret: %s", got)
			}
		}
	}
	if got := authn("acme:T-0001", secret1, "192.0.2.7"); got != "deny" {
		t.Errorf("right secret from an address over its budget: %s, want deny", got)
	}
	if got := authn("acme:T-0001", secret1, "198.51.100.9"); got != "allow" {
		t.Errorf("right secret from another address: %s, want allow", got)
	}
}
