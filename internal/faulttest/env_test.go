package faulttest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const dim = 64

var small = &chunk.Options{TargetTokens: 24, OverlapTokens: 4}

// env is PostgreSQL seen as the application role (on connections tagged with their
// own application_name, so the test can find and terminate their backends), the real
// go-pinecone client against the in-process emulator, and an object bucket.
type env struct {
	pg      *pgtest.DB
	appName string
	raw     *sqlx.DB
	db      *clonesql.DB
	audit   *audit.Memory
	tenants *tenant.Store
	pc      *pineconetest.Server
	vectors *vectorstore.Index
	objects *objectstore.Bucket
	emb     embed.Embedder
}

type envOptions struct {
	// objects opens the bucket; nil means S3 from the environment if configured, the
	// filesystem otherwise.
	objects func(t testing.TB) *objectstore.Bucket
	retry   *pineconevector.RetryOptions
	driver  pgtest.Driver // the application's PostgreSQL driver; default lib/pq
}

func newEnv(t testing.TB, o *envOptions) *env {
	t.Helper()
	if o == nil {
		o = &envOptions{}
	}
	pg := pgtest.Shared(t)
	e := &env{pg: pg, audit: &audit.Memory{}, appName: "faulttest-" + clone.NewID().String()[:8]}
	u, err := url.Parse(pg.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", e.appName)
	u.RawQuery = q.Encode()
	drv := o.driver
	if drv == "" {
		drv = pgtest.LibPQ
	}
	e.raw = pgtest.OpenURL(t, drv, u.String())
	e.raw.SetMaxOpenConns(4)
	t.Cleanup(func() { e.raw.Close() })
	if e.db, err = clonesql.New(e.raw.DB, &clonesql.Options{Audit: e.audit}); err != nil {
		t.Fatal(err)
	}
	if e.tenants, err = tenant.NewStore(e.raw.DB, nil); err != nil {
		t.Fatal(err)
	}
	e.pc = pineconetest.Start(t, &pineconetest.Options{Dimension: dim})
	retry := o.retry
	if retry == nil {
		retry = &pineconevector.RetryOptions{MaxAttempts: 4, InitialBackoff: 5e6, MaxBackoff: 50e6}
	}
	if e.vectors, err = pineconevector.Open(e.pc.Host(), dim, &pineconevector.Options{Retry: retry, Index: &vectorstore.Options{Audit: e.audit}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.vectors.Close() })
	if o.objects != nil {
		e.objects = o.objects(t)
	} else if _, ok := s3test.Lookup(); ok {
		e.objects = openS3(t, s3test.Require(t))
	} else {
		d, err := fileobject.OpenBucket(t.TempDir(), &fileobject.Options{SigningKey: []byte("a fault test signing key of 32+ bytes")})
		if err != nil {
			t.Fatal(err)
		}
		e.objects = d
	}
	t.Cleanup(func() { e.objects.Close() })
	if e.emb, err = embed.NewLocal(&embed.LocalOptions{Dimension: dim}); err != nil {
		t.Fatal(err)
	}
	return e
}

func openS3(t testing.TB, s3env s3test.Env) *objectstore.Bucket {
	t.Helper()
	bucket := s3test.NewBucket(t, s3env, false)
	b, err := s3object.OpenBucket(context.Background(), s3env.Config(), bucket, &s3object.Options{Endpoint: s3env.Endpoint, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) newClone(t testing.TB) clone.CloneContext {
	t.Helper()
	cc, _, err := e.tenants.ProvisionSolo(context.Background(), "faulttest-"+clone.NewID().String())
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func (e *env) pipeline(t testing.TB, o *ingest.Options) *ingest.Pipeline {
	t.Helper()
	if o == nil {
		o = &ingest.Options{}
	}
	if o.Chunking == nil {
		o.Chunking = small
	}
	p, err := ingest.New(e.db, e.vectors, e.objects, e.emb, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func doc(topic string, paragraphs int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# About %s\n\n", topic)
	for i := range paragraphs {
		fmt.Fprintf(&b, "Paragraph %d says something about %s. It has a second sentence about %s too.\n\n", i, topic, topic)
	}
	return b.String()
}

// --- state through the owner and the stores ------------------------------------------

// ownerDoc is a document row as the schema owner sees it, with its chunk rows counted.
type ownerDoc struct {
	ID         string                 `db:"id"`
	Status     records.DocumentStatus `db:"status"`
	Hash       string                 `db:"content_hash"`
	ChunkCount int                    `db:"chunk_count"`
	Chunks     int                    `db:"chunks"`
}

// ownerDocs reads the clone's documents through the owner's connection, around the
// application role's row-level security and the SDK.
func ownerDocs(t testing.TB, e *env, cc clone.CloneContext) []ownerDoc {
	t.Helper()
	var docs []ownerDoc
	err := e.pg.Owner.Select(&docs, `SELECT d.id, d.status, d.content_hash, d.chunk_count,
		(SELECT count(*) FROM document_chunks c WHERE c.tenant_id = d.tenant_id AND c.clone_id = d.clone_id AND c.document_id = d.id) AS chunks
		FROM documents d WHERE d.tenant_id = $1 AND d.clone_id = $2 ORDER BY d.created_at, d.id`, cc.TenantID(), cc.CloneID())
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// ownerCount counts the rows of a clone-owned table of the clone through the owner.
func ownerCount(t testing.TB, e *env, table string, cc clone.CloneContext) int {
	t.Helper()
	var n int
	if err := e.pg.Owner.Get(&n, `SELECT count(*) FROM `+table+` WHERE tenant_id = $1 AND clone_id = $2`, cc.TenantID(), cc.CloneID()); err != nil {
		t.Fatal(err)
	}
	return n
}

// state is what a clone has in the vector index and the bucket.
type state struct {
	vectors []string
	objects []string // names of kind ingest.ObjectKind
}

func stores(t testing.TB, e *env, cc clone.CloneContext) state {
	t.Helper()
	return state{vectors: vectorIDs(t, e, cc), objects: originals(t, e, cc)}
}

// vectorIDs lists the clone's vector IDs, sorted.
func vectorIDs(t testing.TB, e *env, cc clone.CloneContext) []string {
	t.Helper()
	var ids []string
	token := ""
	for {
		page, err := e.vectors.List(context.Background(), cc, &vectorstore.ListOptions{PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, page.IDs...)
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	sort.Strings(ids)
	return ids
}

// originals lists the names of the clone's objects of kind ingest.ObjectKind, sorted.
func originals(t testing.TB, e *env, cc clone.CloneContext) []string {
	t.Helper()
	var names []string
	token := ""
	for {
		page, err := e.objects.List(context.Background(), cc, &objectstore.ListOptions{PageToken: token, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Objects {
			if o.Kind == ingest.ObjectKind {
				names = append(names, o.Name)
			}
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	sort.Strings(names)
	return names
}

// checkConsistent asserts the pipeline's invariant for a clone at rest, reading SQL
// through the owner: no document is pending or processing; ready documents have
// exactly chunk_count chunk rows; failed ones none; the vectors are exactly the
// chunks' vectors of the ready documents and the originals exactly their objects.
// It returns the documents.
func checkConsistent(t testing.TB, e *env, cc clone.CloneContext) []ownerDoc {
	t.Helper()
	ctx := context.Background()
	docs := ownerDocs(t, e, cc)
	var wantVectors, wantObjects []string
	for _, d := range docs {
		switch d.Status {
		case records.StatusReady:
			if d.Chunks != d.ChunkCount || d.Chunks == 0 {
				t.Fatalf("ready document %s has %d chunk rows, count %d", d.ID, d.Chunks, d.ChunkCount)
			}
			rd, err := records.GetDocument(ctx, e.db, cc, mustID(t, d.ID))
			if err != nil {
				t.Fatal(err)
			}
			v := ingest.DocumentVersion(rd)
			for i := range d.Chunks {
				wantVectors = append(wantVectors, ingest.VectorID(rd.ID, v, i))
			}
			if rd.ObjectKey != "" {
				wantObjects = append(wantObjects, ingest.ObjectName(rd.ID, v))
			}
		case records.StatusFailed:
			if d.Chunks != 0 {
				t.Fatalf("failed document %s has %d chunk rows", d.ID, d.Chunks)
			}
		default:
			t.Fatalf("document %s left %s", d.ID, d.Status)
		}
	}
	sort.Strings(wantVectors)
	sort.Strings(wantObjects)
	s := stores(t, e, cc)
	if strings.Join(s.vectors, ",") != strings.Join(wantVectors, ",") {
		t.Fatalf("vectors\n got %v\nwant %v", s.vectors, wantVectors)
	}
	if strings.Join(s.objects, ",") != strings.Join(wantObjects, ",") {
		t.Fatalf("originals\n got %v\nwant %v", s.objects, wantObjects)
	}
	return docs
}

func mustID(t testing.TB, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
