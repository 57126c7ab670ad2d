package tenant

import (
	"context"
	"strconv"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
)

// Inventory is what one clone stores, counted without reading any content.
type Inventory struct {
	TenantID, CloneID uuid.UUID
	Status            Status
	// Rows counts the clone's rows per clone-owned table.
	Rows map[string]int64
	// HasVectors is true if the Admin has a vector index; Vectors counts the clone's
	// vectors in it (eventually consistent on Pinecone).
	HasVectors bool
	Vectors    int
	// HasObjects is true if the Admin has an object bucket; Objects and ObjectBytes
	// count the clone's current objects and their sizes (not older versions).
	HasObjects  bool
	Objects     int
	ObjectBytes int64
}

// Inventory counts what clone cloneID of tenant tenantID stores in every store (rows
// per table with count(*), vectors with vectorstore.Index.Stats, objects and bytes
// from the object listing), for p, an owner or admin of the tenant. It reads no
// content and works on suspended, offboarding and offboarded clones too.
func (a *Admin) Inventory(ctx context.Context, p clone.Principal, tenantID, cloneID uuid.UUID) (*Inventory, error) {
	const op = "tenant.Admin.Inventory"
	if _, err := a.authorize(ctx, op, p, tenantID, cloneID); err != nil {
		return nil, err
	}
	c, err := a.s.Clone(ctx, tenantID, cloneID)
	if err != nil {
		return nil, a.done(ctx, p, op, tenantID, cloneID, err, nil)
	}
	cc, err := internalContext(tenantID, cloneID, p, purposeInventory)
	if err != nil {
		return nil, err
	}
	inv, err := a.count(withAdminUse(ctx, tenantID, cloneID, purposeInventory), cc, false)
	if err != nil {
		return nil, a.done(ctx, p, op, tenantID, cloneID, err, nil)
	}
	inv.Status = c.Status
	detail := map[string]string{"vectors": strconv.Itoa(inv.Vectors), "objects": strconv.Itoa(inv.Objects)}
	return inv, a.done(ctx, p, op, tenantID, cloneID, nil, detail)
}

// count counts the clone's rows, vectors and objects. With anyObject it stops listing
// objects at the first page (enough to know whether any is left).
func (a *Admin) count(ctx context.Context, cc clone.CloneContext, anyObject bool) (*Inventory, error) {
	inv := &Inventory{TenantID: cc.TenantID(), CloneID: cc.CloneID(), Rows: map[string]int64{}}
	err := a.sql.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
		for _, t := range a.tables {
			var n int64
			if err := tx.Get(ctx, &n, `SELECT count(*) FROM `+t+` WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil); err != nil {
				return err
			}
			inv.Rows[t] = n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if a.vectors != nil {
		st, err := a.vectors.Stats(ctx, cc)
		if err != nil {
			return nil, err
		}
		inv.HasVectors, inv.Vectors = true, st.VectorCount
	}
	if a.objects != nil {
		inv.HasObjects = true
		if anyObject {
			page, err := a.objects.List(ctx, cc, nil)
			if err != nil {
				return nil, err
			}
			inv.Objects = len(page.Objects)
		} else if inv.Objects, inv.ObjectBytes, err = a.objectsOf(ctx, cc); err != nil {
			return nil, err
		}
	}
	return inv, nil
}
