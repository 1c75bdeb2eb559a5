package health_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// snapshotV2 is a snapshot written by the release with bad_data (snapshot
// version 2, 14 flags), and snapshotV2JSON what that release's API said about
// its terminals right after restoring it. Written once with
// POSFLEET_WRITE_SNAPSHOT_V2=1 go test -run TestRestoreVersion2Snapshot ./health/
// on that release (commit f121867); never regenerate it with a later one.
var (
	snapshotV2     = filepath.Join("testdata", "snapshot-v2.gob")
	snapshotV2JSON = filepath.Join("testdata", "snapshot-v2-terminals.json")
)

// TestRestoreVersion2Snapshot: a version 2 snapshot (flags' times in a
// 14-element Raised) restores with every flag and the same API bytes after
// flags were added.
func TestRestoreVersion2Snapshot(t *testing.T) {
	if os.Getenv("POSFLEET_WRITE_SNAPSHOT_V2") != "" {
		writeSnapshotV2(t)
		return
	}
	checkRestored(t, snapshotV2, snapshotV2JSON, health.Config{}, 14)
}

func writeSnapshotV2(t *testing.T) {
	bubbleWith(t, health.Config{}, func(t *testing.T, e *health.Engine) {
		start := time.Now()
		time.Sleep(time.Second)
		x := func(id string) *term { return newTerm(e, id) }
		x("FW-OLD").inv("A920", "2.2.0", nil)
		x("FW-BLOCKED").inv("A920", "2.4.0", nil)
		x("UPD").inv("A920", "2.4.1", &posfleet.UpdateAttempt{Target: "2.5.1", Status: posfleet.UpdateFailed, Error: "checksum mismatch"})
		d := x("TXN")
		d.txns(6)
		for range 6 {
			d.txn(terminalError)
		}
		d.txn(charged(2000))
		d.txn(refund(3000, 1000))
		d.txn(receipt(posfleet.ReceiptFailed))
		d.txn(receipt(posfleet.ReceiptFailed))
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
		time.Sleep(snapshotV1Elapsed - time.Since(start) - time.Minute)
		x("BAD").rejects(6, posfleet.ReasonNotJSON)
		time.Sleep(snapshotV1Elapsed - time.Since(start))
		var buf bytes.Buffer
		if err := e.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		r := health.New(health.Config{Now: time.Now})
		if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snapshotV2, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snapshotV2JSON, terminalsJSON(t, r), 0o644); err != nil {
			t.Fatal(err)
		}
	})
}
