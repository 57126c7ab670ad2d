package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/internal/testenv"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	objdriver "github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	vecdriver "github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const dim = 64

// env is one combination of backends: a SQL database (seen as the application role),
// a vector index and an object bucket, each behind a fault injector.
type env struct {
	name    string
	raw     *sqlx.DB
	owner   *sqlx.DB
	dialect clonesql.Dialect
	db      *clonesql.DB
	audit   *audit.Memory
	tenants *tenant.Store
	vectors *vectorstore.Index
	objects *objectstore.Bucket
	faults  *faults
	pine    *pineconetest.Server // nil unless the vectors are on the Pinecone emulator
	// upload uploads data through an upload ticket of the clone, as a browser would,
	// and returns the ticket.
	upload func(t testing.TB, cc clone.CloneContext, contentType string, data []byte) *objectstore.UploadTicket
}

// lagging reports whether the vectors are on an eventually consistent index.
func (e *env) lagging() bool { return e.pine != nil && strings.Contains(e.name, "lag") }

// landed makes every write so far visible on a lagging index (writes that happened
// long before what follows).
func (e *env) landed() {
	if e.pine != nil {
		e.pine.Settle()
	}
}

func (e *env) newClone(t testing.TB) clone.CloneContext {
	t.Helper()
	cc, _, err := e.tenants.ProvisionSolo(context.Background(), "subject-"+clone.NewID().String())
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// pipeline returns a pipeline on e's stores with the embedded embedder (embed.NewLocal
// at the index's dimension).
func (e *env) pipeline(t testing.TB, o *ingest.Options) *ingest.Pipeline {
	t.Helper()
	return e.pipelineWith(t, e.localEmbedder(t), o)
}

// pipelineWith returns a pipeline on e's stores with embedder emb.
func (e *env) pipelineWith(t testing.TB, emb embed.Embedder, o *ingest.Options) *ingest.Pipeline {
	t.Helper()
	p, err := ingest.New(e.db, e.vectors, e.objects, emb, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// localEmbedder returns the embedded embedder at the index's dimension.
func (e *env) localEmbedder(t testing.TB) embed.Embedder {
	t.Helper()
	emb, err := embed.NewLocal(&embed.LocalOptions{Dimension: e.vectors.Dimension()})
	if err != nil {
		t.Fatal(err)
	}
	return emb
}

type backend struct {
	name string
	sql  clonesql.Dialect
	vec  string // "mem", "pinecone" or "pinecone-lag" (eventually consistent)
	obj  string // "file" or "s3"
}

// backends are the embedded set and the real one: PostgreSQL (as the non-owner app
// role), the real go-pinecone client against the in-process Pinecone emulator, and
// MinIO. Without an S3 server configured (and services not required) the real set
// uses the filesystem for objects instead, so PostgreSQL and Pinecone still run.
func backends() []backend {
	real := backend{"postgres+pinecone+s3", clonesql.Postgres, "pinecone", "s3"}
	if _, ok := s3test.Lookup(); !ok && !testenv.ServicesRequired() {
		real.name, real.obj = "postgres+pinecone+file", "file"
	}
	lagging := backend{"sqlite+pinecone-lag+file", clonesql.SQLite, "pinecone-lag", "file"}
	return []backend{{"embedded", clonesql.SQLite, "mem", "file"}, real, lagging}
}

func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, newEnv(t, b)) })
	}
}

func newEnv(t testing.TB, b backend) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{name: b.name, dialect: b.sql, audit: &audit.Memory{}, faults: &faults{}}
	switch b.sql {
	case clonesql.SQLite:
		db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "c.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := migrate.Up(ctx, db, nil); err != nil {
			t.Fatal(err)
		}
		e.raw = sqlx.NewDb(db, "sqlite3")
		e.owner = e.raw
		if _, err := db.Exec(`CREATE TRIGGER ingest_test_fail BEFORE INSERT ON document_chunks
			WHEN NEW.content LIKE '%FAILSQL%' BEGIN SELECT RAISE(ABORT, 'injected SQL failure'); END`); err != nil {
			t.Fatal(err)
		}
	case clonesql.Postgres:
		pg := pgtest.Shared(t)
		app, err := clonesql.OpenPostgres(pg.AppURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { app.Close() })
		e.raw, e.owner = sqlx.NewDb(app, "postgres"), pg.Owner
		pgTriggerOnce.Do(func() {
			_, pgTriggerErr = pg.Owner.Exec(`
CREATE OR REPLACE FUNCTION ingest_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.content LIKE '%FAILSQL%' THEN RAISE EXCEPTION 'injected SQL failure'; END IF;
	RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS ingest_test_fail ON document_chunks;
CREATE TRIGGER ingest_test_fail BEFORE INSERT ON document_chunks FOR EACH ROW EXECUTE FUNCTION ingest_test_fail();`)
		})
		if pgTriggerErr != nil {
			t.Fatal(pgTriggerErr)
		}
	}
	var err error
	if e.db, err = clonesql.New(e.raw.DB, &clonesql.Options{Audit: e.audit}); err != nil {
		t.Fatal(err)
	}
	if e.tenants, err = tenant.NewStore(e.raw.DB, nil); err != nil {
		t.Fatal(err)
	}

	var vd vecdriver.Index
	switch b.vec {
	case "mem":
		d, err := memvector.NewDriver(dim, nil)
		if err != nil {
			t.Fatal(err)
		}
		vd = d
	case "pinecone", "pinecone-lag":
		o := &pineconetest.Options{Dimension: dim}
		if b.vec == "pinecone-lag" {
			o.Lag = &pineconetest.Lag{Requests: 3} // every write lands 3 requests later
		}
		srv, err := pineconetest.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		e.pine = srv
		d, err := pineconevector.NewDriver(srv.Host(), dim, nil)
		if err != nil {
			t.Fatal(err)
		}
		vd = d
	}
	if e.vectors, err = vectorstore.NewIndex(&faultyIndex{Index: vd, f: e.faults}, &vectorstore.Options{Audit: e.audit}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.vectors.Close() })

	var od objdriver.Bucket
	switch b.obj {
	case "file":
		dir := t.TempDir()
		srv := httptest.NewUnstartedServer(nil)
		fo := &fileobject.Options{SigningKey: []byte("an ingest test key of at least 32 bytes"), BaseURL: "http://" + srv.Listener.Addr().String() + "/files"}
		h, err := fileobject.NewHandler(dir, fo)
		if err != nil {
			t.Fatal(err)
		}
		srv.Config.Handler = h
		srv.Start()
		t.Cleanup(srv.Close)
		d, err := fileobject.OpenDriver(dir, fo)
		if err != nil {
			t.Fatal(err)
		}
		od = d
	case "s3":
		s3env := s3test.Require(t)
		bucket := s3test.NewBucket(t, s3env, false)
		d, err := s3object.OpenDriver(ctx, s3env.Config(), bucket, &s3object.Options{Endpoint: s3env.Endpoint, UsePathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		od = d
	}
	if e.objects, err = objectstore.NewBucket(&faultyBucket{Bucket: od, f: e.faults}, &objectstore.Options{Audit: e.audit}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.objects.Close() })
	e.upload = func(t testing.TB, cc clone.CloneContext, contentType string, data []byte) *objectstore.UploadTicket {
		t.Helper()
		ticket, err := e.objects.UploadTicket(ctx, cc, "uploads", &objectstore.UploadTicketOptions{ContentType: contentType, MaxSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		postForm(t, ticket.URL, ticket.Fields, data)
		return ticket
	}
	return e
}

var (
	pgTriggerOnce sync.Once
	pgTriggerErr  error
)

// --- state inspection ----------------------------------------------------------------

// state is everything a clone has in the three stores.
type state struct {
	docs    []records.Document
	chunks  map[string][]records.Chunk // by document ID
	vectors []string
	objects []string // names of kind ObjectKind
	other   []string // objects of other kinds
}

func snapshot(t testing.TB, e *env, cc clone.CloneContext) state {
	t.Helper()
	ctx := context.Background()
	s := state{chunks: map[string][]records.Chunk{}}
	cursor := ""
	for {
		page, err := records.ListDocuments(ctx, e.db, cc, &records.ListOptions{Limit: records.MaxPageSize, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		s.docs = append(s.docs, page.Items...)
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	for _, d := range s.docs {
		cursor := ""
		for {
			page, err := records.ListDocumentChunks(ctx, e.db, cc, d.ID, &records.ListOptions{Limit: records.MaxPageSize, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			s.chunks[d.ID.String()] = append(s.chunks[d.ID.String()], page.Items...)
			if cursor = page.Next; cursor == "" {
				break
			}
		}
	}
	if e.pine != nil {
		e.pine.Settle() // on a lagging index: observe what was written, once it landed
	}
	token := ""
	for {
		page, err := e.vectors.List(ctx, cc, &vectorstore.ListOptions{PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		s.vectors = append(s.vectors, page.IDs...)
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	token = ""
	for {
		page, err := e.objects.List(ctx, cc, &objectstore.ListOptions{PageToken: token, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Objects {
			if o.Kind == ingest.ObjectKind {
				s.objects = append(s.objects, o.Name)
			} else {
				s.other = append(s.other, o.Kind+"/"+o.Name)
			}
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	sort.Strings(s.vectors)
	sort.Strings(s.objects)
	return s
}

// checkConsistent asserts the pipeline's invariant for a clone at rest: no document is
// pending or processing; the vectors are exactly the chunks' vectors of the ready
// documents, the originals exactly their objects; other documents have no chunks.
func checkConsistent(t testing.TB, e *env, cc clone.CloneContext) state {
	t.Helper()
	s := snapshot(t, e, cc)
	var wantVectors, wantObjects []string
	for _, d := range s.docs {
		chunks := s.chunks[d.ID.String()]
		switch d.Status {
		case records.StatusReady:
			if len(chunks) != d.ChunkCount || len(chunks) == 0 {
				t.Fatalf("ready document %s has %d chunks, count %d", d.ID, len(chunks), d.ChunkCount)
			}
			for i, c := range chunks {
				if c.VectorID != ingest.VectorID(d.ID, ingest.DocumentVersion(d), i) {
					t.Fatalf("chunk %d of %s has vector %q: a mix of versions", i, d.ID, c.VectorID)
				}
				wantVectors = append(wantVectors, c.VectorID)
			}
			if d.ObjectKey != "" {
				wantObjects = append(wantObjects, ingest.ObjectName(d.ID, ingest.DocumentVersion(d)))
			}
		case records.StatusFailed:
			if len(chunks) != 0 {
				t.Fatalf("failed document %s has %d chunks", d.ID, len(chunks))
			}
			if d.Error == "" {
				t.Fatalf("failed document %s records no error", d.ID)
			}
		default:
			t.Fatalf("document %s left %s", d.ID, d.Status)
		}
	}
	sort.Strings(wantVectors)
	sort.Strings(wantObjects)
	if strings.Join(s.vectors, ",") != strings.Join(wantVectors, ",") {
		t.Fatalf("vectors\n got %v\nwant %v", s.vectors, wantVectors)
	}
	if strings.Join(s.objects, ",") != strings.Join(wantObjects, ",") {
		t.Fatalf("originals\n got %v\nwant %v", s.objects, wantObjects)
	}
	return s
}

// --- fault injection -----------------------------------------------------------------

var errInjected = errors.New("injected fault")

// faults fails calls of named operations once they have been called a given number of
// times: fail("vectors.Upsert", 1) lets one call through and fails the rest.
type faults struct {
	mu    sync.Mutex
	after map[string]int
	calls map[string]int
}

func (f *faults) fail(op string, after int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.after == nil {
		f.after = map[string]int{}
	}
	f.after[op] = after
}

func (f *faults) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.after = nil
}

func (f *faults) check(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	if n, ok := f.after[op]; ok && f.calls[op] > n {
		return fmt.Errorf("%s: %w", op, errInjected)
	}
	return nil
}

func (f *faults) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// faultyIndex wraps a vector driver.
type faultyIndex struct {
	vecdriver.Index
	f *faults
}

func (x *faultyIndex) Upsert(ctx context.Context, ns string, v []vecdriver.Vector) error {
	if err := x.f.check("vectors.Upsert"); err != nil {
		return err
	}
	return x.Index.Upsert(ctx, ns, v)
}

func (x *faultyIndex) Delete(ctx context.Context, ns string, ids []string) error {
	if err := x.f.check("vectors.Delete"); err != nil {
		return err
	}
	return x.Index.Delete(ctx, ns, ids)
}

func (x *faultyIndex) List(ctx context.Context, ns string, r *vecdriver.ListRequest) (*vecdriver.ListPage, error) {
	if err := x.f.check("vectors.List"); err != nil {
		return nil, err
	}
	return x.Index.List(ctx, ns, r)
}

func (x *faultyIndex) ErrorKind(err error) error {
	if errors.Is(err, errInjected) {
		return clone.ErrUnavailable
	}
	return x.Index.ErrorKind(err)
}

// faultyBucket wraps an object driver.
type faultyBucket struct {
	objdriver.Bucket
	f *faults
}

func (b *faultyBucket) Put(ctx context.Context, scope, key string, r io.Reader, o *objdriver.WriteOptions) (*objdriver.Attributes, error) {
	if err := b.f.check("objects.Put"); err != nil {
		return nil, err
	}
	return b.Bucket.Put(ctx, scope, key, r, o)
}

func (b *faultyBucket) Delete(ctx context.Context, scope, key string) error {
	if err := b.f.check("objects.Delete"); err != nil {
		return err
	}
	return b.Bucket.Delete(ctx, scope, key)
}

func (b *faultyBucket) ErrorKind(err error) error {
	if errors.Is(err, errInjected) {
		return clone.ErrUnavailable
	}
	return b.Bucket.ErrorKind(err)
}
