package health

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	// Masterminds/semver is the most used and maintained semver library for
	// Go; it parses the "2.4.1" and "v2.4.1" forms terminals report and orders
	// pre-releases by the SemVer 2.0 rules, which a hand-rolled comparison
	// of dotted numbers gets wrong ("2.5.0-rc.1" < "2.5.0").
	"github.com/Masterminds/semver/v3"
	"gopkg.in/yaml.v3"

	"github.com/posfleet/posfleet"
)

// Policy is the firmware policy of PROTOCOL.md §2: per terminal model, the
// firmware it should run, the oldest it may run, the versions it must not run,
// and where the update package is.
type Policy struct {
	Models map[string]ModelPolicy `yaml:"models" json:"models"`
}

// ModelPolicy is the firmware policy of one terminal model.
type ModelPolicy struct {
	// Target is the version every terminal of the model should run.
	Target string `yaml:"target" json:"target"`
	// Minimum, if set, is the oldest version still tolerated; terminals below
	// it have an urgent firmware_outdated flag.
	Minimum string `yaml:"minimum,omitempty" json:"minimum,omitempty"`
	// Blocked versions must be replaced at once (firmware_blocked, urgent).
	Blocked []string `yaml:"blocked,omitempty" json:"blocked,omitempty"`
	// URL and SHA256 locate and authenticate the update package for Target.
	URL    string `yaml:"url,omitempty" json:"url,omitempty"`
	SHA256 string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
}

// PolicyError is a refused policy: the line of the YAML document and why.
type PolicyError struct {
	Line   int // 1-based; 0 when the problem is not at one line
	Reason string
}

// Error returns the reason with the line, as a user fixing the file needs it.
func (e *PolicyError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("firmware policy: line %d: %s", e.Line, e.Reason)
	}
	return "firmware policy: " + e.Reason
}

// Unwrap gives the refusal its kind: invalid input, code bad_policy, with
// the reason and line as its message.
func (e *PolicyError) Unwrap() error {
	return &posfleet.Error{Kind: posfleet.Invalid, Code: "bad_policy", Message: e.Error()}
}

var sha256Hex = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// ParsePolicy parses and validates a firmware policy in YAML (JSON, being
// YAML, is accepted too). Errors are *PolicyError naming the line.
func ParsePolicy(data []byte) (*Policy, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &Policy{Models: map[string]ModelPolicy{}}, nil
		}
		// yaml.v3 syntax errors already read "yaml: line N: ...".
		return nil, &PolicyError{Reason: posfleet.Redact(err.Error())}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	// Before any message quotes a key or value: card data is refused
	// wherever it is, and never repeated.
	if line := cardDataLine(root); line != 0 {
		return nil, &PolicyError{Line: line, Reason: "looks like it holds a card number; card data is never stored"}
	}
	p := &Policy{Models: map[string]ModelPolicy{}}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return p, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &PolicyError{Line: root.Line, Reason: "want a mapping with the key \"models\""}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "models" {
			return nil, &PolicyError{Line: k.Line, Reason: fmt.Sprintf("unknown key %q (want \"models\")", k.Value)}
		}
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			continue
		}
		if v.Kind != yaml.MappingNode {
			return nil, &PolicyError{Line: v.Line, Reason: "models: want a mapping of model name to its policy"}
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			mk, mv := v.Content[j], v.Content[j+1]
			if mk.Value == "" {
				return nil, &PolicyError{Line: mk.Line, Reason: "empty model name"}
			}
			if _, dup := p.Models[mk.Value]; dup {
				return nil, &PolicyError{Line: mk.Line, Reason: fmt.Sprintf("model %q appears twice", mk.Value)}
			}
			mp, err := parseModelPolicy(mk.Value, mv)
			if err != nil {
				return nil, err
			}
			p.Models[mk.Value] = mp
		}
	}
	return p, nil
}

func parseModelPolicy(model string, n *yaml.Node) (ModelPolicy, error) {
	var mp ModelPolicy
	fail := func(line int, format string, a ...any) (ModelPolicy, error) {
		return ModelPolicy{}, &PolicyError{Line: line, Reason: fmt.Sprintf("model %q: ", model) + fmt.Sprintf(format, a...)}
	}
	if n.Kind != yaml.MappingNode {
		return fail(n.Line, "want a mapping with target, minimum, blocked, url, sha256")
	}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		lines[k.Value] = v.Line
		switch k.Value {
		case "target", "minimum", "url", "sha256":
			if v.Kind != yaml.ScalarNode {
				return fail(v.Line, "%s: want a string", k.Value)
			}
			switch k.Value {
			case "target":
				mp.Target = v.Value
			case "minimum":
				mp.Minimum = v.Value
			case "url":
				mp.URL = v.Value
			case "sha256":
				mp.SHA256 = v.Value
			}
		case "blocked":
			if v.Kind != yaml.SequenceNode {
				return fail(v.Line, "blocked: want a list of versions")
			}
			for _, b := range v.Content {
				if b.Kind != yaml.ScalarNode {
					return fail(b.Line, "blocked: want a list of versions")
				}
				if _, err := semver.NewVersion(b.Value); err != nil {
					return fail(b.Line, "blocked version %q is not a semantic version: %v", b.Value, err)
				}
				mp.Blocked = append(mp.Blocked, b.Value)
			}
		default:
			return fail(k.Line, "unknown key %q (want target, minimum, blocked, url, sha256)", k.Value)
		}
	}
	if mp.Target == "" {
		return fail(n.Line, "target is required")
	}
	target, err := semver.NewVersion(mp.Target)
	if err != nil {
		return fail(lines["target"], "target %q is not a semantic version: %v", mp.Target, err)
	}
	if mp.Minimum != "" {
		minimum, err := semver.NewVersion(mp.Minimum)
		if err != nil {
			return fail(lines["minimum"], "minimum %q is not a semantic version: %v", mp.Minimum, err)
		}
		if minimum.GreaterThan(target) {
			return fail(lines["minimum"], "minimum %s is newer than target %s", mp.Minimum, mp.Target)
		}
	}
	for _, b := range mp.Blocked {
		if semver.MustParse(b).Equal(target) {
			return fail(lines["blocked"], "target %s is on the blocked list", mp.Target)
		}
	}
	if mp.SHA256 != "" && !sha256Hex.MatchString(mp.SHA256) {
		return fail(lines["sha256"], "sha256 %q: want 64 hexadecimal digits", mp.SHA256)
	}
	if (mp.URL == "") != (mp.SHA256 == "") {
		return fail(n.Line, "url and sha256 go together: a terminal must verify what it downloads")
	}
	return mp, nil
}

// cardDataLine returns the line of the first key or value under n that holds
// card data (posfleet.ContainsCardData), or 0. A firmware image's sha256,
// 64 hex digits with a letter among them, is a hash and not checked: its
// digit runs are random, and no layout of a card number has that shape.
func cardDataLine(n *yaml.Node) int {
	if n.Kind == yaml.ScalarNode && posfleet.ContainsCardData(n.Value) {
		return n.Line
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 1 && n.Content[i-1].Value == "sha256" &&
			sha256Hex.MatchString(c.Value) && strings.ContainsAny(strings.ToLower(c.Value), "abcdef") {
			continue
		}
		if line := cardDataLine(c); line != 0 {
			return line
		}
	}
	return 0
}

// YAML returns the policy as a YAML document that ParsePolicy reads back.
func (p *Policy) YAML() []byte {
	b, err := yaml.Marshal(p)
	if err != nil {
		// Policy holds strings only; yaml.Marshal cannot fail on it.
		panic(err)
	}
	return b
}

// compiledPolicy is a Policy with its versions parsed once, so that judging a
// terminal's firmware does not parse the policy again.
type compiledPolicy struct {
	src    *Policy
	models map[string]compiledModel
}

type compiledModel struct {
	target, minimum *semver.Version
	blocked         []*semver.Version
	p               ModelPolicy
}

func compilePolicy(p *Policy) *compiledPolicy {
	c := &compiledPolicy{src: p, models: make(map[string]compiledModel, len(p.Models))}
	for name, mp := range p.Models {
		cm := compiledModel{target: semver.MustParse(mp.Target), p: mp}
		if mp.Minimum != "" {
			cm.minimum = semver.MustParse(mp.Minimum)
		}
		for _, b := range mp.Blocked {
			cm.blocked = append(cm.blocked, semver.MustParse(b))
		}
		c.models[name] = cm
	}
	return c
}

// firmwareVerdict is what the policy says about one model and version.
type firmwareVerdict struct {
	known        bool // the model is in the policy and the version parses
	outdated     bool
	belowMinimum bool
	blocked      bool
	policy       ModelPolicy
}

func (c *compiledPolicy) judge(model, firmware string) firmwareVerdict {
	if c == nil {
		return firmwareVerdict{}
	}
	cm, ok := c.models[model]
	if !ok || firmware == "" {
		return firmwareVerdict{}
	}
	v, err := semver.NewVersion(firmware)
	if err != nil {
		return firmwareVerdict{}
	}
	fv := firmwareVerdict{known: true, policy: cm.p}
	fv.outdated = v.LessThan(cm.target)
	fv.belowMinimum = cm.minimum != nil && v.LessThan(cm.minimum)
	fv.blocked = slices.ContainsFunc(cm.blocked, v.Equal)
	return fv
}

// FirmwareStatus is where a firmware version stands against its model's
// policy, as the pages show it.
type FirmwareStatus string

// The firmware statuses, from the policy's verdict (compiledPolicy.judge).
const (
	FirmwareUnknown      FirmwareStatus = "unknown"       // the model has no policy, or the version is not semver
	FirmwareBlocked      FirmwareStatus = "blocked"       // a blocked version: it must be replaced
	FirmwareBelowMinimum FirmwareStatus = "below minimum" // under the model's minimum
	FirmwareBehind       FirmwareStatus = "behind"        // under the target
	FirmwareOnTarget     FirmwareStatus = "target"        // the target itself
	FirmwareAhead        FirmwareStatus = "ahead"         // newer than the target
)

// FirmwareStatus returns where firmware of model stands against p: the
// verdict the engine's flags come from, so that a page never judges a
// version differently from the firmware flags. A nil p knows no model.
func (p *Policy) FirmwareStatus(model, firmware string) FirmwareStatus {
	if p == nil {
		return FirmwareUnknown
	}
	mp, ok := p.Models[model]
	if !ok {
		return FirmwareUnknown
	}
	// Compile the one model, without compilePolicy's MustParse: a Policy
	// built by hand rather than by ParsePolicy is judged, not panicked on.
	cm := compiledModel{p: mp}
	var err error
	if cm.target, err = semver.NewVersion(mp.Target); err != nil {
		return FirmwareUnknown
	}
	if mp.Minimum != "" {
		cm.minimum, _ = semver.NewVersion(mp.Minimum)
	}
	for _, b := range mp.Blocked {
		if bv, err := semver.NewVersion(b); err == nil {
			cm.blocked = append(cm.blocked, bv)
		}
	}
	fv := (&compiledPolicy{src: p, models: map[string]compiledModel{model: cm}}).judge(model, firmware)
	switch {
	case !fv.known:
		return FirmwareUnknown
	case fv.blocked:
		return FirmwareBlocked
	case fv.belowMinimum:
		return FirmwareBelowMinimum
	case fv.outdated:
		return FirmwareBehind
	case semver.MustParse(firmware).Equal(cm.target): // judge parsed it
		return FirmwareOnTarget
	}
	return FirmwareAhead
}

// CheckURLs refuses package URLs a terminal should not fetch: only https,
// or http when allowHTTP is set, with a host and no user or password. The
// terminals download what the URL says and run it (after the SHA-256
// check), and the pages show it as a link, where javascript: and the like
// would run.
func (p *Policy) CheckURLs(allowHTTP bool) error {
	for _, model := range slices.Sorted(maps.Keys(p.Models)) {
		raw := p.Models[model].URL
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		scheme := ""
		if err == nil {
			scheme = strings.ToLower(u.Scheme)
		}
		switch {
		case err != nil || u.Host == "" || u.Opaque != "":
			return &PolicyError{Reason: fmt.Sprintf("model %s: url %q: want an absolute https URL with a host", model, raw)}
		case u.User != nil:
			return &PolicyError{Reason: fmt.Sprintf("model %s: url: no user name or password in the URL", model)}
		case scheme == "https", scheme == "http" && allowHTTP:
		case scheme == "http":
			return &PolicyError{Reason: fmt.Sprintf("model %s: url %q: http is refused (start posfleet with --allow-http-firmware to allow it); use https", model, raw)}
		default:
			return &PolicyError{Reason: fmt.Sprintf("model %s: url %q: scheme %q refused; want https", model, raw, u.Scheme)}
		}
	}
	return nil
}
