// Package locale is how posfleet speaks to people: in their language
// (English or Simplified Chinese), in their time zone, with their number
// and money formats.
//
// Every string a person reads comes from a message catalogue
// (catalog/<area>.<lang>.toml), looked up by ID through go-i18n
// (github.com/nicksnyder/go-i18n/v2): it is the Go library with CLDR plural
// rules and text/template placeholders, so a translator can move a
// placeholder without a programmer, and no page concatenates translated
// fragments. Numbers and money are formatted by golang.org/x/text (CLDR
// grouping, currency symbols and their minor units).
//
// A request's Locale rides in its context (With, From): pages call T, N,
// Time, Int and Money with the ctx templ gives them.
package locale

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/currency"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The languages posfleet speaks. English is the default and the fallback.
const (
	English = "en"
	Chinese = "zh-CN"
)

// Languages are the languages a user may choose, in the order offered.
var Languages = []string{English, Chinese}

// LanguageName is a language's name in itself, for the language chooser.
func LanguageName(lang string) string {
	switch lang {
	case Chinese:
		return "简体中文"
	}
	return "English"
}

//go:embed catalog/*.toml
var catalogFS embed.FS

var (
	bundle     *goi18n.Bundle
	bundleErr  error
	bundleOnce sync.Once
	tags       = []language.Tag{language.English, language.SimplifiedChinese}
	matcher    = language.NewMatcher(tags)
)

// Bundle is the loaded message catalogues (loaded once).
func Bundle() (*goi18n.Bundle, error) {
	bundleOnce.Do(func() {
		b := goi18n.NewBundle(language.English)
		b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
		files, err := fs.Glob(catalogFS, "catalog/*.toml")
		if err != nil {
			bundleErr = err
			return
		}
		for _, f := range files {
			if _, err := b.LoadMessageFileFS(catalogFS, f); err != nil {
				bundleErr = fmt.Errorf("message catalogue %s: %w", f, err)
				return
			}
		}
		bundle = b
	})
	return bundle, bundleErr
}

// Supported reports whether lang is one of Languages.
func Supported(lang string) bool { return slices.Contains(Languages, lang) }

// Negotiate picks the language of a person: its own choice when it made
// one, else the best match of its browser's Accept-Language, else English.
func Negotiate(chosen, acceptLanguage string) string {
	if Supported(chosen) {
		return chosen
	}
	if acceptLanguage == "" {
		return English
	}
	prefs, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(prefs) == 0 {
		return English
	}
	_, i, conf := matcher.Match(prefs...)
	if conf == language.No {
		return English
	}
	return Languages[i]
}

// DefaultZone is the time zone of a person who chose none and whose tenant
// set none: Asia/Shanghai for Chinese (posfleet's fleets read Chinese in
// UTC+8), UTC otherwise.
func DefaultZone(lang string) string {
	if lang == Chinese {
		return "Asia/Shanghai"
	}
	return "UTC"
}

// Locale is one person's language and time zone.
type Locale struct {
	Lang string
	Zone *time.Location
	loc  *goi18n.Localizer
	p    *message.Printer
}

// New is the Locale of lang (English when unsupported) in zone (the
// language's DefaultZone when "" or unknown).
func New(lang, zone string) *Locale {
	if !Supported(lang) {
		lang = English
	}
	loc, err := time.LoadLocation(zone)
	if zone == "" || err != nil {
		loc, err = time.LoadLocation(DefaultZone(lang))
		if err != nil {
			loc = time.UTC
		}
	}
	l := &Locale{Lang: lang, Zone: loc, p: message.NewPrinter(tags[slices.Index(Languages, lang)])}
	if b, err := Bundle(); err == nil {
		l.loc = goi18n.NewLocalizer(b, lang)
	}
	return l
}

var fallback = New(English, "UTC")

type ctxKey struct{}

// With returns ctx carrying l.
func With(ctx context.Context, l *Locale) context.Context { return context.WithValue(ctx, ctxKey{}, l) }

// From is ctx's Locale: English in UTC when ctx carries none.
func From(ctx context.Context) *Locale {
	if ctx != nil {
		if l, ok := ctx.Value(ctxKey{}).(*Locale); ok && l != nil {
			return l
		}
	}
	return fallback
}

var (
	missingMu sync.Mutex
	missing   = map[string]bool{}
)

// Missing lists the "lang:id" of every message looked up and not found in
// its language's catalogue since the process started (tests fail on any).
func Missing() []string {
	missingMu.Lock()
	defer missingMu.Unlock()
	out := make([]string, 0, len(missing))
	for k := range missing {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func noteMissing(lang, id string) {
	missingMu.Lock()
	missing[lang+":"+id] = true
	missingMu.Unlock()
}

// T is the message id in l's language, its placeholders filled from kv
// (name, value pairs: {{.Name}} in the catalogue). Integers are formatted
// with l's thousands separators. A message missing from the catalogue shows
// its English text, or its ID, and is noted (Missing).
func (l *Locale) T(id string, kv ...any) string {
	return l.localize(id, nil, kv)
}

// N is the plural message id for count (its one/other forms), with count
// as {{.Count}} and more placeholders from kv.
func (l *Locale) N(id string, count int, kv ...any) string {
	return l.localize(id, count, append([]any{"Count", count}, kv...))
}

func (l *Locale) localize(id string, count any, kv []any) string {
	var data map[string]any
	if len(kv) > 0 {
		data = make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			data[k] = l.arg(kv[i+1])
		}
	}
	if l.loc == nil {
		noteMissing(l.Lang, id)
		return id
	}
	s, tag, err := l.loc.LocalizeWithTag(&goi18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count})
	if err != nil || (tag != language.Und && tag.String() != l.Lang && l.Lang != English) {
		noteMissing(l.Lang, id)
		if s == "" {
			return id
		}
	}
	return s
}

// arg formats a placeholder value: integers with separators, times in l's
// zone; anything else as is.
func (l *Locale) arg(v any) any {
	switch x := v.(type) {
	case int:
		return l.Int(int64(x))
	case int64:
		return l.Int(x)
	case uint64:
		return l.p.Sprintf("%d", x)
	case time.Time:
		return l.Time(x)
	}
	return v
}

// Int is n with l's thousands separators (26,371).
func (l *Locale) Int(n int64) string { return l.p.Sprintf("%d", n) }

// Float is v with prec decimals and thousands separators.
func (l *Locale) Float(v float64, prec int) string { return l.p.Sprintf("%.*f", prec, v) }

// Percent is n of total as a percentage with one decimal; "–" of nothing.
func (l *Locale) Percent(n, total int64) string {
	if total == 0 {
		return "–"
	}
	return l.Float(float64(n)*100/float64(total), 1) + "%"
}

// Money is an amount given in minor units (as terminals send it and the
// API keeps it) in major units with its currency's symbol: 40959 CNY is
// ¥409.59. An unknown currency shows its code.
func (l *Locale) Money(minor int64, code string) string {
	cur, err := currency.ParseISO(code)
	if err != nil {
		return l.Float(float64(minor)/100, 2) + " " + code
	}
	scale, _ := currency.Standard.Rounding(cur)
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	v := float64(minor) / math.Pow10(scale)
	return sign + l.p.Sprint(currency.NarrowSymbol(cur)) + l.Float(v, scale)
}

// ZoneName names l's zone as people read it next to a time: "UTC+8",
// "UTC", "UTC+5:30" (the offset at t).
func (l *Locale) ZoneName(t time.Time) string {
	_, off := t.In(l.Zone).Zone()
	if off == 0 {
		return "UTC"
	}
	sign := "+"
	if off < 0 {
		sign, off = "-", -off
	}
	h, m := off/3600, off%3600/60
	if m == 0 {
		return fmt.Sprintf("UTC%s%d", sign, h)
	}
	return fmt.Sprintf("UTC%s%d:%02d", sign, h, m)
}

// Time is t in l's zone, to the second, with the zone named
// ("2026-03-02 17:30:00 UTC+8"); the zero time is "never".
func (l *Locale) Time(t time.Time) string {
	if t.IsZero() {
		return l.T("time.never")
	}
	return t.In(l.Zone).Format("2006-01-02 15:04:05") + " " + l.ZoneName(t)
}

// Minute is t in l's zone to the minute, with the zone named.
func (l *Locale) Minute(t time.Time) string {
	if t.IsZero() {
		return l.T("time.never")
	}
	return t.In(l.Zone).Format("2006-01-02 15:04") + " " + l.ZoneName(t)
}

// Date is t's day in l's zone (2026-03-02).
func (l *Locale) Date(t time.Time) string { return t.In(l.Zone).Format("2006-01-02") }

// Ago says roughly how long before now t was.
func (l *Locale) Ago(t, now time.Time) string {
	if t.IsZero() {
		return l.T("time.never")
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return l.T("time.just_now")
	case d < time.Hour:
		return l.N("time.minutes_ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return l.N("time.hours_ago", int(d.Hours()))
	}
	return l.N("time.days_ago", int(d.Hours()/24))
}

// The same, for the Locale a context carries.

// T is From(ctx).T.
func T(ctx context.Context, id string, kv ...any) string { return From(ctx).T(id, kv...) }

// N is From(ctx).N.
func N(ctx context.Context, id string, count int, kv ...any) string {
	return From(ctx).N(id, count, kv...)
}

// Time is From(ctx).Time.
func Time(ctx context.Context, t time.Time) string { return From(ctx).Time(t) }

// Minute is From(ctx).Minute.
func Minute(ctx context.Context, t time.Time) string { return From(ctx).Minute(t) }

// Int is From(ctx).Int.
func Int(ctx context.Context, n int64) string { return From(ctx).Int(n) }

// Money is From(ctx).Money.
func Money(ctx context.Context, minor int64, code string) string {
	return From(ctx).Money(minor, code)
}

// IDs lists the message IDs of lang's catalogue (for the completeness test).
func IDs(lang string) ([]string, error) {
	var ids []string
	files, _ := fs.Glob(catalogFS, "catalog/*."+lang+".toml")
	for _, f := range files {
		raw, err := fs.ReadFile(catalogFS, f)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := toml.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		ids = append(ids, flatten("", m)...)
	}
	sort.Strings(ids)
	return ids, nil
}

// flatten lists a catalogue's message IDs: nested tables are dotted IDs; a
// table of plural forms (one, other…) is one message.
func flatten(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		id := k
		if prefix != "" {
			id = prefix + "." + k
		}
		sub, ok := v.(map[string]any)
		if ok && !isMessage(sub) {
			out = append(out, flatten(id, sub)...)
			continue
		}
		out = append(out, id)
	}
	return out
}

func isMessage(m map[string]any) bool {
	for k := range m {
		switch strings.ToLower(k) {
		case "other", "one", "zero", "two", "few", "many", "description", "hash", "leftdelim", "rightdelim":
		default:
			return false
		}
	}
	return true
}
