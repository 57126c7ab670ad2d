package legacye2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso"
	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/migrate/legacy"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The legacy deployment: two users, each with one document (its original in S3, one
// chunk row, one vector in the shared legacy namespace, as the legacy application
// embedded it).
var (
	falconDoc = uuid.MustParse("0a1b2c3d-0000-4000-8000-000000000001")
	gardenDoc = uuid.MustParse("0a1b2c3d-0000-4000-8000-000000000002")
)

const (
	falconText = "Ziggy is a peregrine falcon. Ziggy nests on the north tower of Saint Olaf's cathedral and hunts pigeons at dawn.\n"
	gardenText = "The tomatoes in the garden need six hours of sun. Basil grows beside the tomatoes and keeps pests away.\n"
	question   = "Where does Ziggy the falcon nest?"
	sharedNS   = "legacy-shared"
)

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

// TestMigratedDataAnswers (issue 21, item 8): after the documented migration of a
// legacy deployment, the SDK — cloneiso.New on the migrated database (as the
// application role), bucket and index — answers a migrated user's question from that
// user's migrated document and cites it, once the documents are re-ingested from their
// migrated originals as MIGRATION_GUIDE.md says; the other user's clone, asked the
// same question, never gets that document. Before the re-ingestion the copied legacy
// vectors answer nothing: their IDs are not the SDK's chunk vector IDs.
func TestMigratedDataAnswers(t *testing.T) {
	ctx := context.Background()
	emb, err := embed.NewLocal(nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := generate.NewExtractive(nil)
	if err != nil {
		t.Fatal(err)
	}

	// The legacy deployment.
	db := pgtest.Fresh(t, false)
	db.Owner.MustExec(legacytest.Schema)
	db.Owner.MustExec(legacyData)
	db.Owner.MustExec(legacyChunks, falconText, gardenText)
	s3env := s3test.Require(t)
	bucket := s3test.NewBucket(t, s3env, false)
	for key, body := range map[string]string{"users/u001/documents/falcon.txt": falconText, "users/u002/documents/garden.txt": gardenText} {
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
	vals, err := emb.Embed(ctx, []string{falconText, gardenText})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Upsert(ctx, sharedNS, []driver.Vector{
		{ID: "legacy-falcon-0", Values: vals[0], Metadata: map[string]any{"user_id": "u001", "text": falconText}},
		{ID: "legacy-garden-0", Values: vals[1], Metadata: map[string]any{"user_id": "u002", "text": gardenText}},
	}); err != nil {
		t.Fatal(err)
	}

	// The migration, step by step as in MIGRATION_GUIDE.md.
	users := migrate(t, db, s3env, bucket, srv, raw)

	// The application: the SDK on the migrated stores, as the application role.
	vd, err := pineconevector.NewDriver(srv.Host(), emb.Dimension(), nil)
	if err != nil {
		t.Fatal(err)
	}
	od, err := s3object.OpenDriver(ctx, s3env.Config(), bucket, &s3object.Options{Endpoint: s3env.Endpoint, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	stack, err := cloneiso.New(ctx, db.App.DB, emb, gen, &cloneiso.Options{Vectors: vd, Objects: od})
	if err != nil {
		t.Fatalf("cloneiso.New on the migrated database: %v", err)
	}
	defer stack.Close()
	// Signing in with a legacy user's subject finds the migrated clone.
	ccs := map[string]clone.CloneContext{}
	for _, u := range []string{"u001", "u002"} {
		cc, created, err := stack.Tenants().ProvisionSolo(ctx, u)
		if err != nil || created || cc.CloneID() != users[u].CloneID() || cc.TenantID() != users[u].TenantID() {
			t.Fatalf("sign-in of %s: clone %v (created %v, %v); want the migrated %v", u, cc.CloneID(), created, err, users[u].CloneID())
		}
		ccs[u] = cc
	}

	// The migrated data is the owner's: the document and its original are in u001's clone.
	d, err := records.GetDocument(ctx, stack.DB(), ccs["u001"], falconDoc)
	if err != nil || d.Title != "Ziggy the falcon" {
		t.Fatalf("u001's migrated document: %+v, %v", d, err)
	}
	if b, err := readOriginal(ctx, stack, ccs["u001"], d); err != nil || string(b) != falconText {
		t.Fatalf("u001's migrated original: %q, %v", b, err)
	}

	// As migrated, the clone's vectors are the legacy ones: not the SDK's chunk vectors,
	// so nothing is retrieved.
	r, err := stack.Retriever().Retrieve(ctx, ccs["u001"], question, nil)
	if err != nil || len(r.Passages) != 0 {
		t.Fatalf("retrieval from legacy vectors: %+v, %v; want no passage", r, err)
	}

	// The documented step: re-ingest each clone's migrated documents from their originals.
	for _, u := range []string{"u001", "u002"} {
		n, err := reingestMigrated(ctx, stack, ccs[u])
		if err != nil || n != 1 {
			t.Fatalf("re-ingesting the documents of %s: %d, %v", u, n, err)
		}
		if n, err := reingestMigrated(ctx, stack, ccs[u]); err != nil || n != 0 {
			t.Fatalf("re-ingesting the documents of %s again: %d, %v; want nothing to do", u, n, err)
		}
	}
	d, err = records.GetDocument(ctx, stack.DB(), ccs["u001"], falconDoc)
	var meta struct {
		Folder string `json:"folder"`
	}
	if err == nil {
		err = json.Unmarshal(d.Metadata, &meta)
	}
	if err != nil || d.Title != "Ziggy the falcon" || d.Status != records.StatusReady || meta.Folder != "birds" || ingest.EmbeddingModel(d) != emb.Model() {
		t.Fatalf("u001's document after the re-ingestion: %+v, %v", d, err)
	}

	// u001's clone answers from u001's document and cites it.
	r, err = stack.Retriever().Retrieve(ctx, ccs["u001"], question, nil)
	if err != nil || len(r.Passages) == 0 || r.Passages[0].DocumentID != falconDoc || !strings.Contains(r.Passages[0].Text, "north tower") {
		t.Fatalf("u001's retrieval: %+v, %v", r, err)
	}
	resp, err := stack.Processor().Process(ctx, ccs["u001"], &rag.Request{Question: question, Subject: "u001"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Answer.Content, "Ziggy") || !cites(resp, falconDoc) {
		t.Fatalf("u001's answer %q cites %+v; want the falcon document", resp.Answer.Content, resp.Citations)
	}

	// u002's clone, asked the same, never reaches u001's document.
	r, err = stack.Retriever().Retrieve(ctx, ccs["u002"], question, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Passages {
		if p.DocumentID != gardenDoc || strings.Contains(p.Text, "Ziggy") {
			t.Fatalf("u002's retrieval returned %+v", p)
		}
	}
	resp, err = stack.Processor().Process(ctx, ccs["u002"], &rag.Request{Question: question, Subject: "u002"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(resp.Answer.Content, "Ziggy") || strings.Contains(resp.Answer.Content, "falcon") || cites(resp, falconDoc) {
		t.Fatalf("u002's answer %q cites %+v: u001's document reached u002's clone", resp.Answer.Content, resp.Citations)
	}
	if _, err := records.GetDocument(ctx, stack.DB(), ccs["u002"], falconDoc); !errors.Is(err, clone.ErrNotFound) {
		t.Fatalf("u002 reading u001's document: %v; want not found", err)
	}
}

func cites(resp *rag.Response, doc uuid.UUID) bool {
	return slices.ContainsFunc(resp.Citations, func(c rag.Citation) bool { return c.DocumentID == doc })
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

// readOriginal reads a migrated document's original, named by its object key in the
// clone's layout, through the clone-scoped bucket.
func readOriginal(ctx context.Context, stack *cloneiso.Stack, cc clone.CloneContext, d records.Document) ([]byte, error) {
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

// reingestMigrated is the procedure of MIGRATION_GUIDE.md ("Answering from migrated
// documents"): every document of the clone that the SDK's pipeline did not ingest
// (no embedding model recorded) and whose original was migrated into the clone is
// ingested again from that original, under its own ID, title, source name, content
// type and metadata. It returns how many it re-ingested.
func reingestMigrated(ctx context.Context, stack *cloneiso.Stack, cc clone.CloneContext) (int, error) {
	n, cursor := 0, ""
	for {
		page, err := records.ListDocuments(ctx, stack.DB(), cc, &records.ListOptions{Limit: records.MaxPageSize, Cursor: cursor})
		if err != nil {
			return n, err
		}
		for _, d := range page.Items {
			if ingest.EmbeddingModel(d) != "" || d.ObjectKey == "" {
				continue // the pipeline's own, or no original to ingest from
			}
			data, err := readOriginal(ctx, stack, cc, d)
			if err != nil {
				return n, err
			}
			var meta map[string]any
			if err := json.Unmarshal(d.Metadata, &meta); err != nil {
				return n, err
			}
			if _, err := stack.Pipeline().Ingest(ctx, cc, ingest.Source{DocumentID: d.ID, Title: d.Title, SourceName: d.SourceName,
				ContentType: d.ContentType, Data: data, Metadata: meta}); err != nil {
				return n, err
			}
			n++
		}
		if page.Next == "" {
			return n, nil
		}
		cursor = page.Next
	}
}
