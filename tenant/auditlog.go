package tenant

import (
	"context"
	"strconv"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
)

// AuditEvents returns up to limit (1..1000) audit events of tenant tenantID with IDs
// greater than after, oldest first (pass the last ID of a page to get the next), for
// p, an owner or admin of the tenant. It reads the audit_events table of the store's
// database (where clonesql.AuditSink writes). The read itself is audited.
func (a *Admin) AuditEvents(ctx context.Context, p clone.Principal, tenantID uuid.UUID, after int64, limit int) ([]clonesql.AuditEvent, error) {
	const op = "tenant.Admin.AuditEvents"
	if _, err := a.authorize(ctx, op, p, tenantID, uuid.Nil); err != nil {
		return nil, err
	}
	evs, err := clonesql.AuditEvents(ctx, a.s.raw, tenantID, after, limit)
	return evs, a.done(ctx, p, op, tenantID, uuid.Nil, err, map[string]string{"after": strconv.FormatInt(after, 10), "events": strconv.Itoa(len(evs))})
}

// VerifyAudit recomputes tenant tenantID's audit hash chain (clonesql.VerifyAuditChain)
// for p, an owner or admin of the tenant, and reports whether any event was edited,
// deleted, forged or moved. The call is audited after the verification, so the
// report covers the log as it was before this call.
func (a *Admin) VerifyAudit(ctx context.Context, p clone.Principal, tenantID uuid.UUID) (*clonesql.ChainReport, error) {
	const op = "tenant.Admin.VerifyAudit"
	if _, err := a.authorize(ctx, op, p, tenantID, uuid.Nil); err != nil {
		return nil, err
	}
	rep, err := clonesql.VerifyAuditChain(ctx, a.s.raw, tenantID)
	detail := map[string]string{}
	if rep != nil {
		detail["ok"] = strconv.FormatBool(rep.OK)
		detail["events"] = strconv.Itoa(rep.Events)
		if !rep.OK {
			detail["broken_at"] = strconv.FormatInt(rep.BrokenAt, 10)
		}
	}
	return rep, a.done(ctx, p, op, tenantID, uuid.Nil, err, detail)
}
