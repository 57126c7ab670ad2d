package tenant

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Guard answers the vector and object stores' hooks from the tenant store, so that
// only provisioned, active clones are usable and an offboarded clone's namespace and
// prefix can never be written again (the tombstone):
//
//	g := store.Guard()
//	bucket, _ := fileobject.OpenBucket(dir, &fileobject.Options{Bucket: &objectstore.Options{CheckClone: g.CheckClone}})
//	index, _ := memvector.Open(dim, &memvector.Options{Index: &vectorstore.Options{CheckWritable: g.CheckWritable}})
//
// Each check costs one indexed read of the clone and its tenant (no cache, so a
// suspension or an offboarding applies to the very next call in every process).
type Guard struct{ s *Store }

// Guard returns a Guard on s.
func (s *Store) Guard() *Guard { return &Guard{s: s} }

// adminUse marks a context as carrying an Admin's own work on one clone (counting it,
// or deleting it while it is offboarded). Only this package can make one.
type adminUse struct {
	tenantID, cloneID uuid.UUID
	purpose           string // purposeInventory or purposeOffboard
}

type adminUseKey struct{}

const (
	purposeInventory = "inventory"
	purposeOffboard  = "offboard"
)

func withAdminUse(ctx context.Context, tenantID, cloneID uuid.UUID, purpose string) context.Context {
	return context.WithValue(ctx, adminUseKey{}, adminUse{tenantID, cloneID, purpose})
}

func adminUseOf(ctx context.Context, cc clone.CloneContext) (string, bool) {
	u, ok := ctx.Value(adminUseKey{}).(adminUse)
	if !ok || u.tenantID != cc.TenantID() || u.cloneID != cc.CloneID() {
		return "", false
	}
	return u.purpose, true
}

// readOnlyOps are the object store operations that only read.
var readOnlyOps = map[string]bool{
	"objectstore.Get": true, "objectstore.Head": true, "objectstore.List": true, "objectstore.ReadAll": true,
}

// CheckClone is an objectstore.Options.CheckClone hook. It refuses
//
//   - a clone that is not provisioned: clone.ErrNotFound;
//   - a suspended clone or tenant: clone.ErrSuspended;
//   - an offboarding or offboarded clone (or tenant): clone.ErrSuspended, for every
//     operation, except the offboarding's own listing and deletion;
//   - any operation but Get, Head, List and ReadAll with a break-glass context
//     (clone.ErrForbidden).
func (g *Guard) CheckClone(ctx context.Context, cc clone.CloneContext, op string) error {
	const gop = "tenant.Guard.CheckClone"
	if purpose, ok := adminUseOf(ctx, cc); ok {
		switch {
		case purpose == purposeInventory && op == "objectstore.List",
			purpose == purposeOffboard && (op == "objectstore.List" || op == "objectstore.DeleteClone"):
			return g.exists(ctx, gop, cc)
		}
	}
	if IsBreakGlass(cc) && !readOnlyOps[op] {
		return errs.New(errs.Forbidden, gop, "break-glass access is read-only")
	}
	return g.usable(ctx, gop, cc)
}

// CheckWritable is a vectorstore.Options.CheckWritable hook: it refuses writes to a
// clone that is not provisioned (clone.ErrNotFound), suspended, offboarding or
// offboarded (clone.ErrSuspended), and every write made with a break-glass context
// (clone.ErrForbidden). (Offboarding empties a clone's namespace with
// vectorstore.Index.DeleteAll, which does not consult the hook.)
func (g *Guard) CheckWritable(ctx context.Context, cc clone.CloneContext) error {
	const gop = "tenant.Guard.CheckWritable"
	if IsBreakGlass(cc) {
		return errs.New(errs.Forbidden, gop, "break-glass access is read-only")
	}
	return g.usable(ctx, gop, cc)
}

func (g *Guard) statuses(ctx context.Context, op string, cc clone.CloneContext) (cloneStatus, tenantStatus Status, err error) {
	if err := cc.Validate(op); err != nil {
		return "", "", err
	}
	var row struct {
		C Status `db:"c"`
		T Status `db:"t"`
	}
	err = g.s.db.GetContext(ctx, &row, g.s.db.Rebind(`
		SELECT c.status AS c, t.status AS t FROM clones c JOIN tenants t ON t.id = c.tenant_id
		WHERE c.tenant_id = ? AND c.id = ?`), cc.TenantID(), cc.CloneID())
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", errs.New(errs.NotFound, op, "clone not provisioned")
	}
	if err != nil {
		return "", "", classify(op, err)
	}
	return row.C, row.T, nil
}

func (g *Guard) exists(ctx context.Context, op string, cc clone.CloneContext) error {
	_, _, err := g.statuses(ctx, op, cc)
	return err
}

func (g *Guard) usable(ctx context.Context, op string, cc clone.CloneContext) error {
	c, t, err := g.statuses(ctx, op, cc)
	if err != nil {
		return err
	}
	if c != StatusActive || t != StatusActive {
		if IsBreakGlass(cc) && (c == StatusActive || c == StatusSuspended) && (t == StatusActive || t == StatusSuspended) {
			return nil // reading a suspended clone is what break-glass is often for
		}
		return errs.New(errs.Suspended, op, "clone is %s (tenant %s)", c, t)
	}
	return nil
}
