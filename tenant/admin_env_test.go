package tenant_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

const dim = 8

// clock is a settable clock for grant expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// adminEnv is a tenant store with every store an Admin manages, on one backend set.
type adminEnv struct {
	name  string
	s     *tenant.Store
	db    *sqlx.DB // as the application
	super *sqlx.DB // able to tamper with the audit log (the same as db on SQLite)
	sql   *clonesql.DB
	vec   *vectorstore.Index
	obj   *objectstore.Bucket
	// rawVec and rawObj reach the same backends without the Guard's hooks: another
	// process whose check passed before the clone was blocked.
	rawVec  *vectorstore.Index
	rawObj  *objectstore.Bucket
	pine    *pineconetest.Server // nil on embedded backends
	s3      *s3.Client           // nil on embedded backends
	bucket  string
	clock   *clock
	admin   *tenant.Admin
	options tenant.AdminOptions
}

// embeddedEnv: SQLite, memvector, fileobject.
func embeddedEnv(t *testing.T) *adminEnv {
	t.Helper()
	db, _ := pgtest.Open(t, clonesql.SQLite) // migrated, closed when t ends
	e := &adminEnv{name: "embedded", db: db, super: db}
	s := e.store(t)
	g := s.Guard()
	vd, err := memvector.NewDriver(dim, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.vec, err = vectorstore.NewIndex(vd, &vectorstore.Options{CheckWritable: g.CheckWritable})
	if err != nil {
		t.Fatal(err)
	}
	e.rawVec, err = vectorstore.NewIndex(vd, nil)
	if err != nil {
		t.Fatal(err)
	}
	od, err := fileobject.OpenDriver(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.obj, err = objectstore.NewBucket(od, &objectstore.Options{CheckClone: g.CheckClone})
	if err != nil {
		t.Fatal(err)
	}
	e.rawObj, err = objectstore.NewBucket(od, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.newAdmin(t, nil)
	return e
}

// pgEnv: PostgreSQL as the application role, with the embedded vector and object
// stores (needs no MinIO).
func pgEnv(t *testing.T) *adminEnv {
	t.Helper()
	pg := pgtest.Shared(t)
	e := &adminEnv{name: "postgres", db: pg.App, super: pg.Owner}
	g := e.store(t).Guard()
	var err error
	e.vec, err = memvector.Open(dim, &memvector.Options{Index: &vectorstore.Options{CheckWritable: g.CheckWritable}})
	if err != nil {
		t.Fatal(err)
	}
	e.obj, err = fileobject.OpenBucket(t.TempDir(), &fileobject.Options{Bucket: &objectstore.Options{CheckClone: g.CheckClone}})
	if err != nil {
		t.Fatal(err)
	}
	e.newAdmin(t, nil)
	return e
}

// forEachEnv runs fn on the embedded backends and on PostgreSQL.
func forEachEnv(t *testing.T, fn func(t *testing.T, e *adminEnv)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, embeddedEnv(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, pgEnv(t)) })
}

// realEnv: PostgreSQL as the application role, the Pinecone emulator through
// go-pinecone, and a versioned MinIO bucket (skipped without MinIO unless services are
// required).
func realEnv(t *testing.T) *adminEnv {
	t.Helper()
	env := s3test.Require(t)
	pg := pgtest.Shared(t)
	e := &adminEnv{name: "real", db: pg.App, super: pg.Owner}
	s := e.store(t)
	g := s.Guard()
	e.pine = pineconetest.Start(t, &pineconetest.Options{Dimension: dim})
	var err error
	e.vec, err = pineconevector.Open(e.pine.Host(), dim, &pineconevector.Options{
		Retry: &pineconevector.RetryOptions{MaxAttempts: 1},
		Index: &vectorstore.Options{CheckWritable: g.CheckWritable}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.vec.Close() })
	e.rawVec, err = pineconevector.Open(e.pine.Host(), dim, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rawVec.Close() })
	e.bucket = s3test.NewBucket(t, env, true)
	e.s3 = env.Client()
	e.obj, err = s3object.OpenBucket(context.Background(), env.Config(), e.bucket, &s3object.Options{
		Endpoint: env.Endpoint, UsePathStyle: true,
		Bucket: &objectstore.Options{CheckClone: g.CheckClone}})
	if err != nil {
		t.Fatal(err)
	}
	e.rawObj, err = s3object.OpenBucket(context.Background(), env.Config(), e.bucket, &s3object.Options{Endpoint: env.Endpoint, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	e.newAdmin(t, nil)
	return e
}

func (e *adminEnv) store(t *testing.T) *tenant.Store {
	t.Helper()
	s, err := tenant.NewStore(e.db.DB, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	e.sql, err = clonesql.New(e.db.DB, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.clock = &clock{t: time.Now().UTC()}
	return s
}

// cached replaces e.s with a Store over the same database that invalidates cache on
// every change that takes access away, and e.admin with an Admin over it (opts as for
// newAdmin).
func (e *adminEnv) cached(t *testing.T, cache tenant.Invalidator, opts *tenant.AdminOptions) {
	t.Helper()
	s, err := tenant.NewStore(e.db.DB, &tenant.StoreOptions{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	e.newAdmin(t, opts)
}

// newAdmin (re)creates e.admin with e's stores and clock and the options in opts.
func (e *adminEnv) newAdmin(t *testing.T, opts *tenant.AdminOptions) {
	t.Helper()
	o := tenant.AdminOptions{}
	if opts != nil {
		o = *opts
	}
	o.Vectors, o.Objects, o.Now = e.vec, e.obj, e.clock.Now
	if o.Drain == 0 {
		o.Drain = -1
	}
	a, err := tenant.NewAdmin(e.s, &o)
	if err != nil {
		t.Fatal(err)
	}
	e.admin, e.options = a, o
}

// org is an enterprise tenant with an owner, an admin, a member, and clones A and B
// owned by the member and the admin.
type org struct {
	tenant                   tenant.Tenant
	owner, admin, member     clone.Principal
	a, b                     tenant.Clone
	ccA, ccB                 clone.CloneContext // as their owners
	outsider                 clone.Principal
	otherTenant              tenant.Tenant
	otherClone               tenant.Clone
	otherCC                  clone.CloneContext
	otherOwner               clone.Principal
	tenantID, cloneA, cloneB uuid.UUID
}

func newOrg(t *testing.T, e *adminEnv) *org {
	t.Helper()
	ctx := context.Background()
	u := uuid.NewString()[:8]
	o := &org{owner: clone.Principal{Subject: "owner-" + u}, admin: clone.Principal{Subject: "admin-" + u},
		member: clone.Principal{Subject: "member-" + u}, outsider: clone.Principal{Subject: "outsider-" + u},
		otherOwner: clone.Principal{Subject: "other-" + u}}
	var err error
	o.tenant, err = e.s.CreateTenant(ctx, tenant.TenantSpec{Name: "Acme " + u, Plan: tenant.PlanEnterprise, CloneLimit: 5, OwnerSubject: o.owner.Subject})
	if err != nil {
		t.Fatal(err)
	}
	o.tenantID = o.tenant.ID
	for _, m := range []struct {
		p clone.Principal
		r tenant.Role
	}{{o.admin, tenant.RoleAdmin}, {o.member, tenant.RoleMember}} {
		if err := e.s.AddMember(ctx, o.tenantID, m.p.Subject, m.r); err != nil {
			t.Fatal(err)
		}
	}
	o.a, err = e.admin.CreateClone(ctx, o.owner, o.tenantID, tenant.CloneSpec{Name: "A", OwnerSubject: o.member.Subject})
	if err != nil {
		t.Fatal(err)
	}
	o.b, err = e.admin.CreateClone(ctx, o.admin, o.tenantID, tenant.CloneSpec{Name: "B", OwnerSubject: o.admin.Subject})
	if err != nil {
		t.Fatal(err)
	}
	o.cloneA, o.cloneB = o.a.ID, o.b.ID
	o.ccA = mustCC(t, o.tenantID, o.cloneA, o.member)
	o.ccB = mustCC(t, o.tenantID, o.cloneB, o.admin)
	o.otherTenant, err = e.s.CreateTenant(ctx, tenant.TenantSpec{Name: "Other " + u, Plan: tenant.PlanEnterprise, OwnerSubject: o.otherOwner.Subject})
	if err != nil {
		t.Fatal(err)
	}
	o.otherClone, err = e.s.CreateClone(ctx, o.otherTenant.ID, tenant.CloneSpec{Name: "X", OwnerSubject: o.otherOwner.Subject})
	if err != nil {
		t.Fatal(err)
	}
	o.otherCC = mustCC(t, o.otherTenant.ID, o.otherClone.ID, o.otherOwner)
	return o
}

func mustCC(t *testing.T, tenantID, cloneID uuid.UUID, p clone.Principal) clone.CloneContext {
	t.Helper()
	cc, err := clone.New(tenantID, cloneID, p)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// populate gives the clone of cc rows in every clone-owned table, vectors, and objects
// (on a versioned bucket also an older version, a delete marker and an unfinished
// multipart upload). It returns the number of objects the listing shows.
func (e *adminEnv) populate(t *testing.T, cc clone.CloneContext, tag string) int {
	t.Helper()
	ctx := context.Background()
	d, err := records.CreateDocument(ctx, e.sql, cc, records.Document{Title: "doc " + tag})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := records.ReplaceDocumentChunks(ctx, e.sql, cc, d.ID, []records.Chunk{{Ordinal: 0, Content: "secret " + tag}, {Ordinal: 1, Content: "more " + tag}}); err != nil {
		t.Fatal(err)
	}
	if _, err := records.CreateInsight(ctx, e.sql, cc, records.Insight{Content: "insight " + tag}); err != nil {
		t.Fatal(err)
	}
	if _, err := records.CreateTrainingExample(ctx, e.sql, cc, records.TrainingExample{Prompt: "p " + tag, Response: "r " + tag}); err != nil {
		t.Fatal(err)
	}
	conv, err := records.CreateConversation(ctx, e.sql, cc, records.Conversation{Title: "c " + tag})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"hello", "world"} {
		if _, err := records.AppendMessage(ctx, e.sql, cc, records.Message{ConversationID: conv.ID, Role: records.RoleUser, Content: m + " " + tag}); err != nil {
			t.Fatal(err)
		}
	}
	var vs []vectorstore.Vector
	for i := range 3 {
		v := make([]float32, dim)
		v[i] = 1
		vs = append(vs, vectorstore.Vector{ID: fmt.Sprintf("%s-%d", tag, i), Values: v})
	}
	if err := e.vec.Upsert(ctx, cc, vs); err != nil {
		t.Fatal(err)
	}
	if e.pine != nil {
		e.pine.Settle() // on a lagging index: written long before anything that follows
	}
	for _, n := range []string{"a.txt", "b.txt"} {
		if _, err := e.obj.Put(ctx, cc, "documents", n, strings.NewReader("content of "+n+" "+tag), nil); err != nil {
			t.Fatal(err)
		}
	}
	objects := 2
	if e.s3 != nil {
		// Versioned bucket: a second version, a delete marker, an unfinished upload.
		if _, err := e.obj.Put(ctx, cc, "documents", "a.txt", strings.NewReader("v2 "+tag), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := e.obj.Put(ctx, cc, "documents", "gone.txt", strings.NewReader("x"), nil); err != nil {
			t.Fatal(err)
		}
		if err := e.obj.Delete(ctx, cc, "documents", "gone.txt"); err != nil {
			t.Fatal(err)
		}
		prefix, _ := objectstore.Prefix(cc)
		// (At a listed key: MinIO lists unfinished uploads by exact key only.)
		if _, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(e.bucket), Key: aws.String(prefix + "documents/a.txt")}); err != nil {
			t.Fatal(err)
		}
	}
	return objects
}

// rawLeft counts, below every portable type, what the clone of cc still has: rows per
// table (as the superuser on PostgreSQL, so RLS cannot hide anything), records in the
// emulator's namespace and keys, versions and uploads under the prefix.
func (e *adminEnv) rawLeft(t *testing.T, cc clone.CloneContext) string {
	t.Helper()
	ctx := context.Background()
	var left []string
	for _, tbl := range migrate.CloneOwnedTables() {
		var n int
		if err := e.super.GetContext(ctx, &n, e.super.Rebind(`SELECT count(*) FROM `+tbl+` WHERE tenant_id = ? AND clone_id = ?`), cc.TenantID(), cc.CloneID()); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			left = append(left, fmt.Sprintf("%s:%d", tbl, n))
		}
	}
	ns, _ := vectorstore.Namespace(cc)
	if e.pine != nil {
		if n := e.pine.Namespaces()[ns]; n > 0 {
			left = append(left, fmt.Sprintf("vectors:%d", n))
		}
	} else if st, err := e.vec.Stats(ctx, cc); err != nil {
		t.Fatal(err)
	} else if st.VectorCount > 0 {
		left = append(left, fmt.Sprintf("vectors:%d", st.VectorCount))
	}
	prefix, _ := objectstore.Prefix(cc)
	if e.s3 != nil {
		vs, err := e.s3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.bucket), Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(vs.Versions) + len(vs.DeleteMarkers); n > 0 {
			left = append(left, fmt.Sprintf("versions:%d", n))
		}
		for _, p := range []string{prefix, prefix + "documents/a.txt"} {
			ups, err := e.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(e.bucket), Prefix: aws.String(p)})
			if err != nil {
				t.Fatal(err)
			}
			if len(ups.Uploads) > 0 {
				left = append(left, fmt.Sprintf("uploads:%d", len(ups.Uploads)))
				break
			}
		}
	} else {
		inv, err := e.admin.Inventory(ctx, ownerOf(t, e, cc), cc.TenantID(), cc.CloneID())
		if err != nil {
			t.Fatal(err)
		}
		if inv.Objects > 0 {
			left = append(left, fmt.Sprintf("objects:%d", inv.Objects))
		}
	}
	return strings.Join(left, " ")
}

// ownerOf returns an owner of cc's tenant.
func ownerOf(t *testing.T, e *adminEnv, cc clone.CloneContext) clone.Principal {
	t.Helper()
	var s string
	if err := e.db.GetContext(context.Background(), &s, e.db.Rebind(`SELECT subject FROM tenant_members WHERE tenant_id = ? AND role = 'owner' LIMIT 1`), cc.TenantID()); err != nil {
		t.Fatal(err)
	}
	return clone.Principal{Subject: s}
}
