package campaign_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/campaign"
	"github.com/posfleet/posfleet/store"
)

const tenant = "acme"

var t0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// fakeFleet is a fleet of simulated terminals: the sender installs what it
// is sent when the test says so.
type fakeFleet struct {
	mu    sync.Mutex
	now   time.Time
	terms map[string]*fakeTerm
	sent  []sentCmd
	// refuse makes SendCommand fail (no session).
	refuse map[string]bool
	hours  map[string][168]bool
}

type fakeTerm struct {
	t   campaign.Terminal
	kpi posfleet.KPICounts
	// inFlight is the update it was sent and has not installed yet.
	inFlight *posfleet.Command
}

type sentCmd struct {
	at       time.Time
	terminal string
	cmd      posfleet.Command
	by       string
}

func newFleet(n int, model, fw string) *fakeFleet {
	f := &fakeFleet{now: t0, terms: map[string]*fakeTerm{}, refuse: map[string]bool{}, hours: map[string][168]bool{}}
	for i := range n {
		id := fmt.Sprintf("T-%03d", i)
		f.terms[id] = &fakeTerm{t: campaign.Terminal{Ref: posfleet.TerminalRef{Tenant: tenant, Terminal: id}, Model: model, Firmware: fw,
			Merchant: fmt.Sprintf("M-%d", i%5), Region: []string{"north", "south"}[i%2], Online: true}}
	}
	return f
}

func (f *fakeFleet) Terminals(_ context.Context, tn, model string) ([]campaign.Terminal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []campaign.Terminal
	for _, t := range f.terms {
		if t.t.Ref.Tenant == tn && t.t.Model == model {
			out = append(out, t.t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref.Terminal < out[j].Ref.Terminal })
	return out, nil
}

func (f *fakeFleet) Terminal(_ context.Context, ref posfleet.TerminalRef) (campaign.Terminal, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.terms[ref.Terminal]
	if !ok || ref.Tenant != tenant {
		return campaign.Terminal{}, false
	}
	out := t.t
	if out.Update != nil {
		u := *out.Update
		out.Update = &u
	}
	return out, true
}

func (f *fakeFleet) KPI(ref posfleet.TerminalRef) (posfleet.KPICounts, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.terms[ref.Terminal]
	if !ok {
		return posfleet.KPICounts{}, false
	}
	return t.kpi, true
}

func (f *fakeFleet) UsualSaleHours(ref posfleet.TerminalRef) ([168]bool, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hours[ref.Terminal]
	return h, ok
}

func (f *fakeFleet) SendCommand(_ context.Context, ref posfleet.TerminalRef, cmd posfleet.Command, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.terms[ref.Terminal]
	if !ok || !t.t.Online || f.refuse[ref.Terminal] {
		return fmt.Errorf("no session")
	}
	f.sent = append(f.sent, sentCmd{at: f.now, terminal: ref.Terminal, cmd: cmd, by: by})
	c := cmd
	t.inFlight = &c
	t.t.Update, t.t.UpdateAt = &posfleet.UpdateAttempt{Target: cmd.Target, Status: posfleet.UpdateDownloading}, f.now
	return nil
}

// install makes every terminal with an update in flight run it.
func (f *fakeFleet) install() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.terms {
		if t.inFlight != nil && t.t.Online {
			t.t.Firmware = t.inFlight.Target
			t.t.Update, t.t.UpdateAt = &posfleet.UpdateAttempt{Target: t.inFlight.Target, Status: posfleet.UpdateInstalled}, f.now
			t.inFlight = nil
			n++
		}
	}
	return n
}

// trade adds an hour of sales to every online terminal: 20 approved
// sales, and mismatches on those running bad.
func (f *fakeFleet) trade(bad string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.terms {
		if !t.t.Online {
			continue
		}
		t.kpi.Txns += 20
		t.kpi.Sales += 20
		t.kpi.ApprovedSales += 19
		t.kpi.Approved += 19
		if t.t.Firmware == bad {
			t.kpi.Mismatches += 19
		}
	}
}

func (f *fakeFleet) set(id string, fn func(t *fakeTerm)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.terms[id])
}

func (f *fakeFleet) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeFleet) advance(d time.Duration) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	return f.now
}

func (f *fakeFleet) sentCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

func (f *fakeFleet) inFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.terms {
		if t.inFlight != nil {
			n++
		}
	}
	return n
}

// fakeAlarms records the campaign alarms raised and resolved.
type fakeAlarms struct {
	mu       sync.Mutex
	raised   []string
	resolved []string
}

func (a *fakeAlarms) RaiseCampaign(_ context.Context, _ campaign.Querier, c posfleet.Campaign, g posfleet.GateResult, reason string, _ time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.raised = append(a.raised, c.ID+": "+reason)
	return nil
}

func (a *fakeAlarms) ResolveCampaign(_ context.Context, _ campaign.Querier, c posfleet.Campaign, by, note string, _ time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resolved = append(a.resolved, c.ID+" by "+by)
	return nil
}

// rig is a store and runner over a fake fleet.
type rig struct {
	t      *testing.T
	fleet  *fakeFleet
	alarms *fakeAlarms
	st     *campaign.Store
	run    *campaign.Runner
}

func newRig(t *testing.T, db *store.DB, f *fakeFleet) *rig {
	opts := campaign.DefaultOptions()
	opts.MinSoak = 0
	a := &fakeAlarms{}
	st := &campaign.Store{DB: db, Fleet: f, Hours: f, Alarms: a, Opts: opts, Now: f.clock,
		PolicyPackage: func(model, version string) (posfleet.FirmwarePackage, bool) {
			if version == "2.4.1" {
				return posfleet.FirmwarePackage{URL: "https://fw.example/2.4.1.bin", SHA256: sha('1')}, true
			}
			return posfleet.FirmwarePackage{}, false
		}}
	return &rig{t: t, fleet: f, alarms: a, st: st, run: campaign.NewRunner(st, f, nil)}
}

func (r *rig) step() {
	r.t.Helper()
	if err := r.run.Step(context.Background(), r.fleet.clock()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) get(id string) posfleet.Campaign {
	r.t.Helper()
	c, err := r.st.Campaign(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func sha(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func spec(target string, waves ...posfleet.WaveSpec) posfleet.CampaignSpec {
	return posfleet.CampaignSpec{Name: "test", Model: "A920", Target: target,
		Package:     posfleet.FirmwarePackage{URL: "https://fw.example/" + target + ".bin", SHA256: sha('a')},
		Waves:       waves,
		MaxInFlight: 3,
		Window:      posfleet.MaintenanceWindow{Mode: posfleet.WindowAny},
	}
}

func soak(d time.Duration) posfleet.Duration { return posfleet.Duration(d) }
