package audit_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/audit"
)

// TestPagePaging: the page shows its entries, the count, the export link
// with the filters, and links to the pages either side only when there
// are such pages.
func TestPagePaging(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	e := posfleet.AuditEntry{At: at, Actor: "王芳", ActorKind: "user", Tenant: "acme", Action: "command", Target: "acme:T-1", Outcome: "forbidden"}
	for _, c := range []struct {
		name       string
		page       int
		prev, next bool
	}{{"first", 1, false, true}, {"middle", 2, true, true}, {"last", 3, true, false}} {
		t.Run(c.name, func(t *testing.T) {
			v := audit.View{Entries: []posfleet.AuditEntry{e, e}, Total: 6, Page: c.page, PageSize: 2, Action: "command", Query: "action=command"}
			var b bytes.Buffer
			if err := audit.Page(v).Render(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
			page := b.String()
			if n := strings.Count(page, `data-testid="audit-entry"`); n != 2 {
				t.Errorf("%d entries shown", n)
			}
			if !strings.Contains(page, "王芳") || !strings.Contains(page, `href="/audit.csv?action=command"`) {
				t.Errorf("actor or export link missing")
			}
			if got := strings.Contains(page, `data-testid="audit-prev"`); got != c.prev {
				t.Errorf("newer link: %v", got)
			}
			if got := strings.Contains(page, `data-testid="audit-next"`); got != c.next {
				t.Errorf("older link: %v", got)
			}
		})
	}
}

// TestPageInChinese: a Chinese reader in Asia/Shanghai reads the actions,
// outcomes and counts in Chinese and the times in UTC+8; the codes stay
// beside the names.
func TestPageInChinese(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	es := []posfleet.AuditEntry{
		{At: at, Actor: "王芳", ActorKind: posfleet.ActorUser, Tenant: "acme", Action: "command", Target: "acme:T-1", Outcome: "forbidden"},
		{At: at, Actor: "erp", ActorKind: posfleet.ActorToken, Tenant: "acme", Action: "job_sheet_print", Outcome: "ok"},
	}
	ctx := locale.With(context.Background(), locale.New(locale.Chinese, "Asia/Shanghai"))
	var b bytes.Buffer
	if err := audit.Page(audit.View{Entries: es, Total: 1200, Page: 1, PageSize: 2}).Render(ctx, &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"审计日志", "向终端下发命令", `<code data-testid="audit-action">command</code>`,
		`<code data-testid="audit-action">job_sheet_print</code>`, "已拒绝：无权限", "2026-03-02 17:30:00 UTC+8",
		"第 1–2 条，共 1,200 条", "令牌", "导出 CSV"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, never := range []string{"Times are UTC", "Time (UTC)", "09:30:00", "Actor"} {
		if strings.Contains(page, never) {
			t.Errorf("page has %q", never)
		}
	}
	if m := locale.Missing(); len(m) > 0 {
		t.Errorf("untranslated: %v", m)
	}
}
