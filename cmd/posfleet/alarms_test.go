package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/emersion/go-smtp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/influxdb/influxtest"
	"github.com/posfleet/posfleet/internal/testport"
)

// The end-to-end tests of alarms and notifications: `posfleet
// serve` runs as a child process (startRole), terminals are real MQTT
// clients or the simulator (posterm), and the receivers are real servers
// in the test on loopback: an HTTP server for webhooks, go-smtp for mail.

// alarmServe is one `posfleet serve` run as a child process on a data
// directory of its own, with an administrator's API token. Restarting it
// keeps the data directory and the MQTT address (terminals reconnect to
// the same place); the HTTP address is new each time (startRole picks it).
type alarmServe struct {
	bin, dir, mqtt, influxURL string
	args                      []string
	token                     string
	proc                      *process
	base                      string
}

// newAlarmServe provisions terminals acme:T-0001..n (and other:T-0001)
// with `posfleet terminals import`, creates an administrator's token with
// `posfleet tokens create --admin` and starts serve with the extra args.
func newAlarmServe(t *testing.T, terminals int, args ...string) *alarmServe {
	t.Helper()
	s := prepareAlarmServe(t, terminals, args...)
	s.start(t)
	return s
}

// prepareAlarmServe is newAlarmServe without the start.
func prepareAlarmServe(t *testing.T, terminals int, args ...string) *alarmServe {
	t.Helper()
	bin := binary(t)
	influx := influxtest.Start(t)
	s := &alarmServe{bin: bin, dir: t.TempDir(), mqtt: testport.Addr(t), influxURL: influx.URL, args: args}
	importFleet(t, bin, s.dir, terminals)
	s.token = strings.TrimSpace(runCmd(t, bin, "--data-dir", s.dir, "tokens", "create", "e2e-admin", "--admin"))
	return s
}

// start starts (or restarts) serve on the data directory.
func (s *alarmServe) start(t *testing.T) {
	t.Helper()
	args := append([]string{"--mqtt-addr", s.mqtt, "--influx-url", s.influxURL,
		"--influx-bucket", influxtest.Bucket, "--batch-wait", "20ms"}, s.args...)
	s.proc, s.base = startRole(t, s.bin, s.dir, nil, args)
}

// api makes one API call with the administrator's token and fails the
// test unless the answer has status want.
func (s *alarmServe) api(t *testing.T, method, path, body string, want int) []byte {
	t.Helper()
	code, b := apiDo(t, method, s.base+path, s.token, body)
	if code != want {
		t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, code, b, want)
	}
	return b
}

// createWebhook creates a webhook channel of tenant acme and returns its ID.
func (s *alarmServe) createWebhook(t *testing.T, name, hookURL, secret string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"tenant": "acme", "name": name, "type": "webhook",
		"url": hookURL, "secret": secret, "language": "en", "enabled": true, "rate_per_hour": 10000})
	return s.createChannel(t, string(body))
}

func (s *alarmServe) createChannel(t *testing.T, body string) string {
	t.Helper()
	b := s.api(t, "POST", "/api/v1/channels", body, http.StatusCreated)
	var r struct {
		Channel posfleet.NotifyChannel `json:"channel"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Channel.ID == "" {
		t.Fatalf("POST /api/v1/channels: %v: %s", err, b)
	}
	// The secret and the URL are write-only.
	if bytes.Contains(b, []byte("s3cret")) {
		t.Errorf("POST /api/v1/channels shows the secret back: %s", b)
	}
	return r.Channel.ID
}

// createRoute creates a route of tenant acme to channel and returns its ID.
func (s *alarmServe) createRoute(t *testing.T, r posfleet.NotifyRoute) string {
	t.Helper()
	r.Tenant, r.Enabled = "acme", true
	body, _ := json.Marshal(r)
	b := s.api(t, "POST", "/api/v1/routes", string(body), http.StatusCreated)
	var got struct {
		Route posfleet.NotifyRoute `json:"route"`
	}
	if err := json.Unmarshal(b, &got); err != nil || got.Route.ID == "" {
		t.Fatalf("POST /api/v1/routes: %v: %s", err, b)
	}
	return got.Route.ID
}

// alarms lists alarms with the query (e.g. "kind=tamper&state=open").
func (s *alarmServe) alarms(t *testing.T, query string) []posfleet.Alarm {
	t.Helper()
	b := s.api(t, "GET", "/api/v1/alarms?"+query, "", http.StatusOK)
	var r struct {
		Alarms []posfleet.Alarm `json:"alarms"`
		Total  int              `json:"total"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("GET /api/v1/alarms?%s: %v: %s", query, err, b)
	}
	return r.Alarms
}

// alarmDetail is GET /api/v1/alarms/{id}.
type alarmDetail struct {
	Alarm   posfleet.Alarm        `json:"alarm"`
	History []posfleet.AlarmEntry `json:"history"`
	Folded  []posfleet.Alarm      `json:"folded"`
}

func (s *alarmServe) alarm(t *testing.T, id string) alarmDetail {
	t.Helper()
	b := s.api(t, "GET", "/api/v1/alarms/"+id, "", http.StatusOK)
	var d alarmDetail
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("GET /api/v1/alarms/%s: %v: %s", id, err, b)
	}
	return d
}

// notifications lists the outbox of tenant acme.
func (s *alarmServe) notifications(t *testing.T) []posfleet.Notification {
	t.Helper()
	b := s.api(t, "GET", "/api/v1/notifications?tenant=acme&limit=500", "", http.StatusOK)
	var r struct {
		Notifications []posfleet.Notification `json:"notifications"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("GET /api/v1/notifications: %v: %s", err, b)
	}
	return r.Notifications
}

// metricSum adds up the samples of a metric whose labels hold every one
// of the given strings, from /metrics read with the administrator's token.
// found is false when no sample matched.
func (s *alarmServe) metricSum(t *testing.T, name string, labels ...string) (sum float64, found bool) {
	t.Helper()
	code, b := apiDo(t, "GET", s.base+"/metrics", s.token, "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics with an administrator's token: %d %s", code, tail(b, 300))
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line[:i], l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

// within polls cond every 100 ms for up to d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// withinSaw is within, and the failure says what the condition saw last.
func withinSaw(t *testing.T, d time.Duration, what string, cond func() bool, saw *string) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", d, what, *saw)
		}
	}
}

// hookMessage is the part of the webhook's documented body the tests
// check: the notification's ID, why it was sent, the alarm, and the page
// to open.
type hookMessage struct {
	ID     string `json:"id"`
	Event  string `json:"event"`
	Tenant string `json:"tenant"`
	Alarm  *struct {
		ID          string `json:"id"`
		Tenant      string `json:"tenant"`
		Terminal    string `json:"terminal"`
		Kind        string `json:"kind"`
		State       string `json:"state"`
		Urgent      bool   `json:"urgent"`
		Parent      string `json:"parent"`
		Occurrences int    `json:"occurrences"`
	} `json:"alarm"`
	URL      string `json:"url"`
	AlarmURL string `json:"alarm_url"`
}

func (m hookMessage) kind() string {
	if m.Alarm == nil {
		return ""
	}
	return m.Alarm.Kind
}

// delivery is one POST the receiver got.
type delivery struct {
	at       time.Time
	status   int // what the receiver answered
	id       string
	sigOK    bool   // the signature verified with the channel's secret
	sigError string // why it did not
	body     []byte
	msg      hookMessage
}

// receiver is a webhook receiver: a real HTTP server on loopback that
// verifies each delivery's signature itself (HMAC-SHA256 over timestamp +
// "." + body with the channel secret; X-Posfleet-Timestamp,
// X-Posfleet-Signature: sha256=<hex>, X-Posfleet-Notification-Id) and
// answers with the status it is set to (200 to accept).
type receiver struct {
	srv    *httptest.Server
	secret string
	status atomic.Int32
	mu     sync.Mutex
	got    []delivery
}

// newReceiver starts a receiver on addr ("" for any loopback port).
func newReceiver(t *testing.T, addr, secret string) *receiver {
	t.Helper()
	r := &receiver{secret: secret}
	r.status.Store(http.StatusOK)
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("receiver on %s: %v", addr, err)
		}
		r.srv.Listener.Close()
		r.srv.Listener = l
	}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/hooks/posfleet" }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivery{at: time.Now(), id: req.Header.Get("X-Posfleet-Notification-Id"), body: body}
	d.sigOK, d.sigError = verifySignature(r.secret, req.Header, body, d.at)
	if err := json.Unmarshal(body, &d.msg); err != nil {
		d.sigOK, d.sigError = false, "body is not JSON: "+err.Error()
	}
	d.status = int(r.status.Load())
	if req.Method != http.MethodPost {
		d.status = http.StatusMethodNotAllowed
	}
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	w.WriteHeader(d.status)
}

// verifySignature checks a webhook's signature and timestamp as a
// receiver following the documentation would, without posfleet's code.
func verifySignature(secret string, h http.Header, body []byte, now time.Time) (bool, string) {
	ts, sig := h.Get("X-Posfleet-Timestamp"), h.Get("X-Posfleet-Signature")
	if ts == "" || sig == "" || h.Get("X-Posfleet-Notification-Id") == "" {
		return false, fmt.Sprintf("missing headers: timestamp %q signature %q id %q", ts, sig, h.Get("X-Posfleet-Notification-Id"))
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return false, fmt.Sprintf("signature %q, HMAC-SHA256(secret, timestamp.body) is %q", sig, want)
	}
	// Replay protection: the signed timestamp is the sending time.
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false, fmt.Sprintf("timestamp %q is not Unix seconds", ts)
	}
	at := time.Unix(n, 0)
	if n > 1e12 { // milliseconds
		at = time.UnixMilli(n)
	}
	if d := now.Sub(at); d > 5*time.Minute || d < -5*time.Minute {
		return false, fmt.Sprintf("timestamp %s is %v from the receiver's clock", ts, d)
	}
	return true, ""
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// accepted returns the deliveries the receiver answered 200, and how many
// times each notification ID was accepted.
func (r *receiver) accepted() ([]delivery, map[string]int) {
	var out []delivery
	ids := map[string]int{}
	for _, d := range r.deliveries() {
		if d.status == http.StatusOK {
			out = append(out, d)
			ids[d.id]++
		}
	}
	return out, ids
}

// checkSigned fails the test for every delivery whose signature or body
// was wrong: the body must match the documented schema
// (notify/testdata/schemas/webhook.json, which the README points to).
func (r *receiver) checkSigned(t *testing.T) {
	t.Helper()
	schema := webhookSchema(t)
	for _, d := range r.deliveries() {
		if !d.sigOK {
			t.Errorf("delivery %s at %s: %s\nbody: %s", d.id, d.at.Format(time.RFC3339Nano), d.sigError, d.body)
			continue
		}
		if d.msg.ID != d.id {
			t.Errorf("delivery: X-Posfleet-Notification-Id %q, body id %q", d.id, d.msg.ID)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(d.body))
		if err == nil {
			err = schema.Validate(doc)
		}
		if err != nil {
			t.Errorf("delivery %s does not match the webhook's schema: %v\n%s", d.id, err, d.body)
		}
	}
}

// webhookSchema compiles the webhook body's documented JSON Schema.
func webhookSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	path := filepath.Join("..", "..", "notify", "testdata", "schemas", "webhook.json")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the webhook's schema: %v", err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(path, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// duplicates returns how many accepted deliveries repeated an ID already
// accepted (at least once allows them; receivers drop them by ID).
func duplicates(ids map[string]int) int {
	n := 0
	for _, c := range ids {
		n += c - 1
	}
	return n
}

// tamper makes terminal i of acme report a tamper, as a terminal's
// secure element does, over its own MQTT connection, and returns when the
// broker acknowledged it (the time the test's bounds count from).
func tamper(t *testing.T, mqttAddr string, i int) time.Time {
	t.Helper()
	c := mustConnect(t, mqttAddr, i)
	topic := fmt.Sprintf("fleet/v1/acme/T-%04d/", i)
	now := time.Now().UTC()
	publish(t, c, topic+"status", 1, true, `{"online":true}`)
	publish(t, c, topic+"fw", 1, true, fmt.Sprintf(`{"seq":1,"ts":%q,"model":"A920","firmware":"2.4.1"}`, now.Format(time.RFC3339)))
	publish(t, c, topic+"hb", 1, false, fmt.Sprintf(`{"seq":2,"ts":%q,"uptime_s":60}`, now.Format(time.RFC3339)))
	publish(t, c, topic+"fault", 1, false, fmt.Sprintf(`{"seq":3,"ts":%q,"component":"secure_element","code":"TAMPER","severity":"critical","state":"raised","detail":"case opened"}`, now.Format(time.RFC3339)))
	return time.Now()
}

// TestTamperWebhookSignedWithin5s: a terminal reports a tamper; a webhook
// channel with a secret and a route for urgent alarms were made through
// the API; the signed webhook reaches a real HTTP receiver within 5 s of
// the tamper message, its signature verifies with the channel's secret,
// and its body names the event, the alarm's kind, the terminal and a link
// to the terminal's page. serve runs with its default notification flags.
func TestTamperWebhookSignedWithin5s(t *testing.T) {
	s := newAlarmServe(t, 2)
	const secret = "whsec-s3cret-for-the-tamper-test"
	recv := newReceiver(t, "", secret)
	ch := s.createWebhook(t, "noc-webhook", recv.url(), secret)
	s.createRoute(t, posfleet.NotifyRoute{Name: "urgent to the NOC", Channel: ch, UrgentOnly: true})

	sent := tamper(t, s.mqtt, 1)
	var got delivery
	within(t, 5*time.Second, "the tamper webhook (5 s after the tamper message)", func() bool {
		for _, d := range recv.deliveries() {
			if d.msg.Event == "raised" && d.msg.kind() == "tamper" {
				got = d
				return true
			}
		}
		return false
	})
	t.Logf("the tamper webhook arrived %v after the tamper message", got.at.Sub(sent).Round(time.Millisecond))
	if !got.sigOK {
		t.Fatalf("the webhook's signature does not verify: %s\nbody: %s", got.sigError, got.body)
	}
	m := got.msg
	if m.ID == "" || m.ID != got.id {
		t.Errorf("notification ID: header %q, body %q", got.id, m.ID)
	}
	if m.Tenant != "acme" || m.Alarm.Terminal != "T-0001" || !m.Alarm.Urgent || m.Alarm.ID == "" {
		t.Errorf("webhook body: tenant %q, alarm %+v; want acme, terminal T-0001, urgent, an ID\n%s", m.Tenant, *m.Alarm, got.body)
	}
	if u, err := url.Parse(m.URL); err != nil || !u.IsAbs() || !strings.HasSuffix(u.Path, "/terminals/acme/T-0001") {
		t.Errorf("webhook url %q: want the terminal's page, /terminals/acme/T-0001", m.URL)
	}
	// The alarm the webhook speaks of is the one the API lists.
	alarms := s.alarms(t, "kind=tamper")
	if len(alarms) != 1 || alarms[0].ID != m.Alarm.ID || alarms[0].State != posfleet.AlarmOpen {
		t.Errorf("GET /api/v1/alarms?kind=tamper: %+v; want the webhook's alarm %s, open", alarms, m.Alarm.ID)
	}
	// One alarm, one notification: nothing else arrives for it.
	time.Sleep(2 * time.Second)
	_, ids := recv.accepted()
	if len(ids) != 1 {
		t.Errorf("%d notifications delivered for one tamper: %v", len(ids), ids)
	}
	recv.checkSigned(t)
	// A signature made with another secret does not verify: the check
	// above is not vacuous.
	if ok, _ := verifySignature("another-secret", http.Header{
		"X-Posfleet-Timestamp":       {strconv.FormatInt(got.at.Unix(), 10)},
		"X-Posfleet-Signature":       {"sha256=00"},
		"X-Posfleet-Notification-Id": {got.id},
	}, got.body, got.at); ok {
		t.Error("verifySignature accepts a wrong signature")
	}
}

// TestNotificationSurvivesSIGKILL: the receiver refuses (503) at first; a
// tamper raises an alarm whose notification waits in the outbox after a
// failed attempt; `posfleet serve` is killed with SIGKILL; the receiver
// now accepts; serve restarts on the same data directory and delivers:
// every notification ID arrives, and the alarm is still there, once.
func TestNotificationSurvivesSIGKILL(t *testing.T) {
	s := newAlarmServe(t, 2, "--notify-retry-max", "2s")
	const secret = "whsec-s3cret-for-the-kill-test"
	recv := newReceiver(t, "", secret)
	recv.status.Store(http.StatusServiceUnavailable)
	ch := s.createWebhook(t, "noc-webhook", recv.url(), secret)
	s.createRoute(t, posfleet.NotifyRoute{Name: "urgent to the NOC", Channel: ch, UrgentOnly: true})

	tamper(t, s.mqtt, 1)
	var alarmID string
	within(t, 15*time.Second, "the tamper alarm in GET /api/v1/alarms", func() bool {
		a := s.alarms(t, "kind=tamper")
		if len(a) == 1 {
			alarmID = a[0].ID
		}
		return len(a) == 1
	})
	var pending []posfleet.Notification
	within(t, 15*time.Second, "the notification pending in the outbox after a refused attempt", func() bool {
		pending = pending[:0]
		for _, n := range s.notifications(t) {
			if n.Channel == ch && n.State == posfleet.NotificationPending && n.Attempts >= 1 {
				pending = append(pending, n)
			}
		}
		return len(pending) > 0 && len(recv.deliveries()) > 0
	})
	if depth, _ := s.metricSum(t, "posfleet_notification_outbox_depth"); depth < 1 {
		t.Errorf("posfleet_notification_outbox_depth %v with %d notifications pending", depth, len(pending))
	}
	refused := len(recv.deliveries())
	t.Logf("%d notifications pending after %d refused attempts; killing serve with SIGKILL", len(pending), refused)
	s.proc.kill()
	recv.status.Store(http.StatusOK)
	start := time.Now()
	s.start(t)

	// Every notification of the outbox is accepted by the receiver. The
	// new process may first wait for the killed one's lease to expire.
	var outbox []posfleet.Notification
	within(t, 45*time.Second, "every notification delivered after the restart", func() bool {
		outbox = outbox[:0]
		for _, n := range s.notifications(t) {
			if n.Channel == ch {
				outbox = append(outbox, n)
			}
		}
		_, ids := recv.accepted()
		for _, n := range outbox {
			if ids[n.ID] == 0 || n.State != posfleet.NotificationSent {
				return false
			}
		}
		return len(outbox) > 0
	})
	acc, ids := recv.accepted()
	t.Logf("delivered %v after the restart: %d notifications, %d accepted deliveries, %d duplicates (allowed: at least once)",
		acc[0].at.Sub(start).Round(time.Millisecond), len(outbox), len(acc), duplicates(ids))
	for _, p := range pending {
		if ids[p.ID] == 0 {
			t.Errorf("notification %s, pending at the kill, never accepted by the receiver", p.ID)
		}
	}
	for id := range ids {
		if !slices.ContainsFunc(outbox, func(n posfleet.Notification) bool { return n.ID == id }) {
			t.Errorf("the receiver accepted notification %s, which the outbox does not list", id)
		}
	}
	if len(acc) > 0 && (acc[0].msg.Event != "raised" || acc[0].msg.kind() != "tamper" || acc[0].msg.Alarm.ID != alarmID) {
		t.Errorf("delivered %s, want the tamper alarm %s raised", acc[0].body, alarmID)
	}
	recv.checkSigned(t)
	// The alarm survived the kill, and was not raised a second time by
	// the restored flag.
	a := s.alarms(t, "kind=tamper&state=open,acknowledged,assigned,resolved")
	if len(a) != 1 || a[0].ID != alarmID || a[0].State == posfleet.AlarmResolved {
		t.Errorf("tamper alarms after the restart: %+v; want %s only, not resolved", a, alarmID)
	}
}

// smtpSink is a real SMTP server (go-smtp) on loopback that keeps every
// mail it is given.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	mail []sunkMail
}

type sunkMail struct {
	from string
	to   []string
	data []byte
}

type smtpSession struct {
	sink *smtpSink
	m    sunkMail
}

func (s *smtpSession) Reset()        { s.m = sunkMail{} }
func (s *smtpSession) Logout() error { return nil }
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.m.from = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.to = append(s.m.to, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.data = b
	s.sink.mu.Lock()
	s.sink.mail = append(s.sink.mail, s.m)
	s.sink.mu.Unlock()
	return nil
}

func startSMTP(t *testing.T) *smtpSink {
	t.Helper()
	sink := &smtpSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{sink: sink}, nil }))
	srv.Domain = "mx.example.test"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sink
}

func (s *smtpSink) mails() []sunkMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mail)
}

// mailText returns a mail's decoded subject and the decoded text of all
// its text parts (plain and HTML), as a mail client shows them.
func mailText(t *testing.T, raw []byte) (subject, text string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("mail: %v\n%s", err, raw)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject %q: %v", m.Header.Get("Subject"), err)
	}
	var b strings.Builder
	var walk func(h textproto, body io.Reader)
	walk = func(h textproto, body io.Reader) {
		ct, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil {
			ct = "text/plain"
		}
		if strings.HasPrefix(ct, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err != nil {
					return
				}
				walk(p.Header, p)
			}
		}
		switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, &stripNewlines{r: body})
		}
		if strings.HasPrefix(ct, "text/") {
			x, _ := io.ReadAll(body)
			b.Write(x)
			b.WriteString("\n")
		}
	}
	walk(m.Header, m.Body)
	return subject, b.String()
}

// textproto is what mail and multipart headers have in common.
type textproto interface{ Get(string) string }

// stripNewlines drops CR and LF, which base64 bodies are wrapped with.
type stripNewlines struct{ r io.Reader }

func (s *stripNewlines) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' {
			p[j] = c
			j++
		}
	}
	return j, err
}

// TestEmailNotification: an e-mail channel and an urgent route; a tamper
// sends one mail through a real SMTP server run by the test, with a
// subject naming the tamper and the terminal, and a link to the terminal's
// page under --public-url.
func TestEmailNotification(t *testing.T) {
	sink := startSMTP(t)
	const public = "https://posfleet.example.test"
	s := newAlarmServe(t, 2, "--smtp-addr", sink.addr, "--smtp-from", "posfleet@example.test",
		"--smtp-tls", "none", "--public-url", public)
	ch := s.createChannel(t, `{"tenant":"acme","name":"noc-mail","type":"email","to":["noc@example.test"],"language":"en","enabled":true,"rate_per_hour":1000}`)
	s.createRoute(t, posfleet.NotifyRoute{Name: "urgent by mail", Channel: ch, UrgentOnly: true})

	sent := tamper(t, s.mqtt, 1)
	within(t, 15*time.Second, "the tamper mail at the SMTP server", func() bool { return len(sink.mails()) > 0 })
	t.Logf("the mail arrived within %v of the tamper message", time.Since(sent).Round(100*time.Millisecond))
	time.Sleep(2 * time.Second) // anything more would arrive now
	mails := sink.mails()
	if len(mails) != 1 {
		t.Errorf("%d mails for one tamper, want 1", len(mails))
	}
	m := mails[0]
	if m.from != "posfleet@example.test" || !slices.Equal(m.to, []string{"noc@example.test"}) {
		t.Errorf("envelope: from %q to %v; want posfleet@example.test to noc@example.test", m.from, m.to)
	}
	subject, text := mailText(t, m.data)
	if !strings.Contains(strings.ToLower(subject), "tamper") || !strings.Contains(subject, "T-0001") {
		t.Errorf("subject %q: want the tamper and the terminal T-0001", subject)
	}
	link := public + "/terminals/acme/T-0001"
	if !strings.Contains(text, link) {
		t.Errorf("the mail's text has no link to %s:\n%s", link, text)
	}
	if ct := string(m.data); !strings.Contains(ct, "text/plain") || !strings.Contains(ct, "text/html") {
		t.Errorf("the mail is not plain text and HTML:\n%s", tail(m.data, 2000))
	}
}

// bankOutageScenarios is a posterm scenario file: the field baseline,
// healthy terminals, and the field's bank host outage (91/96 and
// timeouts) from simulated minute 2 for 10 minutes.
func bankOutageScenarios(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile("../posterm/scenarios/field.json")
	if err != nil {
		t.Fatal(err)
	}
	var field struct {
		Baseline map[string]any `json:"baseline"`
	}
	if err := json.Unmarshal(b, &field); err != nil {
		t.Fatal(err)
	}
	// One acquirer host: its outage is one incident (a fleet on several
	// hosts gets one per host, TestClusterShowsOneFleet).
	field.Baseline["hosts"] = []string{"cup-sh"}
	out, _ := json.MarshalIndent(map[string]any{
		"baseline": field.Baseline,
		"scenarios": []map[string]any{
			{"name": "healthy", "description": "works", "expect": []string{}},
			{"name": "bank_host_outage", "description": "the acquirer's host fails for the whole fleet", "fleet_wide": true,
				"expect":   []string{"incident"},
				"behavior": map[string]any{"window": map[string]any{"start_min": 2, "minutes": 10}, "host_down_rate": 0.7, "host_timeout_share": 0.3}},
		},
	}, "", "  ")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBankOutageOneNotification: 200 simulated terminals (posterm) live
// through a bank host outage; a route sends every kind of alarm to a
// webhook. One incident notification arrives, not 200: no terminal's
// txn_failures or receipt_failures notifies on its own, and such alarms,
// if any, are folded into the incident's alarm.
func TestBankOutageOneNotification(t *testing.T) {
	if testing.Short() {
		t.Skip("a 200-terminal simulation")
	}
	bin, pt := binary(t), postermBinary(t)
	root := t.TempDir()
	scen := filepath.Join(root, "outage.json")
	bankOutageScenarios(t, scen)
	fleet, labels := filepath.Join(root, "fleet.csv"), filepath.Join(root, "fleet.labels.csv")
	runCmd(t, pt, "provision", "-n", "200", "--tenant", "acme", "--seed", "5", "--scenarios", scen, "--out", fleet, "--labels", labels)

	influx := influxtest.Start(t)
	s := &alarmServe{bin: bin, dir: filepath.Join(root, "serve"), mqtt: testport.Addr(t), influxURL: influx.URL}
	os.MkdirAll(s.dir, 0o700)
	runCmd(t, bin, "--data-dir", s.dir, "terminals", "import", fleet, "--secrets-out", filepath.Join(root, "secrets-out.csv"))
	s.token = strings.TrimSpace(runCmd(t, bin, "--data-dir", s.dir, "tokens", "create", "e2e-admin", "--admin"))
	s.start(t)
	const secret = "whsec-s3cret-for-the-outage-test"
	recv := newReceiver(t, "", secret)
	ch := s.createWebhook(t, "noc-webhook", recv.url(), secret)
	s.createRoute(t, posfleet.NotifyRoute{Name: "everything", Channel: ch})

	// 60x: a simulated minute a second, from noon (the busiest hour);
	// the outage runs from 2 s to 12 s into the run.
	logf, err := os.Create(filepath.Join(root, "posterm.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	sim := exec.Command(pt, "simulate", "--fleet", fleet, "--labels", labels, "--scenarios", scen,
		"--broker", "tcp://"+s.mqtt, "--time-scale", "60", "--heartbeat", "1s", "--start-hour", "12",
		"--duration", "60s", "--ramp", "1000", "--reconnect-max", "2s", "--progress", "0",
		"--store-dir", filepath.Join(root, "outbox"))
	sim.Stdout, sim.Stderr = logf, logf
	sim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	simDone := make(chan struct{})
	go func() { sim.Wait(); close(simDone) }()
	// Stopped before the assertions' end: its goodbye takes every
	// terminal offline, which is not what this test is about.
	stopSim := func() {
		syscall.Kill(-sim.Process.Pid, syscall.SIGKILL)
		<-simDone
	}
	defer stopSim()
	start := time.Now()

	within(t, 40*time.Second, "the incident's notification", func() bool {
		select {
		case <-simDone:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("posterm simulate ended early:\n%s", tail(b, 3000))
		default:
		}
		for _, d := range recv.deliveries() {
			if d.msg.kind() == posfleet.AlarmKindIncident {
				return true
			}
		}
		return false
	})
	t.Logf("the incident notification arrived %.1f s into the simulation", time.Since(start).Seconds())
	// The outage goes on until 12 s into the run; per-terminal alarms
	// would be raised meanwhile and their notifications sent 1 to 2 s
	// later. What arrived is counted while the terminals still run: once
	// stopped, each one's last will takes it offline, which is not this
	// test's business.
	time.Sleep(max(0, 18*time.Second-time.Since(start)))
	acc, ids := recv.accepted()
	stopSim()

	byKind := map[string]map[string]bool{}
	for _, d := range acc {
		if byKind[d.msg.kind()] == nil {
			byKind[d.msg.kind()] = map[string]bool{}
		}
		byKind[d.msg.kind()][d.id] = true
	}
	counts := map[string]int{}
	for k, set := range byKind {
		counts[k] = len(set)
	}
	t.Logf("notifications by alarm kind: %v (%d deliveries, %d duplicates)", counts, len(acc), duplicates(ids))
	if counts[posfleet.AlarmKindIncident] != 1 {
		t.Errorf("%d incident notifications for one bank outage, want 1", counts[posfleet.AlarmKindIncident])
	}
	for _, d := range acc {
		if d.msg.kind() == posfleet.AlarmKindIncident && (d.msg.Event != "raised" || !d.msg.Alarm.Urgent || !strings.Contains(d.msg.URL, "/incidents")) {
			t.Errorf("the incident's notification: event %q, urgent %t, url %q; want raised, urgent, the incident's page", d.msg.Event, d.msg.Alarm.Urgent, d.msg.URL)
		}
	}
	for _, k := range []string{"txn_failures", "receipt_failures"} {
		if counts[k] != 0 {
			t.Errorf("%d %s notifications during the bank outage: the incident explains them, want 0", counts[k], k)
		}
	}
	// Not 200: apart from the incident, no more than a handful of terminal
	// notifications (a simulated terminal may have a flag of its own).
	if total := len(ids); total > 5 {
		t.Errorf("%d notifications during a bank outage across 200 terminals: %v", total, counts)
	}
	recv.checkSigned(t)

	incidents := s.alarms(t, "kind=incident&state=open,acknowledged,assigned,resolved")
	if len(incidents) != 1 {
		t.Fatalf("incident alarms: %+v; want one", incidents)
	}
	inc := incidents[0]
	for _, k := range []string{"txn_failures", "receipt_failures"} {
		if top := s.alarms(t, "kind="+k+"&state=open,acknowledged,assigned,resolved"); len(top) != 0 {
			t.Errorf("%d top-level %s alarms during the outage, want them folded into the incident %s: %+v", len(top), k, inc.ID, top)
		}
	}
	d := s.alarm(t, inc.ID)
	for _, f := range d.Folded {
		if f.Parent != inc.ID {
			t.Errorf("folded alarm %s (%s %s) has parent %q, want %s", f.ID, f.Kind, f.Terminal, f.Parent, inc.ID)
		}
	}
	t.Logf("incident alarm %s: %d terminal alarms folded into it", inc.ID, len(d.Folded))
}

// flappingTerminal is acme:T-0001 on a link that keeps dropping: each
// connection carries the firmware's last will ({"online":false} on its
// status topic, retained), and is cut without a DISCONNECT, so the broker
// publishes the will, as when a cellular link dies.
type flappingTerminal struct {
	t    *testing.T
	addr string
	seq  int
	c    mqtt.Client
	conn net.Conn
}

func (f *flappingTerminal) up() {
	f.t.Helper()
	id := "acme:T-0001"
	opts := mqtt.NewClientOptions().
		AddBroker("tcp://"+f.addr).
		SetClientID(id).SetUsername(id).SetPassword(secretOf(1)).
		SetCleanSession(false).SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectTimeout(5*time.Second).SetWriteTimeout(5*time.Second).
		SetBinaryWill("fleet/v1/acme/T-0001/status", []byte(`{"online":false}`), 1, true).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			f.conn = c
			return c, err
		})
	f.c = mqtt.NewClient(opts)
	if tok := f.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		f.t.Fatalf("the flapping terminal cannot connect: %v", tok.Error())
	}
	publish(f.t, f.c, "fleet/v1/acme/T-0001/status", 1, true, `{"online":true}`)
	f.seq++
	publish(f.t, f.c, "fleet/v1/acme/T-0001/hb", 1, false, fmt.Sprintf(`{"seq":%d,"ts":%q,"uptime_s":%d}`, f.seq, time.Now().UTC().Format(time.RFC3339), f.seq))
}

// down cuts the connection under paho: no DISCONNECT, the will goes out.
func (f *flappingTerminal) down() {
	f.conn.Close()
	f.c.Disconnect(0)
}

// TestFlappingLinkOneAlarm: a terminal's link drops and comes back every
// cycle, twenty times, in scaled time: each drop raises offline at once
// (the last will), each return clears it. With --alarm-debounce 5s the
// offline flag coming back within the debounce reopens the same alarm:
// one offline alarm in all, its history holds the reopenings, and it
// notifies at most once per debounce window.
//
// The case is a minute up, a minute down for 20 minutes with the
// default 10-minute debounce; here a cycle is 1.5 s and the debounce
// 5 s: more flaps per debounce window than the case.
func TestFlappingLinkOneAlarm(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s of flapping")
	}
	const debounce = 5 * time.Second
	// An offline alarm's notification waits --alarm-fold-grace (a minute)
	// for a burst to fold it; scaled down with the rest.
	s := newAlarmServe(t, 1, "--alarm-debounce", debounce.String(), "--alarm-fold-grace", "2s")
	const secret = "whsec-s3cret-for-the-flapping-test"
	recv := newReceiver(t, "", secret)
	ch := s.createWebhook(t, "noc-webhook", recv.url(), secret)
	s.createRoute(t, posfleet.NotifyRoute{Name: "offline", Channel: ch, Kinds: []string{"offline"}})

	f := &flappingTerminal{t: t, addr: s.mqtt}
	f.up()
	start := time.Now()
	const cycles = 20
	for range cycles {
		time.Sleep(750 * time.Millisecond)
		f.down()
		time.Sleep(750 * time.Millisecond)
		f.up()
	}
	elapsed := time.Since(start)
	defer f.c.Disconnect(100)
	t.Logf("%d drops in %.1f s", cycles, elapsed.Seconds())

	var all []posfleet.Alarm
	within(t, 10*time.Second, "the offline alarm with its reopenings", func() bool {
		all = s.alarms(t, "terminal=T-0001&kind=offline&state=open,acknowledged,assigned,resolved")
		return len(all) >= 1 && all[0].Occurrences > 1
	})
	if len(all) != 1 {
		t.Fatalf("%d offline alarms for one flapping terminal, want 1: %+v", len(all), all)
	}
	a := all[0]
	d := s.alarm(t, a.ID)
	reopened := 0
	for _, e := range d.History {
		if e.Action == posfleet.AlarmActReopened {
			reopened++
		}
	}
	t.Logf("alarm %s: %d occurrences, %d history entries, %d reopenings", a.ID, a.Occurrences, len(d.History), reopened)
	if a.Occurrences < cycles/2 || reopened < cycles/2 {
		t.Errorf("alarm %s: %d occurrences and %d reopenings in its history after %d drops within the debounce", a.ID, a.Occurrences, reopened, cycles)
	}
	// Up for good now: the alarm resolves after the debounce.
	within(t, debounce+10*time.Second, "the offline alarm resolved once the link stayed up for the debounce", func() bool {
		return s.alarm(t, a.ID).Alarm.State == posfleet.AlarmResolved
	})
	// Notifications for it: at most one per debounce window.
	time.Sleep(2 * time.Second)
	_, ids := recv.accepted()
	mine := map[string]bool{}
	for _, del := range recv.deliveries() {
		if del.msg.Alarm != nil && del.msg.Alarm.ID == a.ID {
			mine[del.id] = true
		}
	}
	limit := int(time.Since(start)/debounce) + 1
	t.Logf("%d notifications for the alarm (limit %d: one per %v window over %.0f s); %d in all", len(mine), limit, debounce, time.Since(start).Seconds(), len(ids))
	if len(mine) == 0 || len(mine) > limit {
		t.Errorf("%d notifications for the flapping terminal's alarm, want 1 to %d", len(mine), limit)
	}
	if len(ids) != len(mine) {
		t.Errorf("%d notifications delivered, %d of them for the offline alarm %s", len(ids), len(mine), a.ID)
	}
	recv.checkSigned(t)
}

// TestReceiverDownNothingLost: the webhook's receiver is down (its port
// refuses connections) while several alarms raise; /metrics shows the
// waiting notifications in the outbox depth; then the receiver comes up
// on that port and every notification arrives. The receiver is
// down for 10 minutes; the test cannot wait that long, so the retry
// backoff is capped at 2 s (--notify-retry-max): what the 10 minutes test
// is that nothing is given up and the backlog goes out when the receiver
// is back, which a shorter outage with many retries shows too.
func TestReceiverDownNothingLost(t *testing.T) {
	s := newAlarmServe(t, 3, "--notify-retry-max", "2s")
	const secret = "whsec-s3cret-for-the-outage-test"
	addr := testport.Addr(t) // closed: connections are refused
	ch := s.createWebhook(t, "noc-webhook", "http://"+addr+"/hooks/posfleet", secret)
	s.createRoute(t, posfleet.NotifyRoute{Name: "urgent to the NOC", Channel: ch, UrgentOnly: true})

	for i := 1; i <= 3; i++ {
		tamper(t, s.mqtt, i)
	}
	within(t, 15*time.Second, "three tamper alarms", func() bool { return len(s.alarms(t, "kind=tamper")) == 3 })
	var depth float64
	var lastSeen string
	withinSaw(t, 15*time.Second, "posfleet_notification_outbox_depth for the channel over 0 after failed attempts", func() bool {
		// The dispatcher tries a down channel's oldest notification and
		// leaves the others waiting behind it: one failed attempt, three
		// pending.
		var pending, failed int
		for _, n := range s.notifications(t) {
			if n.Channel == ch && n.State == posfleet.NotificationPending {
				pending++
				if n.Attempts >= 1 {
					failed++
				}
			}
		}
		d, ok := s.metricSum(t, "posfleet_notification_outbox_depth", ch)
		if !ok { // the channel labelled by name rather than ID
			d, _ = s.metricSum(t, "posfleet_notification_outbox_depth", "noc-webhook")
		}
		depth = d
		if pending != 3 || failed < 1 || depth < 3 {
			lastSeen = fmt.Sprintf("%d notifications pending, %d after failed attempts, outbox depth %v", pending, failed, depth)
			return false
		}
		return true
	}, &lastSeen)
	t.Logf("outbox depth %v while the receiver is down", depth)
	// A few more refused attempts, then the receiver comes back.
	time.Sleep(4 * time.Second)
	var waiting []posfleet.Notification
	for _, n := range s.notifications(t) {
		if n.Channel == ch {
			if n.State != posfleet.NotificationPending {
				t.Errorf("notification %s is %s while the receiver is down, want pending", n.ID, n.State)
			}
			waiting = append(waiting, n)
		}
	}
	recv := newReceiver(t, addr, secret)
	back := time.Now()
	within(t, 20*time.Second, "every waiting notification at the receiver", func() bool {
		_, ids := recv.accepted()
		for _, n := range waiting {
			if ids[n.ID] == 0 {
				return false
			}
		}
		return true
	})
	acc, ids := recv.accepted()
	t.Logf("%d notifications delivered within %v of the receiver's return (%d deliveries, %d duplicates)",
		len(waiting), time.Since(back).Round(100*time.Millisecond), len(acc), duplicates(ids))
	kinds := map[string]bool{}
	for _, d := range acc {
		if d.msg.Alarm != nil {
			kinds[d.msg.Alarm.Terminal] = d.msg.kind() == "tamper"
		}
	}
	if len(kinds) != 3 || !kinds["T-0001"] || !kinds["T-0002"] || !kinds["T-0003"] {
		t.Errorf("delivered the tamper of %v, want T-0001, T-0002 and T-0003", kinds)
	}
	recv.checkSigned(t)
	within(t, 10*time.Second, "the outbox depth back to 0", func() bool {
		d, _ := s.metricSum(t, "posfleet_notification_outbox_depth")
		return d == 0
	})
}
