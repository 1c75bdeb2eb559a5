package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet"
)

// The firmware campaigns' API: list, preview, create, one
// campaign with its waves and gates, its terminals, its timeline, and the
// operators' actions. Tenant scoping is here: a campaign of another
// tenant is "not found"; an administrator of every tenant names the
// tenant a campaign is for.

// Limits of the campaign endpoints.
const (
	defaultCampaignTerminals = 1000
	maxCampaignTerminals     = 10_000
)

// errNoCampaign answers for a missing campaign and another tenant's alike.
var errNoCampaign = &posfleet.Error{Kind: posfleet.NotFound, Code: "not_found", Message: "no such campaign"}

// campaignActions are the actions, the last segment of their routes.
var campaignActions = []posfleet.CampaignAction{posfleet.CampaignPause, posfleet.CampaignResume, posfleet.CampaignAbort, posfleet.CampaignRollback}

// mountCampaignAPI adds /api/v1/campaigns.
func (s *Server) mountCampaignAPI() {
	s.mux.HandleFunc("GET /api/v1/campaigns", s.api(s.handleCampaignsAPI))
	s.mux.HandleFunc("POST /api/v1/campaigns", s.api(s.handleCampaignCreateAPI))
	s.mux.HandleFunc("POST /api/v1/campaigns/preview", s.api(s.handleCampaignPreviewAPI))
	s.mux.HandleFunc("GET /api/v1/campaigns/{id}", s.api(s.handleCampaignAPI))
	s.mux.HandleFunc("GET /api/v1/campaigns/{id}/terminals", s.api(s.handleCampaignTerminalsAPI))
	s.mux.HandleFunc("GET /api/v1/campaigns/{id}/events", s.api(s.handleCampaignEventsAPI))
	for _, a := range campaignActions {
		s.mux.HandleFunc("POST /api/v1/campaigns/{id}/"+string(a), s.api(s.handleCampaignActionAPI(a)))
	}
}

// CampaignForCaller reads a campaign the caller may see; another
// tenant's is errNoCampaign. The pages use it too.
func (s *Server) CampaignForCaller(ctx context.Context, id string) (posfleet.Campaign, error) {
	p, _ := PrincipalFrom(ctx)
	if id == "" || len(id) > 128 {
		return posfleet.Campaign{}, errNoCampaign
	}
	c, err := s.opts.Campaigns.Campaign(ctx, id)
	if posfleet.ErrorKind(err) == posfleet.NotFound {
		return c, errNoCampaign
	}
	if err != nil {
		return c, err
	}
	if !p.Sees(c.Tenant) {
		return posfleet.Campaign{}, errNoCampaign
	}
	return c, nil
}

// campaignTenant is the tenant a campaign request is for: the caller's
// own, or for an administrator of every tenant the one it names.
func campaignTenant(p posfleet.Principal, asked string) (string, error) {
	switch {
	case !p.Admin():
		if asked != "" && asked != p.Tenant {
			return "", errNotFound
		}
		return p.Tenant, nil
	case asked == "" || asked == posfleet.AllTenants:
		return "", badRequest("tenant: say which tenant the campaign is for")
	case !posfleet.ValidID(asked):
		return "", badRequest(fmt.Sprintf("tenant: %q is not a tenant ID", asked))
	}
	return asked, nil
}

// CampaignRequest is the body of POST /api/v1/campaigns and
// /api/v1/campaigns/preview: the spec, and for an administrator of every
// tenant the tenant it is for.
type CampaignRequest struct {
	Tenant string `json:"tenant,omitempty"`
	posfleet.CampaignSpec
}

// CampaignActionRequest is the optional body of an action: a note for
// the timeline and the audit log.
type CampaignActionRequest struct {
	Note string `json:"note,omitempty"`
}

func (s *Server) handleCampaignsAPI(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	tenant := tenantScope(p)
	q := r.URL.Query()
	if t := strings.TrimSpace(q.Get("tenant")); t != "" && t != posfleet.AllTenants {
		if !p.Sees(t) {
			writeError(w, s.log, errNotFound)
			return
		}
		tenant = t
	}
	var state posfleet.CampaignState
	if v := q.Get("state"); v != "" {
		state = posfleet.CampaignState(v)
		if !slices.Contains(posfleet.CampaignStates, state) {
			writeError(w, s.log, badRequest(fmt.Sprintf("state: unknown state %q; states are %v", v, posfleet.CampaignStates)))
			return
		}
	}
	list, err := s.opts.Campaigns.ListCampaigns(r.Context(), tenant)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	out := []posfleet.Campaign{}
	for _, c := range list {
		if p.Sees(c.Tenant) && (state == "" || c.State == state) {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaigns": out})
}

// readCampaignRequest decodes a create or preview body and the tenant it
// is for.
func (s *Server) readCampaignRequest(w http.ResponseWriter, r *http.Request) (string, posfleet.CampaignSpec, error) {
	var req CampaignRequest
	if err := decodeBody(w, r, &req); err != nil {
		return "", req.CampaignSpec, err
	}
	p, _ := PrincipalFrom(r.Context())
	tenant, err := campaignTenant(p, req.Tenant)
	if err != nil {
		return "", req.CampaignSpec, err
	}
	NoteAudit(r.Context(), "tenant", tenant)
	NoteAudit(r.Context(), "model", req.Model)
	NoteAudit(r.Context(), "target", req.Target)
	return tenant, req.CampaignSpec, nil
}

func (s *Server) handleCampaignPreviewAPI(w http.ResponseWriter, r *http.Request) {
	tenant, spec, err := s.readCampaignRequest(w, r)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	pv, err := s.opts.Campaigns.PreviewCampaign(r.Context(), tenant, spec)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"preview": pv})
}

func (s *Server) handleCampaignCreateAPI(w http.ResponseWriter, r *http.Request) {
	tenant, spec, err := s.readCampaignRequest(w, r)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	c, err := s.opts.Campaigns.CreateCampaign(r.Context(), tenant, spec, principal(r).name)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	NoteAudit(r.Context(), "campaign", c.ID)
	s.log.Info("campaign created", "campaign", c.ID, "tenant", c.Tenant, "model", c.Spec.Model, "target", c.Spec.Target, "by", principal(r).name)
	writeJSON(w, http.StatusCreated, map[string]any{"campaign": c})
}

func (s *Server) handleCampaignAPI(w http.ResponseWriter, r *http.Request) {
	c, err := s.CampaignForCaller(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaign": c})
}

func (s *Server) handleCampaignTerminalsAPI(w http.ResponseWriter, r *http.Request) {
	c, err := s.CampaignForCaller(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	q := r.URL.Query()
	var state posfleet.CampaignTerminalState
	if v := q.Get("state"); v != "" {
		state = posfleet.CampaignTerminalState(v)
		if !slices.Contains(posfleet.CampaignTerminalStates, state) {
			writeError(w, s.log, badRequest(fmt.Sprintf("state: unknown state %q; states are %v", v, posfleet.CampaignTerminalStates)))
			return
		}
	}
	limit := defaultCampaignTerminals
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxCampaignTerminals {
			writeError(w, s.log, badRequest(fmt.Sprintf("limit: want a whole number from 1 to %d", maxCampaignTerminals)))
			return
		}
		limit = n
	}
	list, err := s.opts.Campaigns.CampaignTerminals(r.Context(), c.ID, state, limit)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"terminals": list})
}

func (s *Server) handleCampaignEventsAPI(w http.ResponseWriter, r *http.Request) {
	c, err := s.CampaignForCaller(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	evs, err := s.opts.Campaigns.CampaignEvents(r.Context(), c.ID)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs})
}

// ActOnCampaignForCaller checks the note and does action on a campaign
// the caller may see. The pages use it too.
func (s *Server) ActOnCampaignForCaller(ctx context.Context, id string, action posfleet.CampaignAction, note string) (posfleet.Campaign, error) {
	c, err := s.CampaignForCaller(ctx, id)
	if err != nil {
		return c, err
	}
	note = strings.TrimSpace(note)
	if err := checkText("note", note); err != nil {
		return c, err
	}
	NoteAudit(ctx, "campaign", c.ID)
	p, _ := PrincipalFrom(ctx)
	out, err := s.opts.Campaigns.ActOnCampaign(ctx, c.ID, action, p.Name, note)
	if posfleet.ErrorKind(err) == posfleet.NotFound {
		return out, errNoCampaign
	}
	if err != nil {
		return out, err
	}
	s.log.Info("campaign "+string(action), "campaign", c.ID, "tenant", c.Tenant, "by", p.Name)
	return out, nil
}

func (s *Server) handleCampaignActionAPI(action posfleet.CampaignAction) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req CampaignActionRequest
		if r.ContentLength != 0 {
			if err := decodeBody(w, r, &req); err != nil {
				writeError(w, s.log, err)
				return
			}
		}
		c, err := s.ActOnCampaignForCaller(r.Context(), r.PathValue("id"), action, req.Note)
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"campaign": c})
	}
}
