package campaign

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
)

func validSpec() posfleet.CampaignSpec {
	return posfleet.CampaignSpec{Name: "A920 to 2.5.2", Model: "A920", Target: "2.5.2",
		Package: posfleet.FirmwarePackage{URL: "https://fw.example/2.5.2.bin", SHA256: strings.Repeat("ab", 32)},
		Waves: []posfleet.WaveSpec{{Count: 5, Soak: posfleet.Duration(2 * time.Hour)}, {Percent: 10, Soak: posfleet.Duration(4 * time.Hour)},
			{Percent: 100, Soak: posfleet.Duration(4 * time.Hour)}},
		MaxInFlight: 20, Window: posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned}}
}

// TestValidate: every refusal names its field and says why.
func TestValidate(t *testing.T) {
	opts := DefaultOptions()
	if err := Validate(validSpec(), opts); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	tests := []struct {
		edit func(s *posfleet.CampaignSpec)
		want string
	}{
		{func(s *posfleet.CampaignSpec) { s.Model = "" }, "model: required"},
		{func(s *posfleet.CampaignSpec) { s.Target = "" }, "target: required"},
		{func(s *posfleet.CampaignSpec) { s.Name = "card 4111111111111111" }, "name: looks like it holds a card number"},
		{func(s *posfleet.CampaignSpec) { s.Package.URL = "http://fw.example/x.bin" }, "package.url: http is refused"},
		{func(s *posfleet.CampaignSpec) { s.Package.URL = "ftp://fw.example/x.bin" }, `package.url: scheme "ftp" refused`},
		{func(s *posfleet.CampaignSpec) { s.Package.URL = "https://user:pw@fw.example/x.bin" }, "package.url: no user name"},
		{func(s *posfleet.CampaignSpec) { s.Package.URL = "/x.bin" }, "package.url: want an absolute https URL"},
		{func(s *posfleet.CampaignSpec) { s.Package.SHA256 = "abc" }, "package.sha256: want the package's SHA-256 as 64 hex digits"},
		{func(s *posfleet.CampaignSpec) { s.Waves = nil }, "waves: give at least one wave"},
		{func(s *posfleet.CampaignSpec) { s.Waves[1].Percent = 150 }, "waves[1].percent: 150 is over 100"},
		{func(s *posfleet.CampaignSpec) { s.Waves[2].Percent = 5 }, "waves[2].percent: 5 is not above the wave before's 10"},
		{func(s *posfleet.CampaignSpec) { s.Waves[0].Percent = 1 }, "waves[0]: give count or percent, not both"},
		{func(s *posfleet.CampaignSpec) { s.Waves[0].Count = 0 }, "waves[0]: give a count of terminals or a percent"},
		{func(s *posfleet.CampaignSpec) { s.Waves[0].Count = -1 }, "waves[0].count: -1 is negative"},
		{func(s *posfleet.CampaignSpec) { s.Waves[1].Soak = posfleet.Duration(time.Minute) }, "waves[1].soak: 1m0s is shorter than the minimum 10m0s"},
		{func(s *posfleet.CampaignSpec) { s.Waves[1].Soak = posfleet.Duration(40 * 24 * time.Hour) }, "waves[1].soak: 960h0m0s is longer than 30 days"},
		{func(s *posfleet.CampaignSpec) { s.MaxInFlight = -1 }, "max_in_flight: -1"},
		{func(s *posfleet.CampaignSpec) { s.Window.Mode = "" }, "window.mode: required"},
		{func(s *posfleet.CampaignSpec) { s.Window.Mode = "night" }, `window.mode: "night"`},
		{func(s *posfleet.CampaignSpec) { s.Window = posfleet.MaintenanceWindow{Mode: posfleet.WindowFixed} }, "window.start: required for a fixed window"},
		{func(s *posfleet.CampaignSpec) { s.Window.Start = "02:00" }, "window: give both start and end"},
		{func(s *posfleet.CampaignSpec) { s.Window.Start, s.Window.End = "25:00", "03:00" }, `window.start: "25:00"; want HH:MM`},
		{func(s *posfleet.CampaignSpec) { s.Window.Start, s.Window.End = "02:00", "02:00" }, "window.end: the same as start"},
		{func(s *posfleet.CampaignSpec) { s.Window.Zone = "Mars/Olympus" }, `window.zone: "Mars/Olympus" is not an IANA time zone`},
		{func(s *posfleet.CampaignSpec) { s.Select.Terminals = []string{"T-1", ""} }, "select.terminals[1]: required"},
		{func(s *posfleet.CampaignSpec) {
			s.Rollback = []posfleet.RollbackPackage{{Version: "2.4.1", Package: posfleet.FirmwarePackage{URL: "https://x/y", SHA256: "no"}}}
		}, "rollback[0].package.sha256"},
	}
	for _, tc := range tests {
		s := validSpec()
		s.Waves = append([]posfleet.WaveSpec(nil), s.Waves...)
		tc.edit(&s)
		err := Validate(s, opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || posfleet.ErrorKind(err) != posfleet.Invalid {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
	http := validSpec()
	http.Package.URL = "http://fw.example/x.bin"
	opts.AllowHTTPFirmware = true
	if err := Validate(http, opts); err != nil {
		t.Errorf("http with AllowHTTPFirmware: %v", err)
	}
}

func TestWaveSizes(t *testing.T) {
	w := func(count int, pct float64) posfleet.WaveSpec { return posfleet.WaveSpec{Count: count, Percent: pct} }
	tests := []struct {
		waves []posfleet.WaveSpec
		n     int
		want  string
	}{
		{[]posfleet.WaveSpec{w(5, 0), w(0, 10), w(0, 50), w(0, 100)}, 1000, "[5 95 400 500]"},
		{[]posfleet.WaveSpec{w(0, 1), w(0, 10), w(0, 100)}, 14, "[1 1 12]"},
		{[]posfleet.WaveSpec{w(20, 0), w(0, 100)}, 14, "[14 0]"},
		{[]posfleet.WaveSpec{w(2, 0), w(0, 50)}, 10, "[2 3]"},
		{[]posfleet.WaveSpec{w(0, 100)}, 0, "[0]"},
	}
	for _, tc := range tests {
		if got := fmt.Sprint(WaveSizes(tc.waves, tc.n)); got != tc.want {
			t.Errorf("WaveSizes(%v, %d) = %s, want %s", tc.waves, tc.n, got, tc.want)
		}
	}
}

// TestChooseSpreads: the order takes merchants in turn, so that a canary
// of 5 spans 5 merchants; it is deterministic per campaign and differs
// between campaigns; the target's terminals and busy ones are left out.
func TestChooseSpreads(t *testing.T) {
	var all []Terminal
	for i := range 50 {
		fw := "2.4.1"
		if i == 0 {
			fw = "2.5.2"
		}
		all = append(all, Terminal{Ref: posfleet.TerminalRef{Tenant: "acme", Terminal: fmt.Sprintf("T-%02d", i)}, Model: "A920", Firmware: fw,
			Merchant: fmt.Sprintf("M-%d", i%10), Region: []string{"north", "south"}[i%2]})
	}
	spec := validSpec()
	got := choose("cmp-1", spec, all, map[string]bool{"T-01": true})
	if len(got) != 48 {
		t.Fatalf("%d chosen, want 48 (not the one on the target, not the busy one)", len(got))
	}
	merchants := map[string]bool{}
	for _, c := range got[:5] {
		merchants[c.Merchant] = true
	}
	if len(merchants) != 5 {
		t.Errorf("the first 5 span %d merchants", len(merchants))
	}
	again := choose("cmp-1", spec, all, map[string]bool{"T-01": true})
	other := choose("cmp-2", spec, all, map[string]bool{"T-01": true})
	same := true
	for i := range got {
		if got[i].Ref != again[i].Ref {
			t.Fatal("the order differs for the same campaign")
		}
		same = same && got[i].Ref == other[i].Ref
	}
	if same {
		t.Error("two campaigns choose the same order")
	}
	spec.Select = posfleet.CampaignSelector{Regions: []string{"north"}, Versions: []string{"2.4.1"}, Terminals: []string{"T-02", "T-03", "T-04"}}
	if got := choose("cmp-1", spec, all, nil); len(got) != 2 {
		t.Errorf("north, 2.4.1, three listed: %d chosen, want 2 (T-03 is south)", len(got))
	}
}

func TestInWindow(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(h, m int) time.Time { return time.Date(2026, 3, 2, h, m, 0, 0, sh) }
	fixed := posfleet.MaintenanceWindow{Mode: posfleet.WindowFixed, Start: "22:00", End: "06:00"}
	for _, tc := range []struct {
		w    posfleet.MaintenanceWindow
		t    time.Time
		want bool
	}{
		{fixed, at(23, 0), true},
		{fixed, at(5, 59), true},
		{fixed, at(6, 0), false},
		{fixed, at(12, 0), false},
		{posfleet.MaintenanceWindow{Mode: posfleet.WindowFixed, Start: "02:00", End: "05:00"}, at(2, 0), true},
		{posfleet.MaintenanceWindow{Mode: posfleet.WindowAny}, at(12, 0), true},
		{posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned}, at(3, 0), true},   // no history: 01:00–05:00
		{posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned}, at(12, 0), false}, // no history: 01:00–05:00
	} {
		if got := inWindow(tc.w, sh, [168]bool{}, false, tc.t); got != tc.want {
			t.Errorf("%+v at %s: %v, want %v", tc.w, tc.t.Format("15:04"), got, tc.want)
		}
	}
	var hours [168]bool
	noon := at(12, 0)
	hours[hourIndex(noon)] = true
	learned := posfleet.MaintenanceWindow{Mode: posfleet.WindowLearned}
	if inWindow(learned, sh, hours, true, noon) || inWindow(learned, sh, hours, true, noon.Add(-time.Hour)) {
		t.Error("sent in a usual sale hour, or the hour before one")
	}
	if !inWindow(learned, sh, hours, true, noon.Add(time.Hour)) {
		t.Error("not sent in an hour with no sales after it")
	}
}
