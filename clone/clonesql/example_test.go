package clonesql_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "clonesql-example-")
	defer os.RemoveAll(dir)

	raw, _ := sqlitedb.Open(filepath.Join(dir, "app.db")) // clonesql.OpenPostgres(dsn) in production
	defer raw.Close()
	if err := migrate.Up(ctx, raw, nil); err != nil {
		panic(err)
	}
	tenants, _ := tenant.NewStore(raw, nil)
	alice, _, _ := tenants.ProvisionSolo(ctx, "alice")
	bob, _, _ := tenants.ProvisionSolo(ctx, "bob")

	db, _ := clonesql.New(raw, nil)
	// :tenant_id and :clone_id always come from the CloneContext.
	id := uuid.New()
	_, err := db.Exec(ctx, alice, `INSERT INTO insights (tenant_id, clone_id, id, content)
		VALUES (:tenant_id, :clone_id, :id, :content)`, map[string]any{"id": id, "content": "prefers mornings"})
	if err != nil {
		panic(err)
	}
	const get = `SELECT content FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`
	var content string
	err = db.Get(ctx, alice, &content, get, map[string]any{"id": id})
	fmt.Println(content, err)

	// Bob's clone cannot read it, even knowing its ID.
	err = db.Get(ctx, bob, &content, get, map[string]any{"id": id})
	fmt.Println(errors.Is(err, clone.ErrNotFound))

	// A statement without the scope is refused before it reaches the database.
	_, err = db.Exec(ctx, alice, `DELETE FROM insights WHERE id = :id`, map[string]any{"id": id})
	fmt.Println(errors.Is(err, clone.ErrInvalidInput))
	// Output:
	// prefers mornings <nil>
	// true
	// true
}

func ExampleDB_WithTx() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "clonesql-example-")
	defer os.RemoveAll(dir)
	raw, _ := sqlitedb.Open(filepath.Join(dir, "app.db"))
	defer raw.Close()
	migrate.Up(ctx, raw, nil)
	tenants, _ := tenant.NewStore(raw, nil)
	cc, _, _ := tenants.ProvisionSolo(ctx, "carol")
	db, _ := clonesql.New(raw, nil)

	conv := uuid.New()
	err := db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO conversations (tenant_id, clone_id, id) VALUES (:tenant_id, :clone_id, :id)`,
			map[string]any{"id": conv}); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO messages (tenant_id, clone_id, conversation_id, id, role, content)
			VALUES (:tenant_id, :clone_id, :conv, :id, 'user', 'hello')`, map[string]any{"conv": conv, "id": uuid.New()})
		return err // nil commits both rows; an error or a panic rolls both back
	})
	var n int
	db.Get(ctx, cc, &n, `SELECT count(*) FROM messages WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil)
	fmt.Println(err, n)
	// Output: <nil> 1
}
