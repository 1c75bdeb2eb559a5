package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet"
)

// The chat robots, each in its service's documented format:
//
//   - DingTalk custom robot (钉钉自定义机器人): markdown message; with a
//     secret ("加签"), timestamp (ms) and sign = base64(HMAC-SHA256(key =
//     secret, timestamp + "\n" + secret)) in the query.
//   - WeCom group robot (企业微信群机器人): markdown message, content at most
//     4096 bytes.
//   - Feishu/Lark custom bot (飞书自定义机器人): "post" (rich text) message;
//     with a secret, timestamp (s) and sign = base64(HMAC-SHA256(key =
//     timestamp + "\n" + secret, empty message)) in the body.
//   - Slack incoming webhook: text (the notification's fallback) and Block
//     Kit blocks.
//
// DingTalk, WeCom and Feishu answer HTTP 200 with an error code in the
// body: a non-zero code is an error, permanent for those that say the
// robot or its signature is wrong, retryable otherwise (rate limits, and
// codes not known here: the dispatcher's backoff copes with both).

// chatError is a chat service's non-zero error code.
func chatError(what string, code int, msg string, permanentCodes []int) error {
	err := fmt.Errorf("notify: %s: error %d %s", what, code, quote([]byte(msg)))
	if slices.Contains(permanentCodes, code) {
		return &PermanentError{Err: err}
	}
	return err
}

// mdEscaper escapes what DingTalk's and WeCom's markdown would take for
// markup in a value (a merchant named "*Best*" must show as such, and a
// value must not open a link or a <font> tag). Underscores inside words
// and "#" inside a line are not markup, and IDs are full of the former.
var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "*", `\*`, "`", "\\`", "[", `\[`, "]", `\]`,
	"<", "&lt;", ">", "&gt;",
)

func mdEscape(s string) string { return mdEscaper.Replace(s) }

// markdown is the message for DingTalk's and WeCom's markdown: the
// title, then paragraphs; facts and the first n digest items as list
// lines; the links before the items, so that a digest's long list is what
// a length limit (WeCom) shortens.
func (t text) markdown(title string, n int) string {
	paras := []string{title, t.Lead}
	list := func(lines []string) {
		if len(lines) > 0 {
			paras = append(paras, "- "+strings.Join(lines, "\n- "))
		}
	}
	list(t.Facts)
	for _, l := range t.Links {
		paras = append(paras, fmt.Sprintf("[%s](%s)", l.Label, mdURL(l.URL)))
	}
	list(t.items(n))
	return strings.Join(paras, "\n\n")
}

// mdURL keeps a URL from closing a markdown link early.
func mdURL(u string) string {
	return strings.NewReplacer("(", "%28", ")", "%29", " ", "%20").Replace(u)
}

// codeAnswer is DingTalk's and WeCom's answer.
type codeAnswer struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func checkErrcode(what string, answer []byte, permanentCodes []int) error {
	var a codeAnswer
	if err := json.Unmarshal(answer, &a); err != nil || a.ErrCode == nil {
		return fmt.Errorf("notify: %s: unexpected answer %s", what, quote(answer))
	}
	if *a.ErrCode != 0 {
		return chatError(what, *a.ErrCode, a.ErrMsg, permanentCodes)
	}
	return nil
}

// DingTalk: 310000 is a refused message (keyword, signature or IP
// whitelist), 300001 an invalid token, 300005 a token that does not exist,
// 400101 an invalid message; 130101 ("send too fast") and anything else is
// retried.
var dingTalkPermanent = []int{310000, 300001, 300005, 400101}

type dingTalkBody struct {
	MsgType  string `json:"msgtype"`
	Markdown struct {
		Title string `json:"title"`
		Text  string `json:"text"`
	} `json:"markdown"`
}

// dingTalkSign is DingTalk's sign for timestamp (ms), before URL encoding.
func dingTalkSign(secret string, timestampMS int64) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d\n%s", timestampMS, secret)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Senders) sendDingTalk(ctx context.Context, t Target, m posfleet.NotifyMessage) error {
	r := render(t, m, mdEscape)
	var body dingTalkBody
	body.MsgType = "markdown"
	// The title is what the conversation list and the phone's notification
	// show, as plain text (not escaped); the text carries it again as a
	// heading.
	body.Markdown.Title = render(t, m, nil).Title
	body.Markdown.Text = r.markdown("### "+r.Title, len(r.Items)) + "\n\n###### " + r.Footer
	data, err := json.Marshal(body)
	if err != nil {
		return permanent("notify: dingtalk: encode: %w", err)
	}
	target := t.URL
	if t.Secret != "" {
		ts := s.now().UnixMilli()
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + "timestamp=" + strconv.FormatInt(ts, 10) + "&sign=" + url.QueryEscape(dingTalkSign(t.Secret, ts))
	}
	_, answer, err := s.post(ctx, "dingtalk", target, data, nil)
	if err != nil {
		return err
	}
	return checkErrcode("dingtalk", answer, dingTalkPermanent)
}

// WeCom: 93000 is an invalid webhook URL (key), 40008 an invalid message
// type, 44004 an empty content; 45009 (the rate limit) and anything else
// is retried.
var weComPermanent = []int{93000, 40008, 44004}

// weComMax is WeCom's limit on a markdown content, in bytes of UTF-8.
const weComMax = 4096

type weComBody struct {
	MsgType  string `json:"msgtype"`
	Markdown struct {
		Content string `json:"content"`
	} `json:"markdown"`
}

func (s *Senders) sendWeCom(ctx context.Context, t Target, m posfleet.NotifyMessage) error {
	r := render(t, m, mdEscape)
	title := "**" + r.Title + "**"
	if r.Urgent {
		title = `<font color="warning">**` + r.Title + `**</font>`
	}
	// A digest too long for WeCom lists fewer alarms (the rest are counted,
	// and on the alarm list); a message still too long is cut at a
	// character boundary.
	var content string
	for n := len(r.Items); ; n-- {
		content = r.markdown(title, n) + "\n\n" + `<font color="comment">` + r.Footer + `</font>`
		if len(content) <= weComMax || n == 0 {
			break
		}
	}
	if len(content) > weComMax {
		content = truncateUTF8(content, weComMax-len("…")) + "…"
	}
	var body weComBody
	body.MsgType = "markdown"
	body.Markdown.Content = content
	data, err := json.Marshal(body)
	if err != nil {
		return permanent("notify: wecom: encode: %w", err)
	}
	_, answer, err := s.post(ctx, "wecom", t.URL, data, nil)
	if err != nil {
		return err
	}
	return checkErrcode("wecom", answer, weComPermanent)
}

// Feishu: 19021 is a signature refused (or a timestamp more than an hour
// off), 19022 an IP not allowed, 19024 a keyword missing, 9499 a bad
// request, 19001 an invalid webhook; the rest (the frequency limit,
// 11232) is retried.
var feishuPermanent = []int{19021, 19022, 19024, 9499, 19001}

type feishuBody struct {
	Timestamp string      `json:"timestamp,omitempty"`
	Sign      string      `json:"sign,omitempty"`
	MsgType   string      `json:"msg_type"`
	Content   feishuPosts `json:"content"`
}

type feishuPosts struct {
	// Post maps a locale (zh_cn, en_us) to the message in it.
	Post map[string]feishuPost `json:"post"`
}

type feishuPost struct {
	Title   string            `json:"title"`
	Content [][]feishuElement `json:"content"`
}

type feishuElement struct {
	Tag  string `json:"tag"` // text or a
	Text string `json:"text"`
	Href string `json:"href,omitempty"`
}

// feishuSign is Feishu's sign for timestamp (s): the HMAC's key is the
// string to sign, its message empty (unlike DingTalk's).
func feishuSign(secret string, timestamp int64) string {
	mac := hmac.New(sha256.New, []byte(strconv.FormatInt(timestamp, 10)+"\n"+secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Senders) sendFeishu(ctx context.Context, t Target, m posfleet.NotifyMessage) error {
	r := render(t, m, nil) // post text elements are not markup
	line := func(s string) []feishuElement { return []feishuElement{{Tag: "text", Text: s}} }
	post := feishuPost{Title: r.Title}
	post.Content = append(post.Content, line(r.Lead))
	for _, f := range r.Facts {
		post.Content = append(post.Content, line(f))
	}
	for _, it := range r.items(len(r.Items)) {
		post.Content = append(post.Content, line("• "+it))
	}
	for _, l := range r.Links {
		post.Content = append(post.Content, []feishuElement{{Tag: "a", Text: l.Label, Href: l.URL}})
	}
	post.Content = append(post.Content, line(r.Footer))
	locale := "en_us"
	if r.Lang == "zh-CN" {
		locale = "zh_cn"
	}
	body := feishuBody{MsgType: "post", Content: feishuPosts{Post: map[string]feishuPost{locale: post}}}
	if t.Secret != "" {
		ts := s.now().Unix()
		body.Timestamp = strconv.FormatInt(ts, 10)
		body.Sign = feishuSign(t.Secret, ts)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return permanent("notify: feishu: encode: %w", err)
	}
	_, answer, err := s.post(ctx, "feishu", t.URL, data, nil)
	if err != nil {
		return err
	}
	var a struct {
		Code *int   `json:"code"`
		Msg  string `json:"msg"`
		// Older deployments answer with StatusCode only.
		StatusCode *int `json:"StatusCode"`
	}
	if err := json.Unmarshal(answer, &a); err != nil || (a.Code == nil && a.StatusCode == nil) {
		return fmt.Errorf("notify: feishu: unexpected answer %s", quote(answer))
	}
	code := a.Code
	if code == nil {
		code = a.StatusCode
	}
	if *code != 0 {
		return chatError("feishu", *code, a.Msg, feishuPermanent)
	}
	return nil
}

// slackEscaper escapes the three characters Slack's mrkdwn reserves.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackEscape(s string) string { return slackEscaper.Replace(s) }

// slackTextMax is Slack's limit on a section's text.
const slackTextMax = 3000

type slackText struct {
	Type string `json:"type"` // mrkdwn or plain_text
	Text string `json:"text"`
}

type slackBlock struct {
	Type     string      `json:"type"` // section or context
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackBody struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

func (s *Senders) sendSlack(ctx context.Context, t Target, m posfleet.NotifyMessage) error {
	r := render(t, m, slackEscape)
	section := func(s string) slackBlock {
		return slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: truncateUTF8(s, slackTextMax)}}
	}
	title := "*" + r.Title + "*"
	if r.Urgent {
		title = ":rotating_light: " + title
	}
	head := title + "\n" + r.Lead
	for _, f := range r.Facts {
		head += "\n• " + f
	}
	body := slackBody{Text: r.Title, Blocks: []slackBlock{section(head)}}
	// A digest's items go in as many sections as their length needs.
	var chunk strings.Builder
	for _, it := range r.items(len(r.Items)) {
		line := "• " + it + "\n"
		if chunk.Len()+len(line) > slackTextMax && chunk.Len() > 0 {
			body.Blocks = append(body.Blocks, section(chunk.String()))
			chunk.Reset()
		}
		chunk.WriteString(line)
	}
	if chunk.Len() > 0 {
		body.Blocks = append(body.Blocks, section(chunk.String()))
	}
	if len(r.Links) > 0 {
		var links []string
		for _, l := range r.Links {
			links = append(links, "<"+slackURL(l.URL)+"|"+l.Label+">")
		}
		body.Blocks = append(body.Blocks, section(strings.Join(links, "  ·  ")))
	}
	body.Blocks = append(body.Blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: r.Footer}}})
	data, err := json.Marshal(body)
	if err != nil {
		return permanent("notify: slack: encode: %w", err)
	}
	// Slack answers 200 "ok"; its errors are 4xx with a code in the body
	// (invalid_payload, no_service, channel_is_archived), which post maps.
	// Other 2xx bodies are accepted: Slack-compatible receivers
	// (Mattermost, Rocket.Chat) answer differently.
	_, _, err = s.post(ctx, "slack", t.URL, data, nil)
	return err
}

// slackURL keeps a URL from ending a Slack link early.
func slackURL(u string) string {
	return strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C").Replace(u)
}
