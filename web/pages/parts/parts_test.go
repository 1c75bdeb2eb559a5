package parts_test

import (
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/web/pages/parts"
)

func TestDescribe(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		flag posfleet.FlagName
		ev   map[string]any
		want []string
	}{
		{posfleet.FlagOffline, map[string]any{"reason": "last_will", "last_seen": at}, []string{"dropped off", "2026-03-02 09:30:00 UTC"}},
		{posfleet.FlagOffline, map[string]any{"reason": "no_message", "last_seen": at, "silent_s": 900}, []string{"Nothing heard", "09:30:00"}},
		{posfleet.FlagFirmwareOutdated, map[string]any{"model": "A920", "firmware": "2.4.1", "target": "2.5.1", "minimum": "2.4.5", "below_minimum": true}, []string{"Runs 2.4.1", "target for A920 is 2.5.1", "below the minimum 2.4.5"}},
		{posfleet.FlagFirmwareBlocked, map[string]any{"model": "A920", "firmware": "2.4.0", "blocked": []string{"2.4.0"}, "target": "2.5.1"}, []string{"2.4.0, a version the policy blocks", "2.5.1"}},
		{posfleet.FlagUpdateFailed, map[string]any{"target": "2.5.1", "error": "checksum", "firmware": "2.4.1", "reported_at": at}, []string{"update to 2.5.1 failed (checksum)"}},
		{posfleet.FlagAmountMismatch, map[string]any{"count": 2, "window_h": 24, "transactions": []map[string]any{{"id": "t1", "at": at}}}, []string{"2 approved sales", "24 hours"}},
		{posfleet.FlagTxnFailures, map[string]any{"failed": 8, "total": 20, "threshold": 0.3, "by_cause": map[string]int{"network": 5, "terminal": 3}}, []string{"8 of the last 20", "limit 30%"}},
		{posfleet.FlagReceiptFailures, map[string]any{"paper": posfleet.PaperOut, "paper_out_at": at}, []string{"paper out at 2026-03-02 09:30:00 UTC"}},
		{posfleet.FlagReceiptFailures, map[string]any{"failed_receipts": 3, "threshold": 3, "window_h": 24}, []string{"3 approved payments had no receipt"}},
		{posfleet.FlagRefundAnomaly, map[string]any{"count": 1, "transactions": []map[string]any{{"id": "r1", "reason": "no_original"}}}, []string{"1 refunds"}},
		{posfleet.FlagHardwareFault, map[string]any{"faults": []map[string]any{{"component": "printer", "code": "PAPER_JAM", "severity": "warning", "since": at}}}, []string{"printer PAPER_JAM (warning) since 2026-03-02 09:30:00 UTC"}},
		{posfleet.FlagTamper, map[string]any{"events": []map[string]any{{"component": "secure_element", "code": "TAMPER", "at": at}}}, []string{"secure_element reported TAMPER", "out of service"}},
		{posfleet.FlagWeakNetwork, map[string]any{"weak_signal": true, "heartbeats": 5, "median_signal_dbm": -105.0, "signal_threshold_dbm": -100}, []string{"median signal", "-105 dBm"}},
		{posfleet.FlagWeakNetwork, map[string]any{"heartbeats": 5, "p90_host_rtt_ms": 3200, "rtt_threshold_ms": 2000}, []string{"3200 ms", "limit 2000 ms"}},
		{posfleet.FlagBattery, map[string]any{"battery_pct": 8, "charging": false, "low_heartbeats": 3}, []string{"8% and not charging for 3 heartbeats"}},
		{posfleet.FlagBattery, map[string]any{"temp_c": 61.5, "temp_threshold_c": 60.0, "reported_at": at}, []string{"61.5 °C (limit 60 °C)"}},
		{posfleet.FlagClockSkew, map[string]any{"skew_s": int64(-420), "server_ts": at}, []string{"-420 s off"}},
	} {
		t.Run(string(tc.flag), func(t *testing.T) {
			got := parts.Describe(posfleet.Flag{Name: tc.flag, Kind: tc.flag.Kind(), Evidence: tc.ev})
			if strings.Contains(got, "%!") || strings.Contains(got, "<nil>") {
				t.Errorf("formatting slip: %q", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			if len(parts.Evidence(tc.ev)) != len(tc.ev) {
				t.Errorf("evidence rows: %v", parts.Evidence(tc.ev))
			}
		})
	}
}

func TestLabels(t *testing.T) {
	for _, f := range posfleet.FlagNames {
		if l := parts.FlagLabel(f); l == string(f) || l == "" {
			t.Errorf("flag %s has no label", f)
		}
	}
	if got := parts.ListHref("model", "A&B", "firmware", "1.0"); got != "/terminals?firmware=1.0&model=A%26B" {
		t.Errorf("ListHref: %s", got)
	}
	if got := parts.TerminalHref("acme", "T 1/x"); got != "/terminals/acme/T%201%2Fx" {
		t.Errorf("TerminalHref: %s", got)
	}
	for v, want := range map[int64]string{-1205: "-12.05 EUR", -5: "-0.05 EUR", 0: "0.00 EUR", 123456: "1234.56 EUR"} {
		if got := parts.Money(&v, "EUR"); got != want {
			t.Errorf("Money(%d) = %s, want %s", v, got, want)
		}
	}
}
