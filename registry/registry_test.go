package registry_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store"
)

// openDB opens (creating it if needed) the SQLite database at path.
func openDB(t testing.TB, path string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite://"+path)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openOn opens a registry on db, closed at the end of the test.
func openOn(t testing.TB, db *store.DB, opts registry.Options) *registry.Registry {
	t.Helper()
	r, err := registry.Open(context.Background(), db, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openAt opens a registry on the SQLite database at path.
func openAt(t testing.TB, path string, opts registry.Options) *registry.Registry {
	t.Helper()
	return openOn(t, openDB(t, path), opts)
}

func open(t testing.TB, opts registry.Options) *registry.Registry {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "posfleet.db"), opts)
}

func importFile(t testing.TB, r *registry.Registry, name string) registry.ImportResult {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := r.Import(context.Background(), f, nil)
	if err != nil {
		t.Fatalf("Import %s: %v", name, err)
	}
	return res
}

func importString(r *registry.Registry, csv string) (registry.ImportResult, error) {
	return r.Import(context.Background(), strings.NewReader(csv), nil)
}

func secrets(creds []registry.Credential) map[posfleet.TerminalRef]string {
	m := map[posfleet.TerminalRef]string{}
	for _, c := range creds {
		m[c.TerminalRef] = c.Secret
	}
	return m
}

func ref(tenant, terminal string) posfleet.TerminalRef {
	return posfleet.TerminalRef{Tenant: tenant, Terminal: terminal}
}

func auth(r *registry.Registry, rf posfleet.TerminalRef, secret string) error {
	got, err := r.Authenticate(context.Background(), rf.String(), []byte(secret))
	if err == nil && got != rf {
		return fmt.Errorf("authenticated as %v, want %v", got, rf)
	}
	return err
}

func list(t testing.TB, r *registry.Registry, tenant string) []registry.Terminal {
	t.Helper()
	ts, err := r.List(context.Background(), tenant)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return ts
}

func refs(ts []registry.Terminal) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.String())
	}
	return out
}

func TestOpen(t *testing.T) {
	t.Run("keeps data across reopen", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "posfleet.db")
		r := openAt(t, path, registry.Options{})
		res := importFile(t, r, "good.csv")
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		r = openAt(t, path, registry.Options{})
		if n, err := r.Count(context.Background()); err != nil || n != res.Added {
			t.Errorf("Count after reopen = %d, %v; want %d", n, err, res.Added)
		}
		for _, c := range res.Credentials {
			if err := auth(r, c.TerminalRef, c.Secret); err != nil {
				t.Errorf("Authenticate %v after reopen: %v", c.TerminalRef, err)
			}
		}
	})
}

func TestImportGoodFile(t *testing.T) {
	r := open(t, registry.Options{})
	before := time.Now()
	res := importFile(t, r, "good.csv")

	if res.Added != 5 || res.Updated != 0 || res.Unchanged != 0 {
		t.Errorf("result %+v, want 5 added", res)
	}
	if len(res.Credentials) != 5 {
		t.Fatalf("%d credentials, want 5", len(res.Credentials))
	}
	seen := map[string]bool{}
	for _, c := range res.Credentials {
		raw, err := base64.RawURLEncoding.DecodeString(c.Secret)
		if err != nil || len(raw) != 32 {
			t.Errorf("secret of %v is not 32 bytes base64url without padding: %v", c.TerminalRef, err)
		}
		if seen[c.Secret] {
			t.Errorf("secret of %v repeated", c.TerminalRef)
		}
		seen[c.Secret] = true
		if err := auth(r, c.TerminalRef, c.Secret); err != nil {
			t.Errorf("Authenticate %v: %v", c.TerminalRef, err)
		}
	}

	if n, err := r.Count(context.Background()); err != nil || n != 5 {
		t.Errorf("Count = %d, %v; want 5", n, err)
	}
	wantOrder := []string{"acme:T-0001", "acme:T-0002", "acme:T-0003", "beta.retail:POS_17", "beta.retail:POS_18"}
	if got := refs(list(t, r, "")); !slices.Equal(got, wantOrder) {
		t.Errorf("List all = %v, want %v", got, wantOrder)
	}

	got, err := r.Get(context.Background(), ref("acme", "T-0001"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != "A920" || got.Merchant != "Noodle House" || got.Site != "12 Harbour Rd, Shop 3" || got.Region != "north" {
		t.Errorf("Get = %+v", got)
	}
	if got.Lat == nil || *got.Lat != 31.2304 || got.Lon == nil || *got.Lon != 121.4737 {
		t.Errorf("coordinates %v, %v; want 31.2304, 121.4737", got.Lat, got.Lon)
	}
	if got.Created.Before(before.Add(-time.Second)) || !got.Updated.Equal(got.Created) {
		t.Errorf("Created %v Updated %v, want both the import time", got.Created, got.Updated)
	}
	noCoords, err := r.Get(context.Background(), ref("acme", "T-0003"))
	if err != nil {
		t.Fatal(err)
	}
	if noCoords.Lat != nil || noCoords.Lon != nil {
		t.Errorf("T-0003 coordinates %v, %v; want nil", noCoords.Lat, noCoords.Lon)
	}
}

func TestImportReimportKeepsSecret(t *testing.T) {
	r := open(t, registry.Options{})
	first := importFile(t, r, "good.csv")
	old := secrets(first.Credentials)
	t1 := ref("acme", "T-0001")
	before, err := r.Get(context.Background(), t1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // so that Updated can differ from Created

	res := importFile(t, r, "update.csv")
	// T-0001 moved, T-0003 got coordinates, T-0002 and POS_17 are as they
	// were, T-0004 is new; POS_18 is not in the file and stays.
	if res.Added != 1 || res.Updated != 2 || res.Unchanged != 2 {
		t.Errorf("result %+v, want 1 added, 2 updated, 2 unchanged", res)
	}
	if len(res.Credentials) != 1 || res.Credentials[0].TerminalRef != ref("acme", "T-0004") {
		t.Errorf("credentials %v, want only the new T-0004", res.Credentials)
	}

	after, err := r.Get(context.Background(), t1)
	if err != nil {
		t.Fatal(err)
	}
	if after.Site != "40 Quay St, Shop 1" || *after.Lat != 31.25 || *after.Lon != 121.5 {
		t.Errorf("T-0001 after update = %+v", after)
	}
	if !after.Created.Equal(before.Created) {
		t.Errorf("Created changed from %v to %v", before.Created, after.Created)
	}
	if !after.Updated.After(before.Updated) {
		t.Errorf("Updated %v not after %v", after.Updated, before.Updated)
	}
	unchanged, err := r.Get(context.Background(), ref("acme", "T-0002"))
	if err != nil {
		t.Fatal(err)
	}
	if !unchanged.Updated.Equal(unchanged.Created) {
		t.Errorf("unchanged T-0002 has Updated %v != Created %v", unchanged.Updated, unchanged.Created)
	}
	if n, _ := r.Count(context.Background()); n != 6 {
		t.Errorf("Count = %d, want 6", n)
	}
	for rf, secret := range old {
		if err := auth(r, rf, secret); err != nil {
			t.Errorf("old secret of %v after re-import: %v", rf, err)
		}
	}
}

func TestImportBadFileAppliesNothing(t *testing.T) {
	r := open(t, registry.Options{})
	importFile(t, r, "good.csv")
	before := list(t, r, "")

	f, err := os.Open("testdata/bad.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	emitted := false
	_, err = r.Import(context.Background(), f, func([]registry.Credential) error { emitted = true; return nil })
	var ie *registry.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v, want *ImportError", err)
	}
	if emitted {
		t.Error("emit called for a bad file")
	}
	type lc struct {
		line   int
		column string
	}
	var got []lc
	for _, le := range ie.Errors {
		got = append(got, lc{le.Line, le.Column})
	}
	want := []lc{
		{3, "tenant"}, {4, "lat"}, {6, "lon"}, {7, "terminal"}, {8, ""},
		{9, "model"}, {10, "secret"}, {11, "lat"}, {11, "lon"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors at %v, want %v\n%v", got, want, err)
	}
	msg := err.Error()
	for _, s := range []string{
		"line 4: lat: want a number in -90..90",
		"line 7: terminal: acme:T-0100 already appears on line 2",
		"line 10: secret: want 16..256 characters, got 8",
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("message lacks %q:\n%s", s, msg)
		}
	}
	if strings.Contains(msg, "tooshort") {
		t.Errorf("message shows a secret:\n%s", msg)
	}

	after := list(t, r, "")
	if len(after) != len(before) {
		t.Fatalf("%d terminals after a bad import, want %d", len(after), len(before))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.TerminalRef != b.TerminalRef || a.Site != b.Site || !a.Updated.Equal(b.Updated) {
			t.Errorf("terminal changed by a bad import: %+v -> %+v", b, a)
		}
	}
}

const header = "tenant,terminal,model,merchant,site,region,lat,lon"

func TestImportHeader(t *testing.T) {
	row := "acme,T-1,A920,Shop,Pier 1,north,1,2"
	tests := []struct {
		name string
		csv  string
		want []string // substrings of the error; none for success
	}{
		{"standard", header + "\n" + row + "\n", nil},
		{"any order", "lon,lat,region,site,merchant,model,terminal,tenant\n2,1,north,Pier 1,Shop,A920,T-1,acme\n", nil},
		{"byte order mark, case and spaces", "\uFEFFTenant, Terminal ,MODEL,merchant,site,region,lat,lon\n" + row + "\n", nil},
		{"optional secret", header + ",secret\n" + row + ",\n", nil},
		{"header only", header + "\n", nil},
		{"unknown columns", header + ",colour,size\n" + row + ",red,xl\n", []string{`line 1: unknown column(s) "colour", "size"`}},
		{"missing columns", "tenant,terminal,model,merchant,site\nacme,T-1,A920,Shop,Pier 1\n", []string{"line 1: missing column(s) region, lat, lon"}},
		{"column twice", header + ",site\n" + row + ",x\n", []string{"line 1: site: column appears twice"}},
		{"unknown and missing", "tenant,terminal,shop\n", []string{`unknown column(s) "shop"`, "missing column(s) model"}},
		{"empty file", "", []string{"line 1: empty file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, registry.Options{})
			res, err := importString(r, tt.csv)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Import: %v", err)
				}
				if n := strings.Count(strings.TrimSpace(tt.csv), "\n"); res.Added != n {
					t.Errorf("added %d, want %d", res.Added, n)
				}
				return
			}
			var ie *registry.ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v, want *ImportError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if n, _ := r.Count(context.Background()); n != 0 {
				t.Errorf("Count = %d after a bad header", n)
			}
		})
	}
}

func TestImportRowRules(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	tests := []struct {
		name   string
		line   string // tenant,terminal,model,merchant,site,region,lat,lon,secret
		column string // the column at fault; "-" for a valid line
	}{
		{"valid", "acme,T-1,A920,Shop,Pier 1,north,31.2,121.4,", "-"},
		{"no coordinates", "acme,T-1,A920,Shop,Pier 1,north,,,", "-"},
		{"coordinate limits high", "acme,T-1,A920,Shop,Pier 1,north,90,180,", "-"},
		{"coordinate limits low", "acme,T-1,A920,Shop,Pier 1,north,-90,-180,", "-"},
		{"empty text fields", "acme,T-1,,,,,,,", "-"},
		{"ID alphabet", "a.B_c-9,Z-z.0_9,A920,Shop,Pier 1,north,,,", "-"},
		{"ID of 64", long("t", 64) + ",T-1,A920,Shop,Pier 1,north,,,", "-"},
		{"text of 128 characters", "acme,T-1," + long("é", 128) + ",Shop,Pier 1,north,,,", "-"},
		{"secret of 16", "acme,T-1,A920,Shop,Pier 1,north,,," + long("s", 16), "-"},
		{"secret of 256", "acme,T-1,A920,Shop,Pier 1,north,,," + long("s", 256), "-"},

		{"empty tenant", ",T-1,A920,Shop,Pier 1,north,,,", "tenant"},
		{"tenant of 65", long("t", 65) + ",T-1,A920,Shop,Pier 1,north,,,", "tenant"},
		{"tenant with colon", "ac:me,T-1,A920,Shop,Pier 1,north,,,", "tenant"},
		{"empty terminal", "acme,,A920,Shop,Pier 1,north,,,", "terminal"},
		{"terminal with slash", "acme,T/1,A920,Shop,Pier 1,north,,,", "terminal"},
		{"terminal with space inside", "acme,T 1,A920,Shop,Pier 1,north,,,", "terminal"},
		{"lat above 90", "acme,T-1,A920,Shop,Pier 1,north,90.0001,0,", "lat"},
		{"lat below -90", "acme,T-1,A920,Shop,Pier 1,north,-91,0,", "lat"},
		{"lat not a number", "acme,T-1,A920,Shop,Pier 1,north,north,0,", "lat"},
		{"lat NaN", "acme,T-1,A920,Shop,Pier 1,north,NaN,0,", "lat"},
		{"lat without lon", "acme,T-1,A920,Shop,Pier 1,north,10,,", "lon"},
		{"lon without lat", "acme,T-1,A920,Shop,Pier 1,north,,10,", "lat"},
		{"lon above 180", "acme,T-1,A920,Shop,Pier 1,north,0,180.5,", "lon"},
		{"lon infinite", "acme,T-1,A920,Shop,Pier 1,north,0,-Inf,", "lon"},
		{"model of 129", "acme,T-1," + long("m", 129) + ",Shop,Pier 1,north,,,", "model"},
		{"merchant of 129", "acme,T-1,A920," + long("é", 129) + ",Pier 1,north,,,", "merchant"},
		{"site with control character", "acme,T-1,A920,Shop,Pier\x071,north,,,", "site"},
		{"region not UTF-8", "acme,T-1,A920,Shop,Pier 1,nor\xffth,,,", "region"},
		{"secret of 15", "acme,T-1,A920,Shop,Pier 1,north,,," + long("s", 15), "secret"},
		{"secret of 257", "acme,T-1,A920,Shop,Pier 1,north,,," + long("s", 257), "secret"},
		{"too few fields", "acme,T-1,A920,Shop,Pier 1,north,,", ""},
		{"too many fields", "acme,T-1,A920,Shop,Pier 1,north,,,,", ""},
		{"bare quote", `acme,T-1,A"920,Shop,Pier 1,north,,,`, ""},
		{"merchant with a card number", "acme,T-1,A920,Shop " + dottedPAN() + ",Pier 1,north,,,", "merchant"},
		{"site with a card number", "acme,T-1,A920,Shop,Pier " + strings.ReplaceAll(dottedPAN(), ".", "") + ",north,,,", "site"},
		{"model with a card number", "acme,T-1," + strings.ReplaceAll(dottedPAN(), ".", " ") + ",Shop,Pier 1,north,,,", "model"},
		{"terminal a card number", "acme," + strings.ReplaceAll(dottedPAN(), ".", "") + ",A920,Shop,Pier 1,north,,,", "terminal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, registry.Options{})
			// The line under test is line 3, after a valid line 2, so that
			// the reported line number is checked too.
			csv := header + ",secret\nacme,T-0,A920,Shop,Pier 1,north,,,\n" + tt.line + "\n"
			res, err := importString(r, csv)
			if tt.column == "-" {
				if err != nil {
					t.Fatalf("Import: %v", err)
				}
				if res.Added != 2 {
					t.Errorf("added %d, want 2", res.Added)
				}
				return
			}
			var ie *registry.ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v, want *ImportError", err)
			}
			if len(ie.Errors) != 1 || ie.Errors[0].Line != 3 || ie.Errors[0].Column != tt.column {
				t.Errorf("errors %v, want one on line 3, column %q", ie.Errors, tt.column)
			}
			if n, _ := r.Count(context.Background()); n != 0 {
				t.Errorf("Count = %d, want 0: the valid line must not be applied either", n)
			}
		})
	}
}

func TestImportDuplicateTerminal(t *testing.T) {
	r := open(t, registry.Options{})
	csv := header + "\n" +
		"acme,T-1,A920,Shop,Pier 1,north,,\n" +
		"beta,T-1,A920,Shop,Pier 1,north,,\n" + // same terminal ID, other tenant: fine
		"acme,T-2,A920,Shop,Pier 1,north,,\n" +
		"acme,T-1,A920,Shop,Pier 9,north,,\n"
	_, err := importString(r, csv)
	var ie *registry.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v, want *ImportError", err)
	}
	if len(ie.Errors) != 1 || ie.Errors[0].Line != 5 {
		t.Fatalf("errors %v, want one on line 5", ie.Errors)
	}
	if want := "line 5: terminal: acme:T-1 already appears on line 2"; ie.Errors[0].Error() != want {
		t.Errorf("error %q, want %q", ie.Errors[0].Error(), want)
	}
}

func TestImportLineNumbersCountQuotedNewlines(t *testing.T) {
	r := open(t, registry.Options{})
	csv := header + "\n" +
		"acme,T-1,A920,Shop,\"Pier 1\nback entrance\",north,,\n" + // lines 2-3; a newline is a control character
		"acme,T-2,A920,Shop,Pier 1,north,95,10\n" // line 4
	_, err := importString(r, csv)
	var ie *registry.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v, want *ImportError", err)
	}
	want := []registry.LineError{{Line: 2, Column: "site"}, {Line: 4, Column: "lat"}}
	if !slices.EqualFunc(ie.Errors, want, func(a, b registry.LineError) bool { return a.Line == b.Line && a.Column == b.Column }) {
		t.Errorf("errors %v, want them on line 2 (site) and 4 (lat)", ie.Errors)
	}
}

func TestImportSecretColumn(t *testing.T) {
	r := open(t, registry.Options{})
	res := importFile(t, r, "secrets.csv")
	if res.Added != 2 || len(res.Credentials) != 2 {
		t.Fatalf("result %+v, want 2 added with 2 credentials", res)
	}
	got := secrets(res.Credentials)
	if s := got[ref("acme", "T-0201")]; s != "operator-chosen-secret-0201" {
		t.Errorf("credential of T-0201 = %q, want the file's secret", s)
	}
	if err := auth(r, ref("acme", "T-0201"), "operator-chosen-secret-0201"); err != nil {
		t.Errorf("Authenticate with the file's secret: %v", err)
	}
	generated := got[ref("acme", "T-0202")]
	if len(generated) != 43 {
		t.Errorf("an empty secret cell got secret %q, want a generated one", generated)
	}
	if err := auth(r, ref("acme", "T-0202"), generated); err != nil {
		t.Errorf("Authenticate with the generated secret: %v", err)
	}
}

func TestImportRotation(t *testing.T) {
	r := open(t, registry.Options{})
	res := importFile(t, r, "good.csv")
	t1, t2 := ref("acme", "T-0001"), ref("acme", "T-0002")
	old := secrets(res.Credentials)
	// Authenticate first, so that the old secret is in the cache.
	for range 2 {
		if err := auth(r, t1, old[t1]); err != nil {
			t.Fatalf("Authenticate before rotation: %v", err)
		}
	}
	created, _ := r.Get(context.Background(), t1)

	const newSecret = "rotated-secret-for-T-0001"
	rot, err := importString(r, header+",secret\n"+
		"acme,T-0001,A920,Noodle House,\"12 Harbour Rd, Shop 3\",north,31.2304,121.4737,"+newSecret+"\n"+
		"acme,T-0002,A920,Noodle House,\"12 Harbour Rd, Shop 3\",north,31.2304,121.4737,\n")
	if err != nil {
		t.Fatal(err)
	}
	if rot.Updated != 1 || rot.Unchanged != 1 || rot.Added != 0 {
		t.Errorf("result %+v, want 1 updated (rotated), 1 unchanged", rot)
	}
	if want := []registry.Credential{{TerminalRef: t1, Secret: newSecret}}; !slices.Equal(rot.Credentials, want) {
		t.Errorf("credentials %v, want %v", rot.Credentials, want)
	}
	if err := auth(r, t1, old[t1]); !errors.Is(err, registry.ErrBadCredentials) {
		t.Errorf("old (cached) secret after rotation: %v, want ErrBadCredentials", err)
	}
	if err := auth(r, t1, newSecret); err != nil {
		t.Errorf("new secret: %v", err)
	}
	if err := auth(r, t2, old[t2]); err != nil {
		t.Errorf("T-0002 kept its secret, but: %v", err)
	}
	after, _ := r.Get(context.Background(), t1)
	if !after.Created.Equal(created.Created) {
		t.Errorf("rotation changed Created from %v to %v", created.Created, after.Created)
	}
}

func TestImportEmit(t *testing.T) {
	good, err := os.ReadFile("testdata/good.csv")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("called before commit with the new credentials", func(t *testing.T) {
		r := open(t, registry.Options{})
		var got []registry.Credential
		res, err := r.Import(context.Background(), bytes.NewReader(good), func(creds []registry.Credential) error {
			got = creds
			if n, err := r.Count(context.Background()); err != nil || n != 0 {
				t.Errorf("during emit Count = %d, %v; want 0 (not committed yet)", n, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 5 || !slices.Equal(got, res.Credentials) {
			t.Errorf("emit got %d credentials, result has %d", len(got), len(res.Credentials))
		}
	})

	t.Run("failing emit commits nothing", func(t *testing.T) {
		r := open(t, registry.Options{})
		diskFull := errors.New("disk full")
		var emitted []registry.Credential
		_, err := r.Import(context.Background(), bytes.NewReader(good), func(creds []registry.Credential) error {
			emitted = creds
			return diskFull
		})
		if !errors.Is(err, diskFull) {
			t.Fatalf("error %v, want the emit error", err)
		}
		if n, _ := r.Count(context.Background()); n != 0 {
			t.Errorf("Count = %d, want 0", n)
		}
		for _, c := range emitted {
			if err := auth(r, c.TerminalRef, c.Secret); !errors.Is(err, registry.ErrBadCredentials) {
				t.Errorf("emitted but uncommitted %v authenticates: %v", c.TerminalRef, err)
			}
		}
	})

	t.Run("failing emit keeps the old secret on rotation", func(t *testing.T) {
		r := open(t, registry.Options{})
		res := importFile(t, r, "good.csv")
		t1 := ref("acme", "T-0001")
		old := secrets(res.Credentials)[t1]
		_, err := r.Import(context.Background(),
			strings.NewReader(header+",secret\nacme,T-0001,A920,Moved,Elsewhere,north,,,a-brand-new-secret-value\n"),
			func([]registry.Credential) error { return errors.New("cannot write") })
		if err == nil {
			t.Fatal("Import succeeded")
		}
		if err := auth(r, t1, old); err != nil {
			t.Errorf("old secret after a failed rotation: %v", err)
		}
		if err := auth(r, t1, "a-brand-new-secret-value"); !errors.Is(err, registry.ErrBadCredentials) {
			t.Errorf("uncommitted secret: %v, want ErrBadCredentials", err)
		}
		if got, _ := r.Get(context.Background(), t1); got.Site == "Elsewhere" {
			t.Error("site data of a failed import was committed")
		}
	})
}

func TestImportCancelled(t *testing.T) {
	r := open(t, registry.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, err := os.Open("testdata/good.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := r.Import(ctx, f, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if n, _ := r.Count(context.Background()); n != 0 {
		t.Errorf("Count = %d after a cancelled import", n)
	}
}

func TestAuthenticate(t *testing.T) {
	r := open(t, registry.Options{})
	res := importFile(t, r, "good.csv")
	sec := secrets(res.Credentials)
	t1 := ref("acme", "T-0001")

	tests := []struct {
		name     string
		username string
		password string
		ok       bool
	}{
		{"right secret", "acme:T-0001", sec[t1], true},
		{"right secret again (cached)", "acme:T-0001", sec[t1], true},
		{"other terminal's secret", "acme:T-0001", sec[ref("acme", "T-0002")], false},
		{"wrong secret", "acme:T-0001", sec[t1][:42] + "x", false},
		{"secret with a suffix", "acme:T-0001", sec[t1] + "x", false},
		{"empty password", "acme:T-0001", "", false},
		{"very long password", "acme:T-0001", strings.Repeat("p", 65535), false},
		{"unknown terminal", "acme:T-9999", sec[t1], false},
		{"unknown tenant", "other:T-0001", sec[t1], false},
		{"tenant of another terminal", "beta.retail:T-0001", sec[t1], false},
		{"no colon", "acmeT-0001", sec[t1], false},
		{"empty username", "", sec[t1], false},
		{"two colons", "acme:T-0001:x", sec[t1], false},
		{"bad characters", "ac me:T-0001", sec[t1], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Authenticate(context.Background(), tt.username, []byte(tt.password))
			if tt.ok {
				if err != nil || got != t1 {
					t.Errorf("Authenticate = %v, %v; want %v", got, err, t1)
				}
				return
			}
			if !errors.Is(err, registry.ErrBadCredentials) {
				t.Errorf("Authenticate = %v, %v; want ErrBadCredentials", got, err)
			}
			if got != (posfleet.TerminalRef{}) {
				t.Errorf("refused Authenticate returned %v", got)
			}
			if tt.password != "" && strings.Contains(err.Error(), tt.password) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// slowHash makes a verification take tens of milliseconds, so that a fast
// answer stands out from a slow one without measuring fine differences.
// The per-username budget is off: the test guesses one terminal's secret
// more often than it allows (see TestAuthenticateBudgets).
var slowHash = registry.Options{HashTime: 10, UsernameFailuresPerSecond: -1}

func minDuration(n int, f func()) time.Duration {
	best := time.Duration(1 << 62)
	for range n {
		start := time.Now()
		f()
		best = min(best, time.Since(start))
	}
	return best
}

func TestAuthenticateTiming(t *testing.T) {
	r := open(t, slowHash)
	res := importFile(t, r, "secrets.csv")
	t1 := ref("acme", "T-0201")
	secret := secrets(res.Credentials)[t1]

	wrong := minDuration(3, func() { auth(r, t1, "not-the-right-secret") })
	// A verification with these parameters takes over 20 ms on any machine
	// this runs on; a refusal without one takes microseconds.
	const slow = 8 * time.Millisecond
	if wrong < slow {
		t.Fatalf("wrong secret refused in %v; the slow hash is not slow enough for this test", wrong)
	}

	t.Run("unknown terminal takes as long as a wrong secret", func(t *testing.T) {
		if d := minDuration(3, func() { auth(r, ref("acme", "T-9999"), "not-the-right-secret") }); d < slow {
			t.Errorf("unknown terminal refused in %v, wrong secret in %v", d, wrong)
		}
	})
	t.Run("cached secret skips the slow hash", func(t *testing.T) {
		if err := auth(r, t1, secret); err != nil {
			t.Fatal(err)
		}
		if d := minDuration(5, func() {
			if err := auth(r, t1, secret); err != nil {
				t.Error(err)
			}
		}); d > slow/4 {
			t.Errorf("cached authentication took %v, wrong secret %v", d, wrong)
		}
	})
	t.Run("wrong secret of a cached terminal is still slow", func(t *testing.T) {
		if d := minDuration(3, func() { auth(r, t1, "not-the-right-secret") }); d < slow {
			t.Errorf("wrong secret of a cached terminal refused in %v", d)
		}
	})
}

func TestAuthenticateContext(t *testing.T) {
	opts := registry.Options{HashTime: 40, MaxConcurrentVerify: 1}
	r := open(t, opts)
	res := importFile(t, r, "secrets.csv")
	t1 := ref("acme", "T-0201")
	secret := secrets(res.Credentials)[t1]

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := r.Authenticate(ctx, t1.String(), []byte(secret))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})

	t.Run("deadline while queued", func(t *testing.T) {
		// One slow verification holds the only slot; a second caller whose
		// deadline passes while it waits gives up without verifying.
		done := make(chan struct{})
		go func() {
			defer close(done)
			auth(r, t1, "not-the-right-secret")
		}()
		time.Sleep(30 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_, err := r.Authenticate(ctx, t1.String(), []byte(secret))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want context.DeadlineExceeded", err)
		}
		<-done
		if err := auth(r, t1, secret); err != nil {
			t.Errorf("after the queue cleared: %v", err)
		}
	})
}

func TestAuthenticateConcurrent(t *testing.T) {
	// Without the per-username budget: the storm hits T-0001 with its old
	// secret far more often than the budget allows (TestAuthenticateBudgets).
	r := open(t, registry.Options{UsernameFailuresPerSecond: -1})
	res := importFile(t, r, "good.csv")
	sec := secrets(res.Credentials)
	t1 := ref("acme", "T-0001")
	oldT1 := sec[t1]
	const newT1 = "rotated-during-the-storm-0001"

	var wg sync.WaitGroup
	var okCount, refused atomic.Int64
	start := make(chan struct{})
	for g := range 24 {
		wg.Go(func() {
			<-start
			for i := range 4 {
				c := res.Credentials[(g+i)%len(res.Credentials)]
				if c.TerminalRef == t1 {
					// Its secret is being rotated: either answer is right
					// until the rotation is done.
					auth(r, t1, oldT1)
					continue
				}
				if (g+i)%3 == 0 {
					if err := auth(r, c.TerminalRef, "wrong-secret-"+c.Secret); !errors.Is(err, registry.ErrBadCredentials) {
						t.Errorf("wrong secret for %v: %v", c.TerminalRef, err)
					}
					refused.Add(1)
					continue
				}
				if err := auth(r, c.TerminalRef, c.Secret); err != nil {
					t.Errorf("right secret for %v: %v", c.TerminalRef, err)
				}
				okCount.Add(1)
			}
		})
	}
	wg.Go(func() {
		<-start
		if _, err := r.List(context.Background(), "acme"); err != nil {
			t.Errorf("List: %v", err)
		}
		_, err := importString(r, header+",secret\nacme,T-0001,A920,Noodle House,Moved,north,,,"+newT1+"\n")
		if err != nil {
			t.Errorf("rotating import: %v", err)
		}
	})
	close(start)
	wg.Wait()

	if okCount.Load() == 0 || refused.Load() == 0 {
		t.Errorf("%d accepted, %d refused: the mix did not run", okCount.Load(), refused.Load())
	}
	if err := auth(r, t1, oldT1); !errors.Is(err, registry.ErrBadCredentials) {
		t.Errorf("old secret after the rotation: %v, want ErrBadCredentials", err)
	}
	if err := auth(r, t1, newT1); err != nil {
		t.Errorf("new secret after the rotation: %v", err)
	}
}

func TestGetListCount(t *testing.T) {
	r := open(t, registry.Options{})
	ctx := context.Background()
	if n, err := r.Count(ctx); err != nil || n != 0 {
		t.Errorf("empty Count = %d, %v", n, err)
	}
	if ts := list(t, r, ""); len(ts) != 0 {
		t.Errorf("empty List = %v", ts)
	}
	importFile(t, r, "good.csv")
	// A tenant whose name extends another's must not leak into its list.
	if _, err := importString(r, header+"\nacme-east,T-0001,A920,Shop,Pier,east,,\nacm,T-0001,A920,Shop,Pier,east,,\n"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		tenant string
		want   []string
	}{
		{"acme", []string{"acme:T-0001", "acme:T-0002", "acme:T-0003"}},
		{"acme-east", []string{"acme-east:T-0001"}},
		{"acm", []string{"acm:T-0001"}},
		{"beta.retail", []string{"beta.retail:POS_17", "beta.retail:POS_18"}},
		{"nobody", nil},
		{"", []string{"acm:T-0001", "acme:T-0001", "acme:T-0002", "acme:T-0003", "acme-east:T-0001", "beta.retail:POS_17", "beta.retail:POS_18"}},
	}
	for _, tt := range tests {
		t.Run("List "+tt.tenant, func(t *testing.T) {
			if got := refs(list(t, r, tt.tenant)); !slices.Equal(got, tt.want) {
				t.Errorf("List(%q) = %v, want %v", tt.tenant, got, tt.want)
			}
		})
	}
	t.Run("List invalid tenant", func(t *testing.T) {
		if _, err := r.List(ctx, "a b"); !errors.Is(err, posfleet.ErrInvalidID) {
			t.Errorf("error %v, want ErrInvalidID", err)
		}
	})
	t.Run("Count", func(t *testing.T) {
		if n, err := r.Count(ctx); err != nil || n != 7 {
			t.Errorf("Count = %d, %v; want 7", n, err)
		}
	})
	t.Run("Get unknown", func(t *testing.T) {
		if _, err := r.Get(ctx, ref("acme", "T-9999")); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("error %v, want ErrNotFound", err)
		}
	})
	t.Run("Get invalid", func(t *testing.T) {
		if _, err := r.Get(ctx, ref("acme", "T 1")); !errors.Is(err, posfleet.ErrInvalidID) {
			t.Errorf("error %v, want ErrInvalidID", err)
		}
	})
}

func TestWriteCredentials(t *testing.T) {
	creds := []registry.Credential{
		{TerminalRef: ref("acme", "T-1"), Secret: "secret,with,commas-and\"quote"},
		{TerminalRef: ref("beta", "T-2"), Secret: "plain-secret-value"},
	}
	var buf bytes.Buffer
	if err := registry.WriteCredentials(&buf, creds); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"tenant", "terminal", "secret"}, {"acme", "T-1", creds[0].Secret}, {"beta", "T-2", creds[1].Secret}}
	if !slices.EqualFunc(recs, want, slices.Equal) {
		t.Errorf("read back %q, want %q", recs, want)
	}

	t.Run("write error", func(t *testing.T) {
		if err := registry.WriteCredentials(failingWriter{}, creds); err == nil {
			t.Error("no error from a failing writer")
		}
	})
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space") }

func BenchmarkAuthenticate(b *testing.B) {
	// provision imports n terminals under a fresh tenant and returns their
	// credentials, so that every one is authenticated cold.
	run := 0
	provision := func(b *testing.B, r *registry.Registry, n int) []registry.Credential {
		b.Helper()
		run++
		var sb strings.Builder
		sb.WriteString(header + "\n")
		for i := range n {
			fmt.Fprintf(&sb, "bench%d,T-%d,A920,Shop,Pier 1,north,,\n", run, i)
		}
		res, err := importString(r, sb.String())
		if err != nil {
			b.Fatal(err)
		}
		return res.Credentials
	}

	b.Run("cold", func(b *testing.B) {
		r := open(b, registry.Options{})
		creds := provision(b, r, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := auth(r, creds[i].TerminalRef, creds[i].Secret); err != nil {
				b.Fatal(err)
			}
		}
	})

	// A reconnect storm: every core verifying a different terminal.
	b.Run("cold-parallel", func(b *testing.B) {
		r := open(b, registry.Options{})
		creds := provision(b, r, b.N)
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c := creds[next.Add(1)-1]
				if err := auth(r, c.TerminalRef, c.Secret); err != nil {
					b.Error(err)
				}
			}
		})
	})

	// After a restart with Options.CacheKeyFile: every terminal verified
	// before the restart, none verified again. A pool of terminals is
	// reused, as provisioning b.N of them would take longer than the
	// benchmark; small hash parameters make the provisioning quick, and the
	// warm path never runs the hash.
	b.Run("persisted", func(b *testing.B) {
		const pool = 1000
		dir := b.TempDir()
		path := filepath.Join(dir, "posfleet.db")
		opts := registry.Options{HashMemoryKiB: 64, CacheKeyFile: filepath.Join(dir, "cache.key")}
		r := openAt(b, path, opts)
		creds := provision(b, r, pool)
		for _, c := range creds {
			if err := auth(r, c.TerminalRef, c.Secret); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
		r = openAt(b, path, opts)
		verified := registry.SlowVerifications(r)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			c := creds[i%pool]
			if err := auth(r, c.TerminalRef, c.Secret); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if n := registry.SlowVerifications(r) - verified; n != 0 {
			b.Errorf("%d slow verifications after reopen, want 0", n)
		}
	})

	b.Run("cached", func(b *testing.B) {
		r := open(b, registry.Options{})
		c := provision(b, r, 1)[0]
		if err := auth(r, c.TerminalRef, c.Secret); err != nil {
			b.Fatal(err)
		}
		username, password := c.String(), []byte(c.Secret)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := r.Authenticate(ctx, username, password); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// dottedPAN is a card number built from a public test prefix, printed with
// dots.
func dottedPAN() string {
	for d := '0'; d <= '9'; d++ {
		if s := "411111111111111" + string(d); posfleet.ContainsCardData(s) {
			return s[:4] + "." + s[4:8] + "." + s[8:12] + "." + s[12:]
		}
	}
	panic("unreachable")
}
