package security_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

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
		{"security-row-count", "1999"},
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
