package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"

	"io"
	"net/http"
	"strings"

	"github.com/posfleet/posfleet"
)

// Provisioner provisions terminals from a CSV file (PROTOCOL.md §4).
type Provisioner interface {
	Import(ctx context.Context, csv io.Reader, emit func([]posfleet.Credential) error) (posfleet.ImportResult, error)
}

// maxImport bounds a provisioning upload: about 100,000 terminals.
const maxImport = 16 << 20

// handleImport provisions terminals from the CSV body. A tenant's user or
// token may provision only its own tenant's terminals. The secrets of new
// terminals are in the answer, once.
func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxImport)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, s.log, posfleet.Errorf(posfleet.TooLarge, "too_large", "provisioning file over %d MiB: split it", maxImport>>20))
		return
	}
	p := principal(r)
	if !p.admin {
		if err := onlyTenant(body, p.scope); err != nil {
			writeError(w, s.log, err)
			return
		}
	}
	var creds []posfleet.Credential
	res, err := s.opts.Provisioner.Import(r.Context(), bytes.NewReader(body), func(c []posfleet.Credential) error {
		creds = c
		return nil
	})
	var ie *posfleet.ImportError
	if errors.As(err, &ie) {
		lines := make([]string, len(ie.Errors))
		for i, le := range ie.Errors {
			lines[i] = le.Error()
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
			"code": "bad_file", "message": "nothing was imported: the file has bad lines", "lines": lines}})
		return
	}
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	out := make([]map[string]string, len(creds))
	for i, c := range creds {
		out[i] = map[string]string{"tenant": c.Tenant, "terminal": c.Terminal, "secret": c.Secret}
	}
	s.log.Info("terminals provisioned", "by", p.name, "added", res.Added, "updated", res.Updated)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"added": res.Added, "updated": res.Updated, "unchanged": res.Unchanged,
		"credentials": out, "note": "the secrets are shown once; give each to its terminal"})
}

// onlyTenant refuses a provisioning file with a row of another tenant.
func onlyTenant(body []byte, tenant string) error {
	cr := csv.NewReader(bytes.NewReader(body))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return badRequest("provisioning file: no header line")
	}
	col := -1
	for i, h := range header {
		if strings.EqualFold(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")), "tenant") {
			col = i
		}
	}
	if col < 0 {
		return badRequest("provisioning file: no tenant column")
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return badRequest("provisioning file: " + err.Error())
		}
		line, _ := cr.FieldPos(0)
		if col < len(rec) && strings.TrimSpace(rec[col]) != tenant {
			return posfleet.Errorf(posfleet.Forbidden, "forbidden", "line %d: tenant %q: you may provision only tenant %s", line, rec[col], tenant)
		}
	}
}
