package audit

import (
	"fmt"
	"strconv"
)

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func csvHref(query string) string {
	if query == "" {
		return "/audit.csv"
	}
	return "/audit.csv?" + query
}

func pageHref(query string, page int) string {
	if query == "" {
		return "/audit?page=" + strconv.Itoa(page)
	}
	return "/audit?" + query + "&page=" + strconv.Itoa(page)
}

func summary(v View) string {
	if v.Total == 0 {
		return "No entries match."
	}
	first := (v.Page-1)*v.PageSize + 1
	last := min(first+len(v.Entries)-1, v.Total)
	if len(v.Entries) == 0 {
		return fmt.Sprintf("%d entries; this page is past the last.", v.Total)
	}
	return fmt.Sprintf("Entries %d–%d of %d, newest first.", first, last, v.Total)
}
