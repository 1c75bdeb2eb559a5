package health_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

const testPolicy = `
models:
  A920:
    target: 2.5.1
    minimum: 2.3.0
    blocked: [2.4.0]
    url: https://updates.example.com/a920-2.5.1.bin
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
`

// bubble runs f with a fresh engine whose Run loop ticks on the bubble's fake clock.
func bubble(t *testing.T, f func(t *testing.T, e *health.Engine)) {
	t.Helper()
	bubbleWith(t, health.Config{}, f)
}

// bubbleWith is bubble with a configuration; its clock is always the bubble's.
func bubbleWith(t *testing.T, cfg health.Config, f func(t *testing.T, e *health.Engine)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		cfg.Now = time.Now
		e := health.New(cfg)
		if err := e.SetPolicy([]byte(testPolicy)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = e.Run(ctx)
		}()
		f(t, e)
		cancel()
		<-done
	})
}

func hbSignal(dbm int) func(*posfleet.Heartbeat) {
	return func(h *posfleet.Heartbeat) { h.SignalDBm = ptr(dbm) }
}

func hbRTT(ms int) func(*posfleet.Heartbeat) {
	return func(h *posfleet.Heartbeat) { h.HostRTTMs = ptr(ms) }
}

func hbBattery(pct int, charging bool) func(*posfleet.Heartbeat) {
	return func(h *posfleet.Heartbeat) { h.BatteryPct, h.Charging = ptr(pct), ptr(charging) }
}

func hbSkew(d time.Duration) func(*posfleet.Heartbeat) {
	return func(h *posfleet.Heartbeat) { h.TS = h.TS.Add(d) }
}

// TestFlags checks every flag of PROTOCOL.md §2 three ways: the evidence
// raises it, evidence just below the threshold does not, and it clears when
// the evidence goes.
func TestFlags(t *testing.T) {
	for _, tt := range flagCases() {
		t.Run(tt.name, func(t *testing.T) {
			t.Run("raised", func(t *testing.T) {
				bubbleWith(t, tt.cfg, func(t *testing.T, e *health.Engine) {
					x := newTerm(e, "T1")
					tt.raise(x)
					synctest.Wait()
					f := x.flag(t, tt.flag)
					if f.Kind != tt.flag.Kind() || f.Since.IsZero() {
						t.Errorf("flag = %+v", f)
					}
					if f.Evidence == nil || f.Evidence.EvidenceFor() != tt.flag {
						t.Fatalf("evidence = %#v, want %s's", f.Evidence, tt.flag)
					}
					keys := evidenceKeys(t, f.Evidence)
					for _, k := range tt.evidence {
						if _, ok := keys[k]; !ok {
							t.Errorf("evidence has no %q: %v", k, keys)
						}
					}
				})
			})
			t.Run("not raised below the threshold", func(t *testing.T) {
				bubbleWith(t, tt.cfg, func(t *testing.T, e *health.Engine) {
					x := newTerm(e, "T1")
					tt.below(x)
					synctest.Wait()
					if x.has(tt.flag) {
						t.Errorf("flag %s raised: %+v", tt.flag, x.flag(t, tt.flag))
					}
				})
			})
			t.Run("cleared", func(t *testing.T) {
				bubbleWith(t, tt.cfg, func(t *testing.T, e *health.Engine) {
					x := newTerm(e, "T1")
					tt.raise(x)
					synctest.Wait()
					if !x.has(tt.flag) {
						t.Fatalf("flag %s not raised", tt.flag)
					}
					tt.clear(x)
					synctest.Wait()
					if x.has(tt.flag) {
						t.Errorf("flag %s not cleared: %+v", tt.flag, x.flag(t, tt.flag))
					}
				})
			})
		})
	}
}

// flagCase is one way of raising a flag: evidence that raises it, evidence
// just below the threshold, and what clears it.
type flagCase struct {
	name  string
	flag  posfleet.FlagName
	raise func(*term)
	below func(*term)
	clear func(*term)
	// evidence keys the raised flag must carry
	evidence []string
	// cfg configures the engine (the zero Config: the defaults).
	cfg health.Config
}

func flagCases() []flagCase {
	day := 24*time.Hour + time.Minute
	return append([]flagCase{
		{
			name:     "offline by silence",
			flag:     posfleet.FlagOffline,
			raise:    func(x *term) { x.hb(); time.Sleep(186 * time.Second) },
			below:    func(x *term) { x.hb(); time.Sleep(179 * time.Second) },
			clear:    func(x *term) { x.hb() },
			evidence: []string{"reason", "last_seen", "silent_s"},
		},
		{
			name:     "offline by last will",
			flag:     posfleet.FlagOffline,
			raise:    func(x *term) { x.hb(); x.status(false) },
			below:    func(x *term) { x.hb(); x.status(true) },
			clear:    func(x *term) { x.status(true) },
			evidence: []string{"reason", "last_seen", "was_selling"},
		},
		{
			name:     "firmware_outdated",
			flag:     posfleet.FlagFirmwareOutdated,
			raise:    func(x *term) { x.inv("A920", "2.4.1", nil) },
			below:    func(x *term) { x.inv("A920", "2.5.1", nil) },
			clear:    func(x *term) { x.inv("A920", "2.5.1", nil) },
			evidence: []string{"model", "firmware", "target", "minimum"},
		},
		{
			name:     "firmware_blocked",
			flag:     posfleet.FlagFirmwareBlocked,
			raise:    func(x *term) { x.inv("A920", "2.4.0", nil) },
			below:    func(x *term) { x.inv("A920", "2.4.1", nil) },
			clear:    func(x *term) { x.inv("A920", "2.5.1", nil) },
			evidence: []string{"firmware", "blocked", "url", "sha256"},
		},
		{
			name: "update_failed",
			flag: posfleet.FlagUpdateFailed,
			raise: func(x *term) {
				x.inv("A920", "2.4.1", &posfleet.UpdateAttempt{Target: "2.5.1", Status: posfleet.UpdateFailed, Error: "checksum mismatch"})
			},
			below: func(x *term) {
				x.inv("A920", "2.4.1", &posfleet.UpdateAttempt{Target: "2.5.1", Status: posfleet.UpdateDownloading})
			},
			clear: func(x *term) {
				x.inv("A920", "2.5.1", &posfleet.UpdateAttempt{Target: "2.5.1", Status: posfleet.UpdateInstalled})
			},
			evidence: []string{"target", "error"},
		},
		{
			name:  "amount_mismatch",
			flag:  posfleet.FlagAmountMismatch,
			raise: func(x *term) { x.txn(charged(1006)) },
			below: func(x *term) {
				x.txn()                                                     // equal amounts
				x.txn(charged(1006), result(posfleet.ResultDeclined, "51")) // not approved
				x.txn(refund(1000, 1000), charged(1000))                    // not a sale
			},
			clear:    func(x *term) { x.hb(); time.Sleep(day) },
			evidence: []string{"count", "transactions"},
		},
		{
			name: "txn_failures",
			flag: posfleet.FlagTxnFailures,
			raise: func(x *term) {
				x.txns(5)
				x.txns(3, terminalError)
				x.txns(2, timeout)
			},
			below: func(x *term) {
				// 2 of 10 is 20%, but a terminal that fails one payment in
				// ten shows as many by chance 26% of the time.
				z := newTerm(x.e, x.ref.Terminal+"-chance")
				z.txns(8)
				z.txn(terminalError)
				z.txn(timeout)
				if z.has(posfleet.FlagTxnFailures) {
					panic("txn_failures raised on 2 failures of 10")
				}
				// 10%, and the card, the bank and the cashier do not count.
				x.txns(4)
				x.txn(terminalError)
				x.txn(result(posfleet.ResultDeclined, "51"))
				x.txn(result(posfleet.ResultDeclined, "55"))
				x.txn(result(posfleet.ResultDeclined, "91"))
				x.txn(result(posfleet.ResultCancelled, ""))
				x.txn(result(posfleet.ResultDeclined, "13"))
				// and 9 transactions are too few to judge, even all failed
				y := newTerm(x.e, x.ref.Terminal+"-few")
				y.txns(9, terminalError)
				if y.has(posfleet.FlagTxnFailures) {
					panic("txn_failures raised on 9 transactions")
				}
			},
			clear:    func(x *term) { x.txns(10) },
			evidence: []string{"failed", "total", "rate", "by_cause", "latest", "chance_rate", "chance"},
		},
		{
			name:  "receipt_failures",
			flag:  posfleet.FlagReceiptFailures,
			raise: func(x *term) { x.txn(receipt(posfleet.ReceiptFailed)); x.txn(receipt(posfleet.ReceiptFailed)) },
			below: func(x *term) {
				x.txn(receipt(posfleet.ReceiptFailed))
				x.txn(receipt(posfleet.ReceiptFailed), result(posfleet.ResultDeclined, "51"))
				x.txn(receipt(posfleet.ReceiptSkipped))
			},
			clear:    func(x *term) { x.hb(); time.Sleep(day) },
			evidence: []string{"failed_receipts", "transactions"},
		},
		{
			name:     "receipt_failures by paper out",
			flag:     posfleet.FlagReceiptFailures,
			raise:    func(x *term) { x.hb(func(h *posfleet.Heartbeat) { h.Paper = posfleet.PaperOut }) },
			below:    func(x *term) { x.hb(func(h *posfleet.Heartbeat) { h.Paper = posfleet.PaperLow }) },
			clear:    func(x *term) { x.hb() },
			evidence: []string{"paper", "paper_out_at"},
		},
		{
			name:     "refund_anomaly invalid amount",
			flag:     posfleet.FlagRefundAnomaly,
			raise:    func(x *term) { x.txn(refund(500, 1000), result(posfleet.ResultDeclined, "13")) },
			below:    func(x *term) { x.txn(refund(1000, 1000)); x.txn(result(posfleet.ResultDeclined, "13")) },
			clear:    func(x *term) { x.hb(); time.Sleep(day) },
			evidence: []string{"count", "transactions"},
		},
		{
			name:     "refund_anomaly larger than the sale",
			flag:     posfleet.FlagRefundAnomaly,
			raise:    func(x *term) { x.txn(refund(1001, 1000)) },
			below:    func(x *term) { x.txn(refund(1000, 1000)) },
			clear:    func(x *term) { x.hb(); time.Sleep(day) },
			evidence: []string{"transactions"},
		},
		{
			name: "hardware_fault",
			flag: posfleet.FlagHardwareFault,
			raise: func(x *term) {
				x.fault(posfleet.ComponentPrinter, "PAPER_OUT", posfleet.SeverityWarning, posfleet.FaultRaised)
			},
			below: func(x *term) {
				x.fault(posfleet.ComponentPrinter, "PAPER_LOW", posfleet.SeverityInfo, posfleet.FaultRaised)
				x.fault(posfleet.ComponentICC, "READ_ERROR", posfleet.SeverityCritical, posfleet.FaultRaised)
				x.fault(posfleet.ComponentICC, "READ_ERROR", posfleet.SeverityCritical, posfleet.FaultCleared)
			},
			clear: func(x *term) {
				x.fault(posfleet.ComponentPrinter, "PAPER_OUT", posfleet.SeverityWarning, posfleet.FaultCleared)
			},
			evidence: []string{"faults"},
		},
		{
			name: "tamper",
			flag: posfleet.FlagTamper,
			raise: func(x *term) {
				x.fault(posfleet.ComponentKeypad, "TAMPER", posfleet.SeverityCritical, posfleet.FaultRaised)
			},
			below: func(x *term) {
				x.fault(posfleet.ComponentKeypad, "KEY_STUCK", posfleet.SeverityCritical, posfleet.FaultRaised)
			},
			clear: func(x *term) {
				// The terminal clearing its own alarm is not enough; a crew is.
				x.fault(posfleet.ComponentKeypad, "TAMPER", posfleet.SeverityCritical, posfleet.FaultCleared)
				if !x.has(posfleet.FlagTamper) {
					panic("tamper cleared by the terminal itself")
				}
				time.Sleep(time.Minute)
				if _, err := x.e.MarkServiced(x.ref, "keypad replaced, seals checked", "crew-7", time.Now()); err != nil {
					panic(err)
				}
			},
			evidence: []string{"events"},
		},
		{
			name: "tamper by secure element",
			flag: posfleet.FlagTamper,
			raise: func(x *term) {
				x.fault(posfleet.ComponentSecureElement, "KEY_ERASED", posfleet.SeverityInfo, posfleet.FaultRaised)
			},
			below: func(x *term) {
				x.fault(posfleet.ComponentStorage, "FULL", posfleet.SeverityWarning, posfleet.FaultRaised)
			},
			clear: func(x *term) {
				time.Sleep(time.Minute)
				_, _ = x.e.MarkServiced(x.ref, "", "crew-7", time.Now())
			},
			evidence: []string{"events"},
		},
		{
			name: "weak_network by signal",
			flag: posfleet.FlagWeakNetwork,
			raise: func(x *term) {
				for range 10 {
					x.hb(hbSignal(-106))
				}
			},
			below: func(x *term) {
				for range 10 {
					x.hb(hbSignal(-105))
				}
			},
			clear: func(x *term) {
				for range 10 {
					x.hb(hbSignal(-80))
				}
			},
			evidence: []string{"median_signal_dbm", "heartbeats"},
		},
		{
			name: "weak_network by host round trip",
			flag: posfleet.FlagWeakNetwork,
			raise: func(x *term) {
				for i := range 10 {
					x.hb(hbRTT(map[bool]int{true: 3001, false: 200}[i < 2]))
				}
			},
			below: func(x *term) {
				for i := range 10 {
					x.hb(hbRTT(map[bool]int{true: 9000, false: 3000}[i < 1]))
				}
			},
			clear: func(x *term) {
				for range 10 {
					x.hb(hbRTT(200))
				}
			},
			evidence: []string{"p90_host_rtt_ms"},
		},
		{
			name: "battery low",
			flag: posfleet.FlagBattery,
			raise: func(x *term) {
				for range 3 {
					x.hb(hbBattery(14, false))
				}
			},
			below: func(x *term) {
				x.hb(hbBattery(14, false))
				x.hb(hbBattery(14, false))
				x.hb(hbBattery(14, true))
				x.hb(hbBattery(15, false))
			},
			clear:    func(x *term) { x.hb(hbBattery(14, true)) },
			evidence: []string{"battery_pct", "low_heartbeats"},
		},
		{
			name:     "battery hot",
			flag:     posfleet.FlagBattery,
			raise:    func(x *term) { x.hb(func(h *posfleet.Heartbeat) { h.TempC = ptr(60.5) }) },
			below:    func(x *term) { x.hb(func(h *posfleet.Heartbeat) { h.TempC = ptr(60.0) }) },
			clear:    func(x *term) { x.hb() },
			evidence: []string{"temp_c"},
		},
		{
			name: "clock_skew behind",
			flag: posfleet.FlagClockSkew,
			raise: func(x *term) {
				x.hb(hbSkew(-301 * time.Second))
				time.Sleep(time.Minute)
				x.hb(hbSkew(-301 * time.Second))
			},
			below: func(x *term) {
				x.hb(hbSkew(-299 * time.Second))
				time.Sleep(time.Minute)
				x.hb(hbSkew(-299 * time.Second))
				// One heartbeat alone is never enough.
				y := newTerm(x.e, "T2")
				y.hb(hbSkew(-3600 * time.Second))
				if y.has(posfleet.FlagClockSkew) {
					panic("clock_skew from one heartbeat")
				}
			},
			// The heartbeat after the clock's jump breaks the chain of
			// live heartbeats; the one after it is live again.
			clear: func(x *term) {
				for range 2 {
					time.Sleep(time.Minute)
					x.hb()
				}
			},
			evidence: []string{"skew_s", "heartbeats", "terminal_ts", "server_ts"},
		},
		{
			name: "clock_skew ahead",
			flag: posfleet.FlagClockSkew,
			raise: func(x *term) {
				x.hb(hbSkew(301 * time.Second))
				time.Sleep(time.Minute)
				x.hb(hbSkew(301 * time.Second))
			},
			below: func(x *term) {
				x.hb(hbSkew(299 * time.Second))
				time.Sleep(time.Minute)
				x.hb(hbSkew(299 * time.Second))
			},
			// Three live heartbeats after the one of the clock's jump.
			clear: func(x *term) {
				for range 4 {
					time.Sleep(time.Minute)
					x.hb()
				}
			},
			evidence: []string{"skew_s"},
		},
		{
			name:  "bad_data",
			flag:  posfleet.FlagBadData,
			raise: func(x *term) { x.rejects(3, posfleet.ReasonCardData); x.rejects(2, posfleet.ReasonMissingSeq) },
			below: func(x *term) {
				x.rejects(4, posfleet.ReasonNotJSON)
				// Five, but one message of the hour was accepted.
				y := newTerm(x.e, "T2")
				y.hb()
				y.rejects(5, posfleet.ReasonNotJSON)
				if y.has(posfleet.FlagBadData) {
					panic("bad_data with an accepted message in the window")
				}
			},
			clear:    func(x *term) { x.hb() },
			evidence: []string{"count", "by_reason", "first_rejected", "last_rejected", "window_s", "threshold"},
		},
		{
			name:  "bad_data ages out",
			flag:  posfleet.FlagBadData,
			raise: func(x *term) { x.hb(); time.Sleep(61 * time.Minute); x.rejects(5, posfleet.ReasonWrongType) },
			below: func(x *term) {
				x.rejects(5, posfleet.ReasonWrongType)
				time.Sleep(65 * time.Minute)
				x.reject(posfleet.ReasonWrongType)
			},
			// An hour of silence: the rejections leave the window (Tick).
			clear: func(x *term) { time.Sleep(66 * time.Minute) },
		},
	}, append(signalFlagCases(), silentWearFlagCases()...)...)
}

func TestFlagsCoverProtocol(t *testing.T) {
	// Every flag of the vocabulary has a case in TestFlags: a flag added to
	// posfleet.FlagSpecs without a test fails here.
	covered := map[posfleet.FlagName]bool{}
	for _, c := range flagCases() {
		covered[c.flag] = true
	}
	for _, f := range posfleet.FlagNames {
		t.Run(string(f), func(t *testing.T) {
			if !covered[f] {
				t.Errorf("TestFlags has no case for %s", f)
			}
		})
	}
	for f := range covered {
		if posfleet.FlagIndex(f) < 0 {
			t.Errorf("TestFlags covers %s, which is not in posfleet.FlagSpecs", f)
		}
	}
}

func TestUrgency(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.inv("A920", "2.2.0", nil) // below the minimum
		if f := x.flag(t, posfleet.FlagFirmwareOutdated); !f.Urgent || !belowMinimum(t, f) {
			t.Errorf("below minimum: %+v", f)
		}
		x.inv("A920", "2.4.1", nil)
		if f := x.flag(t, posfleet.FlagFirmwareOutdated); f.Urgent {
			t.Errorf("above minimum but urgent: %+v", f)
		}
		x.inv("A920", "2.4.0", nil)
		if f := x.flag(t, posfleet.FlagFirmwareBlocked); !f.Urgent {
			t.Errorf("blocked not urgent: %+v", f)
		}
		// A model the policy does not know is not judged.
		y := newTerm(e, "T2")
		y.inv("S80", "0.1.0", nil)
		if y.has(posfleet.FlagFirmwareOutdated) {
			t.Error("firmware_outdated for a model outside the policy")
		}
	})
}

func TestOfflineSinceAndSelling(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.txn()
		x.hb()
		start := time.Now()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		f := x.flag(t, posfleet.FlagOffline)
		if want := start.Add(180 * time.Second); !f.Since.Equal(want) {
			t.Errorf("since = %v, want %v", f.Since, want)
		}
		if ev := evidenceOf[*posfleet.OfflineEvidence](t, f); !ev.WasSelling {
			t.Errorf("was_selling = %v", ev.WasSelling)
		}
		if fs := e.FleetSummary(tenant); fs.Offline != 1 || fs.Online != 0 || fs.Flagged[posfleet.FlagOffline] != 1 {
			t.Errorf("summary = %+v", fs)
		}
		if !strings.Contains(health.GroupWorkList(e.WorkList(tenant))[0].Items[0].Reasons[0].Action, "last heard from at 00:00 UTC") {
			t.Errorf("work list = %+v", e.WorkList(tenant))
		}
	})
}

// TestClockSkewIgnoresDelayedHeartbeats: a terminal back from an outage
// delivers the heartbeats it stored, with the times they were taken; that
// is not a wrong clock.
func TestClockSkewIgnoresDelayedHeartbeats(t *testing.T) {
	tests := []struct {
		name    string
		history bool // live heartbeats before the outage
	}{
		{"after live heartbeats", true},
		{"on a server that never heard from the terminal", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T, e *health.Engine) {
				x := newTerm(e, "T1")
				if tt.history {
					for range 3 {
						x.hb()
						time.Sleep(time.Minute)
					}
				}
				time.Sleep(30 * time.Minute)
				for k := 30; k > 0; k-- {
					x.hb(hbSkew(-time.Duration(k) * time.Minute))
				}
				if x.has(posfleet.FlagClockSkew) {
					t.Fatalf("clock_skew from the outbox: %+v", x.flag(t, posfleet.FlagClockSkew))
				}
				time.Sleep(time.Minute)
				x.hb()
				if x.has(posfleet.FlagClockSkew) {
					t.Errorf("clock_skew after a live heartbeat: %+v", x.flag(t, posfleet.FlagClockSkew))
				}
			})
		})
	}
}

// TestClockSkewWhateverTheInterval: clock_skew is judged on live
// heartbeats whatever the terminal's heartbeat interval (the engine's
// HeartbeatInterval is 60 s; `make demo`'s simulator sends every 20 s, and
// a terminal may send every few seconds), while a backlog replayed after
// an outage, in a burst or drained slowly, is never taken for a wrong
// clock at any interval.
func TestClockSkewWhateverTheInterval(t *testing.T) {
	for _, every := range []time.Duration{5 * time.Second, 20 * time.Second, 45 * time.Second, time.Minute, 5 * time.Minute} {
		t.Run(every.String(), func(t *testing.T) {
			for _, skew := range []time.Duration{-20 * time.Minute, 20 * time.Minute, -301 * time.Second} {
				t.Run("raised at "+skew.String(), func(t *testing.T) {
					bubble(t, func(t *testing.T, e *health.Engine) {
						x := newTerm(e, "T1")
						for range 3 {
							x.hb(hbSkew(skew))
							time.Sleep(every)
						}
						synctest.Wait()
						if !x.has(posfleet.FlagClockSkew) {
							t.Fatalf("no clock_skew after three heartbeats %v apart %v off", every, skew)
						}
						if got := evidenceOf[*posfleet.ClockSkewEvidence](t, x.flag(t, posfleet.FlagClockSkew)).SkewS; got != int64(skew.Seconds()) {
							t.Errorf("skew_s = %v, want %d", got, int64(skew.Seconds()))
						}
					})
				})
			}
			t.Run("backlog in a burst", func(t *testing.T) {
				bubble(t, func(t *testing.T, e *health.Engine) {
					x := newTerm(e, "T1")
					for range 3 {
						x.hb()
						time.Sleep(every)
					}
					// Offline for 30 minutes, storing a heartbeat every
					// interval, delivered all at once on reconnect.
					outage := 30 * time.Minute
					time.Sleep(outage)
					for k := int(outage / every); k > 0; k-- {
						x.hb(hbSkew(-time.Duration(k) * every))
					}
					if x.has(posfleet.FlagClockSkew) {
						t.Fatalf("clock_skew from the outbox: %+v", x.flag(t, posfleet.FlagClockSkew))
					}
					for range 3 {
						time.Sleep(every)
						x.hb()
						if x.has(posfleet.FlagClockSkew) {
							t.Fatalf("clock_skew after live heartbeats: %+v", x.flag(t, posfleet.FlagClockSkew))
						}
					}
				})
			})
			t.Run("backlog drained slowly", func(t *testing.T) {
				bubble(t, func(t *testing.T, e *health.Engine) {
					x := newTerm(e, "T1")
					x.hb()
					time.Sleep(every)
					time.Sleep(20 * time.Minute)
					// A poor link: one stored heartbeat every 2 s.
					for k := int(20 * time.Minute / every); k > 0; k-- {
						x.hb(hbSkew(-time.Duration(k)*every - 2*time.Second*time.Duration(int(20*time.Minute/every)-k)))
						time.Sleep(2 * time.Second)
						if x.has(posfleet.FlagClockSkew) {
							t.Fatalf("clock_skew while the outbox drains: %+v", x.flag(t, posfleet.FlagClockSkew))
						}
					}
				})
			})
		})
	}
}

// TestClockSkewHeldThroughABacklog: a terminal whose clock is wrong goes
// offline and, back, replays its outbox in a burst. The replayed heartbeats
// are not live, so they say nothing of the clock either way: clock_skew
// stays raised through them (it used to clear once they pushed the live
// ones out of the heartbeat ring, and rise again with the next live
// ones: an alarm cleared and raised again for nothing), with its evidence,
// and it clears only when live heartbeats show the clock right.
func TestClockSkewHeldThroughABacklog(t *testing.T) {
	const wrong = -20 * time.Minute
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		for range 3 {
			x.hb(hbSkew(wrong))
			time.Sleep(time.Minute)
		}
		if !x.has(posfleet.FlagClockSkew) {
			t.Fatal("no clock_skew after three live heartbeats 20 minutes off")
		}
		since := x.flag(t, posfleet.FlagClockSkew).Since
		time.Sleep(30 * time.Minute)
		for k := 30; k > 0; k-- {
			x.hb(hbSkew(wrong - time.Duration(k)*time.Minute))
			if !x.has(posfleet.FlagClockSkew) {
				t.Fatalf("clock_skew cleared by the %dth replayed heartbeat", 31-k)
			}
		}
		f := x.flag(t, posfleet.FlagClockSkew)
		if !f.Since.Equal(since) {
			t.Errorf("clock_skew since %v after the backlog, want still %v", f.Since, since)
		}
		ev := evidenceOf[*posfleet.ClockSkewEvidence](t, f)
		if ev.SkewS != int64(wrong.Seconds()) || ev.Heartbeats != 3 {
			t.Errorf("evidence after the backlog: skew_s %d from %d heartbeats, want %d from 3", ev.SkewS, ev.Heartbeats, int64(wrong.Seconds()))
		}
		// The clock set right (NTP): live heartbeats clear it.
		for range 3 {
			time.Sleep(time.Minute)
			x.hb()
		}
		if x.has(posfleet.FlagClockSkew) {
			t.Errorf("clock_skew after three live heartbeats with the clock right: %+v", x.flag(t, posfleet.FlagClockSkew))
		}
	})
}

// evidenceKeys returns the JSON keys of a flag's evidence, as the API shows them.
func evidenceKeys(t *testing.T, ev posfleet.Evidence) map[string]any {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	return keys
}

// evidenceOf returns a flag's evidence as type E, failing the test when it
// is of another type.
func evidenceOf[E posfleet.Evidence](t *testing.T, f posfleet.Flag) E {
	t.Helper()
	ev, ok := f.Evidence.(E)
	if !ok {
		t.Fatalf("%s evidence is %T", f.Name, f.Evidence)
	}
	return ev
}

func belowMinimum(t *testing.T, f posfleet.Flag) bool {
	t.Helper()
	b := evidenceOf[*posfleet.FirmwareOutdatedEvidence](t, f).BelowMinimum
	return b != nil && *b
}
