package worklist

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet/health"
)

// TelHref is a tap-to-call link: the number's + and digits only (the
// registry admits digits, spaces, +, - and parentheses).
func TelHref(phone string) string {
	var b strings.Builder
	for i, c := range phone {
		if '0' <= c && c <= '9' || c == '+' && i == 0 {
			b.WriteRune(c)
		}
	}
	return "tel:" + b.String()
}

// GeoHref is a map link a phone opens in its map app: a geo: URI with the
// address as the query (RFC 5870 and Android's q= form), or the
// coordinates without one; "" with neither.
func GeoHref(st health.JobSite) string {
	if st.Address != "" {
		return "geo:0,0?q=" + queryEscape(st.Address)
	}
	if lat, lon, ok := coords(st); ok {
		return "geo:" + lat + "," + lon
	}
	return ""
}

// OSMHref is the OpenStreetMap search for the address (or the map at the
// coordinates): a plain link, no scripts of theirs on our page.
func OSMHref(st health.JobSite) string {
	if st.Address != "" {
		return "https://www.openstreetmap.org/search?query=" + queryEscape(st.Address)
	}
	if lat, lon, ok := coords(st); ok {
		return "https://www.openstreetmap.org/?mlat=" + lat + "&mlon=" + lon + "#map=18/" + lat + "/" + lon
	}
	return ""
}

// queryEscape escapes a query value with %20 for spaces, which geo: URIs
// need (a + would be a plus).
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func coords(st health.JobSite) (lat, lon string, ok bool) {
	if len(st.Items) == 0 || st.Items[0].Lat == 0 && st.Items[0].Lon == 0 {
		return "", "", false
	}
	it := st.Items[0]
	return strconv.FormatFloat(it.Lat, 'f', -1, 64), strconv.FormatFloat(it.Lon, 'f', -1, 64), true
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}
