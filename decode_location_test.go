package posfleet

import (
	"errors"
	"testing"
	"time"
)

// TestDecodeHeartbeatLocation: lat and lon in hb are optional (README,
// "PROTOCOL extensions"), checked for range, and both or neither.
func TestDecodeHeartbeatLocation(t *testing.T) {
	ref := TerminalRef{Tenant: "acme", Terminal: "T1"}
	const head = `{"seq":1,"ts":"2026-03-02T09:30:00Z"`
	m, err := Decode(ref, ChannelHeartbeat, []byte(head+`,"signal_dbm":-70}`), time.Now())
	if err != nil || m.Heartbeat.Lat != nil || m.Heartbeat.Lon != nil {
		t.Fatalf("without a location: %v %+v", err, m)
	}
	m, err = Decode(ref, ChannelHeartbeat, []byte(head+`,"lat":31.2304,"lon":121.4737}`), time.Now())
	if err != nil || m.Heartbeat.Lat == nil || *m.Heartbeat.Lat != 31.2304 || *m.Heartbeat.Lon != 121.4737 {
		t.Fatalf("with a location: %v %+v", err, m)
	}
	for _, c := range []struct {
		body, field string
		reason      Reason
	}{
		{`,"lat":90.5,"lon":0}`, "lat", ReasonOutOfRange},
		{`,"lat":-91,"lon":0}`, "lat", ReasonOutOfRange},
		{`,"lat":0,"lon":180.01}`, "lon", ReasonOutOfRange},
		{`,"lat":"31.2","lon":121.4}`, "lat", ReasonWrongType},
		{`,"lat":31.2}`, "lon", ReasonMissingField},
		{`,"lon":121.4}`, "lat", ReasonMissingField},
	} {
		_, err := Decode(ref, ChannelHeartbeat, []byte(head+c.body), time.Now())
		var rej *Rejection
		if !errors.As(err, &rej) || rej.Reason != c.reason || rej.Field != c.field {
			t.Errorf("%s: %v, want %s on %s", c.body, err, c.reason, c.field)
		}
	}
	m, err = Decode(ref, ChannelHeartbeat, []byte(head+`,"lat":null,"lon":null}`), time.Now())
	if err != nil || m.Heartbeat.Lat != nil {
		t.Errorf("null location: %v", err)
	}
}
