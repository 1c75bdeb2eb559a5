package web_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/collector"
	"github.com/posfleet/posfleet/influxdb"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web"
)

// TestTerminalPageRejectedOnly: a provisioned terminal that connects and
// sends only messages the collector rejects is not "never connected" and
// not healthy: it carries bad_data with the reasons, and its page lists its
// rejections (reason and time, never the payload), in English and Chinese.
func TestTerminalPageRejectedOnly(t *testing.T) {
	var col *collector.Collector
	f := newUIFixture(t, func(o *web.Options) { o.Events = &colEvents{&col} })
	copts := collector.DefaultOptions()
	copts.SpoolDir = filepath.Join(t.TempDir(), "spool")
	copts.Observers = []collector.Observer{f.engine}
	var err error
	if col, err = collector.New(copts, influxdb.Encoder{}, nopWriter{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { col.Close() })
	f.seed(t)
	bad := posfleet.TerminalRef{Tenant: "acme", Terminal: "T-BAD"}
	f.engine.Provision(bad)
	for i, p := range []string{`{"ts":"2026-03-02T09:30:00Z","battery_pct":80}`, `not json`, `{"ts":"2026-03-02T09:30:00Z"}`, `not json`, `not json`, `{"seq":"x"}`} {
		var rej *posfleet.Rejection
		if err := col.Accept(context.Background(), bad, posfleet.ChannelHeartbeat, []byte(p)); !errors.As(err, &rej) {
			t.Fatalf("message %d accepted: %v", i, err)
		}
	}
	c, _ := f.session(t, "ops-acme")
	body, ids := f.page(t, c, "/terminals/acme/T-BAD", 200)
	if len(ids["never-seen"]) != 0 || len(ids["no-flags"]) != 0 {
		t.Errorf("a terminal sending only rejected messages reads %q %q", ids["never-seen"], ids["no-flags"])
	}
	if len(ids["flag-bad_data"]) != 1 {
		t.Fatalf("no bad_data flag: %v", ids)
	}
	if d := one(t, ids, "flag-description"); !strings.Contains(d, "All 6 messages of the last 60 minutes were rejected") || !strings.Contains(d, "not_json 3") {
		t.Errorf("bad_data in words: %q", d)
	}
	if n := len(ids["terminal-rejection-row"]); n == 0 {
		t.Errorf("the page lists none of its rejections")
	}
	if !strings.Contains(strings.Join(ids["terminal-rejection-reason"], " "), "not_json") || strings.Contains(body, "battery_pct") {
		t.Errorf("rejection reasons %v (or a payload shown)", ids["terminal-rejection-reason"])
	}
	if !strings.HasPrefix(one(t, ids, "msg-rejected"), "6") {
		t.Errorf("rejected counter %q", one(t, ids, "msg-rejected"))
	}
	if _, ids := f.page(t, c, "/terminals/acme/T-1", 200); len(ids["terminal-rejections-empty"]) != 1 || len(ids["terminal-rejection-row"]) != 0 {
		t.Errorf("another terminal shows T-BAD's rejections: %v", ids["terminal-rejection-row"])
	}

	// In Chinese, in the reader's zone, every message from the catalogue.
	zhPage := func(path string) string {
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return b.String()
	}
	zh := testIDs(t, zhPage("/terminals/acme/T-BAD"))
	if got := strings.Join(zh["flag-description"], ""); !strings.Contains(got, "全部被拒收") {
		t.Errorf("bad_data in Chinese: %q", got)
	}
	for _, p := range []string{"/terminals/acme/T-1", "/terminals/acme/T-1?range=7d"} {
		page := zhPage(p)
		for _, want := range []string{"设备信息", "最近交易", "UTC+8", "€12.50"} {
			if !strings.Contains(page, want) {
				t.Errorf("%s in Chinese lacks %q", p, want)
			}
		}
		for _, english := range []string{"Identity", "Recent transactions", "No command sent", "Times are UTC"} {
			if strings.Contains(page, english) {
				t.Errorf("%s in Chinese shows %q", p, english)
			}
		}
	}
	for _, m := range locale.Missing() {
		t.Errorf("message missing from the catalogue: %s", m)
	}
}

// colEvents is the collector as web.Events once it exists (the collector
// needs the engine, the engine's fixture comes first).
type colEvents struct{ c **collector.Collector }

func (e *colEvents) RecentRejections(tenant string, n int) []posfleet.RejectionEvent {
	return (*e.c).RecentRejections(tenant, n)
}

func (e *colEvents) RecentSecurity(tenant string, n int) []posfleet.SecurityRecord {
	return (*e.c).RecentSecurity(tenant, n)
}

func (e *colEvents) Counters(ref posfleet.TerminalRef) posfleet.MessageCounts {
	return (*e.c).Counters(ref)
}

func (e *colEvents) TerminalRejections(ref posfleet.TerminalRef, n int) []posfleet.RejectionEvent {
	return (*e.c).TerminalRejections(ref, n)
}

func (e *colEvents) TerminalSecurity(ref posfleet.TerminalRef, n int) []posfleet.SecurityRecord {
	return (*e.c).TerminalSecurity(ref, n)
}
