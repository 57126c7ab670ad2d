package legacy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
)

// Legacy vector layouts.
const (
	// LayoutNamespacePerUser: each user's vectors in a namespace of their own, named by
	// VectorOptions.NamespaceTemplate.
	LayoutNamespacePerUser = "namespace-per-user"
	// LayoutShared: every user's vectors in one namespace, VectorOptions.SharedNamespace,
	// with the user's ID in the metadata key VectorOptions.UserKey.
	LayoutShared = "shared"
)

// VectorSource reads (and, in [Migrator.DeleteLegacyVectors] only, deletes) legacy
// vectors in any namespace. Every vectorstore driver satisfies it (for Pinecone,
// pineconevector.NewDriver; it refuses Pinecone's default namespace, so a legacy layout
// there needs a VectorSource over go-pinecone's IndexConnection).
type VectorSource interface {
	List(ctx context.Context, ns string, req *driver.ListRequest) (*driver.ListPage, error)
	Fetch(ctx context.Context, ns string, ids []string) ([]driver.Vector, error)
	Delete(ctx context.Context, ns string, ids []string) error
	DeleteNamespace(ctx context.Context, ns string) error
	Stats(ctx context.Context, ns string) (*driver.Stats, error)
}

// VectorOptions configure the vector migration.
type VectorOptions struct {
	// Source holds the legacy vectors.
	Source VectorSource
	// Layout is LayoutNamespacePerUser or LayoutShared.
	Layout string
	// NamespaceTemplate names a user's legacy namespace (LayoutNamespacePerUser);
	// "{user_id}" is replaced by the user's ID. Default "{user_id}".
	NamespaceTemplate string
	// SharedNamespace is the legacy namespace of every user's vectors (LayoutShared).
	SharedNamespace string
	// UserKey is the metadata key holding the user's ID (LayoutShared); default
	// "user_id". It is kept in the copies' metadata.
	UserKey string
	// Target is the clone-scoped index the vectors are copied to, each into its user's
	// clone namespace with the clone's metadata stamps (set by the portable type).
	Target *vectorstore.Index
	// BatchSize is the number of vectors listed, fetched and upserted at a time,
	// 1..100; default 100.
	BatchSize int
	// DryRun counts, per user, what would be copied (or deleted), writing nothing.
	DryRun bool
}

func (o *VectorOptions) check() error {
	const op = "legacy.VectorOptions"
	if o == nil || o.Source == nil || o.Target == nil {
		return errs.New(errs.InvalidInput, op, "Source and Target are required")
	}
	switch o.Layout {
	case LayoutNamespacePerUser:
		if o.NamespaceTemplate == "" {
			o.NamespaceTemplate = "{user_id}"
		}
		if !strings.Contains(o.NamespaceTemplate, "{user_id}") {
			return errs.New(errs.InvalidInput, op, "namespace template %q has no {user_id}", o.NamespaceTemplate)
		}
	case LayoutShared:
		if o.SharedNamespace == "" {
			return errs.New(errs.InvalidInput, op, "the shared layout needs SharedNamespace")
		}
		if o.UserKey == "" {
			o.UserKey = "user_id"
		}
	default:
		return errs.New(errs.InvalidInput, op, "unknown layout %q (want %q or %q)", o.Layout, LayoutNamespacePerUser, LayoutShared)
	}
	if o.BatchSize <= 0 || o.BatchSize > vectorstore.MaxListLimit {
		o.BatchSize = vectorstore.MaxListLimit
	}
	return nil
}

// VectorReport tells what a vector step did (or, in a dry run, would do).
type VectorReport struct {
	Copied   int64 // vectors upserted into clones by this call
	Deleted  int64 // legacy vectors deleted by this call
	Skipped  int64 // users (per-user layout) or vectors (shared) already done earlier
	PerUser  map[string]int64
	Problems []Problem // vectors no user owns, or that the SDK refuses (Key is the vector ID)
}

// OK reports whether no problem was met.
func (r *VectorReport) OK() bool { return len(r.Problems) == 0 }

// userContexts returns the provisioned users and their clone contexts; for a dry run,
// the legacy users whether provisioned or not, with zero contexts.
func (m *Migrator) userContexts(ctx context.Context, dryRun bool) ([]UserClone, map[string]clone.CloneContext, error) {
	if dryRun {
		uq, err := m.usersSQL(ctx, m.db)
		if err != nil {
			return nil, nil, classify("legacy", err, "list users")
		}
		var ids []string
		if err := m.db.SelectContext(ctx, &ids, uq+" ORDER BY user_id"); err != nil {
			return nil, nil, classify("legacy", err, "list users")
		}
		users := make([]UserClone, len(ids))
		out := make(map[string]clone.CloneContext, len(ids))
		for i, id := range ids {
			users[i] = UserClone{UserID: id}
			out[id] = clone.CloneContext{}
		}
		return users, out, nil
	}
	users, err := m.Users(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string]clone.CloneContext, len(users))
	for _, u := range users {
		if out[u.UserID], err = u.Context(); err != nil {
			return nil, nil, err
		}
	}
	return users, out, nil
}

// userOf returns the user ID stored under key, as text.
func userOf(md map[string]any, key string) string {
	switch v := md[key].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// scan lists namespace ns from the start and calls fn with each fetched batch of
// vectors whose IDs are greater than after.
func scan(ctx context.Context, src VectorSource, ns string, batch int, after string, fn func([]driver.Vector) error) error {
	token := ""
	for {
		page, err := src.List(ctx, ns, &driver.ListRequest{Limit: batch, PageToken: token})
		if err != nil {
			return fmt.Errorf("list %s: %w", ns, err)
		}
		ids := page.IDs
		if after != "" {
			ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id <= after })
		}
		if len(ids) > 0 {
			vs, err := src.Fetch(ctx, ns, ids)
			if err != nil {
				return fmt.Errorf("fetch from %s: %w", ns, err)
			}
			slices.SortFunc(vs, func(a, b driver.Vector) int { return strings.Compare(a.ID, b.ID) })
			if err := fn(vs); err != nil {
				return err
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		token = page.NextPageToken
	}
}

// portable turns legacy vectors into portable ones; vectors that carry the clone stamp
// keys already are refused (the SDK stamps them itself).
func portable(vs []driver.Vector, rep *VectorReport) []vectorstore.Vector {
	out := make([]vectorstore.Vector, 0, len(vs))
	for _, v := range vs {
		if _, ok := v.Metadata[vectorstore.TenantKey]; ok {
			rep.Problems = append(rep.Problems, Problem{Key: v.ID, Reason: "legacy metadata has a " + vectorstore.TenantKey + " key"})
			continue
		}
		if _, ok := v.Metadata[vectorstore.CloneKey]; ok {
			rep.Problems = append(rep.Problems, Problem{Key: v.ID, Reason: "legacy metadata has a " + vectorstore.CloneKey + " key"})
			continue
		}
		out = append(out, vectorstore.Vector{ID: v.ID, Values: v.Values, Metadata: v.Metadata})
	}
	return out
}

// MigrateVectors copies the legacy vectors into their users' clones through the
// clone-scoped o.Target (clone namespace, tenant_id and clone_id stamped in metadata),
// in batches of o.BatchSize. Legacy vectors are never changed (see
// [Migrator.DeleteLegacyVectors]). Progress is recorded in the database: with a
// namespace per user, each user is recorded when all of its vectors are copied (an
// interrupted user is copied again; upserts are idempotent); with the shared layout,
// each batch's last ID and per-user counts are recorded in one transaction after its
// upsert. A rerun thus resumes, and a second complete run copies nothing. Vectors of
// the shared namespace without a provisioned user are reported, not copied.
func (m *Migrator) MigrateVectors(ctx context.Context, o *VectorOptions) (*VectorReport, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	users, ccs, err := m.userContexts(ctx, o.DryRun)
	if err != nil {
		return nil, err
	}
	rep := &VectorReport{PerUser: map[string]int64{}}
	if !o.DryRun {
		release, err := m.exclusive(ctx, lockVectors, "MigrateVectors")
		if err != nil {
			return rep, err
		}
		defer release()
	}
	if o.Layout == LayoutShared {
		return rep, m.migrateShared(ctx, o, ccs, rep)
	}
	for i, u := range users {
		ns := strings.ReplaceAll(o.NamespaceTemplate, "{user_id}", u.UserID)
		var done bool
		var err error
		if !o.DryRun {
			err = m.db.GetContext(ctx, &done, "SELECT done FROM cloneiso_legacy_vectors WHERE source = $1 AND user_id = $2", ns, u.UserID)
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return rep, classify("legacy.MigrateVectors", err, "read progress")
		}
		if done {
			rep.Skipped++
			continue
		}
		var n int64
		err = scan(ctx, o.Source, ns, o.BatchSize, "", func(vs []driver.Vector) error {
			if err := m.cfg.at(ctx, "vectors-batch", int(n)); err != nil {
				return err
			}
			pv := portable(vs, rep)
			if !o.DryRun && len(pv) > 0 {
				if err := o.Target.Upsert(ctx, ccs[u.UserID], pv); err != nil {
					return fmt.Errorf("upsert into the clone of %s: %w", u.UserID, err)
				}
			}
			n += int64(len(pv))
			return nil
		})
		if err != nil {
			return rep, err
		}
		rep.PerUser[u.UserID] = n
		if o.DryRun {
			continue
		}
		rep.Copied += n
		if _, err := m.db.ExecContext(ctx, `INSERT INTO cloneiso_legacy_vectors (source, user_id, copied, done) VALUES ($1, $2, $3, true)
			ON CONFLICT (source, user_id) DO UPDATE SET copied = EXCLUDED.copied, done = true`, ns, u.UserID, n); err != nil {
			return rep, classify("legacy.MigrateVectors", err, "record progress")
		}
		m.cfg.Progress(Progress{Step: "vectors", Table: u.UserID, Done: int64(i + 1), Total: int64(len(users))})
	}
	return rep, nil
}

func (m *Migrator) migrateShared(ctx context.Context, o *VectorOptions, ccs map[string]clone.CloneContext, rep *VectorReport) error {
	const op = "legacy.MigrateVectors"
	ns := o.SharedNamespace
	var after string
	if !o.DryRun {
		var last []byte
		err := m.db.QueryRowxContext(ctx, "SELECT (last_key)[1] FROM cloneiso_legacy_checkpoints WHERE step = 'vectors' AND name = $1", ns).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return classify(op, err, "read progress")
		}
		after = string(last)
	}
	total := int64(0)
	if st, err := o.Source.Stats(ctx, ns); err == nil {
		total = int64(st.VectorCount)
	}
	var seen int64
	batch := 0
	return scan(ctx, o.Source, ns, o.BatchSize, after, func(vs []driver.Vector) error {
		if err := m.cfg.at(ctx, "vectors-batch", batch); err != nil {
			return err
		}
		batch++
		byUser := map[string][]driver.Vector{}
		for _, v := range vs {
			u := userOf(v.Metadata, o.UserKey)
			if _, ok := ccs[u]; !ok {
				rep.Problems = append(rep.Problems, Problem{Key: v.ID, UserID: u, Reason: "no provisioned user in metadata key " + o.UserKey})
				continue
			}
			byUser[u] = append(byUser[u], v)
		}
		counts := map[string]int64{}
		for _, u := range slices.Sorted(mapsKeys(byUser)) {
			pv := portable(byUser[u], rep)
			if !o.DryRun && len(pv) > 0 {
				if err := o.Target.Upsert(ctx, ccs[u], pv); err != nil {
					return fmt.Errorf("upsert into the clone of %s: %w", u, err)
				}
			}
			counts[u] += int64(len(pv))
			rep.PerUser[u] += int64(len(pv))
		}
		seen += int64(len(vs))
		if o.DryRun {
			return nil
		}
		tx, err := m.db.BeginTxx(ctx, nil)
		if err != nil {
			return classify(op, err, "begin")
		}
		defer tx.Rollback()
		for u, n := range counts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_vectors (source, user_id, copied, done) VALUES ($1, $2, $3, true)
				ON CONFLICT (source, user_id) DO UPDATE SET copied = cloneiso_legacy_vectors.copied + EXCLUDED.copied`, ns, u, n); err != nil {
				return classify(op, err, "record progress")
			}
			rep.Copied += n
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_checkpoints (step, name, last_key, batches, rows_changed, updated_at)
			VALUES ('vectors', $1, ARRAY[$2], 1, $3, now())
			ON CONFLICT (step, name) DO UPDATE SET last_key = EXCLUDED.last_key, batches = cloneiso_legacy_checkpoints.batches + 1,
				rows_changed = cloneiso_legacy_checkpoints.rows_changed + EXCLUDED.rows_changed, updated_at = now()`,
			ns, vs[len(vs)-1].ID, int64(len(vs))); err != nil {
			return classify(op, err, "record progress")
		}
		if err := m.cfg.at(ctx, "vectors-before-commit", batch-1); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return classify(op, err, "commit")
		}
		m.cfg.Progress(Progress{Step: "vectors", Table: ns, Done: seen, Total: total})
		return nil
	})
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// scanLegacy reads the legacy vectors batch by batch and calls fn with each batch of
// one user's vectors; vectors of no provisioned user (shared layout) go to unmatched.
func (m *Migrator) scanLegacy(ctx context.Context, o *VectorOptions, users []UserClone, ccs map[string]clone.CloneContext,
	fn func(user string, vs []driver.Vector) error, unmatched func(v driver.Vector, user string)) error {
	if o.Layout == LayoutShared {
		return scan(ctx, o.Source, o.SharedNamespace, o.BatchSize, "", func(vs []driver.Vector) error {
			byUser := map[string][]driver.Vector{}
			for _, v := range vs {
				u := userOf(v.Metadata, o.UserKey)
				if _, ok := ccs[u]; !ok {
					unmatched(v, u)
					continue
				}
				byUser[u] = append(byUser[u], v)
			}
			for _, u := range slices.Sorted(mapsKeys(byUser)) {
				if err := fn(u, byUser[u]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, u := range users {
		ns := strings.ReplaceAll(o.NamespaceTemplate, "{user_id}", u.UserID)
		if err := scan(ctx, o.Source, ns, o.BatchSize, "", func(vs []driver.Vector) error { return fn(u.UserID, vs) }); err != nil {
			return err
		}
	}
	return nil
}

// VerifyVectors checks the vector migration without changing anything: for every user,
// each legacy vector is in the user's clone with the same metadata (plus the clone
// stamps) and the same values (to float32 rounding); the clone holds at least as many
// vectors as the user had; and users whose legacy vectors were already deleted still
// have as many vectors as were recorded copied. Legacy vectors of no provisioned user
// (shared layout), and namespaces of no provisioned user (per-user layout, with a
// [NamespaceLister] source), are reported as unmatched. It streams: memory does not
// grow with the index.
func (m *Migrator) VerifyVectors(ctx context.Context, o *VectorOptions) (*VerifyReport, error) {
	r, _, err := m.verifyVectors(ctx, o)
	return r, err
}

// verifyVectors is VerifyVectors, also returning how many legacy vectors each user has.
func (m *Migrator) verifyVectors(ctx context.Context, o *VectorOptions) (*VerifyReport, map[string]int64, error) {
	const op = "legacy.VerifyVectors"
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	users, ccs, err := m.userContexts(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	r := &VerifyReport{}
	legacyCount := map[string]int64{}
	err = m.scanLegacy(ctx, o, users, ccs, func(u string, batch []driver.Vector) error {
		legacyCount[u] += int64(len(batch))
		ids := make([]string, len(batch))
		for j, v := range batch {
			ids[j] = v.ID
		}
		got, err := o.Target.Fetch(ctx, ccs[u], ids)
		if err != nil {
			return err
		}
		byID := make(map[string]vectorstore.Vector, len(got))
		for _, v := range got {
			byID[v.ID] = v
		}
		for _, v := range batch {
			c, ok := byID[v.ID]
			switch {
			case !ok:
				r.add(DiscrepancyVector, "", u, 1, "vector %s of user %s is not in its clone", v.ID, u)
			case !sameMetadata(v.Metadata, c.Metadata):
				r.add(DiscrepancyVector, "", u, 1, "vector %s of user %s: metadata differs", v.ID, u)
			case !sameValues(v.Values, c.Values):
				r.add(DiscrepancyVector, "", u, 1, "vector %s of user %s: values differ", v.ID, u)
			}
		}
		return nil
	}, func(v driver.Vector, u string) {
		r.add(DiscrepancyUnmatched, o.SharedNamespace, u, 1, "legacy vector %s has no provisioned user", v.ID)
	})
	if err != nil {
		return nil, nil, classify(op, err, "read legacy vectors")
	}
	if nl, ok := o.Source.(NamespaceLister); ok && o.Layout == LayoutNamespacePerUser {
		// Namespaces that fit the template but belong to no provisioned user.
		prefix, suffix, _ := strings.Cut(o.NamespaceTemplate, "{user_id}")
		names, err := nl.ListNamespaces(ctx, prefix)
		if err != nil {
			return nil, nil, classify(op, err, "list namespaces")
		}
		for _, ns := range names {
			u, _ := strings.CutPrefix(ns, prefix)
			u, ok := strings.CutSuffix(u, suffix)
			if !ok || u == "" {
				continue
			}
			if _, known := ccs[u]; !known {
				r.add(DiscrepancyUnmatched, ns, u, 0, "legacy namespace %s belongs to no provisioned user", ns)
			}
		}
	}
	var recorded []struct {
		UserID  string       `db:"user_id"`
		Copied  int64        `db:"copied"`
		Deleted sql.NullTime `db:"deleted_at"`
	}
	if err := m.db.SelectContext(ctx, &recorded, "SELECT user_id, copied, deleted_at FROM cloneiso_legacy_vectors WHERE source = $1 OR $2",
		o.SharedNamespace, o.Layout == LayoutNamespacePerUser); err != nil {
		return nil, nil, classify(op, err, "read progress")
	}
	copied := map[string]int64{}
	deleted := map[string]bool{}
	for _, x := range recorded {
		copied[x.UserID] += x.Copied
		deleted[x.UserID] = deleted[x.UserID] || x.Deleted.Valid
	}
	for i, u := range users {
		st, err := o.Target.Stats(ctx, ccs[u.UserID])
		if err != nil {
			return nil, nil, err
		}
		want := legacyCount[u.UserID]
		if want == 0 && deleted[u.UserID] {
			want = copied[u.UserID]
		}
		if int64(st.VectorCount) < want {
			r.add(DiscrepancyVector, "", u.UserID, want-int64(st.VectorCount), "clone of user %s has %d vectors; the user had %d", u.UserID, st.VectorCount, want)
		}
		m.cfg.Progress(Progress{Step: "verify-vectors", Table: u.UserID, Done: int64(i + 1), Total: int64(len(users))})
	}
	return r, legacyCount, nil
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

// DeleteLegacyVectors is the separate, explicit last step of the vector migration: for
// each user whose legacy vectors are all in its clone (checked again, by ID and
// content), it deletes them from the legacy layout — the user's namespace, or the
// user's IDs in the shared namespace — and records the deletion. Users that fail the
// check keep their legacy vectors and are reported. With o.DryRun it only counts.
func (m *Migrator) DeleteLegacyVectors(ctx context.Context, o *VectorOptions) (*VectorReport, error) {
	const op = "legacy.DeleteLegacyVectors"
	vr, counts, err := m.verifyVectors(ctx, o)
	if err != nil {
		return nil, err
	}
	users, ccs, err := m.userContexts(ctx, false)
	if err != nil {
		return nil, err
	}
	bad := map[string]bool{}
	for _, d := range vr.Discrepancies {
		if d.Kind == DiscrepancyVector {
			bad[d.UserID] = true
		}
	}
	rep := &VectorReport{PerUser: map[string]int64{}}
	var good []UserClone
	for _, u := range users {
		if counts[u.UserID] == 0 {
			continue
		}
		if bad[u.UserID] {
			rep.Problems = append(rep.Problems, Problem{UserID: u.UserID, Reason: "the clone's copy failed verification; legacy vectors kept"})
			continue
		}
		good = append(good, u)
		rep.PerUser[u.UserID] = counts[u.UserID]
	}
	if o.DryRun {
		for _, u := range good {
			rep.Deleted += counts[u.UserID]
		}
		return rep, nil
	}
	record := func(src, user string) error {
		if _, err := m.db.ExecContext(ctx, `UPDATE cloneiso_legacy_vectors SET deleted_at = now() WHERE source = $1 AND user_id = $2`, src, user); err != nil {
			return classify(op, err, "record deletion")
		}
		return nil
	}
	if o.Layout == LayoutNamespacePerUser {
		for i, u := range good {
			if err := m.cfg.at(ctx, "delete-vectors", i); err != nil {
				return rep, err
			}
			src := strings.ReplaceAll(o.NamespaceTemplate, "{user_id}", u.UserID)
			if err := o.Source.DeleteNamespace(ctx, src); err != nil {
				return rep, fmt.Errorf("delete legacy namespace %s: %w", src, err)
			}
			rep.Deleted += counts[u.UserID]
			if err := record(src, u.UserID); err != nil {
				return rep, err
			}
			m.cfg.Progress(Progress{Step: "delete-vectors", Table: u.UserID, Done: int64(i + 1), Total: int64(len(good))})
		}
		return rep, nil
	}
	// Shared namespace: collect the IDs of the verified users (IDs only), then delete.
	ok := map[string]bool{}
	for _, u := range good {
		ok[u.UserID] = true
	}
	var ids []string
	err = m.scanLegacy(ctx, o, nil, ccs, func(u string, vs []driver.Vector) error {
		if ok[u] {
			for _, v := range vs {
				ids = append(ids, v.ID)
			}
		}
		return nil
	}, func(driver.Vector, string) {})
	if err != nil {
		return rep, classify(op, err, "read legacy vectors")
	}
	for start := 0; start < len(ids); start += o.BatchSize {
		if err := m.cfg.at(ctx, "delete-vectors", start); err != nil {
			return rep, err
		}
		batch := ids[start:min(start+o.BatchSize, len(ids))]
		if err := o.Source.Delete(ctx, o.SharedNamespace, batch); err != nil {
			return rep, fmt.Errorf("delete legacy vectors: %w", err)
		}
		rep.Deleted += int64(len(batch))
		m.cfg.Progress(Progress{Step: "delete-vectors", Table: o.SharedNamespace, Done: int64(start + len(batch)), Total: int64(len(ids))})
	}
	for _, u := range good {
		if err := record(o.SharedNamespace, u.UserID); err != nil {
			return rep, err
		}
	}
	return rep, nil
}
