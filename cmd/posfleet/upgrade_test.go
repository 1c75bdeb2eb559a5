package main

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestUpgradeFromPreviousRelease starts the server on a data directory
// written by the previous release (testdata/previous-release: bbolt
// registry and users, health snapshot, policy.yaml; see its README) and
// checks that nothing is lost: every terminal connects with its old secret,
// both users sign in with their old passwords, the old API token works,
// and the flags and the incident are there.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	fixture := filepath.Join("testdata", "previous-release")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(fixture, "data"))); err != nil {
		t.Fatal(err)
	}
	// git keeps no modes: give the files those posfleet gave them.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.Chmod(filepath.Join(dir, e.Name()), 0o600)
	}
	cfg := testConfig(dir, influx)
	// The health engine runs on the fixture's clock, from when it was
	// made: its flags' evidence is kept for EvidenceWindow, a day, and on
	// the real clock the test failed from a day after the fixture was
	// made.
	madeAt, started := time.Date(2026, 12, 2, 19, 39, 0, 0, time.UTC), time.Now()
	cfg.Health.Now = func() time.Time { return madeAt.Add(time.Since(started)) }
	srv := startServer(t, cfg)
	base := "http://" + srv.HTTPAddr().String()

	// Terminals: each connects with the secret it was provisioned with.
	f, err := os.Open(filepath.Join(fixture, "fleet.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows[1:] {
		id := r[0] + ":" + r[1]
		c, err := connect(srv.MQTTAddr().String(), id, id, r[8])
		if err != nil {
			t.Errorf("terminal %s does not connect after the upgrade: %v", id, err)
			continue
		}
		c.Disconnect(50)
	}

	// People and scripts.
	signInWeb(t, base, "admin", "admin-password-0123")
	signInWeb(t, base, "ops", "ops-password-0123")
	tok, err := os.ReadFile(filepath.Join(fixture, "token.txt"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s with the old token: %s %s", path, resp.Status, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}

	// Flags of the snapshot (those that do not depend on the clock).
	want := map[string][]string{
		"T-00002": {"tamper"}, "T-00007": {"tamper"}, "T-00010": {"tamper"},
		"T-00004": {"amount_mismatch", "firmware_blocked", "firmware_outdated"},
		"T-00011": {"amount_mismatch", "firmware_blocked", "firmware_outdated"},
		"T-00008": {"refund_anomaly"},
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var list struct {
			Terminals []struct {
				Terminal string `json:"terminal"`
				Flags    []struct {
					Flag string `json:"flag"`
				} `json:"flags"`
			} `json:"terminals"`
		}
		get("/api/v1/terminals?tenant=acme", &list)
		var missing []string
		seen := 0
		for _, term := range list.Terminals {
			seen++
			var have []string
			for _, fl := range term.Flags {
				have = append(have, fl.Flag)
			}
			for _, w := range want[term.Terminal] {
				if !slices.Contains(have, w) {
					missing = append(missing, term.Terminal+" "+w)
				}
			}
		}
		if len(missing) == 0 && seen == len(rows)-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the upgrade: %d of %d terminals listed; flags missing: %v", seen, len(rows)-1, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var inc struct {
		Incidents []struct {
			ID     string `json:"id"`
			Tenant string `json:"tenant"`
		} `json:"incidents"`
	}
	get("/api/v1/incidents", &inc)
	if len(inc.Incidents) == 0 || inc.Incidents[0].Tenant != "acme" {
		t.Errorf("the incident of the previous release is gone: %+v", inc.Incidents)
	}
	// The previous release had no alarms: its flags get theirs when the
	// health view is first published, and nobody is notified (no route).
	for deadline := time.Now().Add(10 * time.Second); ; {
		var al struct {
			Alarms []struct {
				Terminal string `json:"terminal"`
				State    string `json:"state"`
			} `json:"alarms"`
			Total int `json:"total"`
		}
		get("/api/v1/alarms?kind=tamper&tenant=acme", &al)
		if al.Total == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tamper alarms after the upgrade: %+v, want one for each of the 3 tampered terminals", al)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var pol struct {
		Models map[string]any `json:"models"`
	}
	get("/api/v1/policy", &pol)
	if len(pol.Models) != 3 {
		t.Errorf("policy after the upgrade: %+v", pol)
	}
}
