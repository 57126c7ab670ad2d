// Package pgtest gives tests real PostgreSQL databases.
//
// The server is found once per test binary, in this order: $CLONEISO_TEST_DATABASE_URL
// (a URL of a role that may create databases and roles); a server on 127.0.0.1:5432
// accepting the postgres role; an ephemeral cluster made with the system's initdb and
// pg_ctl (run as the postgres user when the tests run as root) and stopped when the
// tests end (CLONEISO_TEST_EPHEMERAL_PG=1 skips the 5432 probe). Without any of these, tests are skipped with the reason, or fail when
// CLONEISO_REQUIRE_SERVICES=1.
//
// Each test package gets its own database ([Shared]), migrated, with the application
// role granted; tests that need a pristine schema take a database of their own
// ([Fresh]). Use [Main] from TestMain so the databases are dropped afterwards.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/testenv"
	"github.com/cloneiso/cloneiso/migrate"
)

// EnvURL is the environment variable naming the test server.
const EnvURL = "CLONEISO_TEST_DATABASE_URL"

// AppRole is the login role tests connect as to exercise row-level security: it owns no
// table, is not a superuser and has no BYPASSRLS.
const AppRole = "cloneiso_app_test"

const appPassword = "cloneiso_app_test"

// DB is one test database.
type DB struct {
	Name     string
	Owner    *sqlx.DB // the schema owner (the server's admin role): bypasses RLS only if superuser
	App      *sqlx.DB // AppRole: every clone-owned table's row-level security applies
	OwnerURL string
	AppURL   string
}

var (
	serverOnce sync.Once
	serverURL  *url.URL
	serverErr  error
	ephemeral  *cluster

	sharedOnce sync.Once
	shared     *DB
	sharedErr  error

	created sync.Map // database name -> struct{}, dropped by Main
	seq     atomic.Int64
)

// Main runs the tests and then drops every database this process created and stops an
// ephemeral cluster. Use it as: func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Owner.Close()
		shared.App.Close()
	}
	if serverURL != nil {
		if admin, err := sql.Open("postgres", serverURL.String()); err == nil {
			created.Range(func(k, _ any) bool {
				admin.Exec("DROP DATABASE IF EXISTS " + pq.QuoteIdentifier(k.(string)) + " WITH (FORCE)")
				return true
			})
			admin.Close()
		}
	}
	stopBouncer()
	if ephemeral != nil {
		ephemeral.stop()
	}
	return code
}

// Server returns the URL of the test server's admin connection, or skips/fails t.
func Server(t testing.TB) *url.URL {
	t.Helper()
	serverOnce.Do(func() { serverURL, serverErr = findServer() })
	if serverErr != nil {
		testenv.Missing(t, "PostgreSQL", serverErr.Error())
	}
	u := *serverURL
	return &u
}

// Shared returns this test package's database: created on first use, migrated, with
// AppRole granted. Tests sharing it must use their own tenants and clones.
func Shared(t testing.TB) *DB {
	t.Helper()
	Server(t)
	sharedOnce.Do(func() { shared, sharedErr = newDB(true) })
	if sharedErr != nil {
		t.Fatalf("pgtest: shared database: %v", sharedErr)
	}
	return shared
}

// Fresh returns a new database for t alone, dropped when t ends; migrated (and AppRole
// granted) if migrated is true, empty otherwise.
func Fresh(t testing.TB, migrated bool) *DB {
	t.Helper()
	Server(t)
	db, err := newDB(migrated)
	if err != nil {
		t.Fatalf("pgtest: fresh database: %v", err)
	}
	t.Cleanup(func() {
		db.Owner.Close()
		db.App.Close()
		if admin, err := sql.Open("postgres", serverURL.String()); err == nil {
			admin.Exec("DROP DATABASE IF EXISTS " + pq.QuoteIdentifier(db.Name) + " WITH (FORCE)")
			admin.Close()
			created.Delete(db.Name)
		}
	})
	return db
}

// Grant grants AppRole its privileges on db's current schema (after migrations).
func (db *DB) Grant(ctx context.Context) error {
	_, err := db.Owner.ExecContext(ctx, migrate.AppRoleSQL(AppRole, ""))
	return err
}

func newDB(migrated bool) (*DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := sql.Open("postgres", serverURL.String())
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	var b [4]byte
	rand.Read(b[:])
	name := fmt.Sprintf("cloneiso_test_%d_%d_%s", os.Getpid(), seq.Add(1), hex.EncodeToString(b[:]))
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)+" TEMPLATE template0"); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	created.Store(name, struct{}{})
	if err := ensureAppRole(ctx, admin); err != nil {
		return nil, err
	}
	ou := *serverURL
	ou.Path = "/" + name
	au := ou
	au.User = url.UserPassword(AppRole, appPassword)
	db := &DB{Name: name, OwnerURL: ou.String(), AppURL: au.String()}
	if db.Owner, err = sqlx.Open("postgres", db.OwnerURL); err != nil {
		return nil, err
	}
	if db.App, err = sqlx.Open("postgres", db.AppURL); err != nil {
		return nil, err
	}
	if migrated {
		if err := migrate.Up(ctx, db.Owner.DB, nil); err != nil {
			return nil, err
		}
		if err := db.Grant(ctx); err != nil {
			return nil, fmt.Errorf("grant app role: %w", err)
		}
	}
	return db, nil
}

// ensureAppRole creates AppRole once per cluster; test binaries run in parallel, so a
// concurrent creation is expected and tolerated.
func ensureAppRole(ctx context.Context, admin *sql.DB) error {
	stmt := fmt.Sprintf(`DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) THEN
    CREATE ROLE %s LOGIN PASSWORD %s NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END $$`, pq.QuoteLiteral(AppRole), pq.QuoteIdentifier(AppRole), pq.QuoteLiteral(appPassword))
	for i := 0; ; i++ {
		_, err := admin.ExecContext(ctx, stmt)
		var pe *pq.Error
		if err != nil && i < 5 && errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42710" || pe.Code == "XX000") {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("create app role: %w", err)
		}
		return nil
	}
}

func findServer() (*url.URL, error) {
	if s := os.Getenv(EnvURL); s != "" {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", EnvURL, err)
		}
		if err := ping(u); err != nil {
			return nil, fmt.Errorf("%s=%s: %v", EnvURL, redact(u), err)
		}
		return u, nil
	}
	local, _ := url.Parse("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5")
	if os.Getenv("CLONEISO_TEST_EPHEMERAL_PG") == "1" {
		// Behave as on a fresh machine: ignore a server on 5432.
	} else if c, err := net.DialTimeout("tcp", "127.0.0.1:5432", time.Second); err == nil {
		c.Close()
		if err := ping(local); err == nil {
			return local, nil
		} else {
			return nil, fmt.Errorf("a server listens on 127.0.0.1:5432 but refuses the postgres role (%v); set %s", err, EnvURL)
		}
	}
	cl, err := startCluster()
	if err != nil {
		return nil, fmt.Errorf("no %s, nothing on 127.0.0.1:5432, and no ephemeral cluster: %v", EnvURL, err)
	}
	ephemeral = cl
	return cl.url, nil
}

func ping(u *url.URL) error {
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func redact(u *url.URL) string {
	r := *u
	if _, ok := r.User.Password(); ok {
		r.User = url.UserPassword(r.User.Username(), "xxxxx")
	}
	return strings.TrimSpace(r.String())
}
