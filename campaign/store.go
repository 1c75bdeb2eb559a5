package campaign

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Querier is a *store.DB or a *sql.Tx.
type Querier = store.Querier

// Alarms raises the alarm of a campaign a gate paused, with the gate's
// evidence, and notifies through the tenant's routes; it resolves it when
// an operator resumes, aborts or rolls back. Both run in the transaction
// that changes the campaign (package alarm implements it).
type Alarms interface {
	RaiseCampaign(ctx context.Context, q Querier, c posfleet.Campaign, gate posfleet.GateResult, reason string, now time.Time) error
	ResolveCampaign(ctx context.Context, q Querier, c posfleet.Campaign, by, note string, now time.Time) error
}

// Store keeps campaigns in the control-plane database
// (store/migrations/00400_campaigns.sql): creating them, the operators'
// actions, and what pages and the API read. Any web replica may use it;
// the Runner moves them on where the health lease is held.
type Store struct {
	DB    *store.DB
	Fleet Fleet
	// Hours, when set, gives learned windows; without it every terminal
	// uses its window's Start–End.
	Hours SaleHours
	// PolicyPackage returns the firmware policy's package of a model's
	// version, for a rollback (nil: the spec's rollback packages only).
	PolicyPackage func(model, version string) (posfleet.FirmwarePackage, bool)
	// Alarms raises and resolves campaign alarms; nil raises none.
	Alarms Alarms
	Opts   Options
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// ErrNotFound is the answer for a campaign that does not exist.
var errNotFound = posfleet.Errorf(posfleet.NotFound, "campaign_not_found", "no such campaign")

// newID returns a new campaign or command ID.
func newID(prefix string) string {
	var b [8]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// waveTimes are a wave's start and end (when its last terminal answered).
type waveTimes struct {
	Started int64 `json:"started_ms"`
	Done    int64 `json:"done_ms"`
}

// rec is a campaigns row.
type rec struct {
	posfleet.Campaign
	waves    []waveTimes
	soakFrom int64
	heldBy   string
	version  int64
}

const campaignCols = `id, tenant, spec, state, wave, waves, soak_from_ms, soak_until_ms, reason, held_by, gates, created_by, created_ms, updated_ms, version`

func scanRec(r interface{ Scan(...any) error }) (rec, error) {
	var c rec
	var spec, state, waves, gates string
	var until, created, updated int64
	if err := r.Scan(&c.ID, &c.Tenant, &spec, &state, &c.Wave, &waves, &c.soakFrom, &until, &c.Reason, &c.heldBy, &gates,
		&c.CreatedBy, &created, &updated, &c.version); err != nil {
		return c, err
	}
	c.State = posfleet.CampaignState(state)
	c.SoakUntil, c.CreatedAt, c.UpdatedAt = store.Time(until), store.Time(created), store.Time(updated)
	if err := json.Unmarshal([]byte(spec), &c.Spec); err != nil {
		return c, fmt.Errorf("campaign %s: spec: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(waves), &c.waves); err != nil {
		return c, fmt.Errorf("campaign %s: waves: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(gates), &c.Gates); err != nil {
		return c, fmt.Errorf("campaign %s: gates: %w", c.ID, err)
	}
	if c.Gates == nil {
		c.Gates = []posfleet.GateResult{}
	}
	return c, nil
}

// load reads one campaign row.
func load(ctx context.Context, q Querier, id string) (rec, error) {
	c, err := scanRec(q.QueryRowContext(ctx, `SELECT `+campaignCols+` FROM campaigns WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, errNotFound
	}
	if err != nil {
		return c, fmt.Errorf("campaign: %s: %w", id, err)
	}
	return c, nil
}

// errChanged: the campaign changed since it was read (another replica's
// action, or the runner): nothing was written.
var errChanged = posfleet.Errorf(posfleet.Conflict, "campaign_changed", "the campaign changed meanwhile; read it again and retry")

// save writes c's mutable columns if its version is still the one read,
// and bumps it.
func save(ctx context.Context, q Querier, c *rec, now time.Time) error {
	waves, err := json.Marshal(c.waves)
	if err != nil {
		return err
	}
	gates, err := json.Marshal(c.Gates)
	if err != nil {
		return err
	}
	res, err := q.ExecContext(ctx, `UPDATE campaigns SET state = $2, wave = $3, waves = $4, soak_from_ms = $5, soak_until_ms = $6,
		reason = $7, held_by = $8, gates = $9, updated_ms = $10, version = version + 1 WHERE id = $1 AND version = $11`,
		c.ID, string(c.State), c.Wave, string(waves), c.soakFrom, store.Millis(c.SoakUntil), c.Reason, c.heldBy, string(gates),
		store.Millis(now), c.version)
	if err != nil {
		return fmt.Errorf("campaign: save %s: %w", c.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errChanged
	}
	c.version++
	c.UpdatedAt = now
	return nil
}

// addEvent appends to a campaign's timeline.
func addEvent(ctx context.Context, q Querier, id string, e posfleet.CampaignEvent) error {
	_, err := q.ExecContext(ctx, `INSERT INTO campaign_events (campaign, seq, at_ms, kind, actor, wave, detail)
		SELECT $1, COALESCE(MAX(seq) + 1, 0), $2, $3, $4, $5, $6 FROM campaign_events WHERE campaign = $1`,
		id, store.Millis(e.At), e.Kind, e.By, e.Wave, e.Text)
	if err != nil {
		return fmt.Errorf("campaign: event of %s: %w", id, err)
	}
	return nil
}

// fill completes a row with its waves' progress.
func fill(ctx context.Context, q Querier, c rec) (posfleet.Campaign, error) {
	out := c.Campaign
	out.Waves = make([]posfleet.WaveProgress, len(c.Spec.Waves))
	for i := range out.Waves {
		out.Waves[i] = posfleet.WaveProgress{Index: i, Counts: map[posfleet.CampaignTerminalState]int{}}
		if i < len(c.waves) {
			out.Waves[i].StartedAt, out.Waves[i].DoneAt = store.Time(c.waves[i].Started), store.Time(c.waves[i].Done)
		}
		for _, st := range posfleet.CampaignTerminalStates {
			out.Waves[i].Counts[st] = 0
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT wave, state, COUNT(*) FROM campaign_terminals WHERE campaign = $1 GROUP BY wave, state`, c.ID)
	if err != nil {
		return out, fmt.Errorf("campaign: counts of %s: %w", c.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var wave, n int
		var state string
		if err := rows.Scan(&wave, &state, &n); err != nil {
			return out, err
		}
		if wave >= 0 && wave < len(out.Waves) {
			out.Waves[wave].Counts[posfleet.CampaignTerminalState(state)] += n
			out.Waves[wave].Size += n
		}
	}
	return out, rows.Err()
}

// Campaign returns one campaign with its waves' progress.
func (s *Store) Campaign(ctx context.Context, id string) (posfleet.Campaign, error) {
	c, err := load(ctx, s.DB, id)
	if err != nil {
		return posfleet.Campaign{}, err
	}
	return fill(ctx, s.DB, c)
}

// MaxList bounds a list of campaigns (the newest).
const MaxList = 500

// ListCampaigns returns tenant's campaigns ("" every tenant's), newest
// first, at most MaxList.
func (s *Store) ListCampaigns(ctx context.Context, tenant string) ([]posfleet.Campaign, error) {
	q := `SELECT ` + campaignCols + ` FROM campaigns`
	args := []any{}
	if tenant != "" {
		q += ` WHERE tenant = $1`
		args = append(args, tenant)
	}
	q += ` ORDER BY created_ms DESC, id LIMIT ` + strconv.Itoa(MaxList)
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("campaign: list: %w", err)
	}
	var recs []rec
	for rows.Next() {
		c, err := scanRec(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("campaign: list: %w", err)
		}
		recs = append(recs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("campaign: list: %w", err)
	}
	out := make([]posfleet.Campaign, 0, len(recs))
	for _, c := range recs {
		full, err := fill(ctx, s.DB, c)
		if err != nil {
			return nil, err
		}
		out = append(out, full)
	}
	return out, nil
}

// MaxTerminalsList bounds a list of a campaign's terminals.
const MaxTerminalsList = 10_000

// CampaignTerminals returns a campaign's terminals in state ("" all), at
// most limit (MaxTerminalsList when 0 or above), by wave then terminal.
func (s *Store) CampaignTerminals(ctx context.Context, id string, state posfleet.CampaignTerminalState, limit int) ([]posfleet.CampaignTerminal, error) {
	if _, err := load(ctx, s.DB, id); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxTerminalsList {
		limit = MaxTerminalsList
	}
	q := `SELECT terminal, wave, state, from_version, command_id, sent_ms, done_ms, detail FROM campaign_terminals WHERE campaign = $1`
	args := []any{id}
	if state != "" {
		q += ` AND state = $2`
		args = append(args, string(state))
	}
	q += ` ORDER BY wave, terminal LIMIT ` + strconv.Itoa(limit)
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("campaign: terminals of %s: %w", id, err)
	}
	defer rows.Close()
	out := []posfleet.CampaignTerminal{}
	for rows.Next() {
		var t posfleet.CampaignTerminal
		var st string
		var sent, done int64
		if err := rows.Scan(&t.Terminal, &t.Wave, &st, &t.From, &t.CommandID, &sent, &done, &t.Detail); err != nil {
			return nil, err
		}
		t.State, t.SentAt, t.DoneAt = posfleet.CampaignTerminalState(st), store.Time(sent), store.Time(done)
		out = append(out, t)
	}
	return out, rows.Err()
}

// CampaignEvents returns a campaign's timeline, oldest first.
func (s *Store) CampaignEvents(ctx context.Context, id string) ([]posfleet.CampaignEvent, error) {
	if _, err := load(ctx, s.DB, id); err != nil {
		return nil, err
	}
	rows, err := s.DB.QueryContext(ctx, `SELECT at_ms, kind, actor, wave, detail FROM campaign_events WHERE campaign = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("campaign: events of %s: %w", id, err)
	}
	defer rows.Close()
	out := []posfleet.CampaignEvent{}
	for rows.Next() {
		var e posfleet.CampaignEvent
		var at int64
		if err := rows.Scan(&at, &e.Kind, &e.By, &e.Wave, &e.Text); err != nil {
			return nil, err
		}
		e.At = store.Time(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// activeStates are the states of a campaign in progress.
var activeStates = []posfleet.CampaignState{posfleet.CampaignRunning, posfleet.CampaignPaused, posfleet.CampaignRollingBack}

func stateList(states []posfleet.CampaignState) string {
	var b strings.Builder
	for i, st := range states {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("'" + string(st) + "'")
	}
	return b.String()
}

// busyTerminals returns the terminals of tenant in campaigns in progress:
// a new campaign leaves them out.
func busyTerminals(ctx context.Context, q Querier, tenant string) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT ct.terminal FROM campaign_terminals ct JOIN campaigns c ON c.id = ct.campaign
		WHERE c.tenant = $1 AND c.state IN (`+stateList(activeStates)+`)`, tenant)
	if err != nil {
		return nil, fmt.Errorf("campaign: terminals in progress: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out[t] = true
	}
	return out, rows.Err()
}

// selection checks spec and chooses its terminals.
func (s *Store) selection(ctx context.Context, tenant, id string, spec posfleet.CampaignSpec) (posfleet.CampaignSpec, []choice, error) {
	if !posfleet.ValidID(tenant) {
		return spec, nil, invalid("tenant: %q is not a tenant", tenant)
	}
	if err := Validate(spec, s.Opts); err != nil {
		return spec, nil, err
	}
	spec = normalize(spec, s.Opts)
	all, err := s.Fleet.Terminals(ctx, tenant, spec.Model)
	if err != nil {
		return spec, nil, err
	}
	busy, err := busyTerminals(ctx, s.DB, tenant)
	if err != nil {
		return spec, nil, err
	}
	return spec, choose(id, spec, all, busy), nil
}

// PreviewCampaign says what spec would select and how many each wave
// would update, creating nothing.
func (s *Store) PreviewCampaign(ctx context.Context, tenant string, spec posfleet.CampaignSpec) (posfleet.CampaignPreview, error) {
	spec, chosen, err := s.selection(ctx, tenant, "preview", spec)
	if err != nil {
		return posfleet.CampaignPreview{}, err
	}
	p := posfleet.CampaignPreview{Selected: len(chosen), Versions: map[string]int{}, WaveSizes: WaveSizes(spec.Waves, len(chosen))}
	for _, c := range chosen {
		p.Versions[c.Firmware]++
		if spec.Window.Mode == posfleet.WindowLearned {
			if s.Hours == nil {
				p.WithoutHistory++
			} else if _, known := s.Hours.UsualSaleHours(c.Ref); !known {
				p.WithoutHistory++
			}
		}
	}
	return p, nil
}

// CreateCampaign validates spec, chooses its terminals, assigns their
// waves and starts the first.
func (s *Store) CreateCampaign(ctx context.Context, tenant string, spec posfleet.CampaignSpec, by string) (posfleet.Campaign, error) {
	id := newID("cmp-")
	spec, chosen, err := s.selection(ctx, tenant, id, spec)
	if err != nil {
		return posfleet.Campaign{}, err
	}
	if len(chosen) == 0 {
		return posfleet.Campaign{}, invalid("select: no terminal of model %s with another version than %s matches (terminals in another campaign in progress are left out)", spec.Model, spec.Target)
	}
	sizes := WaveSizes(spec.Waves, len(chosen))
	now := s.now()
	c := rec{Campaign: posfleet.Campaign{ID: id, Tenant: tenant, Spec: spec, State: posfleet.CampaignRunning, CreatedBy: by,
		CreatedAt: now, UpdatedAt: now, Gates: []posfleet.GateResult{}}}
	c.waves = make([]waveTimes, len(spec.Waves))
	c.waves[0].Started = store.Millis(now)
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return posfleet.Campaign{}, err
	}
	wavesJSON, _ := json.Marshal(c.waves)
	err = s.DB.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO campaigns (id, tenant, model, spec, state, wave, waves, created_by, created_ms, updated_ms)
			VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $8)`,
			id, tenant, spec.Model, string(specJSON), string(c.State), string(wavesJSON), by, store.Millis(now)); err != nil {
			return fmt.Errorf("campaign: create: %w", err)
		}
		const cols = 7
		batch := make([]any, 0, 500*cols)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO campaign_terminals (campaign, tenant, terminal, wave, ord, state, from_version) VALUES `+
				s.DB.Dialect.Values(len(batch)/cols, cols), batch...)
			batch = batch[:0]
			return err
		}
		wave, left := 0, sizes[0]
		for i, ch := range chosen {
			for left == 0 && wave < len(sizes)-1 {
				wave++
				left = sizes[wave]
			}
			if left == 0 {
				break // the last wave's percent is under 100: the rest stays
			}
			left--
			state := posfleet.CTPending
			if wave == 0 {
				state = posfleet.CTQueued
				if !ch.Online {
					state = posfleet.CTOffline
				}
			}
			batch = append(batch, id, tenant, ch.Ref.Terminal, wave, i, string(state), ch.Firmware)
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return fmt.Errorf("campaign: create terminals: %w", err)
				}
			}
		}
		if err := flush(); err != nil {
			return fmt.Errorf("campaign: create terminals: %w", err)
		}
		if err := addEvent(ctx, tx, id, posfleet.CampaignEvent{At: now, Kind: "created", By: by,
			Text: fmt.Sprintf("%s: %d terminals of %s to %s in %d waves", spec.Name, sumInts(sizes), spec.Model, spec.Target, len(sizes))}); err != nil {
			return err
		}
		return addEvent(ctx, tx, id, posfleet.CampaignEvent{At: now, Kind: "wave_started", Wave: 0,
			Text: fmt.Sprintf("wave 1 of %d: %d terminals", len(sizes), sizes[0])})
	})
	if err != nil {
		return posfleet.Campaign{}, err
	}
	return s.Campaign(ctx, id)
}

func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
