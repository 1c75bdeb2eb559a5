package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestExampleConfig loads deploy/posfleet.example.yaml through the real
// configuration loader, which refuses unknown keys, and checks that every
// option of `posfleet serve` is documented in it.
func TestExampleConfig(t *testing.T) {
	for _, env := range os.Environ() {
		if name, _, _ := strings.Cut(env, "="); strings.HasPrefix(name, "POSFLEET_") {
			t.Setenv(name, "") // the environment would win over the file
			os.Unsetenv(name)
		}
	}
	path := filepath.Join("..", "..", "deploy", "posfleet.example.yaml")
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cli, kctx, err := parse([]string{"--config", path, "serve"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if cli.DataDir != "/var/lib/posfleet" || !slices.Equal(cli.Serve.Roles, []string{"broker", "collector", "web"}) || cli.Serve.RateBurst != 500 {
		t.Errorf("example config not applied: data-dir %q, roles %v, rate-burst %d", cli.DataDir, cli.Serve.Roles, cli.Serve.RateBurst)
	}
	for _, n := range kctx.Model.Node.Children {
		if n.Name != "serve" {
			continue
		}
		for _, f := range append(n.Flags, kctx.Model.Node.Flags...) {
			if f.Name == "help" || f.Name == "config" {
				continue
			}
			if !strings.Contains(string(body), " "+f.Name+":") && !strings.Contains(string(body), "\n"+f.Name+":") {
				t.Errorf("serve option %q is not documented in %s", f.Name, path)
			}
		}
	}
}

// TestGrafanaDashboardQueries runs every Flux query of the Grafana dashboard
// against InfluxDB holding a little of every measurement, with Grafana's
// variables filled in: a query that does not parse, names a missing
// function or fails at run time fails the test.
func TestGrafanaDashboardQueries(t *testing.T) {
	influx := influxtest.Start(t)
	srv := testServer(t, influx, 2)
	c := mustConnect(t, srv.MQTTAddr().String(), 1)
	base := "fleet/v1/acme/T-0001/"
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339) }
	publish(t, c, base+"status", 1, true, `{"online":false}`)
	publish(t, c, "fleet/v1/acme/T-0002/hb", 1, false, `{"seq":1,"ts":"`+now.Format(time.RFC3339)+`"}`) // denied: a security event
	publish(t, c, base+"fw", 1, true, `{"seq":1,"ts":"`+ts(5*time.Minute)+`","model":"A920","serial":"SN-1","firmware":"2.4.1","app":"7.1.0","boot_reason":"power_on"}`)
	publish(t, c, base+"hb", 1, false, `{"seq":2,"ts":"`+ts(4*time.Minute)+`","uptime_s":60,"battery_pct":7,"charging":false,"signal_dbm":-110,"host_rtt_ms":950}`)
	publish(t, c, base+"fault", 1, false, `{"seq":3,"ts":"`+ts(3*time.Minute)+`","component":"secure_element","code":"TAMPER","severity":"critical","state":"raised"}`)
	publish(t, c, base+"txn", 1, false, `{"seq":4,"ts":"`+ts(2*time.Minute)+`","id":"TX-1","type":"sale","entry":"chip","currency":"CNY","amount_entered":5000,"amount_charged":5500,"result":"approved","rc":"00","host_ms":800,"receipt":"failed"}`)
	publish(t, c, base+"hb", 1, false, `{"seq":"bad"}`)
	waitFor(t, "the points", func() bool {
		return count(t, influx, "txn", "seq") == 1 && count(t, influx, "rejected", "count") == 1 && count(t, influx, "security", "count") == 1
	})

	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "posfleet-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Query string `json:"query"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("${bucket}", influxtest.Bucket, "${tenant:regex}", "acme")
	// Grafana defines v; outside Grafana the query must.
	v := `v = {timeRangeStart: -1h, timeRangeStop: now(), windowPeriod: 1m}` + "\n"
	queries := map[string]string{}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			queries[fmt.Sprintf("%s/%d", p.Title, i)] = v + fill.Replace(tg.Query)
		}
	}
	for _, tv := range d.Templating.List {
		if strings.Contains(tv.Query, "from(") {
			queries["variable "+tv.Name] = fill.Replace(tv.Query)
		}
	}
	if len(queries) < 10 {
		t.Fatalf("only %d queries found", len(queries))
	}
	for name, q := range queries {
		t.Run(name, func(t *testing.T) {
			rows, err := influx.Flux(context.Background(), q)
			if err != nil {
				t.Fatalf("%v\n%s", err, q)
			}
			if len(rows) == 0 {
				t.Errorf("no rows (the data holds something for every panel)\n%s", q)
			}
		})
	}
}
