package main

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/posfleet/posfleet"
)

// TestAlarmBrowserWorkflow: an administrator signs in with a real browser
// (Debian's chromium) against `posfleet serve` run as a child process,
// opens the alarm list, opens a tamper alarm, acknowledges it, assigns it
// to a crew, comments and snoozes it, and sees each step in its state and
// history; then the crew's visit is recorded (the evidence clears: a
// visit ends a tamper) and the page shows the alarm resolved.
func TestAlarmBrowserWorkflow(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil && os.Getenv("CI") == "" {
		t.Skip("chromium not installed")
	}
	s := prepareAlarmServe(t, 2, "--alarm-debounce", "2s")
	add := exec.Command(s.bin, "--data-dir", s.dir, "users", "add", "root", "--admin")
	add.Env = append(os.Environ(), "POSFLEET_PASSWORD=correct horse battery")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("posfleet users add root --admin: %v\n%s", err, out)
	}
	s.start(t)
	tamper(t, s.mqtt, 1)
	var alarmID string
	within(t, 15*time.Second, "the tamper alarm in GET /api/v1/alarms", func() bool {
		a := s.alarms(t, "kind=tamper&terminal=T-0001")
		if len(a) == 1 {
			alarmID = a[0].ID
		}
		return alarmID != ""
	})

	bctx := browser(t)
	byID := func(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	// state is the text of #alarm-state, "" while the page is loading.
	state := func() string {
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector("#alarm-state") || {textContent: ""}).textContent.trim().toLowerCase()`))
		if err != nil {
			return ""
		}
		return v
	}
	history := func() string {
		v, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("#history tr")).map(r => r.textContent.replace(/\s+/g, " ").trim()).join("\n")`))
		return v
	}
	// waitPage polls the page for up to 10 s: a submitted form returns
	// before the next page is there.
	waitPage := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the alarm page never showed %s: state %q, history:\n%s", what, state(), history())
			}
		}
	}
	// submit clicks a form's submit button, as a user does.
	submit := func(form string) {
		t.Helper()
		ok := eval(`(() => {
			const f = document.querySelector("form#` + form + `");
			if (!f) return "no form";
			const b = f.querySelector("[type=submit], button:not([type])");
			if (b) b.click(); else f.requestSubmit();
			return "ok";
		})()`)
		if ok != "ok" {
			t.Fatalf("form#%s: %s on the alarm page", form, ok)
		}
	}

	do("desktop width", chromedp.EmulateViewport(1366, 900))
	do("sign in",
		chromedp.Navigate(s.base+"/"),
		chromedp.WaitVisible(byID("signin")),
		chromedp.SendKeys(byID("signin-name"), "root"),
		chromedp.SendKeys(byID("signin-password"), "correct horse battery"),
		chromedp.Click(byID("signin-submit")),
		chromedp.WaitVisible(byID("user")),
	)
	do("the alarm list", chromedp.Navigate(s.base+"/alarms"), chromedp.WaitVisible(chromedp.CSS(`tr[data-alarm-id]`)))
	row := chromedp.CSS(`tr[data-alarm-id="` + alarmID + `"]`)
	if rowText := eval(`(document.querySelector('tr[data-alarm-id="` + alarmID + `"]') || {textContent: "(missing)"}).textContent`); !strings.Contains(strings.ToLower(rowText), "tamper") || !strings.Contains(rowText, "T-0001") {
		t.Fatalf("the alarm list's row of %s: %q; want the tamper of T-0001", alarmID, rowText)
	}
	shoot(t, bctx, "alarms")
	// Open it from its row (its link), or at its address when the row
	// has no link.
	if eval(`String(!!document.querySelector('tr[data-alarm-id="`+alarmID+`"] a'))`) == "true" {
		do("open the alarm", chromedp.Click(chromedp.CSS(string(row)+" a")))
	} else {
		do("open the alarm", chromedp.Navigate(s.base+"/alarms/"+alarmID))
	}
	waitPage("the alarm open", func() bool { return strings.Contains(state(), "open") })

	submit("ack")
	waitPage("acknowledged", func() bool { return strings.Contains(state(), "acknowledged") })

	do("assignee", chromedp.SendKeys(chromedp.CSS(`form#assign [name="assignee"]`), "crew-chengdu"))
	submit("assign")
	waitPage("assigned to crew-chengdu", func() bool {
		return strings.Contains(state(), "assigned") && strings.Contains(history(), "crew-chengdu")
	})

	const comment = "Crew on the way; the merchant says the case seal looks broken."
	do("comment", chromedp.SendKeys(chromedp.CSS(`form#comment textarea[name="text"]`), comment))
	submit("comment")
	waitPage("the comment in the history", func() bool { return strings.Contains(history(), "case seal looks broken") })

	// Snooze for the first duration the form offers.
	if v := eval(`(() => {
		const s = document.querySelector('form#snooze select[name="for"]');
		if (!s) return "";
		const o = Array.from(s.options).find(o => o.value !== "");
		if (!o) return "";
		s.value = o.value;
		s.dispatchEvent(new Event("change", {bubbles: true}));
		return o.value;
	})()`); v == "" {
		t.Fatal(`no form#snooze select[name="for"] with a duration on the alarm page`)
	}
	submit("snooze")
	waitPage("the snooze in the history", func() bool { return strings.Contains(strings.ToLower(history()), "snooze") })
	if d := s.alarm(t, alarmID); !d.Alarm.SnoozedUntil.After(time.Now()) || d.Alarm.State != posfleet.AlarmAssigned || d.Alarm.AckBy != "root" || d.Alarm.Assignee != "crew-chengdu" {
		t.Errorf("after the page's actions the API shows %+v; want acknowledged by root, assigned to crew-chengdu, snoozed", d.Alarm)
	}
	h := strings.ToLower(history())
	for _, want := range []string{"raised", "acknowledged", "assigned", "comment", "snooze"} {
		if !strings.Contains(h, want) {
			t.Errorf("the alarm's history on the page has no %q:\n%s", want, h)
		}
	}
	rows := eval(`String(document.querySelectorAll("#history tr").length)`)
	t.Logf("the alarm page shows state %q and %s history rows", state(), rows)
	shoot(t, bctx, "alarm")

	// The crew's visit clears the tamper: the evidence is gone, and the
	// alarm resolves (at once, or after the 2 s debounce).
	code, b := apiDo(t, "POST", s.base+"/api/v1/terminals/acme/T-0001/serviced", s.token, `{"note":"case replaced, seal intact"}`)
	if code != http.StatusOK {
		t.Fatalf("POST /api/v1/terminals/acme/T-0001/serviced: %d %s", code, b)
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(state(), "resolved"); {
		if time.Now().After(deadline) {
			t.Fatalf("the alarm page still shows %q 20 s after the visit cleared the tamper; history:\n%s", state(), history())
		}
		time.Sleep(500 * time.Millisecond)
		do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#alarm-state")))
	}
	if !strings.Contains(strings.ToLower(history()), "resolved") {
		t.Errorf("resolved, but the history does not say so:\n%s", history())
	}
	if d := s.alarm(t, alarmID); d.Alarm.State != posfleet.AlarmResolved {
		t.Errorf("the page shows resolved, the API %s", d.Alarm.State)
	}
	shoot(t, bctx, "alarm-resolved")
}
