package locale

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every message of the English catalogue is translated into Chinese and
// no Chinese message lacks an English original: a page in Chinese never
// falls back to English.
func TestCataloguesComplete(t *testing.T) {
	if _, err := Bundle(); err != nil {
		t.Fatal(err)
	}
	en, err := IDs(English)
	if err != nil {
		t.Fatal(err)
	}
	zh, err := IDs(Chinese)
	if err != nil {
		t.Fatal(err)
	}
	if len(en) < 5 {
		t.Fatalf("only %d English messages", len(en))
	}
	for _, id := range en {
		if _, found := slices.BinarySearch(zh, id); !found {
			t.Errorf("%s is not translated into %s", id, Chinese)
		}
	}
	for _, id := range zh {
		if _, found := slices.BinarySearch(en, id); !found {
			t.Errorf("%s is in the %s catalogue but not the English one", id, Chinese)
		}
	}
	// Every message renders in both languages.
	for _, lang := range Languages {
		l := New(lang, "")
		for _, id := range en {
			if s := l.localize(id, 2, []any{"Count", 2}); s == id {
				t.Errorf("%s: %s does not render", lang, id)
			}
		}
	}
	if m := Missing(); len(m) > 0 {
		t.Errorf("missing messages: %v", m)
	}
}

func TestFormats(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	zh := New(Chinese, "")
	en := New(English, "")
	for _, c := range []struct{ got, want string }{
		{zh.Time(at), "2026-03-02 17:30:00 UTC+8"},
		{en.Time(at), "2026-03-02 09:30:00 UTC"},
		{New(English, "Asia/Kolkata").Minute(at), "2026-03-02 15:00 UTC+5:30"},
		{New(English, "America/New_York").Minute(at), "2026-03-02 04:30 UTC-5"},
		{zh.Int(26371), "26,371"},
		{en.Int(-1234567), "-1,234,567"},
		{zh.Money(40959, "CNY"), "¥409.59"},
		{en.Money(40959, "CNY"), "¥409.59"},
		{en.Money(-500, "USD"), "-$5.00"},
		{en.Money(1234, "JPY"), "¥1,234"},
		{en.Money(123456789, "CNY"), "¥1,234,567.89"},
		{en.Money(5, "XYZ"), "0.05 XYZ"},
		{zh.Time(time.Time{}), "从未"},
		{zh.Ago(at.Add(-3*time.Hour), at), "3 小时前"},
		{en.Ago(at.Add(-24*time.Hour*3), at), "3 days ago"},
		{en.Ago(at.Add(-time.Minute), at), "1 min ago"},
		{en.Percent(1, 3), "33.3%"},
		{T(context.Background(), "common.yes"), "yes"},
		{T(With(context.Background(), zh), "common.yes"), "是"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestNegotiate(t *testing.T) {
	for _, c := range []struct{ chosen, accept, want string }{
		{"", "", English},
		{"", "zh-CN,zh;q=0.9,en;q=0.8", Chinese},
		{"", "zh", Chinese},
		{"", "zh-Hans-CN", Chinese},
		{"", "en-US,en;q=0.9", English},
		{"", "fr-FR", English},
		{"", "garbage;;;", English},
		{English, "zh-CN", English},
		{Chinese, "en-US", Chinese},
		{"xx", "zh-CN", Chinese},
	} {
		if got := Negotiate(c.chosen, c.accept); got != c.want {
			t.Errorf("Negotiate(%q, %q) = %q, want %q", c.chosen, c.accept, got, c.want)
		}
	}
	if New("", "").Zone.String() != "UTC" || New(Chinese, "").Zone.String() != "Asia/Shanghai" || New(Chinese, "Europe/Berlin").Zone.String() != "Europe/Berlin" {
		t.Error("default zones")
	}
	if !strings.Contains(LanguageName(Chinese), "中文") {
		t.Error(LanguageName(Chinese))
	}
}
