package firmware_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/locale"
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

// TestConfirm: the bulk update's confirmation names the count, the model,
// the versions and the target, posts the count back, offers a way out;
// in Chinese for a reader of Chinese; a changed fleet says so.
func TestConfirm(t *testing.T) {
	v := firmware.ConfirmView{Model: "A920", From: []string{"2.3.7"}, Target: "2.4.1", Count: 14, Total: 14}
	render := func(lang string, v firmware.ConfirmView) string {
		var b bytes.Buffer
		ctx := locale.With(context.Background(), locale.New(lang, ""))
		if err := firmware.Confirm(v).Render(ctx, &b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	en := render(locale.English, v)
	for _, want := range []string{"Update 14 A920 terminals from 2.3.7 to 2.4.1?", `name="confirm" value="14"`, `name="model" value="A920"`,
		`data-testid="bulk-confirm"`, `href="/firmware" data-testid="bulk-cancel"`} {
		if !strings.Contains(en, want) {
			t.Errorf("English confirmation lacks %q", want)
		}
	}
	if strings.Contains(en, "bulk-changed") || strings.Contains(en, "bulk-wave") {
		t.Error("a changed fleet or a wave where there is none")
	}
	v.From, v.Total, v.Changed = []string{"2.3.7", "2.3.8"}, 1200, "12"
	v.Count = 500
	zh := render(locale.Chinese, v)
	for _, want := range []string{"将 500 台 A920 终端从 2.3.7、2.3.8 升级到 2.4.1？", "1,200 台中的前 500 台", "确认 12 台以来", ">确认<", ">取消<"} {
		if !strings.Contains(zh, want) {
			t.Errorf("Chinese confirmation lacks %q", want)
		}
	}
	if missing := locale.Missing(); len(missing) > 0 {
		t.Errorf("untranslated: %v", missing)
	}
}
