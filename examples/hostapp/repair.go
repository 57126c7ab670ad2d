package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/tenant"
)

// DefaultRepairTimeout bounds the start-up repair (Config.RepairTimeout).
const DefaultRepairTimeout = 5 * time.Minute

// repairAll reconciles every active clone (ingest.Pipeline.Reconcile: abandoned
// ingestions, leftovers, and ready documents' lost vectors re-embedded from their
// stored text), logging its progress, until all are done or the timeout passes. It
// runs at start-up, beside the server: a clone being repaired holds off its own
// ingestions only.
func (a *App) repairAll(ctx context.Context) error {
	timeout := a.cfg.RepairTimeout
	if timeout < 0 {
		a.log.Info("start-up repair disabled")
		return nil
	}
	if timeout == 0 {
		timeout = DefaultRepairTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := activeClones(ctx, a.raw)
	if err != nil {
		return fmt.Errorf("start-up repair: listing clones: %w", err)
	}
	start := time.Now()
	a.log.Info("start-up repair", "clones", len(rows), "timeout", timeout)
	var total ingest.ReconcileReport
	var failed int
	for i, row := range rows {
		if ctx.Err() != nil {
			a.log.Warn("start-up repair stopped", "done", i, "clones", len(rows), "err", ctx.Err())
			return ctx.Err()
		}
		cc, err := clone.New(row.TenantID, row.CloneID, clone.Principal{Subject: "hostapp:startup-repair"})
		if err != nil {
			return err
		}
		rep, err := a.pipeline.Reconcile(ctx, cc, nil)
		if err != nil {
			failed++
			a.log.Error("start-up repair of a clone failed", "clone", i+1, "of", len(rows),
				"tenant_id", row.TenantID, "clone_id", row.CloneID, "err", err)
			continue
		}
		add(&total, rep)
		if *rep != (ingest.ReconcileReport{}) {
			a.log.Warn("start-up repair changed a clone", "clone", i+1, "of", len(rows),
				"tenant_id", row.TenantID, "clone_id", row.CloneID, "report", *rep)
		} else if (i+1)%100 == 0 {
			a.log.Info("start-up repair progress", "done", i+1, "of", len(rows))
		}
	}
	a.log.Info("start-up repair done", "clones", len(rows), "failed", failed, "took", time.Since(start).Round(time.Millisecond),
		"vectors_restored", total.VectorsRestored, "documents_repaired", total.DocumentsRepaired,
		"documents_unrepairable", total.DocumentsUnrepairable, "vectors_deleted", total.VectorsDeleted,
		"objects_deleted", total.ObjectsDeleted, "documents_failed", total.DocumentsFailed,
		"documents_restored", total.DocumentsRestored)
	if failed > 0 {
		return fmt.Errorf("start-up repair: %d of %d clones failed", failed, len(rows))
	}
	return nil
}

func add(total, r *ingest.ReconcileReport) {
	total.DocumentsFailed += r.DocumentsFailed
	total.DocumentsRestored += r.DocumentsRestored
	total.VectorsDeleted += r.VectorsDeleted
	total.ObjectsDeleted += r.ObjectsDeleted
	total.VectorsRestored += r.VectorsRestored
	total.DocumentsRepaired += r.DocumentsRepaired
	total.DocumentsUnrepairable += r.DocumentsUnrepairable
}

// repair is POST /v1/repair: a tenant admin (owner or admin of the clone's tenant)
// reconciles the clone of the request and gets the report. It is audited.
func (a *App) repair(r *http.Request, cc clone.CloneContext) (int, any, error) {
	const op = "hostapp.repair"
	role, err := a.tenants.MemberRole(r.Context(), cc.TenantID(), cc.Principal().Subject)
	if err == nil && role != tenant.RoleOwner && role != tenant.RoleAdmin {
		err = fmt.Errorf("%w: repairing a clone needs the tenant's owner or admin role", clone.ErrForbidden)
	}
	if errors.Is(err, clone.ErrNotFound) {
		err = fmt.Errorf("%w: not a member of the clone's tenant", clone.ErrForbidden)
	}
	event := audit.Event{Actor: cc.Principal().Subject, Action: op, TenantID: cc.TenantID(), CloneID: cc.CloneID(), Outcome: audit.Allowed}
	if err != nil {
		event.Outcome, event.Reason = audit.Denied, err.Error()
		_ = audit.Record(r.Context(), a.sink, event)
		return 0, nil, err
	}
	rep, err := a.pipeline.Reconcile(r.Context(), cc, nil)
	if err != nil {
		return 0, nil, err
	}
	event.Detail = map[string]string{"report": fmt.Sprintf("%+v", *rep)}
	if err := audit.Record(r.Context(), a.sink, event); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}

type cloneRow struct{ TenantID, CloneID uuid.UUID }

// activeClones lists every active clone, oldest first.
func activeClones(ctx context.Context, db *sql.DB) ([]cloneRow, error) {
	rs, err := db.QueryContext(ctx, `SELECT tenant_id, id FROM clones WHERE status = '`+string(tenant.StatusActive)+`' ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []cloneRow
	for rs.Next() {
		var r cloneRow
		if err := rs.Scan(&r.TenantID, &r.CloneID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rs.Err()
}
