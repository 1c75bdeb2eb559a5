package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/posfleet/posfleet"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The fixtures of the channel tests. Names start with "ch" so that they
// cannot collide with the dispatcher's tests in the same package.

var chNow = time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)

const (
	chBase      = "https://posfleet.example"
	chEvidence  = "case-opened-evidence-marker"
	chSecret    = "SEC-test-secret-0123456789abcdef"
	chDingToken = "dingtoken-abc"
)

func chAlarm(i int) posfleet.Alarm {
	return posfleet.Alarm{
		ID:          fmt.Sprintf("al-%04d", i),
		Tenant:      "acme",
		Terminal:    fmt.Sprintf("T-%04d", i),
		Kind:        string(posfleet.FlagTamper),
		Urgent:      true,
		Merchant:    "Noodle Bar *Chengdu*",
		Region:      "chengdu",
		State:       posfleet.AlarmOpen,
		Active:      true,
		Opened:      chNow.Add(-3 * time.Minute),
		Occurrences: 2,
		Evidence:    json.RawMessage(`{"events":[{"kind":"` + chEvidence + `"}]}`),
		Updated:     chNow,
	}
}

// chMessages are one message per event: a raised urgent tamper, its
// resolution, a digest of 60 outdated firmwares (over the cap of 50), a
// summary and a test.
func chMessages() map[posfleet.NotificationEvent]posfleet.NotifyMessage {
	a := chAlarm(1)
	r := a
	r.State, r.Active, r.Resolved, r.ResolvedBy = posfleet.AlarmResolved, false, chNow, "crew-chengdu"
	var digest []posfleet.Alarm
	for i := range 60 {
		d := chAlarm(100 + i)
		d.Kind, d.Urgent, d.Occurrences = string(posfleet.FlagFirmwareOutdated), false, 1
		digest = append(digest, d)
	}
	return map[posfleet.NotificationEvent]posfleet.NotifyMessage{
		posfleet.NotifyRaised: {ID: "n-raised", Event: posfleet.NotifyRaised, Tenant: "acme", Alarm: &a,
			URL: chBase + "/terminals/acme/T-0001", AlarmURL: chBase + "/alarms/al-0001", Time: chNow},
		posfleet.NotifyResolved: {ID: "n-resolved", Event: posfleet.NotifyResolved, Tenant: "acme", Alarm: &r,
			URL: chBase + "/terminals/acme/T-0001", AlarmURL: chBase + "/alarms/al-0001", Time: chNow},
		posfleet.NotifyDigest: {ID: "n-digest", Event: posfleet.NotifyDigest, Tenant: "acme", Alarms: digest,
			URL: chBase + "/alarms", Time: chNow},
		posfleet.NotifySummary: {ID: "n-summary", Event: posfleet.NotifySummary, Tenant: "acme", Held: 17,
			URL: chBase + "/alarms", Time: chNow},
		posfleet.NotifyTest: {ID: "n-test", Event: posfleet.NotifyTest, Tenant: "acme",
			URL: chBase + "/alarms", Time: chNow},
	}
}

var chEvents = []posfleet.NotificationEvent{posfleet.NotifyRaised, posfleet.NotifyResolved,
	posfleet.NotifyDigest, posfleet.NotifySummary, posfleet.NotifyTest}

// chSchemas compiles testdata/schemas/<name>.json once per name.
var chSchemas = struct {
	sync.Mutex
	m map[string]*jsonschema.Schema
}{m: map[string]*jsonschema.Schema{}}

func chSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	chSchemas.Lock()
	defer chSchemas.Unlock()
	if s, ok := chSchemas.m[name]; ok {
		return s
	}
	path := filepath.Join("testdata", "schemas", name+".json")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
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
	chSchemas.m[name] = s
	return s
}

func chValidate(t *testing.T, schema string, body []byte) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	if err := chSchema(t, schema).Validate(doc); err != nil {
		t.Errorf("body does not match %s.json: %v\n%s", schema, err, body)
	}
}

// chRequest is what a receiver got.
type chRequest struct {
	Method string
	URL    *url.URL
	Header http.Header
	Body   []byte
}

// chReceiver is an httptest server that records requests and answers
// status and body.
type chReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []chRequest
	status int
	answer string
}

func newChReceiver(t *testing.T, status int, answer string) *chReceiver {
	rc := &chReceiver{status: status, answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, chRequest{Method: r.Method, URL: r.URL, Header: r.Header.Clone(), Body: body})
		status, answer := rc.status, rc.answer
		rc.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *chReceiver) last(t *testing.T) chRequest {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.got) == 0 {
		t.Fatal("the receiver got nothing")
	}
	return rc.got[len(rc.got)-1]
}

// chOK is each service's answer to an accepted message.
var chOK = map[posfleet.NotifyChannelType]string{
	posfleet.NotifyWebhook:  "",
	posfleet.NotifyDingTalk: `{"errcode":0,"errmsg":"ok"}`,
	posfleet.NotifyWeCom:    `{"errcode":0,"errmsg":"ok"}`,
	posfleet.NotifyFeishu:   `{"code":0,"msg":"success","data":{}}`,
	posfleet.NotifySlack:    "ok",
}

// chPath is where each service's robot lives (the test receiver ignores it,
// but it shows the token travelling in the URL).
var chPath = map[posfleet.NotifyChannelType]string{
	posfleet.NotifyWebhook:  "/hooks/posfleet",
	posfleet.NotifyDingTalk: "/robot/send?access_token=" + chDingToken,
	posfleet.NotifyWeCom:    "/cgi-bin/webhook/send?key=wecomkey",
	posfleet.NotifyFeishu:   "/open-apis/bot/v2/hook/feishuhook",
	posfleet.NotifySlack:    "/services/T000/B000/XXXX",
}

func chTarget(typ posfleet.NotifyChannelType, rawURL, lang, secret string) Target {
	return Target{
		NotifyChannel: posfleet.NotifyChannel{ID: "ch-1", Tenant: "acme", Name: "Ops " + string(typ), Type: typ,
			Language: lang, Enabled: true, HasSecret: secret != ""},
		URL: rawURL, Secret: secret,
	}
}

func chSenders(rc *chReceiver) *Senders {
	return &Senders{HTTP: rc.Client(), Now: func() time.Time { return chNow }}
}

// TestChannelFormats renders every event in both languages for every HTTP
// channel type, sends it to a receiver that checks the body against the
// service's documented schema, and verifies the signatures.
func TestChannelFormats(t *testing.T) {
	msgs := chMessages()
	types := []posfleet.NotifyChannelType{posfleet.NotifyWebhook, posfleet.NotifyDingTalk,
		posfleet.NotifyWeCom, posfleet.NotifyFeishu, posfleet.NotifySlack}
	for _, typ := range types {
		for _, lang := range []string{"", "zh-CN"} {
			for _, ev := range chEvents {
				name := fmt.Sprintf("%s/%s/%s", typ, lang, ev)
				if lang == "" {
					name = fmt.Sprintf("%s/en/%s", typ, ev)
				}
				t.Run(name, func(t *testing.T) {
					rc := newChReceiver(t, http.StatusOK, chOK[typ])
					m := msgs[ev]
					secret := chSecret
					if typ == posfleet.NotifyWeCom || typ == posfleet.NotifySlack {
						secret = "" // they have no signing
					}
					tg := chTarget(typ, rc.URL+chPath[typ], lang, secret)
					if err := chSenders(rc).Send(context.Background(), tg, m); err != nil {
						t.Fatalf("Send: %v", err)
					}
					req := rc.last(t)
					if req.Method != http.MethodPost || !strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
						t.Errorf("got %s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
					}
					chValidate(t, string(typ), req.Body)
					chCheckSignature(t, typ, req)
					chCheckContent(t, typ, lang, m, req.Body)
				})
			}
		}
	}
}

func chCheckSignature(t *testing.T, typ posfleet.NotifyChannelType, req chRequest) {
	t.Helper()
	switch typ {
	case posfleet.NotifyWebhook:
		if err := VerifyWebhook(chSecret, req.Header, req.Body, chNow.Add(30*time.Second), time.Minute); err != nil {
			t.Errorf("VerifyWebhook: %v", err)
		}
		if got := req.Header.Get(HeaderNotificationID); got == "" || !bytes.Contains(req.Body, []byte(`"id":"`+got+`"`)) {
			t.Errorf("%s = %q, not the body's id", HeaderNotificationID, got)
		}
	case posfleet.NotifyDingTalk:
		q := req.URL.Query()
		if q.Get("access_token") != chDingToken {
			t.Errorf("access_token lost: %s", req.URL)
		}
		ts, err := strconv.ParseInt(q.Get("timestamp"), 10, 64)
		if err != nil || ts != chNow.UnixMilli() {
			t.Fatalf("timestamp %q, want %d (ms)", q.Get("timestamp"), chNow.UnixMilli())
		}
		// DingTalk's recipe: base64(HmacSHA256(key = secret, timestamp+"\n"+secret)).
		mac := hmac.New(sha256.New, []byte(chSecret))
		mac.Write([]byte(q.Get("timestamp") + "\n" + chSecret))
		if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); q.Get("sign") != want {
			t.Errorf("sign = %q, want %q", q.Get("sign"), want)
		}
	case posfleet.NotifyFeishu:
		var b struct{ Timestamp, Sign string }
		if err := json.Unmarshal(req.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Timestamp != strconv.FormatInt(chNow.Unix(), 10) {
			t.Errorf("timestamp = %q, want %d (s)", b.Timestamp, chNow.Unix())
		}
		// Feishu's recipe: base64(HmacSHA256(key = timestamp+"\n"+secret, empty)).
		mac := hmac.New(sha256.New, []byte(b.Timestamp+"\n"+chSecret))
		if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); b.Sign != want {
			t.Errorf("sign = %q, want %q", b.Sign, want)
		}
	}
}

// chCheckContent checks what a reader sees: the links, the language, the
// digest's cap, and no evidence.
func chCheckContent(t *testing.T, typ posfleet.NotifyChannelType, lang string, m posfleet.NotifyMessage, body []byte) {
	t.Helper()
	s := string(body)
	if strings.Contains(s, chEvidence) {
		t.Errorf("the evidence is in the message:\n%s", s)
	}
	if !strings.Contains(s, m.URL) {
		t.Errorf("the link %s is missing:\n%s", m.URL, s)
	}
	if m.AlarmURL != "" && !strings.Contains(s, m.AlarmURL) {
		t.Errorf("the alarm link %s is missing:\n%s", m.AlarmURL, s)
	}
	if typ == posfleet.NotifyWebhook {
		var p WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		if p.ID != m.ID || p.Event != m.Event || len(p.Alarms) != len(m.Alarms) || p.Held != m.Held {
			t.Errorf("payload %+v does not match the message", p)
		}
		return
	}
	var want []string
	switch {
	case lang == "zh-CN" && m.Event == posfleet.NotifyRaised:
		want = []string{"紧急告警 tamper", "防拆触发", "2026-12-03 09:57:00 UTC+8"} // 01:57 UTC in Shanghai, the zone named
	case lang == "zh-CN" && m.Event == posfleet.NotifyResolved:
		want = []string{"告警已恢复", "crew-chengdu"}
	case lang == "zh-CN" && m.Event == posfleet.NotifyDigest:
		want = []string{"每日告警汇总", "固件版本过旧", "还有 10 条"}
	case lang == "zh-CN" && m.Event == posfleet.NotifySummary:
		want = []string{"因限流共有 17 条通知未发送，请查看 " + m.URL}
	case lang == "zh-CN":
		want = []string{"测试"}
	case m.Event == posfleet.NotifyRaised:
		want = []string{"URGENT tamper on acme/T-0001", "Tamper", "2026-12-03 01:57:00 UTC", "Occurrences: 2", "chengdu"}
	case m.Event == posfleet.NotifyResolved:
		want = []string{"Resolved: tamper on acme/T-0001", "crew-chengdu"}
	case m.Event == posfleet.NotifyDigest:
		want = []string{"Daily digest for acme: 60 open alarms", "Firmware outdated", "and 10 more"}
	case m.Event == posfleet.NotifySummary:
		want = []string{"17 notifications were held back by the rate limit; see " + m.URL}
	default:
		want = []string{"Test notification", "Ops " + string(typ)}
	}
	if typ == posfleet.NotifyWeCom && m.Event == posfleet.NotifyDigest {
		// WeCom's 4096 bytes hold fewer than 50 of these lines: the rest
		// are counted.
		for i, w := range want {
			want[i] = strings.NewReplacer("and 10 more", "more", "还有 10 条", "还有").Replace(w)
		}
	}
	text := chVisibleText(t, typ, body)
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%q is missing from:\n%s", w, text)
		}
	}
	if m.Event == posfleet.NotifyDigest && typ != posfleet.NotifyWeCom {
		// 50 alarms, then "and 10 more": the 51st terminal is not listed.
		if !strings.Contains(text, "T-0149") || strings.Contains(text, "T-0150") {
			t.Errorf("the digest does not stop at 50 alarms:\n%s", text)
		}
	}
}

// chVisibleText is the text of a chat message as its service shows it,
// roughly: the strings of the JSON, concatenated.
func chVisibleText(t *testing.T, typ posfleet.NotifyChannelType, body []byte) string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
			b.WriteByte('\n')
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	s := b.String()
	if typ == posfleet.NotifySlack {
		s = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(s)
	}
	return s
}

// TestWebhookReplay: a captured request replayed later is refused, and so
// is one whose body or signature was changed, or that has none.
func TestWebhookReplay(t *testing.T) {
	rc := newChReceiver(t, http.StatusNoContent, "")
	m := chMessages()[posfleet.NotifyRaised]
	if err := chSenders(rc).Send(context.Background(), chTarget(posfleet.NotifyWebhook, rc.URL, "", chSecret), m); err != nil {
		t.Fatal(err)
	}
	req := rc.last(t)
	if err := VerifyWebhook(chSecret, req.Header, req.Body, chNow, 0); err != nil {
		t.Fatalf("fresh request refused: %v", err)
	}
	if err := VerifyWebhook(chSecret, req.Header, req.Body, chNow.Add(10*time.Minute), 5*time.Minute); !errors.Is(err, ErrWebhookTimestamp) {
		t.Errorf("replayed 10 minutes later: %v, want ErrWebhookTimestamp", err)
	}
	if err := VerifyWebhook(chSecret, req.Header, req.Body, chNow.Add(-10*time.Minute), 5*time.Minute); !errors.Is(err, ErrWebhookTimestamp) {
		t.Errorf("from the future: %v, want ErrWebhookTimestamp", err)
	}
	// Replaying the body with a fresh timestamp but the old signature fails.
	h := req.Header.Clone()
	h.Set(HeaderTimestamp, strconv.FormatInt(chNow.Add(10*time.Minute).Unix(), 10))
	if err := VerifyWebhook(chSecret, h, req.Body, chNow.Add(10*time.Minute), 0); !errors.Is(err, ErrWebhookSignature) {
		t.Errorf("new timestamp, old signature: %v, want ErrWebhookSignature", err)
	}
	tampered := bytes.Replace(req.Body, []byte(`"acme"`), []byte(`"evil"`), 1)
	if err := VerifyWebhook(chSecret, req.Header, tampered, chNow, 0); !errors.Is(err, ErrWebhookSignature) {
		t.Errorf("tampered body: %v, want ErrWebhookSignature", err)
	}
	if err := VerifyWebhook("other secret", req.Header, req.Body, chNow, 0); !errors.Is(err, ErrWebhookSignature) {
		t.Errorf("wrong secret: %v, want ErrWebhookSignature", err)
	}
	h = req.Header.Clone()
	h.Del(HeaderTimestamp)
	if err := VerifyWebhook(chSecret, h, req.Body, chNow, 0); !errors.Is(err, ErrWebhookTimestamp) {
		t.Errorf("no timestamp: %v, want ErrWebhookTimestamp", err)
	}

	// Without a secret: no signature header, and verifying refuses.
	if err := chSenders(rc).Send(context.Background(), chTarget(posfleet.NotifyWebhook, rc.URL, "", ""), m); err != nil {
		t.Fatal(err)
	}
	req = rc.last(t)
	if got := req.Header.Get(HeaderSignature); got != "" {
		t.Errorf("unsigned channel sent %s: %q", HeaderSignature, got)
	}
	if req.Header.Get(HeaderTimestamp) == "" || req.Header.Get(HeaderNotificationID) != m.ID {
		t.Errorf("headers %v", req.Header)
	}
	if err := VerifyWebhook(chSecret, req.Header, req.Body, chNow, 0); !errors.Is(err, ErrWebhookSignature) {
		t.Errorf("unsigned request verified: %v", err)
	}
}

// TestWeComLimit: a digest too long for WeCom's 4096 bytes is cut on a
// character boundary, keeping its links.
func TestWeComLimit(t *testing.T) {
	rc := newChReceiver(t, http.StatusOK, chOK[posfleet.NotifyWeCom])
	m := chMessages()[posfleet.NotifyDigest]
	for i := range m.Alarms {
		m.Alarms[i].Merchant = strings.Repeat("成都市高新区天府大道面馆", 3)
	}
	if err := chSenders(rc).Send(context.Background(), chTarget(posfleet.NotifyWeCom, rc.URL, "zh-CN", ""), m); err != nil {
		t.Fatal(err)
	}
	req := rc.last(t)
	chValidate(t, "wecom", req.Body)
	var b weComBody
	if err := json.Unmarshal(req.Body, &b); err != nil {
		t.Fatal(err)
	}
	c := b.Markdown.Content
	if len(c) > weComMax || !utf8.ValidString(c) {
		t.Errorf("content is %d bytes (valid UTF-8: %v), want at most %d", len(c), utf8.ValidString(c), weComMax)
	}
	if !strings.Contains(c, m.URL) || !strings.Contains(c, "还有") || !strings.Contains(c, "n-digest") {
		t.Errorf("shortened content lost its link, its count of the rest or its footer:\n%s", c)
	}
}

// TestMarkdownEscape: a value cannot inject markup into a chat message.
func TestMarkdownEscape(t *testing.T) {
	m := chMessages()[posfleet.NotifyRaised]
	a := *m.Alarm
	a.Merchant = "[click](https://evil.example) <font>*x*</font>"
	m.Alarm = &a
	for _, typ := range []posfleet.NotifyChannelType{posfleet.NotifyDingTalk, posfleet.NotifyWeCom, posfleet.NotifySlack} {
		rc := newChReceiver(t, http.StatusOK, chOK[typ])
		if err := chSenders(rc).Send(context.Background(), chTarget(typ, rc.URL, "", ""), m); err != nil {
			t.Fatal(err)
		}
		// Slack's mrkdwn has no [text](url) links: only <url|text> matters.
		bads := []string{"[click](https://evil", "<font>"}
		if typ == posfleet.NotifySlack {
			bads = []string{"<https://evil", "<font>"}
		}
		var doc map[string]any
		json.Unmarshal(rc.last(t).Body, &doc)
		if md, ok := doc["markdown"].(map[string]any); ok {
			delete(md, "title") // DingTalk's title is plain text, not markdown
		}
		s := fmt.Sprint(doc)
		for _, bad := range bads {
			if strings.Contains(s, bad) {
				t.Errorf("%s: %q reached the message unescaped:\n%s", typ, bad, s)
			}
		}
	}
}
