package health

import (
	"cmp"
	"slices"
	"strings"

	"github.com/posfleet/posfleet"
)

// JobRegion is one region of a crew's job sheet: its sites in the order to
// visit them.
type JobRegion struct {
	Region string    `json:"region"`
	Sites  []JobSite `json:"sites"`
}

// JobSite is one shop of a crew's job sheet: where it is, how to reach it,
// and its terminals that need a visit, the most pressing first.
type JobSite struct {
	Tenant   string `json:"tenant"`
	Region   string `json:"region"`
	Site     string `json:"site"`
	Merchant string `json:"merchant"`
	posfleet.Contact
	// Priority is its most pressing terminal's; Urgent if any is urgent.
	Priority int        `json:"priority"`
	Urgent   bool       `json:"urgent"`
	Items    []WorkItem `json:"items"`
}

// ItemParts is what to bring for a work item: the parts of all its
// reasons (posfleet.PartsFor), each once.
func ItemParts(it WorkItem) []string {
	var out []string
	for _, r := range it.Reasons {
		out = posfleet.MergeParts(out, posfleet.PartsFor(r.Flag, r.Evidence)...)
	}
	return out
}

// SiteParts is what to bring for all a site's terminals, each part once.
func SiteParts(s JobSite) []string {
	var out []string
	for _, it := range s.Items {
		out = posfleet.MergeParts(out, ItemParts(it)...)
	}
	return out
}

// JobSheet groups work items so that a crew can plan a route: by region,
// then by site (tenant, region and site name) within it. A site's priority
// is its most pressing terminal's; sites of a region come most pressing
// first (then urgent, then more terminals, then by name), regions by their
// most pressing site, then by name. Items of a site stay most pressing
// first, then by terminal.
func JobSheet(items []WorkItem) []JobRegion {
	// Each site's items together first, so that GroupJobSheet makes one
	// site of them; the sites are put in order below.
	byPlace := slices.Clone(items)
	slices.SortStableFunc(byPlace, func(a, b WorkItem) int {
		return cmp.Or(strings.Compare(a.Region, b.Region), strings.Compare(a.Site.Site, b.Site.Site), strings.Compare(a.Tenant, b.Tenant))
	})
	sites := GroupJobSheet(byPlace)
	var all []JobSite
	for _, r := range sites {
		all = append(all, r.Sites...)
	}
	for i := range all {
		slices.SortStableFunc(all[i].Items, func(a, b WorkItem) int {
			return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Terminal, b.Terminal))
		})
	}
	slices.SortStableFunc(all, func(a, b JobSite) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), -cmpBool(a.Urgent, b.Urgent),
			-cmp.Compare(len(a.Items), len(b.Items)), strings.Compare(a.Site, b.Site), strings.Compare(a.Tenant, b.Tenant))
	})
	var regions []JobRegion
	at := map[string]int{}
	for _, s := range all {
		i, ok := at[s.Region]
		if !ok {
			i = len(regions)
			at[s.Region] = i
			regions = append(regions, JobRegion{Region: s.Region})
		}
		regions[i].Sites = append(regions[i].Sites, s)
	}
	// Sites are in order, so a region's first site is its most pressing.
	slices.SortStableFunc(regions, func(a, b JobRegion) int {
		return cmp.Or(cmp.Compare(a.Sites[0].Priority, b.Sites[0].Priority), strings.Compare(a.Region, b.Region))
	})
	return regions
}

// GroupJobSheet groups items that are already in job-sheet order (a page
// of JobItems) into regions and sites without reordering them.
func GroupJobSheet(items []WorkItem) []JobRegion {
	type key struct{ tenant, region, site string }
	var regions []JobRegion
	var last key
	for n, it := range items {
		k := key{it.Tenant, it.Region, it.Site.Site}
		if n == 0 || it.Region != last.region {
			regions = append(regions, JobRegion{Region: it.Region})
		}
		r := &regions[len(regions)-1]
		if n == 0 || k != last {
			r.Sites = append(r.Sites, JobSite{Tenant: it.Tenant, Region: it.Region, Site: it.Site.Site,
				Merchant: it.Merchant, Contact: it.Contact, Priority: it.Priority})
		}
		last = k
		s := &r.Sites[len(r.Sites)-1]
		s.Items = append(s.Items, it)
		s.Priority = min(s.Priority, it.Priority)
		s.Urgent = s.Urgent || it.Urgent
		if s.Merchant == "" {
			s.Merchant = it.Merchant
		}
		if s.Contact == (posfleet.Contact{}) {
			s.Contact = it.Contact
		}
	}
	return regions
}

// JobItems returns the items of a job sheet in its order.
func JobItems(regions []JobRegion) []WorkItem {
	var out []WorkItem
	for _, r := range regions {
		for _, s := range r.Sites {
			out = append(out, s.Items...)
		}
	}
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
