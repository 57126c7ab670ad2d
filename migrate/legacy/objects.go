package legacy

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore"
)

// DefaultObjectKind is the kind legacy objects get when the key template has no {kind}.
const DefaultObjectKind = "documents"

// ObjectOptions configure the object migration: where the legacy objects are, how
// their keys name the user, and the clone-scoped bucket they move to.
type ObjectOptions struct {
	// Client reads, lists and (in [Migrator.DeleteLegacyObjects] only) deletes the legacy
	// objects; legacy keys are outside every clone's prefix, so this is a plain S3
	// client (for an s3object bucket, objectstore.Bucket.As gives one).
	Client *s3.Client
	// LegacyBucket holds the legacy objects.
	LegacyBucket string
	// KeyTemplate is the legacy key layout, "/"-separated segments that are literals or
	// exactly one of {user_id}, {kind} and {name}; {user_id} is required and {name},
	// which takes the rest of the key (it may contain "/"), must come last. Example:
	// "users/{user_id}/{kind}/{name}".
	KeyTemplate string
	// Kind is the kind of every object when KeyTemplate has no {kind}; default
	// DefaultObjectKind.
	Kind string
	// Target is the clone-scoped bucket the objects are copied to, at
	// tenants/{tenant_id}/clones/{clone_id}/{kind}/{name}. It may be the same S3
	// bucket as LegacyBucket.
	Target *objectstore.Bucket
	// DryRun lists and maps the legacy objects and reports, per user, what would be
	// copied, without reading or writing any object.
	DryRun bool
	// Deep makes [Migrator.VerifyObjects] and [Migrator.DeleteLegacyObjects] read every
	// copy back and compare its SHA-256 (the copy step always does); otherwise they
	// compare sizes only.
	Deep bool
	// Concurrency is the number of objects copied at once; default 4.
	Concurrency int
}

type keyTemplate struct {
	segs       []string
	prefix     string // the literal segments before the first placeholder, with "/"
	kind       string // fixed kind when there is no {kind}
	hasKindSeg bool
}

func parseTemplate(t, kind string) (*keyTemplate, error) {
	const op = "legacy.ObjectOptions"
	if kind == "" {
		kind = DefaultObjectKind
	}
	kt := &keyTemplate{segs: strings.Split(t, "/"), kind: kind}
	seen := map[string]bool{}
	literal := true
	for i, s := range kt.segs {
		switch s {
		case "{user_id}", "{kind}", "{name}":
			if seen[s] {
				return nil, errs.New(errs.InvalidInput, op, "key template %q: %s twice", t, s)
			}
			seen[s] = true
			literal = false
			if s == "{name}" && i != len(kt.segs)-1 {
				return nil, errs.New(errs.InvalidInput, op, "key template %q: {name} must be the last segment", t)
			}
		case "":
			return nil, errs.New(errs.InvalidInput, op, "key template %q: empty segment", t)
		default:
			if strings.ContainsAny(s, "{}") {
				return nil, errs.New(errs.InvalidInput, op, "key template %q: a placeholder must be a whole segment", t)
			}
			if literal {
				kt.prefix += s + "/"
			}
		}
	}
	if !seen["{user_id}"] || !seen["{name}"] {
		return nil, errs.New(errs.InvalidInput, op, "key template %q needs {user_id} and {name}", t)
	}
	kt.hasKindSeg = seen["{kind}"]
	if !kt.hasKindSeg {
		if err := objectstore.ValidateKind(kind); err != nil {
			return nil, err
		}
	}
	return kt, nil
}

// match splits a legacy key into user, kind and name; ok is false if it does not fit.
func (kt *keyTemplate) match(key string) (user, kind, name string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) < len(kt.segs) {
		return "", "", "", false
	}
	kind = kt.kind
	for i, s := range kt.segs {
		switch s {
		case "{user_id}":
			user = parts[i]
		case "{kind}":
			kind = parts[i]
		case "{name}":
			name = strings.Join(parts[i:], "/")
		default:
			if parts[i] != s {
				return "", "", "", false
			}
		}
	}
	return user, kind, name, user != "" && name != ""
}

// UserObjects counts one user's legacy objects.
type UserObjects struct {
	UserID  string
	Objects int64
	Bytes   int64
}

// Problem is something a step could not do for one item, reported instead of guessed:
// a legacy object (Key is its key), a legacy vector (Key is its ID) or a user who
// could not get a clone (Key is the subject).
type Problem struct {
	Key    string
	UserID string
	Reason string
}

// ObjectReport tells what an object step did (or, in a dry run, would do).
type ObjectReport struct {
	Listed   int64 // legacy objects under the template's prefix
	Copied   int64 // copied and checked by this call
	Skipped  int64 // already copied by an earlier run
	Deleted  int64 // legacy objects deleted by this call
	Bytes    int64 // bytes copied (dry run: bytes that would be)
	PerUser  []UserObjects
	Problems []Problem // keys that fit no user, invalid names, failed copies
}

// OK reports whether no problem was met.
func (r *ObjectReport) OK() bool { return len(r.Problems) == 0 }

type legacyObject struct {
	key, user, kind, name, etag string
	size                        int64
	cc                          clone.CloneContext
}

// listLegacy lists the legacy objects and maps each to its user's clone; keys that fit
// no user or no valid name are problems.
func (m *Migrator) listLegacy(ctx context.Context, o *ObjectOptions, kt *keyTemplate, rep *ObjectReport) ([]legacyObject, error) {
	_, byUser, err := m.userContexts(ctx, o.DryRun)
	if err != nil {
		return nil, err
	}
	per := map[string]*UserObjects{}
	var out []legacyObject
	p := s3.NewListObjectsV2Paginator(o.Client, &s3.ListObjectsV2Input{Bucket: aws.String(o.LegacyBucket), Prefix: aws.String(kt.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("legacy.Objects", err, "list legacy objects")
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			if strings.HasPrefix(key, "tenants/") {
				continue // already in the clone layout (same bucket)
			}
			rep.Listed++
			user, kind, name, ok := kt.match(key)
			if !ok {
				rep.Problems = append(rep.Problems, Problem{Key: key, Reason: "key does not fit the template"})
				continue
			}
			cc, ok := byUser[user]
			if !ok {
				rep.Problems = append(rep.Problems, Problem{Key: key, UserID: user, Reason: "no clone for this user (not a legacy user, or not provisioned: run backfill first)"})
				continue
			}
			if err := objectstore.ValidateKind(kind); err != nil {
				rep.Problems = append(rep.Problems, Problem{Key: key, UserID: user, Reason: "invalid kind: " + err.Error()})
				continue
			}
			if err := objectstore.ValidateName(name); err != nil {
				rep.Problems = append(rep.Problems, Problem{Key: key, UserID: user, Reason: err.Error()})
				continue
			}
			lo := legacyObject{key: key, user: user, kind: kind, name: name, etag: aws.ToString(obj.ETag), size: aws.ToInt64(obj.Size), cc: cc}
			out = append(out, lo)
			u := per[user]
			if u == nil {
				u = &UserObjects{UserID: user}
				per[user] = u
			}
			u.Objects++
			u.Bytes += lo.size
		}
	}
	for _, u := range per {
		rep.PerUser = append(rep.PerUser, *u)
	}
	slices.SortFunc(rep.PerUser, func(a, b UserObjects) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

func (o *ObjectOptions) check() (*keyTemplate, error) {
	if o == nil || o.Client == nil || o.LegacyBucket == "" || o.Target == nil {
		return nil, errs.New(errs.InvalidInput, "legacy.ObjectOptions", "Client, LegacyBucket and Target are required")
	}
	return parseTemplate(o.KeyTemplate, o.Kind)
}

type ledgerRow struct {
	Key       string       `db:"legacy_key"`
	UserID    string       `db:"user_id"`
	Kind      string       `db:"kind"`
	Name      string       `db:"name"`
	Size      int64        `db:"size"`
	SHA256    string       `db:"sha256"`
	ETag      string       `db:"legacy_etag"`
	DeletedAt sql.NullTime `db:"deleted_at"`
}

func (m *Migrator) ledger(ctx context.Context) (map[string]ledgerRow, error) {
	var rows []ledgerRow
	if err := m.db.SelectContext(ctx, &rows, "SELECT legacy_key, user_id, kind, name, size, sha256, legacy_etag, deleted_at FROM cloneiso_legacy_objects"); err != nil {
		return nil, classify("legacy.Objects", err, "read the copy ledger")
	}
	out := make(map[string]ledgerRow, len(rows))
	for _, r := range rows {
		out[r.Key] = r
	}
	return out, nil
}

// MigrateObjects copies every legacy object whose key fits o.KeyTemplate into its
// user's clone (kind and name from the key), through the clone-scoped o.Target, so the
// copies carry their owner stamps like any object written by the SDK. Each copy is
// checked before it is recorded: the copy is read back and its size and SHA-256 must
// equal the legacy object's. Copies are recorded in cloneiso_legacy_objects, so an
// interrupted run resumes with the objects not yet copied, and a second run copies
// nothing (a legacy object changed since its copy is copied again). Legacy objects are
// never modified or deleted here (see [Migrator.DeleteLegacyObjects]). Keys that fit no
// provisioned user, or whose name the SDK refuses, are reported and left alone. With
// o.DryRun nothing is read or written.
func (m *Migrator) MigrateObjects(ctx context.Context, o *ObjectOptions) (*ObjectReport, error) {
	kt, err := o.check()
	if err != nil {
		return nil, err
	}
	rep := &ObjectReport{}
	if !o.DryRun {
		release, err := m.exclusive(ctx, lockObjects, "MigrateObjects")
		if err != nil {
			return rep, err
		}
		defer release()
	}
	objs, err := m.listLegacy(ctx, o, kt, rep)
	if err != nil {
		return rep, err
	}
	if o.DryRun {
		for _, ob := range objs {
			rep.Bytes += ob.size
		}
		return rep, nil
	}
	done, err := m.ledger(ctx)
	if err != nil {
		return rep, err
	}
	var todo []legacyObject
	for _, ob := range objs {
		if l, ok := done[ob.key]; ok && l.Size == ob.size && l.ETag == ob.etag {
			// Recorded: skip it if the copy is still there (a cheap HEAD, no read).
			if a, err := o.Target.Head(ctx, ob.cc, l.Kind, l.Name); err == nil && a.Size == l.Size {
				rep.Skipped++
				continue
			} else if err != nil && !errors.Is(err, clone.ErrNotFound) {
				return rep, err
			}
		}
		todo = append(todo, ob)
	}
	workers := o.Concurrency
	if workers <= 0 {
		workers = 4
	}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
		next  = make(chan legacyObject)
		total = int64(len(objs))
		count = rep.Skipped
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ob := range next {
				sum, err := m.copyObject(ctx, o, ob)
				var newKey string
				if err == nil {
					newKey, err = objectstore.Key(ob.cc, ob.kind, ob.name)
				}
				if err == nil {
					_, err = m.db.ExecContext(ctx, `INSERT INTO cloneiso_legacy_objects (legacy_key, user_id, kind, name, size, sha256, legacy_etag, new_key)
						VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
						ON CONFLICT (legacy_key) DO UPDATE SET size = EXCLUDED.size, sha256 = EXCLUDED.sha256, legacy_etag = EXCLUDED.legacy_etag,
							kind = EXCLUDED.kind, name = EXCLUDED.name, new_key = EXCLUDED.new_key, copied_at = now(), deleted_at = NULL`,
						ob.key, ob.user, ob.kind, ob.name, ob.size, sum, ob.etag, newKey)
				}
				mu.Lock()
				count++
				switch {
				case err == nil:
					rep.Copied++
					rep.Bytes += ob.size
				case ctx.Err() != nil:
					if first == nil {
						first = ctx.Err()
					}
				default:
					rep.Problems = append(rep.Problems, Problem{Key: ob.key, UserID: ob.user, Reason: err.Error()})
				}
				m.cfg.Progress(Progress{Step: "objects", Table: ob.user, Done: count, Total: total})
				mu.Unlock()
			}
		}()
	}
feed:
	for i, ob := range todo {
		if err := m.cfg.at(ctx, "object", i); err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
			break feed
		}
		select {
		case next <- ob:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	m.cfg.Logger.InfoContext(ctx, "legacy: objects", "listed", rep.Listed, "copied", rep.Copied, "skipped", rep.Skipped, "problems", len(rep.Problems))
	return rep, first
}

// copyObject streams one legacy object into its clone and checks the copy; it returns
// the content's SHA-256.
func (m *Migrator) copyObject(ctx context.Context, o *ObjectOptions, ob legacyObject) (string, error) {
	out, err := o.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.LegacyBucket), Key: aws.String(ob.key), IfMatch: nonEmpty(ob.etag)})
	if err != nil {
		return "", fmt.Errorf("read legacy object: %w", err)
	}
	defer out.Body.Close()
	h := sha256.New()
	wo := &objectstore.WriteOptions{ContentType: aws.ToString(out.ContentType), Size: ob.size, Metadata: out.Metadata}
	if _, err := o.Target.Put(ctx, ob.cc, ob.kind, ob.name, io.TeeReader(out.Body, h), wo); err != nil {
		if errors.Is(err, clone.ErrInvalidInput) && len(out.Metadata) > 0 {
			return "", fmt.Errorf("write copy (the legacy metadata may not be valid for the SDK): %w", err)
		}
		return "", fmt.Errorf("write copy: %w", err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	size, got, err := readBack(ctx, o.Target, ob.cc, ob.kind, ob.name)
	if err != nil {
		return "", fmt.Errorf("read copy back: %w", err)
	}
	if size != ob.size || got != want {
		return "", fmt.Errorf("copy differs: %d bytes, sha256 %s; legacy object %d bytes, sha256 %s", size, got, ob.size, want)
	}
	return want, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func readBack(ctx context.Context, b *objectstore.Bucket, cc clone.CloneContext, kind, name string) (int64, string, error) {
	r, err := b.Get(ctx, cc, kind, name, nil)
	if err != nil {
		return 0, "", err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// VerifyObjects checks the object migration without changing anything: every legacy
// object that fits the template has a recorded copy; every recorded copy exists in its
// clone with the recorded size (and, with o.Deep, SHA-256); a legacy object still
// present has not changed since its copy; and, per clone, the number of copies found
// equals the number of legacy objects of its user. Keys that fit no user are reported
// as unmatched.
func (m *Migrator) VerifyObjects(ctx context.Context, o *ObjectOptions) (*VerifyReport, error) {
	kt, err := o.check()
	if err != nil {
		return nil, err
	}
	lr := &ObjectReport{}
	objs, err := m.listLegacy(ctx, o, kt, lr)
	if err != nil {
		return nil, err
	}
	done, err := m.ledger(ctx)
	if err != nil {
		return nil, err
	}
	r := &VerifyReport{}
	for _, p := range lr.Problems {
		r.add(DiscrepancyUnmatched, p.Key, p.UserID, 1, "legacy object %s: %s", p.Key, p.Reason)
	}
	present := map[string]legacyObject{}
	for _, ob := range objs {
		present[ob.key] = ob
		l, ok := done[ob.key]
		switch {
		case !ok:
			r.add(DiscrepancyObject, ob.key, ob.user, 1, "legacy object %s was not copied: run objects", ob.key)
		case l.Size != ob.size || l.ETag != ob.etag:
			r.add(DiscrepancyObject, ob.key, ob.user, 1, "legacy object %s changed after its copy: run objects again", ob.key)
		}
	}
	users, err := m.Users(ctx)
	if err != nil {
		return nil, err
	}
	ccOf := map[string]clone.CloneContext{}
	for _, u := range users {
		if ccOf[u.UserID], err = u.Context(); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(done))
	for k := range done {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	found := map[string]int64{}
	for i, k := range keys {
		l := done[k]
		cc, ok := ccOf[l.UserID]
		if !ok {
			r.add(DiscrepancyMapping, k, l.UserID, 1, "copy of %s belongs to user %s, who has no clone", k, l.UserID)
			continue
		}
		if _, ok := present[k]; !ok && !l.DeletedAt.Valid {
			r.add(DiscrepancyObject, k, l.UserID, 1, "legacy object %s disappeared before it was deleted by this migration", k)
		}
		if err := checkCopy(ctx, o, cc, l); err != nil {
			r.add(DiscrepancyObject, k, l.UserID, 1, "copy of %s: %v", k, err)
		} else {
			found[l.UserID]++
		}
		m.cfg.Progress(Progress{Step: "verify-objects", Table: l.UserID, Done: int64(i + 1), Total: int64(len(keys))})
	}
	for _, u := range lr.PerUser {
		if found[u.UserID] < u.Objects {
			r.add(DiscrepancyObject, "", u.UserID, u.Objects-found[u.UserID], "clone of user %s has %d good copies of its %d legacy objects", u.UserID, found[u.UserID], u.Objects)
		}
	}
	return r, nil
}

func checkCopy(ctx context.Context, o *ObjectOptions, cc clone.CloneContext, l ledgerRow) error {
	if o.Deep {
		size, sum, err := readBack(ctx, o.Target, cc, l.Kind, l.Name)
		if err != nil {
			return err
		}
		if size != l.Size || sum != l.SHA256 {
			return fmt.Errorf("%d bytes, sha256 %s; expected %d bytes, sha256 %s", size, sum, l.Size, l.SHA256)
		}
		return nil
	}
	a, err := o.Target.Head(ctx, cc, l.Kind, l.Name)
	if err != nil {
		return err
	}
	if a.Size != l.Size {
		return fmt.Errorf("%d bytes; expected %d", a.Size, l.Size)
	}
	return nil
}

// DeleteLegacyObjects is the separate, explicit last step of the object migration: it
// deletes each legacy object whose copy is recorded, after checking again that the
// legacy object is unchanged since the copy (size and ETag) and that the copy is in its
// clone (size; with o.Deep also SHA-256). Objects that fail a check are kept and
// reported. Deletions are recorded, so the step resumes where it stopped. On a
// versioned legacy bucket the deletion adds a delete marker; remove old versions with
// the bucket's lifecycle rules. With o.DryRun it only counts what it would delete.
func (m *Migrator) DeleteLegacyObjects(ctx context.Context, o *ObjectOptions) (*ObjectReport, error) {
	if _, err := o.check(); err != nil {
		return nil, err
	}
	done, err := m.ledger(ctx)
	if err != nil {
		return nil, err
	}
	users, err := m.Users(ctx)
	if err != nil {
		return nil, err
	}
	ccOf := map[string]clone.CloneContext{}
	for _, u := range users {
		if ccOf[u.UserID], err = u.Context(); err != nil {
			return nil, err
		}
	}
	rep := &ObjectReport{}
	keys := make([]string, 0, len(done))
	for k, l := range done {
		if !l.DeletedAt.Valid {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for i, k := range keys {
		if err := m.cfg.at(ctx, "delete-object", i); err != nil {
			return rep, err
		}
		l := done[k]
		rep.Listed++
		head, err := o.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.LegacyBucket), Key: aws.String(k)})
		var nf *types.NotFound
		if errors.As(err, &nf) {
			// Already gone (deleted before the bookkeeping of an interrupted run).
			if !o.DryRun {
				if _, err := m.db.ExecContext(ctx, "UPDATE cloneiso_legacy_objects SET deleted_at = now() WHERE legacy_key = $1", k); err != nil {
					return rep, classify("legacy.DeleteLegacyObjects", err, "record deletion")
				}
			}
			continue
		}
		if err != nil {
			return rep, classify("legacy.DeleteLegacyObjects", err, "head %s", k)
		}
		if aws.ToInt64(head.ContentLength) != l.Size || aws.ToString(head.ETag) != l.ETag {
			rep.Problems = append(rep.Problems, Problem{Key: k, UserID: l.UserID, Reason: "legacy object changed after its copy; kept (run objects again)"})
			continue
		}
		cc, ok := ccOf[l.UserID]
		if !ok {
			rep.Problems = append(rep.Problems, Problem{Key: k, UserID: l.UserID, Reason: "user has no clone; kept"})
			continue
		}
		if err := checkCopy(ctx, o, cc, l); err != nil {
			rep.Problems = append(rep.Problems, Problem{Key: k, UserID: l.UserID, Reason: "copy failed its check; kept: " + err.Error()})
			continue
		}
		if o.DryRun {
			rep.Deleted++
			continue
		}
		if _, err := o.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(o.LegacyBucket), Key: aws.String(k)}); err != nil {
			rep.Problems = append(rep.Problems, Problem{Key: k, UserID: l.UserID, Reason: "delete: " + err.Error()})
			continue
		}
		if _, err := m.db.ExecContext(ctx, "UPDATE cloneiso_legacy_objects SET deleted_at = now() WHERE legacy_key = $1", k); err != nil {
			return rep, classify("legacy.DeleteLegacyObjects", err, "record deletion")
		}
		rep.Deleted++
		m.cfg.Progress(Progress{Step: "delete-objects", Table: l.UserID, Done: int64(i + 1), Total: int64(len(keys))})
	}
	return rep, nil
}

// RewriteObjectKeys replaces, in every configured table's ObjectKeyColumn (by default
// documents.object_key), each legacy object key that [Migrator.MigrateObjects] copied
// with the key of its copy (tenants/{tenant_id}/clones/{clone_id}/{kind}/{name}), in
// batches of Config.BatchSize ledger entries, one transaction each. Run it after the
// copy and before the application reads the objects through the SDK. It is idempotent
// and resumable (a rerun finds only the keys not yet rewritten); [Migrator.Verify]
// compares such columns through the ledger, and reports keys still to rewrite and keys
// outside their row's clone. It returns the number of rows changed per table.
func (m *Migrator) RewriteObjectKeys(ctx context.Context) (map[string]int64, error) {
	const op = "legacy.RewriteObjectKeys"
	out := map[string]int64{}
	for _, t := range m.cfg.Tables {
		if t.ObjectKeyColumn == "" {
			continue
		}
		if ok, err := tableExists(ctx, m.db, t.Name); err != nil {
			return out, classify(op, err, "catalog")
		} else if !ok {
			continue
		}
		col := pq.QuoteIdentifier(t.ObjectKeyColumn)
		q := `WITH _l AS (
				SELECT legacy_key, new_key FROM cloneiso_legacy_objects
				WHERE legacy_key > $1 AND new_key <> '' ORDER BY legacy_key LIMIT $2
			), _u AS (
				UPDATE ` + pq.QuoteIdentifier(t.Name) + ` AS _t SET ` + col + ` = _l.new_key FROM _l WHERE _t.` + col + ` = _l.legacy_key RETURNING 1
			)
			SELECT (SELECT count(*) FROM _l) AS listed, (SELECT count(*) FROM _u) AS updated, coalesce((SELECT max(legacy_key) FROM _l), '') AS last`
		last := ""
		for batch := 0; ; batch++ {
			if err := m.cfg.at(ctx, "rewrite-keys:"+t.Name, batch); err != nil {
				return out, err
			}
			var r struct {
				Listed  int64  `db:"listed"`
				Updated int64  `db:"updated"`
				Last    string `db:"last"`
			}
			if err := m.db.GetContext(ctx, &r, q, last, m.cfg.BatchSize); err != nil {
				return out, classify(op, err, "%s", t.Name)
			}
			out[t.Name] += r.Updated
			m.cfg.Progress(Progress{Step: "rewrite-keys", Table: t.Name, Done: out[t.Name]})
			if r.Listed < int64(m.cfg.BatchSize) {
				break
			}
			last = r.Last
		}
	}
	return out, nil
}
