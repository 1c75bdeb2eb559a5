package alarm

import (
	"context"
	"database/sql"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/store"
)

// Channel limits.
const (
	MaxChannelNameLen = 80
	MaxRecipients     = 20
	MaxURLLen         = 2048
	MaxSecretLen      = 512
	// DefaultRatePerHour is a channel's rate limit when none is given
	// (RatePerHour 0): a chat group reads a message a minute; past that,
	// one summary says how many were held back.
	DefaultRatePerHour = 60
	// MaxRatePerHour: there is no "unlimited". An alarm storm that gets
	// past folding must not become ten thousand chat messages; 10,000 an
	// hour is unlimited in practice for a webhook receiver.
	MaxRatePerHour = 10000
)

// Languages of channel messages.
const (
	LangEnglish = "en"
	LangChinese = "zh-CN"
)

const channelCols = `id, tenant, name, type, url, recipients, secret, language, enabled, rate_per_hour, created_ms, created_by, updated_ms`

// scanChannel reads a row of channelCols: the channel as shown, and its
// write-only URL and secret.
func scanChannel(r interface{ Scan(...any) error }) (ch posfleet.NotifyChannel, rawURL, secret string, err error) {
	var typ, recipients string
	var created, updated int64
	err = r.Scan(&ch.ID, &ch.Tenant, &ch.Name, &typ, &rawURL, &recipients, &secret, &ch.Language, &ch.Enabled, &ch.RatePerHour, &created, &ch.CreatedBy, &updated)
	if err != nil {
		return ch, "", "", err
	}
	ch.Type = posfleet.NotifyChannelType(typ)
	ch.URLHint = urlHint(rawURL)
	ch.HasSecret = secret != ""
	if recipients != "" {
		ch.To = strings.Split(recipients, ",")
	}
	ch.Created, ch.Updated = store.Time(created), store.Time(updated)
	return ch, rawURL, secret, nil
}

// urlHint is the URL's scheme and host and "/…": enough to tell which
// service a channel posts to, nothing of the token chat robots carry in
// the path or query.
func urlHint(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "…"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// Channels returns the channels of a tenant ("" every tenant), by tenant
// and name, without their URLs and secrets.
func (s *Store) Channels(ctx context.Context, tenant string) ([]posfleet.NotifyChannel, error) {
	q := `SELECT ` + channelCols + ` FROM channels`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant = $1`
		args = append(args, tenant)
	}
	rows, err := s.DB.QueryContext(ctx, q+` ORDER BY tenant, name, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("alarm: channels: %w", err)
	}
	defer rows.Close()
	out := []posfleet.NotifyChannel{}
	for rows.Next() {
		ch, _, _, err := scanChannel(rows)
		if err != nil {
			return nil, fmt.Errorf("alarm: channels: %w", err)
		}
		out = append(out, ch)
	}
	return out, rows.Err()
}

// Channel returns one channel without its URL and secret; a
// posfleet.NotFound error when there is none.
func (s *Store) Channel(ctx context.Context, id string) (posfleet.NotifyChannel, error) {
	ch, _, _, err := channel(ctx, s.DB, id, false)
	return ch, err
}

// ChannelTarget returns a channel with its write-only URL and secret, for
// the dispatcher and "send test". Never for a page or an API answer.
func (s *Store) ChannelTarget(ctx context.Context, id string) (ch posfleet.NotifyChannel, rawURL, secret string, err error) {
	return channel(ctx, s.DB, id, false)
}

func channel(ctx context.Context, q Querier, id string, forUpdate bool) (posfleet.NotifyChannel, string, string, error) {
	query := `SELECT ` + channelCols + ` FROM channels WHERE id = $1`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	ch, rawURL, secret, err := scanChannel(q.QueryRowContext(ctx, query, id))
	if err == sql.ErrNoRows {
		return ch, "", "", posfleet.Errorf(posfleet.NotFound, "channel_not_found", "no channel %q", id)
	}
	if err != nil {
		return ch, "", "", fmt.Errorf("alarm: channel %s: %w", id, err)
	}
	return ch, rawURL, secret, nil
}

func invalid(code, format string, args ...any) error {
	return posfleet.Errorf(posfleet.Invalid, code, format, args...)
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

// SaveChannel creates a channel (ch.ID "") or replaces one's settings,
// and returns it as shown (URLHint and HasSecret, never the URL or the
// secret). The URL and the secret change only when sec says so; a
// pointer to "" removes the secret. RatePerHour 0 means
// DefaultRatePerHour; there is no unlimited. A channel's tenant cannot
// change: its routes are the tenant's.
func (s *Store) SaveChannel(ctx context.Context, ch posfleet.NotifyChannel, sec posfleet.NotifySecrets, by string) (posfleet.NotifyChannel, error) {
	now := s.now()
	var id string
	err := s.DB.Tx(ctx, func(tx *sql.Tx) error {
		rawURL, secret := "", ""
		if ch.ID != "" {
			old, oldURL, oldSecret, err := channel(ctx, tx, ch.ID, s.DB.Dialect == store.Postgres)
			if err != nil {
				return err
			}
			if ch.Tenant == "" {
				ch.Tenant = old.Tenant
			}
			if ch.Tenant != old.Tenant {
				return invalid("channel_tenant", "channel %s belongs to tenant %q: its tenant cannot change", ch.ID, old.Tenant)
			}
			ch.Created, ch.CreatedBy = old.Created, old.CreatedBy
			rawURL, secret = oldURL, oldSecret
		} else {
			ch.ID, ch.Created, ch.CreatedBy = NewID(), now, by
		}
		if sec.URL != nil {
			rawURL = strings.TrimSpace(*sec.URL)
		}
		if sec.Secret != nil {
			secret = strings.TrimSpace(*sec.Secret)
		}
		var err error
		if rawURL, secret, err = validChannel(&ch, rawURL, secret); err != nil {
			return err
		}
		var taken string
		err = tx.QueryRowContext(ctx, `SELECT id FROM channels WHERE tenant = $1 AND name = $2 AND id <> $3`, ch.Tenant, ch.Name, ch.ID).Scan(&taken)
		if err == nil {
			return nameTaken(ch)
		}
		if err != sql.ErrNoRows {
			return fmt.Errorf("alarm: channel %q: %w", ch.Name, err)
		}
		args := []any{ch.ID, ch.Tenant, ch.Name, string(ch.Type), rawURL, strings.Join(ch.To, ","), secret, ch.Language,
			ch.Enabled, ch.RatePerHour, store.Millis(ch.Created), ch.CreatedBy, store.Millis(now)}
		// Two administrators giving two channels the same name at once:
		// the unique index refuses the second, which gets a conflict,
		// not a server error.
		_, err = tx.ExecContext(ctx, `INSERT INTO channels (`+channelCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (id) DO UPDATE SET name = $3, type = $4, url = $5, recipients = $6, secret = $7, language = $8,
				enabled = $9, rate_per_hour = $10, updated_ms = $13`, args...)
		if err != nil {
			if isUnique(err) {
				return nameTaken(ch)
			}
			return fmt.Errorf("alarm: save channel %q: %w", ch.Name, err)
		}
		id = ch.ID
		return nil
	})
	if err != nil {
		return posfleet.NotifyChannel{}, err
	}
	return s.Channel(ctx, id)
}

func nameTaken(ch posfleet.NotifyChannel) error {
	return posfleet.Errorf(posfleet.Conflict, "channel_exists", "tenant %q has a channel named %q already", ch.Tenant, ch.Name)
}

// isUnique reports whether err is a unique constraint's violation
// (SQLite's message, PostgreSQL's SQLSTATE 23505).
func isUnique(err error) bool {
	m := err.Error()
	return strings.Contains(m, "UNIQUE constraint failed") || strings.Contains(m, "23505")
}

// validChannel checks and normalizes ch, and returns the URL and secret to
// store: an e-mail channel has neither, a chat robot or webhook has no
// recipients.
func validChannel(ch *posfleet.NotifyChannel, rawURL, secret string) (string, string, error) {
	if !posfleet.ValidID(ch.Tenant) {
		return "", "", invalid("bad_tenant", "tenant %q: want a tenant ID", ch.Tenant)
	}
	ch.Name = strings.TrimSpace(ch.Name)
	if n := utf8.RuneCountInString(ch.Name); n == 0 || n > MaxChannelNameLen || !printable(ch.Name) {
		return "", "", invalid("bad_channel_name", "channel name %q: want 1-%d printable characters", ch.Name, MaxChannelNameLen)
	}
	if !slices.Contains(posfleet.NotifyChannelTypes, ch.Type) {
		return "", "", invalid("bad_channel_type", "channel type %q: want one of %v", ch.Type, posfleet.NotifyChannelTypes)
	}
	switch ch.Language {
	case "":
		ch.Language = LangEnglish
	case LangEnglish, LangChinese:
	default:
		return "", "", invalid("bad_language", "language %q: want %q or %q", ch.Language, LangEnglish, LangChinese)
	}
	switch {
	case ch.RatePerHour == 0:
		ch.RatePerHour = DefaultRatePerHour
	case ch.RatePerHour < 0 || ch.RatePerHour > MaxRatePerHour:
		return "", "", invalid("bad_rate", "rate per hour %d: want 1-%d, or 0 for %d", ch.RatePerHour, MaxRatePerHour, DefaultRatePerHour)
	}
	if ch.Type == posfleet.NotifyEmail {
		to, err := validRecipients(ch.To)
		if err != nil {
			return "", "", err
		}
		ch.To = to
		return "", "", nil
	}
	ch.To = nil
	if rawURL == "" {
		return "", "", invalid("url_required", "a %s channel needs a URL", ch.Type)
	}
	u, err := url.Parse(rawURL)
	// The error of url.Parse quotes the URL, which may carry a token:
	// never pass it on.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || len(rawURL) > MaxURLLen || !printable(rawURL) {
		return "", "", invalid("bad_url", "the URL of a %s channel: want http:// or https://, a host, at most %d characters", ch.Type, MaxURLLen)
	}
	if len(secret) > MaxSecretLen || !printable(secret) {
		return "", "", invalid("bad_secret", "secret: want at most %d printable characters", MaxSecretLen)
	}
	return rawURL, secret, nil
}

// validRecipients parses 1 to MaxRecipients e-mail addresses and returns
// their bare addresses, without repeats.
func validRecipients(to []string) ([]string, error) {
	var out []string
	for _, s := range to {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		a, err := mail.ParseAddress(s)
		// A comma separates the stored list; a quoted local part with one
		// is legal and never seen in practice.
		if err != nil || strings.Contains(a.Address, ",") {
			return nil, invalid("bad_recipient", "e-mail address %q: not an address", s)
		}
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, a.Address) }) {
			out = append(out, a.Address)
		}
	}
	if len(out) == 0 || len(out) > MaxRecipients {
		return nil, invalid("bad_recipients", "an e-mail channel needs 1-%d recipients, not %d", MaxRecipients, len(out))
	}
	return out, nil
}

// DeleteChannel deletes a channel and its routes. Its notifications not
// sent yet stay in the outbox; the dispatcher marks them failed.
func (s *Store) DeleteChannel(ctx context.Context, id string) error {
	return s.DB.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM channels WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("alarm: delete channel %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("alarm: delete channel %s: %w", id, err)
		} else if n == 0 {
			return posfleet.Errorf(posfleet.NotFound, "channel_not_found", "no channel %q", id)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM notification_routes WHERE channel_id = $1`, id); err != nil {
			return fmt.Errorf("alarm: delete the routes of channel %s: %w", id, err)
		}
		return nil
	})
}
