package notify_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/notify"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// tenantDefaults is a user store's tenant_settings.
type tenantDefaults map[string]posfleet.TenantSettings

func (d tenantDefaults) TenantDefaults(_ context.Context, tenant string) (posfleet.TenantSettings, error) {
	return d[tenant], nil
}

// TestDispatchReadersZoneAndLanguage: a channel's messages are in its
// language, else its tenant's default; their times in its route's zone,
// else its tenant's default zone, else the language's, the zone named.
func TestDispatchReadersZoneAndLanguage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		var (
			mu     sync.Mutex
			bodies = map[string]string{}
		)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies[strings.TrimPrefix(r.URL.Path, "/")] = string(b)
			mu.Unlock()
			io.WriteString(w, "ok")
		}))
		defer srv.Close()
		ctx := context.Background()
		for _, c := range []struct{ id, lang string }{{"berlin", "zh-CN"}, {"plain", ""}, {"english", "en"}} {
			addChannel(t, db, channelSpec{id: c.id, typ: posfleet.NotifySlack, url: srv.URL + "/" + c.id})
			if _, err := db.ExecContext(ctx, `UPDATE channels SET language = $2 WHERE id = $1`, c.id, c.lang); err != nil {
				t.Fatal(err)
			}
		}
		// The route of "berlin" names its zone; another route without one
		// comes first.
		for i, r := range []struct{ id, channel, zone string }{{"r-a", "berlin", ""}, {"r-b", "berlin", "Europe/Berlin"}, {"r-c", "english", ""}} {
			if _, err := db.ExecContext(ctx, `INSERT INTO notification_routes (id, tenant, name, channel_id, urgent_only, time_zone, digest, resolved, enabled,
				created_ms, created_by, updated_ms) VALUES ($1, 'acme', $1, $2, false, $3, false, true, true, $4, 'admin', $4)`,
				r.id, r.channel, r.zone, store.Millis(t0.Add(time.Duration(i)*time.Second))); err != nil {
				t.Fatal(err)
			}
		}
		for _, ch := range []string{"berlin", "plain", "english"} {
			addRow(t, db, rowSpec{id: "n-" + ch, channel: ch, alarm: alarmOf("a-"+ch, "T-1", "tamper")})
		}
		o := options("a")
		o.Tenants = tenantDefaults{"acme": {Tenant: "acme", Language: "zh-CN", TimeZone: "Asia/Tokyo"}}
		d := notify.NewDispatcher(db, &notify.Senders{}, o)
		step(t, d, t0.Add(time.Second))
		mu.Lock()
		defer mu.Unlock()
		for ch, want := range map[string][]string{
			// t0 is 10:00 UTC.
			"berlin":  {"紧急告警 tamper", "开始时间：2026-11-22 11:00:00 UTC+1"},
			"plain":   {"紧急告警 tamper", "开始时间：2026-11-22 19:00:00 UTC+9"},
			"english": {"URGENT tamper on acme/T-1", "Opened: 2026-11-22 19:00:00 UTC+9"},
		} {
			for _, w := range want {
				if !strings.Contains(bodies[ch], w) {
					t.Errorf("%s: %q missing from\n%s", ch, w, bodies[ch])
				}
			}
		}

		// Without tenant defaults: the channel's language, and its zone.
		for _, ch := range []string{"plain", "english"} {
			addRow(t, db, rowSpec{id: "n2-" + ch, channel: ch, alarm: alarmOf("a2-"+ch, "T-2", "offline"), created: t0.Add(time.Minute)})
		}
		mu.Unlock()
		d2 := notify.NewDispatcher(db, &notify.Senders{}, options("a"))
		step(t, d2, t0.Add(2*time.Minute))
		mu.Lock()
		for ch, w := range map[string]string{"plain": "Opened: 2026-11-22 10:00:00 UTC\"", "english": "Opened: 2026-11-22 10:00:00 UTC\""} {
			if !strings.Contains(bodies[ch], w) {
				t.Errorf("%s without tenant defaults: %q missing from\n%s", ch, w, bodies[ch])
			}
		}
	})
}
