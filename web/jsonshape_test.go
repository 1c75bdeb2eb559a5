package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

// fakeHealth answers every query with one sparse value: nil slices and
// maps wherever the types allow, and lower-case data (model names,
// versions) so that any capital in a key is a field name.
type fakeHealth struct{}

var fakeRef = posfleet.TerminalRef{Tenant: "acme", Terminal: "t-1"}

func (fakeHealth) FleetSummary(string) health.FleetSummary {
	return health.FleetSummary{OpenIncidents: []health.Incident{{ID: "i-1", Tenant: "acme", Open: true, Terminals: []posfleet.TerminalRef{fakeRef}}}}
}
func (fakeHealth) Rows(string, posfleet.FlagName) []health.Row {
	return []health.Row{{Ref: fakeRef, Model: "a920"}}
}
func (fakeHealth) Site(posfleet.TerminalRef) (health.Site, bool) { return health.Site{}, true }
func (fakeHealth) Terminal(ref posfleet.TerminalRef) (health.TerminalHealth, bool) {
	return health.TerminalHealth{Ref: ref, Tenant: ref.Tenant, Terminal: ref.Terminal, Model: "a920",
		LastUpdate: &posfleet.UpdateAttempt{}, Heartbeat: &health.HeartbeatSummary{}}, true
}
func (fakeHealth) WorkList(string) []health.WorkItem {
	return []health.WorkItem{{Ref: fakeRef, Tenant: "acme", Terminal: "t-1"}}
}
func (fakeHealth) MarkServiced(posfleet.TerminalRef, string, string, time.Time) ([]posfleet.FlagName, error) {
	return nil, nil
}
func (fakeHealth) Incidents(string) []health.Incident { return nil }
func (fakeHealth) Policy() *health.Policy {
	return &health.Policy{Models: map[string]health.ModelPolicy{"a920": {Target: "1.2.0", URL: "https://fw.example/a920-1.2.0.bin", SHA256: strings.Repeat("ab", 32)}}}
}
func (fakeHealth) SetPolicy([]byte) error { return nil }

type fakeDirectory struct{}

func (fakeDirectory) Get(_ context.Context, ref posfleet.TerminalRef) (registry.Terminal, error) {
	return registry.Terminal{TerminalRef: ref, Model: "a920"}, nil
}

type fakeCommands struct{}

func (fakeCommands) Sent(posfleet.TerminalRef, posfleet.Command, string, time.Time) {}
func (fakeCommands) Unsent(posfleet.TerminalRef, string)                            {}
func (fakeCommands) List(posfleet.TerminalRef) []commands.Record {
	return []commands.Record{{SentBy: "ops"}}
}

type fakeCommander struct{}

func (fakeCommander) SendCommand(context.Context, posfleet.TerminalRef, posfleet.Command) error {
	return nil
}

// TestAPIJSONShape walks the JSON of every API endpoint: every key is
// lower case (snake_case) and no value is null (empty lists are []).
func TestAPIJSONShape(t *testing.T) {
	users, err := newUsers(t, auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer users.Close()
	ctx := context.Background()
	admin, _ := users.CreateToken(ctx, "admin", auth.AllTenants)
	users.AddUser(ctx, "ops", "acme", "correct horse battery")
	reg, err := registry.Open(context.Background(), storetest.SQLite(t), registry.Options{HashMemoryKiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key, Health: fakeHealth{}, Directory: fakeDirectory{},
		Commands: fakeCommands{}, Commander: fakeCommander{}, Provisioner: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/me", ""},
		{"GET", "/api/v1/fleet", ""},
		{"GET", "/api/v1/terminals", ""},
		{"GET", "/api/v1/terminals/acme/t-1", ""},
		{"POST", "/api/v1/terminals/acme/t-1/serviced", `{"note":"done"}`},
		{"POST", "/api/v1/terminals/acme/t-1/commands", `{"type":"update_firmware"}`},
		{"GET", "/api/v1/worklist", ""},
		{"GET", "/api/v1/incidents", ""},
		{"GET", "/api/v1/policy", ""},
		{"PUT", "/api/v1/policy", "models:\n  a920:\n    target: 1.2.0\n"},
		{"GET", "/api/v1/users", ""},
		{"POST", "/api/v1/terminals/import", "tenant,terminal,model,merchant,site,region,lat,lon\nacme,t-2,a920,m,s,north,,\n"},
		{"GET", "/api/v1/nothing", ""},
		{"POST", "/api/v1/terminals/acme/t-1/serviced", `{"nope":1}`},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%d: not JSON: %v", resp.StatusCode, err)
			}
			walkJSON(t, "$", v)
		})
	}
}

func walkJSON(t *testing.T, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case nil:
		t.Errorf("%s is null", path)
	case map[string]any:
		for k, e := range v {
			if strings.IndexFunc(k, unicode.IsUpper) >= 0 {
				t.Errorf("%s has the capitalised key %q", path, k)
			}
			walkJSON(t, path+"."+k, e)
		}
	case []any:
		for i, e := range v {
			walkJSON(t, path+"["+string(rune('0'+i%10))+"]", e)
		}
	}
}
