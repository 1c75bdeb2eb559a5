package healthview_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

// smallFleet is 45 terminals of every kind in two tenants, two
// provisioned ones that never connected and a crew visit, published.
func smallFleet(t *testing.T, db *store.DB) (*fleet, *healthview.Reader) {
	t.Helper()
	f := newFleet(t)
	for i := range 40 {
		f.add(ref("acme", i), i%7)
	}
	for i := range 5 {
		f.add(ref("other", i), (i+1)%7)
	}
	f.eng.Provision(ref("acme", 900), ref("other", 901))
	if _, err := f.eng.MarkServiced(ref("acme", 1), "paper jam cleared", "crew-7", f.now.Add(-30*time.Second)); err != nil {
		t.Fatal(err)
	}
	publish(t, db, batchOf(f.eng, "acme", "other"), 7, f.now)
	savePolicy(t, db, policy, "")
	r := healthview.NewReader(db, nil)
	r.Now = func() time.Time { return f.now }
	return f, r
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReaderAnswersAsTheEngine: every GET of the API answers the same
// bytes over the published view as over the engine that published it.
func TestReaderAnswersAsTheEngine(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f, r := smallFleet(t, db)
		now := func() time.Time { return f.now }
		eng, view := newSite(t, f.eng, now), newSite(t, r, now)
		for _, path := range []string{
			"/api/v1/fleet",
			"/api/v1/terminals",
			"/api/v1/terminals?per_page=7&page=2",
			"/api/v1/terminals?per_page=7&page=9",
			"/api/v1/terminals?flag=hardware_fault",
			"/api/v1/terminals?flag=tamper&per_page=2&page=2",
			"/api/v1/terminals?flag=firmware_outdated&model=A920&firmware=2.4.1",
			"/api/v1/terminals?flag=amount_mismatch",
			"/api/v1/terminals?flag=offline",
			"/api/v1/terminals?state=never_connected",
			"/api/v1/terminals?state=offline",
			"/api/v1/terminals?state=online&per_page=5",
			"/api/v1/terminals?online=false",
			"/api/v1/terminals?online=true&model=A920",
			"/api/v1/terminals?region=region-3",
			"/api/v1/terminals?q=T000001",
			"/api/v1/terminals?q=shop+t000002",
			"/api/v1/terminals?q=m-shop",
			"/api/v1/terminals?q=%25",
			"/api/v1/terminals?q=_",
			"/api/v1/worklist",
			"/api/v1/worklist?format=csv",
			"/api/v1/incidents",
			"/api/v1/policy",
			"/api/v1/terminals/acme/T0000001",
			"/api/v1/terminals/acme/T0000002",
			"/api/v1/terminals/other/T0000003",
			"/api/v1/terminals/acme/T0000900",
			"/api/v1/terminals/acme/T9999999",
		} {
			t.Run(path, func(t *testing.T) {
				ec, eb := eng.api(t, path)
				vc, vb := view.api(t, path)
				if want := 200; strings.Contains(path, "T0000900") || strings.Contains(path, "T9999999") {
					want = 404
					if ec != want {
						t.Errorf("engine: %d, want %d", ec, want)
					}
				} else if ec != want || len(eb) < 20 {
					t.Errorf("engine: %d %s, want %d", ec, eb, want)
				}
				if ec != vc || eb != vb {
					t.Errorf("engine %d %.2000s\nview   %d %.2000s", ec, eb, vc, vb)
				}
			})
		}
		// The pages, as a tenant's user sees them: the same terminals in
		// the same order, the same counts.
		ecook, vcook := eng.signIn(t, "ops-acme"), view.signIn(t, "ops-acme")
		for _, path := range []string{"/", "/terminals", "/terminals?sort=flags", "/terminals?sort=last_seen&page=2&per_page=10",
			"/terminals?flag=hardware_fault", "/terminals?state=never_connected", "/worklist", "/incidents", "/terminals/acme/T0000002"} {
			t.Run("page "+path, func(t *testing.T) {
				ec, eb := eng.page(t, ecook, path)
				vc, vb := view.page(t, vcook, path)
				if ec != 200 || vc != 200 {
					t.Fatalf("engine %d, view %d: %.500s", ec, vc, vb)
				}
				if e, v := shown(eb), shown(vb); !slices.Equal(e, v) {
					t.Errorf("engine shows %v\nview shows   %v", e, v)
				}
			})
		}
	})
}

var testIDText = regexp.MustCompile(`data-testid="([^"]+)"[^>]*>([^<]*)`)

// shown is what a page shows: each element with a test ID and its text,
// but for the session's CSRF token.
func shown(page string) []string {
	var out []string
	for _, m := range testIDText.FindAllStringSubmatch(page, -1) {
		if strings.Contains(m[1], "csrf") {
			continue
		}
		out = append(out, m[1]+"="+strings.TrimSpace(m[2]))
	}
	return out
}

// TestReaderMethods: each method of the Reader against the engine whose
// state was published.
func TestReaderMethods(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f, r := smallFleet(t, db)
		ctx := context.Background()
		for _, tenant := range []string{"", "acme", "other", "nobody"} {
			for _, flag := range append([]posfleet.FlagName{""}, posfleet.FlagNames...) {
				e, v := f.eng.Rows(tenant, flag), r.Rows(tenant, flag)
				if asJSON(t, e) != asJSON(t, v) {
					t.Errorf("Rows(%q, %q):\nengine %+v\nview   %+v", tenant, flag, e, v)
				}
			}
			if e, v := asJSON(t, f.eng.FleetSummary(tenant)), asJSON(t, r.FleetSummary(tenant)); tenant != "nobody" && e != v {
				t.Errorf("FleetSummary(%q):\nengine %s\nview   %s", tenant, e, v)
			}
			if e, v := asJSON(t, f.eng.WorkList(tenant)), asJSON(t, r.WorkList(tenant)); e != v {
				t.Errorf("WorkList(%q):\nengine %s\nview   %s", tenant, e, v)
			}
			all := f.eng.WorkList(tenant)
			total, page, err := r.WorkPage(ctx, tenant, 2, 3)
			if err != nil || total != len(all) || asJSON(t, page) != asJSON(t, all[min(2, len(all)):min(5, len(all))]) {
				t.Errorf("WorkPage(%q, 2, 3) = %d, %v, %v; want %d of %v", tenant, total, page, err, len(all), all)
			}
			investigate := []posfleet.FlagName{posfleet.FlagAmountMismatch, posfleet.FlagRefundAnomaly}
			want := map[posfleet.TerminalRef]bool{}
			for _, fl := range append(investigate, posfleet.FlagHardwareFault) {
				for _, row := range f.eng.Rows(tenant, fl) {
					want[row.Ref] = true
				}
			}
			if n, err := r.CountFlagged(ctx, tenant, append(investigate, posfleet.FlagHardwareFault)); err != nil || n != len(want) {
				t.Errorf("CountFlagged(%q) = %d, %v; want %d", tenant, n, err, len(want))
			}
		}
		for _, rf := range []posfleet.TerminalRef{ref("acme", 1), ref("acme", 2), ref("other", 4), ref("acme", 900), ref("acme", 999)} {
			eh, eok := f.eng.Terminal(rf)
			vh, vok := r.Terminal(rf)
			if eok != vok || asJSON(t, eh) != asJSON(t, vh) || vh.Ref != eh.Ref {
				t.Errorf("Terminal(%s) = %v %+v; engine %v %+v", rf, vok, vh, eok, eh)
			}
			es, _ := f.eng.Site(rf)
			if vs, ok := r.Site(rf); rf.Terminal != "T0000999" && (!ok || vs != es) {
				t.Errorf("Site(%s) = %+v, %v; want %+v", rf, vs, ok, es)
			}
		}
		// Typed evidence survives the trip through JSON.
		h, _ := r.Terminal(ref("acme", 2))
		if len(h.Flags) == 0 {
			t.Fatal("no flags on a tampered terminal")
		}
		if _, ok := h.Flags[0].Evidence.(*posfleet.TamperEvidence); !ok {
			t.Errorf("tamper evidence decoded as %T", h.Flags[0].Evidence)
		}
	})
}

// TestReaderOrders: the list's orders are the engine's.
func TestReaderOrders(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f, r := smallFleet(t, db)
		rows := f.eng.Rows("acme", "")
		for _, order := range []string{"", "terminal", "last_seen", "flags"} {
			want := slices.Clone(rows)
			switch order {
			case "last_seen":
				slices.SortStableFunc(want, func(a, b health.Row) int { return a.LastSeen.Compare(b.LastSeen) })
			case "flags":
				slices.SortStableFunc(want, func(a, b health.Row) int { return len(b.Flags) - len(a.Flags) })
			}
			var got []string
			for page := 1; ; page++ {
				total, p, err := r.TerminalsPage(context.Background(), "acme", web.TerminalFilter{Page: page, PerPage: 6}, order)
				if err != nil || total != len(rows) {
					t.Fatalf("order %q page %d: %d, %v", order, page, total, err)
				}
				if len(p) == 0 {
					break
				}
				for _, lt := range p {
					got = append(got, lt.Terminal)
				}
			}
			var ids []string
			for _, w := range want {
				ids = append(ids, w.Ref.Terminal)
			}
			if !slices.Equal(got, ids) {
				t.Errorf("order %q:\n got %v\nwant %v", order, got, ids)
			}
		}
	})
}

// TestReaderIncidents: published incidents read back open first, then
// newest first, per tenant.
func TestReaderIncidents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		incs := []health.Incident{
			{ID: "i1", Tenant: "acme", Start: now.Add(-3 * time.Hour), End: now.Add(-2 * time.Hour), Merchants: []string{"M-1", "M-2"},
				Terminals: []posfleet.TerminalRef{ref("acme", 1)}, TerminalCount: 1, Failures: 9, PeakShare: 0.5},
			{ID: "i2", Tenant: "acme", Start: now.Add(-time.Hour), Open: true, Merchants: []string{"M-3"},
				Terminals: []posfleet.TerminalRef{ref("acme", 2), ref("acme", 3)}, TerminalCount: 2, Failures: 4, PeakShare: 0.25},
			{ID: "i3", Tenant: "other", Start: now.Add(-2 * time.Hour), End: now.Add(-90 * time.Minute), Merchants: []string{"M-9"},
				Terminals: []posfleet.TerminalRef{ref("other", 1)}, TerminalCount: 1, Failures: 2, PeakShare: 0.1},
		}
		publish(t, db, healthview.Batch{Incidents: incs}, 10, now)
		r := healthview.NewReader(db, nil)
		ids := func(in []health.Incident) (out []string) {
			for _, i := range in {
				out = append(out, i.ID)
			}
			return out
		}
		if got := ids(r.Incidents("")); !slices.Equal(got, []string{"i2", "i3", "i1"}) {
			t.Errorf("all: %v", got)
		}
		if got := r.Incidents("acme"); !slices.Equal(ids(got), []string{"i2", "i1"}) || asJSON(t, got) != asJSON(t, []health.Incident{incs[1], incs[0]}) {
			t.Errorf("acme: %s", asJSON(t, got))
		}
		if got := r.Incidents("nobody"); got != nil {
			t.Errorf("nobody's: %v", got)
		}
		// Closed later: the same ID, updated.
		incs[1].Open, incs[1].End = false, now
		publish(t, db, healthview.Batch{Incidents: incs[1:2]}, 10, now)
		if got := r.Incidents("acme"); len(got) != 2 || got[0].ID != "i2" || got[0].Open {
			t.Errorf("after closing: %s", asJSON(t, got))
		}
	})
}

// TestReaderMarkServiced: a visit on a replica is a pending row for the
// health engine, and says which flags it clears.
func TestReaderMarkServiced(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f, r := smallFleet(t, db)
		at := f.now.Add(-5 * time.Second)
		for _, rf := range []posfleet.TerminalRef{ref("acme", 2), ref("acme", 6), ref("acme", 3)} { // tamper; printer; outdated only
			h, _ := f.eng.Terminal(rf)
			want := []posfleet.FlagName{}
			for _, fl := range h.Flags {
				if fl.Kind == posfleet.KindMaintenance {
					want = append(want, fl.Name)
				}
			}
			got, err := r.MarkServiced(rf, "checked", "crew-1", at)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("MarkServiced(%s) = %v, %v; want %v", rf, got, err, want)
			}
		}
		var n int
		var by, note string
		if err := db.QueryRow(`SELECT COUNT(*), MIN(by_user), MIN(note) FROM service_visits WHERE applied_ms = 0 AND at_ms = $1`, store.Millis(at)).Scan(&n, &by, &note); err != nil || n != 3 || by != "crew-1" || note != "checked" {
			t.Errorf("pending visits: %d %q %q, %v", n, by, note, err)
		}
		for _, rf := range []posfleet.TerminalRef{ref("acme", 999), ref("acme", 900)} {
			if _, err := r.MarkServiced(rf, "", "crew-1", at); posfleet.ErrorKind(err) != posfleet.NotFound {
				t.Errorf("MarkServiced(%s): %v, want not found", rf, err)
			}
		}
		if _, err := r.MarkServiced(ref("acme", 2), strings.Repeat("x", 5000), "crew-1", at); err == nil {
			t.Error("a note too long was recorded")
		}
	})
}

// TestReaderPolicy: the newest version is the policy; a bad one is
// refused with its line, as the engine refuses it; versions count up.
func TestReaderPolicy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := healthview.NewReader(db, nil)
		if p := r.Policy(); p == nil || len(p.Models) != 0 {
			t.Fatalf("no policy yet: %+v", p)
		}
		var pe *health.PolicyError
		if err := r.SetPolicy([]byte("models:\n  A920:\n    target: [\n")); !errors.As(err, &pe) {
			t.Fatalf("bad policy: %v", err)
		}
		// Checked by the reader, stored by the web's SavePolicy (journal).
		if err := r.SetPolicy([]byte(policy)); err != nil {
			t.Fatal(err)
		}
		savePolicy(t, db, policy, "")
		newer := strings.Replace(policy, "2.5.1", "2.6.0", 1)
		if err := r.SetPolicy([]byte(newer)); err != nil {
			t.Fatal(err)
		}
		savePolicy(t, db, newer, "root")
		if got := r.Policy().Models["A920"].Target; got != "2.6.0" {
			t.Errorf("target %q", got)
		}
		// Another replica's reader sees the newest version within its TTL.
		r2 := healthview.NewReader(db, nil)
		r2.PolicyTTL = 0
		if got := r2.Policy().Models["A920"].Target; got != "2.6.0" {
			t.Errorf("second replica: target %q", got)
		}
		var versions []int64
		rows, err := db.Query(`SELECT version FROM policy_versions ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var v int64
			rows.Scan(&v)
			versions = append(versions, v)
		}
		if !slices.Equal(versions, []int64{1, 2}) {
			t.Errorf("versions %v", versions)
		}
		// The policy returned is a copy.
		p := r.Policy()
		p.Models["X"] = health.ModelPolicy{}
		if _, ok := r.Policy().Models["X"]; ok {
			t.Error("Policy returned the cached policy itself")
		}
	})
}

// noFullLists is a Reader whose whole-fleet reads fail the test: the
// pages must list, count and page through web.Queries.
type noFullLists struct {
	*healthview.Reader
	t *testing.T
}

func (n noFullLists) Rows(tenant string, flag posfleet.FlagName) []health.Row {
	n.t.Errorf("Rows(%q, %q) read every row", tenant, flag)
	return n.Reader.Rows(tenant, flag)
}

func (n noFullLists) WorkList(tenant string) []health.WorkItem {
	n.t.Errorf("WorkList(%q) read the whole work list", tenant)
	return n.Reader.WorkList(tenant)
}

// TestPagesReadOnlyTheirPage: over a Health with web.Queries, the
// overview, the terminal list and the work list page never read every
// terminal's row (they did: Rows for each list and count, WorkList for the
// overview's count and the work list page).
func TestPagesReadOnlyTheirPage(t *testing.T) {
	db := storetest.SQLite(t)
	f, r := smallFleet(t, db)
	s := newSite(t, noFullLists{r, t}, func() time.Time { return f.now })
	for _, user := range []string{"ops-acme", "root"} {
		c := s.signIn(t, user)
		for _, p := range []string{"/", "/terminals", "/terminals?flag=tamper&sort=flags", "/terminals?q=shop&state=online",
			"/worklist", "/worklist?page=2", "/terminals/acme/T0000002"} {
			if code, body := s.page(t, c, p); code != 200 {
				t.Errorf("%s %s: %d %.300s", user, p, code, body)
			}
		}
	}
	for _, p := range []string{"/api/v1/terminals", "/api/v1/terminals?flag=tamper", "/api/v1/fleet"} {
		if code, body := s.api(t, p); code != 200 {
			t.Errorf("%s: %d %.300s", p, code, body)
		}
	}
}

// TestWorkListPages: the work list page shows 100 items a page, in the
// engine's order, and links the pages; over the engine and over the view
// alike.
func TestWorkListPages(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFleet(t)
		for i := range 230 {
			k := printer
			switch i % 10 {
			case 3:
				k = tamper
			case 4:
				k = offline
			}
			f.add(ref("acme", i), k)
		}
		publish(t, db, batchOf(f.eng, "acme"), 100, f.now)
		now := func() time.Time { return f.now }
		eng, view := newSite(t, f.eng, now), newSite(t, healthview.NewReader(db, nil), now)
		ec, vc := eng.signIn(t, "ops-acme"), view.signIn(t, "ops-acme")
		var all []string
		for page, want := range []int{100, 100, 30} {
			p := fmt.Sprintf("/worklist?page=%d", page+1)
			_, eb := eng.page(t, ec, p)
			_, vb := view.page(t, vc, p)
			if e, v := shown(eb), shown(vb); !slices.Equal(e, v) {
				t.Errorf("%s: engine shows %v\nview shows   %v", p, e, v)
			}
			items := 0
			for _, s := range shown(vb) {
				if strings.HasPrefix(s, "worklist-terminal=") {
					items++
					all = append(all, strings.TrimPrefix(s, "worklist-terminal="))
				}
			}
			if items != want || !strings.Contains(vb, "230") || !strings.Contains(vb, fmt.Sprintf("page %d of 3", page+1)) {
				t.Errorf("%s: %d items, want %d: %v", p, items, want, shown(vb))
			}
		}
		var want []string
		for _, it := range f.eng.WorkList("acme") {
			want = append(want, it.Terminal)
		}
		if !slices.Equal(all, want) {
			t.Errorf("pages in order %v\nwant %v", all, want)
		}
		if code, _ := view.page(t, vc, "/worklist?page=0"); code != 400 {
			t.Errorf("page 0: %d", code)
		}
	})
}

// savePolicy stores a policy version as the web's SavePolicy does.
func savePolicy(t testing.TB, db *store.DB, body, by string) {
	t.Helper()
	if _, err := journal.AddPolicy(context.Background(), db, []byte(body), by, time.Now()); err != nil {
		t.Fatal(err)
	}
}
