package legacy

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"slices"

	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
)

const opVerifyVectors = "legacy.VerifyVectors"

// vecVerify is one run of VerifyVectors.
type vecVerify struct {
	m      *Migrator
	o      *VectorOptions
	ccs    map[string]clone.CloneContext
	r      *VerifyReport
	ledger bool // the vector ledger exists
}

// VerifyVectors checks the vector migration without changing anything, as exact sets
// per clone:
//
//   - nothing missing: every legacy vector of a user is in the user's clone with the
//     same metadata (plus the clone stamps) and the same values (to float32 rounding),
//     unless the operator excluded it ([Migrator.ExcludeVectors]); and every copy of a
//     legacy vector that [Migrator.DeleteLegacyVectors] deleted is still there;
//   - nothing extra: every vector in a user's clone is a legacy vector of that user, or
//     the recorded copy of one that was deleted;
//   - nothing foreign: a vector in a user's clone that is (a copy of) another user's
//     legacy vector is reported as such.
//
// Legacy vectors of no user with a clone (shared layout), and namespaces of no user with
// a clone (namespace per user, with a [NamespaceLister] source), are reported as
// unmatched unless excluded. It streams: memory does not grow with the index.
func (m *Migrator) VerifyVectors(ctx context.Context, o *VectorOptions) (*VerifyReport, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	users, ccs, err := m.userContexts(ctx, false)
	if err != nil {
		return nil, err
	}
	v := &vecVerify{m: m, o: o, ccs: ccs, r: &VerifyReport{}}
	if v.ledger, err = m.hasVectorLedger(ctx, opVerifyVectors); err != nil {
		return nil, err
	}
	if err := v.legacySide(ctx, users); err != nil {
		return nil, classify(opVerifyVectors, err, "read legacy vectors")
	}
	for i, u := range users {
		if err := v.cloneSide(ctx, u.UserID); err != nil {
			return nil, classify(opVerifyVectors, err, "read the clone of %s", u.UserID)
		}
		if err := v.deletedCopies(ctx, u.UserID); err != nil {
			return nil, classify(opVerifyVectors, err, "read the clone of %s", u.UserID)
		}
		m.cfg.Progress(Progress{Step: "verify-vectors", Table: u.UserID, Done: int64(i + 1), Total: int64(len(users))})
	}
	if o.Layout == LayoutNamespacePerUser {
		if err := v.namespaces(ctx); err != nil {
			return nil, err
		}
	}
	return v.r, nil
}

// entries returns the ledger rows of ids in ns (none without a ledger).
func (v *vecVerify) entries(ctx context.Context, ns string, ids []string) (map[string]vecEntry, error) {
	if !v.ledger || len(ids) == 0 {
		return map[string]vecEntry{}, nil
	}
	return vectorEntries(ctx, v.m.db, ns, ids)
}

// legacySide checks that every legacy vector is in its user's clone, intact.
func (v *vecVerify) legacySide(ctx context.Context, users []UserClone) error {
	o := v.o
	if o.Layout == LayoutShared {
		return scan(ctx, o.Source, o.SharedNamespace, o.BatchSize, "", func(vs []driver.Vector) error {
			return v.legacyBatch(ctx, o.SharedNamespace, vs, func(x driver.Vector) string { return v.m.vectorUser(userOf(x.Metadata, o.UserKey)) })
		})
	}
	for _, u := range users {
		for _, ns := range v.m.vectorSources(o, u.UserID) {
			err := scan(ctx, o.Source, ns, o.BatchSize, "", func(vs []driver.Vector) error {
				return v.legacyBatch(ctx, ns, vs, func(driver.Vector) string { return u.UserID })
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (v *vecVerify) legacyBatch(ctx context.Context, ns string, vs []driver.Vector, owner func(driver.Vector) string) error {
	ids := make([]string, len(vs))
	for i, x := range vs {
		ids[i] = x.ID
	}
	known, err := v.entries(ctx, ns, ids)
	if err != nil {
		return err
	}
	byUser := map[string][]driver.Vector{}
	for _, x := range vs {
		if known[x.ID].State == vecExcluded {
			continue
		}
		u := owner(x)
		if _, ok := v.ccs[u]; !ok {
			v.r.add(DiscrepancyUnmatched, ns, u, 1, "legacy vector %s has no user with a clone", x.ID)
			continue
		}
		byUser[u] = append(byUser[u], x)
	}
	for _, u := range slices.Sorted(maps.Keys(byUser)) {
		batch := byUser[u]
		ids := make([]string, len(batch))
		for j, x := range batch {
			ids[j] = x.ID
		}
		got, err := v.o.Target.Fetch(ctx, v.ccs[u], ids)
		if err != nil {
			return err
		}
		byID := make(map[string]vectorstore.Vector, len(got))
		for _, g := range got {
			byID[g.ID] = g
		}
		for _, x := range batch {
			c, ok := byID[x.ID]
			switch {
			case !ok && known[x.ID].State == vecRefused:
				v.r.add(DiscrepancyVector, ns, u, 1, "vector %s of user %s is not in its clone: refused (%s)", x.ID, u, known[x.ID].Reason)
			case !ok:
				v.r.add(DiscrepancyVector, ns, u, 1, "vector %s of user %s is not in its clone", x.ID, u)
			case !sameMetadata(x.Metadata, c.Metadata):
				v.r.add(DiscrepancyVector, ns, u, 1, "vector %s of user %s: metadata differs", x.ID, u)
			case !sameValues(x.Values, c.Values):
				v.r.add(DiscrepancyVector, ns, u, 1, "vector %s of user %s: values differ", x.ID, u)
			}
		}
	}
	return nil
}

// cloneSide checks that every vector in user u's clone is a legacy vector of u (or the
// recorded copy of one deleted since): anything else is extra, or foreign when it is
// another user's.
func (v *vecVerify) cloneSide(ctx context.Context, u string) error {
	o, cc := v.o, v.ccs[u]
	token := ""
	for {
		page, err := o.Target.List(ctx, cc, &vectorstore.ListOptions{Limit: o.BatchSize, PageToken: token})
		if err != nil {
			return err
		}
		if len(page.IDs) > 0 {
			owners, err := v.owners(ctx, u, page.IDs)
			if err != nil {
				return err
			}
			for _, id := range page.IDs {
				switch owner, ok := owners[id]; {
				case !ok:
					v.r.add(DiscrepancyVector, "", u, 1, "vector %s in the clone of user %s is no legacy vector of that user (extra)", id, u)
				case owner != u:
					v.r.add(DiscrepancyVector, "", u, 1, "vector %s in the clone of user %s belongs to user %q (foreign)", id, u, owner)
				}
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		token = page.NextPageToken
	}
}

// owners returns, for the IDs of vectors in u's clone, the user each belongs to: the
// legacy vector's user while it exists in one of u's legacy namespaces, else the user
// its deleted legacy vector was recorded for; with a namespace per user, an ID that is
// not u's but was copied from another user's namespace belongs to that user. IDs of
// nobody are absent.
func (v *vecVerify) owners(ctx context.Context, u string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	sources := v.m.vectorSources(v.o, u)
	for _, ns := range sources {
		rest := missing(ids, out)
		if len(rest) == 0 {
			break
		}
		lv, err := v.o.Source.Fetch(ctx, ns, rest)
		if err != nil {
			return nil, err
		}
		for _, x := range lv {
			if v.o.Layout == LayoutShared {
				out[x.ID] = v.m.vectorUser(userOf(x.Metadata, v.o.UserKey))
			} else {
				out[x.ID] = u
			}
		}
	}
	for _, ns := range sources {
		known, err := v.entries(ctx, ns, missing(ids, out))
		if err != nil {
			return nil, err
		}
		for id, e := range known {
			if e.State == vecCopied && e.DeletedAt.Valid {
				out[id] = e.UserID
			}
		}
	}
	if others := missing(ids, out); v.o.Layout == LayoutNamespacePerUser && v.ledger && len(others) > 0 {
		var rows []vecEntry
		if err := v.m.db.SelectContext(ctx, &rows, `SELECT source, id, user_id FROM cloneiso_legacy_vector_ids
			WHERE id = ANY($1) AND state = 'copied' AND NOT source = ANY($2) ORDER BY source`, pq.StringArray(others), pq.StringArray(sources)); err != nil {
			return nil, err
		}
		for _, r := range rows {
			if _, ok := out[r.ID]; !ok {
				out[r.ID] = r.UserID
			}
		}
	}
	return out, nil
}

// missing returns the ids that are not keys of found.
func missing(ids []string, found map[string]string) []string {
	var out []string
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// deletedCopies checks that the copies of user u's legacy vectors that delete-legacy
// deleted are still in the clone.
func (v *vecVerify) deletedCopies(ctx context.Context, u string) error {
	if !v.ledger {
		return nil
	}
	for _, ns := range v.m.vectorSources(v.o, u) {
		if err := v.deletedCopiesOf(ctx, u, ns); err != nil {
			return err
		}
	}
	return nil
}

// deletedCopiesOf is deletedCopies for the legacy namespace ns.
func (v *vecVerify) deletedCopiesOf(ctx context.Context, u, ns string) error {
	last := ""
	for {
		var ids []string
		if err := v.m.db.SelectContext(ctx, &ids, `SELECT id FROM cloneiso_legacy_vector_ids
			WHERE source = $1 AND user_id = $2 AND state = 'copied' AND deleted_at IS NOT NULL AND id > $3 ORDER BY id LIMIT $4`,
			ns, u, last, v.o.BatchSize); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		got, err := v.o.Target.Fetch(ctx, v.ccs[u], ids)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, g := range got {
			have[g.ID] = true
		}
		for _, id := range ids {
			if !have[id] {
				v.r.add(DiscrepancyVector, ns, u, 1, "vector %s of user %s was deleted from the legacy layout, and its copy is gone from the clone", id, u)
			}
		}
		last = ids[len(ids)-1]
	}
}

// namespaces reports the legacy namespaces of no user with a clone, unless excluded.
func (v *vecVerify) namespaces(ctx context.Context) error {
	c := &vecCopy{m: v.m, o: v.o, ccs: v.ccs}
	names, err := c.foreignNamespaces(ctx)
	if err != nil {
		return err
	}
	for _, f := range names {
		known, err := v.entries(ctx, f.ns, []string{""})
		if err != nil {
			return classify(opVerifyVectors, err, "read the vector ledger")
		}
		if known[""].State != vecExcluded {
			v.r.add(DiscrepancyUnmatched, f.ns, f.user, f.count, "%s", f.msg)
		}
	}
	return nil
}

func sameMetadata(a, b map[string]any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// sameValues compares two vectors up to scale-independent float32 rounding: backends
// may store them normalized.
func sameValues(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	var na, nb float64
	for i := range a {
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	na, nb = math.Sqrt(na), math.Sqrt(nb)
	if na == 0 || nb == 0 {
		return na == nb
	}
	for i := range a {
		if math.Abs(float64(a[i])/na-float64(b[i])/nb) > 1e-5 {
			return false
		}
	}
	return true
}
