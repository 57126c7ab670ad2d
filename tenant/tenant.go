// Package tenant manages tenants, their clones and members: the control plane that
// turns an authenticated subject into a [clone.CloneContext].
//
// Today every solopreneur gets a tenant of the solo plan with exactly one clone, created
// on first sign-in by [Store.ProvisionSolo]. Enterprise tenants hold several clones
// ([Store.CreateTenant], [Store.CreateClone]) up to their clone limit; isolation stays
// per clone inside a tenant.
//
// A Store works on PostgreSQL and on SQLite, on the schema of package migrate.
package tenant

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Plan is a tenant's plan.
type Plan string

// Plans.
const (
	PlanSolo       Plan = "solo"       // one clone, created on first sign-in
	PlanEnterprise Plan = "enterprise" // several clones up to the tenant's clone limit
)

// Role is a member's role in a tenant.
type Role string

// Roles.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Status is the lifecycle state of a tenant or clone.
type Status string

// Statuses. Tenants are active, suspended or offboarded; clones may also be offboarding.
const (
	StatusActive      Status = "active"
	StatusSuspended   Status = "suspended"
	StatusOffboarding Status = "offboarding"
	StatusOffboarded  Status = "offboarded"
)

// Tenant is a customer: a solopreneur or an enterprise.
type Tenant struct {
	ID            uuid.UUID `db:"id"`
	Name          string    `db:"name"`
	Plan          Plan      `db:"plan"`
	CloneLimit    int       `db:"clone_limit"`
	Status        Status    `db:"status"`
	SignupSubject *string   `db:"signup_subject"` // set on solo tenants created by first sign-in
	CreatedAt     time.Time `db:"created_at"`
	UpdatedAt     time.Time `db:"updated_at"`
}

// Clone is one digital clone of a tenant.
type Clone struct {
	TenantID     uuid.UUID `db:"tenant_id"`
	ID           uuid.UUID `db:"id"`
	Name         string    `db:"name"`
	OwnerSubject string    `db:"owner_subject"`
	Status       Status    `db:"status"`
	UserID       *string   `db:"user_id"` // legacy user this clone was migrated from, if any
	CreatedAt    time.Time `db:"created_at"`
	UpdatedAt    time.Time `db:"updated_at"`
}

// MaxSubjectLen is the longest subject accepted, in bytes.
const MaxSubjectLen = 255

// ValidateSubject returns an error of kind clone.ErrInvalidInput unless s is a usable
// subject: 1 to MaxSubjectLen bytes of valid UTF-8 without control characters.
func ValidateSubject(s string) error {
	const op = "tenant.ValidateSubject"
	switch {
	case s == "":
		return errs.New(errs.InvalidInput, op, "empty subject")
	case len(s) > MaxSubjectLen:
		return errs.New(errs.InvalidInput, op, "subject longer than %d bytes", MaxSubjectLen)
	case !utf8.ValidString(s):
		return errs.New(errs.InvalidInput, op, "subject is not valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errs.New(errs.InvalidInput, op, "subject contains control characters")
	}
	return nil
}

// StoreOptions configure [NewStore]. A nil *StoreOptions means the defaults.
type StoreOptions struct {
	// Cache is the cache of resolutions the HTTP middleware reads (a
	// *clonehttp.Cache, the one given to clonehttp.Options.Cache). Every change made
	// through the Store, or through an [Admin] over it, that takes access away —
	// [Store.RevokeClone], [Store.RemoveMember], suspensions and offboardings —
	// invalidates it, so the next request is refused at once instead of when its entry
	// expires. Default: none (a middleware with a cache the Store does not know keeps
	// such access until the cache's TTL).
	Cache Invalidator
}

// Store reads and writes tenants, clones and members.
type Store struct {
	raw     *sql.DB
	db      *sqlx.DB // raw with the dialect's placeholder style
	dialect clonesql.Dialect
	cache   Invalidator // nil: no cache to invalidate
}

// NewStore returns a Store on db (PostgreSQL through pgx's database/sql driver or
// lib/pq, or SQLite through modernc.org/sqlite), migrated with package migrate.
func NewStore(db *sql.DB, opts *StoreOptions) (*Store, error) {
	if db == nil {
		return nil, errs.New(errs.InvalidInput, "tenant.NewStore", "nil *sql.DB")
	}
	d, err := clonesql.DialectOf(db)
	if err != nil {
		return nil, err
	}
	bind := "postgres" // sqlx's name for '$1' placeholders
	if d == clonesql.SQLite {
		bind = "sqlite3" // and for '?'
	}
	s := &Store{raw: db, db: sqlx.NewDb(db, bind), dialect: d}
	if opts != nil {
		s.cache = opts.Cache
	}
	return s, nil
}

// invalidateClone drops the cached resolutions to one clone, if there is a cache.
func (s *Store) invalidateClone(tenantID, cloneID uuid.UUID) {
	if s.cache != nil {
		s.cache.InvalidateClone(tenantID, cloneID)
	}
}

// invalidateTenant drops the cached resolutions to every clone of a tenant, if there
// is a cache.
func (s *Store) invalidateTenant(tenantID uuid.UUID) {
	if s.cache != nil {
		s.cache.InvalidateTenant(tenantID)
	}
}

// DB returns the database the Store uses.
func (s *Store) DB() *sql.DB { return s.raw }

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// ProvisionSolo returns the CloneContext of subject's solo clone, creating its tenant
// (plan solo, clone limit 1), its owner membership and its clone in one transaction on
// the subject's first call; created reports whether this call created them. It is
// idempotent and safe under concurrency: any number of simultaneous first calls for one
// subject, from any number of processes, create exactly one tenant and one clone and
// all return the same CloneContext.
//
// A suspended or offboarded tenant or clone yields an error of kind clone.ErrSuspended
// (and no context).
func (s *Store) ProvisionSolo(ctx context.Context, subject string) (cc clone.CloneContext, created bool, err error) {
	const op = "tenant.ProvisionSolo"
	if err := ValidateSubject(subject); err != nil {
		return clone.CloneContext{}, false, err
	}
	// Fast path: one indexed read for every sign-in after the first.
	if cc, err := s.soloOf(ctx, subject); !errors.Is(err, clone.ErrNotFound) {
		return cc, false, err
	}
	tenantID, cloneID, t := clone.NewID(), clone.NewID(), now()
	err = s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`
			INSERT INTO tenants (id, name, plan, clone_limit, status, signup_subject, created_at, updated_at)
			VALUES (?, ?, ?, 1, ?, ?, ?, ?)
			ON CONFLICT (signup_subject) DO NOTHING`),
			tenantID, subject, PlanSolo, StatusActive, subject, t, t)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return errAlreadyProvisioned // another call won the race; read its result below
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`
			INSERT INTO tenant_members (tenant_id, subject, role, created_at) VALUES (?, ?, ?, ?)`),
			tenantID, subject, RoleOwner, t); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`
			INSERT INTO clones (tenant_id, id, name, owner_subject, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`),
			tenantID, cloneID, subject, subject, StatusActive, t, t)
		return err
	})
	if errors.Is(err, errAlreadyProvisioned) {
		cc, err := s.soloOf(ctx, subject)
		return cc, false, err
	}
	if err != nil {
		return clone.CloneContext{}, false, err
	}
	cc, err = clone.New(tenantID, cloneID, clone.Principal{Subject: subject, Roles: []string{string(RoleOwner)}})
	return cc, err == nil, err
}

var errAlreadyProvisioned = errors.New("already provisioned")

// soloOf returns the context of subject's solo clone, or ErrNotFound.
func (s *Store) soloOf(ctx context.Context, subject string) (clone.CloneContext, error) {
	const op = "tenant.ProvisionSolo"
	var row struct {
		TenantID     uuid.UUID `db:"tenant_id"`
		CloneID      uuid.UUID `db:"clone_id"`
		TenantStatus Status    `db:"tenant_status"`
		CloneStatus  Status    `db:"clone_status"`
	}
	err := s.db.GetContext(ctx, &row, s.db.Rebind(`
		SELECT t.id AS tenant_id, c.id AS clone_id, t.status AS tenant_status, c.status AS clone_status
		FROM tenants t JOIN clones c ON c.tenant_id = t.id
		WHERE t.signup_subject = ? AND t.plan = 'solo'
		ORDER BY c.created_at, c.id LIMIT 1`), subject)
	if errors.Is(err, sql.ErrNoRows) {
		return clone.CloneContext{}, errs.New(errs.NotFound, op, "no clone for subject")
	}
	if err != nil {
		return clone.CloneContext{}, errs.Wrap(errs.KindOf(clonesql.ClassifyError(op, err)), op, err, "look up subject")
	}
	if row.TenantStatus != StatusActive || row.CloneStatus != StatusActive {
		return clone.CloneContext{}, errs.New(errs.Suspended, op, "clone is %s (tenant %s)", row.CloneStatus, row.TenantStatus)
	}
	return clone.New(row.TenantID, row.CloneID, clone.Principal{Subject: subject, Roles: []string{string(RoleOwner)}})
}

// inTx runs fn in a transaction, committing if it returns nil. Database errors are
// classified: unique violations as Conflict, the rest as Unavailable.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return errs.Wrap(errs.KindOf(clonesql.ClassifyError(op, err)), op, err, "begin")
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		if errs.KindOf(err) != errs.Unknown || errors.Is(err, errAlreadyProvisioned) {
			return err
		}
		return clonesql.ClassifyError(op, err)
	}
	if err := tx.Commit(); err != nil {
		return clonesql.ClassifyError(op, err)
	}
	return nil
}
