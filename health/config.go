package health

import (
	"log/slog"
	"time"

	"github.com/posfleet/posfleet"
)

// Fixed sizes of the per-terminal rolling windows. They bound the memory of a
// terminal; the thresholds in Config may use less of them, not more.
const (
	// TxnRing is how many transaction outcomes a terminal keeps
	// (PROTOCOL.md §2: txn_failures looks at the last 50).
	TxnRing = 50
	// HeartbeatRing is how many heartbeats a terminal keeps
	// (PROTOCOL.md §2: weak_network looks at the last 10).
	HeartbeatRing = 10
	// EvidenceRing is how many events of each 24-hour kind (amount mismatch,
	// failed receipt, refund anomaly, tamper, counted failure) a terminal
	// keeps as evidence. It must be at least every "N in 24 h" threshold.
	EvidenceRing = 4
	// MaxOpenFaults bounds the open faults kept per terminal; a terminal
	// cannot have more distinct components and codes open in practice.
	MaxOpenFaults = 16
	// MaxServiceRecords is how many crew visits a terminal remembers.
	MaxServiceRecords = 8
	// MaxIncidents is how many incidents a tenant remembers, open or closed.
	MaxIncidents = 50
	// MaxIncidentTerminals bounds the terminal list of one incident; the
	// count goes on, the list keeps the first ones.
	MaxIncidentTerminals = 1000
)

// Site is where a terminal stands, as the work list shows it to a crew
// (posfleet.Site, a root-owned value).
type Site = posfleet.Site

// Config configures an Engine. Zero fields take their value from DefaultConfig.
type Config struct {
	// HeartbeatInterval is how often terminals send a heartbeat
	// (PROTOCOL.md §1); it sets OfflineAfter when that is not given.
	// Terminals may send heartbeats more often: clock_skew tells live
	// heartbeats from a backlog by their delivery, not by their interval.
	HeartbeatInterval time.Duration
	// OfflineAfter is the silence after which a terminal is offline.
	OfflineAfter time.Duration
	// SellingWindow: a terminal that went offline within this time of its
	// last transaction was selling, which puts it first on the work list.
	SellingWindow time.Duration
	// EvidenceWindow is the "last 24 h" of amount_mismatch,
	// receipt_failures and refund_anomaly.
	EvidenceWindow time.Duration

	// TxnWindow, TxnMinimum and TxnFailureRate: txn_failures is raised when
	// at least TxnFailureRate of the last TxnWindow transactions (and at least
	// TxnMinimum of them) failed for terminal or network reasons.
	TxnWindow      int
	TxnMinimum     int
	TxnFailureRate float64
	// TxnChanceRate and TxnAlpha: besides, the failures must be too many
	// for a terminal that fails TxnChanceRate of its transactions (a weak
	// link, a worn reader that still mostly works) to show by chance more
	// often than TxnAlpha of the time: a one-sided exact binomial test, so
	// that 2 chance failures among 10 transactions flag nothing.
	TxnChanceRate float64
	TxnAlpha      float64
	// txnCritical[n] is the fewest failures among n transactions that
	// pass the binomial test (withDefaults).
	txnCritical []int

	// ReceiptFailures is how many approved transactions without a printed
	// receipt in EvidenceWindow raise receipt_failures.
	ReceiptFailures int

	// WeakSignalDBm, WeakRTTMs and WeakNetworkMinHeartbeats: weak_network is
	// raised when the median signal of the last HeartbeatRing heartbeats is
	// below WeakSignalDBm or their 90th percentile host round trip is above
	// WeakRTTMs, once at least WeakNetworkMinHeartbeats are known.
	WeakSignalDBm            int
	WeakRTTMs                int
	WeakNetworkMinHeartbeats int

	// LowBatteryPct, LowBatteryHeartbeats and HotTempC: battery is raised
	// after LowBatteryHeartbeats heartbeats in a row below LowBatteryPct and
	// not charging, or one heartbeat above HotTempC.
	LowBatteryPct        int
	LowBatteryHeartbeats int
	HotTempC             float64

	// ClockSkew is how far a terminal's clock may be from the server's;
	// ClockSkewHeartbeats is how many live heartbeats (of the last three)
	// must show it.
	ClockSkew           time.Duration
	ClockSkewHeartbeats int

	// IncidentWindow, IncidentShare, IncidentMinMerchants and
	// IncidentMinTerminals: a host incident is open while host-side failures
	// hit at least IncidentShare of the terminals that transacted in the
	// last IncidentWindow, across at least IncidentMinMerchants merchants and
	// at least IncidentMinTerminals terminals.
	IncidentWindow       time.Duration
	IncidentShare        float64
	IncidentMinMerchants int
	IncidentMinTerminals int

	// SuspectMinTxns, SuspectMinTerminals and SuspectAlpha: a firmware
	// version is suspect when its rate is above the rest of its model's
	// fleet at significance SuspectAlpha, with at least SuspectMinTxns
	// transactions on the version and its excess spread over at least
	// SuspectMinTerminals terminals.
	SuspectMinTxns      int
	SuspectMinTerminals int
	SuspectAlpha        float64
	// SuspectMinTerminalVolume, SuspectMinRatio and SuspectMinDiff: see
	// SuspectRules; SuspectAlpha is its false discovery rate.
	SuspectMinTerminalVolume int64
	SuspectMinRatio          float64
	SuspectMinDiff           float64

	// BadDataWindow, BadDataMinRejected and BadDataShare: bad_data is raised
	// when at least BadDataMinRejected of a terminal's messages were
	// rejected in the last BadDataWindow and at least BadDataShare of its
	// messages there were (1: none accepted).
	BadDataWindow      time.Duration
	BadDataMinRejected int
	BadDataShare       float64

	// FallbackWindow, FallbackMinimum and FallbackRate: fallback_rate is
	// raised when at least FallbackMinimum of the terminal's last
	// FallbackWindow chip transactions (entry chip or fallback; at most
	// FallbackRing) fell back to the stripe, and at least FallbackRate of
	// them (doc.go has the false-flag rates).
	FallbackWindow  int
	FallbackMinimum int
	FallbackRate    float64
	// MovedDistanceM and MovedHeartbeats: moved is raised when
	// MovedHeartbeats heartbeats in a row report a location farther than
	// MovedDistanceM metres from the provisioned site (Site), and cleared
	// after as many at the site.
	MovedDistanceM  float64
	MovedHeartbeats int
	// TickInterval is how often Run checks deadlines and windows.
	TickInterval time.Duration

	// Merchant returns a terminal's merchant, for incidents. It is asked
	// once per terminal, when the engine first hears from it. Nil uses
	// Site's merchant; with neither, every terminal counts as a merchant of
	// its own.
	Merchant func(posfleet.TerminalRef) string
	// Site returns where a terminal stands, for the work list; nil or
	// false leaves the site empty.
	Site func(posfleet.TerminalRef) (Site, bool)
	// Now is the clock for Run, MarkServiced and queries; nil is time.Now.
	Now func() time.Time
	// Logger receives incidents opened and closed; nil discards.
	Logger *slog.Logger

	// Signals beyond PROTOCOL §2 (flag_silent.go, flag_wear.go, host incidents).
	//
	// SilentMinHistory, SilentMinHours, SilentUsualShare and SilentAlpha:
	// silent is raised for a terminal with at least SilentMinHistory of
	// sales history, online now, in an hour in which it usually sells
	// (sold in it in at least SilentUsualShare of the last weeks, up to
	// six), when at least SilentMinHours usual hours passed in which it was
	// heard and sold nothing, and its own history gives so many usual
	// hours without a sale a chance of at most SilentAlpha (hours.go).
	SilentMinHistory time.Duration
	SilentMinHours   int
	SilentUsualShare float64
	SilentAlpha      float64
	// WearHorizon, WearSampleEvery and WearMinSpan: wear_due is raised
	// when a part's counter (hb prints, card_insertions, battery_cycles,
	// battery_health_pct), sampled once per WearSampleEvery, is forecast
	// by its trend over samples spanning at least WearMinSpan to reach
	// its rated life within WearHorizon (flag_wear.go); a part already
	// past it is due at once.
	WearHorizon     time.Duration
	WearSampleEvery time.Duration
	WearMinSpan     time.Duration
	// The rated lives: prints of a thermal printer head, card insertions
	// of a chip reader, charge cycles of a battery, and the battery
	// health (capacity left, percent) at which a battery is replaced.
	WearPrinterPrints    int64
	WearChipInsertions   int64
	WearBatteryCycles    int64
	WearBatteryHealthPct int
}

// DefaultConfig returns the thresholds of PROTOCOL.md §2 and the engine's own defaults.
func DefaultConfig() Config {
	return Config{
		// PROTOCOL.md §1.
		HeartbeatInterval: 60 * time.Second,
		// Three heartbeat intervals (PROTOCOL.md §2): one lost heartbeat on
		// a cellular link is normal, three are not.
		OfflineAfter: 180 * time.Second,
		// A shop that sold in the last hour loses money while its terminal is
		// down; one idle since yesterday may just be closed.
		SellingWindow:  time.Hour,
		EvidenceWindow: 24 * time.Hour,
		// PROTOCOL.md §2: 20% of the last 50, at least 10 transactions, so
		// that two failures of a terminal that sold five times do not flag it.
		TxnWindow:      50,
		TxnMinimum:     10,
		TxnFailureRate: 0.20,
		// A terminal failing one payment in ten (a weak link's timeouts
		// are 6%) needs no crew; 1% keeps it from being flagged by a bad
		// streak (health/doc.go has the false-flag rates).
		TxnChanceRate: 0.10,
		TxnAlpha:      0.01,
		// PROTOCOL.md §2: one failed print can be a jammed slip; two in a
		// day is a printer that needs a crew.
		ReceiptFailures: 2,
		// PROTOCOL.md §2: below -105 dBm cellular links drop packets; over
		// 3 s round trips cashiers give up and retry.
		WeakSignalDBm: -105,
		WeakRTTMs:     3000,
		// A median of fewer than three heartbeats is one bad reading.
		WeakNetworkMinHeartbeats: 3,
		// PROTOCOL.md §2: under 15% a handheld dies mid-shift; three
		// heartbeats in a row rule out a reading taken while unplugged for a
		// moment. Above 60 °C batteries and thermal printers fail.
		LowBatteryPct:        15,
		LowBatteryHeartbeats: 3,
		HotTempC:             60,
		// PROTOCOL.md §2: 300 s off breaks certificate and host-side
		// timestamp checks long before a cashier notices.
		ClockSkew: 300 * time.Second,
		// Two, so that the first heartbeat after an outage, taken minutes
		// before it arrived, is never judged alone.
		ClockSkewHeartbeats: 2,
		// PROTOCOL.md §2 incident rule. Three terminals at least, or one
		// merchant with two small shops could look like an outage.
		IncidentWindow:       5 * time.Minute,
		IncidentShare:        0.20,
		IncidentMinMerchants: 3,
		IncidentMinTerminals: 3,
		// 200 transactions on a version make a rate of a few percent
		// measurable; three terminals keep one bad cashier from making a
		// firmware suspect; 0.001 keeps a fleet with dozens of versions and
		// models, tested every time someone looks, from crying wolf.
		SuspectMinTxns:      200,
		SuspectMinTerminals: 3,
		SuspectAlpha:        0.001,
		// A terminal is compared with 10 transactions or more; the
		// version's typical (median) terminal must fail at least twice as
		// often as the rest's and 0.2 percentage points more.
		SuspectMinTerminalVolume: 10,
		SuspectMinRatio:          2,
		SuspectMinDiff:           0.002,
		// Offline must be noticed within seconds of the deadline, and a tick
		// over 100,000 terminals costs about 40 ms of one core
		// (BenchmarkTick), under 1% every 5 s.
		TickInterval: 5 * time.Second,
		// A connected terminal that sent five messages in an hour and had
		// every one refused is broken (firmware, configuration, or card
		// data where none may go), not "healthy"; one bad message among good
		// ones is a bug to count on the security page, not a flag.
		BadDataWindow:      time.Hour,
		BadDataMinRejected: 5,
		BadDataShare:       1,
		// A healthy reader falls back on about 1 chip card in 200 (old or
		// dirty cards); 5 of the last 50, and 10%, is a reader that fails
		// a card in ten (health/doc.go).
		FallbackWindow:  50,
		FallbackMinimum: 5,
		FallbackRate:    0.10,
		// GPS in a shop is off by tens of metres, a cell location by
		// hundreds; a kilometre is another street. Two heartbeats in a row
		// rule out one bad fix.
		MovedDistanceM:  1000,
		MovedHeartbeats: 2,
		// Three weeks: every hour of the week seen three times. Two usual
		// hours at least, and a chance of 1 in 10,000, so that a shop that
		// sold in those hours every one of six weeks is silent after four
		// hours without a sale, and a quiet one (a sale in two usual hours
		// of three) after about nine; a terminal with a dozen usual hours a
		// day is then flagged by chance on about 1 day in 1,000 (doc.go).
		SilentMinHistory: 21 * 24 * time.Hour,
		SilentMinHours:   2,
		SilentUsualShare: 0.5,
		SilentAlpha:      0.0001,
		// Two weeks: a part ordered today reaches the crew's next planned
		// visit. Samples twice a day over eight days (16 kept) see a
		// weekend; three days of them at least before any forecast.
		WearHorizon:     14 * 24 * time.Hour,
		WearSampleEvery: 12 * time.Hour,
		WearMinSpan:     3 * 24 * time.Hour,
		// Vendors rate thermal printer heads for 50 km of paper, about
		// 150,000 receipts; chip card connectors for 200,000 insertions
		// (the cheaper ones; good ones 500,000); lithium-ion batteries for
		// 500 cycles, after which they hold about 60-80% of their charge,
		// and a handheld at 60% no longer lasts a shift.
		WearPrinterPrints:    150_000,
		WearChipInsertions:   200_000,
		WearBatteryCycles:    500,
		WearBatteryHealthPct: 60,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setF := func(v *float64, def float64) {
		if *v <= 0 {
			*v = def
		}
	}
	if c.OfflineAfter <= 0 && c.HeartbeatInterval > 0 {
		c.OfflineAfter = 3 * c.HeartbeatInterval
	}
	setDur(&c.HeartbeatInterval, d.HeartbeatInterval)
	setDur(&c.OfflineAfter, d.OfflineAfter)
	setDur(&c.SellingWindow, d.SellingWindow)
	setDur(&c.EvidenceWindow, d.EvidenceWindow)
	setInt(&c.TxnWindow, d.TxnWindow)
	if c.TxnWindow > TxnRing {
		c.TxnWindow = TxnRing
	}
	setInt(&c.TxnMinimum, d.TxnMinimum)
	setF(&c.TxnFailureRate, d.TxnFailureRate)
	setF(&c.TxnChanceRate, d.TxnChanceRate)
	setF(&c.TxnAlpha, d.TxnAlpha)
	c.txnCritical = make([]int, c.TxnWindow+1)
	for n := range c.txnCritical {
		c.txnCritical[n] = binomialCritical(n, c.TxnChanceRate, c.TxnAlpha)
	}
	setInt(&c.ReceiptFailures, d.ReceiptFailures)
	if c.ReceiptFailures > EvidenceRing {
		c.ReceiptFailures = EvidenceRing
	}
	if c.WeakSignalDBm == 0 {
		c.WeakSignalDBm = d.WeakSignalDBm
	}
	setInt(&c.WeakRTTMs, d.WeakRTTMs)
	setInt(&c.WeakNetworkMinHeartbeats, d.WeakNetworkMinHeartbeats)
	setInt(&c.LowBatteryPct, d.LowBatteryPct)
	setInt(&c.LowBatteryHeartbeats, d.LowBatteryHeartbeats)
	setF(&c.HotTempC, d.HotTempC)
	setDur(&c.ClockSkew, d.ClockSkew)
	setInt(&c.ClockSkewHeartbeats, d.ClockSkewHeartbeats)
	c.ClockSkewHeartbeats = min(c.ClockSkewHeartbeats, 3)
	setDur(&c.IncidentWindow, d.IncidentWindow)
	setF(&c.IncidentShare, d.IncidentShare)
	setInt(&c.IncidentMinMerchants, d.IncidentMinMerchants)
	setInt(&c.IncidentMinTerminals, d.IncidentMinTerminals)
	setInt(&c.SuspectMinTxns, d.SuspectMinTxns)
	setInt(&c.SuspectMinTerminals, d.SuspectMinTerminals)
	setF(&c.SuspectAlpha, d.SuspectAlpha)
	if c.SuspectMinTerminalVolume <= 0 {
		c.SuspectMinTerminalVolume = d.SuspectMinTerminalVolume
	}
	setF(&c.SuspectMinRatio, d.SuspectMinRatio)
	setF(&c.SuspectMinDiff, d.SuspectMinDiff)
	setDur(&c.TickInterval, d.TickInterval)
	setDur(&c.BadDataWindow, d.BadDataWindow)
	setInt(&c.BadDataMinRejected, d.BadDataMinRejected)
	setF(&c.BadDataShare, d.BadDataShare)
	c.BadDataShare = min(c.BadDataShare, 1)
	setInt(&c.FallbackWindow, d.FallbackWindow)
	c.FallbackWindow = min(c.FallbackWindow, FallbackRing)
	setInt(&c.FallbackMinimum, d.FallbackMinimum)
	setF(&c.FallbackRate, d.FallbackRate)
	setF(&c.MovedDistanceM, d.MovedDistanceM)
	setInt(&c.MovedHeartbeats, d.MovedHeartbeats)
	setDur(&c.SilentMinHistory, d.SilentMinHistory)
	setInt(&c.SilentMinHours, d.SilentMinHours)
	setF(&c.SilentUsualShare, d.SilentUsualShare)
	setF(&c.SilentAlpha, d.SilentAlpha)
	setDur(&c.WearHorizon, d.WearHorizon)
	setDur(&c.WearSampleEvery, d.WearSampleEvery)
	setDur(&c.WearMinSpan, d.WearMinSpan)
	set64 := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	set64(&c.WearPrinterPrints, d.WearPrinterPrints)
	set64(&c.WearChipInsertions, d.WearChipInsertions)
	set64(&c.WearBatteryCycles, d.WearBatteryCycles)
	setInt(&c.WearBatteryHealthPct, d.WearBatteryHealthPct)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Merchant == nil && c.Site != nil:
		site := c.Site
		c.Merchant = func(r posfleet.TerminalRef) string {
			s, _ := site(r)
			return s.Merchant
		}
	}
	return c
}
