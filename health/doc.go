// Package health is posfleet's health engine: from every accepted uplink
// message to the flags, incidents, firmware findings and work list of
// PROTOCOL.md §2.
//
// # Feeding it
//
// Engine.Observe takes every durable, non-duplicate message (it is a
// collector.Observer in collector.Options.Observers). It takes one shard lock, does a bounded amount of work
// and allocates nothing on the steady path, so it can run on the collector's
// goroutines. Engine.Run (or Tick, in tests) checks what changes with time
// alone: offline deadlines, evidence leaving the 24-hour windows, incidents.
// The message's Received time (the server's clock) is "now" for everything a
// message changes; Config.Now is the clock of ticks and queries.
// Engine.ObserveRejection takes every message the collector refused (a
// collector.RejectionObserver): only its terminal, time and reason. It
// counts as the terminal heard, and feeds bad_data (flag_data.go).
//
// # Memory
//
// A terminal's state is fixed in size: the last 50 transaction outcomes
// packed into 8 bytes each, the last 10 heartbeats, and for each 24-hour rule
// the last EvidenceRing events (allocated only when such an event happens).
// A "N in 24 h" rule is exact as long as N ≤ EvidenceRing, which Config
// enforces. fallback_rate keeps the last 50 chip payments in about 220
// bytes (times to the second, one bit each for a fallback), moved the last
// location and the provisioned site. silent's hour-of-week baseline is
// about 200 bytes (a byte per hour of the week, a bit per week), from the
// first sale; wear_due's samples about 140 bytes per wear counter a
// terminal sends. BenchmarkMemoryPerTerminal measures the whole at about
// 1.7 KiB (sales baseline included), BenchmarkMemoryPerTerminalAllSignals
// at about 2.4 KiB with every optional signal (wear counters, location,
// host).
//
// # Flags and their clearing rules
//
// Every flag is recomputed from the state, so it clears as soon as its
// evidence is gone: a heartbeat or any message ends offline; a new inventory
// ends the firmware flags; the 24-hour flags clear when their last event is
// 24 h old; txn_failures when failures fall below the rate in the last 50;
// hardware_fault when the fault is cleared; weak_network, battery and
// clock_skew with the next live heartbeats that are fine; bad_data with an
// accepted message or when its rejections leave the hour; fallback_rate
// when the fallbacks leave the last 50 chip payments; moved after two
// heartbeats at the site; silent with a sale, at the end of the usual
// hours, or offline; wear_due when a counter starts again (a new part) or
// the forecast leaves the horizon. tamper is the exception:
// a terminal that reports tamper and later "clears" it is not trusted again
// until a crew has seen it, so it clears only with MarkServiced.
// MarkServiced clears every maintenance flag by ignoring, for those flags,
// all evidence received before the visit. What the terminal reports after
// the visit is new evidence: a fault raised again, a heartbeat that still
// says the paper is out, the next ten transactions.
//
// clock_skew compares a heartbeat's ts with the time it was received, but a
// terminal back from an outage delivers the heartbeats it stored minutes
// ago. So only live heartbeats count, whatever the terminal's heartbeat
// interval: a heartbeat is live when the time between its arrival and the
// previous heartbeat's arrival matches the time between their timestamps
// (within 5 s and within half the timestamps' gap), that is when it was
// delivered with the same delay as the one before. The terminal's clock
// offset cancels out of that comparison, so a wrong clock stays judged. A
// replayed backlog fails it: it arrives in a burst after the reconnect, its
// arrivals milliseconds apart and its timestamps an interval apart, and the
// first message after a reconnect arrives an outage after the previous one
// with a timestamp an interval after it. The first heartbeat ever heard
// counts as live. Delivery delay only ever makes ts look older, so the
// engine takes the least delayed of the last three live heartbeats as the
// clock's offset, and wants at least two of them. Those three are kept
// apart from the heartbeat ring, so that a backlog of any length, which is
// not live, neither raises the flag nor clears it. Transactions
// (offline:true or not) and other channels are not used: only heartbeats
// are sent on a schedule. A clock corrected by a jump is judged again from
// the heartbeat after the jump.
//
// # Terminals that never connected
//
// The engine keeps state only for terminals it has heard from, but a
// provisioned terminal that never connected is one a vendor has to chase.
// Provision gives the engine the registry's terminals (the server does at
// start and after each import through the API); until its first message a
// terminal is counted in FleetSummary.NeverConnected (and in Total, not in
// Online or Offline) and listed by Rows with NeverConnected set. It has no
// flags: no rule has evidence yet.
//
// # Causes and incidents
//
// posfleet.ClassifyTransaction blames each failure on the card, the host,
// the network, the terminal or the operator from the transaction alone; a
// timeout is the network's. A fleet incident is open while host-side failures
// (91, 96, 68, timeouts) hit at least 20% of the tenant's terminals that
// transacted in the last 5 minutes, across at least 3 merchants. Each
// transaction outcome keeps a "host-side" bit, and txn_failures skips the
// host-side failures that fall inside an incident (from its first failure to
// its last), including those that arrived before the incident was detected.
// A single terminal timing out while the others are fine opens no incident,
// so its timeouts count against it.
//
// # txn_failures and chance
//
// PROTOCOL §2 raises txn_failures when 20% of the last 50 transactions (at
// least 10) failed on the terminal or its network. On few transactions that
// share is mostly chance: 2 failures among a terminal's first 10 flagged one
// healthy terminal in about 370 a day (0.7% of payments failing by chance)
// and a weak link with 6% timeouts on 15% of its days. So the failures must
// also be too many for a terminal that fails one payment in ten
// (TxnChanceRate): a one-sided exact binomial test at 1% (TxnAlpha), whose
// critical count per window size is computed once (Config.txnCritical), so
// the rule costs a comparison. 10 transactions then need 5 failures, 20 need
// 7, 50 need 11 (and the 20% share). Measured over 20,000 simulated
// terminal-days of 300 transactions judged after every one
// (TestTxnFailuresFalseFlagRate): a healthy terminal is flagged on fewer
// than 1 day in 10,000 (none seen), a weak link on 0.7% of its days (under
// 1%), and a failing chip reader (a third of its payments) within 25
// transactions 81% of the time and within 50, 98%. The evidence says how
// likely a terminal at the chance rate was to fail as often (chance).
//
// # fallback_rate and chance
//
// fallback_rate (flag_signals.go, a compatible extension: README, "PROTOCOL
// extensions") reads the transactions' entry: of a terminal's last 50 chip
// payments (entry chip or fallback, FallbackWindow), at least 5 fell back
// to the magnetic stripe (FallbackMinimum) and at least 10% (FallbackRate;
// with 50 chip payments that is the same 5, the share matters while fewer
// are known). Contactless, QR, swiped and keyed payments do not count:
// they never touch the chip reader. A healthy reader falls back when a
// card's chip is dirty or damaged, about 1 chip payment in 200 (the
// simulator's baseline: 1% of chip reads fail, half of those are saved by
// the stripe). Five of fifty is then a 1-in-180,000 window; judged after
// every payment of a terminal taking 60 chip payments a day, it flags a
// healthy reader on about 3 days in 100,000, one at 1% fallbacks (a
// merchant whose customers carry worn cards) on 0.08% of its days, at 2% on
// 1.5% (simulated, 100,000 terminal-days). A worn reader that makes 20% of
// chip payments fall back is flagged within 50 chip payments 98% of the
// time, at 30% within 25, 91%. Skimming shows the same way (an overlay in
// the slot breaks chip contact, and the stripe is what a skimmer reads), so
// the crew checks the slot before replacing the reader. It is a
// maintenance flag: it clears when the fallbacks leave the last 50, or with
// a crew visit (only chip payments after it count).
//
// # moved
//
// moved compares the optional lat/lon of hb (README, "PROTOCOL extensions")
// with the terminal's provisioned site (Config.Site, asked again every 10
// minutes at most, and only for terminals that report a location). A shop's
// GPS fix is off by tens of metres, a cell-derived location by hundreds, so
// the default is 1 km (MovedDistanceM), and two heartbeats in a row must
// be away (MovedHeartbeats), so that one bad fix raises nothing; as many in
// a row at the site clear it (heartbeats without a location change
// nothing). A terminal without a provisioned location (no lat/lon in the
// registry) or that reports none never raises it. Where terminals report
// cell locations in the countryside, raise MovedDistanceM.
//
// # silent
//
// silent (flag_silent.go, hours.go; README, "PROTOCOL extensions") learns
// each terminal's hour-of-week baseline from its own sales: for each of the
// 168 hours of the week, a bit per week (the last eight kept, six judged)
// telling whether it sold in that hour. An hour is usual when it sold in it
// in at least half the weeks that saw it. (k+½)/(n+1), k of n weeks, is the
// chance it sells in the hour: never 1, so that a habit of six weeks still
// leaves room for chance. Walking back over the hours in which the terminal
// was heard since its last sale, silent multiplies 1 minus that chance over
// the usual ones and is raised when the product is at most SilentAlpha
// (1 in 10,000) over at least SilentMinHours (2) usual hours, the terminal
// online and the current hour usual. A shop that sold in those hours in
// each of six weeks is silent after four hours without a sale, one that
// sold in five of six after six, a quiet one (two weeks of three) after
// about nine. Where the baseline's chance is right, a run of silent hours
// that long happens by chance about once per 10,000 starting hours: a
// terminal with a dozen usual hours a day is flagged by chance on about 1
// day in 1,000 (fewer for busy shops, whose chance the estimate
// overstates). A sale ends it; so does the first hour that is not usual
// (closing time), and going offline (offline says it then).
//
// # wear_due
//
// wear_due (flag_wear.go) reads the optional wear counters of hb. Each
// counter is sampled at most every WearSampleEvery (12 h; 16 samples, 8
// days) and its trend is a least-squares line through the samples since the
// last crew visit and the latest reading, in units per day. With three
// samples spanning WearMinSpan (3 days), a part whose counter reaches its
// rated life within WearHorizon (14 days) at that rate is due; a part past
// its rated life is due at once. A counter that goes down (battery health
// that rises by 10 points) after a restart is a new part and starts again;
// within one boot (uptime_s growing) it is a glitch, ignored.
//
// # Incidents per host
//
// A terminal that names its host in txn (README, "PROTOCOL extensions") is
// counted with the terminals of that host: Tick counts host-side failures
// per tenant and host, and an incident is one host failing for IncidentShare
// of its transacting terminals across IncidentMinMerchants merchants. It
// explains the failures of its own host's terminals only, so a terminal of
// another host with its own timeouts is still judged. Terminals that name no
// host are counted tenant-wide, as PROTOCOL.md §2 says. Each incident keeps
// a timeline of the failures counted per minute (MaxIncidentTimeline).
//
// # Suspect firmware
//
// For each model, each firmware version's rate of amount mismatches (per
// approved sale) and of terminal-caused failures (per transaction) is
// compared with the rest of the model's fleet, terminal by terminal: each
// terminal with at least 10 transactions since it got its firmware is one
// observation, its own rate. Terminals differ among themselves far more than
// one shared rate allows (a worn reader, a shop on a bad line, a careless
// cashier), so a test on pooled transactions takes a chance cluster of such
// terminals on one version for a firmware bug: it listed the fleet's target
// version as suspect when the weak-link terminals happened to run it. A
// version is suspect only when all of these hold:
//
//   - volume: at least 200 transactions on the version and events on at
//     least 3 of its terminals, each compared terminal with 10 transactions
//     or more (a few bad units are not a version);
//   - effect: the version's typical (median) terminal fails at least twice as
//     often as the rest's typical terminal and 0.2 percentage points more;
//   - evidence: a one-sided Mann–Whitney rank test of the version's terminal
//     rates against the rest's (normal approximation with the tie and
//     continuity corrections; for few terminals the true rank-sum
//     distribution has lighter tails, so the approximation errs toward "not
//     suspect") is significant after the Benjamini–Hochberg correction for
//     every model, version and metric tested at once, at a false discovery
//     rate of 0.001. A rank test is valid however unlike the terminals are:
//     if the version does not matter, every assignment of terminals to
//     versions is as likely as any other.
//
// The false-suspect rate: over 1,000 seeded simulated fleets of 300
// terminals (three models, four versions each, chance failures of 0.3%, one
// terminal in 20 a bad unit at 6%, one in 30 a careless cashier) with no bad
// version, at most 1 fleet in 100 lists any version (measured: 3 in 1,000),
// and the target version never (TestSuspectFirmwareFalseRate). A version
// adding a fee to every sale on 5 of the 300 terminals is found in every
// one of 1,000 fleets (TestSuspectFirmwareFindsFeeBug). A finding carries
// the words for the page: how many of the version's terminals were compared,
// their median rate against the rest's, and the share of pairs in which the
// version's terminal is the worse one.
//
// # Thresholds per tenant and model
//
// Config holds the defaults of PROTOCOL.md §2; a Thresholds document
// overrides any threshold of ThresholdTable for a tenant's terminals, or
// for those of one of its models (model over tenant over default).
// Incidents and suspect firmware judge a tenant's fleet as a whole, so
// their thresholds are the tenant's (a model may not override them), and
// suspect firmware over every tenant at once uses the defaults.
// SetThresholds validates a document (every refusal names its field and
// range), compiles it into an immutable table of resolved Configs and
// swaps it in atomically, then judges every terminal again; the message
// path looks a terminal's thresholds up by tenant and model once per
// message, without allocating (about 2 ns without overrides, 15 ns with:
// BenchmarkThresholdLookup). Rules that count at observation time
// (battery's streak, moved's runs) count under the thresholds of the
// moment. Under an override a flag's evidence names every threshold of
// its rule with its value and source; without one it reads as it always
// did.
//
// # Restarts
//
// Snapshot and Restore write and read the whole state with encoding/gob.
// The server snapshots periodically and at shutdown and restores at start:
// rebuilding the same flags from InfluxDB would mean replaying 24 hours of
// every terminal's messages, while a snapshot of 100,000 terminals restores
// in under 1.5 s on two cores (BenchmarkRestore). Messages that arrive between the last
// snapshot and a crash are lost to the engine, not to the store; the next
// messages of each terminal correct the flags that depend on the latest
// reading, and the counts of a window may lag by those few messages. The
// server heard nothing while it was down, so after Restore a terminal that
// was online gets a full OfflineAfter from the restore before it is offline.
//
// # Change feed
//
// For a database that shows the engine's view (package healthview), the
// engine records what changed once TrackChanges is on: per shard, the
// terminals whose view changed (a flag raised or cleared, online or
// offline, model or firmware, open faults, a crew visit, a new terminal)
// and every flag transition (raised or cleared, when, by the rules or by
// the user who marked the terminal serviced). Drain takes both; a flag's
// evidence is built there, off the message path, which stays without
// allocation once the buffers have grown. A restored snapshot or a full
// transition buffer makes Drain ask for a full resync.
package health
