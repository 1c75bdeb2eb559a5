package campaign_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestGoodCampaignFinishes: a campaign to a good version runs every wave,
// never more than MaxInFlight updates at once, and finishes by itself;
// everything is on the timeline.
func TestGoodCampaignFinishes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(20, "A920", "2.4.1")
		r := newRig(t, db, f)
		c, err := r.st.CreateCampaign(ctx, tenant, spec("2.5.2",
			posfleet.WaveSpec{Count: 2, Soak: soak(time.Hour)},
			posfleet.WaveSpec{Percent: 50, Soak: soak(time.Hour)},
			posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)}), "ana")
		if err != nil {
			t.Fatal(err)
		}
		if c.State != posfleet.CampaignRunning || len(c.Waves) != 3 || c.Waves[0].Size != 2 || c.Waves[1].Size != 8 || c.Waves[2].Size != 10 {
			t.Fatalf("created: %+v", c)
		}
		for i := 0; i < 200 && r.get(c.ID).State == posfleet.CampaignRunning; i++ {
			r.step()
			if n := f.inFlight(); n > 3 {
				t.Fatalf("%d updates in flight, MaxInFlight 3", n)
			}
			f.install()
			f.advance(10 * time.Minute)
			f.trade("")
		}
		got := r.get(c.ID)
		if got.State != posfleet.CampaignFinished || len(got.Gates) != 3 {
			t.Fatalf("after the run: state %s, gates %d; %+v", got.State, len(got.Gates), got)
		}
		for _, w := range got.Waves {
			if w.Counts[posfleet.CTInstalled] != w.Size {
				t.Errorf("wave %d: %v installed of %d", w.Index, w.Counts, w.Size)
			}
		}
		if f.sentCount() != 20 {
			t.Errorf("%d commands sent, want 20", f.sentCount())
		}
		for _, s := range f.sent {
			if s.by != "campaign "+c.ID || s.cmd.Type != posfleet.CmdUpdateFirmware || s.cmd.Target != "2.5.2" || s.cmd.SHA256 != sha('a') {
				t.Errorf("sent %+v", s)
			}
		}
		evs, err := r.st.CampaignEvents(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, e.Kind)
		}
		want := "created wave_started soak_started gate_passed wave_started soak_started gate_passed wave_started soak_started gate_passed finished"
		if strings.Join(kinds, " ") != want {
			t.Errorf("timeline %v\nwant %s", kinds, want)
		}
	})
}

// TestBadCampaignPausesAndRollsBack: a version that charges more than
// entered fails the canary's gate: the campaign pauses with the evidence
// in words, raises its alarm, updated no more than the canary, and a
// rollback returns the canary to its previous version.
func TestBadCampaignPausesAndRollsBack(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(30, "A920", "2.4.1")
		r := newRig(t, db, f)
		c, err := r.st.CreateCampaign(ctx, tenant, spec("2.5.0",
			posfleet.WaveSpec{Count: 3, Soak: soak(time.Hour)},
			posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)}), "ana")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50 && r.get(c.ID).State == posfleet.CampaignRunning; i++ {
			r.step()
			f.install()
			f.advance(10 * time.Minute)
			f.trade("2.5.0")
		}
		got := r.get(c.ID)
		if got.State != posfleet.CampaignPaused || !strings.Contains(got.Reason, "amount_mismatch") || len(got.Gates) != 1 || got.Gates[0].Passed {
			t.Fatalf("state %s reason %q gates %+v", got.State, got.Reason, got.Gates)
		}
		if f.sentCount() != 3 {
			t.Errorf("%d updates sent, want the canary's 3", f.sentCount())
		}
		if len(r.alarms.raised) != 1 || !strings.Contains(r.alarms.raised[0], "amount_mismatch") {
			t.Errorf("alarms raised %v", r.alarms.raised)
		}
		// Paused: nothing more is sent.
		for range 3 {
			r.step()
			f.advance(10 * time.Minute)
		}
		if f.sentCount() != 3 {
			t.Errorf("paused, yet %d updates sent", f.sentCount())
		}
		if _, err := r.st.ActOnCampaign(ctx, c.ID, posfleet.CampaignPause, "ana", ""); posfleet.ErrorKind(err) != posfleet.Conflict {
			t.Errorf("pause of a paused campaign: %v, want Conflict", err)
		}
		rb, err := r.st.ActOnCampaign(ctx, c.ID, posfleet.CampaignRollback, "ana", "fee bug")
		if err != nil {
			t.Fatal(err)
		}
		if rb.State != posfleet.CampaignRollingBack || len(r.alarms.resolved) != 1 {
			t.Fatalf("rollback: %s, resolved %v", rb.State, r.alarms.resolved)
		}
		for i := 0; i < 20 && r.get(c.ID).State == posfleet.CampaignRollingBack; i++ {
			r.step()
			f.install()
			f.advance(time.Minute)
		}
		got = r.get(c.ID)
		if got.State != posfleet.CampaignRolledBack || got.Waves[0].Counts[posfleet.CTRolledBack] != 3 {
			t.Fatalf("after rollback: %s %+v", got.State, got.Waves[0].Counts)
		}
		if f.sentCount() != 6 {
			t.Errorf("%d commands in all, want 3 updates and 3 rollbacks", f.sentCount())
		}
		for _, s := range f.sent[3:] {
			if s.cmd.Target != "2.4.1" || s.cmd.URL != "https://fw.example/2.4.1.bin" {
				t.Errorf("rollback command %+v", s.cmd)
			}
		}
		for _, w := range f.terms {
			if w.t.Firmware != "2.4.1" {
				t.Errorf("%s runs %s after the rollback", w.t.Ref.Terminal, w.t.Firmware)
			}
		}
	})
}

// TestResumeAcceptsTheGate: resuming a campaign its gate paused goes on
// with the next wave.
func TestResumeAcceptsTheGate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(30, "A920", "2.4.1")
		r := newRig(t, db, f)
		c, err := r.st.CreateCampaign(ctx, tenant, spec("2.5.0",
			posfleet.WaveSpec{Count: 3, Soak: soak(time.Hour)},
			posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)}), "ana")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50 && r.get(c.ID).State == posfleet.CampaignRunning; i++ {
			r.step()
			f.install()
			f.advance(10 * time.Minute)
			f.trade("2.5.0")
		}
		if st := r.get(c.ID).State; st != posfleet.CampaignPaused {
			t.Fatalf("state %s, want paused", st)
		}
		got, err := r.st.ActOnCampaign(ctx, c.ID, posfleet.CampaignResume, "ana", "fee expected")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != posfleet.CampaignRunning || got.Wave != 1 || got.Waves[1].Counts[posfleet.CTQueued] != 27 {
			t.Fatalf("resumed: %s wave %d %+v", got.State, got.Wave, got.Waves[1].Counts)
		}
		r.step()
		if f.sentCount() != 6 {
			t.Errorf("%d sent after resuming, want 3 + MaxInFlight 3", f.sentCount())
		}
		if _, err := r.st.ActOnCampaign(ctx, c.ID, posfleet.CampaignAbort, "ana", ""); err != nil {
			t.Fatal(err)
		}
		n := f.sentCount()
		f.install()
		r.step()
		if f.sentCount() != n || r.get(c.ID).State != posfleet.CampaignAborted {
			t.Errorf("aborted, yet sent %d more; state %s", f.sentCount()-n, r.get(c.ID).State)
		}
		// The updates in flight when it was aborted are still followed.
		if got := r.get(c.ID).Waves[1].Counts; got[posfleet.CTInstalled] != 3 || got[posfleet.CTSent]+got[posfleet.CTDownloading] != 0 {
			t.Errorf("aborted campaign's wave 2: %v, want the 3 in flight installed", got)
		}
	})
}

// TestWindowAndOffline: nothing is sent outside a fixed window; an
// offline terminal waits as offline and gets its update when it is back,
// inside the window.
func TestWindowAndOffline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(4, "A920", "2.4.1")
		f.set("T-000", func(x *fakeTerm) { x.t.Online = false })
		r := newRig(t, db, f)
		sp := spec("2.5.2", posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)})
		sp.Window = posfleet.MaintenanceWindow{Mode: posfleet.WindowFixed, Start: "02:00", End: "04:00", Zone: "Asia/Shanghai"}
		c, err := r.st.CreateCampaign(ctx, tenant, sp, "ana")
		if err != nil {
			t.Fatal(err)
		}
		// t0 is 20:00 in Shanghai: outside. 02:00 Shanghai is 18:00 UTC.
		for f.clock().Before(time.Date(2026, 3, 2, 17, 59, 0, 0, time.UTC)) {
			r.step()
			f.advance(30 * time.Minute)
		}
		if f.sentCount() != 0 {
			t.Fatalf("%d sent outside the window", f.sentCount())
		}
		if n := r.get(c.ID).Waves[0].Counts; n[posfleet.CTOffline] != 1 || n[posfleet.CTQueued] != 3 {
			t.Fatalf("counts %v, want 1 offline 3 queued", n)
		}
		f.advance(2 * time.Minute) // 18:xx UTC = 02:xx Shanghai
		r.step()
		if f.sentCount() != 3 {
			t.Fatalf("%d sent in the window, want the 3 online", f.sentCount())
		}
		f.install()
		f.set("T-000", func(x *fakeTerm) { x.t.Online = true })
		r.step()
		if f.sentCount() != 4 || f.sent[3].terminal != "T-000" {
			t.Fatalf("the terminal back online was not sent its update: %+v", f.sent)
		}
		for _, s := range f.sent {
			loc, _ := time.LoadLocation("Asia/Shanghai")
			if h := s.at.In(loc).Hour(); h < 2 || h >= 4 {
				t.Errorf("sent to %s at %s local", s.terminal, s.at.In(loc))
			}
		}
	})
}

// TestLearnedWindow: a terminal that usually sells now, or in the next
// hour, is not sent its update; one without history uses Start–End.
func TestLearnedWindow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(3, "A920", "2.4.1")
		idx := func(at time.Time) int { return int(at.Weekday())*24 + at.Hour() }
		var busyNow, busyNext [168]bool
		busyNow[idx(t0)] = true
		busyNext[idx(t0.Add(time.Hour))] = true
		f.hours["T-000"], f.hours["T-001"] = busyNow, busyNext
		var quiet [168]bool
		f.hours["T-002"] = quiet
		r := newRig(t, db, f)
		sp := spec("2.5.2", posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)})
		sp.Window = posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned}
		if _, err := r.st.CreateCampaign(ctx, tenant, sp, "ana"); err != nil {
			t.Fatal(err)
		}
		r.step()
		if f.sentCount() != 1 || f.sent[0].terminal != "T-002" {
			t.Fatalf("sent %+v; want only T-002, which does not sell now or in the next hour", f.sent)
		}
	})
}

// TestNightSoakIsExtended: a soak that saw no payment (the shops were
// closed) judges none of the payment KPIs; the runner soaks again instead
// of passing the gate on crash boots alone, and the fee bug is found once
// the shops sell. Before, the gate passed and the fee firmware went on to
// the next wave.
func TestNightSoakIsExtended(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFleet(30, "A920", "2.4.1")
		r := newRig(t, db, f)
		c, err := r.st.CreateCampaign(ctx, tenant, spec("2.5.0",
			posfleet.WaveSpec{Count: 3, Soak: soak(time.Hour)},
			posfleet.WaveSpec{Percent: 100, Soak: soak(time.Hour)}), "ana")
		if err != nil {
			t.Fatal(err)
		}
		// Night: updates install, nobody sells, past the soak.
		for i := 0; i < 12 && r.get(c.ID).SoakUntil.IsZero(); i++ {
			r.step()
			f.install()
			f.advance(10 * time.Minute)
		}
		for i := 0; i < 8; i++ {
			r.step()
			f.advance(10 * time.Minute)
		}
		got := r.get(c.ID)
		if got.State != posfleet.CampaignRunning || got.Wave != 0 || len(got.Gates) != 0 {
			t.Fatalf("after a soak without trade: %s wave %d gates %+v", got.State, got.Wave, got.Gates)
		}
		ev, err := r.st.CampaignEvents(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(ev, func(e posfleet.CampaignEvent) bool { return e.Kind == "soak_extended" }) {
			t.Errorf("no soak_extended event in %+v", ev)
		}
		// Morning: the shops sell; the extended soak judges the fee.
		for i := 0; i < 20 && r.get(c.ID).State == posfleet.CampaignRunning; i++ {
			f.trade("2.5.0")
			f.advance(10 * time.Minute)
			r.step()
		}
		got = r.get(c.ID)
		if got.State != posfleet.CampaignPaused || !strings.Contains(got.Reason, "amount_mismatch") || f.sentCount() != 3 {
			t.Fatalf("after the shops sold: %s %q, %d sent", got.State, got.Reason, f.sentCount())
		}
	})
}
