package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web"
)

// TestAlarmsAndNotificationsChinese: a zh-CN user in Asia/Shanghai reads
// the alarm list, an alarm's page (after an action), a bulk action's
// confirmation and the notifications page in Chinese, every message in
// the catalogue, times in UTC+8 with the zone named.
func TestAlarmsAndNotificationsChinese(t *testing.T) {
	var users *auth.Store
	f := newAlarmFixture(t, func(o *web.Options) { users = o.Users.(*auth.Store) })
	ctx := context.Background()
	for _, u := range []string{"ops-acme", "root"} {
		if err := users.SetPreferences(ctx, u, locale.Chinese, "Asia/Shanghai"); err != nil {
			t.Fatal(err)
		}
	}
	f.notes.addChannel(posfleet.NotifyChannel{ID: "ch-a", Tenant: "acme", Name: "运维群", Type: posfleet.NotifyDingTalk, Language: "zh-CN", Enabled: true, RatePerHour: 1000})
	f.notes.routes["r-a"] = &posfleet.NotifyRoute{ID: "r-a", Tenant: "acme", Name: "全部", Channel: "ch-a", Kinds: []string{"tamper", "incident"},
		TimeZone: "Asia/Shanghai", QuietStart: "22:00", QuietEnd: "07:00", Enabled: true}
	f.notes.recent = []posfleet.Notification{{ID: "n-1", Tenant: "acme", Channel: "ch-a", Event: posfleet.NotifyRaised, State: posfleet.NotificationSent,
		Attempts: 1, Created: f.now, Due: f.now, Sent: f.now, Alarm: f.alarms.get("a-tamper")}}

	c, csrf := f.session(t, "ops-acme")
	var pages []string
	add := func(page string) { pages = append(pages, page) }
	list, _ := f.page(t, c, "/alarms?done=bulk-acknowledge&n=2", 200)
	add(list)
	resp, body := post(t, c, f.srv.URL+"/alarms/a-tamper/acknowledge", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("acknowledge: %s %.300s", resp.Status, body)
	}
	page, ids := f.page(t, c, resp.Header.Get("Location"), 200)
	add(page)
	if got := one(t, ids, "notice"); got != "已确认：此告警由您负责。" {
		t.Errorf("notice %q", got)
	}
	page, _ = f.page(t, c, "/alarms/a-incident", 200)
	add(page)
	resp, body = post(t, c, f.srv.URL+"/alarms/bulk", url.Values{"csrf": {csrf}, "action": {"assign"}, "assignee": {"crew-9"}, "id": {"a-tamper", "a-offline"}, "back": {"/alarms"}})
	if resp.StatusCode != http.StatusOK || one(t, testIDs(t, body), "bulk-question") != "将 2 条告警指派给 crew-9？" {
		t.Errorf("bulk confirmation: %s %v", resp.Status, testIDs(t, body)["bulk-question"])
	}
	add(body)
	// A bulk action that fails in part says why in Chinese.
	resp, body = post(t, c, f.srv.URL+"/alarms/bulk", url.Values{"csrf": {csrf}, "action": {"assign"}, "assignee": {"crew-9"},
		"id": {"a-offline", "o-tamper"}, "back": {"/alarms"}, "confirm": {"yes"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "没有这条告警，或您无权查看。") || !strings.Contains(body, "已将 1 条告警指派给 crew-9。") {
		t.Errorf("partial failure: %s %.2000s", resp.Status, body)
	}
	add(body)
	// Refused forms say why in Chinese.
	resp, body = post(t, c, f.srv.URL+"/alarms/bulk", url.Values{"csrf": {csrf}, "action": {"acknowledge"}, "back": {"/alarms"}})
	if resp.StatusCode != http.StatusBadRequest || one(t, testIDs(t, body), "alarms-error") != "请至少选择一条告警。" {
		t.Errorf("nothing selected: %s %v", resp.Status, testIDs(t, body)["alarms-error"])
	}
	resp, body = post(t, c, f.srv.URL+"/alarms/a-tamper/assign", url.Values{"csrf": {csrf}, "assignee": {" "}})
	if resp.StatusCode != http.StatusBadRequest || one(t, testIDs(t, body), "action-error") != "请填写指派给谁：用户或上门维护小组。" {
		t.Errorf("assign to nobody: %s %v", resp.Status, testIDs(t, body)["action-error"])
	}

	root, rootCSRF := f.session(t, "root")
	resp, body = post(t, root, f.srv.URL+"/notifications/routes", url.Values{"csrf": {rootCSRF}, "name": {"夜间"}, "channel": {"ch-a"},
		"quiet_start": {"22:00"}, "time_zone": {"Mars/Olympus"}})
	if resp.StatusCode != http.StatusBadRequest || one(t, testIDs(t, body), "notify-error") != "请同时填写免打扰时段的开始和结束时间，或都不填。" {
		t.Errorf("half quiet hours: %s %v", resp.Status, testIDs(t, body)["notify-error"])
	}
	add(body)
	page, _ = f.page(t, root, "/notifications?done=route-saved", 200)
	add(page)

	if m := locale.Missing(); len(m) > 0 {
		t.Fatalf("messages missing from the catalogue: %v", m)
	}
	all := strings.Join(pages, "\n")
	// 09:00 UTC is 17:00 in Shanghai.
	for _, want := range []string{"已确认 2 条告警。", "告警", "防拆", "未处理", "至明天 09:00（Asia/Shanghai）", "2026-03-02 17:00:00 UTC+8",
		"规则已保存。", "钉钉", "1,000", "告警产生", "已发送", "防拆触发、故障事件"} {
		if !strings.Contains(all, want) {
			t.Errorf("the zh-CN pages lack %q", want)
		}
	}
	text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(all, "\n")
	for _, english := range []string{"Acknowledge", "Assign", "Snooze", "Channels", "Routes", "UTC\n", "not resolved"} {
		if strings.Contains(text, english) {
			t.Errorf("the zh-CN pages show %q", english)
		}
	}
}
