package health_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// snapshotV1 is a snapshot written by the release before typed evidence
// (commit 77f74e9), and snapshotV1JSON what that release's API said about its
// terminals right after restoring it. Regenerate both with
// POSFLEET_WRITE_SNAPSHOT=1 go test -run TestRestorePreviousReleaseSnapshot ./health/
// (only when the snapshot layout changes on purpose).
var (
	snapshotV1     = filepath.Join("testdata", "snapshot-v1.gob")
	snapshotV1JSON = filepath.Join("testdata", "snapshot-v1-terminals.json")
)

// snapshotV1Elapsed is how long after the bubble's start the snapshot is
// restored; offline and the 24-hour windows are judged at that time.
const snapshotV1Elapsed = 2 * time.Hour

// TestRestorePreviousReleaseSnapshot restores a snapshot the previous
// release wrote and checks that every flag comes back with the same API
// bytes, evidence included.
func TestRestorePreviousReleaseSnapshot(t *testing.T) {
	if os.Getenv("POSFLEET_WRITE_SNAPSHOT") != "" {
		writeSnapshotV1(t)
		return
	}
	// TxnAlpha 1: the previous release's txn_failures rule (the share
	// alone), under which the snapshot was written. bad_data and the flags
	// after it came after version 1.
	checkRestored(t, snapshotV1, snapshotV1JSON, health.Config{TxnAlpha: 1}, posfleet.FlagIndex(posfleet.FlagBadData))
}

// checkRestored restores the snapshot file snap into an engine of cfg,
// snapshotV1Elapsed after the bubble's start, and checks that its terminals
// read as the file wantJSON says, with evidence for every flag, and that the
// first flags flags of posfleet.FlagNames are all raised.
func checkRestored(t *testing.T, snap, wantJSON string, cfg health.Config, flags int) {
	t.Helper()
	raw, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(wantJSON)
	if err != nil {
		t.Fatal(err)
	}
	bubbleWith(t, health.Config{}, func(t *testing.T, _ *health.Engine) {
		time.Sleep(snapshotV1Elapsed)
		cfg.Now = time.Now
		r := health.New(cfg)
		if err := r.Restore(bytes.NewReader(raw)); err != nil {
			t.Fatal(err)
		}
		if got := terminalsJSON(t, r); !bytes.Equal(got, want) {
			t.Errorf("after restoring %s the terminals read\n%s\nwant\n%s", snap, got, want)
		}
		raised := map[posfleet.FlagName]bool{}
		for _, h := range r.Terminals("", "") {
			for _, f := range h.Flags {
				raised[f.Name] = true
				if f.Evidence == nil || f.Evidence.EvidenceFor() != f.Name {
					t.Errorf("%s %s: evidence %T", h.Terminal, f.Name, f.Evidence)
				}
			}
		}
		for _, f := range posfleet.FlagNames[:flags] {
			if !raised[f] {
				t.Errorf("%s raises no %s", snap, f)
			}
		}
	})
}

func terminalsJSON(t *testing.T, e *health.Engine) []byte {
	t.Helper()
	b, err := json.MarshalIndent(e.Terminals("", ""), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// writeSnapshotV1 raises every flag on some terminal, writes the snapshot
// and the API's view of it after a restore.
func writeSnapshotV1(t *testing.T) {
	bubbleWith(t, health.Config{}, func(t *testing.T, e *health.Engine) {
		start := time.Now()
		time.Sleep(time.Second)
		x := func(id string) *term { return newTerm(e, id) }
		a := x("FW-OLD")
		a.inv("A920", "2.2.0", nil) // firmware_outdated, below the minimum
		b := x("FW-BLOCKED")
		b.inv("A920", "2.4.0", nil)
		c := x("UPD")
		c.inv("A920", "2.4.1", &posfleet.UpdateAttempt{Target: "2.5.1", Status: posfleet.UpdateFailed, Error: "checksum mismatch"})
		d := x("TXN")
		d.txns(6)
		for range 4 {
			d.txn(terminalError)
		}
		d.txn(charged(2000))                   // amount_mismatch
		d.txn(refund(3000, 1000))              // refund_anomaly
		d.txn(receipt(posfleet.ReceiptFailed)) // receipt_failures
		d.txn(receipt(posfleet.ReceiptFailed)) //
		f := x("FAULT")
		f.fault(posfleet.ComponentPrinter, "PAPER_JAM", posfleet.SeverityWarning, posfleet.FaultRaised)
		f.fault(posfleet.ComponentKeypad, "TAMPER", posfleet.SeverityCritical, posfleet.FaultRaised)
		g := x("DEVICE")
		for range 10 {
			g.hb(hbSignal(-110), hbRTT(4000), hbBattery(5, false), hbSkew(10*time.Minute))
			time.Sleep(time.Minute)
		}
		h := x("QUIET")
		h.txn()
		h.hb()
		time.Sleep(snapshotV1Elapsed - time.Since(start))
		var buf bytes.Buffer
		if err := e.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		r := health.New(health.Config{Now: time.Now})
		if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snapshotV1, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snapshotV1JSON, terminalsJSON(t, r), 0o644); err != nil {
			t.Fatal(err)
		}
	})
}
