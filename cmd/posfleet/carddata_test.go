package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/journal"
)

// Card numbers are built at runtime from public test prefixes, never pasted.
func luhnComplete(prefix string) string {
	for d := byte('0'); d <= '9'; d++ {
		s := prefix + string(d)
		sum := 0
		for i := 0; i < len(s); i++ {
			v := int(s[len(s)-1-i] - '0')
			if i%2 == 1 {
				v *= 2
				v = v/10 + v%10
			}
			sum += v
		}
		if sum%10 == 0 {
			return s
		}
	}
	panic("unreachable")
}

// groupDigits joins the digits of p in groups of n with sep.
func groupDigits(p, sep string, n int) string {
	var parts []string
	for len(p) > n {
		parts = append(parts, p[:n])
		p = p[n:]
	}
	return strings.Join(append(parts, p), sep)
}

func bcdHex(p string) string {
	if len(p)%2 == 1 {
		return p + "F"
	}
	return p
}

// cardLayouts are the layouts of the issue (items 4-8), for a card number p.
var cardLayouts = []struct {
	name  string
	topic bool // usable as a topic level (no / # + and not empty)
	make  func(p string) string
}{
	{"plain", true, func(p string) string { return p }},
	{"spaces", true, func(p string) string { return groupDigits(p, " ", 4) }},
	{"dots", true, func(p string) string { return groupDigits(p, ".", 4) }},
	{"slashes", false, func(p string) string { return groupDigits(p, "/", 4) }},
	{"commas", true, func(p string) string { return groupDigits(p, ",", 4) }},
	{"underscores", true, func(p string) string { return groupDigits(p, "_", 4) }},
	{"double spaces", true, func(p string) string { return groupDigits(p, "  ", 4) }},
	{"no-break spaces", true, func(p string) string { return groupDigits(p, "\u00a0", 4) }},
	{"tabs", false, func(p string) string { return groupDigits(p, "\t", 4) }},
	{"fullwidth", true, func(p string) string {
		return strings.Map(func(r rune) rune { return r - '0' + '０' }, p)
	}},
	{"zero-width space", true, func(p string) string { return p[:6] + "\u200b" + p[6:] }},
	{"8+8", true, func(p string) string { return p[:8] + " " + p[8:] }},
	{"6+rest", true, func(p string) string { return p[:6] + " " + p[6:] }},
	{"4.6.rest", true, func(p string) string { return p[:4] + "." + p[4:10] + "." + p[10:] }},
	{"EMV 5A", true, func(p string) string { return fmt.Sprintf("5A%02X%s", (len(p)+1)/2, bcdHex(p)) }},
	{"EMV 57", true, func(p string) string {
		t2 := bcdHex(p + "D" + "2912" + "201" + "0000012345")
		return fmt.Sprintf("57%02X%s", len(t2)/2, t2)
	}},
	{"ISO 8583 F2", true, func(p string) string { return fmt.Sprintf("F2=%02d%s", len(p), p) }},
	{"with expiry", true, func(p string) string { return p + "1229" }},
	{"hex ASCII", true, func(p string) string { return hex.EncodeToString([]byte(p)) }},
	{"in text", false, func(p string) string { return "Shop " + groupDigits(p, ".", 4) + " / card" }},
}

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// digitGap is the most bytes between two digits of one card number in
// any layout searched for (a fullwidth digit is 3 bytes, a separator at
// most 3), with room to spare; digits further apart belong to different
// things (two rows of a database page, say).
const digitGap = 64

// digitRun is the digits of a stretch of bytes, start its offset.
type digitRun struct {
	digits string
	start  int
}

// digitRunsOf returns the digits of b in order, whatever their script
// (NFKC first, then every Unicode decimal digit as its ASCII digit),
// everything else dropped, cut into runs where two digits are more than
// digitGap bytes apart: a card number in any layout becomes the plain
// digits of one run. Digits of unrelated values far apart in a binary
// file (the database) do not join into a number that is not there.
func digitRunsOf(b []byte) []digitRun {
	b = norm.NFKC.Bytes(b)
	var (
		runs []digitRun
		out  strings.Builder
		last = -digitGap - 1
	)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		d := -1
		switch {
		case r >= '0' && r <= '9':
			d = int(r - '0')
		case r >= 0x80 && unicode.Is(unicode.Nd, r):
			n := 0
			for n < 60 && unicode.Is(unicode.Nd, r-rune(n)-1) {
				n++
			}
			d = n % 10
		}
		if d >= 0 {
			if i-last > digitGap {
				if out.Len() > 0 {
					runs[len(runs)-1].digits = out.String()
					out.Reset()
				}
				runs = append(runs, digitRun{start: i})
			}
			out.WriteByte(byte('0' + d))
			last = i
		}
		i += size
	}
	if out.Len() > 0 {
		runs[len(runs)-1].digits = out.String()
	}
	return runs
}

// around returns the bytes of b near offset at, digits shown as '#' and
// other bytes outside printable ASCII as '.', to say where a find is
// without repeating it.
func around(b []byte, at int) string {
	b = norm.NFKC.Bytes(b)
	lo, hi := max(0, at-48), min(len(b), at+96)
	out := make([]byte, 0, hi-lo)
	for _, c := range b[lo:hi] {
		switch {
		case c >= '0' && c <= '9':
			c = '#'
		case c < 0x20 || c > 0x7e:
			c = '.'
		}
		out = append(out, c)
	}
	return string(out)
}

// TestDigitRuns: every layout of every card number searched for is one
// run of its digits, inside other text too; digits far apart in a binary
// file are not joined.
func TestDigitRuns(t *testing.T) {
	for _, pan := range []string{luhnComplete("411111111111111"), luhnComplete("37828224631000"), luhnComplete("622126000000000001")} {
		for _, l := range cardLayouts {
			if l.name == "hex ASCII" || strings.HasPrefix(l.name, "EMV") {
				continue // searched as hex, not as digits
			}
			b := []byte("row 7, note: " + l.make(pan) + " at 10:15")
			found := false
			for _, r := range digitRunsOf(b) {
				found = found || strings.Contains(r.digits, pan)
			}
			if !found {
				t.Errorf("%s: %v does not hold the card's digits", l.name, digitRunsOf(b))
			}
		}
		// The same digits scattered over a page, one per 100 bytes.
		var page []byte
		for _, d := range pan {
			page = append(page, byte(d))
			page = append(page, bytes.Repeat([]byte{0}, 100)...)
		}
		for _, r := range digitRunsOf(page) {
			if strings.Contains(r.digits, pan) {
				t.Errorf("scattered digits joined: %+v", r)
			}
		}
	}
}

// TestCardDataNowhere sends every card number of the corpus, in every
// layout, through every entry point from outside (MQTT payload fields and
// keys, topic levels, username, client ID, visit notes over the API and the
// pages, a provisioning file, the firmware policy), and then searches for
// its digits in InfluxDB, every file of the data directory (spool
// included), the server's log, every page and every API answer.
func TestCardDataNowhere(t *testing.T) {
	influx := influxtest.Start(t)
	dir := t.TempDir()
	cfg := testConfig(dir, influx)
	cfg.Collector.EventWindow = time.Second // aggregated events reach InfluxDB within the test's waits
	var logs logBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	provision(t, filepath.Join(dir, "registry.db"), cfg.Registry, 2)
	srv := startServer(t, cfg)
	ctx := context.Background()
	if err := srv.Users().AddUser(ctx, "ops-acme", "acme", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	admin, err := srv.Users().CreateToken(ctx, "admin", auth.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	mqttAddr := srv.MQTTAddr().String()
	base := "http://" + srv.HTTPAddr().String()

	pans := map[string]string{
		"Visa 16":     luhnComplete("411111111111111"),
		"Amex 15":     luhnComplete("37828224631000"),
		"UnionPay 19": luhnComplete("622126000000000001"),
	}
	var answers [][]byte // every answer to a refused request: searched too

	// Some ordinary activity, so that the pages have something to show.
	c := mustConnect(t, mqttAddr, 1)
	now := time.Now().UTC().Format(time.RFC3339)
	publish(t, c, "fleet/v1/acme/T-0001/fw", 1, true, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","serial":"SN-1","firmware":"2.4.1"}`, now))
	publish(t, c, "fleet/v1/acme/T-0001/hb", 1, false, fmt.Sprintf(`{"seq":2,"ts":%q,"battery_pct":80}`, now))
	if code, b := apiCall(t, srv, admin, "POST", "/api/v1/terminals/acme/T-0001/serviced", `{"note":"replaced printer, 3 rolls, 2026-11-22 10:15"}`); code != 200 {
		t.Fatalf("a plain note: %d %s", code, b)
	}

	web := signInWeb(t, base, "ops-acme", "correct horse battery")
	csrf := func() string {
		resp, err := web.Get(base + "/terminals/acme/T-0001")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no CSRF token on the terminal page (status %d)", resp.StatusCode)
		}
		return string(m[1])
	}()

	payloads, topics, security := 0, 0, 0
	for pname, pan := range pans {
		for _, l := range cardLayouts {
			v := l.make(pan)
			js, _ := json.Marshal(v)
			// MQTT payload: a field's value and a key.
			publish(t, c, "fleet/v1/acme/T-0001/fault", 1, false, fmt.Sprintf(`{"seq":3,"ts":%q,"component":"printer","code":"X","severity":"info","state":"raised","detail":%s}`, now, js))
			publish(t, c, "fleet/v1/acme/T-0001/status", 1, false, fmt.Sprintf(`{"online":true,%s:1}`, js))
			payloads += 2
			if l.topic {
				// The last topic level (an unknown channel) and the
				// terminal level (an ACL denial).
				publish(t, c, "fleet/v1/acme/T-0001/"+v, 1, true, `{"online":true}`) // retained: must not be kept either
				publish(t, c, "fleet/v1/acme/"+v+"/hb", 1, false, `{"online":true}`)
				topics++
				security++
			}
			// A visit note, over the API and the page form.
			if code, b := apiCall(t, srv, admin, "POST", "/api/v1/terminals/acme/T-0001/serviced", fmt.Sprintf(`{"note":%s}`, js)); code != http.StatusBadRequest {
				t.Errorf("API note with a %s %s: status %d, want 400", pname, l.name, code)
			} else {
				answers = append(answers, b)
			}
			resp, err := web.PostForm(base+"/terminals/acme/T-0001/serviced", url.Values{"csrf": {csrf}, "note": {"visit " + v}})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("page note with a %s %s: status %d, want 400", pname, l.name, resp.StatusCode)
			}
			answers = append(answers, b)
			// A provisioning file: as the merchant, and as the terminal ID.
			var file bytes.Buffer
			w := csv.NewWriter(&file)
			w.Write([]string{"tenant", "terminal", "model", "merchant", "site", "region", "lat", "lon", "secret"})
			w.Write([]string{"acme", "T-0100", "A920", "Shop " + v, "Site", "north", "", "", ""})
			w.Write([]string{"acme", v, "A920", "Shop", "Site", "north", "", "", ""})
			w.Flush()
			if code, b := apiCall(t, srv, admin, "POST", "/api/v1/terminals/import", file.String()); code != http.StatusBadRequest {
				t.Errorf("provisioning with a %s %s: status %d, want 400", pname, l.name, code)
			} else {
				answers = append(answers, b)
			}
			// The firmware policy.
			policy := fmt.Sprintf(`{"models":{"A920":{"target":"2.5.0","url":%s,"sha256":"%s"}}}`,
				js, strings.Repeat("ab12", 16))
			if code, b := apiCall(t, srv, admin, "PUT", "/api/v1/policy", policy); code != http.StatusBadRequest {
				t.Errorf("policy with a %s %s: status %d, want 400", pname, l.name, code)
			} else {
				answers = append(answers, b)
			}
		}
		// The username and the client ID at CONNECT.
		if cl, err := connect(mqttAddr, "acme:"+pan, "acme:"+pan, "wrong secret"); err == nil {
			cl.Disconnect(0)
			t.Errorf("a %s username connected", pname)
		}
		if cl, err := connect(mqttAddr, pan, "acme:T-0002", secretOf(2)); err == nil {
			cl.Disconnect(0)
			t.Errorf("a %s client ID connected", pname)
		}
		security += 2
		// A wildcard in a published topic: acknowledged, denied and recorded
		// with the topic (see broker's OnPacketRead).
		c2, err := connect(mqttAddr, "acme:T-0002", "acme:T-0002", secretOf(2))
		if err != nil {
			t.Fatal(err)
		}
		if tok := c2.Publish("fleet/v1/acme/T-0002/"+pan+"/#", 1, false, `{}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Errorf("a wildcard publish was not acknowledged: %v", tok.Error())
		}
		security++
		c2.Disconnect(0)
	}
	// Not fatal: the search below must run even when a count is off.
	settle := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("timed out waiting for %s", what)
				return
			}
		}
	}
	settle("card data rejections counted", func() bool {
		return metric(t, srv, `posfleet_messages_rejected_total{reason="card_data"}`) == float64(payloads)
	})
	settle("unknown channels counted", func() bool {
		return metric(t, srv, `posfleet_messages_rejected_total{reason="unknown_channel"}`) == float64(topics)
	})
	settle("rejections stored", func() bool { return sum(t, influx, "rejected", "count") >= int64(payloads+topics) })
	settle("security events stored", func() bool { return sum(t, influx, "security", "count") >= int64(security) })
	// The journal's tables (in posfleet.db, searched below with the other
	// files) hold them too.
	settle("events in the database", func() bool {
		r, _ := journal.RecentRejections(ctx, srv.DB(), "", 1000)
		s, _ := journal.RecentSecurity(ctx, srv.DB(), "", 1000)
		return len(r) >= 1 && len(s) >= 1
	})

	// Every page and API answer.
	pages := map[string][]byte{}
	for _, p := range []string{"/", "/terminals", "/terminals/acme/T-0001", "/terminals/acme/T-0002", "/firmware", "/worklist", "/incidents", "/security"} {
		resp, err := web.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("page %s: status %d", p, resp.StatusCode)
		}
		pages["page "+p] = b
	}
	for _, p := range []string{"/api/v1/fleet", "/api/v1/terminals", "/api/v1/terminals/acme/T-0001", "/api/v1/terminals/acme/T-0002",
		"/api/v1/worklist", "/api/v1/worklist?format=csv", "/api/v1/incidents", "/api/v1/policy", "/api/v1/policy/history", "/api/v1/me", "/metrics", "/healthz"} {
		_, b := apiCall(t, srv, admin, "GET", p, "")
		pages["API "+p] = b
	}
	if !bytes.Contains(pages["page /security"], []byte("unknown_channel")) && !bytes.Contains(pages["page /security"], []byte("acl_publish_denied")) {
		t.Log("the security page shows neither rejection nor denial; it is searched all the same")
	}
	for i, b := range answers {
		pages[fmt.Sprintf("answer %d to a refused request", i)] = b
	}

	// InfluxDB: every point of every measurement, tags and fields.
	rows := flux(t, influx, fmt.Sprintf(`from(bucket:%q) |> range(start: 1970-01-01T00:00:00Z)`, influxtest.Bucket))
	if len(rows) == 0 {
		t.Fatal("nothing in InfluxDB")
	}
	var stored bytes.Buffer
	for _, r := range rows {
		for k, v := range r {
			fmt.Fprintf(&stored, "%s=%s\n", k, v)
		}
	}

	// The data directory, after the server has closed and flushed it.
	c.Disconnect(100)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read %s: %v", path, err)
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		files["file "+rel] = b
		return nil
	})
	if len(files) == 0 {
		t.Fatal("no files in the data directory")
	}

	places := map[string][]byte{"InfluxDB": stored.Bytes(), "server log": logs.Bytes()}
	for k, v := range pages {
		places[k] = v
	}
	for k, v := range files {
		places[k] = v
	}
	for place, b := range places {
		runs := digitRunsOf(b)
		lower := strings.ToLower(string(b))
		for pname, pan := range pans {
			for _, r := range runs {
				if i := strings.Index(r.digits, pan); i >= 0 {
					t.Errorf("the digits of the %s card found in %s, in the digits from byte %d on: %q", pname, place, r.start, around(b, r.start))
				}
			}
			if strings.Contains(lower, hex.EncodeToString([]byte(pan))) {
				t.Errorf("the %s card, hex-encoded, found in %s", pname, place)
			}
		}
	}
	t.Logf("searched %d places (%d pages and answers, %d files, %d InfluxDB rows, %d bytes of log)", len(places), len(pages), len(files), len(rows), len(logs.Bytes()))
}
