package posfleet_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
)

func TestFlagJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 42, 0, 0, time.UTC)
	f := posfleet.Flag{
		Name:  posfleet.FlagAmountMismatch,
		Kind:  posfleet.FlagAmountMismatch.Kind(),
		Since: at,
		Evidence: &posfleet.AmountMismatchEvidence{Count: 1, WindowH: 24, Transactions: []posfleet.MismatchedTxn{
			{ID: "t-1", At: at, AmountEntered: 1000, AmountCharged: 1006, Difference: 6, Currency: "EUR"}}},
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	// The keys of each object sorted, as when evidence was a map.
	want := `{"flag":"amount_mismatch","kind":"investigate","since":"2026-03-01T10:42:00Z","evidence":{"count":1,` +
		`"transactions":[{"amount_charged":1006,"amount_entered":1000,"at":"2026-03-01T10:42:00Z","currency":"EUR","difference":6,"id":"t-1"}],"window_h":24}}`
	if string(b) != want {
		t.Errorf("json = %s\nwant   %s", b, want)
	}
	var back posfleet.Flag
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	ev, ok := back.Evidence.(*posfleet.AmountMismatchEvidence)
	if !ok || back.Name != f.Name || len(ev.Transactions) != 1 || ev.Transactions[0].AmountCharged != 1006 {
		t.Errorf("round trip = %+v", back)
	}
}

// TestEvidenceKeysSorted checks that every flag's evidence type declares its
// fields in the order of their JSON keys: the API's evidence objects had
// their keys sorted when evidence was a map, and clients may compare bytes.
func TestEvidenceKeysSorted(t *testing.T) {
	for _, f := range posfleet.FlagNames {
		t.Run(string(f), func(t *testing.T) {
			ev := posfleet.NewEvidence(f)
			if ev == nil || ev.EvidenceFor() != f {
				t.Fatalf("NewEvidence(%s) = %#v", f, ev)
			}
			checkSortedTags(t, reflect.TypeOf(ev).Elem())
			b, err := json.Marshal(posfleet.Flag{Name: f, Kind: f.Kind(), Evidence: ev})
			if err != nil {
				t.Fatal(err)
			}
			var back posfleet.Flag
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if reflect.TypeOf(back.Evidence) != reflect.TypeOf(ev) {
				t.Errorf("decoded evidence %T, want %T", back.Evidence, ev)
			}
		})
	}
	if _, err := posfleet.DecodeEvidence("no_such_flag", []byte(`{}`)); err == nil {
		t.Error("DecodeEvidence accepted an unknown flag")
	}
}

func checkSortedTags(t *testing.T, typ reflect.Type) {
	t.Helper()
	prev := ""
	for i := range typ.NumField() {
		sf := typ.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Errorf("%s.%s has no JSON name", typ.Name(), sf.Name)
			continue
		}
		if name <= prev {
			t.Errorf("%s: key %q after %q", typ.Name(), name, prev)
		}
		prev = name
		elem := sf.Type
		for elem.Kind() == reflect.Pointer || elem.Kind() == reflect.Slice {
			elem = elem.Elem()
		}
		if elem.Kind() == reflect.Struct && elem != reflect.TypeOf(time.Time{}) {
			checkSortedTags(t, elem)
		}
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
		posfleet.FlagClockSkew: posfleet.KindMaintenance, posfleet.FlagBadData: posfleet.KindInvestigate,
		posfleet.FlagFallbackRate: posfleet.KindMaintenance, posfleet.FlagMoved: posfleet.KindInvestigate,
		posfleet.FlagSilent: posfleet.KindInvestigate, posfleet.FlagWearDue: posfleet.KindMaintenance,
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
