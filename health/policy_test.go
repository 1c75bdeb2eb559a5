package health_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/health"
)

func TestParsePolicy(t *testing.T) {
	p, err := health.ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	a := p.Models["A920"]
	if a.Target != "2.5.1" || a.Minimum != "2.3.0" || len(a.Blocked) != 1 || a.URL == "" || len(a.SHA256) != 64 {
		t.Errorf("policy = %+v", p)
	}
	back, err := health.ParsePolicy(p.YAML())
	if err != nil || fmt.Sprint(back) != fmt.Sprint(p) {
		t.Errorf("YAML round trip = %+v, %v", back, err)
	}
	// JSON is YAML too, for PUT /api/v1/policy with a JSON body.
	js, _ := json.Marshal(p)
	if back, err := health.ParsePolicy(js); err != nil || fmt.Sprint(back) != fmt.Sprint(p) {
		t.Errorf("JSON round trip = %+v, %v", back, err)
	}
	if p, err := health.ParsePolicy(nil); err != nil || len(p.Models) != 0 {
		t.Errorf("empty policy = %+v, %v", p, err)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tests := []struct {
		name string
		yaml string
		line int
		want string
	}{
		{"bad target", "models:\n  A920:\n    target: two.five\n", 3, `target "two.five" is not a semantic version`},
		{"bad minimum", "models:\n  A920:\n    target: 2.5.1\n    minimum: 2.x.y\n", 4, `minimum "2.x.y"`},
		{"bad blocked", "models:\n  A920:\n    target: 2.5.1\n    blocked:\n      - 2.4.0\n      - banana\n", 6, `blocked version "banana"`},
		{"missing target", "models:\n  A920:\n    minimum: 2.0.0\n", 3, "target is required"},
		{"minimum above target", "models:\n  A920:\n    target: 2.5.1\n    minimum: 3.0.0\n", 4, "newer than target"},
		{"target blocked", "models:\n  A920:\n    target: 2.5.1\n    blocked: [2.5.1]\n", 4, "on the blocked list"},
		{"unknown key", "models:\n  A920:\n    target: 2.5.1\n    tagret: 2.5.2\n", 4, `unknown key "tagret"`},
		{"unknown top key", "model:\n  A920:\n    target: 2.5.1\n", 1, `unknown key "model"`},
		{"bad sha256", "models:\n  A920:\n    target: 2.5.1\n    url: https://x/a.bin\n    sha256: abc\n", 5, "64 hexadecimal digits"},
		{"url without sha256", "models:\n  A920:\n    target: 2.5.1\n    url: https://x/a.bin\n", 3, "url and sha256 go together"},
		{"blocked not a list", "models:\n  A920:\n    target: 2.5.1\n    blocked: 2.4.0\n", 4, "want a list"},
		{"syntax", "models:\n  A920:\n    target: [2.5.1\n", 0, "line"},
		{"second model bad", "models:\n  A920:\n    target: 2.5.1\n    url: https://x/a.bin\n    sha256: " + sum + "\n  S80:\n    target: 1.0\n    minimum: 0.9.9.9\n", 8, `model "S80"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := health.ParsePolicy([]byte(tt.yaml))
			var pe *health.PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *PolicyError", err)
			}
			if tt.line > 0 && pe.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", pe.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
			if tt.line > 0 && !strings.Contains(err.Error(), fmt.Sprintf("line %d:", tt.line)) {
				t.Errorf("err = %q does not name line %d", err, tt.line)
			}
		})
	}
}

func TestSetPolicyKeepsTheOldOneOnError(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		x := newTerm(e, "T1")
		x.inv("A920", "2.5.0", nil)
		if !x.has(posfleet.FlagFirmwareOutdated) {
			t.Fatal("not outdated under the test policy")
		}
		if err := e.SetPolicy([]byte("models:\n  A920:\n    target: nope\n")); err == nil {
			t.Fatal("bad policy accepted")
		}
		if e.Policy().Models["A920"].Target != "2.5.1" || !x.has(posfleet.FlagFirmwareOutdated) {
			t.Errorf("policy after a refused update = %+v", e.Policy())
		}
		// A new policy re-judges every terminal at once.
		if err := e.SetPolicy([]byte("models:\n  A920:\n    target: 2.5.0\n")); err != nil {
			t.Fatal(err)
		}
		if x.has(posfleet.FlagFirmwareOutdated) {
			t.Error("still outdated after the target moved to its version")
		}
	})
}

func TestSnapshotRestore(t *testing.T) {
	bubbleWith(t, health.Config{Merchant: merchantOf(5), Site: testSites}, func(t *testing.T, e *health.Engine) {
		time.Sleep(time.Second)
		fleet := outageFleet(e)
		for i, x := range fleet {
			x.inv("A920", []string{"2.4.0", "2.4.1", "2.5.1"}[i%3], nil)
			x.hb(hbSignal(-70 - i))
			x.txns(12)
		}
		for _, x := range fleet {
			hostFailures(x)
		}
		fleet[1].fault(posfleet.ComponentPrinter, "PAPER_OUT", posfleet.SeverityWarning, posfleet.FaultRaised)
		fleet[2].fault(posfleet.ComponentSecureElement, "TAMPER", posfleet.SeverityCritical, posfleet.FaultRaised)
		fleet[3].txn(charged(2000))
		fleet[4].txn(refund(3000, 1000))
		fleet[5].hb(hbBattery(5, false))
		time.Sleep(10 * time.Second)
		if _, err := e.MarkServiced(fleet[6].ref, "checked", "crew-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		if len(e.Incidents(tenant)) != 1 {
			t.Fatalf("incidents = %v", e.Incidents(tenant))
		}

		var buf bytes.Buffer
		if err := e.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		r := health.New(health.Config{Merchant: merchantOf(5), Site: testSites, Now: time.Now})
		if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct {
			name string
			f    func(*health.Engine) any
		}{
			{"terminals", func(e *health.Engine) any { return e.Terminals("", "") }},
			{"incidents", func(e *health.Engine) any { return e.Incidents("") }},
			{"work list", func(e *health.Engine) any { return e.WorkList("") }},
			{"summary", func(e *health.Engine) any { return e.FleetSummary("") }},
			{"policy", func(e *health.Engine) any { return e.Policy() }},
		} {
			a, _ := json.Marshal(q.f(e))
			b, _ := json.Marshal(q.f(r))
			if !bytes.Equal(a, b) {
				i := 0
				for i < min(len(a), len(b)) && a[i] == b[i] {
					i++
				}
				t.Errorf("%s differ after restore at byte %d:\n%s\n%s", q.name, i, a[max(0, i-200):min(len(a), i+100)], b[max(0, i-200):min(len(b), i+100)])
			}
		}
		// The restored engine goes on where the old one stopped.
		for _, x := range fleet {
			x.e = r
			x.txn(timeout)
		}
		time.Sleep(10 * time.Second)
		r.Tick(time.Now())
		if incs := r.Incidents(tenant); len(incs) != 1 || !incs[0].Open || incs[0].Failures != 8*30+30 {
			t.Errorf("restored incident = %+v", incs)
		}
		if err := r.Restore(strings.NewReader("not a snapshot")); err == nil {
			t.Error("garbage restored")
		}
		if n := len(r.Terminals("", "")); n != 30 {
			t.Errorf("after a failed restore %d terminals, want the 30 kept", n)
		}
	})
}

// TestConcurrentObserve feeds many terminals from many goroutines while
// ticks and queries run; run it with -race.
func TestConcurrentObserve(t *testing.T) {
	e := health.New(health.Config{TickInterval: time.Millisecond})
	ctx := t.Context()
	go func() { _ = e.Run(ctx) }()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				x := newTerm(e, fmt.Sprintf("G%d-%d", g, i))
				x.inv("A920", "2.4.1", nil)
				x.hb()
				x.txns(5)
				x.txn(timeout)
				x.fault(posfleet.ComponentPrinter, "PAPER_OUT", posfleet.SeverityWarning, posfleet.FaultRaised)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			e.FleetSummary("")
			e.WorkList(tenant)
			var buf bytes.Buffer
			if err := e.Snapshot(&buf); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if fs := e.FleetSummary(tenant); fs.Total != 400 || fs.Flagged[posfleet.FlagHardwareFault] != 400 {
		t.Errorf("summary = %+v", fs)
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(testPolicy))
	f.Add([]byte("models:\n  A920:\n    target: 2.5.1\n    blocked: [2.4.0, 2.4.1-rc.1]\n"))
	f.Add([]byte(`{"models":{"S80":{"target":"v1.2.3","minimum":"1.0.0"}}}`))
	f.Add([]byte("models:\n  - A920\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := health.ParsePolicy(data)
		if err != nil {
			var pe *health.PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *PolicyError", err)
			}
			return
		}
		// What was accepted is written back in a form that is accepted again.
		back, err := health.ParsePolicy(p.YAML())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", p.YAML(), err)
		}
		if fmt.Sprint(back) != fmt.Sprint(p) {
			t.Fatalf("round trip changed the policy: %v != %v", back, p)
		}
	})
}

// TestRestoreGrace: the server heard nothing while it was down, so a
// terminal is not offline until the deadline has passed since the restore;
// one that was offline already stays offline since the time it went.
func TestRestoreGrace(t *testing.T) {
	bubble(t, func(t *testing.T, e *health.Engine) {
		gone, alive := newTerm(e, "gone"), newTerm(e, "alive")
		gone.hb()
		time.Sleep(5 * time.Minute)
		alive.hb()
		wentOffline := gone.flag(t, posfleet.FlagOffline).Since
		var buf bytes.Buffer
		if err := e.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute) // the server is down
		r := health.New(health.Config{Now: time.Now})
		if err := r.Restore(&buf); err != nil {
			t.Fatal(err)
		}
		r.Tick(time.Now())
		alive.e, gone.e = r, r
		if alive.has(posfleet.FlagOffline) {
			t.Error("offline right after the restart")
		}
		if f := gone.flag(t, posfleet.FlagOffline); !f.Since.Equal(wentOffline) {
			t.Errorf("offline since %v, want %v", f.Since, wentOffline)
		}
		time.Sleep(181 * time.Second)
		r.Tick(time.Now())
		if !alive.has(posfleet.FlagOffline) {
			t.Error("still not offline after the deadline")
		}
	})
}

// testPAN is a card number built from a public test prefix, never pasted.
func testPAN() string {
	for d := '0'; d <= '9'; d++ {
		if s := "411111111111111" + string(d); posfleet.ContainsCardData(s) {
			return s
		}
	}
	panic("unreachable")
}

// TestParsePolicyRefusesCardData: a card number in any key or value of the
// policy is refused, and the error does not repeat it; a sha256 passes.
func TestParsePolicyRefusesCardData(t *testing.T) {
	pan := testPAN()
	dotted := pan[:4] + "." + pan[4:8] + "." + pan[8:12] + "." + pan[12:]
	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	for name, doc := range map[string]string{
		"in the url":        "models:\n  A920:\n    target: 2.5.1\n    url: https://x/" + dotted + ".bin\n    sha256: " + sum + "\n",
		"as the model name": "models:\n  \"" + pan + "\":\n    target: 2.5.1\n",
		"as a blocked item": "models:\n  A920:\n    target: 2.5.1\n    blocked: [\"" + pan + "\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := health.ParsePolicy([]byte(doc))
			var pe *health.PolicyError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), "card") {
				t.Fatalf("err = %v, want a *PolicyError about card data", err != nil)
			}
			if strings.Contains(err.Error(), pan[:12]) {
				t.Error("card digits found in the error")
			}
		})
	}
	p, err := health.ParsePolicy([]byte("models:\n  A920:\n    target: 2.5.1\n    url: https://x/a.bin\n    sha256: " + sum + "\n"))
	if err != nil || p.Models["A920"].SHA256 != sum {
		t.Errorf("a plain policy: %v", err)
	}
}

// TestPolicyCheckURLs: package URLs are absolute https URLs with a host and
// no user; http only when allowed.
func TestPolicyCheckURLs(t *testing.T) {
	for _, tc := range []struct {
		url       string
		allowHTTP bool
		ok        bool
	}{
		{"https://fw.example.com/a920-2.4.1.bin", false, true},
		{"HTTPS://fw.example.com/x", false, true},
		{"http://fw.example.com/x", false, false},
		{"http://fw.example.com/x", true, true},
		{"javascript:alert(31)", true, false},
		{"data:text/html,x", true, false},
		{"file:///etc/passwd", true, false},
		{"/relative/path.bin", true, false},
		{"https://user:pw@fw.example.com/x", false, false},
		{"ftp://fw.example.com/x", true, false},
	} {
		pol := &health.Policy{Models: map[string]health.ModelPolicy{"A920": {Target: "2.4.1", URL: tc.url}}}
		err := pol.CheckURLs(tc.allowHTTP)
		if (err == nil) != tc.ok {
			t.Errorf("%q (allow http %v): err = %v, want ok %v", tc.url, tc.allowHTTP, err, tc.ok)
		}
	}
}
