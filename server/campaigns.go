package server

import (
	"context"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/alarm"
	"github.com/posfleet/posfleet/campaign"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web"
)

// Firmware campaigns (package campaign): every web replica creates them
// and acts on them in the database (web.Campaigns is the campaign.Store);
// the holder of the health lease, where terminals are reached, runs them
// (campaign.Runner, every CampaignInterval), as it publishes queued
// commands (outbox.go).

var _ web.Campaigns = (*campaign.Store)(nil)

// campaignFleet is campaign.Fleet: the terminals as the health engine (or,
// on a web replica, the published health view) sees them, with their
// regions from the registry; their KPIs from the engine.
type campaignFleet struct {
	s      *Server
	hs     web.Health
	engine *health.Engine // nil on a web replica: no KPIs, no runner
}

func (f campaignFleet) region(ctx context.Context, t *campaign.Terminal) {
	if rt, err := f.s.reg.Get(ctx, t.Ref); err == nil {
		t.Region = rt.Region
		if t.Merchant == "" {
			t.Merchant = rt.Merchant
		}
		if t.Model == "" {
			t.Model = rt.Model
		}
	}
}

func (f campaignFleet) Terminals(ctx context.Context, tenant, model string) ([]campaign.Terminal, error) {
	var out []campaign.Terminal
	if f.engine != nil {
		for _, st := range f.engine.FirmwareStates(tenant, model) {
			t := fromState(st)
			f.region(ctx, &t)
			out = append(out, t)
		}
		return out, nil
	}
	for _, row := range f.hs.Rows(tenant, "") {
		if row.NeverConnected || row.Model != model {
			continue
		}
		t := campaign.Terminal{Ref: row.Ref, Model: row.Model, Firmware: row.Firmware, Merchant: row.Merchant, Online: row.Online}
		f.region(ctx, &t)
		out = append(out, t)
	}
	return out, nil
}

func fromState(st health.FirmwareState) campaign.Terminal {
	return campaign.Terminal{Ref: st.Ref, Model: st.Model, Firmware: st.Firmware, Merchant: st.Merchant, Online: st.Online,
		Update: st.Update, UpdateAt: st.UpdateAt}
}

func (f campaignFleet) Terminal(ctx context.Context, ref posfleet.TerminalRef) (campaign.Terminal, bool) {
	if f.engine != nil {
		st, ok := f.engine.FirmwareState(ref)
		return fromState(st), ok
	}
	h, ok := f.hs.Terminal(ref)
	if !ok {
		return campaign.Terminal{}, false
	}
	return campaign.Terminal{Ref: ref, Model: h.Model, Firmware: h.Firmware, Merchant: h.Site.Merchant, Region: h.Site.Region,
		Online: h.Online, Update: h.LastUpdate}, true
}

func (f campaignFleet) KPI(ref posfleet.TerminalRef) (posfleet.KPICounts, bool) {
	if f.engine == nil {
		return posfleet.KPICounts{}, false
	}
	return f.engine.KPI(ref)
}

// campaignsWeb makes the campaign store over hs (the engine where this
// process has one) and gives it to the web side.
func (s *Server) campaignsWeb(o *web.Options) {
	hs := o.Health
	if s.engine != nil {
		hs = s.engine
	}
	if hs == nil {
		return
	}
	opts := s.cfg.Campaigns
	opts.AllowHTTPFirmware = s.cfg.AllowHTTPFirmware
	st := &campaign.Store{DB: s.db, Fleet: campaignFleet{s: s, hs: hs, engine: s.engine}, Opts: opts, Alarms: campaignAlarms{},
		PolicyPackage: func(model, version string) (posfleet.FirmwarePackage, bool) {
			mp, ok := hs.Policy().Models[model]
			if !ok || mp.Target != version || mp.URL == "" || mp.SHA256 == "" {
				return posfleet.FirmwarePackage{}, false
			}
			return posfleet.FirmwarePackage{URL: mp.URL, SHA256: mp.SHA256}, true
		}}
	// The usual sale hours, learned by the engine, when it has them.
	if h, ok := any(s.engine).(campaign.SaleHours); ok && s.engine != nil {
		st.Hours = h
	}
	s.campaigns = st
	if s.cfg.Roles.Web {
		o.Campaigns = st
	}
}

// campaignSender sends a campaign's update on this process's way to the
// terminals and records it in the terminal's command log.
type campaignSender struct{ s *Server }

func (c campaignSender) SendCommand(ctx context.Context, ref posfleet.TerminalRef, cmd posfleet.Command, by string) error {
	c.s.cmds.Sent(ref, cmd, by, time.Now()) // before it goes out, for the terminal's first ack
	if err := c.s.publishCommand(ctx, ref, cmd); err != nil {
		c.s.cmds.Unsent(ref, cmd.ID)
		return err
	}
	return nil
}

// CommandStatus reads a command's latest ack from the command log.
func (c campaignSender) CommandStatus(_ context.Context, ref posfleet.TerminalRef, id string) (string, string, bool) {
	for _, r := range c.s.cmds.List(ref) {
		if r.Command.ID == id {
			return r.Status, r.Detail, r.Status != ""
		}
	}
	return "", "", false
}

// startCampaigns runs the campaign runner where the outbox runs: this
// process reaches terminals and may hold the health lease; it steps only
// while it holds it. Close stops it.
func (s *Server) startCampaigns() {
	if s.campaigns == nil || s.engine == nil || s.publisher == nil || (s.brk == nil && s.src == nil) {
		return
	}
	every := s.cfg.CampaignInterval
	if every <= 0 {
		every = DefaultCampaignInterval
	}
	send := campaignSender{s}
	run := campaign.NewRunner(s.campaigns, send, s.log)
	run.Acks = send
	if s.cfg.CampaignGate != nil {
		run.Rules = *s.cfg.CampaignGate
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.stopCampaigns = func() { cancel(); <-done }
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !s.publisher.Held() {
				continue
			}
			// Errors are logged per campaign by the runner.
			run.Step(ctx, time.Now())
		}
	}()
}

// DefaultCampaignInterval is how often the runner looks at the campaigns
// in progress.
const DefaultCampaignInterval = 5 * time.Second

// campaignAlarms is campaign.Alarms: package alarm's campaign alarm, in
// the campaign's transaction.
type campaignAlarms struct{}

func (campaignAlarms) RaiseCampaign(ctx context.Context, q campaign.Querier, c posfleet.Campaign, gate posfleet.GateResult, reason string, now time.Time) error {
	ev := alarm.CampaignEvidence{Baseline: gate.Baseline, Campaign: c.ID, Model: c.Spec.Model, Name: c.Spec.Name, Reason: reason,
		Target: c.Spec.Target, Updated: gate.Updated, Wave: gate.Wave + 1, Metrics: []posfleet.GateMetric{}}
	for _, m := range gate.Metrics {
		if m.Worse {
			ev.Metrics = append(ev.Metrics, m)
		}
	}
	_, err := alarm.RaiseCampaign(ctx, q, c.Tenant, ev, now)
	return err
}

func (campaignAlarms) ResolveCampaign(ctx context.Context, q campaign.Querier, c posfleet.Campaign, by, note string, now time.Time) error {
	return alarm.ResolveCampaign(ctx, q, c.Tenant, c.ID, by, note, now)
}
