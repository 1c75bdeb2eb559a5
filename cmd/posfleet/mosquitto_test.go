package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
)

func TestWriteMosquittoACL(t *testing.T) {
	var b bytes.Buffer
	refs := []posfleet.TerminalRef{{Tenant: "acme", Terminal: "T-0001"}, {Tenant: "other", Terminal: "T.9_x"}}
	if err := WriteMosquittoACL(&b, refs, "posfleet-collector"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"user posfleet-collector\ntopic read $share/posfleet/fleet/v1/#\n",
		"user acme:T-0001\ntopic write fleet/v1/acme/T-0001/#\ntopic read fleet/v1/acme/T-0001/cmd\n",
		"user other:T.9_x\ntopic write fleet/v1/other/T.9_x/#\ntopic read fleet/v1/other/T.9_x/cmd\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("ACL file lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "pattern") {
		t.Error("pattern rules cannot express the per-terminal rule")
	}
	if err := WriteMosquittoACL(&b, []posfleet.TerminalRef{{Tenant: "a b", Terminal: "x"}}, ""); err == nil {
		t.Error("an invalid terminal ID was written into the ACL file")
	}
}

func TestMosquittoDynsec(t *testing.T) {
	refs := []posfleet.TerminalRef{{Tenant: "acme", Terminal: "T-0001"}, {Tenant: "acme", Terminal: "T-0002"}}
	secrets := map[posfleet.TerminalRef]string{refs[0]: "secret-one-0123456789"}
	t.Run("terminals without a secret are counted and left out", func(t *testing.T) {
		cfg, missing, err := MosquittoDynsec(refs, secrets, "posfleet-collector", "pw", 10)
		if err != nil {
			t.Fatal(err)
		}
		if missing != 1 {
			t.Errorf("missing = %d, want 1", missing)
		}
		b, _ := json.Marshal(cfg)
		if strings.Contains(string(b), "T-0002") || !strings.Contains(string(b), `"username":"acme:T-0001"`) {
			t.Errorf("clients: %s", b)
		}
		if strings.Contains(string(b), "secret-one") {
			t.Error("a secret in clear in the dynamic security file")
		}
	})
	for _, c := range []struct {
		name, user, pw string
		iterations     int
	}{
		{"no collector password", "posfleet-collector", "", 10},
		{"collector named like a terminal", "acme:T-0009", "pw", 10},
		{"no iterations", "posfleet-collector", "pw", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := MosquittoDynsec(refs, secrets, c.user, c.pw, c.iterations); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestReadSecrets(t *testing.T) {
	cases := []struct {
		name, body string
		ok         bool
	}{
		{"secrets file", "tenant,terminal,secret\nacme,T-0001,s3cret-s3cret-s3cret\n", true},
		{"no header", "acme,T-0001,s3cret\n", false},
		{"provisioning file instead", "tenant,terminal,model,merchant,site,region,lat,lon\n", false},
		{"bad terminal", "tenant,terminal,secret\nacme,T 1,s\n", false},
		{"empty secret", "tenant,terminal,secret\nacme,T-0001,\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "secrets.csv")
			os.WriteFile(p, []byte(c.body), 0o600)
			_, err := readSecrets(p)
			if (err == nil) != c.ok {
				t.Errorf("err = %v, want ok %v", err, c.ok)
			}
		})
	}
}
