package adversarial_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

// hostTable is a host application's own clone-owned table, made as the README tells
// hosts to: tenant_id and clone_id columns, a key led by tenant_id, and the SDK's
// forced, fail-closed policy.
const hostTable = `
CREATE TABLE notes (
    tenant_id uuid NOT NULL,
    clone_id  uuid NOT NULL,
    id        uuid NOT NULL,
    body      text NOT NULL,
    PRIMARY KEY (tenant_id, clone_id, id)
);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY clone_isolation ON notes
    USING (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid));`

// TestForcedRLS migrates a fresh database as a non-superuser role, so that this role
// owns every table (as when an application runs its own migrations), adds a host's
// clone-owned table, and asks CheckIsolation which tables are clone-owned. On every one
// of them, with rows of two clones present (seen through the superuser), the owning
// role must see no row without a scope (row-level security forced on the owner), none
// with the settings set to ” (what a pooled connection reads after an earlier
// transaction: the policy fails closed), and only the scoped clone's rows when scoped.
func TestForcedRLS(t *testing.T) {
	ctx := context.Background()
	admin, err := sql.Open("postgres", pgtest.Server(t).String())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [4]byte
	rand.Read(b[:])
	role := "adv_owner_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE ROLE "+pq.QuoteIdentifier(role)+" LOGIN PASSWORD 'adv' NOSUPERUSER NOBYPASSRLS"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP ROLE IF EXISTS " + pq.QuoteIdentifier(role)) })
	db := pgtest.Fresh(t, false) // dropped before the role (cleanups run last-in first-out)
	if _, err := db.Owner.ExecContext(ctx, "GRANT CREATE, USAGE ON SCHEMA public TO "+pq.QuoteIdentifier(role)); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(db.OwnerURL)
	u.User = url.UserPassword(role, "adv")
	owning, err := clonesql.OpenPostgres(u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		owning.Close()
		db.Owner.Exec("DROP OWNED BY " + pq.QuoteIdentifier(role))
	}()
	if err := migrate.Up(ctx, owning, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := owning.ExecContext(ctx, hostTable); err != nil {
		t.Fatal(err)
	}
	rep, err := migrate.CheckIsolation(ctx, owning, &migrate.CheckOptions{Tables: []string{"notes"}})
	if err != nil {
		t.Fatal(err)
	}
	tables := rep.Tables
	for _, want := range append(migrate.CloneOwnedTables(), "notes") {
		if !slices.Contains(tables, want) {
			t.Fatalf("CheckIsolation does not know clone-owned table %s (it knows %v)", want, tables)
		}
	}

	// Rows of two clones in every table, written through the SDK as each clone.
	tenants, _ := tenant.NewStore(owning, nil)
	sdb, _ := clonesql.New(owning, nil)
	var ccs []clone.CloneContext
	for _, s := range []string{"x", "y"} {
		cc, _, err := tenants.ProvisionSolo(ctx, "rls-"+s+"-"+uuid.NewString())
		if err != nil {
			t.Fatal(err)
		}
		ccs = append(ccs, cc)
		seedEveryTable(t, sdb, cc)
	}

	for _, table := range tables {
		t.Run(table, func(t *testing.T) {
			q := pq.QuoteIdentifier(table)
			var all int
			if err := db.Owner.GetContext(ctx, &all, "SELECT count(*) FROM "+q); err != nil {
				t.Fatal(err)
			}
			if all < 2 {
				t.Fatalf("%s holds %d rows; the test seeds every clone-owned table with both clones' rows (extend seedEveryTable)", table, all)
			}
			count := func(tenantSetting, cloneSetting *string, where string, args ...any) int {
				t.Helper()
				tx, err := owning.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				if tenantSetting != nil {
					if _, err := tx.ExecContext(ctx, `SELECT set_config('cloneiso.tenant_id', $1, true), set_config('cloneiso.clone_id', $2, true)`, *tenantSetting, *cloneSetting); err != nil {
						t.Fatal(err)
					}
				}
				var n int
				if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+q+where, args...).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := count(nil, nil, ""); n != 0 {
				t.Errorf("LEAK: the owning role sees %d of %d rows of %s without a scope (row-level security not forced)", n, all, table)
			}
			empty := ""
			if n := count(&empty, &empty, ""); n != 0 {
				t.Errorf("LEAK: with the settings set to '' the owning role sees %d of %d rows of %s (the policy fails open)", n, all, table)
			}
			x := ccs[0]
			xt, xc := x.TenantID().String(), x.CloneID().String()
			if n := count(&xt, &xc, " WHERE tenant_id = $1 AND clone_id = $2", xt, xc); n == 0 {
				t.Errorf("scoped to clone x, the owning role sees none of x's rows of %s", table)
			}
			if n := count(&xt, &xc, " WHERE NOT (tenant_id = $1 AND clone_id = $2)", xt, xc); n != 0 {
				t.Errorf("LEAK: scoped to clone x, the owning role sees %d rows of %s of other clones", n, table)
			}
		})
	}
}

// seedEveryTable writes one row of cc into every clone-owned table, the host's
// included.
func seedEveryTable(t *testing.T, db *clonesql.DB, cc clone.CloneContext) {
	t.Helper()
	ctx := context.Background()
	if _, err := records.CreateInsight(ctx, db, cc, records.Insight{Content: "rls"}); err != nil {
		t.Fatal(err)
	}
	doc, err := records.CreateDocument(ctx, db, cc, records.Document{Title: "rls", Status: records.StatusReady})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := records.ReplaceDocumentChunks(ctx, db, cc, doc.ID, []records.Chunk{{Ordinal: 0, Content: "rls", VectorID: "v"}}); err != nil {
		t.Fatal(err)
	}
	conv, err := records.CreateConversation(ctx, db, cc, records.Conversation{Title: "rls"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := records.AppendMessage(ctx, db, cc, records.Message{ConversationID: conv.ID, Role: records.RoleUser, Content: "rls"}); err != nil {
		t.Fatal(err)
	}
	if _, err := records.CreateTrainingExample(ctx, db, cc, records.TrainingExample{Prompt: "p", Response: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, cc, `INSERT INTO notes (tenant_id, clone_id, id, body) VALUES (:tenant_id, :clone_id, :id, 'rls')`, map[string]any{"id": uuid.New()}); err != nil {
		t.Fatal(err)
	}
}
