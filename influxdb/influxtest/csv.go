package influxtest

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
)

func parseCSV(resp *http.Response) ([]map[string]string, error) {
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("influxtest: flux: %s: %s", resp.Status, b)
	}
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	var header []string
	var out []map[string]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("influxtest: flux answer: %w", err)
		}
		if len(rec) == 0 || (len(rec) == 1 && rec[0] == "") {
			header = nil // a blank line separates tables
			continue
		}
		if header == nil || slices.Equal(rec, header) {
			header = rec // Flux repeats the header at each table
			continue
		}
		if slices.Contains(header, "error") && slices.Contains(header, "reference") {
			// Flux reports a failure mid-stream as a table of its own, after
			// a 200 OK.
			return nil, fmt.Errorf("influxtest: flux: %s", rec[slices.Index(header, "error")])
		}
		row := make(map[string]string, len(rec))
		for i, v := range rec {
			if i < len(header) && header[i] != "" {
				row[header[i]] = v
			}
		}
		out = append(out, row)
	}
}
