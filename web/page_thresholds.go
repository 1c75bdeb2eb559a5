package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/thresholds"
)

// pageThresholdHistory is how many versions the Thresholds page lists.
const pageThresholdHistory = 20

// thresholdsPage shows one tenant's thresholds: every threshold with its
// default, the tenant's override and its models' overrides, and the
// history. An administrator picks the tenant (?tenant=); a tenant
// administrator sees their own.
func (s *Server) thresholdsPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	tenant := s.thresholdsTenant(r)
	cur, err := s.opts.Thresholds.CurrentThresholds(r.Context())
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	v := thresholds.View{Frame: frame, Tenant: tenant, Version: cur.Version, AllTenants: principal(r).admin}
	if r.URL.Query().Get("done") == "saved" {
		v.Notice = locale.T(r.Context(), "thresholds.saved")
	}
	part := cur.Thresholds.Tenant(tenant)
	s.renderThresholds(w, r, http.StatusOK, v, cur.Thresholds, part, nil, nil)
}

// thresholdsTenant is the tenant the page is about: the caller's own, or
// for an administrator the one asked for.
func (s *Server) thresholdsTenant(r *http.Request) string {
	p := principal(r)
	if !p.admin {
		return p.scope
	}
	t := strings.TrimSpace(r.URL.Query().Get("tenant"))
	if t == "" {
		t = strings.TrimSpace(r.PostFormValue("tenant"))
	}
	return t
}

// thresholdsPost saves the tenant's part as the form gives it: a value per
// threshold for the tenant and per model, a model added or removed.
func (s *Server) thresholdsPost(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	tenant := s.thresholdsTenant(r)
	p := principal(r)
	v := thresholds.View{Frame: frame, Tenant: tenant, AllTenants: p.admin}
	cur, err := s.opts.Thresholds.CurrentThresholds(r.Context())
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	v.Version = cur.Version
	if tenant == "" {
		v.Error = locale.T(r.Context(), "thresholds.pick_tenant")
		s.renderThresholds(w, r, http.StatusBadRequest, v, cur.Thresholds, health.TenantThresholds{}, nil, nil)
		return
	}
	part, raw, probs := thresholdsForm(r, tenant)
	if len(probs) == 0 {
		d := (&health.Thresholds{}).WithTenant(tenant, &health.Thresholds{Tenants: map[string]health.TenantThresholds{tenant: part}})
		_, _, err = s.changeThresholds(r.Context(), d, p.name, tenant, false)
		if err == nil {
			http.Redirect(w, r, "/admin/thresholds?done=saved&tenant="+url.QueryEscape(tenant), http.StatusSeeOther)
			return
		}
		var te *health.ThresholdsError
		if !errors.As(err, &te) {
			status, msg, ok := s.actionRefused(err)
			if !ok {
				s.renderError(w, r, err)
				return
			}
			v.Error = msg
			s.renderThresholds(w, r, status, v, cur.Thresholds, part, raw, nil)
			return
		}
		probs = te.Problems
	}
	v.Error = locale.T(r.Context(), "thresholds.refused")
	s.renderThresholds(w, r, http.StatusBadRequest, v, cur.Thresholds, part, raw, &health.ThresholdsError{Problems: probs})
}

// thresholdsForm reads the form: fields t.<name> (the tenant's values),
// model.<i> (a model's name) with m.<i>.<name> (its values) and
// remove.<i>, and add_model. An empty field sets nothing. raw keeps what
// was typed, by field path, for the page to show again.
func thresholdsForm(r *http.Request, tenant string) (health.TenantThresholds, map[string]string, []health.ThresholdProblem) {
	part := health.TenantThresholds{Values: map[string]float64{}, Models: map[string]map[string]float64{}}
	raw := map[string]string{}
	var probs []health.ThresholdProblem
	base := "tenants." + tenant
	read := func(key, field string, into map[string]float64, name string) {
		val := strings.TrimSpace(r.PostFormValue(key))
		if val == "" {
			return
		}
		raw[field] = val
		x, err := strconv.ParseFloat(val, 64)
		if err != nil {
			probs = append(probs, health.ThresholdProblem{Field: field, Message: strconv.Quote(val) + " is not a number"})
			return
		}
		into[name] = x
	}
	for _, t := range health.ThresholdTable {
		read("t."+t.Name, base+"."+t.Name, part.Values, t.Name)
	}
	for i := 0; ; i++ {
		idx := strconv.Itoa(i)
		model, ok := r.PostForm["model."+idx]
		if !ok {
			break
		}
		name := strings.TrimSpace(model[0])
		if name == "" || r.PostFormValue("remove."+idx) != "" {
			continue
		}
		vals := map[string]float64{}
		for _, t := range health.ThresholdTable {
			if !t.TenantOnly {
				read("m."+idx+"."+t.Name, base+".models."+name+"."+t.Name, vals, t.Name)
			}
		}
		part.Models[name] = vals
	}
	if add := strings.TrimSpace(r.PostFormValue("add_model")); add != "" {
		if _, ok := part.Models[add]; !ok {
			part.Models[add] = map[string]float64{}
		}
	}
	return part, raw, probs
}

// renderThresholds builds the page's table of the tenant's part (values
// as typed in raw, when the form is shown again) and its history.
func (s *Server) renderThresholds(w http.ResponseWriter, r *http.Request, status int, v thresholds.View, all *health.Thresholds, part health.TenantThresholds, raw map[string]string, problems *health.ThresholdsError) {
	ctx := r.Context()
	if v.AllTenants {
		v.Tenants = slices.Sorted(mapKeysOf(all.Tenants))
	}
	if v.Tenant != "" {
		v.Models = slices.Sorted(mapKeysOf(part.Models))
		def := health.DefaultConfig()
		base := "tenants." + v.Tenant
		cell := func(field string, vals map[string]float64, name string) thresholds.Cell {
			c := thresholds.Cell{Field: field, Error: problems.For(field)}
			if x, ok := raw[field]; ok {
				c.Value = x
			} else if x, ok := vals[name]; ok {
				c.Value = strconv.FormatFloat(x, 'g', -1, 64)
			}
			return c
		}
		for _, t := range health.ThresholdTable {
			row := thresholds.Row{Name: t.Name, Flag: t.Flag, Unit: string(t.Unit), Min: t.Min, Max: t.Max,
				Integer: t.Integer, TenantOnly: t.TenantOnly, Default: t.Value(def),
				Tenant: cell(base+"."+t.Name, part.Values, t.Name)}
			for _, m := range v.Models {
				c := cell(base+".models."+m+"."+t.Name, part.Models[m], t.Name)
				c.Disabled = t.TenantOnly
				row.Models = append(row.Models, c)
			}
			v.Rows = append(v.Rows, row)
		}
		if problems != nil {
			for _, p := range problems.Problems {
				if !slices.ContainsFunc(v.Rows, func(row thresholds.Row) bool { return row.Has(p.Field) }) {
					v.Problems = append(v.Problems, p.Field+": "+p.Message)
				}
			}
		}
	}
	p := principal(r)
	scope := p.scope
	if p.admin && v.Tenant != "" {
		scope = v.Tenant
	}
	hist, err := s.thresholdVersions(ctx, scope, p.admin && v.Tenant == "", pageThresholdHistory)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	for _, h := range hist {
		if len(h.Changes) == 0 && v.Tenant != "" {
			continue
		}
		e := thresholds.Version{Version: h.Version, At: h.CreatedAt, By: h.CreatedBy}
		for _, c := range h.Changes {
			e.Changes = append(e.Changes, thresholds.Change{Field: c.Field, From: c.From, To: c.To})
		}
		v.History = append(v.History, e)
	}
	v.Frame.Title = locale.T(ctx, "thresholds.title")
	s.render(w, r, status, thresholds.Page(v))
}

func mapKeysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
