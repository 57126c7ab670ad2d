package records_test

import (
	"context"
	"os"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/tenant"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// env is one dialect's database, seen through the scoped wrapper as the application
// role, plus what tests need around it.
type env struct {
	dialect clonesql.Dialect
	raw     *sqlx.DB // the application's connection (on PostgreSQL: the non-owner app role)
	owner   *sqlx.DB // the schema owner (PostgreSQL: bypasses RLS as a superuser)
	db      *clonesql.DB
	audit   *audit.Memory
	tenants *tenant.Store
}

func (e *env) newClone(t testing.TB) clone.CloneContext {
	t.Helper()
	cc, _, err := e.tenants.ProvisionSolo(context.Background(), "subject-"+clone.NewID().String())
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func newEnv(t testing.TB, d clonesql.Dialect) *env {
	t.Helper()
	e := &env{dialect: d, audit: &audit.Memory{}}
	e.raw, e.owner = pgtest.Open(t, d)
	var err error
	if e.db, err = clonesql.New(e.raw.DB, &clonesql.Options{Audit: e.audit}); err != nil {
		t.Fatal(err)
	}
	if e.tenants, err = tenant.NewStore(e.raw.DB, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func forEachDialect(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, d := range []clonesql.Dialect{clonesql.SQLite, clonesql.Postgres} {
		t.Run(string(d), func(t *testing.T) { fn(t, newEnv(t, d)) })
	}
}
