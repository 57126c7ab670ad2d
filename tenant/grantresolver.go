package tenant

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// GrantResolver resolves HTTP clone selections (it implements clonehttp.Resolver) by
// explicit grants only: a subject may act as a clone if it is the clone's owner or
// was granted the clone ([Store.GrantClone], [Admin.GrantClone]), whatever its role.
// Unlike [Store.ResolveClone], which lets every owner and admin of a tenant act as any
// of its clones, it gives tenant administrators no implicit access to clones' content:
// they manage clones with an [Admin], read content through break-glass grants, or
// grant themselves a clone (an explicit, audited act). Everything else, including the
// answers that keep other tenants' IDs from being probed, is Store.ResolveClone's.
type GrantResolver struct{ s *Store }

// GrantResolver returns a GrantResolver on s.
func (s *Store) GrantResolver() *GrantResolver { return &GrantResolver{s: s} }

// ProvisionSolo is [Store.ProvisionSolo].
func (r *GrantResolver) ProvisionSolo(ctx context.Context, subject string) (clone.CloneContext, bool, error) {
	return r.s.ProvisionSolo(ctx, subject)
}

// ResolveClone is [Store.ResolveClone] except that owners and admins of the tenant are
// refused (clone.ErrForbidden) a clone they neither own nor were granted.
func (r *GrantResolver) ResolveClone(ctx context.Context, subject string, tenantID, cloneID uuid.UUID) (clone.CloneContext, error) {
	const op = "tenant.GrantResolver.ResolveClone"
	cc, err := r.s.ResolveClone(ctx, subject, tenantID, cloneID)
	if err != nil {
		return cc, err
	}
	if !cc.Principal().HasRole(string(RoleOwner)) && !cc.Principal().HasRole(string(RoleAdmin)) {
		return cc, nil // members got here through ownership or a grant already
	}
	var ok int
	err = r.s.db.GetContext(ctx, &ok, r.s.db.Rebind(`
		SELECT 1 FROM clones c WHERE c.tenant_id = ? AND c.id = ? AND (c.owner_subject = ?
		   OR EXISTS (SELECT 1 FROM clone_grants g WHERE g.tenant_id = c.tenant_id AND g.clone_id = c.id AND g.subject = ?))`),
		tenantID, cloneID, subject, subject)
	if errors.Is(err, sql.ErrNoRows) {
		return clone.CloneContext{}, errs.New(errs.Forbidden, op, "administrators need a grant or break-glass access to use a clone")
	}
	if err != nil {
		return clone.CloneContext{}, classify(op, err)
	}
	return cc, nil
}
