package legacy_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// driftSQL makes the legacy fixture look like a deployment whose tables drifted from the
// SDK's: a legacy table named clones, a bigserial key where the SDK has a uuid, a
// nullable column the SDK scans (with NULLs in it), a column the SDK has and the legacy
// table lacks, and a NOT NULL column the SDK does not know.
const driftSQL = `
CREATE TABLE clones (id bigserial PRIMARY KEY, name text NOT NULL);
INSERT INTO clones (name) VALUES ('a legacy clone of something else');
CREATE TABLE training_examples (id bigserial PRIMARY KEY, user_id text, prompt text NOT NULL, response text NOT NULL);
INSERT INTO training_examples (user_id, prompt, response) VALUES ('u001', 'q', 'a');
ALTER TABLE documents ALTER COLUMN title DROP NOT NULL;
UPDATE documents SET title = NULL WHERE id IN (SELECT id FROM documents WHERE user_id = 'u003');
ALTER TABLE messages DROP COLUMN citations;
ALTER TABLE conversations ADD COLUMN legacy_flag integer NOT NULL DEFAULT 0;
ALTER TABLE conversations ALTER COLUMN legacy_flag DROP DEFAULT;
`

// TestSchemaPrerequisites: plan lists every difference from the SDK's tables with its
// fix, and up refuses (changing nothing) until they are fixed, instead of failing
// half-way ("create clone_grants: column tenant_id does not exist") or, worse,
// succeeding on data the SDK's repositories cannot read. After the fixes plan says, the
// migration runs to the end and clone/records, as the application role, reads each
// user's migrated rows in that user's clone.
func TestSchemaPrerequisites(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	db.Owner.MustExec(driftSQL)
	m := decidedMigrator(t, db, nil, legacy.DecisionQuarantine)
	p, err := m.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]legacy.SchemaProblem{}
	for _, sp := range p.SchemaProblems {
		got[sp.Table+"."+sp.Column] = sp
	}
	for key, want := range map[string]string{
		"clones.":                      `ALTER TABLE "clones" RENAME TO "legacy_clones"`,
		"training_examples.id":         "no cast from bigint to uuid",
		"training_examples.metadata":   "ADD COLUMN \"metadata\" jsonb NOT NULL DEFAULT '{}'::jsonb",
		"documents.title":              "UPDATE \"documents\" SET \"title\" = ''::text WHERE \"title\" IS NULL; ALTER TABLE \"documents\" ALTER COLUMN \"title\" SET NOT NULL",
		"messages.citations":           "ADD COLUMN \"citations\" jsonb NOT NULL DEFAULT '[]'::jsonb",
		"conversations.legacy_flag":    "DROP NOT NULL",
		"training_examples.created_at": "ADD COLUMN \"created_at\" timestamp with time zone NOT NULL DEFAULT now()",
		"training_examples.updated_at": "DEFAULT now()",
	} {
		sp, ok := got[key]
		if !ok || !strings.Contains(sp.Fix, want) {
			t.Errorf("plan: %s: got %q; want a fix with %q", key, sp, want)
		}
	}
	if len(p.SchemaProblems) != 8 {
		t.Errorf("plan lists %d schema problems; want 8:\n%v", len(p.SchemaProblems), p.SchemaProblems)
	}
	nulls := count(t, db, "SELECT count(*) FROM documents WHERE title IS NULL")
	if want := "nullable (" + strconv.FormatInt(nulls, 10) + " rows are NULL)"; nulls == 0 || !strings.HasPrefix(got["documents.title"].Problem, want) {
		t.Errorf("documents.title: %s; want %q", got["documents.title"], want)
	}

	_, err = m.Adopt(ctx)
	if clone.KindOf(err) != clone.ErrInvalidInput || !strings.Contains(err.Error(), "legacy_clones") {
		t.Fatalf("adopt with schema problems: %v (kind %v)", err, clone.KindOf(err))
	}
	if n := count(t, db, "SELECT count(*) FROM pg_tables WHERE tablename IN ('tenants', 'clone_grants') OR tablename LIKE 'cloneiso%'"); n != 0 {
		t.Fatalf("the refused adoption created %d tables", n)
	}

	// The operator applies the fixes plan gave: the SQL ones as they are; the bigint key
	// by keeping the legacy training data as a table of its own.
	for _, sp := range p.SchemaProblems {
		if sp.Table != "training_examples" {
			db.Owner.MustExec(sp.Fix)
		}
	}
	db.Owner.MustExec("ALTER TABLE training_examples RENAME TO legacy_training_examples")
	if p, err = m.Plan(ctx); err != nil || len(p.SchemaProblems) != 0 {
		t.Fatalf("plan after the fixes: %v, %v", p.SchemaProblems, err)
	}
	mustAdopt(t, m)
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if vr, err := m.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("verify: %v\n%s", err, vr)
	}
	if _, err := m.Enforce(ctx); err != nil {
		t.Fatalf("enforce: %v", err)
	}
	readThroughRecords(t, db, m)
}

// readThroughRecords: the SDK's repositories, connected as the application role, list
// exactly each user's migrated rows in that user's clone.
func readThroughRecords(t *testing.T, db *pgtest.DB, m *legacy.Migrator) {
	t.Helper()
	ctx := context.Background()
	if err := db.Grant(ctx); err != nil {
		t.Fatal(err)
	}
	app, err := clonesql.New(db.App.DB, nil)
	if err != nil {
		t.Fatal(err)
	}
	users, err := m.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := &records.ListOptions{Limit: records.MaxPageSize}
	for _, u := range users[:8] {
		cc, err := u.Context()
		if err != nil {
			t.Fatal(err)
		}
		docs, err := records.ListDocuments(ctx, app, cc, all)
		if err != nil {
			t.Fatalf("ListDocuments of %s: %v", u.UserID, err)
		}
		ins, err := records.ListInsights(ctx, app, cc, all)
		if err != nil {
			t.Fatalf("ListInsights of %s: %v", u.UserID, err)
		}
		convs, err := records.ListConversations(ctx, app, cc, all)
		if err != nil {
			t.Fatalf("ListConversations of %s: %v", u.UserID, err)
		}
		var msgs, chunks int64
		for _, c := range convs.Items {
			pg, err := records.ListMessages(ctx, app, cc, c.ID, all)
			if err != nil {
				t.Fatalf("ListMessages of %s: %v", u.UserID, err)
			}
			msgs += int64(len(pg.Items))
		}
		for _, d := range docs.Items {
			pg, err := records.ListDocumentChunks(ctx, app, cc, d.ID, all)
			if err != nil {
				t.Fatalf("ListDocumentChunks of %s: %v", u.UserID, err)
			}
			chunks += int64(len(pg.Items))
		}
		for what, c := range map[string][2]int64{
			"documents":       {int64(len(docs.Items)), count(t, db, "SELECT count(*) FROM documents WHERE user_id = $1", u.UserID)},
			"insights":        {int64(len(ins.Items)), count(t, db, "SELECT count(*) FROM insights WHERE user_id = $1", u.UserID)},
			"conversations":   {int64(len(convs.Items)), count(t, db, "SELECT count(*) FROM conversations WHERE user_id = $1", u.UserID)},
			"messages":        {msgs, count(t, db, "SELECT count(*) FROM messages WHERE user_id = $1", u.UserID)},
			"document_chunks": {chunks, count(t, db, "SELECT count(*) FROM document_chunks WHERE user_id = $1", u.UserID)},
		} {
			if c[0] != c[1] {
				t.Fatalf("clone of %s: clone/records lists %d %s; the user had %d", u.UserID, c[0], what, c[1])
			}
		}
	}
}
