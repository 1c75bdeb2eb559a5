package web

import (
	"context"
	"encoding/csv"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet/health"
	"github.com/posfleet/posfleet/locale"
	"github.com/posfleet/posfleet/web/pages/layout"
	"github.com/posfleet/posfleet/web/pages/worklist"
)

// JobSheetCSVHeader is the header of the crew's job sheet CSV in English;
// a reader of another language gets it in its own (worklist.csv.<column>):
// the sheet is for people, who open it in a spreadsheet, and scripts read
// the API's CSV (/api/v1/worklist?format=csv), whose header never changes.
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
	if err := WriteJobSheetCSV(r.Context(), w, items); err != nil {
		s.log.Warn("job sheet CSV", "err", err)
	}
}

// WriteJobSheetCSV writes items (in job-sheet order) as the crew's job
// sheet: UTF-8 with a byte order mark, which is what makes Excel read it
// as UTF-8 (without, Chinese merchant names open as mojibake); Python's
// csv module reads it with encoding "utf-8-sig". Text cells pass through
// csvText, so a spreadsheet never runs one as a formula. The header and
// the parts to bring are in the language of ctx's reader; flags stay
// codes, and data (names, addresses) as provisioned.
func WriteJobSheetCSV(ctx context.Context, w io.Writer, items []health.WorkItem) error {
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // what Excel writes and expects
	header := make([]string, len(JobSheetCSVHeader))
	for i, col := range JobSheetCSVHeader {
		header[i] = locale.T(ctx, "worklist.csv."+col)
	}
	cw.Write(header)
	for _, it := range items {
		var flags []string
		for _, r := range it.Reasons {
			flags = append(flags, string(r.Flag))
		}
		cw.Write([]string{
			csvText(it.Region), csvText(it.Merchant), csvText(it.Address), csvText(it.Phone), csvText(it.OpeningHours),
			csvText(it.Terminal), strings.Join(flags, " "), csvText(worklist.Parts(ctx, health.ItemParts(it), "worklist.csv.parts_separator")),
			strconv.Itoa(it.Priority),
		})
	}
	cw.Flush()
	return cw.Error()
}
