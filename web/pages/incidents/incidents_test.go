package incidents_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/incidents"
)

// TestPageNamesMerchants: an incident names its first merchants, each a
// link to the terminal list filtered by its name, then "and N more" with
// the rest; times in the reader's zone, in its language.
func TestPageNamesMerchants(t *testing.T) {
	start := time.Date(2026, 3, 2, 5, 53, 0, 0, time.UTC)
	var merchants []string
	for i := range 8 {
		merchants = append(merchants, fmt.Sprintf("成都便利店 %d 号", i+1))
	}
	v := incidents.View{Now: start.Add(time.Hour), Incidents: []health.Incident{{ID: "i-1", Tenant: "acme", Start: start, End: start.Add(95 * time.Minute),
		Merchants: merchants, TerminalCount: 26371, Failures: 1, PeakShare: 0.42,
		Terminals: []posfleet.TerminalRef{{Tenant: "acme", Terminal: "T-1"}}}}}
	render := func(lang string) string {
		var b bytes.Buffer
		ctx := locale.With(context.Background(), locale.New(lang, ""))
		if err := incidents.Page(v).Render(ctx, &b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	en, zh := render(locale.English), render(locale.Chinese)
	for _, want := range []string{
		`href="/terminals?q=%E6%88%90%E9%83%BD%E4%BE%BF%E5%88%A9%E5%BA%97+1+%E5%8F%B7"`, "and 3 more", "8 merchants, 26,371 terminals, 1 failed transaction, at worst 42%",
		"2026-03-02 05:53:00 UTC → 2026-03-02 07:28:00 UTC", "1 h 35 min", "The first 1 of 26,371 terminals",
	} {
		if !strings.Contains(en, want) {
			t.Errorf("English page lacks %q", want)
		}
	}
	if n := strings.Count(en, `data-testid="incident-merchant"`); n != 8 {
		t.Errorf("%d merchant links, want 8", n)
	}
	if first, _, _ := strings.Cut(en, `data-testid="incident-merchants-more"`); strings.Count(first, `data-testid="incident-merchant"`) != incidents.FewMerchants {
		t.Errorf("not %d merchants before the rest", incidents.FewMerchants)
	}
	for _, want := range []string{"等另外 3 个", "8 个商户", "2026-03-02 13:53:00 UTC+8 → 2026-03-02 15:28:00 UTC+8", "1 小时 35 分钟", "成都便利店 8 号"} {
		if !strings.Contains(zh, want) {
			t.Errorf("Chinese page lacks %q", want)
		}
	}
	if missing := locale.Missing(); len(missing) > 0 {
		t.Errorf("untranslated: %v", missing)
	}
}
