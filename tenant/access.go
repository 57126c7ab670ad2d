package tenant

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Access to a clone
//
// A subject may act as a clone only while it is a member of the clone's tenant, and then
// only if it is the clone's owner or has been granted that clone with
// [Store.GrantClone]; a tenant role alone (even owner or admin) opens no clone. Removing a member ([Store.RemoveMember]) ends all
// of its access, grants included. [Store.ResolveClone] applies these rules; the HTTP
// middleware (package clone/clonehttp) calls it for every explicit clone selection.

// ValidateRole returns an error of kind clone.ErrInvalidInput unless r is RoleOwner,
// RoleAdmin or RoleMember.
func ValidateRole(r Role) error {
	switch r {
	case RoleOwner, RoleAdmin, RoleMember:
		return nil
	}
	return errs.New(errs.InvalidInput, "tenant.ValidateRole", "unknown role %q", truncate(string(r), 40))
}

// AddMember makes subject a member of tenant tenantID with role. It fails with
// clone.ErrNotFound if the tenant does not exist, clone.ErrSuspended if it is not
// active, and clone.ErrConflict if subject is already a member (roles are not changed
// implicitly).
func (s *Store) AddMember(ctx context.Context, tenantID uuid.UUID, subject string, role Role) error {
	const op = "tenant.AddMember"
	if err := clone.ValidateID(tenantID); err != nil {
		return err
	}
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	if err := ValidateRole(role); err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		if err := activeTenant(ctx, tx, op, tenantID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO tenant_members (tenant_id, subject, role, created_at) VALUES (?, ?, ?, ?)`),
			tenantID, subject, role, now())
		if err != nil {
			if errs.KindOf(clonesql.ClassifyError(op, err)) == errs.Conflict {
				return errs.Wrap(errs.Conflict, op, err, "subject is already a member of the tenant")
			}
			return err
		}
		return nil
	})
}

// RemoveMember removes subject from tenant tenantID together with all of its clone
// grants in that tenant. Removing a subject that is not a member is not an error. The
// last owner of a tenant cannot be removed (clone.ErrConflict).
//
// Resolutions cached by the HTTP middleware are invalidated when the Store has a cache
// (StoreOptions.Cache): the next request of the removed member is refused.
func (s *Store) RemoveMember(ctx context.Context, tenantID uuid.UUID, subject string) error {
	const op = "tenant.RemoveMember"
	if err := clone.ValidateID(tenantID); err != nil {
		return err
	}
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	err := s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		lock := ""
		if s.dialect == clonesql.Postgres {
			lock = " FOR UPDATE"
		}
		// Lock the tenant so two concurrent removals cannot each see "another owner left".
		var status Status
		if err := tx.GetContext(ctx, &status, tx.Rebind(`SELECT status FROM tenants WHERE id = ?`+lock), tenantID); err != nil {
			return clonesql.ClassifyError(op, err)
		}
		var role Role
		err := tx.GetContext(ctx, &role, tx.Rebind(`SELECT role FROM tenant_members WHERE tenant_id = ? AND subject = ?`), tenantID, subject)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if role == RoleOwner {
			var owners int
			if err := tx.GetContext(ctx, &owners, tx.Rebind(`SELECT count(*) FROM tenant_members WHERE tenant_id = ? AND role = 'owner'`), tenantID); err != nil {
				return err
			}
			if owners <= 1 {
				return errs.New(errs.Conflict, op, "cannot remove the last owner of the tenant")
			}
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM clone_grants WHERE tenant_id = ? AND subject = ?`), tenantID, subject); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM tenant_members WHERE tenant_id = ? AND subject = ?`), tenantID, subject)
		return err
	})
	if err == nil {
		s.invalidateTenant(tenantID)
	}
	return err
}

// MemberRole returns subject's role in tenant tenantID, or an error of kind
// clone.ErrNotFound if it is not a member.
func (s *Store) MemberRole(ctx context.Context, tenantID uuid.UUID, subject string) (Role, error) {
	const op = "tenant.MemberRole"
	if err := clone.ValidateID(tenantID); err != nil {
		return "", err
	}
	if err := ValidateSubject(subject); err != nil {
		return "", err
	}
	var role Role
	err := s.db.GetContext(ctx, &role, s.db.Rebind(`SELECT role FROM tenant_members WHERE tenant_id = ? AND subject = ?`), tenantID, subject)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errs.New(errs.NotFound, op, "not a member of the tenant")
	}
	return role, clonesql.ClassifyError(op, err)
}

// GrantClone lets subject, a member of tenant tenantID, act as clone cloneID of that
// tenant. Granting twice is not an error. It fails with clone.ErrNotFound if the clone
// is not a clone of that tenant and with clone.ErrInvalidInput if subject is not a member.
func (s *Store) GrantClone(ctx context.Context, tenantID, cloneID uuid.UUID, subject string) error {
	const op = "tenant.GrantClone"
	if err := clone.ValidateID(tenantID); err != nil {
		return err
	}
	if err := clone.ValidateID(cloneID); err != nil {
		return err
	}
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		var n int
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT count(*) FROM clones WHERE tenant_id = ? AND id = ?`), tenantID, cloneID); err != nil {
			return err
		}
		if n == 0 {
			return errs.New(errs.NotFound, op, "no such clone in the tenant")
		}
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT count(*) FROM tenant_members WHERE tenant_id = ? AND subject = ?`), tenantID, subject); err != nil {
			return err
		}
		if n == 0 {
			return errs.New(errs.InvalidInput, op, "subject is not a member of the tenant")
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`
			INSERT INTO clone_grants (tenant_id, clone_id, subject, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id, clone_id, subject) DO NOTHING`),
			tenantID, cloneID, subject, now())
		return err
	})
}

// RevokeClone withdraws a grant made by [Store.GrantClone]. Revoking a grant that does
// not exist is not an error. It does not change the subject's membership or role; the
// clone's owner keeps access.
//
// Resolutions cached by the HTTP middleware are invalidated when the Store has a cache
// (StoreOptions.Cache): the subject's next request to the clone is refused.
func (s *Store) RevokeClone(ctx context.Context, tenantID, cloneID uuid.UUID, subject string) error {
	const op = "tenant.RevokeClone"
	if err := clone.ValidateID(tenantID); err != nil {
		return err
	}
	if err := clone.ValidateID(cloneID); err != nil {
		return err
	}
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM clone_grants WHERE tenant_id = ? AND clone_id = ? AND subject = ?`),
		tenantID, cloneID, subject)
	if err != nil {
		return clonesql.ClassifyError(op, err)
	}
	s.invalidateClone(tenantID, cloneID)
	return nil
}

// ResolveClone returns the CloneContext for subject acting as clone cloneID of tenant
// tenantID, whose principal carries the subject and its role in the tenant. It is the
// authorization check behind an explicit clone selection, and it answers so that clone
// IDs of other tenants cannot be probed:
//
//   - the subject is a member of the tenant and the clone's owner or granted the clone
//     ([Store.GrantClone]): the context, or clone.ErrSuspended if the tenant or the
//     clone is not active;
//   - the subject is a member of the tenant but none of the above: clone.ErrForbidden;
//   - anything else (the tenant or clone does not exist, the clone belongs to another
//     tenant, the subject is not a member): clone.ErrNotFound.
//
// Being a tenant owner or admin grants no access to a clone's content: administrators
// manage clones through an [Admin], read content through an audited break-glass grant
// ([Admin.BreakGlass]), or grant themselves the clone (an explicit, audited act).
//
// Bad arguments fail with clone.ErrInvalidID or clone.ErrInvalidInput before any query.
// It makes one database round trip.
func (s *Store) ResolveClone(ctx context.Context, subject string, tenantID, cloneID uuid.UUID) (clone.CloneContext, error) {
	const op = "tenant.ResolveClone"
	if err := ValidateSubject(subject); err != nil {
		return clone.CloneContext{}, err
	}
	if err := clone.ValidateID(tenantID); err != nil {
		return clone.CloneContext{}, err
	}
	if err := clone.ValidateID(cloneID); err != nil {
		return clone.CloneContext{}, err
	}
	var row struct {
		TenantStatus Status         `db:"tenant_status"`
		CloneStatus  Status         `db:"clone_status"`
		OwnerSubject string         `db:"owner_subject"`
		Role         sql.NullString `db:"role"`
		Granted      int            `db:"granted"`
	}
	err := s.db.GetContext(ctx, &row, s.db.Rebind(`
		SELECT t.status AS tenant_status, c.status AS clone_status, c.owner_subject,
		       m.role,
		       (SELECT count(*) FROM clone_grants g
		         WHERE g.tenant_id = c.tenant_id AND g.clone_id = c.id AND g.subject = ?) AS granted
		FROM clones c
		JOIN tenants t ON t.id = c.tenant_id
		LEFT JOIN tenant_members m ON m.tenant_id = c.tenant_id AND m.subject = ?
		WHERE c.tenant_id = ? AND c.id = ?`), subject, subject, tenantID, cloneID)
	if errors.Is(err, sql.ErrNoRows) {
		return clone.CloneContext{}, errs.New(errs.NotFound, op, "clone not found")
	}
	if err != nil {
		return clone.CloneContext{}, clonesql.ClassifyError(op, err)
	}
	if !row.Role.Valid {
		// Not a member: the clone is, from this subject's side, another tenant's.
		return clone.CloneContext{}, errs.New(errs.NotFound, op, "clone not found")
	}
	role := Role(row.Role.String)
	allowed := row.OwnerSubject == subject || row.Granted > 0
	if !allowed {
		return clone.CloneContext{}, errs.New(errs.Forbidden, op, "clone not granted to the subject")
	}
	if row.TenantStatus != StatusActive || row.CloneStatus != StatusActive {
		return clone.CloneContext{}, errs.New(errs.Suspended, op, "clone is %s (tenant %s)", row.CloneStatus, row.TenantStatus)
	}
	return clone.New(tenantID, cloneID, clone.Principal{Subject: subject, Roles: []string{string(role)}})
}

// activeTenant returns nil if tenant id exists and is active, clone.ErrNotFound if it
// does not exist and clone.ErrSuspended otherwise.
func activeTenant(ctx context.Context, tx *sqlx.Tx, op string, id uuid.UUID) error {
	var status Status
	err := tx.GetContext(ctx, &status, tx.Rebind(`SELECT status FROM tenants WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return errs.New(errs.NotFound, op, "tenant not found")
	}
	if err != nil {
		return err
	}
	if status != StatusActive {
		return errs.New(errs.Suspended, op, "tenant is %s", status)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
