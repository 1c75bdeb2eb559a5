package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// readCSVWithPython reads path as a spreadsheet user's script would:
// Python's csv module over the file opened with encoding="utf-8-sig".
// The rows come back as JSON with \u escapes, so nothing between Python
// and Go can mend a broken encoding.
const readCSVWithPython = `
import csv, json, sys
with open(sys.argv[1], encoding="utf-8-sig", newline="") as f:
    print(json.dumps(list(csv.reader(f)), ensure_ascii=True))
`

// TestJobSheetCSVInPython: the job sheet CSV, downloaded by a reader of
// Chinese, read by Python's csv module as utf-8-sig: the header in
// Chinese without a stray byte order mark, the Chinese merchant names and
// addresses intact, the parts to bring in Chinese. (Skipped without
// python3; CI has it.)
func TestJobSheetCSVInPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	f := newJobFixture(t)
	c, _ := f.session(t, "ops-acme")
	req, _ := http.NewRequest("GET", f.srv.URL+"/worklist.csv", nil)
	req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("CSV: %s", resp.Status)
	}
	path := filepath.Join(t.TempDir(), "jobsheet.csv")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, "-c", readCSVWithPython, path).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var rows [][]string
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("python3's rows %q: %v", out, err)
	}
	if len(rows) != 5 {
		t.Fatalf("%d rows, want the header and 4 terminals: %q", len(rows), rows)
	}
	if want := []string{"区域", "商户", "地址", "电话", "营业时间", "终端", "标记", "需携带物品", "优先级"}; !slices.Equal(rows[0], want) {
		t.Errorf("header %q, want %q", rows[0], want)
	}
	var chunxi int
	for _, r := range rows[1:] {
		if r[1] == chunxiMerchant && r[2] == chunxiAddress {
			chunxi++
			if r[7] != "清洁卡；打印纸卷；打印机清洁套件" { // hardware_fault of the printer
				t.Errorf("what to bring for %s: %q", r[5], r[7])
			}
		}
	}
	if chunxi != 2 {
		t.Errorf("%d rows of %s at %s intact, want 2: %q", chunxi, chunxiMerchant, chunxiAddress, rows)
	}
}
