package web

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	cpages "github.com/posfleet/posfleet/web/pages/campaigns"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/parts"
)

// The campaign pages: the list, the form of a new campaign (preview,
// then create), a campaign's page and its actions (confirm, then act).
// Crews do not see campaigns (the campaigns perm of roles.go): a
// campaign spans regions and is the release engineer's, not the field's.

// Limits of the campaign pages.
const (
	// campaignTerminalsShown is how many terminals a campaign's page lists.
	campaignTerminalsShown = 200
	// campaignRefresh is the period (seconds) of a live campaign page's
	// refresh.
	campaignRefresh = 10
	maxCampaignName = 120
	maxListItems    = 20_000 // terminals, regions, merchants or versions of a selection
	maxWaveSize     = 1_000_000
)

// Defaults of the new campaign form, as a release engineer would start:
// a canary of 5 terminals, then 10%, 50% and 100% of the selection. The
// learned window puts each update outside the terminal's trading hours,
// so a soak starts at night: 24 h lets each gate see a full trading day
// of the updated terminals before the next wave, and the campaign is
// called finished only after a trading day on the whole selection (the
// campaign package also refuses soaks under its minimum). At most 50
// updates at once keeps the download load and a bad package's damage
// small.
var (
	defaultCanary      = "5"
	defaultCanarySoak  = "24h"
	defaultWaves       = []cpages.WaveRow{{Percent: "10", Soak: "24h"}, {Percent: "50", Soak: "24h"}, {Percent: "100", Soak: "24h"}}
	defaultMaxInFlight = "50"
	defaultWindowStart = "02:00"
	defaultWindowEnd   = "05:00"
)

// mountCampaignPages adds the campaign pages (Options.Campaigns set).
func (s *Server) mountCampaignPages() {
	s.mux.HandleFunc("GET /campaigns", s.page(s.handleCampaignsPage))
	s.mux.HandleFunc("GET /campaigns/new", s.page(s.handleNewCampaignPage))
	s.mux.HandleFunc("POST /campaigns/new", s.page(s.handleNewCampaignForm))
	s.mux.HandleFunc("GET /campaigns/{id}", s.page(s.handleCampaignPage))
	s.mux.HandleFunc("POST /campaigns/{id}/{action}", s.page(s.handleCampaignActionForm))
}

// campaignsShown reports whether p sees the campaign pages at all (the
// campaigns perm: everyone but a crew).
func campaignsShown(p posfleet.Principal) bool { return may(p, campaigns) }

func (s *Server) handleCampaignsPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	frame.Title, frame.Active = locale.T(r.Context(), "nav.campaigns"), "/campaigns"
	v := cpages.ListView{Frame: frame, Now: s.opts.Now(), CanCreate: frame.Perms.Act}
	if st := r.URL.Query().Get("state"); slices.Contains(posfleet.CampaignStates, posfleet.CampaignState(st)) {
		v.State = st
	}
	list, err := s.opts.Campaigns.ListCampaigns(r.Context(), scope(r))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	for _, c := range list {
		if v.State == "" || string(c.State) == v.State {
			v.Rows = append(v.Rows, cpages.NewRow(c))
		}
	}
	s.render(w, r, http.StatusOK, cpages.List(v))
}

// campaignFormView is the form's frame with the fleet's models and
// versions as suggestions.
func (s *Server) campaignFormView(r *http.Request, frame layout.Page, f cpages.Form) cpages.FormView {
	frame.Title, frame.Active = locale.T(r.Context(), "campaigns.new_title"), "/campaigns"
	v := cpages.FormView{Frame: frame, Form: f, AskTenant: principal(r).admin, Errors: map[string]string{}}
	if s.opts.Health != nil {
		models := s.opts.Health.FleetSummary(scope(r)).Models
		v.Models = slices.Sorted(maps.Keys(models))
		seen := map[string]bool{}
		for _, vs := range models {
			for ver := range vs {
				seen[ver] = true
			}
		}
		v.Versions = slices.Sorted(maps.Keys(seen))
	}
	return v
}

// handleNewCampaignPage is the empty form with the defaults, prefilled
// from the query (the Firmware page's link: model, target, url, sha256,
// versions).
func (s *Server) handleNewCampaignPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	q := r.URL.Query()
	clip := func(k string, n int) string {
		v := strings.TrimSpace(q.Get(k))
		if len(v) > n {
			return ""
		}
		return v
	}
	f := cpages.Form{Tenant: clip("tenant", 64), Model: clip("model", 64), Target: clip("target", 64), PackageURL: clip("url", 2048),
		PackageSHA: clip("sha256", 64), Versions: clip("versions", 1000), Canary: defaultCanary, CanarySoak: defaultCanarySoak,
		Waves: slices.Clone(defaultWaves), MaxInFlight: defaultMaxInFlight, WindowMode: posfleet.WindowLearned,
		WindowStart: defaultWindowStart, WindowEnd: defaultWindowEnd, WindowZone: locale.From(r.Context()).Zone.String()}
	if f.WindowZone == "Local" {
		f.WindowZone = ""
	}
	if f.Model != "" && f.Target != "" {
		f.Name = locale.T(r.Context(), "campaigns.form.default_name", "Model", f.Model, "Target", f.Target)
	}
	s.render(w, r, http.StatusOK, cpages.NewForm(s.campaignFormView(r, frame, f)))
}

// readCampaignForm reads the posted form as typed.
func readCampaignForm(r *http.Request) cpages.Form {
	get := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	f := cpages.Form{Tenant: get("tenant"), Name: get("name"), Model: get("model"), Target: get("target"),
		PackageURL: get("package_url"), PackageSHA: get("package_sha256"), Regions: get("regions"), Merchants: get("merchants"),
		Versions: get("versions"), Terminals: strings.ReplaceAll(get("terminals"), "\r\n", "\n"), Canary: get("canary"), CanarySoak: get("canary_soak"),
		MaxInFlight: get("max_in_flight"), WindowMode: get("window_mode"), WindowStart: get("window_start"), WindowEnd: get("window_end"),
		WindowZone: get("window_zone"), Rollback: strings.ReplaceAll(get("rollback"), "\r\n", "\n")}
	pcts, soaks := r.PostForm["wave_percent"], r.PostForm["wave_soak"]
	for i, p := range pcts {
		w := cpages.WaveRow{Percent: strings.TrimSpace(p)}
		if i < len(soaks) {
			w.Soak = strings.TrimSpace(soaks[i])
		}
		if w.Percent != "" || w.Soak != "" {
			f.Waves = append(f.Waves, w)
		}
		if i >= 50 {
			break
		}
	}
	return f
}

// fieldRefusal is one refused field of the form, its message in the
// reader's language.
type fieldRefusal map[string]string

// campaignList reads a list field: items separated by commas or new lines
// (and, for IDs, spaces), without empties or repeats.
func campaignList(s string, spaces bool) []string {
	seps := func(c rune) bool {
		return c == ',' || c == '\n' || c == '，' || c == '、' || (spaces && unicode.IsSpace(c))
	}
	var out []string
	for _, x := range strings.FieldsFunc(s, seps) {
		if x = strings.TrimSpace(x); x != "" && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

var (
	hhmm      = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// parseSoak reads a soak time: a duration such as 24h, 2h30m or 90m, or a
// bare number of hours; empty is none.
func parseSoak(s string) (posfleet.Duration, bool) {
	if s == "" {
		return 0, true
	}
	if h, err := strconv.ParseFloat(s, 64); err == nil {
		if h < 0 || h > 24*90 {
			return 0, false
		}
		return posfleet.Duration(time.Duration(h * float64(time.Hour))), true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > 90*24*time.Hour {
		return 0, false
	}
	return posfleet.Duration(d), true
}

// campaignSpec checks the form field by field and builds the spec; the
// refusals name the form's fields, in the reader's language. The campaign
// package checks the spec again (PreviewCampaign): what only it can
// judge (the model's terminals, the selection) comes back from there.
func (s *Server) campaignSpec(ctx context.Context, f cpages.Form) (posfleet.CampaignSpec, fieldRefusal) {
	bad := fieldRefusal{}
	say := func(field, id string, kv ...any) {
		if _, ok := bad[field]; !ok {
			bad[field] = locale.T(ctx, id, kv...)
		}
	}
	spec := posfleet.CampaignSpec{Name: f.Name, Model: f.Model, Target: f.Target,
		Package: posfleet.FirmwarePackage{URL: f.PackageURL, SHA256: strings.ToLower(f.PackageSHA)}}
	printable := func(v string) bool { return strings.IndexFunc(v, func(c rune) bool { return !unicode.IsPrint(c) }) < 0 }
	switch {
	case f.Name == "":
		say("name", "campaigns.refused.name_empty")
	case len([]rune(f.Name)) > maxCampaignName:
		say("name", "campaigns.refused.too_long", "Max", maxCampaignName)
	case !printable(f.Name):
		say("name", "campaigns.refused.unprintable")
	case posfleet.ContainsCardData(f.Name):
		say("name", "campaigns.refused.card_data")
	}
	for field, v := range map[string]string{"model": f.Model, "target": f.Target} {
		switch {
		case v == "":
			say(field, "campaigns.refused."+field+"_empty")
		case len(v) > 64 || !printable(v) || strings.ContainsAny(v, " \t/"):
			say(field, "campaigns.refused.bad_name")
		}
	}
	if f.PackageURL == "" {
		say("package_url", "campaigns.refused.url_empty")
	} else if err := (&health.Policy{Models: map[string]health.ModelPolicy{"m": {URL: f.PackageURL}}}).CheckURLs(s.opts.AllowHTTPFirmware); err != nil || len(f.PackageURL) > 2048 {
		say("package_url", "campaigns.refused.url_bad")
	}
	if !sha256Hex.MatchString(spec.Package.SHA256) {
		say("package_sha256", "campaigns.refused.sha256")
	}
	sel := posfleet.CampaignSelector{Regions: campaignList(f.Regions, false), Merchants: campaignList(f.Merchants, false),
		Versions: campaignList(f.Versions, false), Terminals: campaignList(f.Terminals, true)}
	for field, l := range map[string][]string{"regions": sel.Regions, "merchants": sel.Merchants, "versions": sel.Versions, "terminals": sel.Terminals} {
		if len(l) > maxListItems {
			say(field, "campaigns.refused.too_many", "Max", maxListItems)
		}
		for _, x := range l {
			if len(x) > 256 || !printable(x) || posfleet.ContainsCardData(x) {
				say(field, "campaigns.refused.bad_item", "Item", x)
				break
			}
		}
	}
	if slices.Contains(sel.Versions, f.Target) {
		say("versions", "campaigns.refused.target_selected")
	}
	spec.Select = sel
	spec.Rollback = s.rollbackPackages(ctx, f.Rollback, say)
	// Waves: the canary's count, then growing percentages.
	if f.Canary != "" && f.Canary != "0" {
		n, err := strconv.Atoi(f.Canary)
		soak, ok := parseSoak(f.CanarySoak)
		switch {
		case err != nil || n < 0 || n > maxWaveSize:
			say("canary", "campaigns.refused.canary")
		case !ok:
			say("canary_soak", "campaigns.refused.soak")
		default:
			spec.Waves = append(spec.Waves, posfleet.WaveSpec{Count: n, Soak: soak})
		}
	}
	last := 0.0
	for i, w := range f.Waves {
		field := "wave_" + strconv.Itoa(i)
		p, err := strconv.ParseFloat(strings.TrimSuffix(w.Percent, "%"), 64)
		soak, ok := parseSoak(w.Soak)
		switch {
		case err != nil || p <= 0 || p > 100:
			say(field, "campaigns.refused.percent")
		case p <= last:
			say(field, "campaigns.refused.percent_grows", "Last", strconv.FormatFloat(last, 'f', -1, 64))
		case !ok:
			say(field, "campaigns.refused.soak")
		default:
			spec.Waves = append(spec.Waves, posfleet.WaveSpec{Percent: p, Soak: soak})
			last = p
		}
	}
	if len(spec.Waves) == 0 && len(bad) == 0 {
		say("waves", "campaigns.refused.no_wave")
	}
	if n, err := strconv.Atoi(f.MaxInFlight); err != nil || n < 1 || n > maxWaveSize {
		say("max_in_flight", "campaigns.refused.max_in_flight")
	} else {
		spec.MaxInFlight = n
	}
	spec.Window = posfleet.MaintenanceWindow{Mode: f.WindowMode, Zone: f.WindowZone}
	switch f.WindowMode {
	case posfleet.WindowLearned, posfleet.WindowFixed:
		spec.Window.Start, spec.Window.End = f.WindowStart, f.WindowEnd
		if !hhmm.MatchString(f.WindowStart) {
			say("window_start", "campaigns.refused.hhmm")
		}
		if !hhmm.MatchString(f.WindowEnd) {
			say("window_end", "campaigns.refused.hhmm")
		} else if f.WindowStart == f.WindowEnd {
			say("window_end", "campaigns.refused.window_empty")
		}
	case posfleet.WindowAny:
		spec.Window.Zone = ""
	default:
		say("window_mode", "campaigns.refused.window_mode")
	}
	if spec.Window.Zone != "" {
		if _, err := time.LoadLocation(spec.Window.Zone); err != nil || spec.Window.Zone == "Local" || len(spec.Window.Zone) > 64 {
			say("window_zone", "campaigns.refused.zone")
		}
	}
	return spec, bad
}

// rollbackPackages reads the rollback field: one line per version,
// "version URL SHA-256"; refusals go to say.
func (s *Server) rollbackPackages(ctx context.Context, text string, say func(field, id string, kv ...any)) []posfleet.RollbackPackage {
	var out []posfleet.RollbackPackage
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || len(f[0]) > 64 || !sha256Hex.MatchString(strings.ToLower(f[2])) ||
			(&health.Policy{Models: map[string]health.ModelPolicy{"m": {URL: f[1]}}}).CheckURLs(s.opts.AllowHTTPFirmware) != nil {
			say("rollback", "campaigns.refused.rollback_line", "Line", i+1)
			return nil
		}
		if slices.ContainsFunc(out, func(p posfleet.RollbackPackage) bool { return p.Version == f[0] }) {
			say("rollback", "campaigns.refused.rollback_twice", "Version", f[0])
			return nil
		}
		out = append(out, posfleet.RollbackPackage{Version: f[0], Package: posfleet.FirmwarePackage{URL: f[1], SHA256: strings.ToLower(f[2])}})
		if len(out) > 100 {
			say("rollback", "campaigns.refused.too_many", "Max", 100)
			return nil
		}
	}
	return out
}

// noRollback lists the versions of a preview a rollback would have no
// package for: neither in the spec's rollback packages nor the firmware
// policy's target with a package (the campaign package's rule).
func (s *Server) noRollback(spec posfleet.CampaignSpec, pre posfleet.CampaignPreview) []string {
	var pol health.ModelPolicy
	if s.opts.Health != nil {
		if p := s.opts.Health.Policy(); p != nil {
			pol = p.Models[spec.Model]
		}
	}
	var out []string
	for _, v := range slices.Sorted(maps.Keys(pre.Versions)) {
		given := slices.ContainsFunc(spec.Rollback, func(p posfleet.RollbackPackage) bool { return p.Version == v })
		if !given && !(pol.Target == v && pol.URL != "" && pol.SHA256 != "") {
			out = append(out, v)
		}
	}
	return out
}

// campaignFields maps the spec's field names, as the campaign package's
// refusals name them ("package.sha256: ..."), to the form's.
var campaignFields = []struct{ prefix, field string }{
	{"package.sha256", "package_sha256"}, {"package.url", "package_url"}, {"package", "package_url"},
	{"select.regions", "regions"}, {"select.merchants", "merchants"}, {"select.versions", "versions"},
	{"select.terminals", "terminals"}, {"select", "select"}, {"waves", "waves"},
	{"max_in_flight", "max_in_flight"}, {"window.start", "window_start"}, {"window.end", "window_end"},
	{"window.zone", "window_zone"}, {"window", "window_mode"}, {"name", "name"}, {"model", "model"},
	{"target", "target"}, {"tenant", "tenant"}, {"rollback", "rollback"},
}

// campaignRefusalCodes are the catalogue's messages of the campaign
// package's refusals a form may meet, by their codes.
var campaignRefusalCodes = map[string]string{
	"invalid_duration": "campaigns.refused.soak",
}

// placeRefusal puts a refusal of the campaign package next to the field
// its message names, in the reader's language when its code is known;
// false when err is not a refusal (a server error).
func placeRefusal(ctx context.Context, err error, v *cpages.FormView) bool {
	var e *posfleet.Error
	if !errors.As(err, &e) {
		return false
	}
	if _, ok := statusOf(err); !ok || e.Kind == posfleet.Unavailable {
		return false
	}
	msg := e.Message
	field := ""
	if name, rest, ok := strings.Cut(e.Message, ": "); ok {
		for _, cf := range campaignFields {
			if name == cf.prefix || strings.HasPrefix(name, cf.prefix+".") || strings.HasPrefix(name, cf.prefix+"[") {
				field, msg = cf.field, rest
				break
			}
		}
	}
	if id, ok := campaignRefusalCodes[e.Code]; ok {
		msg = locale.T(ctx, id)
	} else {
		msg = locale.T(ctx, "campaigns.refused.by_server", "Reason", msg)
	}
	if field == "" {
		v.Error = msg
	} else {
		v.Errors[field] = msg
	}
	return true
}

// formTenant is the tenant a new campaign is for: the caller's, or the
// one an administrator of every tenant names (campaignTenant, the API's
// rule), its refusal next to the field.
func formTenant(r *http.Request, f cpages.Form, bad fieldRefusal) string {
	tenant, err := campaignTenant(mustPrincipal(r), f.Tenant)
	if err != nil {
		bad["tenant"] = locale.T(r.Context(), "campaigns.refused.tenant")
	}
	return tenant
}

// handleNewCampaignForm is the form's two steps: preview (what it would
// select, its wave sizes), then create with confirm=<the count
// previewed>; a count that no longer matches previews again. "edit"
// returns to the form with what was typed.
func (s *Server) handleNewCampaignForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, posfleet.Errorf(posfleet.TooLarge, "too_large", "the form is too large"))
		return
	}
	ctx := r.Context()
	f := readCampaignForm(r)
	step := r.PostFormValue("step")
	NoteAudit(ctx, "step", step)
	if step == "edit" {
		s.render(w, r, http.StatusOK, cpages.NewForm(s.campaignFormView(r, frame, f)))
		return
	}
	spec, bad := s.campaignSpec(ctx, f)
	tenant := formTenant(r, f, bad)
	refused := func(status int, v cpages.FormView) {
		s.render(w, r, status, cpages.NewForm(v))
	}
	// refuse shows the form again with err next to the field it names,
	// or the error page when it names none.
	refuse := func(err error) {
		v := s.campaignFormView(r, frame, f)
		if !placeRefusal(ctx, err, &v) {
			s.renderError(w, r, err)
			return
		}
		st, _ := statusOf(err)
		refused(st.Status, v)
	}
	if len(bad) > 0 {
		v := s.campaignFormView(r, frame, f)
		v.Errors = bad
		refused(http.StatusBadRequest, v)
		return
	}
	NoteAudit(ctx, "name", spec.Name)
	NoteAudit(ctx, "model", spec.Model)
	NoteAudit(ctx, "target", spec.Target)
	pre, err := s.opts.Campaigns.PreviewCampaign(ctx, tenant, spec)
	if err != nil {
		refuse(err)
		return
	}
	confirm := r.PostFormValue("confirm")
	if step != "create" || confirm != strconv.Itoa(pre.Selected) || pre.Selected == 0 {
		frame.Title, frame.Active = locale.T(ctx, "campaigns.new_title"), "/campaigns"
		v := cpages.PreviewView{Frame: frame, Form: f, Spec: spec, Preview: pre, NoRollback: s.noRollback(spec, pre)}
		status := http.StatusOK
		if step == "create" {
			// Confirmed another count: the fleet changed since.
			status, v.Changed = http.StatusConflict, confirm
		}
		s.render(w, r, status, cpages.Preview(v))
		return
	}
	c, err := s.opts.Campaigns.CreateCampaign(ctx, tenant, spec, principal(r).name)
	if err != nil {
		refuse(err)
		return
	}
	NoteAudit(ctx, "id", c.ID)
	NoteAudit(ctx, "count", pre.Selected)
	s.log.Info("campaign created", "campaign", c.ID, "tenant", tenant, "model", spec.Model, "target", spec.Target, "terminals", pre.Selected, "by", principal(r).name)
	http.Redirect(w, r, cpages.Href(c.ID)+"?done=created", http.StatusSeeOther)
}

// campaignNotices are the notices of a campaign's page after a redirect.
var campaignNotices = map[string]string{
	"created":                         "campaigns.notice.created",
	string(posfleet.CampaignPause):    "campaigns.notice.pause",
	string(posfleet.CampaignResume):   "campaigns.notice.resume",
	string(posfleet.CampaignAbort):    "campaigns.notice.abort",
	string(posfleet.CampaignRollback): "campaigns.notice.rollback",
}

// stateActions are the actions each state allows.
var stateActions = map[posfleet.CampaignState][]posfleet.CampaignAction{
	posfleet.CampaignRunning: {posfleet.CampaignPause, posfleet.CampaignAbort, posfleet.CampaignRollback},
	posfleet.CampaignPaused:  {posfleet.CampaignResume, posfleet.CampaignAbort, posfleet.CampaignRollback},
}

func (s *Server) handleCampaignPage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	notice := ""
	if id, ok := campaignNotices[r.URL.Query().Get("done")]; ok {
		notice = locale.T(r.Context(), id)
	}
	s.campaignPage(w, r, frame, http.StatusOK, notice, "")
}

// campaignPage renders a campaign's page with a notice or the error of a
// refused action.
func (s *Server) campaignPage(w http.ResponseWriter, r *http.Request, frame layout.Page, status int, notice, actionErr string) {
	ctx := r.Context()
	c, err := s.CampaignForCaller(ctx, r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	events, err := s.opts.Campaigns.CampaignEvents(ctx, c.ID)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	tstate := r.URL.Query().Get("tstate")
	if !slices.Contains(posfleet.CampaignTerminalStates, posfleet.CampaignTerminalState(tstate)) {
		tstate = ""
	}
	terms, err := s.opts.Campaigns.CampaignTerminals(ctx, c.ID, posfleet.CampaignTerminalState(tstate), campaignTerminalsShown)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	frame.Title, frame.Active = c.Spec.Name, "/campaigns"
	v := cpages.DetailView{Frame: frame, Now: s.opts.Now(), Campaign: c, Events: events, TerminalState: tstate,
		Limit: campaignTerminalsShown, Notice: notice, Error: actionErr, Why: campaignWhy(ctx, c, events)}
	for _, t := range terms {
		v.Terminals = append(v.Terminals, cpages.TerminalRow{CampaignTerminal: t, Href: parts.TerminalHref(c.Tenant, t.Terminal)})
	}
	if frame.Perms.Act {
		v.Actions = stateActions[c.State]
	}
	if !c.State.Ended() {
		v.Refresh = campaignRefresh
	}
	s.render(w, r, status, cpages.Detail(v))
}

// campaignWhy says in words why a campaign is paused or ended: from its
// last failed gate or the operator's action in its timeline, else the
// campaign's own reason.
func campaignWhy(ctx context.Context, c posfleet.Campaign, events []posfleet.CampaignEvent) string {
	var last *posfleet.CampaignEvent
	for i := len(events) - 1; i >= 0; i-- {
		switch events[i].Kind {
		case "paused", "gate_failed", "aborted", "rollback", "rolled_back":
			last = &events[i]
		}
		if last != nil {
			break
		}
	}
	by := func() string {
		if last != nil && last.By != "" {
			return last.By
		}
		return "posfleet"
	}
	at := c.UpdatedAt
	if last != nil {
		at = last.At
	}
	switch c.State {
	case posfleet.CampaignPaused:
		if n := len(c.Gates); n > 0 && !c.Gates[n-1].Passed && (last == nil || last.Kind == "gate_failed" || last.By == "") {
			g := c.Gates[n-1]
			return locale.T(ctx, "campaigns.why.gate_failed", "Wave", cpages.WaveName(ctx, c, g.Wave), "KPIs", cpages.WorseKPIs(ctx, g), "At", g.At)
		}
		if last != nil && last.Kind == "paused" && last.By != "" {
			return locale.T(ctx, "campaigns.why.paused_by", "By", by(), "At", at)
		}
		if c.Reason != "" {
			return locale.T(ctx, "campaigns.why.paused_reason", "Reason", c.Reason)
		}
		return locale.T(ctx, "campaigns.why.paused")
	case posfleet.CampaignAborted:
		return locale.T(ctx, "campaigns.why.aborted", "By", by(), "At", at)
	case posfleet.CampaignRollingBack:
		return locale.T(ctx, "campaigns.why.rolling_back", "By", by(), "At", at)
	case posfleet.CampaignRolledBack:
		return locale.T(ctx, "campaigns.why.rolled_back", "By", by(), "At", at)
	case posfleet.CampaignFinished:
		return locale.T(ctx, "campaigns.why.finished", "At", c.UpdatedAt)
	}
	return ""
}

// handleCampaignActionForm pauses, resumes, aborts or rolls back a
// campaign in two steps: the first POST asks, with how many terminals the
// action touches; the second (confirm=yes) acts and returns to the page.
func (s *Server) handleCampaignActionForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	ctx := r.Context()
	act := posfleet.CampaignAction(r.PathValue("action"))
	if !slices.Contains([]posfleet.CampaignAction{posfleet.CampaignPause, posfleet.CampaignResume, posfleet.CampaignAbort, posfleet.CampaignRollback}, act) {
		s.renderError(w, r, errNotFound)
		return
	}
	c, err := s.CampaignForCaller(ctx, r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		frame.Title, frame.Active = c.Spec.Name, "/campaigns"
		NoteAudit(ctx, "step", "confirmation shown")
		v := cpages.ConfirmView{Frame: frame, Campaign: c, Action: act, Count: cpages.ActionCount(c, act)}
		// Resuming after a failed gate accepts its verdict: the next wave goes out.
		if n := len(c.Gates); act == posfleet.CampaignResume && n > 0 && !c.Gates[n-1].Passed && c.Gates[n-1].Wave == c.Wave {
			v.AcceptsGate = true
		}
		s.render(w, r, http.StatusOK, cpages.Confirm(v))
		return
	}
	if _, err := s.ActOnCampaignForCaller(ctx, c.ID, act, r.PostFormValue("note")); err != nil {
		if posfleet.ErrorKind(err) == posfleet.NotFound {
			s.renderError(w, r, errNoCampaign)
			return
		}
		if status, msg, ok := s.actionRefused(err); ok && posfleet.ErrorKind(err) != posfleet.Unavailable {
			msg = refusedText(ctx, err, msg)
			var e *posfleet.Error
			if errors.As(err, &e) {
				switch e.Code {
				case "campaign_state":
					msg = locale.T(ctx, "campaigns.refused.state", "Action", cpages.ActionLabel(ctx, act), "State", cpages.StateLabel(ctx, c.State))
				case "no_rollback_package":
					msg = locale.T(ctx, "campaigns.refused.no_rollback_package", "Model", c.Spec.Model)
				case "campaign_changed":
					msg = locale.T(ctx, "campaigns.refused.changed")
				}
			}
			s.campaignPage(w, r, frame, status, "", msg)
			return
		}
		s.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, cpages.Href(c.ID)+"?done="+url.QueryEscape(string(act)), http.StatusSeeOther)
}
