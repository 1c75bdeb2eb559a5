package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/terminals"
)

// TestBrowserTerminalListLongNames: in Chromium at 1440 px, a merchant of
// eighty characters ends in an ellipsis (its full name on hover) and
// Region, Model, Firmware and Flags stay on screen; at 390 px nothing
// scrolls sideways. The page is the list's own template and stylesheet.
func TestBrowserTerminalListLongNames(t *testing.T) {
	ctx := browser(t)
	now := time.Now().UTC()
	merchant := strings.Repeat("成都市锦江区春熙路步行街便利店有限公司", 4)
	site := strings.Repeat("Chunxi Road pedestrian street flagship store ", 3)
	flags := []posfleet.Flag{{Name: posfleet.FlagFirmwareOutdated, Kind: posfleet.KindUpdate},
		{Name: posfleet.FlagHardwareFault, Kind: posfleet.KindMaintenance}, {Name: posfleet.FlagAmountMismatch, Kind: posfleet.KindInvestigate}}
	v := terminals.View{Now: now, Total: 2, Page: 1, Pages: 1, First: 1, Sorts: []string{"terminal"},
		Rows: []terminals.Row{
			{Tenant: "acme", Terminal: "T-0001", Href: "/terminals/acme/T-0001", Online: true, LastSeen: now, Model: "A920", Firmware: "2.4.1",
				Merchant: merchant, Site: site, Address: "成都市锦江区春熙路 8 号", Region: "Chengdu", Flags: flags},
			{Tenant: "acme", Terminal: "T-0002", Href: "/terminals/acme/T-0002", Online: true, LastSeen: now, Model: "A920", Firmware: "2.4.3",
				Merchant: "M-2", Site: "Shop 2", Region: "Chengdu"},
		}}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.Dir("../../web/static"))))
	mux.HandleFunc("GET /terminals", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		lctx := locale.With(r.Context(), locale.New(locale.Chinese, "Asia/Shanghai"))
		if err := terminals.Page(v).Render(lctx, &b); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b.Bytes())
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	check := func(width int64, js string) bool {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 900), chromedp.Navigate(srv.URL+"/terminals"),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="terminals"]`))); err != nil {
			t.Fatal(err)
		}
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return ok
	}
	desktop := `(() => {
		const m = document.querySelector('[data-testid="merchant"]');
		const flags = document.querySelector('td[data-label="异常标记"]');
		return m.scrollWidth > m.clientWidth && m.title === ` + "`" + merchant + "`" + ` &&
			flags.getBoundingClientRect().right <= window.innerWidth &&
			document.documentElement.scrollWidth <= window.innerWidth;
	})()`
	if !check(1440, desktop) {
		t.Error("at 1440 px the merchant is not cut with its name on hover, or the flags are off screen")
	}
	shoot(t, ctx, "terminals-long-names")
	if !check(390, `document.documentElement.scrollWidth <= window.innerWidth`) {
		t.Error("at 390 px the list scrolls sideways")
	}
}
