package incidents

import (
	"context"
	"time"

	"github.com/posfleet/posfleet/locale"
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
