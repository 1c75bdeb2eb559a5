package server_test

import (
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server"
)

func TestParseRoles(t *testing.T) {
	cases := []struct {
		in      string
		want    server.Roles
		wantErr bool
	}{
		{"broker,collector,web", server.AllRoles, false},
		{"collector", server.Roles{Collector: true}, false},
		{"web, collector", server.Roles{Collector: true, Web: true}, false},
		{"web", server.Roles{Web: true}, false},
		{"brokers", server.Roles{}, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := server.ParseRoles(strings.Split(c.in, ","))
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("ParseRoles(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.wantErr)
			}
			if err == nil && got.String() != strings.ReplaceAll(c.in, " ", "") && c.in != "web, collector" {
				t.Errorf("String() = %q", got.String())
			}
		})
	}
}
