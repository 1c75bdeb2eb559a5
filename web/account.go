package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/account"
	"github.com/posfleet/posfleet/web/pages/layout"
)

// Preferences is what the user store keeps of a person's language and
// time zone, and of its tenant's defaults (auth.Store).
type Preferences interface {
	User(ctx context.Context, name string) (posfleet.User, error)
	SetPreferences(ctx context.Context, name, lang, zone string) error
	TenantDefaults(ctx context.Context, tenant string) (posfleet.TenantSettings, error)
	SetTenantDefaults(ctx context.Context, ts posfleet.TenantSettings) error
}

// withLocale puts the language and time zone of r's asker in its context:
// its own choice or its tenant's default, else its browser's language and
// that language's zone (package locale).
func withLocale(r *http.Request) *http.Request {
	p, _ := PrincipalFrom(r.Context())
	lang := locale.Negotiate(p.Language, r.Header.Get("Accept-Language"))
	return r.WithContext(locale.With(r.Context(), locale.New(lang, p.TimeZone)))
}

// mountAccount adds the page where each person chooses its language and
// time zone (and a tenant administrator its tenant's defaults), and the
// same through the API.
func (s *Server) mountAccount(pr Preferences) {
	s.mux.HandleFunc("GET /account", s.page(func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		s.accountPage(w, r, frame, pr, http.StatusOK, "")
	}))
	s.mux.HandleFunc("POST /account", s.page(func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		p, _ := PrincipalFrom(r.Context())
		if err := pr.SetPreferences(r.Context(), p.Name, r.PostFormValue("language"), r.PostFormValue("time_zone")); err != nil {
			s.accountFailed(w, r, frame, pr, err)
			return
		}
		http.Redirect(w, r, "/account?saved=1", http.StatusSeeOther)
	}))
	s.mux.HandleFunc("POST /account/tenant", s.page(func(w http.ResponseWriter, r *http.Request, frame layout.Page) {
		p, _ := PrincipalFrom(r.Context())
		ts := posfleet.TenantSettings{Tenant: p.Tenant, Language: r.PostFormValue("language"), TimeZone: r.PostFormValue("time_zone")}
		if p.Admin() {
			ts.Tenant = r.PostFormValue("tenant")
		} else if t := r.PostFormValue("tenant"); t != "" && t != p.Tenant {
			// Refused rather than ignored: the audit entry names the
			// tenant asked for, which would not be the one changed.
			s.renderError(w, r, errGrant)
			return
		}
		if err := pr.SetTenantDefaults(r.Context(), ts); err != nil {
			s.accountFailed(w, r, frame, pr, err)
			return
		}
		http.Redirect(w, r, "/account?saved=tenant", http.StatusSeeOther)
	}))
	s.mux.HandleFunc("GET /api/v1/me/preferences", s.api(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		if p.Token {
			writeError(w, s.log, posfleet.Errorf(posfleet.Invalid, "token_has_no_preferences", "an API token has no language or time zone; the API answers in UTC and minor units"))
			return
		}
		u, err := pr.User(r.Context(), p.Name)
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, prefsJSON{Language: u.Language, TimeZone: u.TimeZone})
	}))
	s.mux.HandleFunc("PUT /api/v1/me/preferences", s.api(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		if p.Token {
			writeError(w, s.log, posfleet.Errorf(posfleet.Invalid, "token_has_no_preferences", "an API token has no language or time zone; the API answers in UTC and minor units"))
			return
		}
		var req prefsJSON
		if err := decodeBody(w, r, &req); err != nil {
			writeError(w, s.log, err)
			return
		}
		if err := pr.SetPreferences(r.Context(), p.Name, req.Language, req.TimeZone); err != nil {
			writeError(w, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, req)
	}))
}

type prefsJSON struct {
	Language string `json:"language"`
	TimeZone string `json:"time_zone"`
}

func (s *Server) accountFailed(w http.ResponseWriter, r *http.Request, frame layout.Page, pr Preferences, err error) {
	st, ok := statusOf(err)
	if !ok || st.Status >= 500 {
		s.renderError(w, r, err)
		return
	}
	s.accountPage(w, r, frame, pr, st.Status, prefsProblem(r, err, st.Message))
}

// prefsProblem is why a language or time zone from r's form was refused,
// in the reader's language (the store's message, in English, otherwise).
func prefsProblem(r *http.Request, err error, msg string) string {
	var e *posfleet.Error
	if !errors.As(err, &e) {
		return msg
	}
	switch e.Code {
	case "bad_language":
		return locale.T(r.Context(), "account.bad_language", "Language", r.PostFormValue("language"))
	case "bad_time_zone":
		return locale.T(r.Context(), "account.bad_time_zone", "Zone", r.PostFormValue("time_zone"))
	}
	return msg
}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, frame layout.Page, pr Preferences, status int, problem string) {
	p, _ := PrincipalFrom(r.Context())
	u, err := pr.User(r.Context(), p.Name)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	l := locale.From(r.Context())
	frame.Title = locale.T(r.Context(), "nav.account")
	v := account.View{Frame: frame, Language: u.Language, TimeZone: u.TimeZone, Effective: l.Lang, EffectiveZone: l.Zone.String(),
		Saved: r.URL.Query().Get("saved"), Error: problem, Zones: account.CommonZones}
	if may(p, manageTenant) && !p.Admin() {
		ts, err := pr.TenantDefaults(r.Context(), p.Tenant)
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		v.Tenant = &ts
	}
	if p.Admin() {
		v.AnyTenant = true
		t := r.URL.Query().Get("tenant")
		if t != "" && t != posfleet.AllTenants {
			ts, err := pr.TenantDefaults(r.Context(), t)
			if err != nil {
				s.renderError(w, r, err)
				return
			}
			v.Tenant = &ts
		} else {
			v.Tenant = &posfleet.TenantSettings{}
		}
	}
	s.render(w, r, status, account.Page(v))
}
