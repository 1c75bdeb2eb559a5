package alarm

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// A chat robot's URL carries its token: it is as secret as the secret.
const (
	robotURL    = "https://oapi.dingtalk.com/robot/send?access_token=tok-URLSECRET-123"
	robotSecret = "SEC-SIGNING-KEY-456"
)

func ptr(s string) *string { return &s }

// shown fails when the channel as returned carries its URL or secret.
func shown(t *testing.T, v any, secrets ...string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		for _, part := range []string{s, "URLSECRET", "access_token", "/robot/send"} {
			if strings.Contains(string(b), part) {
				t.Errorf("%s shows %q", b, part)
			}
		}
	}
}

func dingtalk(tenant, name string) posfleet.NotifyChannel {
	return posfleet.NotifyChannel{Tenant: tenant, Name: name, Type: posfleet.NotifyDingTalk, Enabled: true}
}

// TestChannels: the URL and secret are written, never shown back (only
// URLHint and HasSecret); an update without them keeps them; a pointer
// to "" removes the secret; names are unique per tenant; defaults.
func TestChannels(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, clk := newStore(db)
		ch, err := s.SaveChannel(ctx, dingtalk("acme", " Ops group "), posfleet.NotifySecrets{URL: ptr(robotURL), Secret: ptr(robotSecret)}, "ana")
		if err != nil {
			t.Fatal(err)
		}
		if ch.ID == "" || ch.Name != "Ops group" || ch.URLHint != "https://oapi.dingtalk.com/…" || !ch.HasSecret ||
			ch.Language != "en" || ch.RatePerHour != DefaultRatePerHour || !ch.Enabled || ch.CreatedBy != "ana" || !ch.Created.Equal(t0) || !ch.Updated.Equal(t0) {
			t.Errorf("created: %+v", ch)
		}
		shown(t, ch, robotURL, robotSecret)

		got, u, sec, err := s.ChannelTarget(ctx, ch.ID)
		if err != nil || u != robotURL || sec != robotSecret || got.ID != ch.ID {
			t.Errorf("target: %+v %q %q %v", got, u, sec, err)
		}

		// An update without URL or secret keeps both.
		clk.Add(time.Hour)
		upd := ch
		upd.Name, upd.Language, upd.RatePerHour, upd.Enabled = "Ops", "zh-CN", 20, false
		upd.URLHint, upd.HasSecret = "", false
		ch2, err := s.SaveChannel(ctx, upd, posfleet.NotifySecrets{}, "bo")
		if err != nil {
			t.Fatal(err)
		}
		if ch2.Name != "Ops" || ch2.Language != "zh-CN" || ch2.RatePerHour != 20 || ch2.Enabled || !ch2.HasSecret ||
			ch2.URLHint != ch.URLHint || ch2.CreatedBy != "ana" || !ch2.Created.Equal(t0) || !ch2.Updated.Equal(t0.Add(time.Hour)) {
			t.Errorf("updated: %+v", ch2)
		}
		if _, u, sec, _ := s.ChannelTarget(ctx, ch.ID); u != robotURL || sec != robotSecret {
			t.Errorf("after update: %q %q", u, sec)
		}
		// A new URL, the secret removed.
		ch3, err := s.SaveChannel(ctx, upd, posfleet.NotifySecrets{URL: ptr("http://10.0.0.5:8080/hook?k=1"), Secret: ptr("")}, "bo")
		if err != nil {
			t.Fatal(err)
		}
		if ch3.HasSecret || ch3.URLHint != "http://10.0.0.5:8080/…" {
			t.Errorf("new URL, no secret: %+v", ch3)
		}

		// Lists, by tenant.
		if _, err := s.SaveChannel(ctx, posfleet.NotifyChannel{Tenant: "zeta", Name: "Ops", Type: posfleet.NotifyEmail, To: []string{"Ops Desk <ops@zeta.example>", "a@zeta.example", "A@zeta.example"}}, posfleet.NotifySecrets{URL: ptr(robotURL), Secret: ptr(robotSecret)}, "root"); err != nil {
			t.Fatal(err)
		}
		all, err := s.Channels(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].Tenant != "acme" || all[1].Tenant != "zeta" {
			t.Fatalf("channels: %+v", all)
		}
		shown(t, all, robotURL, robotSecret)
		// An e-mail channel keeps bare addresses, once each, and no URL.
		if z := all[1]; !slices.Equal(z.To, []string{"ops@zeta.example", "a@zeta.example"}) || z.URLHint != "" || z.HasSecret {
			t.Errorf("e-mail channel: %+v", z)
		}
		acme, err := s.Channels(ctx, "acme")
		if err != nil || len(acme) != 1 || acme[0].ID != ch.ID {
			t.Errorf("channels of acme: %+v, %v", acme, err)
		}

		// Names are unique per tenant, on create and on rename.
		_, err = s.SaveChannel(ctx, dingtalk("acme", "Ops"), posfleet.NotifySecrets{URL: ptr(robotURL)}, "ana")
		wantKind(t, err, posfleet.Conflict)
		other, err := s.SaveChannel(ctx, dingtalk("acme", "Night"), posfleet.NotifySecrets{URL: ptr(robotURL)}, "ana")
		if err != nil {
			t.Fatal(err)
		}
		other.Name = "Ops"
		_, err = s.SaveChannel(ctx, other, posfleet.NotifySecrets{}, "ana")
		wantKind(t, err, posfleet.Conflict)
		// A channel cannot move to another tenant; an unknown ID is not found.
		other.Name, other.Tenant = "Night", "zeta"
		_, err = s.SaveChannel(ctx, other, posfleet.NotifySecrets{}, "ana")
		wantKind(t, err, posfleet.Invalid)
		_, err = s.SaveChannel(ctx, posfleet.NotifyChannel{ID: "nope", Tenant: "acme", Name: "x", Type: posfleet.NotifySlack}, posfleet.NotifySecrets{URL: ptr(robotURL)}, "ana")
		wantKind(t, err, posfleet.NotFound)
		_, err = s.Channel(ctx, "nope")
		wantKind(t, err, posfleet.NotFound)

		// Deleting a channel deletes its routes.
		r, err := s.SaveRoute(ctx, posfleet.NotifyRoute{Channel: other.ID, Enabled: true}, "ana")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteChannel(ctx, other.ID); err != nil {
			t.Fatal(err)
		}
		_, err = s.Route(ctx, r.ID)
		wantKind(t, err, posfleet.NotFound)
		wantKind(t, s.DeleteChannel(ctx, other.ID), posfleet.NotFound)
	})
}

// TestChannelValidation: every rule of a channel is a posfleet.Invalid
// error, whose message never quotes the URL or the secret.
func TestChannelValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		mails := make([]string, 21)
		for i := range mails {
			mails[i] = string(rune('a'+i)) + "@x.example"
		}
		for _, c := range []struct {
			name string
			ch   posfleet.NotifyChannel
			sec  posfleet.NotifySecrets
		}{
			{"no tenant", posfleet.NotifyChannel{Name: "n", Type: posfleet.NotifySlack}, posfleet.NotifySecrets{URL: ptr(robotURL)}},
			{"no name", posfleet.NotifyChannel{Tenant: "acme", Name: "  ", Type: posfleet.NotifySlack}, posfleet.NotifySecrets{URL: ptr(robotURL)}},
			{"long name", posfleet.NotifyChannel{Tenant: "acme", Name: strings.Repeat("n", 81), Type: posfleet.NotifySlack}, posfleet.NotifySecrets{URL: ptr(robotURL)}},
			{"control in name", posfleet.NotifyChannel{Tenant: "acme", Name: "a\tb", Type: posfleet.NotifySlack}, posfleet.NotifySecrets{URL: ptr(robotURL)}},
			{"type", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: "telegram"}, posfleet.NotifySecrets{URL: ptr(robotURL)}},
			{"no url", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyWebhook}, posfleet.NotifySecrets{Secret: ptr(robotSecret)}},
			{"ftp url", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyWebhook}, posfleet.NotifySecrets{URL: ptr("ftp://h.example/URLSECRET")}},
			{"no host", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyWebhook}, posfleet.NotifySecrets{URL: ptr("https:///URLSECRET")}},
			{"user in url", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyWebhook}, posfleet.NotifySecrets{URL: ptr("https://u:URLSECRET@h.example/")}},
			{"bad url", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyWebhook}, posfleet.NotifySecrets{URL: ptr("https://h.example/%zzURLSECRET")}},
			{"control in secret", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyWebhook}, posfleet.NotifySecrets{URL: ptr(robotURL), Secret: ptr("SEC-SIGNING-KEY-456\x00")}},
			{"long secret", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyWebhook}, posfleet.NotifySecrets{URL: ptr(robotURL), Secret: ptr(robotSecret + strings.Repeat("k", MaxSecretLen))}},
			{"no recipients", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyEmail}, posfleet.NotifySecrets{}},
			{"blank recipients", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyEmail, To: []string{" "}}, posfleet.NotifySecrets{}},
			{"bad recipient", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyEmail, To: []string{"ops@x.example", "not an address"}}, posfleet.NotifySecrets{}},
			{"21 recipients", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifyEmail, To: mails}, posfleet.NotifySecrets{}},
			{"language", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifySlack, Language: "fr"}, posfleet.NotifySecrets{URL: ptr(robotURL)}},
			{"negative rate", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifySlack, RatePerHour: -1}, posfleet.NotifySecrets{URL: ptr(robotURL)}},
			{"rate over", posfleet.NotifyChannel{Tenant: "acme", Name: "n", Type: posfleet.NotifySlack, RatePerHour: MaxRatePerHour + 1}, posfleet.NotifySecrets{URL: ptr(robotURL)}},
		} {
			t.Run(c.name, func(t *testing.T) {
				_, err := s.SaveChannel(ctx, c.ch, c.sec, "ana")
				wantKind(t, err, posfleet.Invalid)
				if m := err.Error(); strings.Contains(m, "URLSECRET") || strings.Contains(m, "SIGNING") {
					t.Errorf("the error shows a secret: %s", m)
				}
			})
		}
		if all, err := s.Channels(ctx, ""); err != nil || len(all) != 0 {
			t.Errorf("stored: %+v, %v", all, err)
		}
		// The limits themselves are fine.
		ch, err := s.SaveChannel(ctx, posfleet.NotifyChannel{Tenant: "acme", Name: strings.Repeat("名", 80), Type: posfleet.NotifyEmail, To: mails[:20], RatePerHour: MaxRatePerHour}, posfleet.NotifySecrets{}, "ana")
		if err != nil || len(ch.To) != 20 || ch.RatePerHour != MaxRatePerHour {
			t.Errorf("at the limits: %+v, %v", ch, err)
		}
	})
}

// TestRoutes: a route's channel must exist in its tenant; kinds are flag
// names or "incident"; quiet hours come in pairs of HH:MM; the time zone
// loads; a digest gets 09:00 by default. routesFor gives the enabled
// routes of enabled channels.
func TestRoutes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, clk := newStore(db)
		acme, err := s.SaveChannel(ctx, dingtalk("acme", "Ops"), posfleet.NotifySecrets{URL: ptr(robotURL)}, "ana")
		if err != nil {
			t.Fatal(err)
		}
		zeta, err := s.SaveChannel(ctx, dingtalk("zeta", "Ops"), posfleet.NotifySecrets{URL: ptr(robotURL)}, "ana")
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.SaveRoute(ctx, posfleet.NotifyRoute{
			Name: " Urgent at night ", Channel: acme.ID, Kinds: []string{"tamper", "incident", "tamper"}, UrgentOnly: true,
			Regions: []string{" Chengdu ", "", "chengdu", "成都"}, QuietStart: "22:00", QuietEnd: "07:00", TimeZone: "Asia/Shanghai",
			Digest: true, Resolved: true, Enabled: true,
		}, "ana")
		if err != nil {
			t.Fatal(err)
		}
		if r.ID == "" || r.Tenant != "acme" || r.Name != "Urgent at night" || !slices.Equal(r.Kinds, []string{"tamper", "incident"}) ||
			!slices.Equal(r.Regions, []string{"Chengdu", "成都"}) || r.DigestAt != DefaultDigestAt || !r.UrgentOnly || !r.Resolved ||
			r.CreatedBy != "ana" || !r.Created.Equal(t0) {
			t.Errorf("route: %+v", r)
		}
		clk.Add(time.Minute)
		r.Kinds, r.Regions, r.QuietStart, r.QuietEnd, r.Digest, r.DigestAt = nil, nil, "", "", false, ""
		r2, err := s.SaveRoute(ctx, r, "bo")
		if err != nil {
			t.Fatal(err)
		}
		if r2.ID != r.ID || r2.Kinds != nil || r2.Regions != nil || r2.DigestAt != "" || r2.CreatedBy != "ana" || !r2.Updated.Equal(t0.Add(time.Minute)) {
			t.Errorf("updated: %+v", r2)
		}
		off, err := s.SaveRoute(ctx, posfleet.NotifyRoute{Tenant: "acme", Channel: acme.ID}, "ana")
		if err != nil {
			t.Fatal(err)
		}
		zr, err := s.SaveRoute(ctx, posfleet.NotifyRoute{Channel: zeta.ID, Enabled: true}, "ana")
		if err != nil || zr.Tenant != "zeta" {
			t.Fatalf("zeta's route: %+v, %v", zr, err)
		}
		all, err := s.Routes(ctx, "")
		if err != nil || len(all) != 3 {
			t.Fatalf("routes: %+v, %v", all, err)
		}
		mine, err := s.Routes(ctx, "acme")
		if err != nil || len(mine) != 2 {
			t.Fatalf("routes of acme: %+v, %v", mine, err)
		}

		// routesFor: the enabled route of acme, until its channel is off.
		got, err := routesFor(ctx, db, "acme")
		if err != nil || len(got) != 1 || got[0].ID != r.ID || got[0].Name != r2.Name {
			t.Errorf("routesFor: %+v, %v", got, err)
		}
		acme.Enabled = false
		if _, err := s.SaveChannel(ctx, acme, posfleet.NotifySecrets{}, "ana"); err != nil {
			t.Fatal(err)
		}
		if got, err := routesFor(ctx, db, "acme"); err != nil || len(got) != 0 {
			t.Errorf("routesFor, channel disabled: %+v, %v", got, err)
		}

		for _, c := range []struct {
			name string
			r    posfleet.NotifyRoute
		}{
			{"no channel", posfleet.NotifyRoute{Tenant: "acme"}},
			{"unknown channel", posfleet.NotifyRoute{Tenant: "acme", Channel: "nope"}},
			{"another tenant's channel", posfleet.NotifyRoute{Tenant: "acme", Channel: zeta.ID}},
			{"kind", posfleet.NotifyRoute{Channel: acme.ID, Kinds: []string{"tampered"}}},
			{"empty kind", posfleet.NotifyRoute{Channel: acme.ID, Kinds: []string{""}}},
			{"quiet start only", posfleet.NotifyRoute{Channel: acme.ID, QuietStart: "22:00"}},
			{"quiet end only", posfleet.NotifyRoute{Channel: acme.ID, QuietEnd: "07:00"}},
			{"quiet 24:00", posfleet.NotifyRoute{Channel: acme.ID, QuietStart: "24:00", QuietEnd: "07:00"}},
			{"quiet 7:00", posfleet.NotifyRoute{Channel: acme.ID, QuietStart: "22:00", QuietEnd: "7:00"}},
			{"quiet empty window", posfleet.NotifyRoute{Channel: acme.ID, QuietStart: "22:00", QuietEnd: "22:00"}},
			{"time zone", posfleet.NotifyRoute{Channel: acme.ID, TimeZone: "Mars/Olympus"}},
			{"local time zone", posfleet.NotifyRoute{Channel: acme.ID, TimeZone: "Local"}},
			{"digest at", posfleet.NotifyRoute{Channel: acme.ID, Digest: true, DigestAt: "9am"}},
			{"region with comma", posfleet.NotifyRoute{Channel: acme.ID, Regions: []string{"a,b"}}},
			{"long name", posfleet.NotifyRoute{Channel: acme.ID, Name: strings.Repeat("n", 81)}},
			{"moved to another tenant", posfleet.NotifyRoute{ID: r.ID, Tenant: "zeta", Channel: zeta.ID}},
		} {
			t.Run(c.name, func(t *testing.T) {
				_, err := s.SaveRoute(ctx, c.r, "ana")
				wantKind(t, err, posfleet.Invalid)
			})
		}
		_, err = s.SaveRoute(ctx, posfleet.NotifyRoute{ID: "nope", Channel: acme.ID}, "ana")
		wantKind(t, err, posfleet.NotFound)

		if err := s.DeleteRoute(ctx, off.ID); err != nil {
			t.Fatal(err)
		}
		wantKind(t, s.DeleteRoute(ctx, off.ID), posfleet.NotFound)
		if mine, err := s.Routes(ctx, "acme"); err != nil || len(mine) != 1 {
			t.Errorf("after delete: %+v, %v", mine, err)
		}
	})
}
