package security_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/security"
)

// TestPageShowsAggregatedCounts: a row standing for a window of events
// shows how many, a single event shows no count.
func TestPageShowsAggregatedCounts(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	v := security.View{
		Events: []security.Event{
			{Time: at, Kind: "auth_failed", Username: "acme:T-1", Remote: "192.0.2.7:4000", Count: 1999},
			{Time: at, Kind: "auth_failed", Username: "acme:T-1", Remote: "192.0.2.7:4001", Count: 1},
		},
		Rejections: []security.Rejection{{Time: at, Terminal: "acme:T-1", Channel: "hb", Reason: "not_json", Count: 749}},
	}
	var b bytes.Buffer
	if err := security.Page(v).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, tc := range []struct{ testid, want string }{
		{"security-row-count", "1,999"},
		{"rejection-row-count", "749"},
	} {
		t.Run(tc.testid, func(t *testing.T) {
			if n := strings.Count(page, `data-testid="`+tc.testid+`"`); n != 1 {
				t.Fatalf("%d elements %s, want 1", n, tc.testid)
			}
			if !strings.Contains(page, tc.want) {
				t.Errorf("count %s not shown", tc.want)
			}
		})
	}
}

// TestPageInChinese: headings and the empty states in Chinese, times in
// the reader's zone, counts with separators.
func TestPageInChinese(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	ctx := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	v := security.View{
		Events:   []security.Event{{Time: at, Kind: "auth_failed", Username: "acme:T-9", Remote: "192.0.2.7:4000", Count: 12000}},
		ByKind:   []security.Count{{Key: "auth_failed", N: 12000}},
		ByReason: nil,
	}
	var b bytes.Buffer
	if err := security.Page(v).Render(ctx, &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"事件与安全", "被拒绝的连接和主题", "未知：acme:T-9", "2026-03-02 17:30:00 UTC+8", "12,000", "服务器启动以来没有被拒收的消息。"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "09:30:00") || strings.Contains(page, "Rejected messages") {
		t.Error("page in UTC or in English")
	}
}

// TestRowsLinkToTerminal: a row naming a terminal links to its page; one
// naming none (an aggregate's catch-all, an unknown client) does not.
func TestRowsLinkToTerminal(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	v := security.View{
		Events:     []security.Event{{Time: at, Kind: "auth_failed", Terminal: "acme:T-1"}, {Time: at, Kind: "auth_failed", Username: "nobody"}},
		Rejections: []security.Rejection{{Time: at, Terminal: "acme:T-2", Reason: "not_json"}, {Time: at, Terminal: ":", Reason: "not_json"}},
	}
	var b bytes.Buffer
	if err := security.Page(v).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if n := strings.Count(page, `data-testid="security-terminal-link"`); n != 2 {
		t.Errorf("%d terminal links, want 2", n)
	}
	for _, href := range []string{`href="/terminals/acme/T-1"`, `href="/terminals/acme/T-2"`} {
		if !strings.Contains(page, href) {
			t.Errorf("no link %s", href)
		}
	}
}
