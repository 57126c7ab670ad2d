package legacy_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/migrate/legacy"
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
	if k := kinds(vr); len(k) != 1 || k[legacy.DiscrepancyUnmatched] != len(legacytest.UnmatchedKeys) {
		t.Fatalf("verify: %v\n%s", k, vr)
	}
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
	if vr, _ = m.VerifyObjects(ctx, &deep); len(vr.Discrepancies) != len(legacytest.UnmatchedKeys) {
		t.Fatalf("after repair:\n%s", vr)
	}

	// documents.object_key still names legacy keys: verify says so; the rewrite fixes it
	// without changing any checksum; a key pointed at another clone's object is caught.
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
	if vr, _ = m.VerifyObjects(ctx, &deep); len(vr.Discrepancies) != len(legacytest.UnmatchedKeys) {
		t.Fatalf("verify after deletion:\n%s", vr)
	}
}
