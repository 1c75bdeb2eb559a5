package web_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestWebLinksNoAdapter: the web side sees root-owned values and its own
// consumer-side interfaces, never the broker, the WAL, the user and
// terminal stores' database or the InfluxDB client (STYLE.md, layout).
func TestWebLinksNoAdapter(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, adapter := range []string{"github.com/mochi-mqtt/", "go.etcd.io/bbolt", "github.com/tidwall/", "github.com/influxdata/influxdb-client-go"} {
			if strings.HasPrefix(dep, adapter) {
				t.Errorf("web links %s", dep)
			}
		}
	}
}
