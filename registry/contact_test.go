package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/registry"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/store/storetest"
)

// TestImportContactColumns: the optional job-sheet columns (address,
// contact, phone, opening_hours) on both engines: a file without them
// imports as before with them empty; a file with them stores them, in any
// column order, and a second registry on the same database reads them;
// re-importing the file without them clears them (the file is the truth).
func TestImportContactColumns(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := openOn(t, db, registry.Options{HashMemoryKiB: 64})
		if _, err := importString(r, header+"\nacme,T-1,A920,M,S,north,,\n"); err != nil {
			t.Fatalf("without the columns: %v", err)
		}
		got, err := r.Get(ctx, ref("acme", "T-1"))
		if err != nil || got.Contact != (posfleet.Contact{}) {
			t.Fatalf("without the columns: %+v %v", got.Contact, err)
		}
		want := posfleet.Contact{Address: "成都市锦江区春熙路 8 号", Person: "王经理", Phone: "+86 (28) 8661-2345", OpeningHours: "09:00-22:00 daily"}
		csv := "phone,tenant,terminal,model,merchant,site,region,lat,lon,address,contact,opening_hours\n" +
			`"+86 (28) 8661-2345",acme,T-1,A920,成都春熙路便利店,S,chengdu,30.65,104.08,成都市锦江区春熙路 8 号,王经理,09:00-22:00 daily` + "\n"
		res, err := importString(r, csv)
		if err != nil || res.Updated != 1 {
			t.Fatalf("with the columns: %+v %v", res, err)
		}
		if res, err := importString(r, csv); err != nil || res.Unchanged != 1 {
			t.Errorf("same file again: %+v %v, want unchanged", res, err)
		}
		got, _ = r.Get(ctx, ref("acme", "T-1"))
		if got.Contact != want || got.Placement().Contact != want {
			t.Errorf("stored %+v, placement %+v, want %+v", got.Contact, got.Placement().Contact, want)
		}
		r2 := openOn(t, db, registry.Options{HashMemoryKiB: 64})
		if got, err := r2.Get(ctx, ref("acme", "T-1")); err != nil || got.Contact != want {
			t.Errorf("second registry: %+v %v", got.Contact, err)
		}
		if res, err := importString(r, header+"\nacme,T-1,A920,成都春熙路便利店,S,chengdu,30.65,104.08\n"); err != nil || res.Updated != 1 {
			t.Fatalf("without the columns again: %+v %v", res, err)
		}
		if got, _ := r.Get(ctx, ref("acme", "T-1")); got.Contact != (posfleet.Contact{}) {
			t.Errorf("after a file without the columns: %+v", got.Contact)
		}
	})
}

// TestImportContactRules: each job-sheet column's rule, reported with its
// line and column, and nothing applied.
func TestImportContactRules(t *testing.T) {
	long := strings.Repeat
	tests := []struct {
		name   string
		fields string // address,contact,phone,opening_hours
		column string // "-" for a valid line
	}{
		{"all empty", ",,,", "-"},
		{"all given", "1 Pier Road,Ms Li,+86 28 8661-2345,9-21", "-"},
		{"phone with parentheses", `,,(028) 8661 2345,`, "-"},
		{"address of 256", long("路", 256) + ",,,", "-"},
		{"address of 257", long("路", 257) + ",,,", "address"},
		{"contact of 129", "," + long("a", 129) + ",,", "contact"},
		{"phone of 33", ",," + long("1", 33) + ",", "phone"},
		{"phone with letters", ",,call 8661,", "phone"},
		{"phone with an extension mark", ",,8661#12,", "phone"},
		{"phone as a link", ",,javascript:1,", "phone"},
		{"opening hours of 129", ",,," + long("h", 129), "opening_hours"},
		{"address with control character", "Pier\x071,,,", "address"},
		{"address with a card number", "Pier " + dottedPAN() + ",,,", "address"},
		{"contact with a card number", "," + strings.ReplaceAll(dottedPAN(), ".", " ") + ",,", "contact"},
		{"phone a card number", ",," + strings.ReplaceAll(dottedPAN(), ".", "") + ",", "phone"},
		{"hours with a card number", ",,," + strings.ReplaceAll(dottedPAN(), ".", "-"), "opening_hours"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, registry.Options{})
			csv := header + ",address,contact,phone,opening_hours\nacme,T-0,A920,Shop,Pier 1,north,,,,,,\nacme,T-1,A920,Shop,Pier 1,north,,," + tt.fields + "\n"
			res, err := importString(r, csv)
			if tt.column == "-" {
				if err != nil || res.Added != 2 {
					t.Fatalf("Import: %+v %v", res, err)
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
			if msg := ie.Error(); !strings.Contains(msg, "line 3: "+tt.column+":") || strings.Contains(msg, strings.ReplaceAll(dottedPAN(), ".", "")) {
				t.Errorf("message %q: want line and column named, and no card number", msg)
			}
			if n, _ := r.Count(context.Background()); n != 0 {
				t.Errorf("Count = %d, want 0", n)
			}
		})
	}
}
