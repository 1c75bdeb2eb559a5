package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/server/servertest"
)

func TestFirmwareCatalogue(t *testing.T) {
	c, err := LoadFirmware("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model, version string
		fee            int64
		crash          bool
	}{
		{"A920", "2.3.7", 60, false},
		{"S920", "2.5.0", 60, false},
		{"VX520", "2.5.1", 0, true},
		{"A920", "2.5.2", 0, false},
		{"A920", "2.4.1", 0, false}, // not in the catalogue: as its scenario says
	} {
		v := c.Lookup(tc.model, tc.version)
		if v.FeeBasisPoints != tc.fee || (v.Crash != nil) != tc.crash {
			t.Errorf("%s %s: %+v, want fee %d crash %v", tc.model, tc.version, v, tc.fee, tc.crash)
		}
	}
	if p := c.Lookup("A920", "2.5.1").Crash; p.BootReason != posfleet.BootCrash || p.AfterTxns < 1 || p.WithinMin <= 0 {
		t.Errorf("2.5.1 crash plan %+v", p)
	}

	// An entry for a model wins over the entry for every model.
	c, err = ParseFirmware([]byte(`{"firmware": [
		{"version": "3.0.0", "fee_bp": 10},
		{"version": "3.0.0", "models": ["A920"], "crash": {"after_txns": 2, "within_min": 1, "boot_reason": "watchdog"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Lookup("A920", "3.0.0"); v.FeeBasisPoints != 0 || v.Crash == nil || v.Crash.BootReason != posfleet.BootWatchdog {
		t.Errorf("A920 3.0.0: %+v", v)
	}
	if v := c.Lookup("S920", "3.0.0"); v.FeeBasisPoints != 10 || v.Crash != nil {
		t.Errorf("S920 3.0.0: %+v", v)
	}
	var nilCat *FirmwareCatalogue
	if v := nilCat.Lookup("A920", "2.5.0"); v.FeeBasisPoints != 0 {
		t.Errorf("nil catalogue: %+v", v)
	}

	for _, bad := range []struct{ name, file, want string }{
		{"unknown field", `{"firmware": [{"version": "1", "fee": 60}]}`, "unknown field"},
		{"no version", `{"firmware": [{"fee_bp": 60}]}`, "without a version"},
		{"twice", `{"firmware": [{"version": "1"}, {"version": "1"}]}`, "twice"},
		{"negative fee", `{"firmware": [{"version": "1", "fee_bp": -1}]}`, "negative"},
		{"empty crash", `{"firmware": [{"version": "1", "crash": {}}]}`, "after_txns"},
		{"crash reason", `{"firmware": [{"version": "1", "crash": {"after_txns": 1, "within_min": 1, "boot_reason": "user"}}]}`, "boot_reason"},
	} {
		if _, err := ParseFirmware([]byte(bad.file)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err %v, want %q", bad.name, err, bad.want)
		}
	}
}

// TestCrashUnderLoad: 2.5.1 crashes on its sixth transaction within 30
// minutes, never at a quiet shop's pace.
func TestCrashUnderLoad(t *testing.T) {
	c, err := LoadFirmware("")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Lookup("A920", "2.5.1").Crash
	count := func(every float64, n int) (crashes int) {
		var recent []float64
		for k := range n {
			var crash bool
			if recent, crash = p.overloaded(recent, float64(k)*every); crash {
				crashes++
			}
		}
		return crashes
	}
	if n := count(1, 60); n != 10 { // a sale a minute: every sixth crashes
		t.Errorf("busy: %d crashes in 60 sales, want 10", n)
	}
	if n := count(6, 200); n != 0 { // a sale every 6 minutes: 5 in 30 minutes
		t.Errorf("quiet: %d crashes in 200 sales, want 0", n)
	}
}

// TestURLPackages: without a network, the package at a URL is the URL's
// bytes, and PackageSHA256 is their digest.
func TestURLPackages(t *testing.T) {
	const u = "https://updates.example.com/a920-2.5.2.bin?x=1"
	resp, err := (&http.Client{Transport: urlPackages{}}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256([]byte(u))
	if string(b) != u || resp.StatusCode != 200 || PackageSHA256(u) != hex.EncodeToString(sum[:]) {
		t.Errorf("package %q (%d), digest %s", b, resp.StatusCode, PackageSHA256(u))
	}
}

// firmwareScenarios is the field file without its fleet-wide events, with
// busy terminals (10 sales a real second at time scale 60) that approve
// every sale, on the firmware versions named.
func firmwareScenarios(t *testing.T, versions ...string) *ScenarioFile {
	t.Helper()
	scen, err := LoadScenarios("")
	if err != nil {
		t.Fatal(err)
	}
	var keep []Scenario
	for _, s := range scen.Scenarios {
		if s.Name == "healthy" {
			keep = append(keep, s)
		}
	}
	curve := make([]float64, 24)
	for i := range curve {
		curve[i] = 1
	}
	for _, v := range versions {
		bh := map[string]any{
			"firmware": v, "txn_per_hour": 600, "curve": curve, "models": []string{"A920"},
			"decline_rate": 0, "cancel_rate": 0, "refund_rate": 0, "chip_fail_rate": 0,
			"timeout_rate": 0, "error_rate": 0, "host_down_rate": 0, "receipt_fail_rate": 0,
		}
		b, _ := json.Marshal(bh)
		keep = append(keep, Scenario{Name: "fw_" + v, Behavior: b})
	}
	scen.Scenarios = keep
	return scen
}

// testFleet provisions one A920 per scenario on srv.
func testFleet(t *testing.T, srv *servertest.Server, scenarios ...string) ([]FleetTerminal, map[posfleet.TerminalRef]string) {
	t.Helper()
	var fleet []FleetTerminal
	assigned := map[posfleet.TerminalRef]string{}
	for i, s := range scenarios {
		ft := FleetTerminal{
			TerminalRef: posfleet.TerminalRef{Tenant: "sim", Terminal: fmt.Sprintf("T-%05d", i+1)},
			Model:       "A920", Merchant: "M-00001", Site: "Shanghai Grocery 1", Region: "Shanghai",
			Lat: 31.23, Lon: 121.47, Secret: newSecret(),
		}
		fleet = append(fleet, ft)
		assigned[ft.TerminalRef] = s
	}
	var buf bytes.Buffer
	if err := WriteFleet(&buf, fleet); err != nil {
		t.Fatal(err)
	}
	srv.Import(buf.String())
	return fleet, assigned
}

// TestFirmwareBehaviourFromCatalogue runs a terminal on each of the
// catalogue's 2.5.0 (fee), 2.5.1 (crashes under load) and 2.5.2 (good)
// and reads what reached InfluxDB: the fee version charges 0.6% more on
// every approved sale and never crashes, the crash version restarts with
// boot_reason crash and charges what was entered, the good one neither.
func TestFirmwareBehaviourFromCatalogue(t *testing.T) {
	srv := servertest.Start(t, 0)
	fleet, assigned := testFleet(t, srv, "fw_2.5.0", "fw_2.5.1", "fw_2.5.2")
	sim, err := NewSimulation(SimOptions{
		Broker: srv.URL(), Fleet: fleet, Scenarios: assigned, File: firmwareScenarios(t, "2.5.0", "2.5.1", "2.5.2"),
		Heartbeat: time.Second, TimeScale: 60, StartHour: 11,
		StoreDir: t.TempDir(), Ramp: 100, ReconnectMax: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	if err := sim.Run(ctx); err != nil {
		t.Fatal(err)
	}
	tot := sim.Totals()
	if tot.Refused != 0 || tot.RunErrors != 0 || tot.ReportErrors != 0 {
		t.Errorf("errors: refused %d, run %d, report %d", tot.Refused, tot.RunErrors, tot.ReportErrors)
	}

	bg := context.Background()
	want := map[string]uint64{}
	for _, st := range sim.terms {
		want[st.ft.Terminal] = st.client.Stats().Acked.Txn
	}
	type outcome struct{ sales, mismatched, feeRight, crashes, boots, maxUptime int }
	got := map[string]outcome{}
	for _, f := range fleet {
		servertest.Eventually(t, 20*time.Second, f.Terminal+"'s acknowledged transactions", func() bool {
			return uint64(len(srv.Points(bg, "txn", f.TerminalRef))) >= want[f.Terminal]
		})
		var o outcome
		for _, p := range srv.Points(bg, "txn", f.TerminalRef) {
			if p["result"] != posfleet.ResultApproved || p["type"] != posfleet.TxnSale {
				continue
			}
			o.sales++
			entered, _ := strconv.ParseInt(p["amount_entered"], 10, 64)
			charged, _ := strconv.ParseInt(p["amount_charged"], 10, 64)
			if charged != entered {
				o.mismatched++
			}
			if charged == (entered*10060+5000)/10000 { // entered × 1.006, rounded
				o.feeRight++
			}
		}
		for _, p := range srv.Points(bg, "firmware", f.TerminalRef) {
			o.boots++
			if p["boot_reason"] == posfleet.BootCrash {
				o.crashes++
			}
		}
		for _, p := range srv.Points(bg, "heartbeat", f.TerminalRef) {
			up, _ := strconv.Atoi(p["uptime_s"])
			o.maxUptime = max(o.maxUptime, up)
		}
		got[assigned[f.TerminalRef]] = o
		t.Logf("%s: %+v", assigned[f.TerminalRef], o)
	}
	for name, o := range got {
		if o.sales < 20 {
			t.Errorf("%s: only %d approved sales; the test needs load", name, o.sales)
		}
	}
	if o := got["fw_2.5.0"]; o.mismatched != o.sales || o.feeRight != o.sales || o.crashes != 0 {
		t.Errorf("fee firmware 2.5.0: %+v, want every sale charged entered × 1.006 and no crash", o)
	}
	if o := got["fw_2.5.1"]; o.crashes < 2 || o.mismatched != 0 {
		t.Errorf("crashing firmware 2.5.1: %+v, want crash boots under load and no fee", o)
	}
	if o := got["fw_2.5.2"]; o.crashes != 0 || o.mismatched != 0 {
		t.Errorf("good firmware 2.5.2: %+v, want neither fee nor crash", o)
	}
	// A crash restarts the uptime: the crashing terminal never stays up
	// as long as the good one.
	if c, g := got["fw_2.5.1"].maxUptime, got["fw_2.5.2"].maxUptime; c >= g || g < 3 {
		t.Errorf("longest uptime %d s on the crashing firmware, %d s on the good one", c, g)
	}
}

// TestUpdateProgressChecksumAndRestart updates a terminal to 2.5.2 with
// the package's digest (downloading, then installed), then to 2.5.0 with a
// wrong digest (downloading, then failed with a checksum error, still on
// 2.5.2), restarts the simulator on the same store directory, and finds
// the terminal booting on 2.5.2: the restart did not undo the update.
func TestUpdateProgressChecksumAndRestart(t *testing.T) {
	srv := servertest.Start(t, 0)
	fleet, assigned := testFleet(t, srv, "healthy")
	ref := fleet[0].TerminalRef
	dir := t.TempDir()
	scen, err := LoadScenarios("")
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*Simulation, func()) {
		sim, err := NewSimulation(SimOptions{
			Broker: srv.URL(), Fleet: fleet, Scenarios: assigned, File: scen,
			Heartbeat: time.Second, TimeScale: 1, StartHour: 11,
			StoreDir: dir, Ramp: 100, ReconnectMax: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sim.Run(ctx) }()
		stop := func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
		servertest.Eventually(t, 10*time.Second, "the terminal connected", func() bool {
			return sim.started.Load() == 1 && sim.Totals().Connected == 1
		})
		return sim, stop
	}
	bg := context.Background()
	inventories := func(n int) []string {
		t.Helper()
		var got []string
		servertest.Eventually(t, 15*time.Second, fmt.Sprintf("%d inventories", n), func() bool {
			got = got[:0]
			for _, p := range srv.Points(bg, "firmware", ref) {
				got = append(got, fmt.Sprintf("%s/%s/%s", p["firmware"], p["boot_reason"], p["update_status"]))
			}
			return len(got) >= n
		})
		return got
	}

	sim, stop := start()
	good := "https://updates.example.com/a920-2.5.2.bin"
	if err := srv.SendCommand(bg, ref, posfleet.Command{ID: "CMD-GOOD", Type: posfleet.CmdUpdateFirmware,
		Target: "2.5.2", URL: good, SHA256: PackageSHA256(good)}); err != nil {
		t.Fatal(err)
	}
	want := []string{"2.4.1/power_on/", "2.4.1/power_on/downloading", "2.5.2/update/installed"}
	if got := inventories(3); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("inventories after the good update\n%v\nwant\n%v", got, want)
	}

	bad := "https://updates.example.com/a920-2.5.0.bin"
	if err := srv.SendCommand(bg, ref, posfleet.Command{ID: "CMD-BAD", Type: posfleet.CmdUpdateFirmware,
		Target: "2.5.0", URL: bad, SHA256: PackageSHA256(good)}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "2.5.2/update/downloading", "2.5.2/update/failed")
	if got := inventories(5); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("inventories after the mismatching update\n%v\nwant\n%v", got, want)
	}
	pts := srv.Points(bg, "firmware", ref)
	if e := pts[len(pts)-1]["update_error"]; !strings.Contains(e, "sha256 mismatch") {
		t.Errorf("update error %q, want a checksum error", e)
	}
	if fw := sim.terms[0].client.Inventory().Firmware; fw != "2.5.2" {
		t.Errorf("after the failed update the terminal runs %s, want 2.5.2", fw)
	}
	stop()

	sim, stop = start()
	defer stop()
	want = append(want, "2.5.2/power_on/")
	if got := inventories(6); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("inventories after the restart\n%v\nwant\n%v", got, want)
	}
	if fw := sim.terms[0].client.Inventory().Firmware; fw != "2.5.2" {
		t.Errorf("after the restart the terminal runs %s, want 2.5.2", fw)
	}
}
