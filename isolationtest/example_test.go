package isolationtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/isolationtest"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// The kit on the SDK's embedded stores. In a host's test, call kit.Run(t) instead of
// Check, and add Surfaces and Probes over the host's own HTTP API (see HTTPDo).
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "isolationtest-")
	defer os.RemoveAll(dir)
	raw, _ := sqlitedb.Open(filepath.Join(dir, "app.db"))
	defer raw.Close()
	migrate.Up(ctx, raw, nil)
	tenants, _ := tenant.NewStore(raw, nil)
	db, _ := clonesql.New(raw, nil)
	idx, _ := memvector.Open(8, nil)
	bucket, _ := fileobject.OpenBucket(filepath.Join(dir, "objects"), nil)

	kit := &isolationtest.Kit{
		NewActor: func(ctx context.Context, name string) (isolationtest.Actor, error) {
			cc, _, err := tenants.ProvisionSolo(ctx, "user-"+name) // the host's first sign-in
			return isolationtest.Actor{Name: name, CC: cc}, err
		},
		Surfaces: []isolationtest.Surface{isolationtest.SQLSurface(db), isolationtest.VectorSurface(idx), isolationtest.ObjectSurface(bucket)},
		Probes:   []isolationtest.Probe{isolationtest.VectorProbe(idx), isolationtest.ObjectProbe(bucket)},
	}
	res, err := kit.Check(ctx)
	fmt.Println(res.Surfaces, res.Probes, res.Observations, res.Leaks, err)
	// Output: 3 4 10 0 <nil>
}
