package web

import (
	"encoding/csv"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/web/pages/layout"
)

// JobSheetCSVHeader is the header of the crew's job sheet CSV.
var JobSheetCSVHeader = []string{"region", "merchant", "address", "phone", "opening_hours", "terminal", "flags", "what_to_bring", "priority"}

// handleJobSheetCSV is the work list page's CSV (/worklist.csv, with the
// page's filters): one row per terminal in job-sheet order.
func (s *Server) handleJobSheetCSV(w http.ResponseWriter, r *http.Request, _ layout.Page) {
	f, err := parseJobFilter(r.URL.Query())
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	items, _, err := s.jobSheet(r, f)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="posfleet-jobsheet-`+s.opts.Now().UTC().Format("2006-01-02")+`.csv"`)
	if err := WriteJobSheetCSV(w, items); err != nil {
		s.log.Warn("job sheet CSV", "err", err)
	}
}

// WriteJobSheetCSV writes items (in job-sheet order) as the crew's job
// sheet: UTF-8 with a byte order mark, which is what makes Excel read it
// as UTF-8 (without, Chinese merchant names open as mojibake); Python's
// csv module reads it with encoding "utf-8-sig". Text cells pass through
// csvText, so a spreadsheet never runs one as a formula.
func WriteJobSheetCSV(w io.Writer, items []health.WorkItem) error {
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // what Excel writes and expects
	cw.Write(JobSheetCSVHeader)
	for _, it := range items {
		var flags []string
		for _, r := range it.Reasons {
			flags = append(flags, string(r.Flag))
		}
		cw.Write([]string{
			csvText(it.Region), csvText(it.Merchant), csvText(it.Address), csvText(it.Phone), csvText(it.OpeningHours),
			csvText(it.Terminal), strings.Join(flags, " "), csvText(strings.Join(health.ItemParts(it), "; ")),
			strconv.Itoa(it.Priority),
		})
	}
	cw.Flush()
	return cw.Error()
}
