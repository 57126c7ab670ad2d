package isolationtest_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/isolationtest"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const dim = 16

func storesKit(t testing.TB, raw *sql.DB, idx *vectorstore.Index, bucket *objectstore.Bucket) *isolationtest.Kit {
	t.Helper()
	tenants, err := tenant.NewStore(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := clonesql.New(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &isolationtest.Kit{
		NewActor: func(ctx context.Context, name string) (isolationtest.Actor, error) {
			cc, _, err := tenants.ProvisionSolo(ctx, "isolationtest-"+name+"-"+clone.NewID().String())
			return isolationtest.Actor{Name: name, CC: cc}, err
		},
		Surfaces: []isolationtest.Surface{isolationtest.SQLSurface(db), isolationtest.VectorSurface(idx), isolationtest.ObjectSurface(bucket)},
		Probes:   []isolationtest.Probe{isolationtest.VectorProbe(idx), isolationtest.ObjectProbe(bucket)},
	}
}

func TestKitOnEmbeddedBackends(t *testing.T) {
	dir := t.TempDir()
	raw, err := sqlitedb.Open(filepath.Join(dir, "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := migrate.Up(context.Background(), raw, nil); err != nil {
		t.Fatal(err)
	}
	idx, err := memvector.Open(dim, nil)
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := fileobject.OpenBucket(filepath.Join(dir, "objects"), nil)
	if err != nil {
		t.Fatal(err)
	}
	res := storesKit(t, raw, idx, bucket).Run(t)
	if res.Leaks != 0 || res.Observations < 10 {
		t.Fatalf("result %+v", res)
	}
}

// TestKitOnRealBackends runs the same kit on PostgreSQL (as the application role, RLS
// on), MinIO and the Pinecone emulator over gRPC, on each PostgreSQL driver, directly
// and through PgBouncer in transaction-pooling mode.
func TestKitOnRealBackends(t *testing.T) {
	pg := pgtest.Shared(t)
	env := s3test.Require(t)
	for _, drv := range pgtest.Drivers {
		for _, via := range []string{"direct", "pgbouncer"} {
			t.Run(string(drv)+"/"+via, func(t *testing.T) {
				dsn := pg.AppURL
				if via == "pgbouncer" {
					dsn = pgtest.BouncerURL(t, dsn, drv)
				}
				raw := pgtest.OpenURL(t, drv, dsn)
				srv := pineconetest.Start(t, &pineconetest.Options{Dimension: dim})
				idx, err := pineconevector.Open(srv.Host(), dim, &pineconevector.Options{APIKey: "emulator"})
				if err != nil {
					t.Fatal(err)
				}
				defer idx.Close()
				name := s3test.NewBucket(t, env, false)
				bucket, err := s3object.OpenBucket(context.Background(), env.Config(), name, &s3object.Options{Endpoint: env.Endpoint, UsePathStyle: true})
				if err != nil {
					t.Fatal(err)
				}
				res := storesKit(t, raw.DB, idx, bucket).Run(t)
				if res.Leaks != 0 {
					t.Fatalf("result %+v", res)
				}
			})
		}
	}
}

func runRecorded(t *testing.T, k *isolationtest.Kit) (isolationtest.Result, []string) {
	res, err := k.Check(context.Background())
	if (err == nil) != (len(res.Findings) == 0) {
		t.Fatalf("Check error %v with %d findings", err, len(res.Findings))
	}
	return res, res.Findings
}

// TestKitCatchesLeaks: the kit must fail when a surface or a probe leaks, and when a
// surface cannot show a clone its own data.
func TestKitCatchesLeaks(t *testing.T) {
	var mu sync.Mutex
	shared := map[string]string{} // ignores the actor: every clone sees everything
	leaky := isolationtest.Surface{
		Name: "leaky",
		Seed: func(_ context.Context, a isolationtest.Actor, canary string) error {
			mu.Lock()
			defer mu.Unlock()
			shared[a.CC.CloneID().String()] = canary
			return nil
		},
		Observe: func(context.Context, isolationtest.Actor) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			var all []string
			for _, v := range shared {
				all = append(all, v)
			}
			return strings.Join(all, "\n"), nil
		},
	}
	newActor := func(_ context.Context, name string) (isolationtest.Actor, error) {
		cc, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: name})
		return isolationtest.Actor{Name: name, CC: cc}, err
	}
	res, errs := runRecorded(t, &isolationtest.Kit{NewActor: newActor, Surfaces: []isolationtest.Surface{leaky}})
	if res.Leaks != 2 || len(errs) != 2 || !strings.Contains(errs[0], "LEAK") {
		t.Fatalf("leaky surface: %+v, %q", res, errs)
	}

	echo := isolationtest.Probe{Name: "echo", Run: func(_ context.Context, _ isolationtest.Actor, victim []string) (string, error) {
		return strings.Join(victim, " "), nil
	}}
	blind := isolationtest.Surface{Name: "blind",
		Seed:    func(context.Context, isolationtest.Actor, string) error { return nil },
		Observe: func(context.Context, isolationtest.Actor) (string, error) { return "", nil },
	}
	res, errs = runRecorded(t, &isolationtest.Kit{NewActor: newActor, Surfaces: []isolationtest.Surface{blind}, Probes: []isolationtest.Probe{echo}})
	if res.Leaks != 2 {
		t.Fatalf("leaky probe not caught: %+v", res)
	}
	var ownMissing int
	for _, e := range errs {
		if strings.Contains(e, "own canary") {
			ownMissing++
		}
	}
	if ownMissing != 2 {
		t.Fatalf("a surface that shows nothing must fail the run: %q", errs)
	}
}
