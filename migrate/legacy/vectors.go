package legacy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

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
	// DryRun counts, per user, what would be copied (or deleted), writing nothing. Like
	// a copy, it reads the vector ledger of earlier runs: vectors recorded as copied
	// and intact in their clone count as already copied (Skipped), excluded ones as
	// excluded, and neither as to copy.
	DryRun bool
	// Restart makes [Migrator.MigrateVectors] scan every legacy vector again from the
	// start, ignoring the checkpoint (shared layout) and the users recorded done
	// (namespace per user), to pick up vectors the legacy application wrote behind them.
	// Copies recorded in the ledger and still intact in their clone are neither written
	// nor counted again, so a restart is idempotent.
	Restart bool
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

// MaxReportedIDs bounds the vector IDs a [VectorReport] lists as left behind.
const MaxReportedIDs = 100

// VectorRef names one legacy vector.
type VectorRef struct {
	Namespace string
	ID        string
}

// VectorReport tells what a vector step did (or, in a dry run, would do).
type VectorReport struct {
	Copied    int64 // vectors written into clones by this call (dry run: that would be)
	Skipped   int64 // vectors already copied and still intact in their clone: not written again
	UsersDone int64 // user namespaces (namespace per user) recorded done by an earlier run: not scanned
	Excluded  int64 // legacy vectors (or, per namespace, their count) the operator excluded
	Deleted   int64 // legacy vectors deleted by this call (dry run: that would be)
	// LeftBehind counts the legacy vectors [Migrator.DeleteLegacyVectors] did not delete
	// (excluded ones apart): written after their copy, never copied, refused, or kept
	// because a check failed. LeftBehindIDs lists the first MaxReportedIDs of them.
	LeftBehind    int64
	LeftBehindIDs []VectorRef
	// PerUser counts, per user, the vectors met by this call that are (or would be) in
	// the user's clone; for a deletion, the legacy vectors deleted.
	PerUser map[string]int64
	// Problems are the items a step could not do (Key is the vector ID, or the namespace
	// for a namespace of no user; Err is the typed error that refused it).
	Problems []Problem
}

// OK reports whether no problem was met and nothing was left behind.
func (r *VectorReport) OK() bool { return len(r.Problems) == 0 && r.LeftBehind == 0 }

func (r *VectorReport) leftBehind(ns, id string) {
	r.LeftBehind++
	if len(r.LeftBehindIDs) < MaxReportedIDs {
		r.LeftBehindIDs = append(r.LeftBehindIDs, VectorRef{Namespace: ns, ID: id})
	}
}

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

// namespaceOf is the legacy namespace of user (namespace per user).
func (o *VectorOptions) namespaceOf(user string) string {
	return strings.ReplaceAll(o.NamespaceTemplate, "{user_id}", user)
}

// userOfNamespace is the user a legacy namespace belongs to by the template (namespace
// per user); ok is false if the name does not fit the template. The user may be "".
func (o *VectorOptions) userOfNamespace(ns string) (user string, ok bool) {
	prefix, suffix, _ := strings.Cut(o.NamespaceTemplate, "{user_id}")
	u, ok := strings.CutPrefix(ns, prefix)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(u, suffix)
}

// isCloneNamespace reports whether ns is a clone's namespace ("t-<uuid>-c-<uuid>"):
// with a namespace template that has no prefix, listing the legacy namespaces of an
// index the clones share finds theirs too.
func isCloneNamespace(ns string) bool {
	const idLen = 36
	if len(ns) != 2+idLen+3+idLen || !strings.HasPrefix(ns, "t-") || ns[2+idLen:2+idLen+3] != "-c-" {
		return false
	}
	_, errT := clone.ParseID(ns[2 : 2+idLen])
	_, errC := clone.ParseID(ns[2+idLen+3:])
	return errT == nil && errC == nil
}

// vectorUser is the user whose clone receives the vectors of legacy user ID id: the
// target of an operator's map decision (Config.UserDecisions), else id itself.
func (m *Migrator) vectorUser(id string) string {
	if d, ok := m.cfg.UserDecisions[id]; ok && d.Action == DecisionMap {
		return d.To
	}
	return id
}

// setAsideUser returns the decision that sets legacy user ID id aside (quarantine or
// drop), or "".
func (m *Migrator) setAsideUser(id string) string {
	if d, ok := m.cfg.UserDecisions[id]; ok && d.setAside() {
		return d.Action
	}
	return ""
}

// vectorSources returns the legacy namespaces whose vectors go to user u's clone: the
// shared one, or u's own and those of the IDs mapped to u.
func (m *Migrator) vectorSources(o *VectorOptions, u string) []string {
	if o.Layout == LayoutShared {
		return []string{o.SharedNamespace}
	}
	out := []string{o.namespaceOf(u)}
	for id, d := range m.cfg.UserDecisions {
		if d.Action == DecisionMap && d.To == u {
			out = append(out, o.namespaceOf(id))
		}
	}
	slices.Sort(out[1:])
	return out
}

// refusedInput reports whether err is the vector store refusing its input (nothing was
// written): a problem of the vectors, not of the store.
func refusedInput(err error) bool {
	switch errs.KindOf(err) {
	case errs.InvalidInput, errs.TooLarge, errs.CloneMismatch, errs.InvalidID:
		return true
	}
	return false
}

// vecCopy is one run of MigrateVectors.
type vecCopy struct {
	m   *Migrator
	o   *VectorOptions
	ccs map[string]clone.CloneContext // users with a clone (dry run: legacy users)
	rep *VectorReport
	// ledger: the vector ledger exists (always, but in a dry run before adoption), so
	// a dry run counts recorded copies and exclusions as a copy would.
	ledger bool
	// clones are the users with a clone (in a dry run too), whose recorded copies are
	// checked in their clone.
	clones map[string]clone.CloneContext
	// retried holds the refused vectors the run already retried (source + "\x00" + ID),
	// so that meeting them again in the scan neither copies nor reports them twice.
	retried map[string]bool
}

const opMigrateVectors = "legacy.MigrateVectors"

// MigrateVectors copies the legacy vectors into their users' clones through the
// clone-scoped o.Target (clone namespace, tenant_id and clone_id stamped in metadata),
// in batches of o.BatchSize. Legacy vectors are never changed (see
// [Migrator.DeleteLegacyVectors]).
//
// Every vector met is recorded in the migration's vector ledger with what became of it:
// copied (with a fingerprint of its values and metadata), or refused with the reason —
// no user in its metadata, a user without a clone, metadata the SDK refuses (reserved
// keys, over [vectorstore.MaxMetadataBytes] once the clone stamps are added, ...). A
// refused vector is a [Problem] of that vector only: the rest of its batch is copied.
// Refused vectors stay pending: every run retries them first (after the operator fixed
// them, or provisioned their user) until they are copied or excluded
// ([Migrator.ExcludeVectors]). With a namespace per user, a legacy namespace that maps
// to no user with a clone (found when o.Source is a [NamespaceLister]) is reported too.
//
// Progress is recorded in the database: with a namespace per user, each user is
// recorded when all of its vectors are copied (an interrupted user is scanned again);
// with the shared layout, each batch's ledger rows and last ID are recorded in one
// transaction. A rerun thus resumes, and a second complete run copies nothing; with
// o.Restart it rescans everything, writing only what is missing or changed. With
// o.DryRun it counts what would be copied and what would be refused, reading only.
func (m *Migrator) MigrateVectors(ctx context.Context, o *VectorOptions) (*VectorReport, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	users, ccs, err := m.userContexts(ctx, o.DryRun)
	if err != nil {
		return nil, err
	}
	run := &vecCopy{m: m, o: o, ccs: ccs, rep: &VectorReport{PerUser: map[string]int64{}}, retried: map[string]bool{}, ledger: !o.DryRun, clones: ccs}
	if o.DryRun {
		if err := run.readLedger(ctx); err != nil {
			return run.rep, err
		}
	} else {
		release, err := m.exclusive(ctx, lockVectors, "MigrateVectors")
		if err != nil {
			return run.rep, err
		}
		defer release()
		if err := m.ensureVectorLedger(ctx, opMigrateVectors); err != nil {
			return run.rep, err
		}
		if err := run.restart(ctx); err != nil {
			return run.rep, err
		}
		if err := run.retryRefused(ctx); err != nil {
			return run.rep, err
		}
	}
	if o.Layout == LayoutShared {
		err = run.copyShared(ctx)
	} else if err = run.copyPerUser(ctx, users); err == nil {
		err = run.unmatchedNamespaces(ctx)
	}
	if err == nil && run.ledger {
		err = run.countExcluded(ctx)
	}
	rep := run.rep
	m.cfg.Logger.InfoContext(ctx, "legacy: vectors", "copied", rep.Copied, "skipped", rep.Skipped, "excluded", rep.Excluded, "problems", len(rep.Problems))
	return rep, err
}

// readLedger prepares a dry run to count as a copy would: with the vector ledger of
// earlier runs, vectors recorded as copied (and intact in their clone) are already
// copied, excluded ones excluded.
func (c *vecCopy) readLedger(ctx context.Context) error {
	ok, err := tableExists(ctx, c.m.db, "cloneiso_legacy_vector_ids")
	if err != nil || !ok {
		return classify(opMigrateVectors, err, "read the vector ledger")
	}
	c.ledger = true
	_, c.clones, err = c.m.userContexts(ctx, false)
	return err
}

// countExcluded adds the vectors of the layout the operator excluded to the report.
func (c *vecCopy) countExcluded(ctx context.Context) error {
	var rows []struct {
		Source string `db:"source"`
		N      int64  `db:"n"`
	}
	if err := c.m.db.SelectContext(ctx, &rows, `SELECT source, count(*) AS n FROM cloneiso_legacy_vector_ids
		WHERE state = 'excluded' AND id <> '' GROUP BY source`); err != nil {
		return classify(opMigrateVectors, err, "read the vector ledger")
	}
	for _, r := range rows {
		if _, ok := c.o.userOfNamespace(r.Source); c.o.Layout == LayoutShared && r.Source == c.o.SharedNamespace || c.o.Layout == LayoutNamespacePerUser && ok {
			c.rep.Excluded += r.N
		}
	}
	return nil
}

// restart forgets the checkpoint and the users recorded done, with o.Restart.
func (c *vecCopy) restart(ctx context.Context) error {
	if !c.o.Restart {
		return nil
	}
	_, err := c.m.db.ExecContext(ctx, `DELETE FROM cloneiso_legacy_checkpoints WHERE step = 'vectors' AND name = $1`, c.o.SharedNamespace)
	if err == nil && c.o.Layout == LayoutNamespacePerUser {
		_, err = c.m.db.ExecContext(ctx, `UPDATE cloneiso_legacy_vectors SET done = false`)
	}
	return classify(opMigrateVectors, err, "restart")
}

// ownerOf returns the function that names the user of a vector of namespace ns.
func (c *vecCopy) ownerOf(ns string) func(driver.Vector) string {
	if c.o.Layout == LayoutShared {
		return func(v driver.Vector) string { return c.m.vectorUser(userOf(v.Metadata, c.o.UserKey)) }
	}
	u, _ := c.o.userOfNamespace(ns)
	u = c.m.vectorUser(u)
	return func(driver.Vector) string { return u }
}

// refusal returns why vector v of user u cannot be copied, or nil.
func (c *vecCopy) refusal(v driver.Vector, u string) error {
	switch _, ok := c.ccs[u]; {
	case u == "" && c.o.Layout == LayoutShared:
		return errs.New(errs.NotFound, opMigrateVectors, "no user ID in metadata key %s", c.o.UserKey)
	case u == "":
		return errs.New(errs.NotFound, opMigrateVectors, "its namespace names no user")
	case !ok && c.m.setAsideUser(u) != "":
		return errs.New(errs.NotFound, opMigrateVectors, "user ID %s is decided %q: its vectors are not copied (exclude them with vectors exclude)", u, c.m.setAsideUser(u))
	case !ok:
		return errs.New(errs.NotFound, opMigrateVectors, "user %s has no clone (not a legacy user, or not provisioned: run backfill first)", u)
	}
	for _, k := range []string{vectorstore.TenantKey, vectorstore.CloneKey} {
		if _, ok := v.Metadata[k]; ok {
			return errs.New(errs.InvalidInput, opMigrateVectors, "legacy metadata has a %s key, which the SDK reserves for the clone stamps", k)
		}
	}
	if c.o.DryRun {
		// The stamps the copy adds: two canonical UUIDs.
		md := make(map[string]any, len(v.Metadata)+2)
		maps.Copy(md, v.Metadata)
		md[vectorstore.TenantKey], md[vectorstore.CloneKey] = strings.Repeat("0", 36), strings.Repeat("0", 36)
		if b, err := json.Marshal(md); err == nil && len(b) > vectorstore.MaxMetadataBytes {
			return errs.New(errs.TooLarge, opMigrateVectors, "metadata would be %d bytes with the clone stamps, over the limit of %d", len(b), vectorstore.MaxMetadataBytes)
		}
	}
	return nil
}

func (c *vecCopy) refuse(ns string, v driver.Vector, u string, err error) vecWrite {
	c.rep.Problems = append(c.rep.Problems, Problem{Key: v.ID, UserID: u, Reason: err.Error(), Err: err})
	return vecWrite{id: v.ID, user: u, state: vecRefused, reason: err.Error()}
}

// copyBatch copies one fetched batch of namespace ns, and returns the ledger rows to
// record (none in a dry run).
func (c *vecCopy) copyBatch(ctx context.Context, ns string, vs []driver.Vector) ([]vecWrite, error) {
	var known map[string]vecEntry
	if c.ledger {
		ids := make([]string, len(vs))
		for i, v := range vs {
			ids[i] = v.ID
		}
		var err error
		if known, err = vectorEntries(ctx, c.m.db, ns, ids); err != nil {
			return nil, classify(opMigrateVectors, err, "read the vector ledger")
		}
	}
	owner := c.ownerOf(ns)
	var writes []vecWrite
	todo := map[string][]driver.Vector{}   // to write, per user
	intact := map[string][]driver.Vector{} // recorded copies to check in the clone, per user
	for _, v := range vs {
		e, seen := known[v.ID]
		if seen && e.State == vecExcluded {
			continue // counted at the end of the run
		}
		if c.retried[ns+"\x00"+v.ID] {
			continue
		}
		u := owner(v)
		if err := c.refusal(v, u); err != nil {
			writes = append(writes, c.refuse(ns, v, u, err))
			continue
		}
		if seen && e.State == vecCopied && e.UserID == u && e.Fingerprint == fingerprint(v) {
			intact[u] = append(intact[u], v)
		} else {
			todo[u] = append(todo[u], v)
		}
	}
	for _, u := range slices.Sorted(maps.Keys(intact)) {
		stale, err := c.checkIntact(ctx, u, intact[u])
		if err != nil {
			return nil, err
		}
		todo[u] = append(todo[u], stale...)
	}
	for _, u := range slices.Sorted(maps.Keys(todo)) {
		w, err := c.upsert(ctx, ns, u, todo[u])
		if err != nil {
			return nil, err
		}
		writes = append(writes, w...)
	}
	return writes, c.removeMoved(ctx, known, writes)
}

// removeMoved deletes, from the clone of the user a vector was copied to earlier, the
// copy of a vector now copied to another user (shared layout: the legacy application
// changed its user): the copy was the migration's, and is that user's no longer.
func (c *vecCopy) removeMoved(ctx context.Context, known map[string]vecEntry, writes []vecWrite) error {
	moved := map[string][]string{}
	for _, w := range writes {
		if e, ok := known[w.id]; ok && w.state == vecCopied && e.State == vecCopied && e.UserID != w.user && !e.DeletedAt.Valid {
			if _, ok := c.ccs[e.UserID]; ok {
				moved[e.UserID] = append(moved[e.UserID], w.id)
			}
		}
	}
	for _, u := range slices.Sorted(maps.Keys(moved)) {
		if err := c.o.Target.Delete(ctx, c.ccs[u], moved[u]); err != nil {
			return fmt.Errorf("remove from the clone of %s the copies of vectors now of another user: %w", u, err)
		}
	}
	return nil
}

// checkIntact counts the recorded copies of user u still intact in its clone as skipped
// and returns the others.
func (c *vecCopy) checkIntact(ctx context.Context, u string, vs []driver.Vector) ([]driver.Vector, error) {
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	cc, ok := c.clones[u]
	if !ok {
		return vs, nil
	}
	got, err := c.o.Target.Fetch(ctx, cc, ids)
	if err != nil {
		return nil, fmt.Errorf("read the clone of %s: %w", u, err)
	}
	byID := make(map[string]vectorstore.Vector, len(got))
	for _, g := range got {
		byID[g.ID] = g
	}
	var stale []driver.Vector
	for _, v := range vs {
		if g, ok := byID[v.ID]; ok && sameMetadata(v.Metadata, g.Metadata) && sameValues(v.Values, g.Values) {
			c.rep.Skipped++
			c.rep.PerUser[u]++
			continue
		}
		stale = append(stale, v)
	}
	return stale, nil
}

// upsert writes vectors of user u into its clone. If the store refuses the batch's
// input, it writes them one by one, so that the refused vectors are reported and the
// others copied.
func (c *vecCopy) upsert(ctx context.Context, ns, u string, vs []driver.Vector) ([]vecWrite, error) {
	copied := func(v driver.Vector) vecWrite {
		c.rep.Copied++
		c.rep.PerUser[u]++
		return vecWrite{id: v.ID, user: u, state: vecCopied, fingerprint: fingerprint(v)}
	}
	var writes []vecWrite
	if c.o.DryRun {
		for _, v := range vs {
			copied(v)
		}
		return nil, nil
	}
	pv := make([]vectorstore.Vector, len(vs))
	for i, v := range vs {
		pv[i] = vectorstore.Vector{ID: v.ID, Values: v.Values, Metadata: v.Metadata}
	}
	err := c.o.Target.Upsert(ctx, c.ccs[u], pv)
	if err == nil {
		for _, v := range vs {
			writes = append(writes, copied(v))
		}
		return writes, nil
	}
	if !refusedInput(err) {
		return nil, fmt.Errorf("upsert into the clone of %s: %w", u, err)
	}
	for i, v := range vs {
		switch err := c.o.Target.Upsert(ctx, c.ccs[u], pv[i:i+1]); {
		case err == nil:
			writes = append(writes, copied(v))
		case refusedInput(err):
			writes = append(writes, c.refuse(ns, v, u, err))
		default:
			return nil, fmt.Errorf("upsert into the clone of %s: %w", u, err)
		}
	}
	return writes, nil
}

// retryRefused retries, first, every vector an earlier run refused (and nobody
// excluded): it is copied if it can be now, forgotten if it is gone from the legacy
// layout, and reported again otherwise.
func (c *vecCopy) retryRefused(ctx context.Context) error {
	var rows []vecEntry
	if err := c.m.db.SelectContext(ctx, &rows, `SELECT source, id FROM cloneiso_legacy_vector_ids
		WHERE state = 'refused' AND id <> '' ORDER BY source, id`); err != nil {
		return classify(opMigrateVectors, err, "read the vector ledger")
	}
	bySource := map[string][]string{}
	for _, r := range rows {
		if c.o.Layout == LayoutShared && r.Source == c.o.SharedNamespace {
			bySource[r.Source] = append(bySource[r.Source], r.ID)
		} else if _, ok := c.o.userOfNamespace(r.Source); ok && c.o.Layout == LayoutNamespacePerUser {
			bySource[r.Source] = append(bySource[r.Source], r.ID)
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(bySource)) {
		ids := bySource[ns]
		for start := 0; start < len(ids); start += c.o.BatchSize {
			batch := ids[start:min(start+c.o.BatchSize, len(ids))]
			vs, err := c.o.Source.Fetch(ctx, ns, batch)
			if err != nil {
				return classify(opMigrateVectors, err, "fetch from %s", ns)
			}
			writes, err := c.copyBatch(ctx, ns, vs)
			if err != nil {
				return err
			}
			found := map[string]bool{}
			for _, v := range vs {
				found[v.ID] = true
			}
			var gone []string
			for _, id := range batch {
				c.retried[ns+"\x00"+id] = true
				if !found[id] {
					gone = append(gone, id)
				}
			}
			err = c.m.inTx(ctx, opMigrateVectors, func(tx *sqlx.Tx) error {
				if err := recordVectors(ctx, tx, ns, writes); err != nil {
					return err
				}
				return forgetVectors(ctx, tx, ns, gone)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// copyShared copies the shared namespace from its checkpoint on.
func (c *vecCopy) copyShared(ctx context.Context) error {
	m, o := c.m, c.o
	ns := o.SharedNamespace
	var after string
	if !o.DryRun {
		var last []byte
		err := m.db.QueryRowxContext(ctx, "SELECT (last_key)[1] FROM cloneiso_legacy_checkpoints WHERE step = 'vectors' AND name = $1", ns).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return classify(opMigrateVectors, err, "read progress")
		}
		after = string(last)
	}
	total := int64(0)
	if st, err := o.Source.Stats(ctx, ns); err == nil {
		total = int64(st.VectorCount)
	}
	var seen int64
	batch := 0
	err := scan(ctx, o.Source, ns, o.BatchSize, after, func(vs []driver.Vector) error {
		if err := m.cfg.at(ctx, "vectors-batch", batch); err != nil {
			return err
		}
		batch++
		writes, err := c.copyBatch(ctx, ns, vs)
		if err != nil {
			return err
		}
		seen += int64(len(vs))
		if o.DryRun {
			return nil
		}
		err = m.inTx(ctx, opMigrateVectors, func(tx *sqlx.Tx) error {
			if err := recordVectors(ctx, tx, ns, writes); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_checkpoints (step, name, last_key, batches, rows_changed, updated_at)
				VALUES ('vectors', $1, ARRAY[$2], 1, $3, now())
				ON CONFLICT (step, name) DO UPDATE SET last_key = EXCLUDED.last_key, batches = cloneiso_legacy_checkpoints.batches + 1,
					rows_changed = cloneiso_legacy_checkpoints.rows_changed + EXCLUDED.rows_changed, updated_at = now()`,
				ns, vs[len(vs)-1].ID, int64(len(vs))); err != nil {
				return err
			}
			return m.cfg.at(ctx, "vectors-before-commit", batch-1)
		})
		if err != nil {
			return err
		}
		m.cfg.Progress(Progress{Step: "vectors", Table: ns, Done: seen, Total: total})
		return nil
	})
	if err != nil {
		return err
	}
	return c.recordUsers(ctx, ns, nil)
}

// recordUsers refreshes the per-user summary of namespace ns from the ledger, marking
// done the given users.
func (c *vecCopy) recordUsers(ctx context.Context, ns string, done []string) error {
	if c.o.DryRun {
		return nil
	}
	_, err := c.m.db.ExecContext(ctx, `INSERT INTO cloneiso_legacy_vectors (source, user_id, copied, done)
		SELECT $1, user_id, count(*), user_id = ANY($2::text[]) FROM cloneiso_legacy_vector_ids
		WHERE source = $1 AND state = 'copied' AND user_id <> '' GROUP BY user_id
		UNION ALL SELECT $1, u, 0, true FROM unnest($2::text[]) AS u
		WHERE NOT EXISTS (SELECT 1 FROM cloneiso_legacy_vector_ids WHERE source = $1 AND state = 'copied' AND user_id = u)
		ON CONFLICT (source, user_id) DO UPDATE SET copied = EXCLUDED.copied, done = cloneiso_legacy_vectors.done OR EXCLUDED.done`,
		ns, pq.StringArray(append([]string{}, done...))) // not NULL: no users is an empty array
	return classify(opMigrateVectors, err, "record progress")
}

// copyPerUser copies each user's namespace, skipping users recorded done.
func (c *vecCopy) copyPerUser(ctx context.Context, users []UserClone) error {
	m, o := c.m, c.o
	for i, u := range users {
		for _, ns := range m.vectorSources(o, u.UserID) {
			if err := c.copyNamespace(ctx, ns, u.UserID); err != nil {
				return err
			}
		}
		m.cfg.Progress(Progress{Step: "vectors", Table: u.UserID, Done: int64(i + 1), Total: int64(len(users))})
	}
	return nil
}

// copyNamespace copies legacy namespace ns into user u's clone (namespace per user),
// unless it is recorded done.
func (c *vecCopy) copyNamespace(ctx context.Context, ns, user string) error {
	m, o := c.m, c.o
	var done bool
	if !o.DryRun && !o.Restart {
		err := m.db.GetContext(ctx, &done, "SELECT done FROM cloneiso_legacy_vectors WHERE source = $1 AND user_id = $2", ns, user)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return classify(opMigrateVectors, err, "read progress")
		}
	}
	if done {
		c.rep.UsersDone++
		return nil
	}
	n := 0
	err := scan(ctx, o.Source, ns, o.BatchSize, "", func(vs []driver.Vector) error {
		if err := m.cfg.at(ctx, "vectors-batch", n); err != nil {
			return err
		}
		n++
		writes, err := c.copyBatch(ctx, ns, vs)
		if err != nil || o.DryRun {
			return err
		}
		return classify(opMigrateVectors, recordVectors(ctx, m.db, ns, writes), "record progress")
	})
	if err != nil {
		return err
	}
	return c.recordUsers(ctx, ns, []string{user})
}

// unmatchedNamespaces reports (and records as refused) the legacy namespaces that fit
// the template but map to no user with a clone ("user-", an unknown or unprovisioned
// user), unless the operator excluded them; namespaces reported earlier that now map to
// a user, or hold nothing, are forgotten.
func (c *vecCopy) unmatchedNamespaces(ctx context.Context) error {
	names, err := c.foreignNamespaces(ctx)
	if err != nil || len(names) == 0 && c.o.DryRun {
		return err
	}
	var still []string
	for _, f := range names {
		if c.ledger {
			e, err := vectorEntries(ctx, c.m.db, f.ns, []string{""})
			if err != nil {
				return classify(opMigrateVectors, err, "read the vector ledger")
			}
			if e[""].State == vecExcluded {
				c.rep.Excluded += f.count
				still = append(still, f.ns)
				continue
			}
		}
		if !c.o.DryRun {
			if err := recordVectors(ctx, c.m.db, f.ns, []vecWrite{{id: "", user: f.user, state: vecRefused, reason: f.err.Error()}}); err != nil {
				return classify(opMigrateVectors, err, "record progress")
			}
		}
		still = append(still, f.ns)
		c.rep.Problems = append(c.rep.Problems, Problem{Key: f.ns, UserID: f.user, Reason: f.err.Error(), Err: f.err})
	}
	if c.o.DryRun {
		return nil
	}
	_, err = c.m.db.ExecContext(ctx, `DELETE FROM cloneiso_legacy_vector_ids WHERE id = '' AND state = 'refused' AND source <> ALL($1)`, pq.StringArray(append([]string{}, still...)))
	return classify(opMigrateVectors, err, "record progress")
}

type foreignNamespace struct {
	ns, user, msg string
	count         int64
	err           error
}

// foreignNamespaces lists the legacy namespaces (namespace per user) that fit the
// template, hold vectors and map to no user with a clone; nothing if o.Source cannot
// list namespaces.
func (c *vecCopy) foreignNamespaces(ctx context.Context) ([]foreignNamespace, error) {
	nl, ok := c.o.Source.(NamespaceLister)
	if !ok {
		return nil, nil
	}
	prefix, _, _ := strings.Cut(c.o.NamespaceTemplate, "{user_id}")
	names, err := nl.ListNamespaces(ctx, prefix)
	if err != nil {
		return nil, classify(opMigrateVectors, err, "list namespaces")
	}
	slices.Sort(names)
	var out []foreignNamespace
	for _, ns := range names {
		u, fits := c.o.userOfNamespace(ns)
		if _, known := c.ccs[c.m.vectorUser(u)]; !fits || known && u != "" || isCloneNamespace(ns) {
			continue
		}
		st, err := c.o.Source.Stats(ctx, ns)
		if err != nil {
			return nil, classify(opMigrateVectors, err, "count %s", ns)
		}
		if st.VectorCount == 0 {
			continue // a serverless namespace outlives its last record
		}
		f := foreignNamespace{ns: ns, user: u, count: int64(st.VectorCount)}
		if u == "" {
			f.msg = fmt.Sprintf("legacy namespace %s (%d vectors) names no user", ns, st.VectorCount)
		} else if d := c.m.setAsideUser(u); d != "" {
			f.msg = fmt.Sprintf("legacy namespace %s (%d vectors) belongs to user ID %s, decided %q: its vectors are not copied (exclude the namespace with vectors exclude)", ns, st.VectorCount, u, d)
		} else {
			f.msg = fmt.Sprintf("legacy namespace %s (%d vectors) belongs to user %s, who has no clone (not a legacy user, or not provisioned: run backfill first)", ns, st.VectorCount, u)
		}
		f.err = errs.New(errs.NotFound, opMigrateVectors, "%s", f.msg)
		out = append(out, f)
	}
	return out, nil
}
