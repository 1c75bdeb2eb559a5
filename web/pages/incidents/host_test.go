package incidents_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/incidents"
)

// TestPageNamesHostAndTimeline: an incident of one host names it and
// draws its failures per minute; one of 3 hours draws them per 5 minutes.
func TestPageNamesHostAndTimeline(t *testing.T) {
	start := time.Date(2026, 3, 2, 5, 53, 20, 0, time.UTC)
	inc := health.Incident{ID: "inc-acme-cup-sh-20260302T055320Z", Tenant: "acme", Host: "cup-sh", Start: start, Open: true,
		Merchants: []string{"Chengdu Noodles"}, TerminalCount: 5, Failures: 40,
		Timeline: []health.IncidentMinute{{At: start.Truncate(time.Minute), Failures: 25}, {At: start.Truncate(time.Minute).Add(2 * time.Minute), Failures: 15}}}
	v := incidents.View{Now: start.Add(5 * time.Minute), Incidents: []health.Incident{inc}}
	for _, c := range []struct {
		lang string
		want []string
	}{
		{locale.English, []string{"Host: cup-sh.", "Failures over time", "per 1 min", `<rect class="bar-timeout"`}},
		{locale.Chinese, []string{"主机：cup-sh。", "每 1 分钟"}},
	} {
		var b bytes.Buffer
		if err := incidents.Page(v).Render(locale.With(context.Background(), locale.New(c.lang, "")), &b); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s page lacks %q", c.lang, w)
			}
		}
		if n := strings.Count(b.String(), "<rect "); c.lang == locale.English && n != 2 {
			t.Errorf("%d bars, want 2", n)
		}
	}
	ch := incidents.Timeline(context.Background(), health.Incident{Start: start, End: start.Add(3 * time.Hour), Timeline: inc.Timeline}, start)
	if ch.Bucket != 5*time.Minute || ch.End.Sub(ch.Start) > 185*time.Minute {
		t.Errorf("3-hour timeline: bucket %v, %v to %v", ch.Bucket, ch.Start, ch.End)
	}
}
