package legacy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/migrate/legacy"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
)

// provisioned returns a legacy database adopted and backfilled (every user has a
// clone), and a Migrator with hook for it.
func provisioned(t *testing.T, hook func(ctx context.Context, point string, n int) error) (*pgtest.DB, *legacy.Migrator) {
	t.Helper()
	db, m := legacyDB(t, 500, nil)
	mustAdopt(t, m)
	if _, err := m.Backfill(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return db, newMigrator(t, db, 500, hook)
}

func listKeys(t *testing.T, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// TestObjectMigration on MinIO: dry run, a copy interrupted twice and resumed, a no-op
// second run, deep verification, a damaged copy caught and repaired, and the separate
// deletion of the legacy keys.
func TestObjectMigration(t *testing.T) {
	env := s3test.Require(t)
	ctx := context.Background()
	bucket := s3test.NewBucket(t, env, false)
	client := env.Client()
	per, err := legacytest.PutObjects(ctx, client, bucket)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range per {
		total += int64(n)
	}
	target, err := s3object.OpenBucket(ctx, env.Config(), bucket, &s3object.Options{Endpoint: env.Endpoint, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()

	stopAt := map[int]bool{25: true, 70: true}
	db, m := provisioned(t, func(ctx context.Context, point string, n int) error {
		if point == "object" && stopAt[n] {
			delete(stopAt, n)
			return errors.New("killed")
		}
		return ctx.Err()
	})
	opts := &legacy.ObjectOptions{Client: client, LegacyBucket: bucket, KeyTemplate: legacytest.LegacyKeyTemplate, Target: target, Concurrency: 3}

	dry := *opts
	dry.DryRun = true
	rep, err := m.MigrateObjects(ctx, &dry)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.PerUser) != legacytest.Users || len(rep.Problems) != len(legacytest.UnmatchedKeys) || rep.Copied != 0 {
		t.Fatalf("dry run: %d users, problems %v, copied %d", len(rep.PerUser), rep.Problems, rep.Copied)
	}
	for _, u := range rep.PerUser {
		if int(u.Objects) != per[u.UserID] {
			t.Fatalf("dry run: user %s has %d objects; want %d", u.UserID, u.Objects, per[u.UserID])
		}
	}
	if keys := listKeys(t, client, bucket, "tenants/"); len(keys) != 0 {
		t.Fatalf("dry run wrote %d objects", len(keys))
	}

	var copied int64
	for run := 0; ; run++ {
		rep, err = m.MigrateObjects(ctx, opts)
		copied += rep.Copied
		if err == nil {
			break
		}
		if err.Error() != "killed" || run > 2 {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	if copied < total || rep.Skipped == 0 {
		t.Fatalf("copied %d of %d objects over the runs; last run skipped %d", copied, total, rep.Skipped)
	}
	rep, err = m.MigrateObjects(ctx, opts)
	if err != nil || rep.Copied != 0 || rep.Skipped != total {
		t.Fatalf("second run: copied %d, skipped %d of %d (%v)", rep.Copied, rep.Skipped, total, err)
	}
	if got := listKeys(t, client, bucket, "tenants/"); int64(len(got)) != total {
		t.Fatalf("%d copies in the clone layout; want %d", len(got), total)
	}

	deep := *opts
	deep.Deep = true
	vr, err := m.VerifyObjects(ctx, &deep)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's documents name objects that were never put: each is reported, as a
	// key rows name that is neither copied nor out of scope.
	var put []string
	for i := 1; i <= legacytest.Users; i++ {
		for k := range legacytest.ObjectsOf(i) {
			put = append(put, k)
		}
	}
	dangling := int(count(t, db, "SELECT count(DISTINCT object_key) FROM documents WHERE object_key <> '' AND object_key <> ALL($1)", pq.StringArray(put)))
	if k := kinds(vr); len(k) != 2 || k[legacy.DiscrepancyUnmatched] != len(legacytest.UnmatchedKeys) || k[legacy.DiscrepancyObjectKey] != dangling || dangling == 0 {
		t.Fatalf("verify: %v (%d dangling keys)\n%s", k, dangling, vr)
	}
	unmatched := len(legacytest.UnmatchedKeys) + dangling
	// Each copy sits in its user's clone, with the legacy content and owner stamps.
	users, _ := m.Users(ctx)
	u7 := users[6]
	cc7, _ := u7.Context()
	for key, want := range legacytest.ObjectsOf(7) {
		name := strings.TrimPrefix(key, "users/u007/documents/")
		got, err := target.ReadAll(ctx, cc7, "documents", name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("copy of %s: %d bytes, %v", key, len(got), err)
		}
	}

	// A damaged copy is caught by the deep verification; a rerun repairs a missing one.
	if _, err := target.Put(ctx, cc7, "documents", "doc-1.txt", strings.NewReader("tampered"), nil); err != nil {
		t.Fatal(err)
	}
	vr, _ = m.VerifyObjects(ctx, &deep)
	if !slices.ContainsFunc(vr.Discrepancies, func(d legacy.Discrepancy) bool { return d.Kind == legacy.DiscrepancyObject && d.UserID == "u007" }) {
		t.Fatalf("damaged copy not caught:\n%s", vr)
	}
	if err := target.Delete(ctx, cc7, "documents", "doc-1.txt"); err != nil {
		t.Fatal(err)
	}
	if rep, err = m.MigrateObjects(ctx, opts); err != nil || rep.Copied != 1 {
		t.Fatalf("repair run copied %d (%v)", rep.Copied, err)
	}
	if vr, _ = m.VerifyObjects(ctx, &deep); len(vr.Discrepancies) != unmatched {
		t.Fatalf("after repair:\n%s", vr)
	}

	// documents.object_key still names legacy keys: verify says so, both the copied
	// ones (to rewrite) and the ones never copied (here: never uploaded), until the
	// operator decides about the latter (here: out of scope).
	vr, err = m.Verify(ctx)
	if err != nil || kinds(vr)[legacy.DiscrepancyObjectKey] != 2 || kinds(vr)[legacy.DiscrepancyChecksum] != 0 ||
		!slices.ContainsFunc(vr.Discrepancies, func(d legacy.Discrepancy) bool {
			return d.Rows == int64(dangling) && strings.Contains(d.Detail, "neither copied")
		}) {
		t.Fatalf("verify before the decision: %v\n%s", err, vr)
	}
	var danglingKeys []string
	db.Owner.Select(&danglingKeys, "SELECT DISTINCT object_key FROM documents WHERE object_key <> '' AND object_key <> ALL($1)", pq.StringArray(put))
	if err := m.DeclareObjectsOutOfScope(ctx, danglingKeys, "the legacy app lost these uploads; the rows stay"); err != nil {
		t.Fatal(err)
	}
	unmatched = len(legacytest.UnmatchedKeys)
	if vr, _ = m.VerifyObjects(ctx, &deep); len(vr.Discrepancies) != unmatched {
		t.Fatalf("objects verify after the decision:\n%s", vr)
	}
	// The rewrite fixes the copied keys without changing any checksum; a key pointed at
	// another clone's object is caught.
	vr, err = m.Verify(ctx)
	if err != nil || kinds(vr)[legacy.DiscrepancyObjectKey] != 1 || kinds(vr)[legacy.DiscrepancyChecksum] != 0 {
		t.Fatalf("verify before the rewrite: %v\n%s", err, vr)
	}
	n, err := m.RewriteObjectKeys(ctx)
	if err != nil || n["documents"] == 0 {
		t.Fatalf("rewrite: %v, %v", n, err)
	}
	var rewritten int64
	db.Owner.Get(&rewritten, "SELECT count(*) FROM documents WHERE object_key LIKE 'tenants/%'")
	if rewritten != n["documents"] {
		t.Fatalf("%d keys rewritten, %d rows name a clone key", n["documents"], rewritten)
	}
	if n, err := m.RewriteObjectKeys(ctx); err != nil || n["documents"] != 0 {
		t.Fatalf("second rewrite: %v, %v", n, err)
	}
	vr, err = m.Verify(ctx)
	if k := kinds(vr); err != nil || k[legacy.DiscrepancyObjectKey] != 0 || k[legacy.DiscrepancyChecksum] != 0 || k[legacy.DiscrepancyWithoutUser] != 2 || len(k) != 1 {
		t.Fatalf("verify after the rewrite: %v\n%s", err, vr)
	}
	db.Owner.MustExec(`CREATE TABLE tampered AS SELECT id, object_key FROM documents WHERE user_id = 'u008' AND object_key LIKE 'tenants/%' LIMIT 1;
		UPDATE documents SET object_key = (SELECT min(object_key) FROM documents WHERE user_id = 'u009' AND object_key LIKE 'tenants/%')
		WHERE id IN (SELECT id FROM tampered)`)
	vr, _ = m.Verify(ctx)
	if k := kinds(vr); k[legacy.DiscrepancyObjectKey] != 1 || k[legacy.DiscrepancyChecksum] != 1 {
		t.Fatalf("key pointed at another clone's object not caught:\n%s", vr)
	}
	db.Owner.MustExec("UPDATE documents d SET object_key = t.object_key FROM tampered t WHERE d.id = t.id; DROP TABLE tampered")

	// Deleting the legacy keys is its own step; unmatched keys stay.
	if rep, err = m.DeleteLegacyObjects(ctx, &legacy.ObjectOptions{Client: client, LegacyBucket: bucket, KeyTemplate: legacytest.LegacyKeyTemplate, Target: target, DryRun: true}); err != nil || rep.Deleted != total {
		t.Fatalf("delete dry run: %d, %v", rep.Deleted, err)
	}
	if got := listKeys(t, client, bucket, "users/"); int64(len(got)) != total+int64(len(legacytest.UnmatchedKeys)) {
		t.Fatalf("dry run deleted objects: %d left", len(got))
	}
	if rep, err = m.DeleteLegacyObjects(ctx, opts); err != nil || rep.Deleted != total || !rep.OK() {
		t.Fatalf("delete: %d of %d, %v, %v", rep.Deleted, total, rep.Problems, err)
	}
	left := listKeys(t, client, bucket, "users/")
	slices.Sort(left)
	want := slices.Sorted(slices.Values(legacytest.UnmatchedKeys))
	if !slices.Equal(left, want) {
		t.Fatalf("legacy keys left: %v; want %v", left, want)
	}
	if rep, err = m.DeleteLegacyObjects(ctx, opts); err != nil || rep.Deleted != 0 {
		t.Fatalf("second delete: %d, %v", rep.Deleted, err)
	}
	if vr, _ = m.VerifyObjects(ctx, &deep); len(vr.Discrepancies) != unmatched {
		t.Fatalf("verify after deletion:\n%s", vr)
	}
}

// objectEnv is a bucket on MinIO, a clone-scoped bucket over it, and the legacy
// database (with every documents.object_key cleared, so that each test names exactly
// the keys it needs), adopted and backfilled after prepare ran on it.
type objectEnv struct {
	client *s3.Client
	bucket string
	target *objectstore.Bucket
	db     *pgtest.DB
	m      *legacy.Migrator
}

func newObjectEnv(t *testing.T, prepare string) *objectEnv {
	t.Helper()
	env := s3test.Require(t)
	ctx := context.Background()
	e := &objectEnv{client: env.Client(), bucket: s3test.NewBucket(t, env, false)}
	var err error
	e.target, err = s3object.OpenBucket(ctx, env.Config(), e.bucket, &s3object.Options{Endpoint: env.Endpoint, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.target.Close() })
	e.db, e.m = legacyDB(t, 500, nil)
	e.db.Owner.MustExec("UPDATE documents SET object_key = ''")
	if prepare != "" {
		e.db.Owner.MustExec(prepare)
	}
	mustAdopt(t, e.m)
	if _, err := e.m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// put writes a legacy object with the raw client.
func (e *objectEnv) put(t *testing.T, key, body, contentType string, md map[string]string) {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), Body: strings.NewReader(body), Metadata: md}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if _, err := e.client.PutObject(context.Background(), in); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// clonePrefix reads a user's clone prefix from the bookkeeping with plain SQL.
func (e *objectEnv) clonePrefix(t *testing.T, user string) string {
	t.Helper()
	var p string
	if err := e.db.Owner.Get(&p, "SELECT 'tenants/' || to_tenant_id || '/clones/' || to_clone_id || '/' FROM cloneiso_legacy_users WHERE user_id = $1", user); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *objectEnv) read(t *testing.T, key string) (string, *s3.GetObjectOutput) {
	t.Helper()
	out, err := e.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return string(b), out
}

func problemKeys(ps []legacy.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Key)
	}
	slices.Sort(out)
	return out
}

func discrepancy(r *legacy.VerifyReport, user string, detail ...string) bool {
	return slices.ContainsFunc(r.Discrepancies, func(d legacy.Discrepancy) bool {
		if d.UserID != user {
			return false
		}
		for _, s := range detail {
			if !strings.Contains(d.Detail, s) {
				return false
			}
		}
		return true
	})
}

// Issue 21 item 2: object verification checks each clone's exact set of objects. An
// extra copy of one user's object in another user's clone, an unknown extra object
// and a missing copy are each a discrepancy of the clone concerned.
func TestObjectVerifyExactSets(t *testing.T) {
	ctx := context.Background()
	e := newObjectEnv(t, "")
	for _, u := range []string{"u004", "u005", "u006"} {
		e.put(t, "users/"+u+"/documents/own.txt", "own file of "+u, "text/plain", nil)
	}
	e.put(t, "users/u004/uploads/scan.bin", "scan of u004", "", nil)
	opts := &legacy.ObjectOptions{Client: e.client, LegacyBucket: e.bucket, KeyTemplate: legacytest.LegacyKeyTemplate, Target: e.target, Deep: true}
	if rep, err := e.m.MigrateObjects(ctx, opts); err != nil || rep.Copied != 4 || !rep.OK() {
		t.Fatalf("copy: %+v, %v", rep, err)
	}
	vr, err := e.m.VerifyObjects(ctx, opts)
	if err != nil || !vr.OK() {
		t.Fatalf("verify after the copy: %v\n%s", err, vr)
	}
	// The owner's copy is where it belongs.
	if body, _ := e.read(t, e.clonePrefix(t, "u004")+"uploads/scan.bin"); body != "scan of u004" {
		t.Fatalf("copy of u004's scan: %q", body)
	}

	// An extra copy of u004's object under u005's clone, written behind the SDK's back.
	e.put(t, e.clonePrefix(t, "u005")+"uploads/scan.bin", "scan of u004", "", nil)
	vr, _ = e.m.VerifyObjects(ctx, opts)
	if len(vr.Discrepancies) != 1 || !discrepancy(vr, "u005", "foreign", "uploads/scan.bin", "u004") {
		t.Fatalf("foreign copy not reported as such:\n%s", vr)
	}
	// An unknown extra object, and a missing copy.
	e.put(t, e.clonePrefix(t, "u006")+"documents/unknown.txt", "?", "", nil)
	if _, err := e.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.clonePrefix(t, "u004") + "documents/own.txt")}); err != nil {
		t.Fatal(err)
	}
	vr, _ = e.m.VerifyObjects(ctx, opts)
	if len(vr.Discrepancies) != 3 || !discrepancy(vr, "u006", "extra", "documents/unknown.txt") || !discrepancy(vr, "u004", "missing", "users/u004/documents/own.txt") {
		t.Fatalf("extra and missing objects:\n%s", vr)
	}
	shallow := *opts
	shallow.Deep = false
	if vr2, _ := e.m.VerifyObjects(ctx, &shallow); len(vr2.Discrepancies) != 3 {
		t.Fatalf("shallow verify:\n%s", vr2)
	}
}

// Issue 21 item 3: every object of the bucket and every key a row names is accounted
// for (copied, refused with a reason, or out of scope by a recorded decision), with
// several templates, one of which has a date in the middle.
func TestObjectAccounting(t *testing.T) {
	ctx := context.Background()
	e := newObjectEnv(t, `
		INSERT INTO documents (id, user_id, title, object_key) VALUES
			(md5('acct-1')::uuid, 'u003', 'upload', 'uploads/u003/2024/05/scan.pdf'),
			(md5('acct-2')::uuid, 'u003', 'gone', 'users/u003/documents/gone.txt'),
			(md5('acct-3')::uuid, 'u004', 'not mine', 'users/u003/documents/a.txt'),
			(md5('acct-4')::uuid, 'u004', 'logo', 'static/logo.png'),
			(md5('acct-5')::uuid, 'u004', 'mine', 'users/u004/documents/b.txt')`)
	e.put(t, "users/u003/documents/a.txt", "a of u003", "text/plain", nil)
	e.put(t, "users/u004/documents/b.txt", "b of u004", "text/plain", nil)
	e.put(t, "uploads/u003/2024/05/scan.pdf", "scan of u003", "application/pdf", nil)
	e.put(t, "uploads/u004/2023/12/old.pdf", "old of u004", "application/pdf", nil)
	e.put(t, "static/logo.png", "logo", "image/png", nil)
	e.put(t, "static/css/site.css", "css", "text/css", nil)
	e.put(t, "misc/orphan.bin", "?", "", nil)
	e.put(t, "robots.txt", "robots", "text/plain", nil)
	const listed = 8

	// A template the migration cannot use is bad input, with what to change.
	bad := &legacy.ObjectOptions{Client: e.client, LegacyBucket: e.bucket, KeyTemplate: "uploads/{user_id}/{yyyy}/{mm}/{file}", Target: e.target, DryRun: true}
	if _, err := e.m.MigrateObjects(ctx, bad); !errors.Is(err, clone.ErrInvalidInput) || !strings.Contains(err.Error(), "{name}") {
		t.Fatalf("unusable template: %v", err)
	}

	opts := &legacy.ObjectOptions{Client: e.client, LegacyBucket: e.bucket, KeyTemplate: legacytest.LegacyKeyTemplate, Target: e.target,
		Templates: []legacy.KeyTemplate{{Template: "uploads/{user_id}/{yyyy}/{mm}/{name}", Kind: "uploads"}}, Deep: true}
	dry := *opts
	dry.DryRun = true
	rep, err := e.m.MigrateObjects(ctx, &dry)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused := []string{"misc/orphan.bin", "robots.txt", "static/css/site.css", "static/logo.png"}
	if rep.Listed != listed || rep.ToCopy != 4 || rep.OutOfScope != 0 || !slices.Equal(problemKeys(rep.Problems), wantRefused) {
		t.Fatalf("plan: listed %d, to copy %d, out of scope %d, refused %v", rep.Listed, rep.ToCopy, rep.OutOfScope, problemKeys(rep.Problems))
	}
	// Rows: a missing object, another user's object, an object refused.
	if rep.References != 5 || !slices.Equal(problemKeys(rep.RowProblems), []string{"static/logo.png", "users/u003/documents/a.txt", "users/u003/documents/gone.txt"}) {
		t.Fatalf("plan: %d references, row problems %v", rep.References, rep.RowProblems)
	}

	// The operator declares the public assets out of scope; robots.txt stays refused.
	if err := e.m.DeclareObjectsOutOfScope(ctx, []string{"static/"}, "public assets served by the CDN"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DeclareObjectsOutOfScope(ctx, []string{"tenants/x"}, "no"); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("declaring the clone layout out of scope: %v", err)
	}
	rep, _ = e.m.MigrateObjects(ctx, &dry)
	if rep.OutOfScope != 2 || rep.ToCopy+rep.OutOfScope+int64(len(rep.Problems)) != rep.Listed || len(rep.RowProblems) != 2 {
		t.Fatalf("plan with the decision: %+v", rep)
	}
	scope, err := e.m.ObjectsOutOfScope(ctx)
	if err != nil || len(scope) != 1 || scope[0].Entry != "static/" || scope[0].Reason == "" {
		t.Fatalf("recorded scope: %v, %v", scope, err)
	}

	rep, err = e.m.MigrateObjects(ctx, opts)
	if err != nil || rep.Copied != 4 || rep.Copied+rep.OutOfScope+int64(len(rep.Problems)) != listed {
		t.Fatalf("copy: %+v, %v", rep, err)
	}
	if body, out := e.read(t, e.clonePrefix(t, "u003")+"uploads/2024/05/scan.pdf"); body != "scan of u003" || aws.ToString(out.ContentType) != "application/pdf" {
		t.Fatalf("copy of the upload: %q", body)
	}
	vr, err := e.m.VerifyObjects(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if k := kinds(vr); len(k) != 2 || k[legacy.DiscrepancyUnmatched] != 2 || k[legacy.DiscrepancyObjectKey] != 2 {
		t.Fatalf("verify: %v\n%s", k, vr)
	}
	if _, err := e.m.RewriteObjectKeys(ctx); err != nil {
		t.Fatal(err)
	}
	var key string
	e.db.Owner.Get(&key, "SELECT object_key FROM documents WHERE id = md5('acct-1')::uuid")
	if key != e.clonePrefix(t, "u003")+"uploads/2024/05/scan.pdf" {
		t.Fatalf("row of the upload names %s", key)
	}
	e.db.Owner.Get(&key, "SELECT object_key FROM documents WHERE id = md5('acct-4')::uuid")
	if key != "static/logo.png" {
		t.Fatalf("row naming an out-of-scope object names %s", key)
	}

	// Deleting the legacy keys spares an object declared out of scope after its copy.
	if err := e.m.DeclareObjectsOutOfScope(ctx, []string{"uploads/u004/"}, "kept for the old app's archive"); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.m.DeleteLegacyObjects(ctx, opts); err != nil || rep.Deleted != 3 || rep.OutOfScope != 1 || !rep.OK() {
		t.Fatalf("delete: %+v, %v", rep, err)
	}
	if left := listKeys(t, e.client, e.bucket, "uploads/"); !slices.Equal(left, []string{"uploads/u004/2023/12/old.pdf"}) {
		t.Fatalf("legacy uploads left: %v", left)
	}

	// The decision is reversible: withdrawn, the assets are problems again.
	if n, err := e.m.WithdrawObjectsOutOfScope(ctx, []string{"static/", "uploads/u004/"}); err != nil || n != 2 {
		t.Fatalf("withdraw: %d, %v", n, err)
	}
	if rep, _ = e.m.MigrateObjects(ctx, &dry); rep.OutOfScope != 0 || len(rep.Problems) != 4 || rep.ToCopy != 1 {
		t.Fatalf("after withdrawing: %+v", rep)
	}
}

// Issue 21 item 11: objects no option can migrate as they are (a name in NFD, a "%xx"
// escape, a "_" metadata key, an unparsable Content-Type) are refused, then copied
// with Sanitize under a recorded sanitized form, and the rows naming them follow.
func TestObjectSanitize(t *testing.T) {
	ctx := context.Background()
	nfd, nfc := "users/u003/documents/cafe\u0301.txt", "users/u003/documents/caf\u00e9.txt"
	e := newObjectEnv(t, `
		INSERT INTO documents (id, user_id, title, object_key) VALUES
			(md5('san-1')::uuid, 'u003', 'nfd', '`+nfd+`'),
			(md5('san-2')::uuid, 'u003', 'escape', 'users/u003/documents/100%41.txt')`)
	e.put(t, nfd, "decomposed", "text/plain", nil)
	e.put(t, nfc, "composed", "text/plain", nil)
	e.put(t, "users/u003/documents/100%41.txt", "escaped", "text/plain", nil)
	e.put(t, "users/u003/documents/meta.txt", "meta", "text/plain", map[string]string{"_secret": "x", "owner": "u003"})
	e.put(t, "users/u003/documents/type.txt", "type", "text/plain; charset", nil)
	opts := &legacy.ObjectOptions{Client: e.client, LegacyBucket: e.bucket, KeyTemplate: legacytest.LegacyKeyTemplate, Target: e.target, Deep: true}

	// The dry run foresees every refusal, names and metadata alike.
	dry := *opts
	dry.DryRun = true
	rep, err := e.m.MigrateObjects(ctx, &dry)
	if err != nil || rep.ToCopy != 1 || len(rep.Problems) != 4 || len(rep.RowProblems) != 2 {
		t.Fatalf("plan without sanitizing: %+v, %v", rep, err)
	}
	dry.Sanitize = true
	if rep, err = e.m.MigrateObjects(ctx, &dry); err != nil || rep.ToCopy != 5 || rep.Sanitized != 4 || !rep.OK() {
		t.Fatalf("plan with Sanitize: %+v, %v", rep, err)
	}
	rep, err = e.m.MigrateObjects(ctx, opts)
	if err != nil || rep.Copied != 1 || len(rep.Problems) != 4 {
		t.Fatalf("copy without sanitizing: %+v, %v", rep, err)
	}
	for _, p := range rep.Problems {
		if !strings.Contains(p.Reason, "sanitize") {
			t.Fatalf("problem without its remedy: %+v", p)
		}
	}
	san := *opts
	san.Sanitize = true
	rep, err = e.m.MigrateObjects(ctx, &san)
	if err != nil || rep.Copied != 4 || rep.Skipped != 1 || !rep.OK() || rep.Sanitized != 2 {
		t.Fatalf("copy with Sanitize: %+v, %v", rep, err)
	}
	prefix := e.clonePrefix(t, "u003")
	var ledger []struct {
		Key     string `db:"legacy_key"`
		NewKey  string `db:"new_key"`
		Changes string `db:"changes"`
	}
	if err := e.db.Owner.Select(&ledger, "SELECT legacy_key, new_key, changes FROM cloneiso_legacy_objects ORDER BY legacy_key"); err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for _, l := range ledger {
		got[l.Key] = [2]string{strings.TrimPrefix(l.NewKey, prefix), l.Changes}
	}
	if got[nfc][0] != "documents/caf\u00e9.txt" || got[nfc][1] != "" {
		t.Fatalf("NFC object: %v", got[nfc])
	}
	if n := got[nfd][0]; !strings.HasPrefix(n, "documents/caf\u00e9~") || !strings.HasSuffix(n, ".txt") || got[nfd][1] == "" {
		t.Fatalf("NFD object (its NFC name is taken): %v", got[nfd])
	}
	if got["users/u003/documents/100%41.txt"][0] != "documents/100_41.txt" {
		t.Fatalf("escaped name: %v", got["users/u003/documents/100%41.txt"])
	}
	if c := got["users/u003/documents/meta.txt"]; c[0] != "documents/meta.txt" || !strings.Contains(c[1], "_secret") {
		t.Fatalf("metadata: %v", c)
	}
	if c := got["users/u003/documents/type.txt"]; !strings.Contains(c[1], "content type") {
		t.Fatalf("content type: %v", c)
	}
	if body, _ := e.read(t, prefix+got[nfd][0]); body != "decomposed" {
		t.Fatalf("copy of the NFD object: %q", body)
	}
	if _, out := e.read(t, prefix+"documents/meta.txt"); out.Metadata["legacy-secret"] != "x" || out.Metadata["owner"] != "u003" {
		t.Fatalf("metadata of the copy: %v", out.Metadata)
	}
	if _, out := e.read(t, prefix+"documents/type.txt"); aws.ToString(out.ContentType) != "application/octet-stream" {
		t.Fatalf("content type of the copy: %s", aws.ToString(out.ContentType))
	}
	if vr, err := e.m.VerifyObjects(ctx, &san); err != nil || !vr.OK() {
		t.Fatalf("verify: %v\n%s", err, vr)
	}
	// A later step without Sanitize finds the sanitized copies by their recorded names.
	if vr, err := e.m.VerifyObjects(ctx, opts); err != nil || !vr.OK() {
		t.Fatalf("verify without Sanitize: %v\n%s", err, vr)
	}
	if rep, err := e.m.MigrateObjects(ctx, opts); err != nil || rep.Skipped != 5 || !rep.OK() {
		t.Fatalf("copy again without Sanitize: %+v, %v", rep, err)
	}
	// The rows follow the sanitized copies, and read them through the SDK.
	if n, err := e.m.RewriteObjectKeys(ctx); err != nil || n["documents"] != 2 {
		t.Fatalf("rewrite: %v, %v", n, err)
	}
	var keys []string
	e.db.Owner.Select(&keys, "SELECT object_key FROM documents WHERE id IN (md5('san-1')::uuid, md5('san-2')::uuid) ORDER BY title")
	if len(keys) != 2 || keys[0] != prefix+"documents/100_41.txt" || keys[1] != prefix+got[nfd][0] {
		t.Fatalf("rewritten keys: %v", keys)
	}
	if vr, err := e.m.Verify(ctx); err != nil || kinds(vr)[legacy.DiscrepancyObjectKey] != 0 || kinds(vr)[legacy.DiscrepancyChecksum] != 0 {
		t.Fatalf("sql verify: %v\n%s", err, vr)
	}
	if rep, err := e.m.DeleteLegacyObjects(ctx, &san); err != nil || rep.Deleted != 5 || !rep.OK() {
		t.Fatalf("delete: %+v, %v", rep, err)
	}
}
