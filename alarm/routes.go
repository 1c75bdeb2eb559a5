package alarm

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Route limits.
const (
	MaxRouteNameLen = 80
	MaxRegions      = 100
	MaxRegionLen    = 64
	// DefaultDigestAt: a day's low-urgency alarms arrive when the office
	// opens.
	DefaultDigestAt = "09:00"
)

const routeCols = `id, tenant, name, channel_id, kinds, urgent_only, regions, quiet_start, quiet_end, time_zone,
	digest, digest_at, resolved, enabled, created_ms, created_by, updated_ms`

// routeColsOf is routeCols qualified with a table alias.
func routeColsOf(alias string) string {
	cols := strings.Split(routeCols, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

func scanRoute(r interface{ Scan(...any) error }) (posfleet.NotifyRoute, error) {
	var rt posfleet.NotifyRoute
	var kinds, regions string
	var created, updated int64
	err := r.Scan(&rt.ID, &rt.Tenant, &rt.Name, &rt.Channel, &kinds, &rt.UrgentOnly, &regions, &rt.QuietStart, &rt.QuietEnd, &rt.TimeZone,
		&rt.Digest, &rt.DigestAt, &rt.Resolved, &rt.Enabled, &created, &rt.CreatedBy, &updated)
	if err != nil {
		return rt, err
	}
	if kinds != "" {
		rt.Kinds = strings.Split(kinds, ",")
	}
	if regions != "" {
		rt.Regions = strings.Split(regions, ",")
	}
	rt.Created, rt.Updated = store.Time(created), store.Time(updated)
	return rt, nil
}

func scanRoutes(rows *sql.Rows, err error) ([]posfleet.NotifyRoute, error) {
	if err != nil {
		return nil, fmt.Errorf("alarm: routes: %w", err)
	}
	defer rows.Close()
	out := []posfleet.NotifyRoute{}
	for rows.Next() {
		rt, err := scanRoute(rows)
		if err != nil {
			return nil, fmt.Errorf("alarm: routes: %w", err)
		}
		out = append(out, rt)
	}
	return out, rows.Err()
}

// Routes returns the routes of a tenant ("" every tenant), by tenant and
// name.
func (s *Store) Routes(ctx context.Context, tenant string) ([]posfleet.NotifyRoute, error) {
	q := `SELECT ` + routeCols + ` FROM notification_routes`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant = $1`
		args = append(args, tenant)
	}
	return scanRoutes(s.DB.QueryContext(ctx, q+` ORDER BY tenant, name, created_ms, id`, args...))
}

// Route returns one route; a posfleet.NotFound error when there is none.
func (s *Store) Route(ctx context.Context, id string) (posfleet.NotifyRoute, error) {
	return route(ctx, s.DB, id)
}

func route(ctx context.Context, q Querier, id string) (posfleet.NotifyRoute, error) {
	rt, err := scanRoute(q.QueryRowContext(ctx, `SELECT `+routeCols+` FROM notification_routes WHERE id = $1`, id))
	if err == sql.ErrNoRows {
		return rt, posfleet.Errorf(posfleet.NotFound, "route_not_found", "no route %q", id)
	}
	if err != nil {
		return rt, fmt.Errorf("alarm: route %s: %w", id, err)
	}
	return rt, nil
}

// routesFor returns the enabled routes of a tenant whose channel is
// enabled, oldest first: the routes an alarm of the tenant may take.
func routesFor(ctx context.Context, q Querier, tenant string) ([]posfleet.NotifyRoute, error) {
	return scanRoutes(q.QueryContext(ctx, `SELECT `+routeColsOf("r")+` FROM notification_routes r
		JOIN channels c ON c.id = r.channel_id
		WHERE r.tenant = $1 AND r.enabled AND c.enabled AND c.tenant = r.tenant
		ORDER BY r.created_ms, r.id`, tenant))
}

// SaveRoute creates a route (r.ID "") or replaces one's settings, and
// returns it as stored. Its channel must exist in the route's tenant (r.Tenant
// "" takes the channel's); a route's tenant cannot change.
func (s *Store) SaveRoute(ctx context.Context, r posfleet.NotifyRoute, by string) (posfleet.NotifyRoute, error) {
	now := s.now()
	err := s.DB.Tx(ctx, func(tx *sql.Tx) error {
		if r.ID != "" {
			old, err := route(ctx, tx, r.ID)
			if err != nil {
				return err
			}
			if r.Tenant == "" {
				r.Tenant = old.Tenant
			}
			if r.Tenant != old.Tenant {
				return invalid("route_tenant", "route %s belongs to tenant %q: its tenant cannot change", r.ID, old.Tenant)
			}
			r.Created, r.CreatedBy = old.Created, old.CreatedBy
		} else {
			r.ID, r.Created, r.CreatedBy = NewID(), now, by
		}
		ch, _, _, err := channel(ctx, tx, strings.TrimSpace(r.Channel), false)
		if posfleet.ErrorKind(err) == posfleet.NotFound {
			return invalid("route_channel", "route: no channel %q", r.Channel)
		}
		if err != nil {
			return err
		}
		r.Channel = ch.ID
		if r.Tenant == "" {
			r.Tenant = ch.Tenant
		}
		if ch.Tenant != r.Tenant {
			// Said as "no such channel": a tenant's administrator learns
			// nothing of another tenant's channels.
			return invalid("route_channel", "route: no channel %q", r.Channel)
		}
		if err := validRoute(&r); err != nil {
			return err
		}
		r.Updated = now
		_, err = tx.ExecContext(ctx, `INSERT INTO notification_routes (`+routeCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
			ON CONFLICT (id) DO UPDATE SET name = $3, channel_id = $4, kinds = $5, urgent_only = $6, regions = $7,
				quiet_start = $8, quiet_end = $9, time_zone = $10, digest = $11, digest_at = $12, resolved = $13,
				enabled = $14, updated_ms = $17`,
			r.ID, r.Tenant, r.Name, r.Channel, strings.Join(r.Kinds, ","), r.UrgentOnly, strings.Join(r.Regions, ","),
			r.QuietStart, r.QuietEnd, r.TimeZone, r.Digest, r.DigestAt, r.Resolved, r.Enabled,
			store.Millis(r.Created), r.CreatedBy, store.Millis(r.Updated))
		if err != nil {
			return fmt.Errorf("alarm: save route %s: %w", r.ID, err)
		}
		return nil
	})
	if err != nil {
		return posfleet.NotifyRoute{}, err
	}
	return s.Route(ctx, r.ID)
}

// validRoute checks and normalizes r's settings (not its channel).
func validRoute(r *posfleet.NotifyRoute) error {
	if !posfleet.ValidID(r.Tenant) {
		return invalid("bad_tenant", "tenant %q: want a tenant ID", r.Tenant)
	}
	r.Name = strings.TrimSpace(r.Name)
	if utf8.RuneCountInString(r.Name) > MaxRouteNameLen || !printable(r.Name) {
		return invalid("bad_route_name", "route name %q: want at most %d printable characters", r.Name, MaxRouteNameLen)
	}
	var kinds []string
	for _, k := range r.Kinds {
		k = strings.TrimSpace(k)
		if err := validKind(k); err != nil {
			return err
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	r.Kinds = kinds
	var regions []string
	for _, g := range r.Regions {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		if utf8.RuneCountInString(g) > MaxRegionLen || !printable(g) || strings.Contains(g, ",") {
			return invalid("bad_region", "region %q: want at most %d printable characters, no comma", g, MaxRegionLen)
		}
		if !slices.ContainsFunc(regions, func(o string) bool { return strings.EqualFold(o, g) }) {
			regions = append(regions, g)
		}
	}
	if len(regions) > MaxRegions {
		return invalid("bad_regions", "%d regions: at most %d", len(regions), MaxRegions)
	}
	r.Regions = regions
	r.QuietStart, r.QuietEnd = strings.TrimSpace(r.QuietStart), strings.TrimSpace(r.QuietEnd)
	switch {
	case r.QuietStart == "" && r.QuietEnd == "":
	case !validClock(r.QuietStart) || !validClock(r.QuietEnd):
		return invalid("bad_quiet_hours", "quiet hours %q to %q: want both as HH:MM, or neither", r.QuietStart, r.QuietEnd)
	case r.QuietStart == r.QuietEnd:
		return invalid("bad_quiet_hours", "quiet hours %s to %s: an empty window", r.QuietStart, r.QuietEnd)
	}
	r.TimeZone = strings.TrimSpace(r.TimeZone)
	if r.TimeZone != "" {
		// "Local" is whatever zone the server runs in: not a tenant's.
		if _, err := time.LoadLocation(r.TimeZone); err != nil || r.TimeZone == "Local" {
			return invalid("bad_time_zone", "time zone %q: want an IANA name such as Asia/Shanghai", r.TimeZone)
		}
	}
	r.DigestAt = strings.TrimSpace(r.DigestAt)
	if r.Digest && r.DigestAt == "" {
		r.DigestAt = DefaultDigestAt
	}
	if r.DigestAt != "" && !validClock(r.DigestAt) {
		return invalid("bad_digest_at", "digest at %q: want HH:MM", r.DigestAt)
	}
	return nil
}

// validClock reports whether s is a time of day "HH:MM" (00:00 to 23:59).
func validClock(s string) bool {
	if len(s) != 5 || s[2] != ':' {
		return false
	}
	_, err := time.Parse("15:04", s)
	return err == nil
}

// DeleteRoute deletes a route; a posfleet.NotFound error when there is none.
func (s *Store) DeleteRoute(ctx context.Context, id string) error {
	res, err := s.DB.ExecContext(ctx, `DELETE FROM notification_routes WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("alarm: delete route %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("alarm: delete route %s: %w", id, err)
	} else if n == 0 {
		return posfleet.Errorf(posfleet.NotFound, "route_not_found", "no route %q", id)
	}
	return nil
}
