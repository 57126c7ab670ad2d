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
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// MaxReasonLen is the longest break-glass reason accepted, in bytes.
const MaxReasonLen = 1000

// BreakGlassGrant is a break-glass grant.
type BreakGlassGrant struct {
	TenantID  uuid.UUID  `db:"tenant_id"`
	ID        uuid.UUID  `db:"id"`
	CloneID   uuid.UUID  `db:"target_clone_id"`
	Subject   string     `db:"subject"`    // who may read the clone
	GrantedBy string     `db:"granted_by"` // who granted it
	Reason    string     `db:"reason"`
	CreatedAt time.Time  `db:"created_at"`
	ExpiresAt time.Time  `db:"expires_at"`
	RevokedAt *time.Time `db:"revoked_at"`
	RevokedBy string     `db:"revoked_by"`
}

// ActiveAt reports whether the grant is neither revoked nor expired at t.
func (g BreakGlassGrant) ActiveAt(t time.Time) bool {
	return g.RevokedAt == nil && t.Before(g.ExpiresAt)
}

// BreakGlassRequest describes a grant to make with [Admin.GrantBreakGlass].
type BreakGlassRequest struct {
	// Subject is the owner or admin of the tenant who will read the clone; "" means the
	// granting principal itself (refused under AdminOptions.TwoPersonRule).
	Subject string
	// Reason says why, for the audit log: 1 to MaxReasonLen bytes of text (a ticket
	// number, an incident). Required.
	Reason string
	// TTL is how long the grant lasts: more than zero and at most
	// AdminOptions.MaxBreakGlass.
	TTL time.Duration
}

func validateReason(op, r string) error {
	switch {
	case strings.TrimSpace(r) == "":
		return errs.New(errs.InvalidInput, op, "a reason is required")
	case len(r) > MaxReasonLen:
		return errs.New(errs.InvalidInput, op, "reason longer than %d bytes", MaxReasonLen)
	case !utf8.ValidString(r) || strings.IndexFunc(r, func(c rune) bool { return unicode.IsControl(c) && c != '\n' && c != '\t' }) >= 0:
		return errs.New(errs.InvalidInput, op, "reason must be valid UTF-8 without control characters")
	}
	return nil
}

// GrantBreakGlass makes a break-glass grant: an explicit, recorded permission for one
// owner or admin of the tenant to read one clone, with a reason, that expires after
// at most AdminOptions.MaxBreakGlass. Grants are rows of break_glass_grants that the
// application can revoke but never delete; granting, revoking, every use and every
// refused use are audited. [Admin.BreakGlass] turns a valid grant into a CloneContext
// for that clone; a [Guard] makes the vector and object stores refuse writes made with
// it.
//
// GrantBreakGlass lets req.Subject, an owner or admin of tenant tenantID, read clone
// cloneID of that tenant for req.TTL, for req.Reason. The granting principal p must be
// an owner or admin of the tenant too. The grant and its audit event (with its reason
// and expiry) are written in one transaction: with the default sink (the tenant
// database's audit table, also inside audit.Multi) the event is a row of that same
// transaction (clonesql.WithAuditTx), and with any other sink the event is recorded
// before the grant commits. If the event cannot be recorded the transaction rolls back,
// no grant exists, and the call fails. Give AdminOptions.Audit a clonesql.AuditSink of
// the very *sql.DB the Store uses (as the default does): a SQL sink on another handle
// records in a transaction of its own, which on SQLite waits for the grant's write lock
// and then fails the grant. Offboarding or offboarded clones cannot be opened
// (clone.ErrConflict).
func (a *Admin) GrantBreakGlass(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID, req BreakGlassRequest) (BreakGlassGrant, error) {
	const op = "tenant.Admin.GrantBreakGlass"
	if _, err := a.authorize(ctx, op, p, tenantID, cloneID); err != nil {
		return BreakGlassGrant{}, err
	}
	if req.Subject == "" {
		req.Subject = p.Subject
	}
	fail := func(err error) (BreakGlassGrant, error) {
		return BreakGlassGrant{}, a.done(ctx, p, op, tenantID, cloneID, err, nil)
	}
	if err := ValidateSubject(req.Subject); err != nil {
		return fail(err)
	}
	if err := validateReason(op, req.Reason); err != nil {
		return fail(err)
	}
	if req.TTL <= 0 || req.TTL > a.maxBG {
		return fail(errs.New(errs.InvalidInput, op, "TTL must be more than 0 and at most %s", a.maxBG))
	}
	if a.twoP && req.Subject == p.Subject {
		return fail(errs.New(errs.Forbidden, op, "two-person rule: another owner or admin must grant break-glass access"))
	}
	now := a.clock()
	g := BreakGlassGrant{TenantID: tenantID, ID: clone.NewID(), CloneID: cloneID, Subject: req.Subject, GrantedBy: p.Subject,
		Reason: req.Reason, CreatedAt: now, ExpiresAt: now.Add(req.TTL)}
	var auditErr error
	err := a.s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		var role Role
		err := tx.GetContext(ctx, &role, tx.Rebind(`SELECT role FROM tenant_members WHERE tenant_id = ? AND subject = ?`), tenantID, req.Subject)
		if errors.Is(err, sql.ErrNoRows) || err == nil && role != RoleOwner && role != RoleAdmin {
			return errs.New(errs.InvalidInput, op, "break-glass access can only be granted to an owner or admin of the tenant")
		}
		if err != nil {
			return err
		}
		st, err := a.lockClone(ctx, tx, op, tenantID, cloneID)
		if err != nil {
			return err
		}
		if st == StatusOffboarding || st == StatusOffboarded {
			return errs.New(errs.Conflict, op, "clone is %s", st)
		}
		if _, err = tx.NamedExecContext(ctx, `
			INSERT INTO break_glass_grants (tenant_id, id, target_clone_id, subject, granted_by, reason, created_at, expires_at)
			VALUES (:tenant_id, :id, :target_clone_id, :subject, :granted_by, :reason, :created_at, :expires_at)`, g); err != nil {
			return err
		}
		// The grant's event, in the grant's transaction: an unaudited grant never exists.
		detail := map[string]string{"grant_id": g.ID.String(), "subject": g.Subject, "expires_at": g.ExpiresAt.Format(time.RFC3339)}
		if rerr := a.record(clonesql.WithAuditTx(ctx, a.s.raw, tx.Tx), p, op, tenantID, cloneID, audit.Allowed, req.Reason, detail); rerr != nil {
			auditErr = rerr
			return rerr
		}
		return nil
	})
	if auditErr != nil {
		// Nothing was granted. The failure itself is logged and counted (audit.Emit).
		a.emit(ctx, p, op, tenantID, cloneID, audit.Failed, "the grant could not be audited; nothing was granted", map[string]string{"sink_error": auditErr.Error()})
		k := errs.KindOf(clonesql.ClassifyError(op, auditErr))
		if k == errs.Unknown {
			k = errs.Unavailable
		}
		return BreakGlassGrant{}, errs.Wrap(k, op, auditErr, "the grant could not be audited; nothing was granted")
	}
	if err != nil {
		return fail(err)
	}
	return g, nil
}

// RevokeBreakGlass ends grant grantID of tenant tenantID at once. Revoking a revoked
// or expired grant is not an error; a grant of another tenant is clone.ErrNotFound.
func (a *Admin) RevokeBreakGlass(ctx context.Context, p clone.Principal, tenantID, grantID uuid.UUID) error {
	const op = "tenant.Admin.RevokeBreakGlass"
	if _, err := a.authorize(ctx, op, p, tenantID, uuid.Nil); err != nil {
		return err
	}
	if err := clone.ValidateID(grantID); err != nil {
		return a.done(ctx, p, op, tenantID, uuid.Nil, err, nil)
	}
	var cloneID uuid.UUID
	err := a.s.inTx(ctx, op, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &cloneID, tx.Rebind(`SELECT target_clone_id FROM break_glass_grants WHERE tenant_id = ? AND id = ?`), tenantID, grantID)
		if errors.Is(err, sql.ErrNoRows) {
			return errs.New(errs.NotFound, op, "grant not found")
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE break_glass_grants SET revoked_at = ?, revoked_by = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL`),
			a.clock(), p.Subject, tenantID, grantID)
		return err
	})
	return a.done(ctx, p, op, tenantID, cloneID, err, map[string]string{"grant_id": grantID.String()})
}

// BreakGlassGrants lists the break-glass grants of tenant tenantID (all of them,
// active, expired and revoked), newest first, for its owners and admins.
func (a *Admin) BreakGlassGrants(ctx context.Context, p clone.Principal, tenantID uuid.UUID) ([]BreakGlassGrant, error) {
	const op = "tenant.Admin.BreakGlassGrants"
	if _, err := a.authorize(ctx, op, p, tenantID, uuid.Nil); err != nil {
		return nil, err
	}
	var gs []BreakGlassGrant
	err := a.s.db.SelectContext(ctx, &gs, a.s.db.Rebind(`SELECT * FROM break_glass_grants WHERE tenant_id = ? ORDER BY created_at DESC, id`), tenantID)
	if err != nil {
		err = classify(op, err)
	}
	return gs, a.done(ctx, p, op, tenantID, uuid.Nil, err, nil)
}

// BreakGlass returns a CloneContext through which p, an owner or admin of tenant
// tenantID, may read clone cloneID, if and only if p holds a break-glass grant for
// that clone that is neither expired nor revoked, and the clone is active or
// suspended. The context's principal has p's tenant role and RoleBreakGlass. The use
// is audited (with the grant and its reason) before the context is returned: if the
// audit sink fails, so does BreakGlass. Every refusal is audited too:
//
//   - no grant for this clone (a grant for another clone does not count), or only
//     expired or revoked ones: clone.ErrForbidden;
//   - p is no longer an owner or admin: clone.ErrForbidden (members) or
//     clone.ErrNotFound (non-members);
//   - the clone is offboarding or offboarded: clone.ErrSuspended.
//
// Call BreakGlass for every request (it costs a few indexed reads and one audit
// append), or use [Admin.BreakGlassSession], whose context ends with the grant; a
// CloneContext kept beyond the grant's expiry is not revoked by anything.
//
// Break-glass is deliberately not available through the HTTP middleware's clone
// selection (whose resolution cache could outlive a grant): hosts expose it on their
// own admin routes.
func (a *Admin) BreakGlass(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID) (clone.CloneContext, error) {
	cc, _, err := a.breakGlass(ctx, p, tenantID, cloneID)
	return cc, err
}

// BreakGlassSession is [Admin.BreakGlass] returning also a context derived from ctx
// that is cancelled when the grant expires, so that store calls made with it stop
// working with the grant. Call cancel when done.
func (a *Admin) BreakGlassSession(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID) (context.Context, clone.CloneContext, context.CancelFunc, error) {
	cc, g, err := a.breakGlass(ctx, p, tenantID, cloneID)
	if err != nil {
		return nil, clone.CloneContext{}, func() {}, err
	}
	sctx, cancel := context.WithDeadline(ctx, g.ExpiresAt)
	return sctx, cc, cancel, nil
}

func (a *Admin) breakGlass(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID) (clone.CloneContext, BreakGlassGrant, error) {
	const op = "tenant.Admin.BreakGlass"
	if err := clone.ValidateID(cloneID); err != nil {
		return clone.CloneContext{}, BreakGlassGrant{}, err
	}
	role, err := a.authorize(ctx, op, p, tenantID, cloneID)
	if err != nil {
		return clone.CloneContext{}, BreakGlassGrant{}, err
	}
	deny := func(kind errs.Kind, reason string, detail map[string]string) (clone.CloneContext, BreakGlassGrant, error) {
		a.emit(ctx, p, op, tenantID, cloneID, audit.Denied, reason, detail)
		return clone.CloneContext{}, BreakGlassGrant{}, errs.New(kind, op, "%s", reason)
	}
	c, err := a.s.Clone(ctx, tenantID, cloneID)
	if errors.Is(err, clone.ErrNotFound) {
		return deny(errs.NotFound, "clone not found", nil)
	}
	if err != nil {
		return clone.CloneContext{}, BreakGlassGrant{}, err
	}
	if c.Status != StatusActive && c.Status != StatusSuspended {
		return deny(errs.Suspended, "clone is "+string(c.Status), nil)
	}
	now := a.clock()
	var gs []BreakGlassGrant
	if err := a.s.db.SelectContext(ctx, &gs, a.s.db.Rebind(`
		SELECT * FROM break_glass_grants WHERE tenant_id = ? AND target_clone_id = ? AND subject = ?
		ORDER BY expires_at DESC, id`), tenantID, cloneID, p.Subject); err != nil {
		return clone.CloneContext{}, BreakGlassGrant{}, classify(op, err)
	}
	var g *BreakGlassGrant
	expired, revoked := 0, 0
	for i := range gs {
		switch {
		case gs[i].RevokedAt != nil:
			revoked++
		case !now.Before(gs[i].ExpiresAt):
			expired++
		case g == nil:
			g = &gs[i]
		}
	}
	if g == nil {
		reason := "no break-glass grant for this clone"
		if expired > 0 || revoked > 0 {
			reason = "break-glass grant expired or revoked"
		}
		return deny(errs.Forbidden, reason, nil)
	}
	cc, err := clone.New(tenantID, cloneID, clone.Principal{Subject: p.Subject, Roles: []string{string(role), RoleBreakGlass}})
	if err != nil {
		return clone.CloneContext{}, BreakGlassGrant{}, err
	}
	detail := map[string]string{"grant_id": g.ID.String(), "granted_by": g.GrantedBy, "expires_at": g.ExpiresAt.Format(time.RFC3339)}
	if err := a.record(ctx, p, op, tenantID, cloneID, audit.Allowed, g.Reason, detail); err != nil {
		return clone.CloneContext{}, BreakGlassGrant{}, errs.Wrap(errs.Unavailable, op, err, "break-glass use could not be audited")
	}
	return cc, *g, nil
}

// IsBreakGlass reports whether cc was returned by [Admin.BreakGlass]: hosts use it to
// refuse writes, mark responses or log more.
func IsBreakGlass(cc clone.CloneContext) bool {
	return cc.Principal().HasRole(RoleBreakGlass)
}
