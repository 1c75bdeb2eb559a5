package server

import (
	"context"

	"github.com/posfleet/posfleet"
	"github.com/posfleet/posfleet/journal"
	"github.com/posfleet/posfleet/store"
	"github.com/posfleet/posfleet/web"
)

// auditRetention is the pruner's retention: the events' with the audit
// log's age.
func (c Config) auditRetention() journal.Retention {
	r := c.EventRetention
	if c.AuditRetention != 0 {
		r.AuditMaxAge = c.AuditRetention
	}
	return r
}

// auditWeb gives the web side the audit log in the control-plane
// database: every replica writes its requests' entries and reads all.
func (s *Server) auditWeb(o *web.Options) {
	if s.db != nil {
		o.Audit = auditLog{s.db}
	}
}

// auditLog is the journal's audit log as the web needs it.
type auditLog struct{ db *store.DB }

var _ web.AuditLog = auditLog{}

func (l auditLog) AppendAudit(ctx context.Context, e posfleet.AuditEntry) error {
	return journal.AppendAudit(ctx, l.db, e)
}

func (l auditLog) AuditLog(ctx context.Context, f posfleet.AuditFilter) ([]posfleet.AuditEntry, int, error) {
	return journal.AuditLog(ctx, l.db, f)
}
