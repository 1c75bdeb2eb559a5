package healthview_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/auth"
	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
	"github.com/posfleet/posfleet/web"
)

// refund feeds ref an anomalous refund (response code 13): refund_anomaly.
func (f *fleet) refund(ref posfleet.TerminalRef) {
	at := f.now.Add(-30 * time.Second)
	f.eng.Observe(&posfleet.Message{Terminal: ref, Received: at, Channel: posfleet.ChannelTxn, Txn: &posfleet.Transaction{
		Header: posfleet.Header{Seq: 100, TS: at}, ID: ref.Terminal + "-R", Type: posfleet.TxnRefund, Entry: posfleet.EntryChip,
		Currency: "CNY", AmountEntered: ptr[int64](500), Result: posfleet.ResultDeclined, RC: "13", HostMs: ptr(300)}})
}

// investigateFleet is smallFleet with refund anomalies: on terminals that
// have no other investigate flag, and on one with an amount mismatch too.
func investigateFleet(t *testing.T, db *store.DB) (*fleet, *healthview.Reader) {
	t.Helper()
	f := newFleet(t)
	for i := range 40 {
		f.add(ref("acme", i), i%7)
	}
	for i := range 5 {
		f.add(ref("other", i), (i+1)%7)
	}
	f.eng.Provision(ref("acme", 900), ref("other", 901))
	for _, i := range []int{4, 5, 6, 12, 20} { // T0000004: a mismatch too
		f.refund(ref("acme", i))
	}
	f.refund(ref("other", 2))
	publish(t, db, batchOf(f.eng, "acme", "other"), 7, f.now)
	savePolicy(t, db, policy, "")
	r := healthview.NewReader(db, nil)
	r.Now = func() time.Time { return f.now }
	return f, r
}

// crewSite is newSite with a crew of acme's region-4 ("crew-4"), without an API token.
func crewSite(t *testing.T, hs web.Health, now func() time.Time) *site {
	t.Helper()
	users, err := auth.New(context.Background(), storetest.SQLite(t), auth.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []posfleet.User{{Name: "ops-acme", Tenant: "acme"}, {Name: "root", Tenant: auth.AllTenants},
		{Name: "crew-4", Tenant: "acme", Role: posfleet.RoleCrew, Regions: []string{"region-4"}}} {
		if err := users.NewUser(ctx, u, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := users.SessionKey()
	h, err := web.New(web.Options{Users: users, SessionKey: key, Health: hs, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return &site{h: h}
}

var (
	investigateStat = regexp.MustCompile(`href="([^"]*)" data-testid="stat-investigate"[^>]*>\s*<strong data-live="investigate">([^<]*)</strong>`)
	listRow         = regexp.MustCompile(`data-testid="terminal-row"`)
	datalistOption  = regexp.MustCompile(`<datalist id="terminal-(models|regions)"[^>]*>((?:<option value="[^"]*"></option>)*)</datalist>`)
	optionValue     = regexp.MustCompile(`<option value="([^"]*)">`)
)

// TestOverviewInvestigateCountIsTheList: the overview's "under
// investigation" links to a list of exactly the terminals it counts, over
// the engine and over the published view, for a crew its region's. (It linked to the terminals
// with an amount mismatch, and counted refund anomalies too: 24 and 15.)
func TestOverviewInvestigateCountIsTheList(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f, r := investigateFleet(t, db)
		now := func() time.Time { return f.now }
		for name, hs := range map[string]web.Health{"engine": f.eng, "view": r} {
			s := crewSite(t, hs, now)
			for _, user := range []string{"ops-acme", "root", "crew-4"} {
				c := s.signIn(t, user)
				code, body := s.page(t, c, "/")
				m := investigateStat.FindStringSubmatch(body)
				if code != 200 || m == nil {
					t.Fatalf("%s %s: overview %d without the investigate stat: %.3000s", name, user, code, body)
				}
				n, err := strconv.Atoi(strings.ReplaceAll(m[2], ",", ""))
				if err != nil || n == 0 {
					t.Fatalf("%s %s: investigate count %q", name, user, m[2])
				}
				href := strings.ReplaceAll(m[1], "&amp;", "&")
				code, list := s.page(t, c, href+"&per_page=500")
				if rows := len(listRow.FindAllString(list, -1)); code != 200 || rows != n {
					t.Errorf("%s %s: overview counts %d under investigation; its link %s lists %d (%d)", name, user, n, href, rows, code)
				}
				// The fixture tells the two apart: one flag's list is shorter.
				_, mismatch := s.page(t, c, "/terminals?flag=amount_mismatch&per_page=500")
				if rows := len(listRow.FindAllString(mismatch, -1)); rows >= n && user != "crew-4" {
					t.Errorf("%s %s: %d with an amount mismatch, not fewer than %d under investigation", name, user, rows, n)
				}
			}
		}
	})
}

// TestListFiltersAndOrdersAsTheEngine: the flag kind, model and region
// regardless of case, and every order of the list answer the same over the
// published view (SQL) as over the engine.
func TestListFiltersAndOrdersAsTheEngine(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f, r := investigateFleet(t, db)
		now := func() time.Time { return f.now }
		eng, view := newSite(t, f.eng, now), newSite(t, r, now)
		for _, path := range []string{
			"/api/v1/terminals?region=REGION-3",
			"/api/v1/terminals?region=Region-3&model=a920",
			"/api/v1/terminals?model=a920&per_page=7&page=3",
			"/api/v1/terminals?model=A9",
			"/api/v1/terminals?kind=investigate",
			"/api/v1/terminals?kind=investigate&flag=refund_anomaly",
			"/api/v1/terminals?kind=maintenance&per_page=5&page=2",
			"/api/v1/terminals?kind=update&region=REGION-6",
		} {
			t.Run(path, func(t *testing.T) {
				ec, eb := eng.api(t, path)
				vc, vb := view.api(t, path)
				if ec != 200 || ec != vc || eb != vb {
					t.Errorf("engine %d %.1500s\nview   %d %.1500s", ec, eb, vc, vb)
				}
			})
		}
		// Case does not matter, and the filter finds something.
		ctx := context.Background()
		for _, q := range []web.TerminalFilter{{Region: "REGION-3"}, {Model: "a920"}} {
			q.Page, q.PerPage = 1, 100
			lower := q
			lower.Region, lower.Model = strings.ToLower(q.Region), strings.ToUpper(q.Model)
			n, _, err := r.TerminalsPage(ctx, "acme", q, "")
			m, _, err2 := r.TerminalsPage(ctx, "acme", lower, "")
			if err != nil || err2 != nil || n == 0 || n != m {
				t.Errorf("%+v: %d terminals, %+v: %d (%v, %v)", q, n, lower, m, err, err2)
			}
		}

		ecook, vcook := eng.signIn(t, "ops-acme"), view.signIn(t, "root")
		vcookAcme := view.signIn(t, "ops-acme")
		ecookRoot := eng.signIn(t, "root")
		for _, col := range []string{"terminal", "merchant", "region", "model", "firmware", "last_seen", "flags"} {
			for _, dir := range []string{"", "asc", "desc"} {
				path := "/terminals?sort=" + col + "&dir=" + dir + "&per_page=7&page=2"
				t.Run("page "+path, func(t *testing.T) {
					for _, c := range [][2]any{{ecook, vcookAcme}, {ecookRoot, vcook}} {
						ec, eb := eng.page(t, c[0].(*http.Cookie), path)
						vc, vb := view.page(t, c[1].(*http.Cookie), path)
						if ec != 200 || vc != 200 {
							t.Fatalf("engine %d, view %d: %.500s", ec, vc, vb)
						}
						if e, v := shown(eb), shown(vb); !slices.Equal(e, v) {
							t.Errorf("engine shows %v\nview shows   %v", e, v)
						}
						if !strings.Contains(vb, `data-testid="sort-`+col+`"`) || !regexp.MustCompile(`<th aria-sort="(ascending|descending)" data-testid="sort-`+col+`"`).MatchString(vb) {
							t.Errorf("the header of %s says no aria-sort", col)
						}
					}
				})
			}
		}
		// The suggestions: the fleet's models and regions.
		for name, s := range map[string]struct {
			site *site
			c    *http.Cookie
		}{"engine": {eng, ecook}, "view": {view, vcookAcme}} {
			_, body := s.site.page(t, s.c, "/terminals")
			got := map[string][]string{}
			for _, m := range datalistOption.FindAllStringSubmatch(body, -1) {
				for _, o := range optionValue.FindAllStringSubmatch(m[2], -1) {
					got[m[1]] = append(got[m[1]], o[1])
				}
			}
			var regions []string
			for i := range 10 {
				regions = append(regions, "region-"+strconv.Itoa(i))
			}
			if !slices.Equal(got["models"], []string{"A920"}) || !slices.Equal(got["regions"], regions) {
				t.Errorf("%s suggests %v", name, got)
			}
		}
	})
}

// TestReaderSortsByEveryColumn: each order of TerminalsPage against the
// engine's rows sorted in Go, stably, in both directions.
func TestReaderSortsByEveryColumn(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f, r := investigateFleet(t, db)
		rows := f.eng.Rows("", "")
		key := map[string]func(health.Row) string{
			"merchant": func(x health.Row) string { s, _ := f.eng.Site(x.Ref); return s.Merchant },
			"region":   func(x health.Row) string { s, _ := f.eng.Site(x.Ref); return s.Region },
			"model":    func(x health.Row) string { return x.Model },
			"firmware": func(x health.Row) string { return x.Firmware },
		}
		for col, k := range key {
			for _, desc := range []bool{false, true} {
				want := slices.Clone(rows)
				slices.SortStableFunc(want, func(a, b health.Row) int {
					c := strings.Compare(k(a), k(b))
					if desc {
						return -c
					}
					return c
				})
				order := web.TerminalOrder(col, map[bool]string{false: "asc", true: "desc"}[desc])
				var got, ids []string
				for page := 1; ; page++ {
					_, p, err := r.TerminalsPage(context.Background(), "", web.TerminalFilter{Page: page, PerPage: 8}, order)
					if err != nil {
						t.Fatal(err)
					}
					if len(p) == 0 {
						break
					}
					for _, lt := range p {
						got = append(got, lt.Tenant+"/"+lt.Terminal)
					}
				}
				for _, w := range want {
					ids = append(ids, w.Ref.Tenant+"/"+w.Ref.Terminal)
				}
				if !slices.Equal(got, ids) {
					t.Errorf("order %s:\n got %v\nwant %v", order, got, ids)
				}
			}
		}
	})
}
