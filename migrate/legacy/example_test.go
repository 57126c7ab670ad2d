package legacy_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// The SQL part of a migration, in the order of MIGRATION_GUIDE.md. It needs a
// PostgreSQL database holding a legacy deployment, so it is compiled but not run here;
// the package's tests run the same sequence on a generated legacy fixture.
func Example() {
	ctx := context.Background()
	db, err := clonesql.OpenPostgres("postgres://owner@db.internal/app?sslmode=verify-full")
	if err != nil {
		log.Fatal(err)
	}
	m, err := legacy.New(db, &legacy.Config{
		// The SDK's tables, plus a table of the host's own whose user column is "owner".
		Tables:     append(legacy.DefaultTables(), legacy.Table{Name: "notes", UserColumn: "owner"}),
		UsersQuery: "SELECT id::text FROM users", // users without rows get a clone too
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.Adopt(ctx); err != nil {
		log.Fatal(err)
	}
	plan, err := m.Plan(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d rows to backfill, %d without a user\n", plan.RowsToBackfill, plan.WithoutUser)
	if _, err := m.Backfill(ctx, nil); err != nil {
		log.Fatal(err) // run it again: it resumes
	}
	report, err := m.Verify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if !report.OK() {
		log.Fatal(report) // every discrepancy, one per line
	}
	if _, err := m.Enforce(ctx); errors.Is(err, legacy.ErrIncomplete) {
		log.Fatal(err) // names every table with rows still lacking their clone
	} else if err != nil {
		log.Fatal(err)
	}
}
