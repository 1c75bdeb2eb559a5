package campaign_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/campaign"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestPreviewAndLists: a preview counts what a spec selects by version
// and per wave, creating nothing; lists are per tenant, newest first;
// terminals filter by state; a second campaign leaves out the terminals
// of the first while it is in progress.
func TestPreviewAndLists(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(10, "A920", "2.4.1")
		f.set("T-009", func(x *fakeTerm) { x.t.Firmware = "2.4.0" })
		f.set("T-008", func(x *fakeTerm) { x.t.Firmware = "2.5.2" })
		var quiet [168]bool
		f.hours["T-000"] = quiet
		r := newRig(t, db, f)
		sp := spec("2.5.2", posfleet.WaveSpec{Count: 2, Soak: soak(time.Hour)}, posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)})
		sp.Window = posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned}
		pv, err := r.st.PreviewCampaign(ctx, tenant, sp)
		if err != nil {
			t.Fatal(err)
		}
		if pv.Selected != 9 || pv.Versions["2.4.1"] != 8 || pv.Versions["2.4.0"] != 1 || len(pv.WaveSizes) != 2 || pv.WaveSizes[0] != 2 || pv.WaveSizes[1] != 7 || pv.WithoutHistory != 8 {
			t.Errorf("preview %+v", pv)
		}
		if list, _ := r.st.ListCampaigns(ctx, ""); len(list) != 0 {
			t.Errorf("a preview created %d campaigns", len(list))
		}
		bad := sp
		bad.Waves = []posfleet.WaveSpec{{Percent: 150, Soak: soak(time.Hour)}}
		if _, err := r.st.PreviewCampaign(ctx, tenant, bad); posfleet.ErrorKind(err) != posfleet.Invalid || !strings.Contains(err.Error(), "waves[0].percent") {
			t.Errorf("bad preview: %v", err)
		}
		c1, err := r.st.CreateCampaign(ctx, tenant, sp, "ana")
		if err != nil {
			t.Fatal(err)
		}
		sp2 := sp
		sp2.Select.Versions = []string{"2.4.1", "2.4.0"}
		if _, err := r.st.CreateCampaign(ctx, tenant, sp2, "ana"); posfleet.ErrorKind(err) != posfleet.Invalid {
			t.Errorf("a second campaign over the same terminals: %v, want Invalid (none left)", err)
		}
		f.advance(time.Minute)
		if _, err := r.st.ActOnCampaign(ctx, c1.ID, posfleet.CampaignAbort, "ana", ""); err != nil {
			t.Fatal(err)
		}
		c2, err := r.st.CreateCampaign(ctx, tenant, sp2, "bo")
		if err != nil {
			t.Fatal(err)
		}
		list, err := r.st.ListCampaigns(ctx, tenant)
		if err != nil || len(list) != 2 || list[0].ID != c2.ID || list[1].State != posfleet.CampaignAborted {
			t.Fatalf("list %+v %v", list, err)
		}
		if other, _ := r.st.ListCampaigns(ctx, "other"); len(other) != 0 {
			t.Errorf("another tenant lists %d", len(other))
		}
		queued, err := r.st.CampaignTerminals(ctx, c2.ID, posfleet.CTQueued, 0)
		if err != nil || len(queued) != 2 || queued[0].From == "" {
			t.Errorf("queued terminals %+v %v", queued, err)
		}
		all, _ := r.st.CampaignTerminals(ctx, c2.ID, "", 5)
		if len(all) != 5 || all[0].Wave != 0 || all[4].Wave != 1 {
			t.Errorf("terminals by wave, limit 5: %+v", all)
		}
		if _, err := r.st.Campaign(ctx, "cmp-none"); posfleet.ErrorKind(err) != posfleet.NotFound {
			t.Errorf("unknown campaign: %v", err)
		}
		if _, err := r.st.CampaignEvents(ctx, "cmp-none"); posfleet.ErrorKind(err) != posfleet.NotFound {
			t.Errorf("unknown campaign's events: %v", err)
		}
	})
}

// TestRunnerRestart: a campaign goes on where it was with a new store and
// runner over the same database (a restart, another process taking the
// health lease over): nothing is sent twice, it finishes.
func TestRunnerRestart(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(6, "A920", "2.4.1")
		r := newRig(t, db, f)
		c, err := r.st.CreateCampaign(ctx, tenant, spec("2.5.2", posfleet.WaveSpec{Count: 2, Soak: soak(time.Hour)},
			posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)}), "ana")
		if err != nil {
			t.Fatal(err)
		}
		r.step()
		if f.sentCount() != 2 {
			t.Fatalf("%d sent", f.sentCount())
		}
		r2 := newRig(t, db, f)
		r2.step()
		if f.sentCount() != 2 {
			t.Fatalf("after the restart, %d sent: sent again", f.sentCount())
		}
		for i := 0; i < 50 && r2.get(c.ID).State == posfleet.CampaignRunning; i++ {
			f.install()
			f.advance(10 * time.Minute)
			f.trade("")
			r2.step()
		}
		if st := r2.get(c.ID).State; st != posfleet.CampaignFinished || f.sentCount() != 6 {
			t.Errorf("state %s, %d sent", st, f.sentCount())
		}
	})
}

// TestAnswers: a rejected command fails its terminal with the ack's
// detail, an update reported failed fails it with the terminal's error,
// one never answered fails after AnswerTimeout; the soak starts with the
// answered ones, and a wave whose online terminals stay outside their
// window starts it after WaveTimeout.
func TestAnswers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(25, "A920", "2.4.1")
		r := newRig(t, db, f)
		acks := &fakeAcks{m: map[string][2]string{}}
		r.run.Acks = acks
		sp := spec("2.5.2", posfleet.WaveSpec{Count: 5, Soak: soak(time.Hour)}, posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)})
		sp.MaxInFlight = 5
		c, err := r.st.CreateCampaign(ctx, tenant, sp, "ana")
		if err != nil {
			t.Fatal(err)
		}
		r.step()
		if f.sentCount() != 5 {
			t.Fatalf("%d sent", f.sentCount())
		}
		acks.m[f.sent[0].cmd.ID] = [2]string{posfleet.AckRejected, "this terminal does not take remote updates"}
		f.set(f.sent[1].terminal, func(x *fakeTerm) {
			x.inFlight = nil
			x.t.Update = &posfleet.UpdateAttempt{Target: "2.5.2", Status: posfleet.UpdateFailed, Error: "sha256 mismatch"}
		})
		f.set(f.sent[2].terminal, func(x *fakeTerm) { x.inFlight = nil })
		f.set(f.sent[0].terminal, func(x *fakeTerm) { x.inFlight = nil })
		f.install() // the other two
		f.advance(time.Minute)
		r.step()
		byTerm := map[string]posfleet.CampaignTerminal{}
		list, _ := r.st.CampaignTerminals(ctx, c.ID, "", 0)
		for _, x := range list {
			byTerm[x.Terminal] = x
		}
		if x := byTerm[f.sent[0].terminal]; x.State != posfleet.CTFailed || !strings.Contains(x.Detail, "does not take remote updates") {
			t.Errorf("rejected: %+v", x)
		}
		if x := byTerm[f.sent[1].terminal]; x.State != posfleet.CTFailed || x.Detail != "sha256 mismatch" {
			t.Errorf("failed: %+v", x)
		}
		if x := byTerm[f.sent[2].terminal]; x.State != posfleet.CTDownloading {
			t.Errorf("no answer yet: %+v", x)
		}
		if x := byTerm[f.sent[3].terminal]; x.State != posfleet.CTInstalled {
			t.Errorf("installed: %+v", x)
		}
		f.advance(campaign.DefaultOptions().AnswerTimeout)
		r.step()
		got := r.get(c.ID)
		if got.Waves[0].Counts[posfleet.CTFailed] != 3 || got.Waves[0].Counts[posfleet.CTInstalled] != 2 || got.SoakUntil.IsZero() {
			t.Errorf("after the answer timeout: %+v, soak until %v", got.Waves[0].Counts, got.SoakUntil)
		}
		// Three installs of five failed: the gate fails on update failures.
		f.advance(time.Hour)
		r.step()
		if got := r.get(c.ID); got.State != posfleet.CampaignPaused || !strings.Contains(got.Reason, "update_failures") {
			t.Errorf("gate: %s %q", got.State, got.Reason)
		}
	})
}

type fakeAcks struct{ m map[string][2]string }

func (a *fakeAcks) CommandStatus(_ context.Context, _ posfleet.TerminalRef, id string) (string, string, bool) {
	v, ok := a.m[id]
	return v[0], v[1], ok
}

// TestWaveTimeout: terminals online but never inside their window do not
// hold the soak back past WaveTimeout.
func TestWaveTimeout(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(4, "A920", "2.4.1")
		var always [168]bool
		for i := range always {
			always[i] = true
		}
		f.hours["T-000"], f.hours["T-001"] = always, always
		f.hours["T-002"], f.hours["T-003"] = [168]bool{}, [168]bool{}
		r := newRig(t, db, f)
		sp := spec("2.5.2", posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)})
		sp.Window = posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned}
		c, err := r.st.CreateCampaign(ctx, tenant, sp, "ana")
		if err != nil {
			t.Fatal(err)
		}
		r.step()
		f.install()
		f.advance(time.Minute)
		r.step()
		if got := r.get(c.ID); !got.SoakUntil.IsZero() || f.sentCount() != 2 {
			t.Fatalf("soak started with 2 online terminals waiting for their window: %+v, %d sent", got, f.sentCount())
		}
		f.advance(campaign.DefaultOptions().WaveTimeout)
		r.step()
		got := r.get(c.ID)
		if got.SoakUntil.IsZero() || f.sentCount() != 2 {
			t.Fatalf("after the wave timeout: soak until %v, %d sent", got.SoakUntil, f.sentCount())
		}
		evs, _ := r.st.CampaignEvents(ctx, c.ID)
		if last := evs[len(evs)-1]; last.Kind != "soak_started" || !strings.Contains(last.Text, "2 terminals of the wave had not answered") {
			t.Errorf("last event %+v", last)
		}
	})
}

// TestRollbackNeedsPackages: a rollback to a version with neither a
// package in the campaign nor in the policy is refused before anything
// is sent; with the campaign's own package it goes.
func TestRollbackNeedsPackages(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(4, "A920", "2.3.0")
		r := newRig(t, db, f)
		c, err := r.st.CreateCampaign(ctx, tenant, spec("2.5.2", posfleet.WaveSpec{Count: 2, Soak: soak(time.Hour)}), "ana")
		if err != nil {
			t.Fatal(err)
		}
		r.step()
		f.install()
		r.step()
		_, err = r.st.ActOnCampaign(ctx, c.ID, posfleet.CampaignRollback, "ana", "")
		if posfleet.ErrorKind(err) != posfleet.Conflict || !strings.Contains(err.Error(), "no package to roll back to 2.3.0") {
			t.Fatalf("rollback without a package: %v", err)
		}
		if got := r.get(c.ID); got.State != posfleet.CampaignRunning {
			t.Errorf("refused rollback changed the state to %s", got.State)
		}
		sp := spec("2.5.2", posfleet.WaveSpec{Count: 2, Soak: soak(time.Hour)})
		sp.Rollback = []posfleet.RollbackPackage{{Version: "2.3.0", Package: posfleet.FirmwarePackage{URL: "https://fw.example/2.3.0.bin", SHA256: sha('3')}}}
		if _, err := r.st.ActOnCampaign(ctx, c.ID, posfleet.CampaignAbort, "ana", ""); err != nil {
			t.Fatal(err)
		}
		c2, err := r.st.CreateCampaign(ctx, tenant, sp, "ana")
		if err != nil {
			t.Fatal(err)
		}
		r.step()
		f.install()
		r.step()
		if _, err := r.st.ActOnCampaign(ctx, c2.ID, posfleet.CampaignRollback, "ana", ""); err != nil {
			t.Fatal(err)
		}
		n := f.sentCount()
		r.step()
		if f.sentCount() != n+2 || f.sent[n].cmd.URL != "https://fw.example/2.3.0.bin" {
			t.Errorf("rollback commands %+v", f.sent[n:])
		}
	})
}
