package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/commands"
	"github.com/posfleet/posfleet/health"
)

// Health is what the API reads and changes of the health engine.
type Health interface {
	FleetSummary(tenant string) health.FleetSummary
	Rows(tenant string, flag posfleet.FlagName) []health.Row
	Site(ref posfleet.TerminalRef) (health.Site, bool)
	Terminal(ref posfleet.TerminalRef) (health.TerminalHealth, bool)
	WorkList(tenant string) []health.WorkItem
	MarkServiced(ref posfleet.TerminalRef, note, by string, at time.Time) ([]posfleet.FlagName, error)
	Incidents(tenant string) []health.Incident
	Policy() *health.Policy
	SetPolicy(data []byte) error
}

// Queries is what a Health may add to answer the lists, counts and pages
// of the web layer itself: a database does it in SQL with its indexes
// (healthview.Reader), where the web layer would otherwise filter, count
// and page every terminal's row in memory (memQueries, over the engine).
// The web layer uses it when the Health implements it.
type Queries interface {
	// TerminalsPage returns how many terminals of tenant ("" for all)
	// match f, and the f.Page'th page of f.PerPage of them in order ("" by
	// tenant and terminal, else a TerminalOrder: "last_seen" the longest
	// silent first, "flags" the most flagged first, "merchant:desc"...),
	// each with its full health.
	TerminalsPage(ctx context.Context, tenant string, f TerminalFilter, order string) (total int, page []ListedTerminal, err error)
	// CountFlagged returns how many terminals of tenant have any of flags.
	CountFlagged(ctx context.Context, tenant string, flags []posfleet.FlagName) (int, error)
	// WorkPage returns how many terminals of tenant are on the work list,
	// and limit of its items from offset, in the order of WorkList.
	WorkPage(ctx context.Context, tenant string, offset, limit int) (total int, page []health.WorkItem, err error)
}

// ListedTerminal is a terminal of a list: its health, or for a
// provisioned terminal that never connected, its identity and site.
type ListedTerminal struct {
	health.TerminalHealth
	NeverConnected bool
}

// queries returns the Health's own Queries, or memQueries over it.
func queries(hs Health) Queries {
	if q, ok := hs.(Queries); ok {
		return q
	}
	return memQueries{hs}
}

// memQueries answers Queries over a Health's rows in memory (the engine).
type memQueries struct{ hs Health }

// TerminalsPage filters and sorts the cheap rows, and gets the full health
// (reported model, site, flags with evidence) of the page's rows only.
func (m memQueries) TerminalsPage(_ context.Context, tenant string, f TerminalFilter, order string) (int, []ListedTerminal, error) {
	hs := m.hs
	match := MatchingRows(hs, tenant, f)
	sortRows(hs, match, order)
	lo := min((f.Page-1)*f.PerPage, len(match))
	hi := min(lo+f.PerPage, len(match))
	out := make([]ListedTerminal, 0, hi-lo)
	for _, r := range match[lo:hi] {
		if r.NeverConnected {
			site, _ := hs.Site(r.Ref)
			out = append(out, ListedTerminal{TerminalHealth: health.TerminalHealth{Ref: r.Ref, Tenant: r.Ref.Tenant,
				Terminal: r.Ref.Terminal, Site: site}, NeverConnected: true})
			continue
		}
		if h, ok := hs.Terminal(r.Ref); ok {
			out = append(out, ListedTerminal{TerminalHealth: h})
		}
	}
	return len(match), out, nil
}

func (m memQueries) CountFlagged(_ context.Context, tenant string, flags []posfleet.FlagName) (int, error) {
	seen := map[posfleet.TerminalRef]struct{}{}
	for _, f := range flags {
		for _, r := range m.hs.Rows(tenant, f) {
			seen[r.Ref] = struct{}{}
		}
	}
	return len(seen), nil
}

func (m memQueries) WorkPage(_ context.Context, tenant string, offset, limit int) (int, []health.WorkItem, error) {
	items := m.hs.WorkList(tenant)
	lo := min(offset, len(items))
	hi := min(lo+limit, len(items))
	return len(items), items[lo:hi], nil
}

// Commander sends commands to terminals (the broker).
type Commander interface {
	SendCommand(ctx context.Context, ref posfleet.TerminalRef, cmd posfleet.Command) error
}

// CommandLog remembers the commands sent and their acks.
type CommandLog interface {
	Sent(ref posfleet.TerminalRef, cmd posfleet.Command, by string, at time.Time)
	Unsent(ref posfleet.TerminalRef, id string)
	List(ref posfleet.TerminalRef) []commands.Record
}

// Directory is the terminal registry: provisioned terminals and their sites.
type Directory interface {
	Get(ctx context.Context, ref posfleet.TerminalRef) (posfleet.RegisteredTerminal, error)
}

// maxBody bounds request bodies: a policy for a few hundred models, a note.
const maxBody = 256 << 10

// mountAPI adds the JSON API of PROTOCOL.md §3.
func (s *Server) mountAPI() {
	s.mux.HandleFunc("GET /api/v1/fleet", s.api(s.handleFleet))
	s.mux.HandleFunc("GET /api/v1/terminals", s.api(s.handleTerminals))
	s.mux.HandleFunc("GET /api/v1/terminals/{tenant}/{terminal}", s.api(s.handleTerminal))
	s.mux.HandleFunc("POST /api/v1/terminals/{tenant}/{terminal}/serviced", s.api(s.handleServiced))
	s.mux.HandleFunc("POST /api/v1/terminals/{tenant}/{terminal}/commands", s.api(s.handleCommand))
	s.mux.HandleFunc("GET /api/v1/worklist", s.api(s.handleWorkList))
	s.mux.HandleFunc("GET /api/v1/incidents", s.api(s.handleIncidents))
	s.mux.HandleFunc("GET /api/v1/policy", s.api(s.handlePolicy))
	s.mux.HandleFunc("PUT /api/v1/policy", s.api(s.handlePutPolicy))
	s.mux.HandleFunc("GET /api/v1/policy/history", s.api(s.handlePolicyHistory))
}

func principal(r *http.Request) (p struct {
	name  string
	scope string
	admin bool
}) {
	pr, _ := PrincipalFrom(r.Context())
	p.name, p.scope, p.admin = pr.Name, tenantScope(pr), pr.Admin()
	return p
}

// visibleRef returns the terminal of the path if the caller may see its
// tenant. Another tenant's terminal is "not found", never "forbidden": its
// existence is none of the caller's business.
func visibleRef(r *http.Request) (posfleet.TerminalRef, error) {
	ref := posfleet.TerminalRef{Tenant: r.PathValue("tenant"), Terminal: r.PathValue("terminal")}
	p, _ := PrincipalFrom(r.Context())
	if ref.Validate() != nil || !p.Sees(ref.Tenant) {
		return ref, errNotFound
	}
	return ref, nil
}

func (s *Server) handleFleet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.opts.Health.FleetSummary(principal(r).scope))
}

// TerminalSummary is one row of the terminal list.
type TerminalSummary struct {
	Tenant   string          `json:"tenant"`
	Terminal string          `json:"terminal"`
	Online   bool            `json:"online"`
	LastSeen time.Time       `json:"last_seen"`
	Firmware string          `json:"firmware,omitempty"`
	Site     health.Site     `json:"site"`
	Flags    []posfleet.Flag `json:"flags"`
	// NeverConnected marks a provisioned terminal that never connected
	// (online false, last_seen the zero time, site from the registry).
	NeverConnected bool `json:"never_connected,omitempty"`
}

// TerminalPage is a page of the terminal list.
type TerminalPage struct {
	Total     int               `json:"total"`
	Page      int               `json:"page"`
	PerPage   int               `json:"per_page"`
	Terminals []TerminalSummary `json:"terminals"`
}

// TerminalFilter is the query of the terminal list.
type TerminalFilter struct {
	Flag posfleet.FlagName
	// Kind keeps the terminals with any flag of that kind (the overview's
	// "under investigation" is kind=investigate).
	Kind posfleet.FlagKind
	// Model and Region match regardless of case ("chengdu" is Chengdu);
	// Firmware exactly.
	Model, Firmware, Region string
	Q                       string
	// Online and State filter by state; Online (the older parameter)
	// matches only terminals that connected, as the fleet summary's
	// online and offline counts do.
	Online        *bool
	State         string
	Page, PerPage int
}

// Terminal states of the list's state filter.
const (
	StateOnline         = "online"
	StateOffline        = "offline"
	StateNeverConnected = "never_connected"
)

// parseTerminalFilter reads and checks the list's query parameters.
func parseTerminalFilter(q map[string][]string) (TerminalFilter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	f := TerminalFilter{Model: get("model"), Firmware: get("firmware"), Region: get("region"), Q: strings.ToLower(get("q")), Page: 1, PerPage: 50}
	if v := get("flag"); v != "" {
		fl, err := posfleet.ParseFlagName(v)
		if err != nil {
			names := make([]string, len(posfleet.FlagNames))
			for i, n := range posfleet.FlagNames {
				names[i] = string(n)
			}
			return f, badRequest(fmt.Sprintf("unknown flag %q; flags are %s", v, strings.Join(names, ", ")))
		}
		f.Flag = fl
	}
	if v := get("kind"); v != "" {
		k := posfleet.FlagKind(v)
		if len(flagsOfKind(k)) == 0 {
			return f, badRequest(fmt.Sprintf("unknown flag kind %q; kinds are %s, %s, %s", v,
				posfleet.KindMaintenance, posfleet.KindUpdate, posfleet.KindInvestigate))
		}
		f.Kind = k
	}
	if v := get("online"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, badRequest("online: want true or false")
		}
		f.Online = &b
	}
	switch v := get("state"); v {
	case "", StateOnline, StateOffline, StateNeverConnected:
		f.State = v
	default:
		return f, badRequest("state: want online, offline or never_connected")
	}
	if v := get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return f, badRequest("page: want a whole number from 1")
		}
		f.Page = n
	}
	if v := get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return f, badRequest("per_page: want a whole number from 1 to 500")
		}
		f.PerPage = n
	}
	return f, nil
}

// match reports whether a row passes the filter. The site is looked up
// only when a filter needs it (region, text), since it is a registry read.
func (f TerminalFilter) match(hs Health, r *health.Row) bool {
	switch {
	case f.Model != "" && !strings.EqualFold(r.Model, f.Model),
		f.Firmware != "" && r.Firmware != f.Firmware,
		f.Online != nil && (r.NeverConnected || r.Online != *f.Online),
		f.State == StateOnline && !r.Online,
		f.State == StateOffline && (r.Online || r.NeverConnected),
		f.State == StateNeverConnected && !r.NeverConnected:
		return false
	}
	if f.Region == "" && f.Q == "" {
		return true
	}
	site, _ := hs.Site(r.Ref)
	if f.Model != "" && r.Model == "" && !strings.EqualFold(site.Model, f.Model) {
		return false
	}
	if f.Region != "" && !strings.EqualFold(site.Region, f.Region) {
		return false
	}
	if f.Q != "" {
		hay := strings.ToLower(r.Ref.Tenant + " " + r.Ref.Terminal + " " + r.Merchant + " " + site.Merchant + " " + site.Site + " " + r.Serial)
		if !strings.Contains(hay, f.Q) {
			return false
		}
	}
	return true
}

// MatchingRows returns the rows of a tenant's terminals ("" for all) that
// pass f, in terminal order.
func MatchingRows(hs Health, tenant string, f TerminalFilter) []health.Row {
	rows := hs.Rows(tenant, f.Flag)
	if f.Kind != "" {
		rows = kindRows(hs, tenant, f.Kind)
		if f.Flag != "" {
			rows = slices.DeleteFunc(rows, func(r health.Row) bool { return !slices.Contains(r.Flags, f.Flag) })
		}
	}
	out := rows[:0]
	for i := range rows {
		if f.match(hs, &rows[i]) {
			out = append(out, rows[i])
		}
	}
	return out
}

// ListTerminals returns a page of a tenant's terminals ("" for all) that
// match f; an empty page when they cannot be read (a database error).
func ListTerminals(hs Health, tenant string, f TerminalFilter) TerminalPage {
	page, _ := listTerminalPage(context.Background(), hs, tenant, f)
	return page
}

// listTerminalPage is ListTerminals with the error of a Health that reads
// a database. Only the page's rows get their full health.
func listTerminalPage(ctx context.Context, hs Health, tenant string, f TerminalFilter) (TerminalPage, error) {
	total, rows, err := queries(hs).TerminalsPage(ctx, tenant, f, "")
	page := TerminalPage{Total: total, Page: f.Page, PerPage: f.PerPage, Terminals: []TerminalSummary{}}
	if err != nil {
		return page, err
	}
	for _, h := range rows {
		if h.NeverConnected {
			page.Terminals = append(page.Terminals, TerminalSummary{Tenant: h.Tenant, Terminal: h.Terminal,
				Site: h.Site, Flags: []posfleet.Flag{}, NeverConnected: true})
			continue
		}
		page.Terminals = append(page.Terminals, TerminalSummary{Tenant: h.Tenant, Terminal: h.Terminal, Online: h.Online,
			LastSeen: h.LastSeen, Firmware: h.Firmware, Site: h.Site, Flags: h.Flags})
	}
	return page, nil
}

func (s *Server) handleTerminals(w http.ResponseWriter, r *http.Request) {
	f, err := parseTerminalFilter(r.URL.Query())
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	crewFilter(mustPrincipal(r), &f)
	page, err := listTerminalPage(r.Context(), s.opts.Health, principal(r).scope, f)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// TerminalDetail is everything about one terminal (the API answers it as
// terminalDetailJSON).
type TerminalDetail struct {
	Provisioned *posfleet.RegisteredTerminal `json:"provisioned,omitempty"`
	Seen        bool                         `json:"seen"`
	Health      *health.TerminalHealth       `json:"health,omitempty"`
	Commands    []commands.Record            `json:"commands"`
	// Messages are the collector's counters of the terminal's messages;
	// nil on a process without the collector.
	Messages *posfleet.MessageCounts `json:"messages,omitempty"`
}

// TerminalDetails gathers what the registry, the engine and the command
// log know of ref; errNotFound when none does.
func (s *Server) TerminalDetails(ctx context.Context, ref posfleet.TerminalRef) (TerminalDetail, error) {
	d := TerminalDetail{Commands: []commands.Record{}}
	if s.opts.Directory != nil {
		if t, err := s.opts.Directory.Get(ctx, ref); err == nil {
			d.Provisioned = &t
		} else if posfleet.ErrorKind(err) != posfleet.NotFound { // registry.ErrNotFound
			return d, err
		}
	}
	if h, ok := s.opts.Health.Terminal(ref); ok {
		d.Seen, d.Health = true, &h
	}
	if d.Provisioned == nil && !d.Seen {
		return d, errNotFound
	}
	if s.opts.Commands != nil {
		d.Commands = s.opts.Commands.List(ref)
	}
	if s.opts.Events != nil {
		m := s.opts.Events.Counters(ref)
		d.Messages = &m
	}
	return d, nil
}

// ProvisionedTerminal is a terminal's registry entry as the API shows it.
type ProvisionedTerminal struct {
	Tenant   string    `json:"tenant"`
	Terminal string    `json:"terminal"`
	Model    string    `json:"model"`
	Merchant string    `json:"merchant"`
	Site     string    `json:"site"`
	Region   string    `json:"region"`
	Lat      *float64  `json:"lat,omitempty"`
	Lon      *float64  `json:"lon,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// terminalDetailJSON is TerminalDetail as the API shows it.
type terminalDetailJSON struct {
	Provisioned *ProvisionedTerminal    `json:"provisioned,omitempty"`
	Seen        bool                    `json:"seen"`
	Health      *health.TerminalHealth  `json:"health,omitempty"`
	Commands    []commands.Record       `json:"commands"`
	Messages    *posfleet.MessageCounts `json:"messages,omitempty"`
}

func (s *Server) handleTerminal(w http.ResponseWriter, r *http.Request) {
	ref, err := visibleRef(r)
	if err == nil {
		var d TerminalDetail
		if d, err = s.TerminalDetails(r.Context(), ref); err == nil {
			out := terminalDetailJSON{Seen: d.Seen, Health: d.Health, Commands: d.Commands, Messages: d.Messages}
			if p := d.Provisioned; p != nil {
				out.Provisioned = &ProvisionedTerminal{Tenant: p.Tenant, Terminal: p.Terminal, Model: p.Model, Merchant: p.Merchant,
					Site: p.Site, Region: p.Region, Lat: p.Lat, Lon: p.Lon, Created: p.Created, Updated: p.Updated}
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
	}
	writeError(w, s.log, err)
}

// decodeBody reads a JSON body of at most maxBody bytes into v, refusing
// unknown fields so that a misspelt one is an error, not ignored, and
// keys that match a field only in another case (checkKeys).
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return posfleet.Errorf(posfleet.TooLarge, "too_large", "request body over %d KiB", maxBody>>10)
		}
		return badRequest("reading the body: " + err.Error())
	}
	if err := checkKeys(body, reflect.TypeOf(v), false); err != nil {
		return badRequest("malformed JSON: " + err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("empty body: want a JSON object")
		}
		return badRequest("malformed JSON: " + err.Error())
	}
	if dec.More() {
		return badRequest("malformed JSON: more than one value")
	}
	return nil
}

// ServicedRequest closes a crew visit.
type ServicedRequest struct {
	Note string `json:"note"`
}

func (s *Server) handleServiced(w http.ResponseWriter, r *http.Request) {
	ref, err := visibleRef(r)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	var req ServicedRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, s.log, err)
		return
	}
	if err := posfleet.ValidateNote(req.Note); err != nil {
		writeError(w, s.log, badRequest(err.Error()))
		return
	}
	at := s.opts.Now()
	cleared, err := s.opts.Health.MarkServiced(ref, req.Note, principal(r).name, at)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	s.recordVisit(r.Context(), ref, principal(r).name, req.Note, at, cleared)
	s.log.Info("terminal serviced", "terminal", ref.String(), "by", principal(r).name, "cleared", len(cleared))
	writeJSON(w, http.StatusOK, map[string]any{"cleared": cleared})
}

// CommandRequest asks for a command to be sent: type update_firmware (with
// an optional target; the policy's target for the terminal's model by
// default) or reboot.
type CommandRequest struct {
	Type   string `json:"type"`
	Target string `json:"target,omitempty"`
}

// SendCommand builds and sends a command to ref on behalf of by.
func (s *Server) SendCommand(ctx context.Context, ref posfleet.TerminalRef, req CommandRequest, by string) (posfleet.Command, error) {
	if s.opts.Commander == nil {
		return posfleet.Command{}, errNoBroker
	}
	d, err := s.TerminalDetails(ctx, ref)
	if err != nil {
		return posfleet.Command{}, err
	}
	model := ""
	if d.Health != nil {
		model = d.Health.Model
	}
	if model == "" && d.Provisioned != nil {
		model = d.Provisioned.Model
	}
	cmd, err := commands.Build(req.Type, req.Target, model, s.opts.Health.Policy())
	if err != nil {
		return cmd, err
	}
	// Recorded before it goes out: a terminal may ack within the
	// millisecond, and its ack must find the command.
	if s.opts.Commands != nil {
		s.opts.Commands.Sent(ref, cmd, by, s.opts.Now())
	}
	if err := s.opts.Commander.SendCommand(ctx, ref, cmd); err != nil {
		if s.opts.Commands != nil {
			s.opts.Commands.Unsent(ref, cmd.ID)
		}
		return cmd, err // a terminal without a session is a Conflict, not_reachable (broker.ErrNoSession)
	}
	s.log.Info("command sent", "terminal", ref.String(), "type", cmd.Type, "id", cmd.ID, "by", by)
	return cmd, nil
}

func (s *Server) handleCommand(w http.ResponseWriter, r *http.Request) {
	ref, err := visibleRef(r)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	var req CommandRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, s.log, err)
		return
	}
	cmd, err := s.SendCommand(r.Context(), ref, req, principal(r).name)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"command": cmd, "status": "queued until the terminal acknowledges it"})
}

// WorkList returns the work list of a tenant ("" for all), grouped by
// region and site, most pressing group first.
func WorkList(hs Health, tenant string) []health.WorkGroup {
	return health.GroupWorkList(hs.WorkList(tenant))
}

func (s *Server) handleWorkList(w http.ResponseWriter, r *http.Request) {
	groups := health.GroupWorkList(crewItems(mustPrincipal(r), s.opts.Health.WorkList(principal(r).scope)))
	switch r.URL.Query().Get("format") {
	case "", "json":
		writeJSON(w, http.StatusOK, map[string]any{"groups": groups})
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="posfleet-worklist-`+s.opts.Now().UTC().Format("2006-01-02")+`.csv"`)
		if err := WriteWorkListCSV(w, groups); err != nil {
			s.log.Warn("work list CSV", "err", err)
		}
	default:
		writeError(w, s.log, badRequest("format: want json or csv"))
	}
}

// WriteWorkListCSV writes one row per reason of every item: a crew's
// spreadsheet (encoding/csv quotes what needs quoting). Text cells pass
// through csvText so that a spreadsheet never reads one as a formula; the
// numeric cells (priority, lat, lon) are formatted here from numbers, so a
// negative latitude stays a number.
func WriteWorkListCSV(w io.Writer, groups []health.WorkGroup) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"priority", "urgent", "region", "site", "merchant", "tenant", "terminal", "model", "firmware", "lat", "lon", "last_seen", "reason", "since", "action"})
	for _, g := range groups {
		for _, it := range g.Items {
			for _, rs := range it.Reasons {
				cw.Write([]string{
					strconv.Itoa(it.Priority), strconv.FormatBool(it.Urgent), csvText(g.Region), csvText(g.Site), csvText(it.Merchant),
					csvText(it.Tenant), csvText(it.Terminal), csvText(it.Model), csvText(it.Firmware),
					strconv.FormatFloat(it.Lat, 'f', -1, 64), strconv.FormatFloat(it.Lon, 'f', -1, 64),
					it.LastSeen.UTC().Format(time.RFC3339), csvText(string(rs.Flag)), rs.Since.UTC().Format(time.RFC3339), csvText(rs.Action),
				})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvText neutralises a text cell that a spreadsheet would take for a
// formula (OWASP's CSV injection rule): one starting with =, +, -, @, a tab
// or a carriage return gets a leading single quote, which spreadsheets
// show as text. Merchant names and firmware strings come from outside.
func csvText(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func (s *Server) handleIncidents(w http.ResponseWriter, r *http.Request) {
	inc := s.opts.Health.Incidents(principal(r).scope)
	sort.SliceStable(inc, func(i, j int) bool { return inc[i].Start.After(inc[j].Start) })
	writeJSON(w, http.StatusOK, map[string]any{"incidents": inc})
}

func (s *Server) handlePolicy(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	pol := s.policyFor(p.scope, p.admin)
	if r.URL.Query().Get("format") == "yaml" {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(pol.YAML())
		return
	}
	writeJSON(w, http.StatusOK, pol)
}

// handlePutPolicy replaces the firmware policy. The policy covers every
// tenant's models, so only an administrator may change it.
func (s *Server) handlePutPolicy(w http.ResponseWriter, r *http.Request) {
	if !principal(r).admin {
		writeError(w, s.log, posfleet.Errorf(posfleet.Forbidden, "forbidden", "only an administrator (a user or token of all tenants) may change the firmware policy"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, s.log, posfleet.Errorf(posfleet.TooLarge, "too_large", "request body over %d KiB", maxBody>>10))
		return
	}
	err = s.checkPolicyURLs(body)
	if err == nil {
		err = s.opts.Health.SetPolicy(body)
	}
	if err != nil {
		writeError(w, s.log, err) // a *health.PolicyError is 400 bad_policy with its line
		return
	}
	if s.opts.SavePolicy != nil {
		if err := s.opts.SavePolicy(r.Context(), body, principal(r).name); err != nil {
			writeError(w, s.log, fmt.Errorf("save policy: %w", err))
			return
		}
	}
	s.log.Info("firmware policy replaced", "by", principal(r).name)
	writeJSON(w, http.StatusOK, s.opts.Health.Policy())
}
