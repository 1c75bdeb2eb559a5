package web

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

// TestJobSheetOrder: the job sheet's order of keys alone is
// health.JobSheet's order of the whole items, over random fleets with
// shared sites, site names repeated across regions and tenants, and ties.
func TestJobSheetOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := rng.IntN(60)
		var keys []WorkKey
		var items []health.WorkItem
		for i := range n {
			k := WorkKey{Ref: posfleet.TerminalRef{Tenant: fmt.Sprintf("t%d", rng.IntN(2)), Terminal: fmt.Sprintf("T-%03d", i)},
				Region: fmt.Sprintf("r%d", rng.IntN(3)), Site: fmt.Sprintf("s%d", rng.IntN(5)), Priority: 1 + rng.IntN(4), Urgent: rng.IntN(3) == 0}
			if rng.IntN(10) == 0 {
				k.Region, k.Site = "", ""
			}
			keys = append(keys, k)
			items = append(items, health.WorkItem{Ref: k.Ref, Tenant: k.Ref.Tenant, Terminal: k.Ref.Terminal,
				Site: health.Site{Region: k.Region, Site: k.Site}, Priority: k.Priority, Urgent: k.Urgent})
		}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		var want, got []posfleet.TerminalRef
		for _, it := range health.JobItems(health.JobSheet(items)) {
			want = append(want, it.Ref)
		}
		for _, k := range jobSheetOrder(keys) {
			got = append(got, k.Ref)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d:\ngot  %v\nwant %v", round, got, want)
		}
	}
}
