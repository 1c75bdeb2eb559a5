package web

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/firmware"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/parts"
)

// adoption sets each model's versions in the field against the policy.
func adoption(models map[string]map[string]int, pol *health.Policy) []parts.Model {
	var out []parts.Model
	for _, name := range slices.Sorted(maps.Keys(models)) {
		m := parts.Model{Model: name}
		if pol != nil {
			if mp, ok := pol.Models[name]; ok {
				m.Target, m.Minimum = mp.Target, mp.Minimum
			}
		}
		for _, fw := range slices.Sorted(maps.Keys(models[name])) {
			n := models[name][fw]
			st := pol.FirmwareStatus(name, fw) // health's verdict, as the firmware flags have it
			v := parts.Version{Version: fw, N: n, Status: string(st)}
			m.Total += n
			switch st {
			case health.FirmwareBlocked:
				m.Blocked += n
				m.Behind += n
			case health.FirmwareBelowMinimum, health.FirmwareBehind:
				m.Behind += n
			case health.FirmwareOnTarget, health.FirmwareAhead:
				m.OnTarget += n
			}
			m.Versions = append(m.Versions, v)
		}
		// The most common version first: what the field mostly runs.
		slices.SortStableFunc(m.Versions, func(a, b parts.Version) int { return b.N - a.N })
		out = append(out, m)
	}
	return out
}

func (s *Server) firmwareView(r *http.Request, frame layout.Page) firmware.View {
	frame.Title = locale.T(r.Context(), "nav.firmware")
	tenant := scope(r)
	pol := s.opts.Health.Policy()
	fs := s.opts.Health.FleetSummary(tenant)
	v := firmware.View{Frame: frame, Admin: principal(r).admin && may(mustPrincipal(r), adminAll), Suspect: fs.SuspectFirmware, Models: adoption(fs.Models, pol)}
	v.Policy = string(s.policyFor(tenant, principal(r).admin).YAML())
	hist, err := s.policyVersions(r.Context(), tenant, principal(r).admin, pageHistory)
	if err != nil {
		s.log.Error("policy history not read", "err", err)
	}
	for _, h := range hist {
		v.History = append(v.History, firmware.Version{Version: h.Version, At: h.CreatedAt, By: h.CreatedBy, Body: h.Body})
	}
	if s.opts.Campaigns != nil {
		v.Campaigns, v.CampaignLinks = true, campaignLinks(v.Models, pol)
	}
	return v
}

// campaignLinks open the new campaign form for each model with terminals
// behind its target: the policy's target and package (when it has one;
// the form asks otherwise) and the versions behind.
func campaignLinks(models []parts.Model, pol *health.Policy) []firmware.CampaignLink {
	var out []firmware.CampaignLink
	for _, m := range models {
		if m.Target == "" || m.Behind == 0 {
			continue
		}
		q := url.Values{"model": {m.Model}, "target": {m.Target}}
		if pol != nil {
			if mp := pol.Models[m.Model]; mp.URL != "" && mp.SHA256 != "" {
				q.Set("url", mp.URL)
				q.Set("sha256", mp.SHA256)
			}
		}
		var behind []string
		for _, ver := range m.Versions {
			switch health.FirmwareStatus(ver.Status) {
			case health.FirmwareBehind, health.FirmwareBelowMinimum, health.FirmwareBlocked:
				behind = append(behind, ver.Version)
			}
		}
		slices.Sort(behind)
		if len(behind) > 0 {
			q.Set("versions", strings.Join(behind, ","))
		}
		out = append(out, firmware.CampaignLink{Model: m.Model, Behind: m.Behind, Href: "/campaigns/new?" + q.Encode()})
	}
	return out
}

func (s *Server) handleFirmwarePage(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	v := s.firmwareView(r, frame)
	q := r.URL.Query()
	if q.Get("done") == "policy" {
		v.Notice = locale.T(r.Context(), "firmware.policy_saved")
	}
	if q.Has("sent") {
		sent, _ := strconv.Atoi(q.Get("sent"))
		failed, _ := strconv.Atoi(q.Get("failed"))
		v.Notice = locale.N(r.Context(), "firmware.sent", sent, "Failed", failed)
	}
	s.render(w, r, http.StatusOK, firmware.Page(v))
}

func (s *Server) handlePolicyForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	if !principal(r).admin {
		s.renderError(w, r, posfleet.Errorf(posfleet.Forbidden, "forbidden", "only an administrator may change the firmware policy"))
		return
	}
	body := strings.ReplaceAll(r.PostFormValue("policy"), "\r\n", "\n")
	if len(body) > maxBody {
		s.renderError(w, r, posfleet.Errorf(posfleet.TooLarge, "too_large", "the policy is too long"))
		return
	}
	err := s.checkPolicyURLs([]byte(body))
	if err == nil {
		err = s.opts.Health.SetPolicy([]byte(body))
	}
	if err != nil {
		v := s.firmwareView(r, frame)
		v.Policy = body
		var pe *health.PolicyError
		if !errors.As(err, &pe) {
			s.renderError(w, r, err)
			return
		}
		v.PolicyError, v.PolicyLine = pe.Reason, pe.Line
		s.render(w, r, http.StatusBadRequest, firmware.Page(v))
		return
	}
	if s.opts.SavePolicy != nil {
		if err := s.opts.SavePolicy(r.Context(), []byte(body), principal(r).name); err != nil {
			s.renderError(w, r, fmt.Errorf("save policy: %w", err))
			return
		}
	}
	s.log.Info("firmware policy replaced", "by", principal(r).name)
	http.Redirect(w, r, "/firmware?done=policy", http.StatusSeeOther)
}

// pageHistory is how many policy versions the Firmware page lists.
const pageHistory = 10

// maxBulk bounds one bulk update: a rollout goes in waves.
const maxBulk = firmware.MaxBulk

// handleBulkUpdateForm sends the policy's update to a model's terminals
// below its target (or only those on one version), in two steps: the
// first POST shows how many terminals, from which versions to which, with
// a button that posts again with confirm=<that count>, which sends. A
// count that no longer matches (the fleet changed in between) asks again.
func (s *Server) handleBulkUpdateForm(w http.ResponseWriter, r *http.Request, frame layout.Page) {
	ctx := r.Context()
	model, fw := strings.TrimSpace(r.PostFormValue("model")), strings.TrimSpace(r.PostFormValue("firmware"))
	refuse := func(status int, msg string) {
		v := s.firmwareView(r, frame)
		v.Error = msg
		s.render(w, r, status, firmware.Page(v))
	}
	if model == "" {
		refuse(http.StatusBadRequest, locale.T(ctx, "firmware.choose_model"))
		return
	}
	// Nothing can go out without a broker or without a package for the
	// model: say so once rather than once per terminal.
	if s.opts.Commander == nil {
		refuse(http.StatusServiceUnavailable, locale.T(ctx, "firmware.no_broker"))
		return
	}
	pol := s.opts.Health.Policy()
	cmd, err := commands.Build(posfleet.CmdUpdateFirmware, "", model, pol)
	if err != nil {
		_, msg, _ := s.actionRefused(err)
		refuse(http.StatusConflict, msg)
		return
	}
	page, err := listTerminalPage(ctx, s.opts.Health, scope(r), TerminalFilter{Flag: posfleet.FlagFirmwareOutdated, Model: model, Firmware: fw, Page: 1, PerPage: maxBulk})
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	n := len(page.Terminals)
	if n == 0 {
		if fw != "" {
			refuse(http.StatusConflict, locale.T(ctx, "firmware.none_on_version", "Model", model, "Firmware", fw))
		} else {
			refuse(http.StatusConflict, locale.T(ctx, "firmware.none_behind", "Model", model))
		}
		return
	}
	if confirm := r.PostFormValue("confirm"); confirm != strconv.Itoa(n) {
		status := http.StatusOK
		v := firmware.ConfirmView{Frame: frame, Model: model, Firmware: fw, Target: cmd.Target, Count: n, Total: page.Total}
		v.Frame.Title = locale.T(ctx, "nav.firmware")
		seen := map[string]bool{}
		for _, t := range page.Terminals {
			if !seen[t.Firmware] {
				seen[t.Firmware] = true
				v.From = append(v.From, t.Firmware)
			}
		}
		slices.Sort(v.From)
		if asked, err := strconv.Atoi(confirm); err == nil && asked >= 0 {
			// Confirmed another count: the fleet changed since.
			status, v.Changed = http.StatusConflict, strconv.Itoa(asked)
		}
		NoteAudit(ctx, "step", "confirmation shown")
		NoteAudit(ctx, "count", n)
		s.render(w, r, status, firmware.Confirm(v))
		return
	}
	sent, failed := 0, 0
	for _, t := range page.Terminals {
		ref := posfleet.TerminalRef{Tenant: t.Tenant, Terminal: t.Terminal}
		if _, err := s.SendCommand(ctx, ref, CommandRequest{Type: posfleet.CmdUpdateFirmware}, principal(r).name); err != nil {
			// Typically a terminal that never connected with a persistent
			// session; the others still get theirs.
			s.log.Info("bulk update: not sent", "terminal", ref.String(), "err", err)
			failed++
			continue
		}
		sent++
	}
	s.log.Info("bulk update", "model", model, "firmware", fw, "sent", sent, "failed", failed, "by", principal(r).name)
	http.Redirect(w, r, fmt.Sprintf("/firmware?sent=%d&failed=%d", sent, failed), http.StatusSeeOther)
}
