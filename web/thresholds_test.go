package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web"
)

// memThresholds keeps the thresholds' versions in memory and applies each
// to an engine, as the server does with the database.
type memThresholds struct {
	mu     sync.Mutex
	vs     []web.ThresholdsVersion // oldest first
	engine *health.Engine
}

func newMemThresholds(e *health.Engine) *memThresholds { return &memThresholds{engine: e} }

func (m *memThresholds) CurrentThresholds(context.Context) (web.ThresholdsVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.vs) == 0 {
		return web.ThresholdsVersion{Thresholds: &health.Thresholds{}}, nil
	}
	v := m.vs[len(m.vs)-1]
	v.Thresholds = v.Thresholds.Clone()
	return v, nil
}

func (m *memThresholds) SaveThresholds(_ context.Context, d *health.Thresholds, by string, base int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if base != int64(len(m.vs)) {
		return 0, posfleet.Errorf(posfleet.Conflict, "conflict", "changed meanwhile")
	}
	v := int64(len(m.vs) + 1)
	if m.engine != nil {
		if err := m.engine.SetThresholds(d, v); err != nil {
			return 0, err
		}
	}
	m.vs = append(m.vs, web.ThresholdsVersion{Version: v, CreatedAt: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).Add(time.Duration(v) * time.Minute),
		CreatedBy: by, Thresholds: d.Clone()})
	return v, nil
}

func (m *memThresholds) ThresholdsHistory(_ context.Context, n int) ([]web.ThresholdsVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []web.ThresholdsVersion{}
	for i := len(m.vs) - 1; i >= 0 && len(out) < n; i-- {
		v := m.vs[i]
		v.Thresholds = v.Thresholds.Clone()
		out = append(out, v)
	}
	return out, nil
}

// tdo is f.do with a JSON answer compacted.
func tdo(t *testing.T, f *roleFixture, who, method, path, body string) (int, string) {
	t.Helper()
	code, out := f.do(t, who, method, path, body)
	var b bytes.Buffer
	if json.Compact(&b, []byte(out)) == nil {
		out = b.String()
	}
	return code, out
}

func thresholdsJSON(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return m
}

// TestThresholdsAPI: an administrator sets any tenant's thresholds, a
// tenant administrator only their own; everyone reads their own tenant's
// part; refusals name the field; the history lists who changed what.
func TestThresholdsAPI(t *testing.T) {
	f := newRoleFixture(t)
	code, body := tdo(t, f, "root", "PUT", "/api/v1/thresholds",
		`{"tenants":{"acme":{"txn_failures.rate":0.15,"models":{"A920":{"battery.low_pct":25}}},"other":{"offline.after":600}}}`)
	if code != http.StatusOK {
		t.Fatalf("admin PUT: %d %s", code, body)
	}
	// The engine applies it: acme's A920 terminals (battery 5%) judge by 25%.
	if got := f.engine.ThresholdsFor("acme", "A920"); got[0].Name != "offline.after" {
		t.Fatalf("thresholds for: %v", got)
	}
	code, body = tdo(t, f, "acme-viewer", "GET", "/api/v1/thresholds", "")
	if code != http.StatusOK || strings.Contains(body, "other") || !strings.Contains(body, `"txn_failures.rate":0.15`) {
		t.Errorf("acme viewer GET: %d %s", code, body)
	}
	code, body = tdo(t, f, "root", "GET", "/api/v1/thresholds", "")
	if code != http.StatusOK || !strings.Contains(body, `"other":{"offline.after":600}`) {
		t.Errorf("admin GET: %d %s", code, body)
	}
	// A tenant administrator changes their tenant's part; the other
	// tenant's stays.
	code, body = tdo(t, f, "acme-tenant_admin", "PUT", "/api/v1/thresholds", `{"tenants":{"acme":{"txn_failures.rate":0.25}}}`)
	if code != http.StatusOK || strings.Contains(body, "other") {
		t.Fatalf("tenant admin PUT: %d %s", code, body)
	}
	if _, body = tdo(t, f, "root", "GET", "/api/v1/thresholds", ""); !strings.Contains(body, `"other":{"offline.after":600}`) || strings.Contains(body, "A920") {
		t.Errorf("after the tenant's change: %s", body)
	}
	for _, c := range []struct {
		who, body string
		code      int
		want      string
	}{
		{"acme-tenant_admin", `{"tenants":{"other":{"offline.after":60}}}`, http.StatusForbidden, "tenants.other"},
		{"acme-operator", `{"tenants":{"acme":{"offline.after":60}}}`, http.StatusForbidden, ""},
		{"acme-viewer", `{"tenants":{"acme":{"offline.after":60}}}`, http.StatusForbidden, ""},
		{"root", `{"tenants":{"acme":{"models":{"A920":{"txn_failures.rate":1.5}}}}}`, http.StatusBadRequest, "tenants.acme.models.A920.txn_failures.rate: 1.5 is above 1"},
		{"acme-tenant_admin", `{"tenants":{"acme":{"offline.after":"soon"}}}`, http.StatusBadRequest, `tenants.acme.offline.after: \"soon\" is not a number`},
	} {
		code, body := tdo(t, f, c.who, "PUT", "/api/v1/thresholds", c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s PUT %s: %d %s, want %d with %q", c.who, c.body, code, body, c.code, c.want)
		}
	}
	// History: the administrator sees both versions with their changes;
	// the other tenant's users see only the version that changed theirs.
	code, body = tdo(t, f, "root", "GET", "/api/v1/thresholds/history", "")
	var h struct {
		Versions []struct {
			Version   int64                    `json:"version"`
			CreatedBy string                   `json:"created_by"`
			Changes   []health.ThresholdChange `json:"changes"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusOK || len(h.Versions) != 2 {
		t.Fatalf("history: %d %s", code, body)
	}
	if v := h.Versions[0]; v.Version != 2 || v.CreatedBy != "acme-tenant_admin" || len(v.Changes) != 2 ||
		v.Changes[0].Field != "tenants.acme.models.A920.battery.low_pct" || v.Changes[0].To != nil ||
		v.Changes[1].Field != "tenants.acme.txn_failures.rate" || *v.Changes[1].From != 0.15 || *v.Changes[1].To != 0.25 {
		t.Errorf("version 2: %+v", v)
	}
	if _, body = tdo(t, f, "acme-viewer", "GET", "/api/v1/thresholds/history", ""); strings.Contains(body, "other") ||
		len(thresholdsJSON(t, body)["versions"].([]any)) != 2 {
		t.Errorf("acme's history: %s", body)
	}
	tdo(t, f, "root", "PUT", "/api/v1/thresholds", `{"tenants":{"acme":{"txn_failures.rate":0.25},"other":{"offline.after":900}}}`)
	if _, body = tdo(t, f, "acme-viewer", "GET", "/api/v1/thresholds/history", ""); len(thresholdsJSON(t, body)["versions"].([]any)) != 2 {
		t.Errorf("acme's history lists a change of another tenant: %s", body)
	}
}

// TestThresholdsYAML: the document exported as YAML imports back the same.
func TestThresholdsYAML(t *testing.T) {
	f := newRoleFixture(t)
	if code, body := tdo(t, f, "root", "PUT", "/api/v1/thresholds", `{"tenants":{"acme":{"txn_failures.rate":0.15,"models":{"A920":{"moved.distance_km":0.5}}}}}`); code != http.StatusOK {
		t.Fatal(code, body)
	}
	_, before := tdo(t, f, "root", "GET", "/api/v1/thresholds", "")
	code, y := tdo(t, f, "root", "GET", "/api/v1/thresholds?format=yaml", "")
	if code != http.StatusOK || !strings.Contains(y, "txn_failures.rate: 0.15") {
		t.Fatalf("YAML export: %d %s", code, y)
	}
	req, _ := http.NewRequest("PUT", f.srv.URL+"/api/v1/thresholds", strings.NewReader(y))
	req.Header.Set("Authorization", "Bearer "+f.tokens["root"])
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Thresholds-Version") != "2" {
		t.Fatalf("YAML import: %d version %s", resp.StatusCode, resp.Header.Get("X-Thresholds-Version"))
	}
	if _, after := tdo(t, f, "root", "GET", "/api/v1/thresholds", ""); after != before {
		t.Errorf("after a YAML round trip:\n%s\nwant\n%s", after, before)
	}
}

// TestThresholdsPage: the page lists every threshold with its default,
// the tenant's and its models' values; a refused value is shown next to
// its field; a model is added and removed; in English and Chinese.
func TestThresholdsPage(t *testing.T) {
	f := newRoleFixture(t)
	code, body := f.do(t, "acme-tenant_admin", "GET", "/admin/thresholds", "")
	if code != http.StatusOK {
		t.Fatalf("page: %d", code)
	}
	for _, w := range []string{`data-threshold="txn_failures.rate"`, `data-threshold="suspect.alpha"`, "Failure share that raises the flag", ">0.2<", "Thresholds of tenant acme"} {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	form := url.Values{"t.txn_failures.rate": {"0.15"}, "add_model": {"A920"}}
	code, body = f.do(t, "acme-tenant_admin", "POST", "/admin/thresholds", form.Encode())
	if code != http.StatusSeeOther {
		t.Fatalf("save: %d %s", code, body)
	}
	_, body = f.do(t, "acme-tenant_admin", "GET", "/admin/thresholds?done=saved", "")
	if !strings.Contains(body, "Model A920") || !strings.Contains(body, `value="0.15"`) || !strings.Contains(body, "thresholds-change") {
		t.Errorf("after saving: %s", body)
	}
	form = url.Values{"t.txn_failures.rate": {"0.15"}, "model.0": {"A920"}, "m.0.txn_failures.rate": {"1.5"}, "m.0.battery.low_pct": {"x"}}
	code, body = f.do(t, "acme-tenant_admin", "POST", "/admin/thresholds", form.Encode())
	if code != http.StatusBadRequest || !strings.Contains(body, `data-field="tenants.acme.models.A920.battery.low_pct"`) ||
		!strings.Contains(body, `value="1.5"`) {
		t.Errorf("refused: %d %s", code, body)
	}
	form = url.Values{"t.txn_failures.rate": {""}, "model.0": {"A920"}, "m.0.txn_failures.rate": {"1.5"}}
	if code, body = f.do(t, "acme-tenant_admin", "POST", "/admin/thresholds", form.Encode()); code != http.StatusBadRequest ||
		!strings.Contains(body, `data-field="tenants.acme.models.A920.txn_failures.rate"`) || !strings.Contains(body, "1.5 is above 1") {
		t.Errorf("1.5: %d", code)
	}
	form = url.Values{"model.0": {"A920"}, "remove.0": {"1"}, "t.offline.after": {"600"}}
	if code, _ = f.do(t, "acme-tenant_admin", "POST", "/admin/thresholds", form.Encode()); code != http.StatusSeeOther {
		t.Fatalf("remove: %d", code)
	}
	if d, _ := f.engine.Thresholds(); len(d.Tenants["acme"].Models) != 0 || d.Tenants["acme"].Values["offline.after"] != 600 || len(d.Tenants["acme"].Values) != 1 {
		t.Errorf("after removing the model: %+v", d.Tenants["acme"])
	}
	// In Chinese.
	req, _ := http.NewRequest("GET", f.srv.URL+"/admin/thresholds", nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["acme-tenant_admin"])
	req.Header.Set("Accept-Language", "zh-CN")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = io.Copy(&sb, resp.Body)
	for _, w := range []string{"告警阈值", "租户 acme 的阈值", "触发告警的失败比例", "修改记录", "由 – 改为 600"} {
		if !strings.Contains(sb.String(), w) {
			t.Errorf("Chinese page lacks %q", w)
		}
	}
	// An administrator picks the tenant.
	if _, body = f.do(t, "root", "GET", "/admin/thresholds", ""); !strings.Contains(body, "tenant-pick") || strings.Contains(body, "thresholds-table") {
		t.Errorf("administrator without a tenant: %s", body)
	}
	if _, body = f.do(t, "root", "GET", "/admin/thresholds?tenant=acme", ""); !strings.Contains(body, `value="600"`) {
		t.Errorf("administrator on acme: no 600")
	}
}
