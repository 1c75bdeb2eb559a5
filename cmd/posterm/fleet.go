package main

import (
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet"
)

// FleetTerminal is one row of the provisioning file.
type FleetTerminal struct {
	posfleet.TerminalRef
	Model, Merchant, Site, Region string
	Lat, Lon                      float64
	Secret                        string
}

// fleetHeader is PROTOCOL.md §4's header with the optional secret column,
// so that `posfleet terminals import` takes the file as it is and the
// simulator needs no second file for the credentials.
var fleetHeader = []string{"tenant", "terminal", "model", "merchant", "site", "region", "lat", "lon", "secret"}

// Label is one row of the labels file: a terminal, its scenario, and one
// flag the server should raise for it ("" when none should be).
type Label struct {
	posfleet.TerminalRef
	Scenario string
	Flag     string
}

var labelsHeader = []string{"tenant", "terminal", "scenario", "expected_flag"}

// cities are where the simulated shops are.
var cities = []struct {
	name     string
	lat, lon float64
}{
	{"Shanghai", 31.23, 121.47}, {"Beijing", 39.90, 116.41}, {"Guangzhou", 23.13, 113.26},
	{"Shenzhen", 22.54, 114.06}, {"Chengdu", 30.57, 104.07}, {"Hangzhou", 30.27, 120.16},
	{"Wuhan", 30.59, 114.31}, {"Xian", 34.34, 108.94},
}

var shopKinds = []string{"Grocery", "Noodle bar", "Pharmacy", "Bakery", "Tea house", "Hardware", "Supermarket", "Hotel", "Bookshop", "Fruit stall"}

// Provision makes a fleet of n terminals of tenant: merchants of one to
// five terminals, each merchant in one city, and a scenario per terminal.
func Provision(tenant string, n int, scen *ScenarioFile, seed uint64) ([]FleetTerminal, []Label, error) {
	if !posfleet.ValidID(tenant) {
		return nil, nil, fmt.Errorf("tenant %q: %w", tenant, posfleet.ErrInvalidID)
	}
	if n < 1 {
		return nil, nil, errors.New("want at least one terminal")
	}
	rng := mrand.New(mrand.NewPCG(seed, 1))
	width := max(5, len(strconv.Itoa(n)))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("T-%0*d", width, i+1)
	}
	assigned := scen.Assign(ids, seed)
	fleet := make([]FleetTerminal, 0, n)
	merchant, left := 0, 0
	var city int
	var shop string
	for _, id := range ids {
		if left == 0 {
			merchant++
			left = 1 + rng.IntN(5)
			city = rng.IntN(len(cities))
			shop = shopKinds[rng.IntN(len(shopKinds))]
		}
		left--
		s, _ := scen.Scenario(assigned[id])
		b, err := scen.behavior(s)
		if err != nil {
			return nil, nil, err
		}
		c := cities[city]
		fleet = append(fleet, FleetTerminal{
			TerminalRef: posfleet.TerminalRef{Tenant: tenant, Terminal: id},
			Model:       b.Models[rng.IntN(len(b.Models))],
			Merchant:    fmt.Sprintf("M-%05d", merchant),
			Site:        fmt.Sprintf("%s %s %d", c.name, shop, merchant),
			Region:      c.name,
			Lat:         c.lat + (rng.Float64()-0.5)*0.2,
			Lon:         c.lon + (rng.Float64()-0.5)*0.2,
			Secret:      newSecret(),
		})
	}
	var labels []Label
	for _, t := range fleet {
		s, _ := scen.Scenario(assigned[t.Terminal])
		if len(s.Expect) == 0 {
			labels = append(labels, Label{TerminalRef: t.TerminalRef, Scenario: s.Name})
		}
		for _, f := range s.Expect {
			labels = append(labels, Label{TerminalRef: t.TerminalRef, Scenario: s.Name, Flag: f})
		}
	}
	for _, s := range scen.FleetWide() {
		for _, f := range s.Expect {
			labels = append(labels, Label{TerminalRef: posfleet.TerminalRef{Tenant: tenant, Terminal: "*"}, Scenario: s.Name, Flag: f})
		}
	}
	return fleet, labels, nil
}

// newSecret returns 256 random bits in hex.
func newSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// WriteFleet writes the provisioning CSV.
func WriteFleet(w io.Writer, fleet []FleetTerminal) error {
	cw := csv.NewWriter(w)
	cw.Write(fleetHeader)
	for _, t := range fleet {
		cw.Write([]string{t.Tenant, t.Terminal, t.Model, t.Merchant, t.Site, t.Region,
			strconv.FormatFloat(t.Lat, 'f', 5, 64), strconv.FormatFloat(t.Lon, 'f', 5, 64), t.Secret})
	}
	cw.Flush()
	return cw.Error()
}

// ReadFleet reads a provisioning CSV that has a secret column.
func ReadFleet(r io.Reader) ([]FleetTerminal, error) {
	rows, col, err := readCSV(r, []string{"tenant", "terminal", "model", "secret"})
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	var fleet []FleetTerminal
	for i, rec := range rows {
		t := FleetTerminal{
			TerminalRef: posfleet.TerminalRef{Tenant: rec[col["tenant"]], Terminal: rec[col["terminal"]]},
			Model:       rec[col["model"]],
			Secret:      rec[col["secret"]],
		}
		if j, ok := col["merchant"]; ok {
			t.Merchant = rec[j]
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("fleet: line %d: %w", i+2, err)
		}
		if t.Secret == "" {
			return nil, fmt.Errorf("fleet: line %d: no secret", i+2)
		}
		fleet = append(fleet, t)
	}
	return fleet, nil
}

// WriteLabels writes the labels CSV.
func WriteLabels(w io.Writer, labels []Label) error {
	cw := csv.NewWriter(w)
	cw.Write(labelsHeader)
	for _, l := range labels {
		cw.Write([]string{l.Tenant, l.Terminal, l.Scenario, l.Flag})
	}
	cw.Flush()
	return cw.Error()
}

// ReadLabels reads a labels CSV.
func ReadLabels(r io.Reader) ([]Label, error) {
	rows, col, err := readCSV(r, labelsHeader)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	labels := make([]Label, len(rows))
	for i, rec := range rows {
		labels[i] = Label{
			TerminalRef: posfleet.TerminalRef{Tenant: rec[col["tenant"]], Terminal: rec[col["terminal"]]},
			Scenario:    rec[col["scenario"]],
			Flag:        rec[col["expected_flag"]],
		}
	}
	return labels, nil
}

// readCSV reads a CSV file with a header that has at least the columns want.
func readCSV(r io.Reader, want []string) ([][]string, map[string]int, error) {
	cr := csv.NewReader(r)
	all, err := cr.ReadAll()
	if err != nil {
		return nil, nil, err
	}
	if len(all) == 0 {
		return nil, nil, errors.New("empty file")
	}
	col := map[string]int{}
	for i, h := range all[0] {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))] = i
	}
	for _, w := range want {
		if _, ok := col[w]; !ok {
			return nil, nil, fmt.Errorf("no %s column", w)
		}
	}
	return all[1:], col, nil
}

// writeFile writes a file through fn, atomically enough for a CLI: a
// failed write leaves no half file.
func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// labelsPath is where provision puts the labels next to fleet.csv.
func labelsPath(fleetPath string) string {
	return strings.TrimSuffix(fleetPath, ".csv") + ".labels.csv"
}

// scenarioOf maps each terminal to its scenario from the labels.
func scenarioOf(labels []Label) map[posfleet.TerminalRef]string {
	out := map[posfleet.TerminalRef]string{}
	for _, l := range labels {
		if l.Terminal != "*" {
			out[l.TerminalRef] = l.Scenario
		}
	}
	return out
}
