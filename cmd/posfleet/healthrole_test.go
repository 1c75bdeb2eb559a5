package main

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/pgtest"
)

// startHealthProcess runs `posfleet serve --roles health` on the external
// broker and the database, and waits until it is healthy (subscribed).
func startHealthProcess(t *testing.T, bin, dataDir, clientID, brokerAddr, dbURL string) *process {
	t.Helper()
	p, _ := startRole(t, bin, dataDir, []string{"--database-url", dbURL}, []string{"--roles", "health",
		"--mqtt-source", "tcp://" + brokerAddr, "--health-client-id", clientID})
	return p
}

// publishedFlags returns the flags in terminal_flags per scenario terminal.
func publishedFlags(t *testing.T, db *store.DB) map[string][]string {
	t.Helper()
	rows, err := db.Query(`SELECT terminal, flag FROM terminal_flags WHERE tenant = 'acme' ORDER BY terminal, flag`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var term, flag string
		if err := rows.Scan(&term, &flag); err != nil {
			t.Fatal(err)
		}
		out[term] = append(out[term], flag)
	}
	return out
}

// TestHealthRoleCluster: Mosquitto as the external broker, a collector on
// the shared subscription, two `posfleet serve --roles health` processes
// on the whole stream and one PostgreSQL. The labelled scenario's flags
// end in terminal_flags; the lease holder is killed with SIGKILL halfway,
// the other takes over within the lease's TTL, and the flags of the
// messages sent after the kill are right too.
func TestHealthRoleCluster(t *testing.T) {
	n := len(labelledScenario)
	mq := mosquittoFromRegistry(t, n)
	dbURL := pgtest.Database(t)
	db, err := store.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	influx := influxtest.Start(t)
	collectorServer(t, influx, mq.addr, "cluster-collector")
	bin := binary(t)
	root := t.TempDir()
	procs := map[int]*process{}
	for _, name := range []string{"a", "b"} {
		p := startHealthProcess(t, bin, filepath.Join(root, name), "posfleet-health-"+name, mq.addr, dbURL)
		procs[p.cmd.Process.Pid] = p
	}

	labels := map[string][]string{}
	for i, row := range labelledScenario {
		if row.flag != "" {
			labels[fmt.Sprintf("T-%04d", i+1)] = []string{string(row.flag)}
		}
	}
	wantUpTo := func(rows int) map[string][]string {
		want := map[string][]string{}
		for i := range rows {
			if l, ok := labels[fmt.Sprintf("T-%04d", i+1)]; ok {
				want[fmt.Sprintf("T-%04d", i+1)] = l
			}
		}
		return want
	}
	equal := func(a, b map[string][]string) bool { return maps.EqualFunc(a, b, slices.Equal[[]string]) }
	play := func(from, to int) {
		for i := from; i < to; i++ {
			c := mustConnect(t, mq.addr, i+1)
			for j, m := range labelledScenario[i].messages {
				ch, body, _ := strings.Cut(m, " ")
				ts := time.Now().UTC().Add(time.Duration(j-len(labelledScenario[i].messages)) * time.Second).Format(time.RFC3339)
				publish(t, c, fmt.Sprintf("fleet/v1/acme/T-%04d/%s", i+1, ch), 1, false, fmt.Sprintf(body, j+1, ts))
			}
			c.Disconnect(100)
		}
	}
	half := n / 2
	play(0, half)
	waitFor(t, "the first half's flags in terminal_flags", func() bool { return equal(publishedFlags(t, db), wantUpTo(half)) })

	var holder string
	if err := db.QueryRow(`SELECT holder FROM leases WHERE name = 'health'`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(holder, ":")
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	killed, ok := procs[pid]
	if !ok {
		t.Fatalf("lease holder %q is none of the health processes", holder)
	}
	killed.kill()
	t.Logf("killed the lease holder %s", holder)
	start := time.Now()
	play(half, n)
	waitFor(t, "every flag in terminal_flags after the takeover", func() bool { return equal(publishedFlags(t, db), wantUpTo(n)) })
	t.Logf("flags right %.1f s after the kill", time.Since(start).Seconds())
	var now string
	if err := db.QueryRow(`SELECT holder FROM leases WHERE name = 'health'`).Scan(&now); err != nil || now == holder {
		t.Fatalf("lease holder %q after the kill (%v)", now, err)
	}
	if got, want := publishedFlags(t, db), wantUpTo(n); !equal(got, want) {
		t.Fatalf("terminal_flags %v, want %v", got, want)
	}
}
