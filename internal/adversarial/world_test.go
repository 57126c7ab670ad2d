package adversarial_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	odriver "github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	vdriver "github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const dim = 8

// data is what one clone stored through the SDK, with canaries that must never reach
// another clone.
type data struct {
	cc                 clone.CloneContext
	name               string
	canary             string // in every text the clone stored
	insight            uuid.UUID
	doc                uuid.UUID
	conv               uuid.UUID
	msg                uuid.UUID
	vectorID           string // unique to the clone (no canary: IDs may be guessed)
	objectName         string // unique to the clone (no canary: names may be guessed)
	sharedVector       string // an ID every clone uses
	sharedObject       string // a name every clone uses
	insightsAtCreation int
}

// stack names the drivers a world runs on: the production services (PostgreSQL as the
// application role, the Pinecone emulator over gRPC, S3 on MinIO) or the embedded
// defaults (SQLite, the in-process vector index, the filesystem bucket).
type stack string

const (
	production    stack = "postgres+pinecone+s3"
	productionPgx stack = "postgres(pgx)+pinecone+s3" // production with the SQL on pgx
	embedded      stack = "sqlite+memvector+fileobject"
)

var stacks = []stack{production, productionPgx, embedded}

// base returns the stack a variant belongs to: productionPgx is production on another
// PostgreSQL driver.
func (st stack) base() stack {
	if st == productionPgx {
		return production
	}
	return st
}

// world is one set of stores and three clones: a and sib in one enterprise tenant,
// other in a solo tenant of its own.
type world struct {
	stack    stack
	pg       *pgtest.DB // production only
	raw      *sqlx.DB   // the application role (PostgreSQL) or the SQLite database
	db       *clonesql.DB
	tenants  *tenant.Store
	audit    *audit.Memory
	srv      *pineconetest.Server // production only
	idx      *vectorstore.Index
	s3env    s3test.Env // production only
	bucket   string     // production only
	objects  *objectstore.Bucket
	rawVec   vdriver.Index  // embedded only: the driver under idx
	rawObj   odriver.Bucket // embedded only: the driver under objects
	a        *data
	sib      *data
	other    *data
	victims  []*data
	canaries []string // every clone's canary
}

func vec(seed string) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32((int(seed[i%len(seed)])*(i+7))%17) - 8
	}
	v[0] += 0.5
	return v
}

func newWorld(t *testing.T, st stack) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{stack: st, audit: &audit.Memory{}}
	var err error
	switch st.base() {
	case production:
		w.pg = pgtest.Shared(t)
		w.s3env = s3test.Require(t)
		drv := pgtest.LibPQ
		if st == productionPgx {
			drv = pgtest.Pgx
		}
		w.raw = pgtest.OpenURL(t, drv, w.pg.AppURL)
	case embedded:
		db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "adversarial.db"))
		if err != nil {
			t.Fatal(err)
		}
		w.raw = sqlx.NewDb(db, "sqlite3")
		t.Cleanup(func() { w.raw.Close() })
		if err := migrate.Up(ctx, w.raw.DB, nil); err != nil {
			t.Fatal(err)
		}
	}
	if w.db, err = clonesql.New(w.raw.DB, &clonesql.Options{Audit: w.audit}); err != nil {
		t.Fatal(err)
	}
	if w.tenants, err = tenant.NewStore(w.raw.DB, nil); err != nil {
		t.Fatal(err)
	}
	guard := w.tenants.Guard() // only provisioned, active clones are usable
	vopts := &vectorstore.Options{Audit: w.audit, CheckWritable: guard.CheckWritable}
	oopts := &objectstore.Options{Audit: w.audit, CheckClone: guard.CheckClone}
	switch st.base() {
	case production:
		w.srv = pineconetest.Start(t, &pineconetest.Options{Dimension: dim})
		if w.idx, err = pineconevector.Open(w.srv.Host(), dim, &pineconevector.Options{APIKey: "emulator", Index: vopts}); err != nil {
			t.Fatal(err)
		}
		w.bucket = s3test.NewBucket(t, w.s3env, false)
		if w.objects, err = s3object.OpenBucket(ctx, w.s3env.Config(), w.bucket, &s3object.Options{
			Endpoint: w.s3env.Endpoint, UsePathStyle: true, Bucket: oopts}); err != nil {
			t.Fatal(err)
		}
	case embedded:
		md, err := memvector.NewDriver(dim, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.rawVec = md
		if w.idx, err = vectorstore.NewIndex(md, vopts); err != nil {
			t.Fatal(err)
		}
		if w.rawObj, err = fileobject.OpenDriver(t.TempDir(), &fileobject.Options{
			SigningKey: []byte("adversarial-suite-file-signing-key-32+"), BaseURL: "http://files.invalid/o"}); err != nil {
			t.Fatal(err)
		}
		if w.objects, err = objectstore.NewBucket(w.rawObj, oopts); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { w.idx.Close() })
	t.Cleanup(func() { w.objects.Close() })

	u := uuid.NewString()
	boss := "adv-boss-" + u
	ent, err := w.tenants.CreateTenant(ctx, tenant.TenantSpec{Name: "Acme", Plan: tenant.PlanEnterprise, OwnerSubject: boss})
	if err != nil {
		t.Fatal(err)
	}
	// A belongs to a member of the tenant; its sibling to the tenant's owner.
	alice := "adv-alice-" + u
	if err := w.tenants.AddMember(ctx, ent.ID, alice, tenant.RoleMember); err != nil {
		t.Fatal(err)
	}
	mk := func(name, owner string) clone.CloneContext {
		c, err := w.tenants.CreateClone(ctx, ent.ID, tenant.CloneSpec{Name: name, OwnerSubject: owner})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := clone.New(ent.ID, c.ID, clone.Principal{Subject: owner})
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	occ, _, err := w.tenants.ProvisionSolo(ctx, "adv-other-"+u)
	if err != nil {
		t.Fatal(err)
	}
	w.a = w.seed(t, "A", mk("A", alice))
	w.sib = w.seed(t, "sibling", mk("sibling", boss))
	w.other = w.seed(t, "other-tenant", occ)
	w.victims = []*data{w.sib, w.other}
	w.canaries = []string{w.a.canary, w.sib.canary, w.other.canary}
	w.audit.Reset()
	return w
}

// seed stores the clone's canaries in every store through the SDK's public API.
func (w *world) seed(t *testing.T, name string, cc clone.CloneContext) *data {
	t.Helper()
	ctx := context.Background()
	d := &data{cc: cc, name: name, canary: "CANARY-" + strings.ToUpper(name) + "-" + uuid.NewString(),
		sharedVector: "shared#0", sharedObject: "shared.txt"}
	in, err := records.CreateInsight(ctx, w.db, cc, records.Insight{Category: "secret", Content: d.canary})
	if err != nil {
		t.Fatal(err)
	}
	d.insight = in.ID
	doc, err := records.CreateDocument(ctx, w.db, cc, records.Document{Title: "doc " + d.canary, Status: records.StatusReady})
	if err != nil {
		t.Fatal(err)
	}
	d.doc = doc.ID
	if _, err := records.ReplaceDocumentChunks(ctx, w.db, cc, doc.ID, []records.Chunk{{Ordinal: 0, Content: "chunk " + d.canary, VectorID: d.sharedVector}}); err != nil {
		t.Fatal(err)
	}
	conv, err := records.CreateConversation(ctx, w.db, cc, records.Conversation{Title: "conv " + d.canary})
	if err != nil {
		t.Fatal(err)
	}
	d.conv = conv.ID
	m, err := records.AppendMessage(ctx, w.db, cc, records.Message{ConversationID: conv.ID, Role: records.RoleUser, Content: "msg " + d.canary})
	if err != nil {
		t.Fatal(err)
	}
	d.msg = m.ID
	if _, err := records.CreateTrainingExample(ctx, w.db, cc, records.TrainingExample{Prompt: "p " + d.canary, Response: "r " + d.canary}); err != nil {
		t.Fatal(err)
	}
	// Names and IDs are not secret (an attacker may guess or probe them); only content
	// carries the canary, so an error that echoes the attacker's own input is no leak.
	d.vectorID = "vec-" + uuid.NewString()
	if err := w.idx.Upsert(ctx, cc, []vectorstore.Vector{
		{ID: d.sharedVector, Values: vec("shared"), Metadata: map[string]any{"text": d.canary}},
		{ID: d.vectorID, Values: vec(d.canary), Metadata: map[string]any{"text": d.canary}},
	}); err != nil {
		t.Fatal(err)
	}
	d.objectName = "obj-" + uuid.NewString() + ".txt"
	for _, n := range []string{d.sharedObject, d.objectName} {
		if _, err := w.objects.Put(ctx, cc, "uploads", n, strings.NewReader(d.canary), nil); err != nil {
			t.Fatal(err)
		}
	}
	n, err := records.CountInsights(ctx, w.db, cc)
	if err != nil {
		t.Fatal(err)
	}
	d.insightsAtCreation = int(n)
	return d
}

// intact verifies, through the victim's own access, that everything it stored is still
// there and unchanged.
func (w *world) intact(t *testing.T, d *data) {
	t.Helper()
	ctx := context.Background()
	in, err := records.GetInsight(ctx, w.db, d.cc, d.insight)
	if err != nil || in.Content != d.canary {
		t.Errorf("LEAK/DAMAGE: %s's insight changed or gone: %q, %v", d.name, in.Content, err)
	}
	if n, err := records.CountInsights(ctx, w.db, d.cc); err != nil || int(n) != d.insightsAtCreation {
		t.Errorf("DAMAGE: %s has %d insights (want %d): %v", d.name, n, d.insightsAtCreation, err)
	}
	if _, err := records.GetMessage(ctx, w.db, d.cc, d.msg); err != nil {
		t.Errorf("DAMAGE: %s's message gone: %v", d.name, err)
	}
	if ch, err := records.GetChunks(ctx, w.db, d.cc, []records.ChunkKey{{DocumentID: d.doc}}); err != nil || len(ch) != 1 {
		t.Errorf("DAMAGE: %s's chunk gone: %v", d.name, err)
	}
	vs, err := w.idx.Fetch(ctx, d.cc, []string{d.sharedVector, d.vectorID})
	if err != nil || len(vs) != 2 {
		t.Errorf("DAMAGE: %s has %d of its 2 vectors: %v", d.name, len(vs), err)
	}
	for _, v := range vs {
		if v.Metadata["text"] != d.canary {
			t.Errorf("DAMAGE: %s's vector %s metadata %v", d.name, v.ID, v.Metadata)
		}
	}
	for _, n := range []string{d.sharedObject, d.objectName} {
		b, err := w.objects.ReadAll(ctx, d.cc, "uploads", n)
		if err != nil || string(b) != d.canary {
			t.Errorf("DAMAGE: %s's object %s: %q, %v", d.name, n, b, err)
		}
	}
}

// leaks reports which canaries other than the attacker's own appear in s.
func (w *world) leaks(attacker *data, s string) []string {
	var out []string
	for _, c := range w.canaries {
		if c != attacker.canary && strings.Contains(s, c) {
			out = append(out, c)
		}
	}
	return out
}

func dump(v any) string { return fmt.Sprintf("%+v", v) }
