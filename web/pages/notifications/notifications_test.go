package notifications_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/notifications"
)

var at = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

func view() notifications.View {
	return notifications.View{
		Frame: layout.Page{User: "admin", CSRF: "tok", Alarms: true, Notifications: true},
		Admin: true, Types: posfleet.NotifyChannelTypes,
		Kinds:  []notifications.Option{{Value: "tamper", Label: "Tamper"}, {Value: "offline", Label: "Offline"}},
		States: []posfleet.NotificationState{posfleet.NotificationPending, posfleet.NotificationHeld, posfleet.NotificationSent, posfleet.NotificationFailed, posfleet.NotificationSuppressed, posfleet.NotificationBundled},
		Notice: "saved", Error: "refused", TestFailed: "503", TestChannel: "ch-1", DefaultTimeZone: "Asia/Shanghai",
		Channels: []posfleet.NotifyChannel{
			{ID: "ch-1", Tenant: "acme", Name: "ops robot", Type: posfleet.NotifyDingTalk, URLHint: "https://oapi.dingtalk.com/…", HasSecret: true, Language: "zh-CN", Enabled: true, RatePerHour: 1200},
			{ID: "ch-2", Tenant: "acme", Name: "mail", Type: posfleet.NotifyEmail, To: []string{"ops@acme.example"}, Language: "en", RatePerHour: 60},
		},
		Routes: []posfleet.NotifyRoute{
			{ID: "r-1", Tenant: "acme", Name: "night", Channel: "ch-1", Kinds: []string{"tamper", "offline"}, UrgentOnly: true, QuietStart: "22:00", QuietEnd: "07:00",
				TimeZone: "Asia/Shanghai", Digest: true, DigestAt: "09:00", Resolved: true, Enabled: true},
			{ID: "r-2", Tenant: "acme", Name: "all", Channel: "ch-2"},
		},
		Recent: []posfleet.Notification{
			{ID: "n-1", Channel: "ch-1", Event: posfleet.NotifyRaised, State: posfleet.NotificationSent, Attempts: 1, Created: at, Due: at, Sent: at.Add(time.Second),
				Alarm: posfleet.Alarm{ID: "a-1", Kind: "tamper", Terminal: "T-1"}},
			{ID: "n-2", Channel: "ch-2", Event: posfleet.NotifyDigest, State: posfleet.NotificationFailed, Attempts: 1234, LastError: "550", Created: at, Due: at},
		},
	}
}

func render(t *testing.T, ctx context.Context, v notifications.View) string {
	t.Helper()
	var b bytes.Buffer
	if err := notifications.Page(v).Render(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestChinese: the page of an administrator (forms included) in zh-CN,
// every message in the catalogue, times in the reader's zone with the zone
// named (no "UTC" of its own), numbers with separators.
func TestChinese(t *testing.T) {
	ctx := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	page := render(t, ctx, view())
	v := view()
	v.Channels, v.Routes, v.Recent = nil, nil, nil
	page += render(t, ctx, v)
	if m := locale.Missing(); len(m) > 0 {
		t.Fatalf("messages missing from the catalogue: %v", m)
	}
	for _, want := range []string{"通知渠道", "通知规则", "最近的通知", "钉钉", "邮件", "简体中文", "1,200", "1,234", "已发送", "失败", "告警产生", "每日汇总",
		"2026-03-02 17:30:00 UTC+8", "2026-03-02 17:30:01 UTC+8", "发往 ops robot 的测试消息失败：503", "确认删除 ops robot", "Tamper、Offline",
		"还没有通知渠道。", "请先添加通知渠道。", "没有通知。"} {
		if !strings.Contains(page, want) {
			t.Errorf("the zh-CN page lacks %q", want)
		}
	}
	text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, "\n")
	for _, english := range []string{"Channels", "Routes", "Recent", "Send test", "Delete", "Edit", "yes, delete", "sent", "failed", "UTC\n"} {
		if strings.Contains(text, english) {
			t.Errorf("the zh-CN page shows %q", english)
		}
	}
}

// TestEnglish: the texts the browser tests and people read in English,
// and a sent time in the reader's zone, not always UTC.
func TestEnglish(t *testing.T) {
	ctx := locale.With(context.Background(), locale.New(locale.English, "Europe/Berlin"))
	page := render(t, ctx, view())
	for _, want := range []string{"Channels", "Routes", "Recent notifications", "The test message to ops robot failed: 503", "DingTalk", "1,200",
		"2026-03-02 10:30:01 UTC+1", "yes, delete night", "Tamper, Offline", "unchanged: https://oapi.dingtalk.com/…"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if m := locale.Missing(); len(m) > 0 {
		t.Fatalf("messages missing from the catalogue: %v", m)
	}
}
