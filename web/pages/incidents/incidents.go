package incidents

import (
	"context"
	"time"

	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/chart"
)

// FewMerchants is how many merchants an incident names before "and N more".
const FewMerchants = 5

// Duration is how long an incident lasted, in the reader's words.
func Duration(ctx context.Context, d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return locale.T(ctx, "incidents.duration_s", "Seconds", int(d.Seconds()))
	case d < time.Hour:
		return locale.T(ctx, "incidents.duration_m", "Minutes", int(d.Round(time.Minute).Minutes()))
	}
	d = d.Round(time.Minute)
	return locale.T(ctx, "incidents.duration_hm", "Hours", int(d.Hours()), "Minutes", int(d.Minutes())%60)
}

// few is the first FewMerchants of merchants, rest the others.
func few(merchants []string) (first, rest []string) {
	n := min(len(merchants), FewMerchants)
	return merchants[:n], merchants[n:]
}

// Timeline is an incident's failures over time as bars: one a minute for
// an hour or less, else one per 5, 15 or 60 minutes so that a long outage
// keeps at most about 100 bars.
func Timeline(ctx context.Context, inc health.Incident, now time.Time) chart.Chart {
	start := inc.Start.Truncate(time.Minute)
	if len(inc.Timeline) > 0 && inc.Timeline[0].At.Before(start) {
		start = inc.Timeline[0].At
	}
	end := inc.End
	if end.IsZero() {
		end = now
	}
	if n := len(inc.Timeline); n > 0 && !inc.Timeline[n-1].At.Before(end) {
		end = inc.Timeline[n-1].At
	}
	bucket := time.Minute
	for _, b := range []time.Duration{5 * time.Minute, 15 * time.Minute, time.Hour} {
		if end.Sub(start) <= 100*bucket {
			break
		}
		bucket = b
	}
	start = start.Truncate(bucket)
	end = end.Truncate(bucket).Add(bucket)
	s := chart.Series{Label: locale.T(ctx, "incidents.timeline_failures"), Class: "bar-timeout"}
	for _, m := range inc.Timeline {
		s.Points = append(s.Points, chart.Point{At: m.At, Value: float64(m.Failures)})
	}
	return chart.Chart{ID: "incident-" + inc.ID, Title: locale.T(ctx, "incidents.timeline"),
		Unit:  locale.T(ctx, "incidents.timeline_unit", "Minutes", int(bucket.Minutes())),
		Start: start, End: end, Bucket: bucket, Bars: []chart.Series{s}}
}
