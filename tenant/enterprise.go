package tenant

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// TenantSpec describes a tenant to create with [Store.CreateTenant].
type TenantSpec struct {
	Name         string
	Plan         Plan   // PlanEnterprise for multi-clone tenants
	CloneLimit   int    // 0 means 1 for solo, 10 for enterprise
	OwnerSubject string // becomes the tenant's first member, with RoleOwner
}

// CreateTenant creates a tenant and its owner membership (no clone yet; add clones with
// [Store.CreateClone]). Use it for enterprise tenants; solo tenants are created by
// [Store.ProvisionSolo] on first sign-in.
func (s *Store) CreateTenant(ctx context.Context, spec TenantSpec) (Tenant, error) {
	const op = "tenant.CreateTenant"
	if err := ValidateSubject(spec.OwnerSubject); err != nil {
		return Tenant{}, err
	}
	if spec.Plan != PlanSolo && spec.Plan != PlanEnterprise {
		return Tenant{}, errs.New(errs.InvalidInput, op, "unknown plan %q", spec.Plan)
	}
	if spec.CloneLimit < 0 || spec.Plan == PlanSolo && spec.CloneLimit > 1 {
		return Tenant{}, errs.New(errs.InvalidInput, op, "clone limit %d invalid for plan %s", spec.CloneLimit, spec.Plan)
	}
	if spec.CloneLimit == 0 {
		spec.CloneLimit = 1
		if spec.Plan == PlanEnterprise {
			spec.CloneLimit = 10
		}
	}
	if err := validateName(op, spec.Name); err != nil {
		return Tenant{}, err
	}
	t := Tenant{ID: clone.NewID(), Name: spec.Name, Plan: spec.Plan, CloneLimit: spec.CloneLimit, Status: StatusActive, CreatedAt: now()}
	t.UpdatedAt = t.CreatedAt
	err := s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		if _, err := tx.NamedExecContext(ctx, `
			INSERT INTO tenants (id, name, plan, clone_limit, status, created_at, updated_at)
			VALUES (:id, :name, :plan, :clone_limit, :status, :created_at, :updated_at)`, t); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO tenant_members (tenant_id, subject, role, created_at) VALUES (?, ?, ?, ?)`),
			t.ID, spec.OwnerSubject, RoleOwner, t.CreatedAt)
		return err
	})
	return t, err
}

// CloneSpec describes a clone to create with [Store.CreateClone].
type CloneSpec struct {
	Name         string
	OwnerSubject string // the person the clone is a twin of; must be a member of the tenant
}

// CreateClone creates a clone in tenant tenantID, refusing with clone.ErrConflict when
// the tenant is at its clone limit and with clone.ErrSuspended when it is not active.
// The check and the insert run in one transaction that locks the tenant row, so
// concurrent calls cannot exceed the limit.
func (s *Store) CreateClone(ctx context.Context, tenantID uuid.UUID, spec CloneSpec) (Clone, error) {
	const op = "tenant.CreateClone"
	if err := clone.ValidateID(tenantID); err != nil {
		return Clone{}, err
	}
	if err := ValidateSubject(spec.OwnerSubject); err != nil {
		return Clone{}, err
	}
	if err := validateName(op, spec.Name); err != nil {
		return Clone{}, err
	}
	c := Clone{TenantID: tenantID, ID: clone.NewID(), Name: spec.Name, OwnerSubject: spec.OwnerSubject, Status: StatusActive, CreatedAt: now()}
	c.UpdatedAt = c.CreatedAt
	err := s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		lock := ""
		if s.dialect == clonesql.Postgres {
			lock = " FOR UPDATE" // SQLite transactions here are BEGIN IMMEDIATE: already serialized
		}
		var t Tenant
		if err := tx.GetContext(ctx, &t, tx.Rebind(`SELECT * FROM tenants WHERE id = ?`+lock), tenantID); err != nil {
			return clonesql.ClassifyError(op, err)
		}
		if t.Status != StatusActive {
			return errs.New(errs.Suspended, op, "tenant is %s", t.Status)
		}
		var n int
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT count(*) FROM clones WHERE tenant_id = ? AND status <> 'offboarded'`), tenantID); err != nil {
			return err
		}
		if n >= t.CloneLimit {
			return errs.New(errs.Conflict, op, "tenant is at its clone limit (%d)", t.CloneLimit)
		}
		var member int
		if err := tx.GetContext(ctx, &member, tx.Rebind(`SELECT count(*) FROM tenant_members WHERE tenant_id = ? AND subject = ?`), tenantID, spec.OwnerSubject); err != nil {
			return err
		}
		if member == 0 {
			return errs.New(errs.InvalidInput, op, "clone owner is not a member of the tenant")
		}
		_, err := tx.NamedExecContext(ctx, `
			INSERT INTO clones (tenant_id, id, name, owner_subject, status, created_at, updated_at)
			VALUES (:tenant_id, :id, :name, :owner_subject, :status, :created_at, :updated_at)`, c)
		return err
	})
	return c, err
}

// Tenant returns tenant id, or an error of kind clone.ErrNotFound.
func (s *Store) Tenant(ctx context.Context, id uuid.UUID) (Tenant, error) {
	var t Tenant
	err := s.db.GetContext(ctx, &t, s.db.Rebind(`SELECT * FROM tenants WHERE id = ?`), id)
	return t, clonesql.ClassifyError("tenant.Tenant", err)
}

// Clone returns clone cloneID of tenant tenantID, or an error of kind clone.ErrNotFound
// (also when the clone exists in another tenant).
func (s *Store) Clone(ctx context.Context, tenantID, cloneID uuid.UUID) (Clone, error) {
	var c Clone
	err := s.db.GetContext(ctx, &c, s.db.Rebind(`SELECT * FROM clones WHERE tenant_id = ? AND id = ?`), tenantID, cloneID)
	return c, clonesql.ClassifyError("tenant.Clone", err)
}

// Clones lists the clones of tenant tenantID, oldest first.
func (s *Store) Clones(ctx context.Context, tenantID uuid.UUID) ([]Clone, error) {
	var cs []Clone
	err := s.db.SelectContext(ctx, &cs, s.db.Rebind(`SELECT * FROM clones WHERE tenant_id = ? ORDER BY created_at, id`), tenantID)
	return cs, clonesql.ClassifyError("tenant.Clones", err)
}

// MaxNameLen is the longest tenant or clone name accepted, in bytes.
const MaxNameLen = 200

func validateName(op, name string) error {
	if len(name) > MaxNameLen {
		return errs.New(errs.InvalidInput, op, "name longer than %d bytes", MaxNameLen)
	}
	if !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return errs.New(errs.InvalidInput, op, "name must be valid UTF-8 without control characters")
	}
	return nil
}
