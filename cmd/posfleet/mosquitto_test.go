package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
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
	t.Run("each terminal is bound to its client ID, the collectors are not", func(t *testing.T) {
		cfg, _, err := MosquittoDynsec(refs, map[posfleet.TerminalRef]string{refs[0]: "s-1-0123456789", refs[1]: "s-2-0123456789"}, "posfleet-collector", "pw", 10)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(cfg)
		var file struct {
			Clients []map[string]any `json:"clients"`
		}
		if err := json.Unmarshal(b, &file); err != nil {
			t.Fatal(err)
		}
		got := map[string]any{}
		for _, c := range file.Clients {
			got[c["username"].(string)] = c["clientid"]
		}
		want := map[string]any{"posfleet-collector": nil, "acme:T-0001": "acme:T-0001", "acme:T-0002": "acme:T-0002"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("client IDs by username = %v, want %v", got, want)
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

func TestDynsecOwner(t *testing.T) {
	users := map[string]*user.User{
		"mosquitto": {Username: "mosquitto", Uid: "102", Gid: "105"},
		"broker":    {Username: "broker", Uid: "2000", Gid: "2001"},
	}
	lookup := func(name string) (*user.User, error) {
		if u, ok := users[name]; ok {
			return u, nil
		}
		return nil, user.UnknownUserError(name)
	}
	noMosquitto := func(name string) (*user.User, error) {
		if name == "mosquitto" {
			return nil, user.UnknownUserError(name)
		}
		return lookup(name)
	}
	broken := func(string) (*user.User, error) { return nil, errors.New("nss down") }
	cases := []struct {
		name   string
		owner  string
		euid   int
		lookup func(string) (*user.User, error)
		want   *fileOwner
		err    bool
	}{
		{"root gives it to mosquitto", "", 0, lookup, &fileOwner{Name: "mosquitto", UID: 102, GID: 105}, false},
		{"root without a mosquitto user keeps it", "", 0, noMosquitto, nil, false},
		{"root, lookup failing", "", 0, broken, nil, true},
		{"a user keeps it", "", 1000, lookup, nil, false},
		{"explicit owner", "broker", 0, lookup, &fileOwner{Name: "broker", UID: 2000, GID: 2001}, false},
		{"explicit owner, not root", "broker", 1000, lookup, &fileOwner{Name: "broker", UID: 2000, GID: 2001}, false},
		{"explicit unknown owner", "nobody-here", 0, lookup, nil, true},
		{"explicit mosquitto missing", "mosquitto", 0, noMosquitto, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := dynsecOwner(c.owner, c.euid, c.lookup)
			if (err != nil) != c.err {
				t.Fatalf("err = %v, want error %v", err, c.err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("owner = %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestMosquittoDynsecFileOwner: the file is mode 0600 and, written by
// root, owned by the mosquitto user (when it exists), so that Mosquitto,
// which drops root before loading the plugin, can read it; --owner names
// another user.
func TestMosquittoDynsecFileOwner(t *testing.T) {
	dir := t.TempDir()
	fleet, secrets, pw := filepath.Join(dir, "fleet.csv"), filepath.Join(dir, "secrets.csv"), filepath.Join(dir, "collector.pw")
	os.WriteFile(fleet, []byte(fleetCSV(1)), 0o600)
	os.WriteFile(pw, []byte("pw\n"), 0o600)
	data := filepath.Join(dir, "data")
	var out, errb bytes.Buffer
	if code := run([]string{"--data-dir", data, "terminals", "import", fleet, "--secrets-out", secrets}, &out, &errb); code != 0 {
		t.Fatalf("import: %d %s", code, errb.String())
	}
	dynsec := func(t *testing.T, extra ...string) (os.FileInfo, string) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "dynamic-security.json")
		var out, errb bytes.Buffer
		args := append([]string{"--data-dir", data, "mosquitto", "dynsec", "--secrets", secrets, "--collector-password-file", pw, "--iterations", "10", "-o", p}, extra...)
		if code := run(args, &out, &errb); code != 0 {
			return nil, errb.String()
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi, errb.String()
	}
	t.Run("default", func(t *testing.T) {
		fi, stderr := dynsec(t)
		if fi == nil {
			t.Fatalf("dynsec failed: %s", stderr)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
		uid := int(fi.Sys().(*syscall.Stat_t).Uid)
		want := os.Geteuid()
		if u, err := user.Lookup(mosquittoUser); err == nil && os.Geteuid() == 0 {
			want, _ = strconv.Atoi(u.Uid)
		}
		if uid != want {
			t.Errorf("file owned by uid %d, want %d", uid, want)
		}
	})
	t.Run("unknown owner", func(t *testing.T) {
		if fi, _ := dynsec(t, "--owner", "no-such-user-posfleet"); fi != nil {
			t.Error("written for an unknown owner")
		}
	})
	t.Run("explicit owner", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root gives files away")
		}
		fi, stderr := dynsec(t, "--owner", "nobody")
		if fi == nil {
			t.Fatalf("dynsec failed: %s", stderr)
		}
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skip(err)
		}
		if got := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); got != u.Uid {
			t.Errorf("file owned by uid %s, want nobody's %s", got, u.Uid)
		}
	})
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
