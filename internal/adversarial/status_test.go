package adversarial_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// TestStatusGuards: the stores' write guard (tenant.Store.Guard, as the README wires it)
// refuses an active clone of a suspended tenant and a suspended clone of an active
// tenant, in the vector index and the object store, on both stacks; each clone first
// proves it could write while active.
func TestStatusGuards(t *testing.T) {
	for _, st := range stacks {
		t.Run(string(st), func(t *testing.T) {
			w := newWorld(t, st)
			ctx := context.Background()
			admin := w.raw
			if st.base() == production {
				admin = w.pg.Owner
			}
			for _, c := range []struct {
				name, stmt string
				target     func(clone.CloneContext) uuid.UUID
			}{
				{"active clone of a suspended tenant", "UPDATE tenants SET status = 'suspended' WHERE id = ?", clone.CloneContext.TenantID},
				{"suspended clone of an active tenant", "UPDATE clones SET status = 'suspended' WHERE id = ?", clone.CloneContext.CloneID},
			} {
				t.Run(c.name, func(t *testing.T) {
					cc, _, err := w.tenants.ProvisionSolo(ctx, "status-"+uuid.NewString())
					if err != nil {
						t.Fatal(err)
					}
					write := func(id string) (error, error) {
						verr := w.idx.Upsert(ctx, cc, []vectorstore.Vector{{ID: id, Values: vec(id)}})
						_, oerr := w.objects.Put(ctx, cc, "uploads", id+".txt", strings.NewReader(id), nil)
						return verr, oerr
					}
					if verr, oerr := write("while-active"); verr != nil || oerr != nil {
						t.Fatalf("writes while active: vectors %v, objects %v", verr, oerr)
					}
					if _, err := admin.ExecContext(ctx, admin.Rebind(c.stmt), c.target(cc)); err != nil {
						t.Fatal(err)
					}
					verr, oerr := write("while-suspended")
					if !errors.Is(verr, clone.ErrSuspended) {
						t.Errorf("LEAK: vector write of an %s: %v; want ErrSuspended", c.name, verr)
					}
					if !errors.Is(oerr, clone.ErrSuspended) {
						t.Errorf("LEAK: object write of an %s: %v; want ErrSuspended", c.name, oerr)
					}
				})
			}
		})
	}
}
