package server

import (
	"github.com/posfleet/posfleet/healthview"
	"github.com/posfleet/posfleet/web"
)

// readHealthView makes a web process without a health engine of its own
// (no collector role) a stateless replica of the fleet: its pages and API
// read the health view that the holder of the health lease publishes to
// the database (healthview.Reader): flags, incidents, the work list and
// the terminal pages, with lists, filters, counts and paging in SQL. A
// crew visit recorded there waits in service_visits for the engine; a
// firmware policy saved there is a new version in policy_versions.
func (s *Server) readHealthView(wopts *web.Options) {
	if wopts.Health != nil || s.engine != nil || !s.cfg.Roles.Web {
		return
	}
	wopts.Health = healthview.NewReader(s.db, s.log)
	wopts.Directory = s.reg
}
