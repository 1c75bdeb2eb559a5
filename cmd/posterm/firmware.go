package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/posfleet/posfleet"
)

// DefaultFirmware is the name of the embedded firmware catalogue.
const DefaultFirmware = "scenarios/firmware.json"

// FirmwareCatalogue says how each firmware version behaves: a simulated
// terminal looks up the version it runs now (the scenario's, or the one an
// update installed), so an update can bring a bug in or cure it. A version
// not in the catalogue behaves as its scenario says.
type FirmwareCatalogue struct {
	Firmware []FirmwareVersion `json:"firmware"`
}

// FirmwareVersion is one version's behaviour.
type FirmwareVersion struct {
	Version     string `json:"version"`
	Description string `json:"description"`
	// Models limits the entry to these models; empty: every model. An
	// entry naming the model wins over one for every model.
	Models []string `json:"models,omitempty"`
	// FeeBasisPoints is added to amount_charged of approved sales (60 =
	// 0.6%, the credit-card merchant fee), rounded half up.
	FeeBasisPoints int64 `json:"fee_bp,omitempty"`
	// Crash restarts the terminal under load.
	Crash *CrashPlan `json:"crash,omitempty"`
}

// CrashPlan: AfterTxns transactions within WithinMin simulated minutes
// restart the terminal, which reports its inventory again with BootReason
// (crash or watchdog).
type CrashPlan struct {
	AfterTxns  int     `json:"after_txns"`
	WithinMin  float64 `json:"within_min"`
	BootReason string  `json:"boot_reason"`
}

// overloaded adds a transaction at minute m to the minutes of the recent
// ones and says whether they are too many for the plan: then the terminal
// crashes, and the count starts again.
func (p *CrashPlan) overloaded(recent []float64, m float64) ([]float64, bool) {
	recent = append(recent, m)
	i := 0
	for i < len(recent) && recent[i] <= m-p.WithinMin {
		i++
	}
	recent = recent[i:]
	if len(recent) >= p.AfterTxns {
		return recent[:0], true
	}
	return recent, false
}

// LoadFirmware reads a firmware catalogue; "" reads the embedded one.
func LoadFirmware(path string) (*FirmwareCatalogue, error) {
	var b []byte
	var err error
	if path == "" {
		b, err = scenarioFiles.ReadFile(DefaultFirmware)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	return ParseFirmware(b)
}

// ParseFirmware parses and checks a firmware catalogue.
func ParseFirmware(b []byte) (*FirmwareCatalogue, error) {
	var c FirmwareCatalogue
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	seen := map[string]bool{}
	for _, v := range c.Firmware {
		if v.Version == "" {
			return nil, errors.New("firmware: an entry without a version")
		}
		models := v.Models
		if len(models) == 0 {
			models = []string{""}
		}
		for _, m := range models {
			k := m + "\x00" + v.Version
			if seen[k] {
				return nil, fmt.Errorf("firmware: %s listed twice", v.Version)
			}
			seen[k] = true
		}
		if v.FeeBasisPoints < 0 {
			return nil, fmt.Errorf("firmware: %s: negative fee_bp", v.Version)
		}
		if p := v.Crash; p != nil {
			if p.AfterTxns < 1 || p.WithinMin <= 0 {
				return nil, fmt.Errorf("firmware: %s: crash needs after_txns ≥ 1 and within_min > 0", v.Version)
			}
			switch p.BootReason {
			case "":
				p.BootReason = posfleet.BootCrash
			case posfleet.BootCrash, posfleet.BootWatchdog:
			default:
				return nil, fmt.Errorf("firmware: %s: crash boot_reason must be crash or watchdog", v.Version)
			}
		}
	}
	return &c, nil
}

// Lookup returns the behaviour of version on model; the zero value when
// the catalogue does not know it (or c is nil).
func (c *FirmwareCatalogue) Lookup(model, version string) FirmwareVersion {
	if c == nil {
		return FirmwareVersion{}
	}
	var any *FirmwareVersion
	for i := range c.Firmware {
		v := &c.Firmware[i]
		if v.Version != version {
			continue
		}
		if slices.Contains(v.Models, model) {
			return *v
		}
		if len(v.Models) == 0 && any == nil {
			any = v
		}
	}
	if any != nil {
		return *any
	}
	return FirmwareVersion{}
}

// installedFile, in the store directory, keeps the firmware each simulated
// terminal was updated to, so that a restart of the simulator does not
// undo an update.
const installedFile = "installed-firmware.json"

// installed is the firmware the updates installed, per terminal.
type installed struct {
	path string
	sync bool
	mu   sync.Mutex
	m    map[string]string // TerminalRef.String() -> version
}

func loadInstalled(dir string, sync bool) (*installed, error) {
	in := &installed{path: filepath.Join(dir, installedFile), sync: sync, m: map[string]string{}}
	b, err := os.ReadFile(in.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return in, nil
	case err != nil:
		return nil, fmt.Errorf("simulate: %w", err)
	}
	if err := json.Unmarshal(b, &in.m); err != nil {
		return nil, fmt.Errorf("simulate: %s: %w", in.path, err)
	}
	return in, nil
}

// get returns the version installed on ref, "" when none was.
func (in *installed) get(ref posfleet.TerminalRef) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.m[ref.String()]
}

// set records that ref now runs version, writing the whole file (a new
// file renamed over the old one: a crash leaves the old or the new).
func (in *installed) set(ref posfleet.TerminalRef, version string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.m[ref.String()] = version
	b, err := json.MarshalIndent(in.m, "", "  ")
	if err != nil {
		return err
	}
	tmp := in.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil && in.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, in.path)
}

// urlPackages serves firmware packages without a network: the package at
// a URL is the URL's own bytes, so the SHA-256 a command must carry is
// that of its URL (`printf %s URL | sha256sum`), and any other digest
// fails the download with a checksum error.
type urlPackages struct{}

// PackageSHA256 is the digest of the simulated package at url.
func PackageSHA256(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:])
}

func (urlPackages) RoundTrip(req *http.Request) (*http.Response, error) {
	body := req.URL.String()
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/octet-stream"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}
