package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
)

// TestSendErrors: how each receiver's refusal maps to a retryable or a
// permanent error.
func TestSendErrors(t *testing.T) {
	const (
		ok   = "ok"
		retr = "retry"
		perm = "permanent"
	)
	for _, c := range []struct {
		typ    posfleet.NotifyChannelType
		status int
		answer string
		want   string
	}{
		{posfleet.NotifyWebhook, 200, "", ok},
		{posfleet.NotifyWebhook, 204, "", ok},
		{posfleet.NotifyWebhook, 500, "boom", retr},
		{posfleet.NotifyWebhook, 502, "", retr},
		{posfleet.NotifyWebhook, 503, "", retr},
		{posfleet.NotifyWebhook, 408, "", retr},
		{posfleet.NotifyWebhook, 429, "slow down", retr},
		{posfleet.NotifyWebhook, 400, "bad", perm},
		{posfleet.NotifyWebhook, 401, "", perm},
		{posfleet.NotifyWebhook, 404, "", perm},
		{posfleet.NotifyWebhook, 410, "", perm},
		{posfleet.NotifyDingTalk, 200, `{"errcode":0,"errmsg":"ok"}`, ok},
		{posfleet.NotifyDingTalk, 200, `{"errcode":310000,"errmsg":"sign not match"}`, perm},
		{posfleet.NotifyDingTalk, 200, `{"errcode":300001,"errmsg":"token is not exist"}`, perm},
		{posfleet.NotifyDingTalk, 200, `{"errcode":130101,"errmsg":"send too fast"}`, retr},
		{posfleet.NotifyDingTalk, 200, `<html>maintenance</html>`, retr},
		{posfleet.NotifyDingTalk, 500, ``, retr},
		{posfleet.NotifyWeCom, 200, `{"errcode":0,"errmsg":"ok"}`, ok},
		{posfleet.NotifyWeCom, 200, `{"errcode":93000,"errmsg":"invalid webhook url"}`, perm},
		{posfleet.NotifyWeCom, 200, `{"errcode":45009,"errmsg":"api freq out of limit"}`, retr},
		{posfleet.NotifyFeishu, 200, `{"code":0,"msg":"success","data":{}}`, ok},
		{posfleet.NotifyFeishu, 200, `{"StatusCode":0,"StatusMessage":"success"}`, ok},
		{posfleet.NotifyFeishu, 200, `{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`, perm},
		{posfleet.NotifyFeishu, 200, `{"code":19024,"msg":"Key Words Not Found"}`, perm},
		{posfleet.NotifyFeishu, 400, `{"code":9499,"msg":"Bad Request"}`, perm},
		{posfleet.NotifyFeishu, 200, `{"code":11232,"msg":"frequency limited"}`, retr},
		{posfleet.NotifySlack, 200, "ok", ok},
		{posfleet.NotifySlack, 400, "invalid_payload", perm},
		{posfleet.NotifySlack, 403, "action_prohibited", perm},
		{posfleet.NotifySlack, 404, "no_service", perm},
		{posfleet.NotifySlack, 410, "channel_is_archived", perm},
		{posfleet.NotifySlack, 429, "rate_limited", retr},
		{posfleet.NotifySlack, 500, "rollup_error", retr},
	} {
		t.Run(string(c.typ)+"/"+http.StatusText(c.status)+"/"+c.answer, func(t *testing.T) {
			rc := newChReceiver(t, c.status, c.answer)
			err := chSenders(rc).Send(context.Background(),
				chTarget(c.typ, rc.URL+chPath[c.typ], "", chSecret), chMessages()[posfleet.NotifyRaised])
			got := ok
			if err != nil {
				got = retr
				if IsPermanent(err) {
					got = perm
				}
			}
			if got != c.want {
				t.Errorf("got %s (%v), want %s", got, err, c.want)
			}
			if err != nil && (strings.Contains(err.Error(), chDingToken) || strings.Contains(err.Error(), chPath[c.typ])) {
				t.Errorf("the error shows the channel's URL: %v", err)
			}
		})
	}
}

func TestSendRefusals(t *testing.T) {
	m := chMessages()[posfleet.NotifyTest]
	s := &Senders{Now: func() time.Time { return chNow }}
	ctx := context.Background()

	err := s.Send(ctx, Target{NotifyChannel: posfleet.NotifyChannel{Type: "pager"}}, m)
	if !IsPermanent(err) {
		t.Errorf("unknown type: %v, want a permanent error", err)
	}
	for _, u := range []string{"", "ftp://example.com/x", "not a url", "http://"} {
		if err := s.Send(ctx, chTarget(posfleet.NotifyWebhook, u, "", ""), m); !IsPermanent(err) {
			t.Errorf("URL %q: %v, want a permanent error", u, err)
		}
	}

	// Nobody listening: retryable, and the error names the host only.
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	err = s.Send(ctx, chTarget(posfleet.NotifyDingTalk, addr+"/robot/send?access_token="+chDingToken, "", chSecret), m)
	if err == nil || IsPermanent(err) {
		t.Errorf("connection refused: %v, want a retryable error", err)
	}
	if err != nil && strings.Contains(err.Error(), chDingToken) {
		t.Errorf("the error shows the token: %v", err)
	}

	// A receiver that hangs: the context's deadline ends the attempt.
	block := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer hang.Close()
	defer close(block)
	ctx2, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Send(ctx2, chTarget(posfleet.NotifySlack, hang.URL, "", ""), m)
	if err == nil || IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung receiver: %v, want a retryable deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hung receiver held Send for %s", d)
	}
}

// TestNoRedirect: a receiver that redirects has not received the POST; the
// default client must not follow it as a GET and call that delivered.
func TestNoRedirect(t *testing.T) {
	var gets int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets++
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	s := &Senders{Now: func() time.Time { return chNow }}
	err := s.Send(context.Background(), chTarget(posfleet.NotifyWebhook, srv.URL, "", ""), chMessages()[posfleet.NotifyTest])
	if !IsPermanent(err) || gets != 0 {
		t.Errorf("redirect: %v after %d GETs, want a permanent error and none", err, gets)
	}
}

// TestResponseCapped: a receiver's huge answer is read no further than
// maxResponse and quoted briefly.
func TestResponseCapped(t *testing.T) {
	rc := newChReceiver(t, http.StatusBadRequest, strings.Repeat("x", 1<<20))
	err := chSenders(rc).Send(context.Background(), chTarget(posfleet.NotifyWebhook, rc.URL, "", ""), chMessages()[posfleet.NotifyTest])
	if !IsPermanent(err) || len(err.Error()) > 400 {
		t.Errorf("got %d bytes of error: %.100v", len(err.Error()), err)
	}
}
