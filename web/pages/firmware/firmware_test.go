package firmware_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/web/pages/firmware"
)

// TestPageShowsPolicyHistory: each version is a row with its number and
// author; without versions there is no history table.
func TestPageShowsPolicyHistory(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	render := func(v firmware.View) string {
		var b bytes.Buffer
		if err := firmware.Page(v).Render(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	page := render(firmware.View{Admin: true, History: []firmware.Version{
		{Version: 2, At: at, By: "alice", Body: "models: {}\n"},
		{Version: 1, At: at.Add(-time.Hour), By: "import", Body: "models: {}\n"},
	}})
	if n := strings.Count(page, `data-testid="policy-version"`); n != 2 {
		t.Errorf("%d versions shown, want 2", n)
	}
	for _, want := range []string{">alice<", ">import<", ">2<"} {
		if !strings.Contains(page, want) {
			t.Errorf("%s not shown", want)
		}
	}
	if strings.Contains(render(firmware.View{}), `data-testid="policy-history"`) {
		t.Error("a history table without versions")
	}
}
