package parts_test

import (
	"context"
	"encoding/json"
	"github.com/posfleet/posfleet/locale"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/web/pages/parts"
)

func TestDescribe(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	yes, minus105, limit60, rtt, pct8, three := true, -105.0, 60.0, 3200, 8, 3
	temp, no := 61.5, false
	for _, tc := range []struct {
		ev   posfleet.Evidence
		want []string
	}{
		{&posfleet.OfflineEvidence{Reason: posfleet.OfflineLastWill, LastSeen: at}, []string{"dropped off", "2026-03-02 09:30:00 UTC"}},
		{&posfleet.OfflineEvidence{Reason: posfleet.OfflineNoMessage, LastSeen: at}, []string{"Nothing heard", "09:30:00"}},
		{&posfleet.FirmwareOutdatedEvidence{Model: "A920", Firmware: "2.4.1", Target: "2.5.1", Minimum: "2.4.5", BelowMinimum: &yes}, []string{"Runs 2.4.1", "target for A920 is 2.5.1", "below the minimum 2.4.5"}},
		{&posfleet.FirmwareBlockedEvidence{Model: "A920", Firmware: "2.4.0", Blocked: []string{"2.4.0"}, Target: "2.5.1"}, []string{"2.4.0, a version the policy blocks", "2.5.1"}},
		{&posfleet.UpdateFailedEvidence{Target: "2.5.1", Error: "checksum", Firmware: "2.4.1", ReportedAt: at}, []string{"update to 2.5.1 failed (checksum)"}},
		{&posfleet.AmountMismatchEvidence{Count: 2, WindowH: 24, Transactions: []posfleet.MismatchedTxn{{ID: "t1", At: at}}}, []string{"2 approved sales", "24 hours"}},
		{&posfleet.TxnFailuresEvidence{Failed: 8, Total: 20, Threshold: 0.3, ByCause: posfleet.FailuresByCause{Network: 5, Terminal: 3}}, []string{"8 of the last 20", "limit 30%"}},
		{&posfleet.ReceiptFailuresEvidence{Paper: posfleet.PaperOut, PaperOutAt: at}, []string{"paper out at 2026-03-02 09:30:00 UTC"}},
		{&posfleet.ReceiptFailuresEvidence{FailedReceipts: 3, Threshold: 3, WindowH: 24}, []string{"3 approved payments had no receipt"}},
		{&posfleet.RefundAnomalyEvidence{Count: 1, Transactions: []posfleet.RefundTxn{{ID: "r1", Reason: "exceeds_original"}}}, []string{"1 refunds"}},
		{&posfleet.HardwareFaultEvidence{Faults: []posfleet.RaisedFault{{Component: "printer", Code: "PAPER_JAM", Severity: "warning", Since: at}}}, []string{"printer PAPER_JAM (warning) since 2026-03-02 09:30:00 UTC"}},
		{&posfleet.TamperEvidence{Events: []posfleet.TamperEvent{{Component: "secure_element", Code: "TAMPER", At: at}}}, []string{"secure_element reported TAMPER", "out of service"}},
		{&posfleet.WeakNetworkEvidence{WeakSignal: true, Heartbeats: 5, MedianSignalDBm: &minus105, SignalThresholdDBm: -100}, []string{"median signal", "-105 dBm"}},
		{&posfleet.WeakNetworkEvidence{Heartbeats: 5, P90HostRTTMs: &rtt, RTTThresholdMs: 2000}, []string{"3,200 ms", "limit 2,000 ms"}},
		{&posfleet.BatteryEvidence{BatteryPct: &pct8, Charging: &no, LowHeartbeats: &three}, []string{"8% and not charging for 3 heartbeats"}},
		{&posfleet.BatteryEvidence{TempC: &temp, TempThresholdC: &limit60, ReportedAt: at}, []string{"61.5 °C (limit 60 °C)"}},
		{&posfleet.ClockSkewEvidence{SkewS: -420, ServerTS: at}, []string{"-420 s off"}},
		{&posfleet.BadDataEvidence{Count: 1205, ByReason: map[posfleet.Reason]int64{posfleet.ReasonCardData: 1200, posfleet.ReasonNotJSON: 5}, FirstRejected: at,
			LastRejected: at.Add(time.Hour), Share: 1, Threshold: 5, WindowS: 3600}, []string{"All 1,205 messages of the last 60 minutes were rejected", "card_data 1,200, not_json 5", "09:30:00 UTC"}},
	} {
		flag := tc.ev.EvidenceFor()
		t.Run(string(flag), func(t *testing.T) {
			got := parts.Describe(context.Background(), posfleet.Flag{Name: flag, Kind: flag.Kind(), Evidence: tc.ev})
			if strings.Contains(got, "%!") || strings.Contains(got, "<nil>") || strings.Contains(got, "–") {
				t.Errorf("formatting slip: %q", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			b, err := json.Marshal(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			var keys map[string]any
			if err := json.Unmarshal(b, &keys); err != nil {
				t.Fatal(err)
			}
			if rows := parts.Evidence(context.Background(), tc.ev); len(rows) != len(keys) {
				t.Errorf("evidence rows %v, want one per key of %s", rows, b)
			}
		})
	}
}

// TestDescribeEveryFlag checks that every flag's evidence type has its own
// sentence: a flag added to the vocabulary without one would say only
// "See the evidence.".
func TestDescribeEveryFlag(t *testing.T) {
	for _, f := range posfleet.FlagNames {
		t.Run(string(f), func(t *testing.T) {
			ev := posfleet.NewEvidence(f)
			if ev == nil || ev.EvidenceFor() != f {
				t.Fatalf("NewEvidence(%s) = %#v", f, ev)
			}
			if got := parts.Describe(context.Background(), posfleet.Flag{Name: f, Kind: f.Kind(), Evidence: ev}); got == "See the evidence." {
				t.Errorf("no sentence for %s", f)
			}
		})
	}
}

func TestLabels(t *testing.T) {
	for _, f := range posfleet.FlagNames {
		if l := parts.FlagLabel(context.Background(), f); l == string(f) || l == "" {
			t.Errorf("flag %s has no label", f)
		}
	}
	if got := parts.ListHref("model", "A&B", "firmware", "1.0"); got != "/terminals?firmware=1.0&model=A%26B" {
		t.Errorf("ListHref: %s", got)
	}
	if got := parts.TerminalHref("acme", "T 1/x"); got != "/terminals/acme/T%201%2Fx" {
		t.Errorf("TerminalHref: %s", got)
	}
	for v, want := range map[int64]string{-1205: "-€12.05", -5: "-€0.05", 0: "€0.00", 123456: "€1,234.56"} {
		if got := parts.Money(context.Background(), &v, "EUR"); got != want {
			t.Errorf("Money(%d) = %s, want %s", v, got, want)
		}
	}
}

// Every JSON key of every evidence type has a name in the catalogue: a
// page in Chinese never shows an evidence field in English.
func TestEvidenceKeysNamed(t *testing.T) {
	zh := locale.With(context.Background(), locale.New(locale.Chinese, ""))
	for _, f := range posfleet.FlagNames {
		ev := posfleet.NewEvidence(f)
		if ev == nil {
			continue
		}
		typ := reflect.TypeOf(ev).Elem()
		var walk func(reflect.Type)
		walk = func(typ reflect.Type) {
			for i := range typ.NumField() {
				fd := typ.Field(i)
				name, _, _ := strings.Cut(fd.Tag.Get("json"), ",")
				if name == "" || name == "-" {
					continue
				}
				if got := parts.EvidenceKey(zh, name); got == strings.ReplaceAll(name, "_", " ") && name != "sha256" {
					t.Errorf("%s: evidence key %q has no name in the catalogue", f, name)
				}
				et := fd.Type
				for et.Kind() == reflect.Pointer || et.Kind() == reflect.Slice {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct && et.PkgPath() == typ.PkgPath() {
					walk(et)
				}
			}
		}
		walk(typ)
	}
}
