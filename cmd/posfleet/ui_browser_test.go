package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// TestBrowserPages: terminals publish over MQTT into the real server and
// InfluxDB; a vendor signs in with a real browser, sees the overview numbers
// of the API, filters the terminals to a flag, opens the terminal and sees
// its battery chart drawn, reboots it and sees the terminal's ack, marks the
// visit done on the work list and sees the terminal leave it, downloads the
// work list CSV, and gets a 404 for another tenant's terminal. Every page is
// saved as screenshots at phone and desktop widths.
func TestBrowserPages(t *testing.T) {
	influx := influxtest.Start(t)
	srv := testServer(t, influx, 3)
	ctx := context.Background()
	if err := srv.Users().AddUser(ctx, "ops-acme", "acme", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	token, err := srv.Users().CreateToken(ctx, "check", "acme")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := srv.Users().CreateToken(ctx, "admin", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	// The policy: 2.4.3 is the target, 2.4.1 (T-0001's) is blocked.
	if code, b := apiCall(t, srv, admin, "PUT", "/api/v1/policy", `models:
  A920:
    target: 2.4.3
    blocked: [2.4.1]
    url: https://updates.example.net/a920-2.4.3.bin
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`); code != 200 {
		t.Fatalf("policy: %d %s", code, b)
	}
	addr := srv.MQTTAddr().String()
	now := time.Now().UTC().Truncate(time.Second)
	seq := map[int]int{}
	pub := func(c mqtt.Client, i int, ch string, retained bool, body string) {
		seq[i]++
		publish(t, c, fmt.Sprintf("fleet/v1/acme/T-%04d/%s", i, ch), 1, retained, fmt.Sprintf(`{"seq":%d,%s}`, seq[i], body))
	}
	clients := map[int]mqtt.Client{}
	for i := 1; i <= 3; i++ {
		c := mustConnect(t, addr, i)
		clients[i] = c
		pub(c, i, "fw", true, fmt.Sprintf(`"ts":%q,"model":"A920","serial":"S%d","firmware":"2.4.%d","app":"1.2.0"`, now.Add(-time.Hour).Format(time.RFC3339), i, i))
		// A heartbeat every 10 minutes over the last hour: one point per
		// chart window, the battery falling.
		for k := 6; k >= 0; k-- {
			pub(c, i, "hb", false, fmt.Sprintf(`"ts":%q,"battery_pct":%d,"charging":false,"signal_dbm":%d,"net":"4g","host_rtt_ms":%d,"paper":"ok"`,
				now.Add(-time.Duration(k)*10*time.Minute).Format(time.RFC3339), 60+k*5, -70-k, 250+k*20))
		}
		for k := range 4 {
			pub(c, i, "txn", false, fmt.Sprintf(`"ts":%q,"id":"tx-%d-%d","type":"sale","entry":"tap","currency":"EUR","amount_entered":1250,"amount_charged":1250,"result":"approved","rc":"00","receipt":"printed"`,
				now.Add(-time.Duration(k)*7*time.Minute).Format(time.RFC3339), i, k))
		}
	}
	// T-0001's printer jams: a maintenance flag, on the work list.
	pub(clients[1], 1, "fault", false, fmt.Sprintf(`"ts":%q,"component":"printer","code":"PAPER_JAM","severity":"warning","state":"raised","detail":"roll stuck"`, now.Format(time.RFC3339)))
	// T-0001 acknowledges every command it gets, as a terminal does.
	var ackSeq atomic.Int64
	ackSeq.Store(1000)
	sub := clients[1].Subscribe("fleet/v1/acme/T-0001/cmd", 1, func(c mqtt.Client, m mqtt.Message) {
		var cmd posfleet.Command
		if json.Unmarshal(m.Payload(), &cmd) != nil {
			return
		}
		go func() {
			for _, st := range []string{"accepted", "done"} {
				c.Publish("fleet/v1/acme/T-0001/ack", 1, false, fmt.Sprintf(`{"seq":%d,"ts":%q,"cmd_id":%q,"status":%q}`,
					ackSeq.Add(1), time.Now().UTC().Format(time.RFC3339), cmd.ID, st)).WaitTimeout(5 * time.Second)
			}
		}()
	})
	if !sub.WaitTimeout(5*time.Second) || sub.Error() != nil {
		t.Fatal("subscribe", sub.Error())
	}
	waitFor(t, "the heartbeats in InfluxDB", func() bool { return count(t, influx, "heartbeat", "battery_pct") >= 21 })
	waitFor(t, "the transactions in InfluxDB", func() bool { return count(t, influx, "txn", "seq") >= 12 })
	waitFor(t, "the fault in the engine", func() bool {
		code, b := apiCall(t, srv, token, "GET", "/api/v1/terminals?flag=hardware_fault", "")
		return code == 200 && strings.Contains(string(b), "T-0001")
	})

	bctx := browser(t)
	base := "http://" + srv.HTTPAddr().String()
	byID := func(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(byID(id)))
		if err != nil {
			t.Fatalf("text of %s: %v", id, err)
		}
		return strings.TrimSpace(s)
	}
	eval := func(js string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return s
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// waitAt waits until the browser's location holds part: a click that
	// submits a form returns before the next page is there.
	waitAt := func(part string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if loc, err := chromedp.Run(bctx, chromedp.Location()); err == nil && strings.Contains(loc, part) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the browser never got to %s", part)
	}

	do("sign in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(byID("signin")),
		chromedp.SendKeys(byID("signin-name"), "ops-acme"),
		chromedp.SendKeys(byID("signin-password"), "correct horse battery"),
		chromedp.Click(byID("signin-submit")),
		chromedp.WaitVisible(byID("stats")),
	)
	t.Run("overview matches the API", func(t *testing.T) {
		code, b := apiCall(t, srv, token, "GET", "/api/v1/fleet", "")
		var fs health.FleetSummary
		if code != 200 || json.Unmarshal(b, &fs) != nil {
			t.Fatalf("fleet: %d %s", code, b)
		}
		first := func(s string) int { n, _ := strconv.Atoi(strings.Fields(s)[0]); return n }
		if first(text("stat-total")) != fs.Total || first(text("stat-online")) != fs.Online || first(text("stat-offline")) != fs.Offline || fs.Total != 3 {
			t.Errorf("overview %q %q %q; API %+v", text("stat-total"), text("stat-online"), text("stat-offline"), fs)
		}
		if got := text("flag-count-hardware_fault"); !strings.HasSuffix(got, strconv.Itoa(fs.Flagged[posfleet.FlagHardwareFault])) {
			t.Errorf("hardware fault badge %q; API %v", got, fs.Flagged)
		}
		if text("txn-total") != "12" {
			t.Errorf("transactions in the last 24 h: %q", text("txn-total"))
		}
	})
	shoot(t, bctx, "overview")

	do("terminals", chromedp.Navigate(base+"/terminals"), chromedp.WaitVisible(byID("terminals")))
	shoot(t, bctx, "terminals")
	do("filter to a flag",
		chromedp.SetValue(byID("filter-flag"), "hardware_fault"),
		chromedp.Click(byID("filter-submit")),
	)
	waitAt("flag=hardware_fault")
	do("filtered list", chromedp.WaitVisible(byID("terminal-link")))
	links := eval(`Array.from(document.querySelectorAll('[data-testid="terminal-link"]')).map(a => a.textContent).join(",")`)
	if loc, _ := chromedp.Run(bctx, chromedp.Location()); links != "T-0001" || !strings.Contains(loc, "flag=hardware_fault") {
		t.Errorf("filtered to hardware_fault: %q at %s", links, loc)
	}

	do("open the terminal", chromedp.Click(byID("terminal-link")), chromedp.WaitVisible(byID("chart-battery")))
	if d := eval(`document.querySelector('[data-testid="chart-battery"] path').getAttribute("d")`); !strings.HasPrefix(d, "M") || strings.Count(d, "L") < 5 {
		t.Errorf("battery line: %q", d)
	}
	if words := eval(`Array.from(document.querySelectorAll('[data-testid="flag-description"]')).map(e => e.textContent).join(" | ")`); !strings.Contains(words, "printer PAPER_JAM") || !strings.Contains(words, "a version the policy blocks") {
		t.Errorf("flags in words: %q", words)
	}
	shoot(t, bctx, "terminal")

	do("reboot", chromedp.Click(byID("send-reboot")), chromedp.WaitVisible(byID("notice")))
	deadline := time.Now().Add(15 * time.Second)
	for text("command-status") != "done" && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		do("reload", chromedp.Reload(), chromedp.WaitVisible(byID("command-status")))
	}
	if !strings.HasPrefix(text("command-type"), "reboot") || text("command-status") != "done" {
		t.Errorf("reboot listed as %q, %q", text("command-type"), text("command-status"))
	}
	// The update goes out with the policy's target and is acknowledged too.
	do("update", chromedp.Click(byID("send-update")))
	waitAt("done=update_firmware")
	deadline = time.Now().Add(15 * time.Second)
	statuses := func() string {
		return eval(`Array.from(document.querySelectorAll('[data-testid="command-status"]')).map(e => e.textContent.trim()).join(",")`)
	}
	for statuses() != "done,done" && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		do("reload", chromedp.Reload(), chromedp.WaitVisible(byID("command-status")))
	}
	types := eval(`Array.from(document.querySelectorAll('[data-testid="command-type"]')).map(e => e.textContent.trim().split(/\s+/).slice(0, 3).join(" ")).join(",")`)
	// Newest first.
	if !strings.HasPrefix(types, "update_firmware → 2.4.3,reboot cmd-") || statuses() != "done,done" {
		t.Errorf("commands: %q, statuses %q", types, statuses())
	}
	shoot(t, bctx, "terminal-after-commands")
	do("7 days", chromedp.Click(byID("range-7d")))
	waitAt("range=7d")
	do("7 days chart", chromedp.WaitVisible(byID("chart-battery")))

	do("work list", chromedp.Navigate(base+"/worklist"), chromedp.WaitVisible(byID("worklist-item")))
	if got := text("worklist-terminal"); got != "T-0001" {
		t.Errorf("work list: %q", got)
	}
	shoot(t, bctx, "worklist")
	csv := eval(`fetch(document.querySelector('[data-testid="worklist-csv"]').href, {credentials: "same-origin"}).then(async r => r.status + "\n" + r.headers.get("content-disposition") + "\n" + await r.text())`)
	if !strings.HasPrefix(csv, "200\nattachment;") || !strings.Contains(csv, "priority,urgent,region") || !strings.Contains(csv, "T-0001") {
		t.Errorf("CSV download: %q", csv)
	}
	do("visit done",
		chromedp.SendKeys(byID("worklist-note"), "cleared the paper jam"),
		chromedp.Click(byID("worklist-done")),
		chromedp.WaitVisible(byID("notice")),
	)
	if left := eval(`String(document.querySelector('[data-terminal="acme/T-0001"]'))`); left != "null" || text("notice") != "Visit to T-0001 recorded." {
		t.Errorf("after the visit: %q, %q", left, text("notice"))
	}
	shoot(t, bctx, "worklist-done")

	for _, p := range []struct{ path, id, name string }{
		{"/firmware", "models", "firmware"},
		{"/incidents", "incidents", "incidents"},
		{"/security", "security-events", "security"},
		{"/terminals/acme/T-0002", "chart-battery", "terminal-healthy"},
	} {
		do(p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(byID(p.id)))
		shoot(t, bctx, p.name)
	}

	resp, err := chromedp.RunResponse(bctx, chromedp.Navigate(base+"/terminals/other/T-0001"))
	if err != nil || resp.Status != 404 {
		t.Errorf("another tenant's terminal: %v %v", err, resp)
	}
}
