package tenant

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// Invalidator drops cached resolutions; *clonehttp.Cache implements it. A [Store]
// given one (StoreOptions.Cache) calls it after every change that must end access at
// once: a revoked grant, a removed member, a suspension, an offboarding.
type Invalidator interface {
	InvalidateClone(tenantID, cloneID uuid.UUID)
	InvalidateTenant(tenantID uuid.UUID)
}

// Break-glass grant lifetimes.
const (
	// DefaultMaxBreakGlass is the longest break-glass grant unless
	// AdminOptions.MaxBreakGlass says otherwise.
	DefaultMaxBreakGlass = 4 * time.Hour
	// HardMaxBreakGlass is the longest AdminOptions.MaxBreakGlass may allow.
	HardMaxBreakGlass = 24 * time.Hour
	// DefaultDrain is how long offboarding waits, after blocking a clone, for writes
	// that were already past the stores' checks to land before it deletes.
	DefaultDrain = 2 * time.Second
	// DefaultVectorSettle is how long offboarding waits for an eventually consistent
	// vector index to show a deleted namespace empty.
	DefaultVectorSettle = 2 * time.Minute
)

// RoleBreakGlass is the role carried, next to the admin's tenant role, by the
// principal of a CloneContext returned by [Admin.BreakGlass]. The stores' hooks of a
// [Guard] refuse every write made with such a context.
const RoleBreakGlass = "break-glass"

// AdminOptions configure [NewAdmin]. A nil *AdminOptions means the defaults.
type AdminOptions struct {
	// Audit receives one event per administrative call, allowed or refused, per
	// break-glass use and per offboarding step. Default: clonesql.AuditSink on the
	// store's database, which is what [Admin.AuditEvents] reads; a host that adds its
	// own sink should pass audit.Multi(clonesql.AuditSink(db), itsSink).
	Audit audit.Sink
	// Vectors is the vector index the tenant's clones use, counted by Inventory and
	// emptied by offboarding; nil if the host has none.
	Vectors *vectorstore.Index
	// Objects is the object bucket the tenant's clones use, counted by Inventory and
	// emptied by offboarding; nil if the host has none.
	Objects *objectstore.Bucket
	// Tables are the host's own clone-owned tables (with tenant_id and clone_id
	// columns), counted by Inventory and emptied by offboarding before the SDK's
	// tables, in the order given: list children before their parents.
	Tables []string
	// MaxBreakGlass caps the lifetime of a break-glass grant; 0 means
	// DefaultMaxBreakGlass. Values above HardMaxBreakGlass are refused by NewAdmin.
	MaxBreakGlass time.Duration
	// TwoPersonRule refuses break-glass grants an admin makes to itself: another owner
	// or admin of the tenant must grant them.
	TwoPersonRule bool
	// Drain is how long offboarding waits after blocking a clone before deleting
	// anything; 0 means DefaultDrain, a negative value means no wait. Set it to at least
	// the longest time a store write may take (its request timeout).
	Drain time.Duration
	// VectorSettle is how long offboarding keeps re-reading an eventually consistent
	// vector index (Pinecone) that still shows vectors it has deleted before it gives
	// up (the clone then stays offboarding; call again to resume); 0 means
	// DefaultVectorSettle, a negative value means no waiting.
	VectorSettle time.Duration
	// Now is the clock (default time.Now); for tests.
	Now func() time.Time
}

// Admin is the API a tenant's owners and admins manage their clones with: create,
// rename, suspend, resume and offboard clones, grant members clones, count what each
// clone stores ([Admin.Inventory]) and read and verify the tenant's audit log.
//
// Every method takes the acting principal and authorizes it against the tenant store
// on every call (the roles carried by the principal are ignored): an owner or admin of
// that tenant may act; a plain member is refused with clone.ErrForbidden; anyone else
// with clone.ErrNotFound, so tenant IDs cannot be probed. Every call, allowed, failed
// or refused, is written to the audit sink: in the tenant's chain for its members, in
// the chain of the nil tenant (with the target in the event's detail) for outsiders.
//
// No administrative method returns clone content. Reading a clone's content as an
// admin takes a break-glass grant ([Admin.GrantBreakGlass], [Admin.BreakGlass]).
//
// An Admin is safe for concurrent use.
type Admin struct {
	s       *Store
	sql     *clonesql.DB
	sink    audit.Sink
	vectors *vectorstore.Index
	objects *objectstore.Bucket
	tables  []string
	maxBG   time.Duration
	twoP    bool
	drain   time.Duration
	settle  time.Duration
	now     func() time.Time

	// failAt, if set (tests only), is called at each offboarding step and may fail it.
	failAt func(step string) error
}

// NewAdmin returns an Admin over s.
func NewAdmin(s *Store, opts *AdminOptions) (*Admin, error) {
	const op = "tenant.NewAdmin"
	if s == nil {
		return nil, errs.New(errs.InvalidInput, op, "nil store")
	}
	if opts == nil {
		opts = &AdminOptions{}
	}
	a := &Admin{s: s, sink: opts.Audit, vectors: opts.Vectors, objects: opts.Objects,
		maxBG: opts.MaxBreakGlass, twoP: opts.TwoPersonRule, drain: opts.Drain, settle: opts.VectorSettle, now: opts.Now}
	if a.sink == nil {
		a.sink = clonesql.AuditSink(s.raw)
	}
	if a.maxBG == 0 {
		a.maxBG = DefaultMaxBreakGlass
	}
	if a.maxBG < 0 || a.maxBG > HardMaxBreakGlass {
		return nil, errs.New(errs.InvalidInput, op, "MaxBreakGlass must be between 0 and %s", HardMaxBreakGlass)
	}
	if a.drain == 0 {
		a.drain = DefaultDrain
	}
	if a.settle == 0 {
		a.settle = DefaultVectorSettle
	}
	if a.now == nil {
		a.now = time.Now
	}
	for _, t := range opts.Tables {
		if !validTableName(t) {
			return nil, errs.New(errs.InvalidInput, op, "invalid table name %q", truncate(t, 40))
		}
	}
	sdk := records.Tables()
	slices.Reverse(sdk) // children before parents
	a.tables = append(slices.Clone(opts.Tables), sdk...)
	db, err := clonesql.New(s.raw, &clonesql.Options{Audit: a.sink})
	if err != nil {
		return nil, err
	}
	a.sql = db
	return a, nil
}

// validTableName accepts plain SQL identifiers only: the names are interpolated.
func validTableName(t string) bool {
	if t == "" || len(t) > 63 {
		return false
	}
	for i, r := range t {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func (a *Admin) clock() time.Time { return a.now().UTC().Truncate(time.Microsecond) }

// record writes one audit event for an administrative call by p in tenant tenantID on
// clone cloneID (uuid.Nil if none).
func (a *Admin) record(ctx context.Context, p clone.Principal, op string, tenantID, cloneID uuid.UUID, outcome audit.Outcome, reason string, detail map[string]string) error {
	return audit.Record(ctx, a.sink, audit.Event{
		Actor: p.Subject, Action: op, TenantID: tenantID, CloneID: cloneID,
		Outcome: outcome, Reason: reason, Detail: detail,
	})
}

// emit records an event whose call does not depend on it (a refusal, a failed step):
// a sink failure is logged with the whole event and counted (audit.Emit), and the
// call's outcome stands.
func (a *Admin) emit(ctx context.Context, p clone.Principal, op string, tenantID, cloneID uuid.UUID, outcome audit.Outcome, reason string, detail map[string]string) {
	audit.Emit(ctx, a.sink, audit.Event{
		Actor: p.Subject, Action: op, TenantID: tenantID, CloneID: cloneID,
		Outcome: outcome, Reason: reason, Detail: detail,
	})
}

// authorize checks that p is an owner or admin of tenant tenantID. A refusal is
// audited: for a member in the tenant's chain, for anyone else (whose claim to the
// tenant is unproven) with the target in the event's detail only.
func (a *Admin) authorize(ctx context.Context, op string, p clone.Principal, tenantID, cloneID uuid.UUID) (Role, error) {
	if err := ValidateSubject(p.Subject); err != nil {
		return "", err
	}
	if err := clone.ValidateID(tenantID); err != nil {
		return "", err
	}
	if cloneID != uuid.Nil {
		if err := clone.ValidateID(cloneID); err != nil {
			return "", err
		}
	}
	role, err := a.s.MemberRole(ctx, tenantID, p.Subject)
	if errors.Is(err, clone.ErrNotFound) {
		detail := map[string]string{"target_tenant_id": tenantID.String()}
		if cloneID != uuid.Nil {
			detail["target_clone_id"] = cloneID.String()
		}
		a.emit(ctx, p, op, uuid.Nil, uuid.Nil, audit.Denied, "not a member of the tenant", detail)
		return "", errs.New(errs.NotFound, op, "tenant not found")
	}
	if err != nil {
		return "", err
	}
	if role != RoleOwner && role != RoleAdmin {
		a.emit(ctx, p, op, tenantID, cloneID, audit.Denied, "requires the owner or admin role", map[string]string{"role": string(role)})
		return "", errs.New(errs.Forbidden, op, "requires the owner or admin role")
	}
	return role, nil
}

// done records the outcome of an authorized call and returns err (joined with the
// sink's error if recording failed).
func (a *Admin) done(ctx context.Context, p clone.Principal, op string, tenantID, cloneID uuid.UUID, err error, detail map[string]string) error {
	outcome, reason := audit.Allowed, ""
	if err != nil {
		outcome, reason = audit.Failed, errs.KindOf(err).String()
	}
	if rerr := a.record(ctx, p, op, tenantID, cloneID, outcome, reason, detail); rerr != nil {
		if err == nil {
			return errs.Wrap(errs.Unavailable, op, rerr, "the action was applied but could not be audited")
		}
		return errors.Join(err, rerr)
	}
	return err
}

// Clones lists the clones of tenant tenantID, for its owners and admins.
func (a *Admin) Clones(ctx context.Context, p clone.Principal, tenantID uuid.UUID) ([]Clone, error) {
	const op = "tenant.Admin.Clones"
	if _, err := a.authorize(ctx, op, p, tenantID, uuid.Nil); err != nil {
		return nil, err
	}
	cs, err := a.s.Clones(ctx, tenantID)
	return cs, a.done(ctx, p, op, tenantID, uuid.Nil, err, nil)
}

// CreateClone creates a clone in tenant tenantID (see [Store.CreateClone]).
func (a *Admin) CreateClone(ctx context.Context, p clone.Principal, tenantID uuid.UUID, spec CloneSpec) (Clone, error) {
	const op = "tenant.Admin.CreateClone"
	if _, err := a.authorize(ctx, op, p, tenantID, uuid.Nil); err != nil {
		return Clone{}, err
	}
	c, err := a.s.CreateClone(ctx, tenantID, spec)
	return c, a.done(ctx, p, op, tenantID, c.ID, err, map[string]string{"owner_subject": spec.OwnerSubject})
}

// RenameClone renames clone cloneID of tenant tenantID. Offboarded clones cannot be
// renamed (clone.ErrConflict).
func (a *Admin) RenameClone(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID, name string) error {
	const op = "tenant.Admin.RenameClone"
	if _, err := a.authorize(ctx, op, p, tenantID, cloneID); err != nil {
		return err
	}
	if err := validateName(op, name); err != nil {
		return a.done(ctx, p, op, tenantID, cloneID, err, nil)
	}
	err := a.setClone(ctx, op, tenantID, cloneID, []Status{StatusActive, StatusSuspended}, "name", name)
	return a.done(ctx, p, op, tenantID, cloneID, err, nil)
}

// SuspendClone suspends clone cloneID of tenant tenantID: it keeps its data, but no
// request resolves to it until [Admin.ResumeClone]. Cached resolutions are
// invalidated (StoreOptions.Cache). Suspending a suspended clone is not an error; an offboarding or
// offboarded clone fails with clone.ErrConflict.
func (a *Admin) SuspendClone(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID) error {
	const op = "tenant.Admin.SuspendClone"
	if _, err := a.authorize(ctx, op, p, tenantID, cloneID); err != nil {
		return err
	}
	err := a.setClone(ctx, op, tenantID, cloneID, []Status{StatusActive, StatusSuspended}, "status", string(StatusSuspended))
	if err == nil {
		a.s.invalidateClone(tenantID, cloneID)
	}
	return a.done(ctx, p, op, tenantID, cloneID, err, nil)
}

// ResumeClone makes a suspended clone active again. Resuming an active clone is not
// an error; an offboarding or offboarded clone fails with clone.ErrConflict.
func (a *Admin) ResumeClone(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID) error {
	const op = "tenant.Admin.ResumeClone"
	if _, err := a.authorize(ctx, op, p, tenantID, cloneID); err != nil {
		return err
	}
	err := a.setClone(ctx, op, tenantID, cloneID, []Status{StatusActive, StatusSuspended}, "status", string(StatusActive))
	return a.done(ctx, p, op, tenantID, cloneID, err, nil)
}

// GrantClone lets member subject use clone cloneID (see [Store.GrantClone]); audited.
func (a *Admin) GrantClone(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID, subject string) error {
	const op = "tenant.Admin.GrantClone"
	if _, err := a.authorize(ctx, op, p, tenantID, cloneID); err != nil {
		return err
	}
	err := a.s.GrantClone(ctx, tenantID, cloneID, subject)
	return a.done(ctx, p, op, tenantID, cloneID, err, map[string]string{"subject": truncate(subject, MaxSubjectLen)})
}

// RevokeClone withdraws a grant made by [Admin.GrantClone] (see [Store.RevokeClone],
// which invalidates the Store's cache); audited.
func (a *Admin) RevokeClone(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID, subject string) error {
	const op = "tenant.Admin.RevokeClone"
	if _, err := a.authorize(ctx, op, p, tenantID, cloneID); err != nil {
		return err
	}
	err := a.s.RevokeClone(ctx, tenantID, cloneID, subject)
	return a.done(ctx, p, op, tenantID, cloneID, err, map[string]string{"subject": truncate(subject, MaxSubjectLen)})
}

// setClone sets column col of clone cloneID to value if the clone's status is one of
// from: clone.ErrNotFound if there is no such clone, clone.ErrConflict if its status
// is another.
func (a *Admin) setClone(ctx context.Context, op string, tenantID, cloneID uuid.UUID, from []Status, col string, value string) error {
	return a.s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		st, err := a.lockClone(ctx, tx, op, tenantID, cloneID)
		if err != nil {
			return err
		}
		if !slices.Contains(from, st) {
			return errs.New(errs.Conflict, op, "clone is %s", st)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE clones SET `+col+` = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`),
			value, a.clock(), tenantID, cloneID)
		return err
	})
}

// lockClone returns the status of clone cloneID, locking its row on PostgreSQL.
func (a *Admin) lockClone(ctx context.Context, tx *sqlx.Tx, op string, tenantID, cloneID uuid.UUID) (Status, error) {
	lock := ""
	if a.s.dialect == clonesql.Postgres {
		lock = " FOR UPDATE"
	}
	var st Status
	err := tx.GetContext(ctx, &st, tx.Rebind(`SELECT status FROM clones WHERE tenant_id = ? AND id = ?`+lock), tenantID, cloneID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errs.New(errs.NotFound, op, "clone not found")
	}
	return st, err
}

// internalContext is the CloneContext the Admin uses to count and delete a clone's
// data through the scoped stores. It never leaves this package.
func internalContext(tenantID, cloneID uuid.UUID, p clone.Principal, purpose string) (clone.CloneContext, error) {
	return clone.New(tenantID, cloneID, clone.Principal{Subject: p.Subject, Roles: []string{"tenant-admin:" + purpose}})
}

func classify(op string, err error) error { return clonesql.ClassifyError(op, err) }
