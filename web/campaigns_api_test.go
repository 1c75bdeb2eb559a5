package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/web"
)

// fakeCampaigns is web.Campaigns in memory: c-acme (tenant acme) and
// c-other (tenant other).
type fakeCampaigns struct {
	mu      sync.Mutex
	byID    map[string]*posfleet.Campaign
	created []string // tenant/by/model
	acts    []string // id/action/by/note
}

var _ web.Campaigns = (*fakeCampaigns)(nil)

func newFakeCampaigns() *fakeCampaigns {
	f := &fakeCampaigns{byID: map[string]*posfleet.Campaign{}}
	for _, c := range []posfleet.Campaign{
		{ID: "c-acme", Tenant: "acme", State: posfleet.CampaignRunning, Spec: posfleet.CampaignSpec{Name: "A920 to 2.5.2", Model: "A920", Target: "2.5.2"}},
		{ID: "c-other", Tenant: "other", State: posfleet.CampaignPaused, Spec: posfleet.CampaignSpec{Name: "S920 to 3.0.0", Model: "S920", Target: "3.0.0"}},
	} {
		c := c
		f.byID[c.ID] = &c
	}
	return f
}

func (f *fakeCampaigns) ListCampaigns(_ context.Context, tenant string) ([]posfleet.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []posfleet.Campaign{}
	for _, id := range []string{"c-acme", "c-other"} {
		if c := f.byID[id]; tenant == "" || c.Tenant == tenant {
			out = append(out, *c)
		}
	}
	return out, nil
}

func (f *fakeCampaigns) Campaign(_ context.Context, id string) (posfleet.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[id]
	if !ok {
		return posfleet.Campaign{}, posfleet.Errorf(posfleet.NotFound, "campaign_not_found", "no such campaign")
	}
	return *c, nil
}

func (f *fakeCampaigns) CampaignTerminals(ctx context.Context, id string, state posfleet.CampaignTerminalState, limit int) ([]posfleet.CampaignTerminal, error) {
	if _, err := f.Campaign(ctx, id); err != nil {
		return nil, err
	}
	all := []posfleet.CampaignTerminal{{Terminal: "T-1", State: posfleet.CTInstalled, From: "2.4.1"}, {Terminal: "T-2", State: posfleet.CTQueued, From: "2.4.1"}}
	out := []posfleet.CampaignTerminal{}
	for _, t := range all {
		if (state == "" || t.State == state) && len(out) < limit {
			out = append(out, t)
		}
	}
	return out, nil
}

func (f *fakeCampaigns) CampaignEvents(ctx context.Context, id string) ([]posfleet.CampaignEvent, error) {
	if _, err := f.Campaign(ctx, id); err != nil {
		return nil, err
	}
	return []posfleet.CampaignEvent{{Kind: "created", By: "ana"}}, nil
}

func (f *fakeCampaigns) PreviewCampaign(_ context.Context, tenant string, spec posfleet.CampaignSpec) (posfleet.CampaignPreview, error) {
	if spec.Model == "" {
		return posfleet.CampaignPreview{}, posfleet.Errorf(posfleet.Invalid, "bad_campaign", "model: required")
	}
	return posfleet.CampaignPreview{Selected: 3, Versions: map[string]int{"2.4.1": 3}, WaveSizes: []int{1, 2}}, nil
}

func (f *fakeCampaigns) CreateCampaign(ctx context.Context, tenant string, spec posfleet.CampaignSpec, by string) (posfleet.Campaign, error) {
	if _, err := f.PreviewCampaign(ctx, tenant, spec); err != nil {
		return posfleet.Campaign{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, tenant+"/"+by+"/"+spec.Model)
	c := posfleet.Campaign{ID: "c-new", Tenant: tenant, Spec: spec, State: posfleet.CampaignRunning, CreatedBy: by}
	return c, nil
}

func (f *fakeCampaigns) ActOnCampaign(_ context.Context, id string, action posfleet.CampaignAction, by, note string) (posfleet.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[id]
	if !ok {
		return posfleet.Campaign{}, posfleet.Errorf(posfleet.NotFound, "campaign_not_found", "no such campaign")
	}
	f.acts = append(f.acts, id+"/"+string(action)+"/"+by+"/"+note)
	return *c, nil
}

func newCampaignFixture(t *testing.T) (*alarmFixture, *fakeCampaigns) {
	fc := newFakeCampaigns()
	f := newAlarmFixture(t, func(o *web.Options) { o.Campaigns = fc })
	return f, fc
}

func campaignIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var out struct{ Campaigns []posfleet.Campaign }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var ids []string
	for _, c := range out.Campaigns {
		ids = append(ids, c.ID)
	}
	return ids
}

// TestCampaignAPITenancy: a tenant sees and acts on its own campaigns
// only; another tenant's is not found; an administrator sees every
// tenant's and may narrow the list.
func TestCampaignAPITenancy(t *testing.T) {
	f, fc := newCampaignFixture(t)
	for _, tc := range []struct {
		token, path string
		want        string
	}{
		{"acme", "/api/v1/campaigns", "c-acme"},
		{"other", "/api/v1/campaigns", "c-other"},
		{"admin", "/api/v1/campaigns", "c-acme c-other"},
		{"admin", "/api/v1/campaigns?tenant=other", "c-other"},
		{"admin", "/api/v1/campaigns?state=paused", "c-other"},
	} {
		st, body := f.call(t, tc.token, "GET", tc.path, "")
		if got := strings.Join(campaignIDs(t, body), " "); st != http.StatusOK || got != tc.want {
			t.Errorf("%s GET %s: %d %s, want %s", tc.token, tc.path, st, got, tc.want)
		}
	}
	if st, _ := f.call(t, "acme", "GET", "/api/v1/campaigns?tenant=other", ""); st != http.StatusNotFound {
		t.Errorf("acme lists other's campaigns: %d, want 404", st)
	}
	for _, path := range []string{"/api/v1/campaigns/c-other", "/api/v1/campaigns/c-other/terminals", "/api/v1/campaigns/c-other/events", "/api/v1/campaigns/nope"} {
		if st, body := f.call(t, "acme", "GET", path, ""); st != http.StatusNotFound {
			t.Errorf("acme GET %s: %d %s, want 404", path, st, body)
		}
	}
	if st, body := f.call(t, "acme", "POST", "/api/v1/campaigns/c-other/pause", `{"note":"mine now"}`); st != http.StatusNotFound {
		t.Errorf("acme pauses other's campaign: %d %s, want 404", st, body)
	}
	st, body := f.call(t, "acme", "GET", "/api/v1/campaigns/c-acme/terminals?state=queued", "")
	if st != http.StatusOK || !strings.Contains(string(body), `"T-2"`) || strings.Contains(string(body), `"T-1"`) {
		t.Errorf("terminals?state=queued: %d %s", st, body)
	}
	if st, _ := f.call(t, "acme", "GET", "/api/v1/campaigns/c-acme/terminals?state=lost", ""); st != http.StatusBadRequest {
		t.Errorf("unknown terminal state: %d, want 400", st)
	}
	if st, _ := f.call(t, "acme", "GET", "/api/v1/campaigns/c-acme/terminals?limit=0", ""); st != http.StatusBadRequest {
		t.Errorf("limit 0: %d, want 400", st)
	}
	if st, body := f.call(t, "acme", "GET", "/api/v1/campaigns/c-acme/events", ""); st != http.StatusOK || !strings.Contains(string(body), `"created"`) {
		t.Errorf("events: %d %s", st, body)
	}
	if len(fc.acts) != 0 {
		t.Errorf("actions done: %v", fc.acts)
	}
}

const campaignBody = `{"name":"A920 to 2.5.2","model":"A920","target":"2.5.2",
	"package":{"url":"https://fw.example/2.5.2.bin","sha256":"` + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + `"},
	"select":{"regions":["north"]},
	"waves":[{"count":1,"soak":"2h"},{"percent":100,"soak":"4h"}],
	"max_in_flight":5,"window":{"mode":"fixed","start":"02:00","end":"05:00"}}`

// TestCampaignAPICreate: a tenant's campaign is its own; an
// administrator names the tenant; the body is strict JSON; actions carry
// the caller and the note.
func TestCampaignAPICreate(t *testing.T) {
	f, fc := newCampaignFixture(t)
	st, body := f.call(t, "acme", "POST", "/api/v1/campaigns/preview", campaignBody)
	if st != http.StatusOK || !strings.Contains(string(body), `"wave_sizes"`) {
		t.Fatalf("preview: %d %s", st, body)
	}
	st, body = f.call(t, "acme", "POST", "/api/v1/campaigns", campaignBody)
	if st != http.StatusCreated || !strings.Contains(string(body), `"c-new"`) {
		t.Fatalf("create: %d %s", st, body)
	}
	if len(fc.created) != 1 || fc.created[0] != "acme/acme-script/A920" {
		t.Errorf("created %v", fc.created)
	}
	withTenant := func(tn string) string { return `{"tenant":"` + tn + `",` + strings.TrimPrefix(campaignBody, "{") }
	for _, tc := range []struct {
		token, body string
		want        int
	}{
		{"acme", withTenant("other"), http.StatusNotFound},
		{"admin", campaignBody, http.StatusBadRequest},
		{"admin", withTenant("other"), http.StatusCreated},
		{"acme", strings.Replace(campaignBody, `"model"`, `"Model"`, 1), http.StatusBadRequest},
		{"acme", strings.Replace(campaignBody, `"max_in_flight"`, `"max_inflight"`, 1), http.StatusBadRequest},
		{"acme", strings.Replace(campaignBody, `"2h"`, `"two hours"`, 1), http.StatusBadRequest},
		{"acme", strings.Replace(campaignBody, `"A920"`, `""`, 1), http.StatusBadRequest},
	} {
		if st, body := f.call(t, tc.token, "POST", "/api/v1/campaigns", tc.body); st != tc.want {
			t.Errorf("%s create %.80s: %d %s, want %d", tc.token, tc.body, st, body, tc.want)
		}
	}
	if fc.created[len(fc.created)-1] != "other/admin-script/A920" {
		t.Errorf("administrator's campaign: %v", fc.created)
	}
	if st, body := f.call(t, "acme", "POST", "/api/v1/campaigns/c-acme/pause", `{"note":"looking at declines"}`); st != http.StatusOK {
		t.Errorf("pause: %d %s", st, body)
	}
	if st, body := f.call(t, "acme", "POST", "/api/v1/campaigns/c-acme/resume", ""); st != http.StatusOK {
		t.Errorf("resume without a body: %d %s", st, body)
	}
	if st, _ := f.call(t, "acme", "POST", "/api/v1/campaigns/c-acme/abort", `{"note":"4111111111111111"}`); st != http.StatusBadRequest {
		t.Errorf("a note with a card number: %d, want 400", st)
	}
	if got := strings.Join(fc.acts, " "); got != "c-acme/pause/acme-script/looking at declines c-acme/resume/acme-script/" {
		t.Errorf("actions %s", got)
	}
}
