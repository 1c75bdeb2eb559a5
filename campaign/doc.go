// Package campaign runs firmware campaigns: staged rollouts of one firmware
// version to a chosen set of terminals of one model, gated on payment KPIs.
// A campaign updates a canary of a few terminals first, then growing shares
// of the selection, each wave followed by a soak. After each soak a gate
// compares the terminals just updated with the terminals of the same model
// not yet updated, over the same hours: if the updated ones decline more
// sales, fail more payments, charge other amounts than entered, print fewer
// receipts, crash, fail to install or go silent, the campaign pauses before
// the next wave, raises an alarm and notifies with the evidence, and an
// operator resumes it, aborts it or rolls the updated terminals back. A
// campaign whose gates all pass finishes by itself. Updates go out at most
// a few at once and only inside each terminal's maintenance window.
//
// # Gates: what is compared
//
// Judge takes one TerminalKPI per terminal of each cohort: the difference
// of its cumulative counters (posfleet.KPICounts) between the start and
// the end of the soak, the hours it was observed, and whether it is
// offline at the end (and, for the updated cohort, whether its install
// failed). The updated cohort is the wave's terminals (those whose install
// failed count for update_failures and offline only: they still run their
// old firmware); the baseline is the terminals of the same model not yet
// updated, over the same hours, so that the time of day, the day of the
// week and the acquirer's outages are the same on both sides. Each KPI is a rate, events over exposure, summed
// over the cohort:
//
//	declines          declined or failed sales / sales
//	device_failures   failures the terminal or its network caused / transactions
//	amount_mismatch   approved sales charged another amount / approved sales
//	receipt_failures  receipts that failed / approved transactions
//	crash_boots       crash and watchdog boots / terminal-hours
//	update_failures   failed installs / updated terminals (no baseline)
//	offline           terminals offline or silent at the end / terminals
//
// # Minimum effect
//
// A gate does not ask "is the updated cohort worse at all?": with enough
// payments any firmware is worse at something by a hair, and terminals
// differ so much between merchants that a canary is never exactly like the
// fleet. It asks "is the updated cohort worse by at least the minimum
// effect?": above both Ratio times the baseline's rate and the baseline's
// rate plus Diff. The test is made against that boundary, not against
// equality, so a firmware worse by less than the minimum effect passes however
// many payments the canary makes. The defaults (DefaultGateRules):
//
//	KPI               Ratio  Diff      a typical baseline, and its boundary
//	declines          1.25   1 point   5.5% → 6.9%
//	device_failures   1.5    0.5 point 1.3% → 2.0%
//	amount_mismatch   2      0.5 point 0 → 0.5% of approved sales
//	receipt_failures  2      1 point   0.5% → 1.5%
//	crash_boots       2      0.02/h    one more crash per terminal every 50 h
//	update_failures   –      –         at most 5% of installs fail (MaxUpdateFailureRate)
//	offline           2      10 points 1.5% → 11.5% of terminals
//
// # Minimum sample
//
// A KPI is judged only when the updated cohort has at least 3 terminals
// on the new firmware (MinUpdatedTerminals; a canary should have 5 or
// more, so that a failed install or two still leaves it judged) and the
// baseline at least 20 (MinBaselineTerminals), and each has the KPI's
// minimum exposure: 20 sales or transactions or approved transactions on
// the updated side for declines, device and receipt failures (200 on the
// baseline's), 5 approved sales for amount mismatches (100), 2
// terminal-hours for crash boots (20), 5 terminals for offline (20), 3
// installs for update failures. Below that the metric has Enough false: it
// neither passes nor fails the gate, and the page says there was too
// little to judge. A KPI also needs at least MinEvents events in the
// updated cohort to count as worse (3; 2 offline terminals): one crash in
// a canary is not a firmware.
//
// # The test, and why terminals are not pooled
//
// For each KPI the question is one-sided: is the updated cohort's total of
// events more than the boundary rate makes likely? Healthy terminals do
// not share one rate: one merchant's customers are declined 3% of the
// time, another's 8%; a terminal on a bad line fails 6% of its payments
// where its neighbours fail 0.5%. A test that pools the cohort's
// transactions as if each had the same chance takes a canary that happens
// to hold two weak links for a bad firmware. So the gate measures that
// spread on the baseline cohort (the variance between its terminals' own
// rates, beyond what chance explains: a method-of-moments estimate over
// hundreds of terminals) and widens what the updated cohort may show by
// what drawing its terminals from such a fleet gives: its total is
// compared with a beta-binomial (shares) or negative binomial (crash
// boots) of the boundary's mean and of that wider variance. The variance
// grows with the size of each terminal's share of the cohort, so one busy
// weak link in a canary of five counts for what it is. At the boundary the
// terminals' rates are taken as Ratio times the baseline's, their spread
// too.
//
// The baseline's rate is itself measured. When the baseline has at least
// 50 events of the KPI its uncertainty is added to the variance (on
// hundreds of terminals it adds little); with fewer (crash boots, amount
// mismatches, offline terminals: rare events) its rate is taken at its
// upper confidence bound and the bound's error level is added to the
// p-value (Berger and Boos), which stays valid when the baseline saw no
// event at all. Offline terminals are one trial each, so they have no
// spread: an exact binomial test against the boundary (Fisher's exact
// test would ask whether the shares are equal, not whether the updated
// one is above the boundary). update_failures has no baseline: the failed
// installs are tested with an exact binomial test against the 5% maximum.
// The spread and the baseline's rates are measured anew at every gate, on
// that gate's hours: nothing is configured per fleet.
//
// Broken units are left out of the baseline first. The baseline is every
// terminal of the model not yet updated, and it may hold units that are
// broken on their own: a terminal of a known fee-bug version charging
// every sale a fee, a reader failing every chip payment, a terminal
// crashing every hour. One of them among hundreds would widen the spread
// so much that a canary charging every sale a fee passed (the simulator
// showed it: 108 of 108 canary sales mismatched against 38 of 856, one
// unit's, and the gate passed). A baseline terminal whose own count has a
// chance below 10⁻⁸/n under the rate of the rest of the baseline (n
// terminals, at least MinEvents events) is left out and counted in the
// metric's BaselineLeftOut; the page says how many. The level is far
// beyond a healthy weak link (6% failures against 1%), so the spread of
// healthy fleets, and the false-pause rate below, are unchanged.
//
// Tails are summed exactly, term by term from the first in log space, so
// they are right for counts from zero to millions (TestTails checks them
// against direct sums); a very wide distribution is summed in doubling
// steps after 20,000 terms, which errs toward a larger p-value by less
// than a part in a thousand. Only the standard library is used: the four
// distributions need math.Lgamma and a loop, and no statistics library
// would spare the beta-binomial and negative binomial tails written here.
//
// # Several KPIs at once
//
// Seven KPIs tested at 1% each would pause a healthy campaign on about 7%
// of its gates. The gate controls the chance of any false pause, not the
// share of false findings (the suspect-firmware report's
// Benjamini–Hochberg), because a gate is one decision: pause or not. It
// uses Holm's correction over the KPIs it could judge: it fails exactly
// when Bonferroni's would (the smallest p-value below Alpha divided by
// the number of KPIs judged), and Holm then marks as worse every other KPI
// that is, so the evidence names them all. GateMetric.PValue is Holm's
// adjusted p-value.
//
// # False pauses
//
// Designed: a healthy gate pauses with chance at most Alpha = 1%
// (GateRules.Alpha), whatever the canary, the baseline and the soak.
//
// Measured over seeded simulated waves (gatesim_test.go: terminals selling
// 2 to 30 times an hour, each with its own decline rate between 3% and 8%,
// terminal failures between 0.2% and 2% and one terminal in 20 a weak link
// at 6%, receipt failures about 0.5%, a crash every 500 terminal-days,
// 1–2% offline, 1% failed installs, one terminal in ten observed for only
// part of the soak):
//
//   - 1,000 healthy waves of random size (canary 5–50, baseline 100–3,000,
//     soak 1–6 h): no pause (TestGateFalsePauseRate; with none in 1,000,
//     the true rate is below 0.3% with 95% confidence). The same at six
//     corners (largest canary against the smallest baseline, a canary of
//     3 busy terminals, the longest soak; 1,000 waves each): no pause
//     (TestGateFalsePauseRateCorners). The minimum effects are wider than
//     what a healthy canary drifts by chance, so healthy pauses are rarer
//     than the designed rate; Alpha is spent at the boundary.
//   - The hard case, a firmware exactly at the minimum effect on declines
//     and terminal failures (every terminal's rate 1.25 and 1.5 times its
//     own, weak links included), so that nothing but the statistics holds
//     the pause back: 0.1% to 0.6% of waves pause, under the 1% designed
//     (TestGateAtBoundary). Judged as pooled counts, the same waves pause
//     on 1.1% to 6.3%: ignoring the spread between terminals breaks the
//     designed rate several times over. The negative binomial matches the
//     spread's variance, not its skew, so device_failures at the boundary
//     on a 2-hour soak pauses on 0.5% of waves where a test of exactly
//     Alpha/7 would on 0.14%; the other KPIs' margins keep the gate inside
//     its 1%.
//   - A firmware a little under the minimum effect (declines 1.2 times,
//     terminal failures 1.4 times) on the largest canary (50 terminals,
//     6 hours, 15–30 sales an hour): no pause in 1,000
//     (TestGatePassesBelowEffect).
//
// # Power at canary sizes
//
// Measured the same way: the share of waves paused, over 1,000 waves with
// a baseline of 100 to 3,000 for the first three lines (TestGateFindsFeeBug,
// TestGateFindsCrashingFirmware), over 200 waves with a baseline of 1,000
// and 2–30 sales an hour for the table (TestGatePower):
//
//	fee bug (every approved sale +0.6%), 5 terminals, 1 h, 2–6 sales/h   100%
//	fee bug, 10 terminals, 1 h, 2–6 sales/h                              100%
//	crashes 2/h per terminal, 5 terminals, 1 h        99.4%; 10 terminals 100%
//	                          canary  5            10             50
//	                          1 h  2 h  6 h   1 h  2 h  6 h   1 h  2 h  6 h
//	crashes 1/h                82%  99% 100%   98% 100% 100%  100% 100% 100%
//	crashes 0.2/h               6%  12%  72%   13%  40%  94%   84% 100% 100%
//	declines ×2 (5.5% → 11%)    2%   4%  22%    6%  14%  52%   60%  85% 100%
//	terminal failures ×3        3%   6%   6%    4%  10%  18%   25%  50%  80%
//
// A fee bug or a crashing firmware is found by any canary within an hour.
// A firmware that doubles declines needs a canary of 50 over a couple of
// hours (10 terminals over six hours find it half the time); a rise in terminal failures
// hides in the weak links' noise unless it is large and the canary is. A
// larger later wave, judged by its own gate, sees what the canary could
// not: the gates are cumulative protection, the canary is the first.
//
// # What a gate cannot see
//
//   - Rare failures in a small canary: a firmware that crashes a terminal
//     once a day shows 0 or 1 crash in 5 terminal-hours. Longer soaks and
//     larger waves see it; the canary does not.
//   - A canary that is not a sample of the fleet: the spread is estimated
//     for terminals drawn at random. A canary of one merchant's terminals
//     carries that merchant's decline rate; if it is among the fleet's
//     worst, its gate may pause a good firmware. Spread canaries across
//     merchants and regions.
//   - A soak without trade: a soak at night sees no sales, so the payment
//     KPIs are not judged (Enough false). The runner then soaks again, a
//     soak's length at a time, up to four soaks in all (the timeline says
//     "soak extended"); only then does the gate pass on what it judged
//     (crash boots, installs, offline terminals). Let the soak cover
//     trading hours.
//   - A wave that leaves no terminal of the model to compare with (the
//     last wave of a campaign to the whole model) has no baseline: only
//     update_failures is judged.
//   - Effects below the minimum effect, by design, and effects that need
//     more than the soak's hours to appear (a leak that crashes after two
//     days).
//
// A gate costs about 0.3 ms with a baseline of 1,000 terminals and a
// canary of 50 (BenchmarkJudge), so a runner may judge every campaign's
// gate on time without caching anything.
package campaign
