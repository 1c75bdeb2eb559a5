package audit

import (
	"context"
	"strconv"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/locale"
)

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func csvHref(query string) string {
	if query == "" {
		return "/audit.csv"
	}
	return "/audit.csv?" + query
}

func pageHref(query string, page int) string {
	if query == "" {
		return "/audit?page=" + strconv.Itoa(page)
	}
	return "/audit?" + query + "&page=" + strconv.Itoa(page)
}

// actorKind names who acted (a user, a token, posfleet itself) in the reader's language;
// another kind shows as stored.
func actorKind(ctx context.Context, kind string) string {
	switch kind {
	case posfleet.ActorUser, posfleet.ActorToken, posfleet.ActorSystem:
		return locale.T(ctx, "audit.actor_"+kind)
	}
	return kind
}

func summary(ctx context.Context, v View) string {
	if v.Total == 0 {
		return locale.T(ctx, "audit.none_match")
	}
	first := (v.Page-1)*v.PageSize + 1
	last := min(first+len(v.Entries)-1, v.Total)
	if len(v.Entries) == 0 {
		return locale.T(ctx, "audit.past_last", "Total", v.Total)
	}
	return locale.T(ctx, "audit.range", "First", first, "Last", last, "Total", v.Total)
}

// outcomeName is an outcome in the reader's language; an unknown one as
// its code.
func outcomeName(ctx context.Context, code string) string {
	if outcomes[code] {
		return locale.T(ctx, "audit.outcomes."+code)
	}
	return code
}
