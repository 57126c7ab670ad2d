package legacy

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore"
)

// VerifyObjects checks the object migration without changing anything. Like
// [Migrator.MigrateObjects] it accounts for every object of the legacy bucket and every
// legacy key named by the configured object key columns: refused objects are reported
// as unmatched, keys rows name that are neither copied, to copy nor out of scope as
// object-key discrepancies. Then: every legacy object a template maps has a recorded
// copy and has not changed since; a recorded legacy object still exists unless this
// migration deleted it; and each legacy user's clone holds exactly the recorded
// copies, nothing missing (size, and with o.Deep SHA-256), nothing extra — an object
// in the clone that no ledger entry of its user names is reported, and named as
// foreign when it has the name of another user's copy.
//
// Run it before the switch-over: afterwards, objects the application writes in the
// clones are extras.
func (m *Migrator) VerifyObjects(ctx context.Context, o *ObjectOptions) (*VerifyReport, error) {
	dry := *o
	dry.DryRun = false
	lr := &ObjectReport{}
	sv, err := m.survey(ctx, &dry, lr)
	if err != nil {
		return nil, err
	}
	r := &VerifyReport{}
	for _, p := range lr.Problems {
		r.add(DiscrepancyUnmatched, p.Key, p.UserID, 1, "legacy object %s: %s", p.Key, p.Reason)
	}
	for _, p := range lr.RowProblems {
		r.add(DiscrepancyObjectKey, p.Key, p.UserID, 1, "legacy key %s: %s", p.Key, p.Reason)
	}
	verifyLegacySide(sv, r)
	ccOf, err := m.userClones(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.verifyClones(ctx, o, sv.ledger, ccOf, r); err != nil {
		return nil, err
	}
	return r, nil
}

// verifyLegacySide checks each mapped legacy object against the ledger, and each ledger
// entry against the bucket.
func verifyLegacySide(sv *objectSurvey, r *VerifyReport) {
	for _, ob := range sv.inv.objs {
		l, ok := sv.ledger[ob.key]
		switch {
		case !ok:
			r.add(DiscrepancyObject, ob.key, ob.user, 1, "legacy object %s was not copied: run objects copy", ob.key)
		case l.Size != ob.size || l.ETag != ob.etag:
			r.add(DiscrepancyObject, ob.key, ob.user, 1, "legacy object %s changed after its copy: run objects copy again", ob.key)
		case l.Kind != ob.kind || l.Name != ob.name || l.UserID != ob.user:
			r.add(DiscrepancyObject, ob.key, ob.user, 1, "legacy object %s is now mapped to user %s, %s/%s, but was copied to user %s, %s/%s: run objects copy again",
				ob.key, ob.user, ob.kind, ob.name, l.UserID, l.Kind, l.Name)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(sv.ledger)) {
		l := sv.ledger[k]
		if _, ok := sv.inv.listed[k]; !ok && !l.DeletedAt.Valid {
			r.add(DiscrepancyObject, k, l.UserID, 1, "legacy object %s disappeared before it was deleted by this migration", k)
		}
	}
}

// verifyClones lists each legacy user's clone and compares it with the copies recorded
// for that user: nothing missing, nothing extra, nothing foreign.
func (m *Migrator) verifyClones(ctx context.Context, o *ObjectOptions, ledger map[string]ledgerRow, ccOf map[string]clone.CloneContext, r *VerifyReport) error {
	type copyID struct{ kind, name string }
	want := map[string]map[copyID]ledgerRow{} // user → copies
	owners := map[copyID][]ledgerRow{}
	for _, k := range slices.Sorted(maps.Keys(ledger)) {
		l := ledger[k]
		if _, ok := ccOf[l.UserID]; !ok {
			r.add(DiscrepancyMapping, k, l.UserID, 1, "copy of %s belongs to user %s, who has no clone", k, l.UserID)
			continue
		}
		if want[l.UserID] == nil {
			want[l.UserID] = map[copyID]ledgerRow{}
		}
		want[l.UserID][copyID{l.Kind, l.Name}] = l
		owners[copyID{l.Kind, l.Name}] = append(owners[copyID{l.Kind, l.Name}], l)
	}
	users := slices.Sorted(maps.Keys(ccOf))
	for i, u := range users {
		cc := ccOf[u]
		found, err := listClone(ctx, o.Target, cc)
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, clone.ErrIsolationViolation) {
				return err
			}
			r.add(DiscrepancyObject, "", u, 0, "the clone of user %s holds an object the SDK cannot name (its listing was refused: %v); inspect its prefix", u, err)
			continue
		}
		for id, a := range found {
			if _, ok := want[u][id]; ok {
				continue
			}
			detail := "extra object %s/%s in the clone of user %s: no legacy object of this user was copied there"
			args := []any{id.kind, id.name, u}
			for _, other := range owners[id] {
				if other.UserID != u && other.Size == a.Size {
					detail = "foreign object %s/%s in the clone of user %s: it has the name and size of user %s's copy of %s"
					args = append(args, other.UserID, other.Key)
					break
				}
			}
			r.add(DiscrepancyObject, id.kind+"/"+id.name, u, 1, detail, args...)
		}
		for _, id := range slices.SortedFunc(maps.Keys(want[u]), func(a, b copyID) int {
			return strings.Compare(a.kind+"/"+a.name, b.kind+"/"+b.name)
		}) {
			l := want[u][id]
			a, ok := found[id]
			switch {
			case !ok:
				r.add(DiscrepancyObject, l.Key, u, 1, "copy of %s is missing from the clone of user %s: run objects copy", l.Key, u)
			case !o.Deep && a.Size != l.Size:
				r.add(DiscrepancyObject, l.Key, u, 1, "copy of %s: %d bytes; expected %d", l.Key, a.Size, l.Size)
			case o.Deep:
				if err := checkCopy(ctx, o, cc, l); err != nil {
					r.add(DiscrepancyObject, l.Key, u, 1, "copy of %s: %v", l.Key, err)
				}
			}
		}
		m.cfg.Progress(Progress{Step: "verify-objects", Table: u, Done: int64(i + 1), Total: int64(len(users))})
	}
	return nil
}

// listClone returns every object of cc's clone, by kind and name.
func listClone(ctx context.Context, b *objectstore.Bucket, cc clone.CloneContext) (map[struct{ kind, name string }]*objectstore.Attributes, error) {
	out := map[struct{ kind, name string }]*objectstore.Attributes{}
	opts := &objectstore.ListOptions{PageSize: 1000}
	for {
		page, err := b.List(ctx, cc, opts)
		if err != nil {
			return nil, err
		}
		for _, a := range page.Objects {
			out[struct{ kind, name string }{a.Kind, a.Name}] = a
		}
		if page.NextPageToken == "" {
			return out, nil
		}
		opts.PageToken = page.NextPageToken
	}
}
