package tenant

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore"
)

// OffboardReceipt is what offboarding one clone deleted, as written to the audit log.
type OffboardReceipt struct {
	TenantID, CloneID uuid.UUID
	// Rows counts deleted rows per clone-owned table.
	Rows map[string]int64
	// Vectors counts the vectors of the clone's namespace before it was deleted (0 if
	// the Admin has no vector index), as the index reported them: on an eventually
	// consistent index (Pinecone) writes not yet visible are not counted, though they
	// are deleted.
	Vectors int
	// VectorLagPolls counts the extra reads verification made because the vector index
	// still showed vectors it had deleted (Pinecone's eventual consistency); 0 when the
	// deletion was visible at once.
	VectorLagPolls int
	// Objects, DeleteMarkers and Uploads count deleted object versions, delete markers
	// and aborted multipart uploads.
	Objects, DeleteMarkers, Uploads int
	// Resumed is true if the clone was already offboarding when the call began (an
	// earlier attempt failed or was interrupted).
	Resumed bool
	// AlreadyOffboarded is true if there was nothing left to do.
	AlreadyOffboarded bool
}

func (r *OffboardReceipt) detail(step string) map[string]string {
	d := map[string]string{"step": step, "resumed": strconv.FormatBool(r.Resumed),
		"vectors": strconv.Itoa(r.Vectors), "objects": strconv.Itoa(r.Objects),
		"delete_markers": strconv.Itoa(r.DeleteMarkers), "uploads": strconv.Itoa(r.Uploads)}
	if r.VectorLagPolls > 0 {
		d["vector_lag_polls"] = strconv.Itoa(r.VectorLagPolls)
	}
	var total int64
	for t, n := range r.Rows {
		d["rows."+t] = strconv.FormatInt(n, 10)
		total += n
	}
	d["rows"] = strconv.FormatInt(total, 10)
	return d
}

// OffboardClone offboards clone cloneID of tenant tenantID for p, an owner or admin
// of the tenant, for reason (audited; required), and returns the deletion receipt.
//
// Offboarding an offboarded clone sweeps it: the stores are checked again, anything
// found is deleted and audited, and the receipt (with AlreadyOffboarded set) counts
// what was found. Signed PUT URLs and upload tickets issued before offboarding stay
// valid until they expire (at most objectstore.Options.MaxURLExpiry), and the store,
// not the SDK, accepts those uploads; call OffboardClone again once that time has
// passed.
//
// It deletes everything the clone stores, verifiably, in this order:
//
//  1. the clone's status becomes offboarding, in one transaction, and cached
//     resolutions are invalidated: from then on no request resolves to it, the
//     stores' hooks ([Guard]) refuse it, and the database refuses new rows for it
//     (a trigger of migration 00010, race-free against the status change);
//  2. after AdminOptions.Drain, so that writes already past the hooks land, its rows
//     are deleted from every clone-owned table, children first, through the scoped
//     SQL wrapper; its vector namespace is deleted (vectorstore.Index.DeleteAll); every
//     object version, delete marker and unfinished upload under its prefix is deleted
//     (objectstore.Bucket.DeleteClone);
//  3. each store is checked to be empty for the clone;
//  4. a deletion receipt (counts per store) is written to the audit log;
//  5. the status becomes offboarded: a tombstone. The clone's ID is never reused, and
//     its namespace and prefix can never be written again (the hooks and the trigger
//     refuse offboarded clones). The stores are checked once more, and anything a
//     straggling write left is deleted and audited.
//
// On an eventually consistent vector index (Pinecone), step 3 re-reads the index until
// it shows the namespace empty, for up to AdminOptions.VectorSettle, and the receipt
// counts the re-reads (VectorLagPolls); it never reports empty before the index does. A
// straggling vector write that the index does not show yet at step 5 is found by the
// sweep of a later call.
//
// Every step is idempotent: if offboarding fails or the process dies half-way, the
// clone stays offboarding (unusable) and calling OffboardClone again resumes it. A
// failed attempt is audited with what it had deleted so far, so the receipts of all
// attempts add up to everything deleted.
func (a *Admin) OffboardClone(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID, reason string) (*OffboardReceipt, error) {
	const op = "tenant.Admin.OffboardClone"
	if _, err := a.authorize(ctx, op, p, tenantID, cloneID); err != nil {
		return nil, err
	}
	if err := validateReason(op, reason); err != nil {
		return nil, a.done(ctx, p, op, tenantID, cloneID, err, nil)
	}
	var prev Status
	err := a.s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		st, err := a.lockClone(ctx, tx, op, tenantID, cloneID)
		if err != nil {
			return err
		}
		prev = st
		if st == StatusActive || st == StatusSuspended {
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE clones SET status = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`),
				StatusOffboarding, a.clock(), tenantID, cloneID)
		}
		return err
	})
	if err != nil {
		return nil, a.done(ctx, p, op, tenantID, cloneID, err, nil)
	}
	r := &OffboardReceipt{TenantID: tenantID, CloneID: cloneID, Rows: map[string]int64{}}
	if prev == StatusOffboarded {
		r.AlreadyOffboarded = true
		return r, a.sweep(ctx, p, op, reason, r)
	}
	a.s.invalidateClone(tenantID, cloneID)
	r.Resumed = prev == StatusOffboarding
	if err := a.record(ctx, p, op, tenantID, cloneID, audit.Allowed, reason, map[string]string{"step": "blocked", "resumed": strconv.FormatBool(r.Resumed)}); err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "offboarding could not be audited; the clone stays blocked, call again to resume")
	}
	a.wait(ctx)
	return r, a.finishClone(ctx, p, op, reason, r)
}

// wait sleeps for the drain period (or until ctx ends).
func (a *Admin) wait(ctx context.Context) {
	if a.drain <= 0 {
		return
	}
	t := time.NewTimer(a.drain)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// finishClone runs steps 2 to 5 for a clone that is offboarding.
func (a *Admin) finishClone(ctx context.Context, p clone.Principal, op, reason string, r *OffboardReceipt) error {
	fail := func(step string, err error) error {
		a.emit(ctx, p, op, r.TenantID, r.CloneID, audit.Failed, errs.KindOf(err).String(), r.detail(step))
		return errs.Wrap(errs.KindOf(err), op, err, "offboarding failed at %s; the clone stays blocked, call again to resume", step)
	}
	cc, err := internalContext(r.TenantID, r.CloneID, p, purposeOffboard)
	if err != nil {
		return err
	}
	dctx := withAdminUse(ctx, r.TenantID, r.CloneID, purposeOffboard)
	if step, err := a.deleteAll(dctx, cc, r); err != nil {
		return fail(step, err)
	}
	if err := a.step("verify"); err != nil {
		return fail("verify", err)
	}
	if left, err := a.settledLeftovers(dctx, cc, r); err != nil {
		return fail("verify", err)
	} else if left != "" {
		return fail("verify", errs.New(errs.Conflict, op, "not empty after deletion: %s", left))
	}
	if err := a.step("receipt"); err != nil {
		return fail("receipt", err)
	}
	if err := a.record(ctx, p, op, r.TenantID, r.CloneID, audit.Allowed, reason, r.detail("receipt")); err != nil {
		return fail("receipt", err)
	}
	err = a.s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE clones SET status = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND status = ?`),
			StatusOffboarded, a.clock(), r.TenantID, r.CloneID, StatusOffboarding)
		return err
	})
	if err != nil {
		return fail("tombstone", err)
	}
	a.s.invalidateClone(r.TenantID, r.CloneID)
	if err := a.step("tombstone"); err != nil {
		return fail("tombstone", err)
	}
	// A write that passed the hooks before the clone was blocked and landed after the
	// check above (slower than the drain period) is cleaned up here.
	if left, err := a.leftovers(dctx, cc); err != nil || left != "" {
		late := &OffboardReceipt{TenantID: r.TenantID, CloneID: r.CloneID, Rows: map[string]int64{}}
		if _, derr := a.deleteAll(dctx, cc, late); derr != nil {
			return fail("late-cleanup", errors.Join(err, derr))
		}
		a.emit(ctx, p, op, r.TenantID, r.CloneID, audit.Allowed, "late writes deleted after the tombstone", late.detail("late-cleanup"))
		addReceipt(r, late)
	}
	return nil
}

// sweep deletes what an offboarded clone still stores (uploads through URLs signed
// before its offboarding) and audits what it found.
func (a *Admin) sweep(ctx context.Context, p clone.Principal, op, reason string, r *OffboardReceipt) error {
	cc, err := internalContext(r.TenantID, r.CloneID, p, purposeOffboard)
	if err != nil {
		return err
	}
	dctx := withAdminUse(ctx, r.TenantID, r.CloneID, purposeOffboard)
	left, err := a.leftovers(dctx, cc)
	if err == nil && left != "" {
		var step string
		if step, err = a.deleteAll(dctx, cc, r); err != nil {
			err = errs.Wrap(errs.KindOf(err), op, err, "sweeping the offboarded clone failed at %s", step)
		}
	}
	if err != nil {
		a.emit(ctx, p, op, r.TenantID, r.CloneID, audit.Failed, errs.KindOf(err).String(), r.detail("sweep"))
		return err
	}
	return a.record(ctx, p, op, r.TenantID, r.CloneID, audit.Allowed, reason, r.detail("sweep"))
}

func addReceipt(r, late *OffboardReceipt) {
	for t, n := range late.Rows {
		r.Rows[t] += n
	}
	r.Vectors += late.Vectors
	r.Objects += late.Objects
	r.DeleteMarkers += late.DeleteMarkers
	r.Uploads += late.Uploads
}

// step runs the test hook for step.
func (a *Admin) step(step string) error {
	if a.failAt != nil {
		return a.failAt(step)
	}
	return nil
}

// deleteAll deletes the clone's rows, vectors and objects, adding the counts to r. It
// returns the step that failed.
func (a *Admin) deleteAll(ctx context.Context, cc clone.CloneContext, r *OffboardReceipt) (string, error) {
	if err := a.step("rows"); err != nil {
		return "rows", err
	}
	err := a.sql.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
		for _, t := range a.tables {
			res, err := tx.Exec(ctx, `DELETE FROM `+t+` WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			r.Rows[t] += n
		}
		return nil
	})
	if err != nil {
		for _, t := range a.tables {
			delete(r.Rows, t) // rolled back
		}
		return "rows", err
	}
	if a.vectors != nil {
		if err := a.step("vectors"); err != nil {
			return "vectors", err
		}
		st, err := a.vectors.Stats(ctx, cc)
		if err != nil {
			return "vectors", err
		}
		if err := a.vectors.DeleteAll(ctx, cc); err != nil {
			return "vectors", err
		}
		r.Vectors += st.VectorCount
	}
	if a.objects != nil {
		if err := a.step("objects"); err != nil {
			return "objects", err
		}
		rep, err := a.objects.DeleteClone(ctx, cc)
		if rep != nil {
			r.Objects += rep.Objects
			r.DeleteMarkers += rep.DeleteMarkers
			r.Uploads += rep.Uploads
		}
		if err != nil {
			return "objects", err
		}
	}
	return "", nil
}

// settledLeftovers is leftovers for verifying a deletion: while only vectors are left,
// it re-reads the vector index, with backoff, for up to the settle period (an
// eventually consistent index shows deleted vectors for a while), and counts the extra
// reads in r. It never reports empty before the index does.
func (a *Admin) settledLeftovers(ctx context.Context, cc clone.CloneContext, r *OffboardReceipt) (string, error) {
	deadline := time.Now().Add(a.settle)
	wait := 5 * time.Millisecond
	for {
		left, onlyVectors, err := a.describeLeftovers(ctx, cc)
		if err != nil || left == "" || !onlyVectors || !time.Now().Add(wait).Before(deadline) {
			if left != "" && onlyVectors && r.VectorLagPolls > 0 {
				left += fmt.Sprintf("(still listed after %d re-reads; the index may be lagging: call again) ", r.VectorLagPolls)
			}
			return left, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
		r.VectorLagPolls++
	}
}

// leftovers counts what the clone still stores and describes it ("" if nothing).
func (a *Admin) leftovers(ctx context.Context, cc clone.CloneContext) (string, error) {
	left, _, err := a.describeLeftovers(ctx, cc)
	return left, err
}

// describeLeftovers is leftovers, also reporting whether only vectors are left.
func (a *Admin) describeLeftovers(ctx context.Context, cc clone.CloneContext) (left string, onlyVectors bool, err error) {
	inv, err := a.count(ctx, cc, true)
	if err != nil {
		return "", false, err
	}
	for t, n := range inv.Rows {
		if n > 0 {
			left += fmt.Sprintf("%d rows in %s; ", n, t)
		}
	}
	onlyVectors = inv.Vectors > 0 && left == ""
	if inv.Vectors > 0 {
		left += fmt.Sprintf("%d vectors; ", inv.Vectors)
	}
	if inv.Objects > 0 {
		left += fmt.Sprintf("%d objects; ", inv.Objects)
		onlyVectors = false
	}
	return left, onlyVectors, nil
}

// OffboardTenant offboards tenant tenantID and every clone of it, for p, an owner or
// admin of the tenant, for reason. The tenant is suspended and all its clones are
// blocked (offboarding) at once, in one transaction; then each clone is offboarded as
// by [Admin.OffboardClone] (one drain period for all), and finally the tenant becomes
// offboarded. A failure leaves the tenant suspended and the remaining clones blocked;
// calling OffboardTenant again resumes. It returns the receipts of the clones it
// offboarded in this call.
func (a *Admin) OffboardTenant(ctx context.Context, p clone.Principal, tenantID uuid.UUID, reason string) ([]*OffboardReceipt, error) {
	const op = "tenant.Admin.OffboardTenant"
	if _, err := a.authorize(ctx, op, p, tenantID, uuid.Nil); err != nil {
		return nil, err
	}
	if err := validateReason(op, reason); err != nil {
		return nil, a.done(ctx, p, op, tenantID, uuid.Nil, err, nil)
	}
	var clones []Clone
	var tenantStatus Status
	err := a.s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		lock := ""
		if a.s.dialect == clonesql.Postgres {
			lock = " FOR UPDATE"
		}
		if err := tx.GetContext(ctx, &tenantStatus, tx.Rebind(`SELECT status FROM tenants WHERE id = ?`+lock), tenantID); err != nil {
			return classify(op, err)
		}
		if tenantStatus == StatusOffboarded {
			return nil
		}
		t := a.clock()
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE tenants SET status = ?, updated_at = ? WHERE id = ?`), StatusSuspended, t, tenantID); err != nil {
			return err
		}
		if err := tx.SelectContext(ctx, &clones, tx.Rebind(`SELECT * FROM clones WHERE tenant_id = ? AND status <> ? ORDER BY created_at, id`+lock), tenantID, StatusOffboarded); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE clones SET status = ?, updated_at = ? WHERE tenant_id = ? AND status IN (?, ?)`),
			StatusOffboarding, t, tenantID, StatusActive, StatusSuspended)
		return err
	})
	if err != nil {
		return nil, a.done(ctx, p, op, tenantID, uuid.Nil, err, nil)
	}
	if tenantStatus == StatusOffboarded {
		return nil, a.done(ctx, p, op, tenantID, uuid.Nil, nil, map[string]string{"step": "already-offboarded"})
	}
	a.s.invalidateTenant(tenantID)
	if err := a.record(ctx, p, op, tenantID, uuid.Nil, audit.Allowed, reason, map[string]string{"step": "blocked", "clones": strconv.Itoa(len(clones))}); err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "offboarding could not be audited; the tenant stays blocked, call again to resume")
	}
	a.wait(ctx)
	var receipts []*OffboardReceipt
	for _, c := range clones {
		r := &OffboardReceipt{TenantID: tenantID, CloneID: c.ID, Rows: map[string]int64{}, Resumed: c.Status == StatusOffboarding}
		if err := a.finishClone(ctx, p, "tenant.Admin.OffboardClone", reason, r); err != nil {
			a.emit(ctx, p, op, tenantID, uuid.Nil, audit.Failed, errs.KindOf(err).String(), map[string]string{"step": "clones", "failed_clone_id": c.ID.String()})
			return receipts, err
		}
		receipts = append(receipts, r)
	}
	err = a.s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE tenants SET status = ?, updated_at = ? WHERE id = ?`), StatusOffboarded, a.clock(), tenantID)
		return err
	})
	if err == nil {
		a.s.invalidateTenant(tenantID)
	}
	return receipts, a.done(ctx, p, op, tenantID, uuid.Nil, err, map[string]string{"step": "offboarded", "clones": strconv.Itoa(len(receipts))})
}

// objectsOf counts the clone's current objects and their bytes, page by page, from
// the listing (no content is read).
func (a *Admin) objectsOf(ctx context.Context, cc clone.CloneContext) (n int, bytes int64, err error) {
	opts := &objectstore.ListOptions{PageSize: 1000}
	for {
		page, err := a.objects.List(ctx, cc, opts)
		if err != nil {
			return 0, 0, err
		}
		for _, o := range page.Objects {
			n++
			bytes += o.Size
		}
		if page.NextPageToken == "" {
			return n, bytes, nil
		}
		opts.PageToken = page.NextPageToken
	}
}
