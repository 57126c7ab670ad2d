package legacye2e

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso"
	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/migrate/legacy"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// The documents of the legacy deployment: FalconDoc is u001's, GardenDoc u002's.
var (
	FalconDoc = uuid.MustParse("0a1b2c3d-0000-4000-8000-000000000001")
	GardenDoc = uuid.MustParse("0a1b2c3d-0000-4000-8000-000000000002")
)

// Their texts, and a question only FalconText answers.
const (
	FalconText = "Ziggy is a peregrine falcon. Ziggy nests on the north tower of Saint Olaf's cathedral and hunts pigeons at dawn.\n"
	GardenText = "The tomatoes in the garden need six hours of sun. Basil grows beside the tomatoes and keeps pests away.\n"
	Question   = "Where does Ziggy the falcon nest?"
	sharedNS   = "legacy-shared"
)

// legacyData and legacyChunks are the legacy rows: two users, each with one document
// and its one chunk, whose vector ID is the legacy application's.
const legacyData = `
INSERT INTO users (id, email) VALUES ('u001', 'ada@example.com'), ('u002', 'bob@example.com');
INSERT INTO documents (id, user_id, title, source_name, content_type, size_bytes, content_hash, object_key, status, chunk_count, metadata) VALUES
  ('0a1b2c3d-0000-4000-8000-000000000001', 'u001', 'Ziggy the falcon', 'falcon.txt', 'text/plain', 112, md5('falcon'), 'users/u001/documents/falcon.txt', 'ready', 1, '{"folder": "birds"}'),
  ('0a1b2c3d-0000-4000-8000-000000000002', 'u002', 'Garden log', 'garden.txt', 'text/plain', 104, md5('garden'), 'users/u002/documents/garden.txt', 'ready', 1, '{}');
`

const legacyChunks = `
INSERT INTO document_chunks (document_id, ordinal, user_id, content, vector_id) VALUES
  ('0a1b2c3d-0000-4000-8000-000000000001', 0, 'u001', $1, 'legacy-falcon-0'),
  ('0a1b2c3d-0000-4000-8000-000000000002', 0, 'u002', $2, 'legacy-garden-0');
`

// Deployment is a legacy deployment migrated by Migrate: its database (enforced, the
// application role granted), its bucket on MinIO, its Pinecone emulator, and the clone
// of each legacy user (u001, u002).
type Deployment struct {
	DB       *pgtest.DB
	S3       s3test.Env
	Bucket   string
	Pinecone *pineconetest.Server
	Clones   map[string]clone.CloneContext
}

// Migrate builds the legacy deployment (two users, each with one document: its row,
// its chunk row, its original in S3 and its vector in the shared legacy namespace,
// embedded with emb as the legacy application did) and migrates it with the steps of
// MIGRATION_GUIDE.md. It needs PostgreSQL and MinIO (s3test.Require).
func Migrate(t *testing.T, emb embed.Embedder) *Deployment {
	t.Helper()
	ctx := context.Background()
	// The legacy deployment.
	db := pgtest.Fresh(t, false)
	db.Owner.MustExec(legacytest.Schema)
	db.Owner.MustExec(legacyData)
	db.Owner.MustExec(legacyChunks, FalconText, GardenText)
	s3env := s3test.Require(t)
	bucket := s3test.NewBucket(t, s3env, false)
	for key, body := range map[string]string{"users/u001/documents/falcon.txt": FalconText, "users/u002/documents/garden.txt": GardenText} {
		if _, err := s3env.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: strings.NewReader(body), ContentType: aws.String("text/plain")}); err != nil {
			t.Fatal(err)
		}
	}
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: emb.Dimension()})
	raw, err := pineconevector.NewDriver(srv.Host(), emb.Dimension(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	vals, err := emb.Embed(ctx, []string{FalconText, GardenText})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Upsert(ctx, sharedNS, []driver.Vector{
		{ID: "legacy-falcon-0", Values: vals[0], Metadata: map[string]any{"user_id": "u001", "text": FalconText}},
		{ID: "legacy-garden-0", Values: vals[1], Metadata: map[string]any{"user_id": "u002", "text": GardenText}},
	}); err != nil {
		t.Fatal(err)
	}

	return &Deployment{DB: db, S3: s3env, Bucket: bucket, Pinecone: srv, Clones: migrate(t, db, s3env, bucket, srv, raw)}
}

// migrate runs the migration of MIGRATION_GUIDE.md through package legacy: plan, up,
// backfill, objects copy, rewrite-keys, vectors copy, verify, enforce, grant. It returns
// each user's clone.
func migrate(t *testing.T, db *pgtest.DB, s3env s3test.Env, bucket string, srv *pineconetest.Server, raw *pineconevector.Driver) map[string]clone.CloneContext {
	t.Helper()
	ctx := context.Background()
	m, err := legacy.New(db.Owner.DB, &legacy.Config{UsersQuery: "SELECT id FROM users"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Plan(ctx)
	if err != nil || len(p.SchemaProblems) != 0 || len(p.UserIssues) != 0 {
		t.Fatalf("plan: %+v, %v", p, err)
	}
	if _, err := m.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	target, err := s3object.OpenBucket(ctx, s3env.Config(), bucket, &s3object.Options{Endpoint: s3env.Endpoint, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	oo := &legacy.ObjectOptions{Client: s3env.Client(), LegacyBucket: bucket, KeyTemplate: legacytest.LegacyKeyTemplate, Target: target, Deep: true}
	if rep, err := m.MigrateObjects(ctx, oo); err != nil || rep.Copied != 2 || !rep.OK() {
		t.Fatalf("objects copy: %+v, %v", rep, err)
	}
	if _, err := m.RewriteObjectKeys(ctx); err != nil {
		t.Fatal(err)
	}
	index, err := pineconevector.Open(srv.Host(), raw.Dimension(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer index.Close()
	var conn *pinecone.IndexConnection
	if !raw.As(&conn) {
		t.Fatal("no IndexConnection")
	}
	vo := &legacy.VectorOptions{Source: legacy.PineconeSource(conn), Layout: legacy.LayoutShared, SharedNamespace: sharedNS, UserKey: "user_id", Target: index}
	if rep, err := m.MigrateVectors(ctx, vo); err != nil || rep.Copied != 2 || !rep.OK() {
		t.Fatalf("vectors copy: %+v, %v", rep, err)
	}
	for what, verify := range map[string]func() (*legacy.VerifyReport, error){
		"rows":    func() (*legacy.VerifyReport, error) { return m.Verify(ctx) },
		"objects": func() (*legacy.VerifyReport, error) { return m.VerifyObjects(ctx, oo) },
		"vectors": func() (*legacy.VerifyReport, error) { return m.VerifyVectors(ctx, vo) },
	} {
		if vr, err := verify(); err != nil || !vr.OK() {
			t.Fatalf("verify %s: %v\n%s", what, err, vr)
		}
	}
	if _, err := m.Enforce(ctx); err != nil {
		t.Fatal(err)
	}
	grant, err := m.AppRoleSQL(ctx, pgtest.AppRole)
	if err != nil {
		t.Fatal(err)
	}
	db.Owner.MustExec(grant)
	users, err := m.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]clone.CloneContext{}
	for _, u := range users {
		if out[u.UserID], err = u.Context(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// ReadOriginal reads a migrated document's original, named by its object key in the
// clone's layout, through the clone-scoped bucket.
func ReadOriginal(ctx context.Context, stack *cloneiso.Stack, cc clone.CloneContext, d records.Document) ([]byte, error) {
	prefix, err := objectstore.Prefix(cc)
	if err != nil {
		return nil, err
	}
	kind, name, ok := strings.Cut(strings.TrimPrefix(d.ObjectKey, prefix), "/")
	if !ok || !strings.HasPrefix(d.ObjectKey, prefix) {
		return nil, clone.Errorf(clone.ErrNotFound, "document %s has no original in the clone (object key %q)", d.ID, d.ObjectKey)
	}
	return stack.Bucket().ReadAll(ctx, cc, kind, name)
}
