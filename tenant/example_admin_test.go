package tenant_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// An enterprise tenant on the embedded backends: an admin counts a clone's data,
// reads it only through an audited break-glass grant, and offboards it.
func ExampleAdmin() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "cloneiso-example")
	defer os.RemoveAll(dir)
	db, _ := sqlitedb.Open(filepath.Join(dir, "cloneiso.db"))
	defer db.Close()
	_ = migrate.Up(ctx, db, nil)
	store, _ := tenant.NewStore(db, nil)

	// The stores refuse unprovisioned, suspended and offboarded clones.
	guard := store.Guard()
	vectors, _ := memvector.Open(4, &memvector.Options{Index: &vectorstore.Options{CheckWritable: guard.CheckWritable}})
	objects, _ := fileobject.OpenBucket(filepath.Join(dir, "objects"), &fileobject.Options{Bucket: &objectstore.Options{CheckClone: guard.CheckClone}})
	admin, _ := tenant.NewAdmin(store, &tenant.AdminOptions{Vectors: vectors, Objects: objects, Drain: -1})

	owner := clone.Principal{Subject: "alice"}
	acme, _ := store.CreateTenant(ctx, tenant.TenantSpec{Name: "Acme", Plan: tenant.PlanEnterprise, OwnerSubject: owner.Subject})
	_ = store.AddMember(ctx, acme.ID, "bob", tenant.RoleMember)
	c, _ := admin.CreateClone(ctx, owner, acme.ID, tenant.CloneSpec{Name: "Bob's clone", OwnerSubject: "bob"})

	// Bob's clone learns something.
	sqldb, _ := clonesql.New(db, nil)
	bob, _ := clone.New(acme.ID, c.ID, clone.Principal{Subject: "bob"})
	_, _ = records.CreateInsight(ctx, sqldb, bob, records.Insight{Content: "prefers short answers"})
	_ = vectors.Upsert(ctx, bob, []vectorstore.Vector{{ID: "v1", Values: []float32{1, 0, 0, 0}}})
	_, _ = objects.Put(ctx, bob, "documents", "cv.txt", strings.NewReader("..."), nil)

	inv, _ := admin.Inventory(ctx, owner, acme.ID, c.ID)
	fmt.Println("insights:", inv.Rows["insights"], "vectors:", inv.Vectors, "objects:", inv.Objects)

	// Reading content needs a break-glass grant.
	_, err := admin.BreakGlass(ctx, owner, acme.ID, c.ID)
	fmt.Println("without a grant:", err != nil)
	_, _ = admin.GrantBreakGlass(ctx, owner, acme.ID, c.ID, tenant.BreakGlassRequest{Reason: "legal hold INC-7", TTL: 15 * time.Minute})
	cc, _ := admin.BreakGlass(ctx, owner, acme.ID, c.ID)
	page, _ := records.ListInsights(ctx, sqldb, cc, nil)
	fmt.Println("with a grant:", page.Items[0].Content)

	r, _ := admin.OffboardClone(ctx, owner, acme.ID, c.ID, "Bob left")
	fmt.Println("deleted insights:", r.Rows["insights"], "vectors:", r.Vectors, "objects:", r.Objects)
	err = vectors.Upsert(ctx, bob, []vectorstore.Vector{{ID: "v2", Values: []float32{0, 1, 0, 0}}})
	fmt.Println("write after offboarding refused:", err != nil)
	rep, _ := admin.VerifyAudit(ctx, owner, acme.ID)
	fmt.Println("audit chain intact:", rep.OK)
	// Output:
	// insights: 1 vectors: 1 objects: 1
	// without a grant: true
	// with a grant: prefers short answers
	// deleted insights: 1 vectors: 1 objects: 1
	// write after offboarding refused: true
	// audit chain intact: true
}
