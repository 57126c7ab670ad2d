package clone_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
)

const canon = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"

func TestParseID(t *testing.T) {
	good := uuid.MustParse(canon)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"canonical", canon, true},
		{"v7", "01890a5d-ac96-774b-bcce-b302099a8057", true},
		{"upper case", strings.ToUpper(canon), false},
		{"mixed case", "3F2504e0-4f89-41d3-9a0c-0305e82c3301", false},
		{"braces", "{" + canon + "}", false},
		{"urn", "urn:uuid:" + canon, false},
		{"no hyphens", strings.ReplaceAll(canon, "-", ""), false},
		{"leading space", " " + canon, false},
		{"trailing newline", canon + "\n", false},
		{"trailing NUL", canon + "\x00", false},
		{"nil", "00000000-0000-0000-0000-000000000000", false},
		{"max", "ffffffff-ffff-ffff-ffff-ffffffffffff", false},
		{"empty", "", false},
		{"hyphen moved", "3f2504e04-f89-41d3-9a0c-0305e82c3301", false},
		{"non-hex", "3f2504e0-4f89-41d3-9a0c-0305e82c330g", false},
		{"36 chars of hyphens", strings.Repeat("-", 36), false},
		{"unicode digit", "3f2504e0-4f89-41d3-9a0c-0305e82c330\u0661"[:36], false},
		{"sql injection", "' OR 1=1 --", false},
		{"traversal", "../../../../../../../../../../../../", false},
		{"overlong", strings.Repeat("a", 1<<16), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := clone.ParseID(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ParseID(%q) = %v", tt.in, err)
				}
				if id.String() != tt.in {
					t.Fatalf("ParseID(%q) = %s; want round trip", tt.in, id)
				}
				return
			}
			if !errors.Is(err, clone.ErrInvalidID) {
				t.Fatalf("ParseID(%q) error = %v; want ErrInvalidID", tt.in, err)
			}
			if id != uuid.Nil {
				t.Fatalf("ParseID(%q) returned %s with an error", tt.in, id)
			}
			if clone.HTTPStatus(err) != http.StatusBadRequest {
				t.Fatalf("HTTPStatus = %d; want 400", clone.HTTPStatus(err))
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error message echoes too much input: %d bytes", len(err.Error()))
			}
		})
	}
	if id, _ := clone.ParseID(canon); id != good {
		t.Fatal("canonical ID parsed to a different UUID")
	}
}

// FuzzParseID checks that ParseID accepts exactly the canonical spellings: whatever it
// accepts must print back to the same string, be neither nil nor max, and whatever
// uuid.Parse accepts in canonical form ParseID must accept too.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{canon, "{" + canon + "}", "urn:uuid:" + canon, strings.ToUpper(canon),
		strings.ReplaceAll(canon, "-", ""), "00000000-0000-0000-0000-000000000000", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := clone.ParseID(s)
		if err != nil {
			if !errors.Is(err, clone.ErrInvalidID) {
				t.Fatalf("ParseID(%q) error kind: %v", s, err)
			}
			if u, perr := uuid.Parse(s); perr == nil && u.String() == s && u != uuid.Nil && u != uuid.Max {
				t.Fatalf("ParseID rejected canonical %q: %v", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) accepted a non-canonical spelling (%s)", s, id)
		}
		if id == uuid.Nil || id == uuid.Max {
			t.Fatalf("ParseID(%q) accepted a reserved UUID", s)
		}
	})
}

func TestNewRejectsReservedIDs(t *testing.T) {
	a := uuid.New()
	for _, c := range []struct{ tenant, clone uuid.UUID }{
		{uuid.Nil, a}, {a, uuid.Nil}, {uuid.Nil, uuid.Nil}, {uuid.Max, a}, {a, uuid.Max},
	} {
		cc, err := clone.New(c.tenant, c.clone, clone.Principal{Subject: "s"})
		if !errors.Is(err, clone.ErrInvalidID) || cc.Valid() {
			t.Errorf("New(%s, %s) = %v, %v; want ErrInvalidID", c.tenant, c.clone, cc, err)
		}
	}
	if _, err := clone.Parse(canon, "{"+canon+"}", clone.Principal{}); !errors.Is(err, clone.ErrInvalidID) {
		t.Errorf("Parse with braces = %v; want ErrInvalidID", err)
	}
}

func mustCC(t testing.TB) clone.CloneContext {
	t.Helper()
	cc, err := clone.New(uuid.New(), uuid.New(), clone.Principal{Subject: "alice", Roles: []string{"owner"}})
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func TestContextRoundTrip(t *testing.T) {
	if _, err := clone.FromContext(context.Background()); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Fatalf("FromContext(empty) = %v; want ErrNoCloneContext", err)
	}
	if clone.HTTPStatus(clone.ErrNoCloneContext) != http.StatusUnauthorized {
		t.Fatal("no clone context must map to 401")
	}
	cc := mustCC(t)
	got, err := clone.FromContext(clone.WithContext(context.Background(), cc))
	if err != nil || !got.Same(cc) || got.Principal().Subject != "alice" {
		t.Fatalf("FromContext = %v, %v; want %v", got, err, cc)
	}
	// The principal's roles cannot be changed through the accessor.
	got.Principal().Roles[0] = "admin"
	if !got.Principal().HasRole("owner") || got.Principal().HasRole("admin") {
		t.Fatal("Principal().Roles aliases the context's roles")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("WithContext accepted the zero CloneContext")
		}
	}()
	clone.WithContext(context.Background(), clone.CloneContext{})
}

func TestZeroCloneContextIsRefused(t *testing.T) {
	var zero clone.CloneContext
	if zero.Valid() {
		t.Fatal("zero CloneContext is valid")
	}
	if err := zero.Validate("op"); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Fatalf("Validate = %v", err)
	}
	if err := zero.Check(uuid.Nil, uuid.Nil); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Fatalf("zero.Check(nil, nil) = %v; want ErrNoCloneContext (not a match)", err)
	}
	if zero.Same(zero) {
		t.Fatal("two zero contexts are the same clone")
	}
}

func TestGuards(t *testing.T) {
	cc := mustCC(t)
	other := mustCC(t)
	if err := cc.Check(cc.TenantID(), cc.CloneID()); err != nil {
		t.Fatalf("own IDs refused: %v", err)
	}
	cases := []struct {
		name          string
		tenant, clone uuid.UUID
	}{
		{"other tenant and clone", other.TenantID(), other.CloneID()},
		{"own tenant, other clone", cc.TenantID(), other.CloneID()},
		{"other tenant, own clone", other.TenantID(), cc.CloneID()},
		{"swapped", cc.CloneID(), cc.TenantID()},
		{"nil clone", cc.TenantID(), uuid.Nil},
		{"nil tenant", uuid.Nil, cc.CloneID()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := cc.Check(c.tenant, c.clone)
			if !errors.Is(err, clone.ErrCloneMismatch) {
				t.Fatalf("Check = %v; want ErrCloneMismatch", err)
			}
			if clone.HTTPStatus(err) != http.StatusForbidden {
				t.Fatalf("status %d; want 403", clone.HTTPStatus(err))
			}
			if err := cc.CheckStrings(c.tenant.String(), c.clone.String()); !errors.Is(err, clone.ErrCloneMismatch) && !errors.Is(err, clone.ErrInvalidID) {
				t.Fatalf("CheckStrings = %v", err)
			}
		})
	}
	if err := cc.CheckTenant(other.TenantID()); !errors.Is(err, clone.ErrCloneMismatch) {
		t.Fatalf("CheckTenant(other) = %v", err)
	}
	if err := cc.CheckTenant(cc.TenantID()); err != nil {
		t.Fatalf("CheckTenant(own) = %v", err)
	}
	// A non-canonical spelling of the right ID is refused as invalid, not matched.
	if err := cc.CheckStrings(strings.ToUpper(cc.TenantID().String()), cc.CloneID().String()); !errors.Is(err, clone.ErrInvalidID) {
		t.Fatalf("CheckStrings(upper) = %v; want ErrInvalidID", err)
	}
	if err := cc.CheckStrings(cc.TenantID().String(), cc.CloneID().String()); err != nil {
		t.Fatalf("CheckStrings(own) = %v", err)
	}
}

// FuzzCheckStrings: the guard accepts a pair of strings only if they are exactly the
// context's own canonical IDs.
func FuzzCheckStrings(f *testing.F) {
	cc, _ := clone.Parse(canon, "9b2c0f3e-2a41-4c1e-8f5e-5f1b2a3c4d5e", clone.Principal{})
	f.Add(canon, "9b2c0f3e-2a41-4c1e-8f5e-5f1b2a3c4d5e")
	f.Add("9b2c0f3e-2a41-4c1e-8f5e-5f1b2a3c4d5e", canon)
	f.Add(strings.ToUpper(canon), "9b2c0f3e-2a41-4c1e-8f5e-5f1b2a3c4d5e")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, tenant, cloneID string) {
		err := cc.CheckStrings(tenant, cloneID)
		want := tenant == cc.TenantID().String() && cloneID == cc.CloneID().String()
		if (err == nil) != want {
			t.Fatalf("CheckStrings(%q, %q) = %v; want accepted=%v", tenant, cloneID, err, want)
		}
		if err != nil && clone.HTTPStatus(err) >= 500 {
			t.Fatalf("bad input mapped to %d", clone.HTTPStatus(err))
		}
	})
}

func TestHTTPStatus(t *testing.T) {
	want := map[error]int{
		nil:                         200,
		clone.ErrUnauthenticated:    401,
		clone.ErrNoCloneContext:     401, // clonehttp.WriteError: 500 (see TestWriteErrorLogs)
		clone.ErrForbidden:          403,
		clone.ErrCloneMismatch:      403,
		clone.ErrSuspended:          403,
		clone.ErrNotFound:           404,
		clone.ErrInvalidID:          400,
		clone.ErrInvalidInput:       400,
		clone.ErrConflict:           409,
		clone.ErrTooLarge:           413,
		clone.ErrUnsupported:        415,
		clone.ErrUnavailable:        503,
		clone.ErrIsolationViolation: 500,
		clone.ErrInternal:           500,
		clone.ErrCanceled:           499,
		errors.New("plain"):         500,
	}
	for err, code := range want {
		if got := clone.HTTPStatus(err); got != code {
			t.Errorf("HTTPStatus(%v) = %d; want %d", err, got, code)
		}
	}
	// Wrapped errors keep their kind, and the cause stays reachable.
	cause := errors.New("vendor")
	_, err := clone.ParseID("bad")
	var e *clone.Error
	if !errors.As(err, &e) || e.Kind.HTTPStatus() != 400 {
		t.Fatalf("errors.As(*clone.Error) failed on %v", err)
	}
	wrapped := &clone.Error{Kind: e.Kind, Op: "x", Err: cause}
	if !errors.Is(wrapped, cause) || !errors.Is(wrapped, clone.ErrInvalidID) || errors.Is(wrapped, clone.ErrNotFound) {
		t.Fatal("wrapped error lost its kind or cause")
	}
}

func TestErrorf(t *testing.T) {
	err := clone.Errorf(clone.ErrInvalidInput, "title longer than %d bytes", 200)
	if !errors.Is(err, clone.ErrInvalidInput) || clone.HTTPStatus(err) != 400 || !strings.Contains(err.Error(), "title longer than 200 bytes") {
		t.Fatalf("Errorf = %v (status %d)", err, clone.HTTPStatus(err))
	}
	var e *clone.Error
	if !errors.As(err, &e) || e.Msg != "title longer than 200 bytes" {
		t.Fatalf("safe message %+v", e)
	}
	if clone.HTTPStatus(clone.Errorf(clone.Kind(1000), "x")) != 500 {
		t.Fatal("a kind from the future must be 500")
	}
}

// TestKindOf: KindOf finds the kind through wrapping, and the kinds' values are pinned
// (the set is append-only: a released value never changes meaning).
func TestKindOf(t *testing.T) {
	inner := clone.Errorf(clone.ErrNotFound, "gone")
	cases := map[string]struct {
		err  error
		want clone.Kind
	}{
		"nil":            {nil, clone.KindUnknown},
		"plain":          {errors.New("x"), clone.KindUnknown},
		"context":        {context.Canceled, clone.KindUnknown},
		"kind itself":    {clone.ErrConflict, clone.ErrConflict},
		"error":          {inner, clone.ErrNotFound},
		"wrapped":        {fmt.Errorf("outer: %w", inner), clone.ErrNotFound},
		"joined":         {errors.Join(errors.New("x"), inner), clone.ErrNotFound},
		"outermost wins": {&clone.Error{Kind: clone.ErrInternal, Err: inner}, clone.ErrInternal},
	}
	for name, c := range cases {
		if got := clone.KindOf(c.err); got != c.want {
			t.Errorf("%s: KindOf = %v; want %v", name, got, c.want)
		}
	}
	pinned := []clone.Kind{clone.KindUnknown, clone.ErrUnauthenticated, clone.ErrForbidden, clone.ErrNoCloneContext,
		clone.ErrInvalidID, clone.ErrCloneMismatch, clone.ErrNotFound, clone.ErrInvalidInput, clone.ErrConflict,
		clone.ErrTooLarge, clone.ErrUnavailable, clone.ErrIsolationViolation, clone.ErrUnsupported, clone.ErrSuspended,
		clone.ErrInternal, clone.ErrCanceled}
	for i, k := range pinned {
		if int(k) != i {
			t.Errorf("%v = %d; the released value is %d", k, int(k), i)
		}
		if strings.HasPrefix(k.String(), "kind(") {
			t.Errorf("kind %d has no name", i)
		}
	}
	for _, k := range pinned {
		if k.Retryable() != (k == clone.ErrUnavailable) {
			t.Errorf("%v.Retryable() = %v", k, k.Retryable())
		}
	}
}
