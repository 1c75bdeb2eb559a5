package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// TestDemoPackages: the demo's firmware policy and its example campaigns
// (deploy/demo) name packages this simulator installs: each sha256 is
// that of the package posterm serves for the URL (PackageSHA256), every
// model of the fleet has one, and the campaigns are valid specs for
// versions the firmware catalogue knows.
func TestDemoPackages(t *testing.T) {
	b, err := os.ReadFile("../../deploy/demo/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := health.ParsePolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	scen, err := LoadScenarios("")
	if err != nil {
		t.Fatal(err)
	}
	base, err := scen.behavior()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range base.Models {
		mp, ok := pol.Models[m]
		switch {
		case !ok:
			t.Errorf("the demo policy has no entry for %s", m)
		case mp.URL == "" || mp.SHA256 != PackageSHA256(mp.URL):
			t.Errorf("%s: package %q sha256 %q, want the URL's digest %s", m, mp.URL, mp.SHA256, PackageSHA256(mp.URL))
		}
	}
	fw, err := LoadFirmware("")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../deploy/demo/campaigns/*.json")
	if len(files) < 3 {
		t.Fatalf("%d example campaigns, want the good, the fee and the crashing firmware", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The body of POST /api/v1/campaigns: the tenant (the demo's token
		// is an administrator's of every tenant) and the spec.
		var req struct {
			Tenant string `json:"tenant"`
			posfleet.CampaignSpec
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if req.Tenant != "demo" {
			t.Errorf("%s: tenant %q, want the demo's", f, req.Tenant)
		}
		spec := req.CampaignSpec
		if spec.Package.SHA256 != PackageSHA256(spec.Package.URL) {
			t.Errorf("%s: sha256 %s, want the URL's digest %s", f, spec.Package.SHA256, PackageSHA256(spec.Package.URL))
		}
		if v := fw.Lookup(spec.Model, spec.Target); v.Version == "" {
			t.Errorf("%s: target %s is not in the firmware catalogue", f, spec.Target)
		}
		// A rollback returns terminals to what they ran: the demo's
		// versions, whatever campaigns ran before.
		for _, rb := range spec.Rollback {
			if rb.Package.SHA256 != PackageSHA256(rb.Package.URL) {
				t.Errorf("%s: rollback to %s: sha256 %s, want the URL's digest", f, rb.Version, rb.Package.SHA256)
			}
		}
		if len(spec.Rollback) < 5 {
			t.Errorf("%s: rollback packages for %d versions, want every other version of the demo", f, len(spec.Rollback))
		}
		if len(spec.Waves) == 0 || spec.Model == "" || spec.Name == "" {
			t.Errorf("%s: %+v", f, spec)
		}
	}
}
