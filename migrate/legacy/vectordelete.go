package legacy

import (
	"context"
	"maps"
	"slices"

	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
)

const opDeleteVectors = "legacy.DeleteLegacyVectors"

// vecDelete is one run of DeleteLegacyVectors.
type vecDelete struct {
	m   *Migrator
	o   *VectorOptions
	ccs map[string]clone.CloneContext
	rep *VectorReport
	// would holds, in a dry run, the vectors that would be deleted (source + "\x00" + ID).
	would map[string]bool
}

// DeleteLegacyVectors is the separate, explicit last step of the vector migration. It
// deletes only legacy vectors recorded in the ledger as copied by
// [Migrator.MigrateVectors], one ID at a time (never a whole namespace), and only after
// checking each again: the legacy vector is unchanged since its copy (same
// fingerprint), and the copy is in its user's clone with the same metadata and values.
// A vector that fails a check is kept and reported as a [Problem]. Deletions are
// recorded, so the step resumes where it stopped, and [Migrator.VerifyVectors] keeps
// checking the copies of deleted vectors.
//
// Legacy vectors the ledger does not record as copied — written after the copy (the
// legacy application still running), refused, or excluded by the operator — are never
// deleted: the report counts what is left behind (LeftBehind, with the first IDs;
// excluded ones apart, in Excluded). Deleted counts exactly the vectors deleted by this
// call. With o.DryRun it only counts.
func (m *Migrator) DeleteLegacyVectors(ctx context.Context, o *VectorOptions) (*VectorReport, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	users, ccs, err := m.userContexts(ctx, false)
	if err != nil {
		return nil, err
	}
	d := &vecDelete{m: m, o: o, ccs: ccs, rep: &VectorReport{PerUser: map[string]int64{}}, would: map[string]bool{}}
	ledger := true
	if o.DryRun {
		if ledger, err = m.hasVectorLedger(ctx, opDeleteVectors); err != nil {
			return nil, err
		}
	} else {
		release, err := m.exclusive(ctx, lockVectors, "DeleteLegacyVectors")
		if err != nil {
			return d.rep, err
		}
		defer release()
		if err := m.ensureVectorLedger(ctx, opDeleteVectors); err != nil {
			return d.rep, err
		}
	}
	sources, err := d.sources(ctx, users, ledger)
	if err != nil {
		return d.rep, err
	}
	if ledger {
		for _, ns := range sources {
			if err := d.deleteRecorded(ctx, ns); err != nil {
				return d.rep, err
			}
		}
	}
	for _, ns := range sources {
		if err := d.leftBehind(ctx, ns, ledger); err != nil {
			return d.rep, err
		}
	}
	m.cfg.Logger.InfoContext(ctx, "legacy: delete legacy vectors", "deleted", d.rep.Deleted, "left_behind", d.rep.LeftBehind, "excluded", d.rep.Excluded, "problems", len(d.rep.Problems))
	return d.rep, nil
}

// sources returns the legacy namespaces: the shared one, or every user's, every
// namespace the ledger recorded copies from, and the namespaces of no user the source
// lists.
func (d *vecDelete) sources(ctx context.Context, users []UserClone, ledger bool) ([]string, error) {
	o := d.o
	if o.Layout == LayoutShared {
		return []string{o.SharedNamespace}, nil
	}
	set := map[string]bool{}
	for _, u := range users {
		set[o.namespaceOf(u.UserID)] = true
	}
	if ledger {
		var recorded []string
		if err := d.m.db.SelectContext(ctx, &recorded, "SELECT DISTINCT source FROM cloneiso_legacy_vector_ids WHERE state = 'copied'"); err != nil {
			return nil, classify(opDeleteVectors, err, "read the vector ledger")
		}
		for _, ns := range recorded {
			if _, ok := o.userOfNamespace(ns); ok {
				set[ns] = true
			}
		}
	}
	foreign, err := (&vecCopy{m: d.m, o: o, ccs: d.ccs}).foreignNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range foreign {
		set[f.ns] = true
	}
	return slices.Sorted(maps.Keys(set)), nil
}

// deleteRecorded deletes, batch by batch, the legacy vectors of namespace ns recorded as
// copied and not yet deleted, each after checking it again.
func (d *vecDelete) deleteRecorded(ctx context.Context, ns string) error {
	m, o := d.m, d.o
	last := ""
	for batch := 0; ; batch++ {
		var rows []vecEntry
		if err := m.db.SelectContext(ctx, &rows, `SELECT source, id, user_id, state, reason, fingerprint, deleted_at FROM cloneiso_legacy_vector_ids
			WHERE source = $1 AND state = 'copied' AND deleted_at IS NULL AND id > $2 ORDER BY id LIMIT $3`, ns, last, o.BatchSize); err != nil {
			return classify(opDeleteVectors, err, "read the vector ledger")
		}
		if len(rows) == 0 {
			return nil
		}
		last = rows[len(rows)-1].ID
		if err := m.cfg.at(ctx, "delete-vectors", batch); err != nil {
			return err
		}
		del, gone, err := d.checked(ctx, ns, rows)
		if err != nil {
			return err
		}
		if o.DryRun {
			for _, e := range del {
				d.would[ns+"\x00"+e.ID] = true
				d.rep.Deleted++
				d.rep.PerUser[e.UserID]++
			}
			continue
		}
		ids := make([]string, len(del))
		for i, e := range del {
			ids[i] = e.ID
		}
		if len(ids) > 0 {
			if err := o.Source.Delete(ctx, ns, ids); err != nil {
				return classify(opDeleteVectors, err, "delete legacy vectors of %s", ns)
			}
		}
		if err := m.cfg.at(ctx, "delete-vectors-before-record", batch); err != nil {
			return err
		}
		if _, err := m.db.ExecContext(ctx, `UPDATE cloneiso_legacy_vector_ids SET deleted_at = now() WHERE source = $1 AND id = ANY($2)`,
			ns, pq.StringArray(append(ids, gone...))); err != nil {
			return classify(opDeleteVectors, err, "record deletion")
		}
		for _, e := range del {
			d.rep.Deleted++
			d.rep.PerUser[e.UserID]++
		}
		m.cfg.Progress(Progress{Step: "delete-vectors", Table: ns, Done: d.rep.Deleted})
	}
}

// checked returns, of the recorded copies rows of namespace ns, those whose legacy
// vector may be deleted, and the IDs of those whose legacy vector is already gone (an
// interrupted run deleted it before recording it) while the copy is there; the others
// are reported as problems.
func (d *vecDelete) checked(ctx context.Context, ns string, rows []vecEntry) (del []vecEntry, gone []string, err error) {
	ids := make([]string, len(rows))
	for i, e := range rows {
		ids[i] = e.ID
	}
	lv, err := d.o.Source.Fetch(ctx, ns, ids)
	if err != nil {
		return nil, nil, classify(opDeleteVectors, err, "fetch from %s", ns)
	}
	legacy := make(map[string]driver.Vector, len(lv))
	for _, v := range lv {
		legacy[v.ID] = v
	}
	byUser := map[string][]vecEntry{}
	for _, e := range rows {
		byUser[e.UserID] = append(byUser[e.UserID], e)
	}
	keep := func(e vecEntry, why string) {
		d.rep.Problems = append(d.rep.Problems, Problem{Key: e.ID, UserID: e.UserID, Reason: why + "; legacy vector kept"})
	}
	for _, u := range slices.Sorted(maps.Keys(byUser)) {
		es := byUser[u]
		cc, ok := d.ccs[u]
		if !ok {
			for _, e := range es {
				keep(e, "its user has no clone")
			}
			continue
		}
		uids := make([]string, len(es))
		for i, e := range es {
			uids[i] = e.ID
		}
		got, err := d.o.Target.Fetch(ctx, cc, uids)
		if err != nil {
			return nil, nil, classify(opDeleteVectors, err, "read the clone of %s", u)
		}
		copies := make(map[string]vectorstore.Vector, len(got))
		for _, g := range got {
			copies[g.ID] = g
		}
		for _, e := range es {
			l, present := legacy[e.ID]
			c, copied := copies[e.ID]
			switch {
			case !copied:
				keep(e, "its copy is not in the clone (run vectors copy --restart)")
			case !present:
				gone = append(gone, e.ID)
			case fingerprint(l) != e.Fingerprint:
				keep(e, "changed after its copy (run vectors copy --restart, then delete-legacy again)")
			case !sameMetadata(l.Metadata, c.Metadata) || !sameValues(l.Values, c.Values):
				keep(e, "its copy differs from it (run vectors copy --restart)")
			default:
				del = append(del, e)
			}
		}
	}
	return del, gone, nil
}

// leftBehind lists namespace ns after the deletion and counts every legacy vector still
// there: excluded ones in Excluded, the others in LeftBehind.
func (d *vecDelete) leftBehind(ctx context.Context, ns string, ledger bool) error {
	token := ""
	for {
		page, err := d.o.Source.List(ctx, ns, &driver.ListRequest{Limit: d.o.BatchSize, PageToken: token})
		if err != nil {
			return classify(opDeleteVectors, err, "list %s", ns)
		}
		known := map[string]vecEntry{}
		if ledger && len(page.IDs) > 0 {
			if known, err = vectorEntries(ctx, d.m.db, ns, append(page.IDs, "")); err != nil {
				return classify(opDeleteVectors, err, "read the vector ledger")
			}
		}
		for _, id := range page.IDs {
			e := known[id]
			switch {
			case e.DeletedAt.Valid || d.would[ns+"\x00"+id]:
				// Deleted by this step (a listing may lag behind the deletion).
			case e.State == vecExcluded || known[""].State == vecExcluded:
				d.rep.Excluded++
			default:
				d.rep.leftBehind(ns, id)
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		token = page.NextPageToken
	}
}
