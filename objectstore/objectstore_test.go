package objectstore_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
)

// spy counts driver calls; lie, if set, adds a key to every listing.
type spy struct {
	driver.Bucket
	calls atomic.Int64
	lie   string
}

// misscoped passes every call to its driver with another clone's scope, as a broken
// layer above the driver would.
type misscoped struct {
	driver.Bucket
	scope string
}

func (m *misscoped) Get(ctx context.Context, _, k string, off, n int64) (driver.Reader, error) {
	return m.Bucket.Get(ctx, m.scope, k, off, n)
}

func (s *spy) Put(ctx context.Context, sc string, k string, r io.Reader, o *driver.WriteOptions) (*driver.Attributes, error) {
	s.calls.Add(1)
	return s.Bucket.Put(ctx, sc, k, r, o)
}
func (s *spy) Get(ctx context.Context, sc string, k string, off, n int64) (driver.Reader, error) {
	s.calls.Add(1)
	return s.Bucket.Get(ctx, sc, k, off, n)
}
func (s *spy) Head(ctx context.Context, sc string, k string) (*driver.Attributes, error) {
	s.calls.Add(1)
	return s.Bucket.Head(ctx, sc, k)
}
func (s *spy) Delete(ctx context.Context, sc string, k string) error {
	s.calls.Add(1)
	return s.Bucket.Delete(ctx, sc, k)
}
func (s *spy) Copy(ctx context.Context, sc string, d, src string) error {
	s.calls.Add(1)
	return s.Bucket.Copy(ctx, sc, d, src)
}
func (s *spy) SignedURL(ctx context.Context, sc string, k string, o *driver.SignedURLOptions) (*driver.SignedRequest, error) {
	s.calls.Add(1)
	return s.Bucket.SignedURL(ctx, sc, k, o)
}
func (s *spy) UploadTicket(ctx context.Context, sc string, k string, o *driver.UploadTicketOptions) (*driver.UploadTicket, error) {
	s.calls.Add(1)
	return s.Bucket.UploadTicket(ctx, sc, k, o)
}
func (s *spy) List(ctx context.Context, sc string, p string, n int, tok string) (*driver.ListPage, error) {
	s.calls.Add(1)
	page, err := s.Bucket.List(ctx, sc, p, n, tok)
	if err == nil && s.lie != "" {
		page.Objects = append(page.Objects, &driver.Attributes{Key: s.lie, Size: 1})
	}
	return page, err
}

func newSpy(t *testing.T) (*objectstore.Bucket, *spy, *audit.Memory) {
	t.Helper()
	d, err := fileobject.OpenDriver(t.TempDir(), &fileobject.Options{SigningKey: make([]byte, 32), BaseURL: "http://files.test"})
	if err != nil {
		t.Fatal(err)
	}
	s := &spy{Bucket: d}
	sink := &audit.Memory{}
	b, err := objectstore.NewBucket(s, &objectstore.Options{Audit: sink})
	if err != nil {
		t.Fatal(err)
	}
	return b, s, sink
}

func newClone(t *testing.T, tenant clone.CloneContext) clone.CloneContext {
	t.Helper()
	tid := clone.NewID()
	if tenant.Valid() {
		tid = tenant.TenantID()
	}
	cc, err := clone.New(tid, clone.NewID(), clone.Principal{Subject: "user-" + tid.String()[:4]})
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func TestInvalidNamesNeverReachTheDriver(t *testing.T) {
	ctx := context.Background()
	b, s, sink := newSpy(t)
	cc := newClone(t, clone.CloneContext{})
	names := []string{"../x", "%2e%2e/x", "/abs", `a\b`, "a\x00", "", "e\u0301", strings.Repeat("a", 600)}
	for _, n := range names {
		ops := map[string]func() error{
			"Put":       func() error { _, err := b.Put(ctx, cc, "docs", n, strings.NewReader("x"), nil); return err },
			"Get":       func() error { _, err := b.Get(ctx, cc, "docs", n, nil); return err },
			"Head":      func() error { _, err := b.Head(ctx, cc, "docs", n); return err },
			"Delete":    func() error { return b.Delete(ctx, cc, "docs", n) },
			"CopySrc":   func() error { return b.Copy(ctx, cc, "docs", "ok", "docs", n) },
			"CopyDst":   func() error { return b.Copy(ctx, cc, "docs", n, "docs", "ok") },
			"SignedURL": func() error { _, err := b.SignedURL(ctx, cc, "docs", n, nil); return err },
			"SignRequest": func() error {
				_, err := b.SignRequest(ctx, cc, "docs", n, &objectstore.SignedURLOptions{Method: "PUT"})
				return err
			},
			"UploadTicket": func() error {
				if n == "" {
					return clone.ErrInvalidInput // "" means "generate a name" here
				}
				_, err := b.UploadTicket(ctx, cc, "docs", &objectstore.UploadTicketOptions{Name: n, ContentType: "text/plain", MaxSize: 10})
				return err
			},
		}
		for op, f := range ops {
			sink.Reset()
			if err := f(); !errors.Is(err, clone.ErrInvalidInput) {
				t.Errorf("%s(%q) = %v, want ErrInvalidInput", op, n, err)
			} else if clone.HTTPStatus(err) != 400 {
				t.Errorf("%s(%q) status %d", op, n, clone.HTTPStatus(err))
			}
			if ev := sink.Events(); n != "" || op != "UploadTicket" {
				if len(ev) != 1 || ev[0].Outcome != audit.Denied || ev[0].CloneID != cc.CloneID() {
					t.Errorf("%s(%q): audit events %+v, want one denial", op, n, ev)
				}
			}
		}
	}
	if c := s.calls.Load(); c != 0 {
		t.Errorf("driver was called %d times for invalid names", c)
	}
}

func TestListedKeyOutsidePrefixIsAViolation(t *testing.T) {
	ctx := context.Background()
	b, s, sink := newSpy(t)
	ca := newClone(t, clone.CloneContext{})
	cb := newClone(t, ca)
	if _, err := b.Put(ctx, ca, "docs", "mine", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	// The owner lists their object when the store behaves...
	if p, err := b.List(ctx, ca, nil); err != nil || len(p.Objects) != 1 {
		t.Fatalf("List = %+v, %v", p, err)
	}
	// ...and nothing at all when the store slips in another clone's key.
	foreign, _ := objectstore.Key(cb, "docs", "theirs")
	for _, lie := range []string{foreign, "tenants/x", mustPrefix(t, ca) + "docs/../../" + cb.CloneID().String() + "/docs/x", mustPrefix(t, ca) + "nokind"} {
		s.lie = lie
		sink.Reset()
		p, err := b.List(ctx, ca, nil)
		if !errors.Is(err, clone.ErrIsolationViolation) || p != nil {
			t.Errorf("List with foreign key %q = %+v, %v; want ErrIsolationViolation", lie, p, err)
		}
		if ev := sink.Events(); len(ev) != 1 || ev[0].Outcome != audit.Violation {
			t.Errorf("audit = %+v, want one violation", ev)
		}
	}
}

func mustPrefix(t *testing.T, cc clone.CloneContext) string {
	p, err := objectstore.Prefix(cc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestForeignOwnerStampIsAViolation(t *testing.T) {
	ctx := context.Background()
	b, s, sink := newSpy(t)
	ca := newClone(t, clone.CloneContext{})
	cb := newClone(t, ca)
	key, _ := objectstore.Key(ca, "docs", "planted")
	md := map[string]string{objectstore.MetaTenantID: cb.TenantID().String(), objectstore.MetaCloneID: cb.CloneID().String()}
	scopeA, _ := objectstore.Prefix(ca)
	if _, err := s.Bucket.Put(ctx, scopeA, key, strings.NewReader("B's data"), &driver.WriteOptions{Metadata: md, Size: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAll(ctx, ca, "docs", "planted"); !errors.Is(err, clone.ErrIsolationViolation) {
		t.Errorf("ReadAll of an object stamped for B = %v", err)
	}
	if _, err := b.Head(ctx, ca, "docs", "planted"); !errors.Is(err, clone.ErrIsolationViolation) {
		t.Errorf("Head of an object stamped for B = %v", err)
	}
	if n := len(sink.Events()); n != 2 {
		t.Errorf("%d audit events, want 2", n)
	}
}

func TestOptionsAndErrors(t *testing.T) {
	d, err := fileobject.OpenDriver(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := objectstore.NewBucket(d, &objectstore.Options{MaxURLExpiry: objectstore.HardMaxURLExpiry + time.Second}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("over-long MaxURLExpiry: %v", err)
	}
	if _, err := objectstore.NewBucket(nil, nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("nil driver: %v", err)
	}
	b, err := objectstore.NewBucket(d, &objectstore.Options{MaxURLExpiry: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cc := newClone(t, clone.CloneContext{})
	// Without a signing key the filesystem driver cannot sign: typed, not a 500.
	if _, err := b.SignedURL(ctx, cc, "docs", "x", nil); !errors.Is(err, clone.ErrUnsupported) {
		t.Errorf("SignedURL without key: %v", err)
	}
	_, err = b.Get(ctx, cc, "docs", "missing", nil)
	if !errors.Is(err, clone.ErrNotFound) || clone.HTTPStatus(err) != 404 {
		t.Fatalf("missing object: %v", err)
	}
	var pe *fs.PathError
	if !b.ErrorAs(err, &pe) {
		t.Error("ErrorAs does not reach the *fs.PathError")
	}
	for _, o := range []*objectstore.WriteOptions{
		{ContentType: "not a type"},
		{Metadata: map[string]string{"cloneiso-clone-id": "x"}},
		{Metadata: map[string]string{"Upper": "x"}},
		{Metadata: map[string]string{"k": "line\nbreak"}},
	} {
		if _, err := b.Put(ctx, cc, "docs", "x", strings.NewReader("x"), o); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("Put with %+v: %v", o, err)
		}
	}
	if _, err := b.Put(ctx, cc, "docs", "x", strings.NewReader("x"), &objectstore.WriteOptions{Metadata: map[string]string{"k": strings.Repeat("v", 3000)}}); !errors.Is(err, clone.ErrTooLarge) {
		t.Errorf("huge metadata: %v", err)
	}
}

func TestCheckCloneHook(t *testing.T) {
	ctx := context.Background()
	d, err := fileobject.OpenDriver(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	active := newClone(t, clone.CloneContext{})
	suspended := newClone(t, active)
	unknown := newClone(t, active)
	var ops []string
	b, err := objectstore.NewBucket(d, &objectstore.Options{CheckClone: func(_ context.Context, cc clone.CloneContext, op string) error {
		ops = append(ops, op)
		switch {
		case cc.Same(active):
			return nil
		case cc.Same(suspended) && op != "objectstore.DeleteClone":
			return clone.ErrSuspended
		case cc.Same(suspended):
			return nil
		}
		return clone.ErrNotFound
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, active, "docs", "a", strings.NewReader("x"), nil); err != nil {
		t.Fatalf("active clone: %v", err)
	}
	if _, err := b.Put(ctx, unknown, "docs", "a", strings.NewReader("x"), nil); !errors.Is(err, clone.ErrNotFound) {
		t.Errorf("unprovisioned clone Put: %v, want ErrNotFound", err)
	}
	if p, _ := objectstore.Prefix(unknown); len(mustList(t, d, p)) != 0 {
		t.Error("a write for an unprovisioned clone created objects")
	}
	if _, err := b.List(ctx, suspended, nil); !errors.Is(err, clone.ErrSuspended) {
		t.Errorf("suspended clone List: %v, want ErrSuspended", err)
	}
	if _, err := b.DeleteClone(ctx, suspended); err != nil {
		t.Errorf("suspended clone DeleteClone: %v", err)
	}
	if len(ops) != 4 || ops[0] != "objectstore.Put" {
		t.Errorf("hook saw %v", ops)
	}
}

func mustList(t *testing.T, d driver.Bucket, prefix string) []*driver.Attributes {
	t.Helper()
	p, err := d.List(context.Background(), prefix, prefix, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	return p.Objects
}

// A driver refusing a key outside the scope it is given makes the call fail as an
// isolation violation, audited as such.
func TestDriverScopeRefusalIsAViolation(t *testing.T) {
	ctx := context.Background()
	d, err := fileobject.OpenDriver(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ca := newClone(t, clone.CloneContext{})
	cb := newClone(t, ca)
	scopeB, _ := objectstore.Prefix(cb)
	sink := &audit.Memory{}
	b, err := objectstore.NewBucket(&misscoped{Bucket: d, scope: scopeB}, &objectstore.Options{Audit: sink})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, ca, "docs", "a", strings.NewReader("A"), nil); err != nil {
		t.Fatal(err)
	}
	_, err = b.ReadAll(ctx, ca, "docs", "a")
	if !errors.Is(err, clone.ErrIsolationViolation) || !errors.Is(err, driver.ErrOutOfScope) {
		t.Fatalf("read through a driver given another scope: %v, want an isolation violation", err)
	}
	if ev := sink.Events(); len(ev) != 1 || ev[0].Outcome != audit.Violation || ev[0].CloneID != ca.CloneID() {
		t.Errorf("audit = %+v, want one violation", ev)
	}
}
