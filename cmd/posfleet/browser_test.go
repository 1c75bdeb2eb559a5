package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/posfleet/posfleet/influxdb/influxtest"
)

// browser starts headless Chromium (Debian's chromium) for a test. It is
// skipped locally when Chromium is missing, and fails under CI.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium not installed (apt-get install chromium)")
		}
		t.Skip("chromium not installed")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		// The machine has no network: nothing of Chromium's own may dial out.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// screenshotDir is where browser tests leave their screenshots for a
// reviewer: $POSFLEET_SCREENSHOTS, or out/screenshots under the module.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("POSFLEET_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "out", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shoot saves full-page screenshots of the current page at a phone and a
// desktop width.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	for _, size := range []struct {
		label string
		w, h  int64
	}{{"phone", 390, 844}, {"desktop", 1366, 900}} {
		shootAt(t, ctx, fmt.Sprintf("%s-%s.png", name, size.label), size.w, size.h)
	}
}

// shootAt saves a full-page screenshot of the current page at width w
// (viewport height h) as file in screenshotDir; the viewport stays at w.
func shootAt(t *testing.T, ctx context.Context, file string, w, h int64) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatalf("viewport: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir(t), file), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserSignInAndSecurityPage: a vendor signs in with a real browser
// against the real server, sees the refused connection of a terminal with
// a wrong secret on the security page, and signs out.
func TestBrowserSignInAndSecurityPage(t *testing.T) {
	ctx := browser(t)
	influx := influxtest.Start(t)
	srv := testServer(t, influx, 2)
	if err := srv.Users().AddUser(context.Background(), "ops-acme", "acme", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	// A terminal with a wrong secret knocks.
	if c, err := connect(srv.MQTTAddr().String(), "acme:T-0002", "acme:T-0002", "not-the-secret-at-all"); err == nil {
		c.Disconnect(0)
		t.Fatal("wrong secret accepted")
	}
	base := "http://" + srv.HTTPAddr().String()
	byID := func(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/security")); err != nil {
		t.Fatal("navigate:", err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(byID("signin"))); err != nil {
		t.Fatal(err)
	}
	shoot(t, ctx, "signin")
	err := chromedp.Do(ctx,
		chromedp.SendKeys(byID("signin-name"), "ops-acme"),
		chromedp.SendKeys(byID("signin-password"), "correct horse battery"),
		chromedp.Click(byID("signin-submit")),
		chromedp.WaitVisible(byID("security-events")),
	)
	if err != nil {
		t.Fatal(err)
	}
	user, err1 := chromedp.Run(ctx, chromedp.Text(byID("user")))
	events, err2 := chromedp.Run(ctx, chromedp.Text(byID("security-events")))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if user != "ops-acme" || !strings.Contains(events, "auth_failed") || !strings.Contains(events, "acme:T-0002") {
		t.Errorf("user %q; security section: %q", user, events)
	}
	shoot(t, ctx, "security")
	if err := chromedp.Do(ctx, chromedp.Click(byID("sign-out")), chromedp.WaitVisible(byID("signin"))); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.Contains(loc, "/login") {
		t.Fatalf("after sign out: %v, at %s", err, loc)
	}
}
