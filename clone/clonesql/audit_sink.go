package clonesql

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone/audit"
)

// AuditSink returns an audit.Sink that appends each event to the audit_events table of
// db (created by package migrate). The table is append-only for the application role
// (it may insert and read, never update or delete) and carries no row-level security, so
// denials without a clone context are recorded too.
func AuditSink(db *sqlx.DB) audit.Sink {
	return &sqlSink{db: db, insert: db.Rebind(`INSERT INTO audit_events
		(occurred_at, actor, action, tenant_id, clone_id, outcome, reason, request_id, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)}
}

type sqlSink struct {
	db     *sqlx.DB
	insert string
}

func (s *sqlSink) Record(ctx context.Context, e audit.Event) error {
	detail := "{}"
	if len(e.Detail) > 0 {
		b, err := json.Marshal(e.Detail)
		if err != nil {
			return err
		}
		detail = string(b)
	}
	_, err := s.db.ExecContext(ctx, s.insert, e.Time.UTC(), e.Actor, e.Action, nullID(e.TenantID), nullID(e.CloneID),
		string(e.Outcome), e.Reason, e.RequestID, detail)
	return ClassifyError("clonesql.AuditSink", err)
}

func nullID(id uuid.UUID) uuid.NullUUID { return uuid.NullUUID{UUID: id, Valid: id != uuid.Nil} }
