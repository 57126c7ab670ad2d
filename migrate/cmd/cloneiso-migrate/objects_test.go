package main

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/s3test"
)

// TestCLIObjectDecisions runs the object decisions of MIGRATION_GUIDE.md on MinIO
// (issue 21 items 3 and 11): a template the command cannot use exits 2 with what to
// change; plan with two templates accounts for every object and names the refused
// ones; the operator records a prefix out of scope (with its reason), copies the
// objects the SDK refuses under a sanitized name, verifies, and can withdraw the
// decision.
func TestCLIObjectDecisions(t *testing.T) {
	ctx := context.Background()
	env := s3test.Require(t)
	bucket := s3test.NewBucket(t, env, false)
	db := fixtureDB(t)
	db.Owner.MustExec(`UPDATE documents SET object_key = '';
		INSERT INTO documents (id, user_id, title, object_key) VALUES
			(md5('cli-1')::uuid, 'u003', 'scan', 'uploads/u003/2024/05/scan.pdf'),
			(md5('cli-2')::uuid, 'u003', 'nfd', 'users/u003/documents/cafe` + "\u0301" + `.txt')`)
	for key, body := range map[string]string{
		"users/u003/documents/a.txt":              "a",
		"uploads/u003/2024/05/scan.pdf":           "scan",
		"static/logo.png":                         "logo",
		"users/u003/documents/cafe\u0301.txt":     "nfd",
		"users/u004/documents/nested/dir/b.txt":   "b",
		"uploads/u004/2023/12/report-final.pdf":   "report",
		"users/u005/documents/notes/2024/todo.md": "todo",
	} {
		if _, err := env.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := legacytest.Config()
	cfgFile := writeConfig(t, cfg)
	c := &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": db.OwnerURL, "CLONEISO_CONFIG": cfgFile,
		"CLONEISO_S3_ACCESS_KEY": env.AccessKey, "CLONEISO_S3_SECRET_KEY": env.SecretKey,
		"CLONEISO_S3_ENDPOINT": env.Endpoint, "CLONEISO_LEGACY_BUCKET": bucket}}
	c.run(exitOK, "up")
	c.run(exitDiscrepancy, "backfill") // the fixture's rows without a user

	_, errOut := c.run(exitUsage, "objects", "copy", "--key-template", "uploads/{user_id}/{yyyy}/{mm}/{file}")
	mustContain(t, errOut, "{name}", "permanent error")

	c.env["CLONEISO_KEY_TEMPLATE"] = "users/{user_id}/{kind}/{name}, uploads/{user_id}/{yyyy}/{mm}/{name}=uploads"
	out, _ := c.run(exitOK, "plan")
	mustContain(t, out, "objects (dry run): 7 legacy objects listed, 5 to copy, 0 copied, 0 already copied, 0 out of scope, 2 refused",
		"problem: static/logo.png", "fits no key template", "problem: users/u003/documents/cafe\u0301.txt", "--sanitize",
		"row problem: users/u003/documents/cafe\u0301.txt")

	c.run(exitUsage, "objects", "exclude", "--out-of-scope", "static/")
	out, _ = c.run(exitOK, "objects", "exclude", "--out-of-scope", "static/", "--reason", "served by the CDN")
	mustContain(t, out, "recorded out of scope: static/", "out of scope: static/ (declared ")
	out, _ = c.run(exitDiscrepancy, "objects", "copy")
	mustContain(t, out, "5 copied", "1 out of scope", "1 refused")
	out, _ = c.run(exitOK, "objects", "copy", "--sanitize")
	mustContain(t, out, "1 copied", "5 already copied", "1 out of scope", "0 refused")
	out, _ = c.run(exitOK, "objects", "verify")
	mustContain(t, out, "objects: OK")
	out, _ = c.run(exitOK, "objects", "rewrite-keys")
	mustContain(t, out, "documents: 2 object keys rewritten")

	out, _ = c.run(exitOK, "objects", "include", "--out-of-scope", "static/")
	mustContain(t, out, "withdrawn: 1 of 1")
	out, _ = c.run(exitDiscrepancy, "objects", "verify")
	mustContain(t, out, "unmatched [static/logo.png]")
}
