package posfleet_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
)

func TestFlagJSON(t *testing.T) {
	f := posfleet.Flag{
		Name:     posfleet.FlagAmountMismatch,
		Kind:     posfleet.FlagAmountMismatch.Kind(),
		Since:    time.Date(2026, 3, 1, 10, 42, 0, 0, time.UTC),
		Evidence: map[string]any{"txn_id": "t-1", "amount_entered": 1000, "amount_charged": 1006},
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["flag"] != "amount_mismatch" || got["kind"] != "investigate" || got["since"] != "2026-03-01T10:42:00Z" {
		t.Errorf("json = %s", b)
	}
	if _, ok := got["urgent"]; ok {
		t.Errorf("urgent should be omitted when false: %s", b)
	}
	ev, ok := got["evidence"].(map[string]any)
	if !ok || ev["txn_id"] != "t-1" || ev["amount_charged"] != float64(1006) {
		t.Errorf("evidence = %v", got["evidence"])
	}
}

func TestFlagKinds(t *testing.T) {
	want := map[posfleet.FlagName]posfleet.FlagKind{
		posfleet.FlagOffline: posfleet.KindMaintenance, posfleet.FlagFirmwareOutdated: posfleet.KindUpdate,
		posfleet.FlagFirmwareBlocked: posfleet.KindUpdate, posfleet.FlagUpdateFailed: posfleet.KindUpdate,
		posfleet.FlagAmountMismatch: posfleet.KindInvestigate, posfleet.FlagTxnFailures: posfleet.KindMaintenance,
		posfleet.FlagReceiptFailures: posfleet.KindMaintenance, posfleet.FlagRefundAnomaly: posfleet.KindInvestigate,
		posfleet.FlagHardwareFault: posfleet.KindMaintenance, posfleet.FlagTamper: posfleet.KindMaintenance,
		posfleet.FlagWeakNetwork: posfleet.KindMaintenance, posfleet.FlagBattery: posfleet.KindMaintenance,
		posfleet.FlagClockSkew: posfleet.KindMaintenance,
	}
	for f := range want {
		if posfleet.FlagIndex(f) < 0 {
			t.Errorf("%s is not in FlagSpecs", f)
		}
	}
	seen := map[posfleet.FlagName]bool{}
	for i, f := range posfleet.FlagNames {
		t.Run(string(f), func(t *testing.T) {
			if seen[f] {
				t.Errorf("%s is twice in FlagSpecs", f)
			}
			seen[f] = true
			if _, ok := want[f]; !ok {
				t.Fatalf("%s has no expected kind in this test", f)
			}
			if posfleet.FlagIndex(f) != i || posfleet.FlagSpecs[i].Name != f {
				t.Errorf("FlagIndex = %d, want %d", posfleet.FlagIndex(f), i)
			}
			if got := f.Kind(); got != want[f] {
				t.Errorf("Kind = %q, want %q", got, want[f])
			}
			p, err := posfleet.ParseFlagName(string(f))
			if err != nil || p != f {
				t.Errorf("ParseFlagName = %q, %v", p, err)
			}
		})
	}
	if _, err := posfleet.ParseFlagName("ofline"); err == nil {
		t.Error("ParseFlagName accepted a misspelt flag")
	}
	if !posfleet.FlagTamper.Urgent() || !posfleet.FlagFirmwareBlocked.Urgent() || posfleet.FlagOffline.Urgent() {
		t.Error("Urgent: want tamper and firmware_blocked only")
	}
}

func TestClassifyTransaction(t *testing.T) {
	tests := []struct {
		name     string
		result   string
		rc       string
		want     posfleet.Cause
		hostSide bool
	}{
		{"approved", posfleet.ResultApproved, "00", posfleet.CauseNone, false},
		{"insufficient funds", posfleet.ResultDeclined, "51", posfleet.CauseCard, false},
		{"wrong pin", posfleet.ResultDeclined, "55", posfleet.CauseCard, false},
		{"expired", posfleet.ResultDeclined, "54", posfleet.CauseCard, false},
		{"invalid card number", posfleet.ResultDeclined, "14", posfleet.CauseCard, false},
		{"not permitted", posfleet.ResultDeclined, "57", posfleet.CauseCard, false},
		{"lost", posfleet.ResultDeclined, "41", posfleet.CauseCard, false},
		{"stolen", posfleet.ResultDeclined, "43", posfleet.CauseCard, false},
		{"do not honour", posfleet.ResultDeclined, "05", posfleet.CauseCard, false},
		{"issuer unavailable", posfleet.ResultDeclined, "91", posfleet.CauseHost, true},
		{"system malfunction", posfleet.ResultError, "96", posfleet.CauseHost, true},
		{"response too late", posfleet.ResultDeclined, "68", posfleet.CauseHost, true},
		{"invalid amount", posfleet.ResultDeclined, "13", posfleet.CauseOperator, false},
		{"cancelled", posfleet.ResultCancelled, "", posfleet.CauseOperator, false},
		{"timeout", posfleet.ResultTimeout, "", posfleet.CauseNetwork, true},
		{"terminal error", posfleet.ResultError, "", posfleet.CauseTerminal, false},
		{"format error", posfleet.ResultDeclined, "30", posfleet.CauseTerminal, false},
		{"decline without code", posfleet.ResultDeclined, "", posfleet.CauseTerminal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			txn := &posfleet.Transaction{ID: "t", Type: posfleet.TxnSale, Result: tt.result, RC: tt.rc}
			if got := posfleet.ClassifyTransaction(txn); got != tt.want {
				t.Errorf("ClassifyTransaction = %q, want %q", got, tt.want)
			}
			if got := posfleet.HostSideFailure(txn); got != tt.hostSide {
				t.Errorf("HostSideFailure = %v, want %v", got, tt.hostSide)
			}
			if got, want := tt.want.CountsAgainstTerminal(), tt.want == posfleet.CauseNetwork || tt.want == posfleet.CauseTerminal; got != want {
				t.Errorf("CountsAgainstTerminal = %v", got)
			}
		})
	}
}
