package legacy_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// TestTraversalKeys: every way a key can step out of its user's prefix is recognized —
// "..", "." and empty segments, percent-encoded (once or twice) or behind a backslash,
// an encoded separator — and names that merely contain dots or escapes are not.
func TestTraversalKeys(t *testing.T) {
	for _, k := range []string{
		"users/u001/documents/../../u002/secret.txt",
		"users/u001/./documents/x.txt",
		"users/u001/documents/./x.txt",
		"users/u001//documents/x.txt",
		"users/u001/documents//x.txt",
		"/users/u001/documents/x.txt",
		"users/u001/documents/%2e%2e/%2e%2e/u002/secret.txt",
		"users/u001/documents/%2E%2E/x.txt",
		"users/u001/documents/%252e%252e/x.txt",
		"users/u001/documents/.%2e/x.txt",
		"users/u001/documents/..%5c..%5cu002%5csecret.txt",
		"users/u001/documents/..\\..\\u002\\secret.txt",
		"users/u001/documents/a%2f..%2fb.txt",
		"users/u001/documents/a%2fb.txt",
		"users/..",
	} {
		if legacy.Traversal(k) == "" {
			t.Errorf("%q: not recognized as a path traversal", k)
		}
	}
	for _, k := range []string{
		"users/u001/documents/x.txt",
		"users/u001/documents/..x.txt",
		"users/u001/documents/x..txt",
		"users/u001/documents/.hidden",
		"users/u002/documents/bad%2e%2e/name.txt",
		"users/u001/documents/100%41.txt",
		"users/u001/documents/", // a folder marker
		"users/u001/documents/a\\b.txt",
	} {
		if why := legacy.Traversal(k); why != "" {
			t.Errorf("%q: taken for a path traversal: %s", k, why)
		}
	}
}

// TestObjectTraversalRefused on MinIO: objects whose keys traverse (encoded, as MinIO
// stores them) are refused — with Sanitize too, which would otherwise turn them into
// valid names — and copied into neither user's clone; rows naming traversal keys
// (stored or not) are row problems; verify reports the objects as unmatched.
func TestObjectTraversalRefused(t *testing.T) {
	ctx := context.Background()
	keys := []string{
		"users/u001/documents/%2e%2e/%2e%2e/u002/secret.txt",
		"users/u001/documents/%252e%252e/%252e%252e/u002/secret.txt",
		"users/u001/documents/..%2f..%2fu002%2fsecret.txt",
		"users/u001/documents/.%2e/x.txt",
	}
	dotted := "users/u001/documents/../../u002/secret.txt" // real S3 stores it; MinIO refuses it
	e := newObjectEnv(t, `INSERT INTO documents (id, user_id, title, object_key) VALUES
		(md5('tr-1')::uuid, 'u001', 'traversal', '`+dotted+`'),
		(md5('tr-2')::uuid, 'u001', 'encoded traversal', '`+keys[0]+`')`)
	for _, k := range keys {
		e.put(t, k, "not u001's", "text/plain", nil)
	}
	e.put(t, "users/u001/documents/ok.txt", "u001's", "text/plain", nil)
	e.put(t, "users/u002/documents/secret.txt", "u002's secret", "text/plain", nil)
	opts := &legacy.ObjectOptions{Client: e.client, LegacyBucket: e.bucket, KeyTemplate: legacytest.LegacyKeyTemplate, Target: e.target, Deep: true, Sanitize: true}

	check := func(what string, rep *legacy.ObjectReport) {
		t.Helper()
		problems := problemKeys(rep.Problems)
		for _, k := range keys {
			i := slices.Index(problems, k)
			if i < 0 || !strings.Contains(rep.Problems[i].Reason, "path traversal") {
				t.Fatalf("%s: %s not refused as a path traversal: %+v", what, k, rep.Problems)
			}
		}
		if len(rep.Problems) != len(keys) {
			t.Fatalf("%s: problems %+v; want the %d traversal keys", what, rep.Problems, len(keys))
		}
		rows := problemKeys(rep.RowProblems)
		if !slices.Contains(rows, dotted) || !slices.Contains(rows, keys[0]) || len(rows) != 2 {
			t.Fatalf("%s: row problems %+v; want the two rows naming traversal keys", what, rep.RowProblems)
		}
	}
	dry := *opts
	dry.DryRun = true
	rep, err := e.m.MigrateObjects(ctx, &dry)
	if err != nil || rep.ToCopy != 2 {
		t.Fatalf("plan: %+v, %v", rep, err)
	}
	check("plan", rep)
	rep, err = e.m.MigrateObjects(ctx, opts)
	if err != nil || rep.Copied != 2 || rep.Sanitized != 0 {
		t.Fatalf("copy: %+v, %v", rep, err)
	}
	check("copy", rep)
	for user, want := range map[string][]string{"u001": {"ok.txt"}, "u002": {"secret.txt"}} {
		prefix := e.clonePrefix(t, user)
		var got []string
		for _, k := range listKeys(t, e.client, e.bucket, prefix) {
			got = append(got, strings.TrimPrefix(k, prefix+"documents/"))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("clone of %s holds %q; want %q", user, got, want)
		}
	}
	if n := count(t, e.db, "SELECT count(*) FROM cloneiso_legacy_objects WHERE legacy_key LIKE '%\\%%' OR legacy_key LIKE '%..%'"); n != 0 {
		t.Fatalf("%d traversal keys in the copy ledger", n)
	}
	vr, err := e.m.VerifyObjects(ctx, opts)
	if err != nil || vr.OK() {
		t.Fatalf("verify accepts the traversal keys: %v\n%s", err, vr)
	}
	for _, k := range keys {
		if !strings.Contains(vr.String(), k) {
			t.Fatalf("verify does not name %s:\n%s", k, vr)
		}
	}
}
