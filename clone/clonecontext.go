package clone

import (
	"context"
	"slices"

	"github.com/google/uuid"
)

// Principal is the authenticated caller on whose behalf a clone's data is used.
type Principal struct {
	// Subject is the stable identifier the authenticator vouched for, e.g. a JWT "sub".
	Subject string
	// Roles are the caller's roles in the clone's tenant ("owner", "admin", "member").
	Roles []string
}

// HasRole reports whether p has role r.
func (p Principal) HasRole(r string) bool { return slices.Contains(p.Roles, r) }

// CloneContext names the one clone whose data an operation may touch: its tenant, the
// clone itself and the principal acting on it. Every data operation of cloneiso takes a
// CloneContext and derives every tenant and clone ID it uses (SQL predicates, row-level
// security settings, vector namespaces, object keys) from it, never from the request.
//
// The zero value is invalid and is refused by every operation with [ErrNoCloneContext].
// Build one with [New] or [Parse]; a CloneContext is an immutable value and safe to copy
// and share between goroutines.
type CloneContext struct {
	tenantID  uuid.UUID
	cloneID   uuid.UUID
	principal Principal
}

// New returns the CloneContext of clone cloneID in tenant tenantID, acting for p.
// Both IDs must pass [ValidateID]. The principal's roles are copied.
func New(tenantID, cloneID uuid.UUID, p Principal) (CloneContext, error) {
	if err := ValidateID(tenantID); err != nil {
		return CloneContext{}, wrapError(ErrInvalidID, "clone.New", err, "tenant ID")
	}
	if err := ValidateID(cloneID); err != nil {
		return CloneContext{}, wrapError(ErrInvalidID, "clone.New", err, "clone ID")
	}
	p.Roles = slices.Clone(p.Roles)
	return CloneContext{tenantID: tenantID, cloneID: cloneID, principal: p}, nil
}

// Parse is [New] for IDs in string form; both must be in the canonical form [ParseID]
// accepts.
func Parse(tenantID, cloneID string, p Principal) (CloneContext, error) {
	t, err := ParseID(tenantID)
	if err != nil {
		return CloneContext{}, wrapError(ErrInvalidID, "clone.Parse", err, "tenant ID")
	}
	c, err := ParseID(cloneID)
	if err != nil {
		return CloneContext{}, wrapError(ErrInvalidID, "clone.Parse", err, "clone ID")
	}
	return New(t, c, p)
}

// TenantID returns the tenant's ID.
func (cc CloneContext) TenantID() uuid.UUID { return cc.tenantID }

// CloneID returns the clone's ID.
func (cc CloneContext) CloneID() uuid.UUID { return cc.cloneID }

// Principal returns the acting principal (its Roles slice is a copy).
func (cc CloneContext) Principal() Principal {
	p := cc.principal
	p.Roles = slices.Clone(p.Roles)
	return p
}

// Valid reports whether cc was built by [New] or [Parse] (and is not the zero value).
func (cc CloneContext) Valid() bool { return cc.Validate("") == nil }

// Validate returns nil if cc is usable for a data operation, and otherwise an error of
// kind [ErrNoCloneContext] naming op. Every store calls it first.
func (cc CloneContext) Validate(op string) error {
	if cc.tenantID == uuid.Nil && cc.cloneID == uuid.Nil {
		return newError(ErrNoCloneContext, op, "operation requires a clone context")
	}
	if ValidateID(cc.tenantID) != nil || ValidateID(cc.cloneID) != nil {
		// Unreachable through New; guards against a hand-built value via unsafe or reflection.
		return newError(ErrNoCloneContext, op, "clone context is not valid")
	}
	return nil
}

// String returns "tenant/<tenant ID>/clone/<clone ID>", for logs.
func (cc CloneContext) String() string {
	if !cc.Valid() {
		return "clone context <none>"
	}
	return "tenant/" + cc.tenantID.String() + "/clone/" + cc.cloneID.String()
}

// Same reports whether cc and other name the same clone of the same tenant (principals
// are not compared).
func (cc CloneContext) Same(other CloneContext) bool {
	return cc.Valid() && cc.tenantID == other.tenantID && cc.cloneID == other.cloneID
}

// CheckTenant returns nil if id is cc's tenant, and otherwise an error of kind
// [ErrCloneMismatch] (or [ErrNoCloneContext] if cc is not valid).
func (cc CloneContext) CheckTenant(id uuid.UUID) error {
	const op = "clone.CheckTenant"
	if err := cc.Validate(op); err != nil {
		return err
	}
	if id != cc.tenantID {
		return newError(ErrCloneMismatch, op, "tenant ID differs from the clone context")
	}
	return nil
}

// Check returns nil if tenantID and cloneID are cc's, and otherwise an error of kind
// [ErrCloneMismatch] (or [ErrNoCloneContext] if cc is not valid). Use it on IDs that
// arrive in a request body or a row loaded from a store.
func (cc CloneContext) Check(tenantID, cloneID uuid.UUID) error {
	const op = "clone.Check"
	if err := cc.Validate(op); err != nil {
		return err
	}
	if tenantID != cc.tenantID || cloneID != cc.cloneID {
		return newError(ErrCloneMismatch, op, "tenant or clone ID differs from the clone context")
	}
	return nil
}

// CheckStrings is [CloneContext.Check] for IDs in string form, as they arrive in URLs,
// headers and JSON. An ID that is not canonical fails with [ErrInvalidID] before it is
// compared.
func (cc CloneContext) CheckStrings(tenantID, cloneID string) error {
	const op = "clone.CheckStrings"
	if err := cc.Validate(op); err != nil {
		return err
	}
	t, err := ParseID(tenantID)
	if err != nil {
		return wrapError(ErrInvalidID, op, err, "tenant ID")
	}
	c, err := ParseID(cloneID)
	if err != nil {
		return wrapError(ErrInvalidID, op, err, "clone ID")
	}
	return cc.Check(t, c)
}

type ctxKey struct{}

// WithContext returns a copy of ctx carrying cc. It panics if cc is not valid: attaching
// an invalid clone context is a programming error that must not silently produce a
// request that later reads as "no clone".
func WithContext(ctx context.Context, cc CloneContext) context.Context {
	if !cc.Valid() {
		panic("clone.WithContext: invalid CloneContext")
	}
	return context.WithValue(ctx, ctxKey{}, cc)
}

// FromContext returns the CloneContext attached to ctx by [WithContext] (for example by
// the HTTP middleware). Without one it returns an error of kind [ErrNoCloneContext].
func FromContext(ctx context.Context) (CloneContext, error) {
	cc, ok := ctx.Value(ctxKey{}).(CloneContext)
	if !ok || !cc.Valid() {
		return CloneContext{}, newError(ErrNoCloneContext, "clone.FromContext", "no clone context in the request context")
	}
	return cc, nil
}
