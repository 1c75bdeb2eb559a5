package campaign

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/posfleet/posfleet"
)

// Fleet is what campaigns need of the terminals: the health engine's view
// of them with the registry's places (the server adapts both).
type Fleet interface {
	// Terminals returns tenant's terminals of model.
	Terminals(ctx context.Context, tenant, model string) ([]Terminal, error)
	// Terminal returns one terminal now; false when nothing is known of it.
	Terminal(ctx context.Context, ref posfleet.TerminalRef) (Terminal, bool)
	// KPI returns a terminal's cumulative payment KPIs; false when none
	// were counted.
	KPI(ref posfleet.TerminalRef) (posfleet.KPICounts, bool)
}

// Terminal is one terminal as a campaign sees it.
type Terminal struct {
	Ref                               posfleet.TerminalRef
	Model, Firmware, Merchant, Region string
	Online                            bool
	// Update is the last update attempt it reported (nil: none) and
	// UpdateAt when that arrived.
	Update   *posfleet.UpdateAttempt
	UpdateAt time.Time
}

// SaleHours says in which hours of the week a terminal usually sells
// (index UTC weekday*24 + UTC hour; true: it usually sells then); known
// is false for a terminal with too little history. The health engine
// learns them from the terminals' transactions.
type SaleHours interface {
	UsualSaleHours(posfleet.TerminalRef) (hours [168]bool, known bool)
}

// Options are the campaigns' settings.
type Options struct {
	// AllowHTTPFirmware accepts http:// package URLs (as the firmware
	// policy does with --allow-http-firmware); https:// otherwise.
	AllowHTTPFirmware bool
	// MinSoak is the shortest soak a wave may have: a gate needs hours of
	// transactions to see anything (tests use seconds).
	MinSoak time.Duration
	// AnswerTimeout: an update sent and not answered (installed or
	// failed) within it counts as failed ("no answer").
	AnswerTimeout time.Duration
	// WaveTimeout: a wave whose online terminals have not all answered
	// within it (outside their windows all that time, say) starts its
	// soak with those it has.
	WaveTimeout time.Duration
	// BaselineCap bounds the baseline cohort (the same model's terminals
	// not yet updated) whose KPIs are kept per soak.
	BaselineCap int
	// DefaultMaxInFlight is a spec's MaxInFlight when it gives none.
	DefaultMaxInFlight int
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		// Ten minutes: less sees too few transactions to judge anything
		// but a broken terminal; the documented soaks are hours.
		MinSoak: 10 * time.Minute,
		// An hour: a download over a weak 2G link and the install.
		AnswerTimeout: time.Hour,
		// A day and two hours: every terminal has had a window in it.
		WaveTimeout: 26 * time.Hour,
		// 2,000 terminals: the baseline's rates are then far more precise
		// than a canary's; more only costs rows.
		BaselineCap:        2000,
		DefaultMaxInFlight: 10,
	}
}

// Limits of a spec.
const (
	MaxWaves        = 20
	MaxListed       = 100_000 // entries of a selector's list
	MaxMaxInFlight  = 10_000
	MaxSoak         = 30 * 24 * time.Hour
	maxNameLen      = 200
	maxValueLen     = 128
	maxRollbackPkgs = 100
)

// FallbackStart and FallbackEnd are the window of a learned window's
// terminal with too little history, when the spec gives no Start–End.
const (
	FallbackStart = "01:00"
	FallbackEnd   = "05:00"
)

var (
	sha256Hex = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	clockRe   = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

func invalid(format string, args ...any) error {
	return posfleet.Errorf(posfleet.Invalid, "bad_campaign", format, args...)
}

// Validate checks a spec; its error (posfleet.Invalid) names the field,
// e.g. "waves[1].percent: 150 is over 100".
func Validate(spec posfleet.CampaignSpec, opts Options) error {
	if err := checkText("name", spec.Name, maxNameLen, false); err != nil {
		return err
	}
	if err := checkText("model", spec.Model, maxValueLen, true); err != nil {
		return err
	}
	if err := checkText("target", spec.Target, maxValueLen, true); err != nil {
		return err
	}
	if err := checkPackage("package", spec.Package, opts.AllowHTTPFirmware); err != nil {
		return err
	}
	for field, list := range map[string][]string{"select.regions": spec.Select.Regions, "select.merchants": spec.Select.Merchants,
		"select.versions": spec.Select.Versions, "select.terminals": spec.Select.Terminals} {
		if len(list) > MaxListed {
			return invalid("%s: %d entries; at most %d", field, len(list), MaxListed)
		}
		for i, v := range list {
			if err := checkText(fmt.Sprintf("%s[%d]", field, i), v, maxValueLen, true); err != nil {
				return err
			}
		}
	}
	switch n := len(spec.Waves); {
	case n == 0:
		return invalid("waves: give at least one wave (a canary), e.g. [{\"count\": 5, \"soak\": \"2h\"}, {\"percent\": 100, \"soak\": \"4h\"}]")
	case n > MaxWaves:
		return invalid("waves: %d waves; at most %d", n, MaxWaves)
	}
	lastPct := 0.0
	for i, w := range spec.Waves {
		f := fmt.Sprintf("waves[%d]", i)
		switch {
		case w.Count != 0 && w.Percent != 0:
			return invalid("%s: give count or percent, not both", f)
		case w.Count == 0 && w.Percent == 0:
			return invalid("%s: give a count of terminals or a percent of the selection", f)
		case w.Count < 0:
			return invalid("%s.count: %d is negative", f, w.Count)
		case w.Count > MaxListed:
			return invalid("%s.count: %d is over %d", f, w.Count, MaxListed)
		case math.IsNaN(w.Percent) || w.Percent < 0:
			return invalid("%s.percent: want a percent from 0 to 100", f)
		case w.Percent > 100:
			return invalid("%s.percent: %g is over 100", f, w.Percent)
		case w.Percent != 0 && w.Percent <= lastPct:
			return invalid("%s.percent: %g is not above the wave before's %g (percents are cumulative)", f, w.Percent, lastPct)
		}
		if w.Percent != 0 {
			lastPct = w.Percent
		}
		soak := time.Duration(w.Soak)
		switch {
		case soak < opts.MinSoak:
			return invalid("%s.soak: %s is shorter than the minimum %s", f, soak, opts.MinSoak)
		case soak > MaxSoak:
			return invalid("%s.soak: %s is longer than %d days", f, soak, int(MaxSoak.Hours()/24))
		}
	}
	if spec.MaxInFlight < 0 || spec.MaxInFlight > MaxMaxInFlight {
		return invalid("max_in_flight: %d; want 1 to %d (0 for the default %d)", spec.MaxInFlight, MaxMaxInFlight, opts.DefaultMaxInFlight)
	}
	if err := checkWindow(spec.Window); err != nil {
		return err
	}
	if len(spec.Rollback) > maxRollbackPkgs {
		return invalid("rollback: %d packages; at most %d", len(spec.Rollback), maxRollbackPkgs)
	}
	seen := map[string]bool{}
	for i, p := range spec.Rollback {
		f := fmt.Sprintf("rollback[%d]", i)
		if err := checkText(f+".version", p.Version, maxValueLen, true); err != nil {
			return err
		}
		if seen[p.Version] {
			return invalid("%s.version: %s appears twice", f, p.Version)
		}
		seen[p.Version] = true
		if err := checkPackage(f+".package", p.Package, opts.AllowHTTPFirmware); err != nil {
			return err
		}
	}
	return nil
}

// checkText refuses an over-long or unprintable value, or one that looks
// like card data; required refuses an empty one.
func checkText(field, v string, maxLen int, required bool) error {
	switch {
	case v == "" && required:
		return invalid("%s: required", field)
	case len(v) > maxLen:
		return invalid("%s: at most %d characters", field, maxLen)
	case strings.IndexFunc(v, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		return invalid("%s: only printable characters", field)
	case strings.TrimSpace(v) != v:
		return invalid("%s: no leading or trailing spaces", field)
	case posfleet.ContainsCardData(v):
		return invalid("%s: looks like it holds a card number; card data is never stored", field)
	}
	return nil
}

// checkPackage checks a package's URL (absolute https, or http when
// allowed; no credentials) and SHA-256 (64 hex digits).
func checkPackage(field string, p posfleet.FirmwarePackage, allowHTTP bool) error {
	if p.URL == "" {
		return invalid("%s.url: required", field)
	}
	if len(p.URL) > 2048 {
		return invalid("%s.url: at most 2048 characters", field)
	}
	u, err := url.Parse(p.URL)
	scheme := ""
	if err == nil {
		scheme = strings.ToLower(u.Scheme)
	}
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return invalid("%s.url: want an absolute https URL with a host", field)
	case u.User != nil:
		return invalid("%s.url: no user name or password in the URL", field)
	case scheme == "https", scheme == "http" && allowHTTP:
	case scheme == "http":
		return invalid("%s.url: http is refused (start posfleet with --allow-http-firmware to allow it); use https", field)
	default:
		return invalid("%s.url: scheme %q refused; want https", field, u.Scheme)
	}
	if !sha256Hex.MatchString(p.SHA256) {
		return invalid("%s.sha256: want the package's SHA-256 as 64 hex digits", field)
	}
	if posfleet.ContainsCardData(p.URL) {
		return invalid("%s.url: looks like it holds a card number; card data is never stored", field)
	}
	return nil
}

// checkWindow checks a maintenance window.
func checkWindow(w posfleet.MaintenanceWindow) error {
	switch w.Mode {
	case posfleet.WindowLearned, posfleet.WindowFixed, posfleet.WindowAny:
	case "":
		return invalid("window.mode: required: learned, fixed or any")
	default:
		return invalid("window.mode: %q; want learned, fixed or any", w.Mode)
	}
	if (w.Start == "") != (w.End == "") {
		return invalid("window: give both start and end, or neither")
	}
	if w.Mode == posfleet.WindowFixed && w.Start == "" {
		return invalid("window.start: required for a fixed window (HH:MM)")
	}
	for field, v := range map[string]string{"window.start": w.Start, "window.end": w.End} {
		if v != "" && !clockRe.MatchString(v) {
			return invalid("%s: %q; want HH:MM, e.g. 02:00", field, v)
		}
	}
	if w.Start != "" && w.Start == w.End {
		return invalid("window.end: the same as start; the window would be empty")
	}
	if w.Zone != "" {
		if len(w.Zone) > maxValueLen {
			return invalid("window.zone: too long")
		}
		if _, err := time.LoadLocation(w.Zone); err != nil || w.Zone == "Local" {
			return invalid("window.zone: %q is not an IANA time zone (e.g. Asia/Shanghai)", w.Zone)
		}
	}
	return nil
}

// normalize fills a valid spec's defaults: the name and MaxInFlight.
func normalize(spec posfleet.CampaignSpec, opts Options) posfleet.CampaignSpec {
	if spec.Name == "" {
		spec.Name = spec.Model + " to " + spec.Target
	}
	if spec.MaxInFlight == 0 {
		spec.MaxInFlight = max(opts.DefaultMaxInFlight, 1)
	}
	return spec
}

// choice is one terminal a spec selects.
type choice struct {
	Terminal
	rank uint64
}

// selects reports whether spec selects t (busy: terminals of another
// campaign in progress, left out).
func selects(spec posfleet.CampaignSpec, t Terminal, listed map[string]bool) bool {
	sel := spec.Select
	switch {
	case t.Model != spec.Model:
		return false
	case len(listed) > 0 && !listed[t.Ref.Terminal]:
		return false
	case len(sel.Regions) > 0 && !slices.Contains(sel.Regions, t.Region):
		return false
	case len(sel.Merchants) > 0 && !slices.Contains(sel.Merchants, t.Merchant):
		return false
	case t.Firmware == "":
		return false // nothing reported yet: nothing to update from
	case len(sel.Versions) > 0:
		return slices.Contains(sel.Versions, t.Firmware)
	}
	return t.Firmware != spec.Target
}

// hashRank orders terminals of a campaign: a hash of the campaign's ID and
// the terminal's, so that two campaigns do not canary the same terminals.
func hashRank(id, terminal string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(terminal))
	return h.Sum64()
}

// choose returns the terminals spec selects among all, in the order they
// are to be updated: merchants take turns (each merchant's terminals in
// hash order, the merchants in the hash order of their first), so that
// a canary of N terminals spans up to N merchants, and so regions.
func choose(id string, spec posfleet.CampaignSpec, all []Terminal, busy map[string]bool) []choice {
	listed := map[string]bool{}
	for _, t := range spec.Select.Terminals {
		listed[t] = true
	}
	byMerchant := map[string][]choice{}
	for _, t := range all {
		if busy[t.Ref.Terminal] || !selects(spec, t, listed) {
			continue
		}
		byMerchant[t.Merchant] = append(byMerchant[t.Merchant], choice{Terminal: t, rank: hashRank(id, t.Ref.Terminal)})
	}
	groups := make([][]choice, 0, len(byMerchant))
	for _, g := range byMerchant {
		sort.Slice(g, func(i, j int) bool {
			return g[i].rank < g[j].rank || g[i].rank == g[j].rank && g[i].Ref.Terminal < g[j].Ref.Terminal
		})
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		a, b := groups[i][0], groups[j][0]
		return a.rank < b.rank || a.rank == b.rank && a.Ref.Terminal < b.Ref.Terminal
	})
	var out []choice
	for k := 0; ; k++ {
		added := false
		for _, g := range groups {
			if k < len(g) {
				out = append(out, g[k])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// WaveSizes returns how many of n selected terminals each wave adds: a
// count adds that many; a percent brings the cumulative total up to that
// share of n (rounded up, so that a small fleet's 1% is one terminal).
func WaveSizes(waves []posfleet.WaveSpec, n int) []int {
	sizes := make([]int, len(waves))
	done := 0
	for i, w := range waves {
		want := done
		switch {
		case w.Count > 0:
			want = done + w.Count
		case w.Percent > 0:
			want = int(math.Ceil(w.Percent*float64(n)/100 - 1e-9))
		}
		want = min(max(want, done), n)
		sizes[i] = want - done
		done = want
	}
	return sizes
}

// hourIndex is t's index in a week of hours, as SaleHours has it.
func hourIndex(t time.Time) int {
	t = t.UTC()
	return int(t.Weekday())*24 + t.Hour()
}

// inWindow reports whether a terminal may be sent an update at now: any
// time; between start and end in loc (fixed, or a learned window's
// terminal without history); or, learned, when it usually sells neither
// in this hour nor in the next (an update takes minutes, and a shop
// opening at the hour must find its terminal ready).
func inWindow(w posfleet.MaintenanceWindow, loc *time.Location, hours [168]bool, known bool, now time.Time) bool {
	switch w.Mode {
	case posfleet.WindowAny:
		return true
	case posfleet.WindowLearned:
		if known {
			return !hours[hourIndex(now)] && !hours[hourIndex(now.Add(time.Hour))]
		}
	}
	start, end := w.Start, w.End
	if start == "" {
		start, end = FallbackStart, FallbackEnd
	}
	return inClock(start, end, now.In(loc))
}

// inClock reports whether local's time of day is in [start, end), which
// wraps past midnight when end is before start.
func inClock(start, end string, local time.Time) bool {
	s, e := clockMinutes(start), clockMinutes(end)
	m := local.Hour()*60 + local.Minute()
	if s < e {
		return m >= s && m < e
	}
	return m >= s || m < e
}

func clockMinutes(hhmm string) int {
	var h, m int
	fmt.Sscanf(hhmm, "%d:%d", &h, &m)
	return h*60 + m
}

// Validate reports the first option out of its range.
func (o Options) Validate() error {
	switch {
	case o.MinSoak < 0:
		return fmt.Errorf("campaigns: minimum soak %s: want 0 or more", o.MinSoak)
	case o.AnswerTimeout <= 0:
		return fmt.Errorf("campaigns: answer timeout %s: want a positive duration", o.AnswerTimeout)
	case o.WaveTimeout <= 0:
		return fmt.Errorf("campaigns: wave timeout %s: want a positive duration", o.WaveTimeout)
	case o.BaselineCap < 1:
		return fmt.Errorf("campaigns: baseline cap %d: want at least 1", o.BaselineCap)
	case o.DefaultMaxInFlight < 1 || o.DefaultMaxInFlight > MaxMaxInFlight:
		return fmt.Errorf("campaigns: default max in flight %d: want 1 to %d", o.DefaultMaxInFlight, MaxMaxInFlight)
	}
	return nil
}
