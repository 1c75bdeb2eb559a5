package health

import (
	"sort"
	"time"

	"github.com/posfleet/posfleet"
)

// Incident is a fleet-wide host outage (PROTOCOL.md §2): host-side failures
// on many terminals of many merchants at once. While it is open, the
// failures it explains do not count against single terminals.
//
// Terminals that name their host (txn "host", README "PROTOCOL
// extensions") are counted per host: an incident is one host of one tenant
// failing for many of the terminals that use it, while the terminals of
// other hosts keep working, and it explains only its own host's terminals'
// failures. Terminals that name no host are counted tenant-wide, as
// PROTOCOL.md §2 says.
type Incident struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// Host is the acquirer or switch that failed; empty for the terminals
	// that name none.
	Host string `json:"host,omitempty"`
	// Start is the first host-side failure of the terminals it hit; End the
	// last one, set when the incident closes.
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
	Open  bool      `json:"open"`
	// Merchants hit, sorted.
	Merchants []string `json:"merchants"`
	// Terminals hit: the first MaxIncidentTerminals of TerminalCount.
	Terminals     []posfleet.TerminalRef `json:"terminals"`
	TerminalCount int                    `json:"terminal_count"`
	// Failures is the number of host-side failures (91, 96, 68, timeouts)
	// the incident explains.
	Failures int64 `json:"failures"`
	// PeakShare is the largest share of transacting terminals hit at once.
	PeakShare float64 `json:"peak_share"`
	// Timeline counts the failures the incident explains per minute, as
	// the engine counted them (at most MaxIncidentTimeline minutes, the
	// latest).
	Timeline []IncidentMinute `json:"timeline"`
}

// IncidentMinute is one minute of an incident's timeline.
type IncidentMinute struct {
	At       time.Time `json:"at"`
	Failures int64     `json:"failures"`
}

// MaxIncidentTimeline bounds an incident's timeline: a day of minutes.
const MaxIncidentTimeline = 24 * 60

// addTimeline adds n failures counted at now to the minute they fall in.
func (rec *incidentRec) addTimeline(now int64, n int64) {
	if n <= 0 {
		return
	}
	at := tm(now - now%60000)
	if k := len(rec.Timeline); k > 0 && rec.Timeline[k-1].At.Equal(at) {
		rec.Timeline[k-1].Failures += n
		return
	}
	rec.Timeline = append(rec.Timeline, IncidentMinute{At: at, Failures: n})
	if len(rec.Timeline) > MaxIncidentTimeline {
		rec.Timeline = rec.Timeline[len(rec.Timeline)-MaxIncidentTimeline:]
	}
}

type incidentRec struct {
	Incident
	// seen holds, per terminal hit, its lifetime host-side failure count
	// when the incident began and at the last tick; their differences sum
	// to Failures.
	seen      map[posfleet.TerminalRef][2]uint32
	merchants map[string]struct{}
	lastFail  int64
}

type tenantIncidents struct {
	list []*incidentRec // oldest first, at most MaxIncidents
	// open holds the open incident of each host ("" for the terminals
	// that name none).
	open map[string]*incidentRec
}

// incWindow is the time span of one incident, as the message path sees it.
type incWindow struct {
	host       string
	start, end int64 // end 0: still open
}

// incKey is what incidents are counted by: a tenant's terminals of one host.
type incKey struct{ tenant, host string }

// incidentView is an immutable picture of every tenant's incidents.
type incidentView struct {
	m map[string][]incWindow
}

func (v *incidentView) open(tenant, host string) *incWindow {
	ws := v.m[tenant]
	for i := range ws {
		if ws[i].end == 0 && ws[i].host == host {
			return &ws[i]
		}
	}
	return nil
}

// covers reports whether a host-side failure at time at of a terminal of
// tenant using host ("" for none named) is explained by one of its
// incidents.
func (v *incidentView) covers(tenant, host string, at int64) bool {
	for _, w := range v.m[tenant] {
		if w.host == host && at >= w.start && (w.end == 0 || at <= w.end) {
			return true
		}
	}
	return false
}

type hitTerminal struct {
	ref         posfleet.TerminalRef
	merchant    string
	first, last int64
	run, total  uint32 // host-side failures since first, and ever
}

type tenantCount struct {
	transacted int
	hit        []hitTerminal
	merchants  map[string]struct{}
}

// updateIncidents opens, extends and closes incidents from one tick's counts
// and returns the tenants whose incident windows changed.
func (e *Engine) updateIncidents(now int64, counts map[incKey]*tenantCount) map[string]struct{} {
	e.incMu.Lock()
	defer e.incMu.Unlock()
	changed := map[string]struct{}{}
	keys := map[incKey]struct{}{}
	for k := range counts {
		keys[k] = struct{}{}
	}
	for t, ti := range e.tenants {
		for host := range ti.open {
			keys[incKey{t, host}] = struct{}{}
		}
	}
	for k := range keys {
		t, host := k.tenant, k.host
		tc := counts[k]
		ti := e.tenants[t]
		cond := false
		share := 0.0
		if tc != nil && tc.transacted > 0 {
			share = float64(len(tc.hit)) / float64(tc.transacted)
			th := e.thr.Load().lookup(t, "")
			cond = len(tc.hit) >= th.IncidentMinTerminals &&
				len(tc.merchants) >= th.IncidentMinMerchants &&
				share >= th.IncidentShare
		}
		switch {
		case cond:
			if ti == nil {
				ti = &tenantIncidents{}
				e.tenants[t] = ti
			}
			if ti.open == nil {
				ti.open = map[string]*incidentRec{}
			}
			rec := ti.open[host]
			if rec == nil {
				rec = &incidentRec{
					Incident:  Incident{Tenant: t, Host: host, Open: true, Timeline: []IncidentMinute{}},
					seen:      map[posfleet.TerminalRef][2]uint32{},
					merchants: map[string]struct{}{},
				}
				ti.open[host] = rec
				ti.list = append(ti.list, rec)
				if len(ti.list) > MaxIncidents {
					ti.list = ti.list[len(ti.list)-MaxIncidents:]
				}
				changed[t] = struct{}{}
			}
			floor := now - e.cfg.IncidentWindow.Milliseconds()
			for _, h := range tc.hit {
				start := max(h.first, floor)
				if rec.Start.IsZero() || start < ms(rec.Start) {
					rec.Start = tm(start)
					changed[t] = struct{}{}
				}
				rec.lastFail = max(rec.lastFail, h.last)
				c, ok := rec.seen[h.ref]
				if !ok {
					// Its failures since the start of its run belong to the incident.
					c[0] = h.total - min(h.run, h.total)
					rec.TerminalCount++
					if len(rec.Terminals) < MaxIncidentTerminals {
						rec.Terminals = append(rec.Terminals, h.ref)
					}
				}
				n := int64(h.total-c[0]) - int64(c[1]-c[0])*b2i(ok)
				rec.Failures += n
				rec.addTimeline(now, n)
				c[1] = h.total
				rec.seen[h.ref] = c
				if _, ok := rec.merchants[h.merchant]; !ok {
					rec.merchants[h.merchant] = struct{}{}
					rec.Merchants = append(rec.Merchants, h.merchant)
					sort.Strings(rec.Merchants)
				}
			}
			rec.PeakShare = max(rec.PeakShare, share)
			if rec.ID == "" {
				rec.ID = "inc-" + t + "-" + rec.Start.Format("20060102T150405Z")
				if host != "" {
					rec.ID = "inc-" + t + "-" + host + "-" + rec.Start.Format("20060102T150405Z")
				}
				e.log.Warn("host incident opened", "incident", rec.ID, "tenant", t, "host", host,
					"terminals", len(tc.hit), "transacting", tc.transacted, "merchants", len(tc.merchants))
			}
		case ti != nil && ti.open[host] != nil:
			rec := ti.open[host]
			if tc != nil {
				// The terminals still failing as the share drops below the
				// threshold are the tail of the same outage.
				for _, h := range tc.hit {
					if _, ok := rec.seen[h.ref]; ok {
						rec.lastFail = max(rec.lastFail, h.last)
					}
				}
			}
			rec.Open = false
			rec.End = tm(max(rec.lastFail, ms(rec.Start)))
			rec.seen, rec.merchants = nil, nil
			delete(ti.open, host)
			changed[t] = struct{}{}
			e.log.Info("host incident closed", "incident", rec.ID, "tenant", t,
				"terminals", rec.TerminalCount, "failures", rec.Failures)
		}
	}
	if len(changed) > 0 {
		e.publishIncidentsLocked()
	}
	return changed
}

// publishIncidentsLocked rebuilds the message path's view; incMu is held.
func (e *Engine) publishIncidentsLocked() {
	v := &incidentView{m: make(map[string][]incWindow, len(e.tenants))}
	for t, ti := range e.tenants {
		ws := make([]incWindow, 0, len(ti.list))
		for _, rec := range ti.list {
			w := incWindow{host: rec.Host, start: ms(rec.Start)}
			if !rec.Open {
				w.end = ms(rec.End)
			}
			ws = append(ws, w)
		}
		v.m[t] = ws
	}
	e.incView.Store(v)
}

// Incidents returns the incidents of tenant ("" for every tenant), open ones
// first, then newest first.
func (e *Engine) Incidents(tenant string) []Incident {
	e.incMu.Lock()
	defer e.incMu.Unlock()
	var out []Incident
	for t, ti := range e.tenants {
		if tenant != "" && t != tenant {
			continue
		}
		for _, rec := range ti.list {
			inc := rec.Incident
			inc.Merchants = append([]string(nil), rec.Merchants...)
			inc.Terminals = append([]posfleet.TerminalRef(nil), rec.Terminals...)
			inc.Timeline = append([]IncidentMinute{}, rec.Timeline...)
			out = append(out, inc)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Open != out[j].Open {
			return out[i].Open
		}
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.After(out[j].Start)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
