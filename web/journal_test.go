package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/web"
)

// memJournal is an in-memory policy history and visit log.
type memJournal struct {
	mu       sync.Mutex
	versions []web.PolicyVersion // oldest first
	visits   []string
}

func (j *memJournal) save(_ context.Context, body []byte, by string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.versions = append(j.versions, web.PolicyVersion{Version: int64(len(j.versions) + 1), CreatedAt: time.Now().UTC(), CreatedBy: by, Body: string(body)})
	return nil
}

func (j *memJournal) PolicyVersions(_ context.Context, n int) ([]web.PolicyVersion, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []web.PolicyVersion
	for i := len(j.versions) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, j.versions[i])
	}
	return out, nil
}

func (j *memJournal) AddVisit(_ context.Context, ref posfleet.TerminalRef, at time.Time, by, note string, cleared []posfleet.FlagName) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var names []string
	for _, c := range cleared {
		names = append(names, string(c))
	}
	j.visits = append(j.visits, ref.String()+"|"+by+"|"+note+"|"+strings.Join(names, ","))
	return nil
}

func withJournal(j *memJournal) func(*web.Options) {
	return func(o *web.Options) { o.SavePolicy, o.PolicyHistory, o.Visits = j.save, j, j }
}

// TestPolicyHistory: every PUT /api/v1/policy is a version, by its
// author; GET /api/v1/policy/history lists them newest first, and a
// tenant's token reads only its own models' entries of each.
func TestPolicyHistory(t *testing.T) {
	j := &memJournal{}
	f := newAPIFixture(t, withJournal(j))
	f.seed(t) // acme and other both run A920
	bodies := []string{
		"models:\n  A920: {target: 2.4.1}\n  P2: {target: 1.0.0}\n",
		"models:\n  A920: {target: 2.4.2}\n  P2: {target: 1.0.1}\n",
	}
	for _, b := range bodies {
		if st, body := f.call(t, f.admin, "PUT", "/api/v1/policy", b); st != http.StatusOK {
			t.Fatalf("PUT = %d %s", st, body)
		}
	}
	if st, _ := f.call(t, f.acme, "PUT", "/api/v1/policy", bodies[0]); st != http.StatusForbidden {
		t.Errorf("a tenant's PUT = %d", st)
	}
	var got struct{ Versions []web.PolicyVersion }
	read := func(token, query string) int {
		got.Versions = nil
		st, b := f.call(t, token, "GET", "/api/v1/policy/history"+query, "")
		if st == http.StatusOK {
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	if st := read(f.admin, ""); st != http.StatusOK || len(got.Versions) != 2 || got.Versions[0].Version != 2 || got.Versions[0].CreatedBy != "admin" || got.Versions[0].Body != bodies[1] || got.Versions[0].CreatedAt.IsZero() {
		t.Fatalf("admin's history: %d %+v", st, got.Versions)
	}
	if st := read(f.acme, "?limit=1"); st != http.StatusOK || len(got.Versions) != 1 || !strings.Contains(got.Versions[0].Body, "2.4.2") || strings.Contains(got.Versions[0].Body, "P2") {
		t.Errorf("acme's history: %d %+v", st, got.Versions)
	}
	if st := read(f.admin, "?limit=0"); st != http.StatusBadRequest {
		t.Errorf("limit=0: %d", st)
	}
}

// TestServicedRecordsVisit: a visit the engine applied is recorded with
// the flags it cleared, by whom and the note.
func TestServicedRecordsVisit(t *testing.T) {
	j := &memJournal{}
	f := newAPIFixture(t, withJournal(j))
	f.seed(t)
	st, b := f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-1/serviced", `{"note":"printer cleaned"}`)
	if st != http.StatusOK {
		t.Fatalf("serviced = %d %s", st, b)
	}
	if len(j.visits) != 1 || !strings.HasPrefix(j.visits[0], "acme:T-1|acme-script|printer cleaned|") || strings.HasSuffix(j.visits[0], "|") {
		t.Errorf("visits = %q", j.visits)
	}
	if st, _ := f.call(t, f.acme, "POST", "/api/v1/terminals/acme/T-9/serviced", `{}`); st == http.StatusOK || len(j.visits) != 1 {
		t.Errorf("a refused visit was recorded: %d %q", st, j.visits)
	}
}
