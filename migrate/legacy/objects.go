package legacy

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
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

// KeyTemplate is one legacy key layout and the kind of the objects it names.
type KeyTemplate struct {
	// Template is made of "/"-separated segments, each a literal or a whole
	// placeholder: {user_id} (required) names the user; {name} (required, last) takes
	// the rest of the key, "/" included; {kind} names the kind; any other placeholder,
	// such as {yyyy}, matches one segment, which is kept at the start of the name
	// ("uploads/{user_id}/{yyyy}/{mm}/{name}" copies "uploads/42/2024/05/a.pdf" as
	// name "2024/05/a.pdf"). Example: "users/{user_id}/{kind}/{name}".
	Template string
	// Kind is the kind of the objects when Template has no {kind}; default
	// DefaultObjectKind.
	Kind string
}

// ObjectOptions configure the object migration: where the legacy objects are, how
// their keys name the user, and the clone-scoped bucket they move to.
//
// Every object of the legacy bucket outside the clone layout (keys under "tenants/")
// is accounted for: it fits a template and is copied, or it is refused with a reason,
// or the operator declared it out of scope ([Migrator.DeclareObjectsOutOfScope]).
type ObjectOptions struct {
	// Client reads, lists and (in [Migrator.DeleteLegacyObjects] only) deletes the legacy
	// objects; legacy keys are outside every clone's prefix, so this is a plain S3
	// client (for an s3object bucket, objectstore.Bucket.As gives one).
	Client *s3.Client
	// LegacyBucket holds the legacy objects.
	LegacyBucket string
	// KeyTemplate is the legacy key layout (see [KeyTemplate].Template), tried first;
	// Kind is its kind when it has no {kind} (default DefaultObjectKind).
	KeyTemplate string
	Kind        string
	// Templates are further layouts, tried in order after KeyTemplate: a key is mapped
	// by the first template whose literals and number of segments it fits.
	Templates []KeyTemplate
	// Sanitize copies objects the SDK would refuse as they are under a sanitized form,
	// recorded in the ledger (and so followed by [Migrator.RewriteObjectKeys]): a name
	// not in Unicode NFC, with "%xx" escapes or other refused characters gets a
	// corrected name (with a short hash of the legacy key if that name is taken);
	// metadata keys outside a-z, 0-9 and "-" (such as "_meta") are renamed
	// "legacy-...", non-ASCII metadata values percent-encoded; an unparsable
	// Content-Type becomes application/octet-stream. Without it such objects are
	// refused and reported.
	Sanitize bool
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
	src        string
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
	kt := &keyTemplate{src: t, segs: strings.Split(t, "/"), kind: kind}
	seen := map[string]bool{}
	literal := true
	for i, s := range kt.segs {
		switch {
		case s == "":
			return nil, errs.New(errs.InvalidInput, op, "key template %q: empty segment", t)
		case isPlaceholder(s):
			if seen[s] {
				return nil, errs.New(errs.InvalidInput, op, "key template %q: %s twice", t, s)
			}
			seen[s] = true
			literal = false
			if s == "{name}" && i != len(kt.segs)-1 {
				return nil, errs.New(errs.InvalidInput, op, "key template %q: {name} must be the last segment (it takes the rest of the key)", t)
			}
		case strings.ContainsAny(s, "{}"):
			return nil, errs.New(errs.InvalidInput, op, "key template %q: segment %q: a placeholder must be a whole segment, {letters_and_underscores}", t, s)
		default:
			if literal {
				kt.prefix += s + "/"
			}
		}
	}
	if !seen["{user_id}"] || !seen["{name}"] {
		return nil, errs.New(errs.InvalidInput, op, "key template %q needs {user_id} and, as its last segment, {name} (which takes the rest of the key); "+
			"other placeholders such as {yyyy} match one segment each", t)
	}
	kt.hasKindSeg = seen["{kind}"]
	if !kt.hasKindSeg {
		if err := objectstore.ValidateKind(kind); err != nil {
			return nil, errs.Wrap(errs.InvalidInput, op, err, "key template %q: kind %q", t, kind)
		}
	}
	return kt, nil
}

func isPlaceholder(s string) bool {
	if len(s) < 3 || s[0] != '{' || s[len(s)-1] != '}' {
		return false
	}
	for _, c := range s[1 : len(s)-1] {
		if !('a' <= c && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// traversal says why key is a path traversal, or "": a segment that is empty (inside
// the key: "a//b", "/a"), "." or "..", also once percent-decoded (up to three times:
// "%2e%2e", "%252e%252e") or split at a backslash, or an encoded "/" or "\" inside a
// segment ("%2f"). A legacy application that resolved such keys as paths, or decoded
// them, may have stored one user's object under another user's prefix, so which user
// it belongs to cannot be told from the key.
func traversal(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		if seg == "" {
			if i == len(segs)-1 && i > 0 {
				continue // a trailing "/" (a folder marker): not a traversal
			}
			return fmt.Sprintf("key %q has an empty segment", key)
		}
		s := seg
		for range 4 {
			for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '\\' || r == '/' }) {
				if part == "." || part == ".." {
					return fmt.Sprintf("key %q has a %q segment", key, seg)
				}
			}
			if s == "." || s == ".." || s != seg && strings.ContainsAny(s, "/\\") {
				return fmt.Sprintf("key %q has a %q segment", key, seg)
			}
			d, err := url.PathUnescape(s)
			if err != nil || d == s {
				break
			}
			s = d
		}
	}
	return ""
}

// match splits a legacy key into user, kind and name; ok is false if it does not fit.
func (kt *keyTemplate) match(key string) (user, kind, name string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) < len(kt.segs) {
		return "", "", "", false
	}
	kind = kt.kind
	var wild []string
	for i, s := range kt.segs {
		switch {
		case s == "{user_id}":
			user = parts[i]
		case s == "{kind}":
			kind = parts[i]
		case s == "{name}":
			name = strings.Join(append(wild, parts[i:]...), "/")
		case isPlaceholder(s):
			if parts[i] == "" {
				return "", "", "", false
			}
			wild = append(wild, parts[i])
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
	// Err is the typed error behind Reason, when there is one (clone.KindOf tells its
	// kind: for a vector, clone.ErrTooLarge for metadata over the limit once the clone
	// stamps are added, clone.ErrNotFound for a vector or namespace of no user, ...).
	Err error
}

// ObjectReport tells what an object step did (or, in a dry run, would do). Every
// legacy object listed is counted once: Copied, Skipped (ToCopy in a dry run),
// OutOfScope, or one of Problems.
type ObjectReport struct {
	Listed     int64 // legacy objects in the bucket (keys outside "tenants/")
	InClones   int64 // objects already in the clone layout ("tenants/..."), not legacy
	ToCopy     int64 // dry run: objects that would be copied or found already copied
	Copied     int64 // copied and checked by this call
	Skipped    int64 // already copied by an earlier run
	OutOfScope int64 // legacy objects the operator declared out of scope: left alone
	Sanitized  int64 // objects copied (dry run: to copy) under a sanitized name
	Deleted    int64 // legacy objects deleted by this call
	Bytes      int64 // bytes copied (dry run: bytes that would be)
	References int64 // distinct legacy keys named by rows (object key columns)
	PerUser    []UserObjects
	Problems   []Problem // legacy objects refused: keys that fit no template or user, invalid names, failed copies
	// RowProblems are keys named by rows (Key; UserID is the row's user) that are
	// neither copied, nor to copy, nor out of scope: missing from the bucket, refused,
	// or another user's object.
	RowProblems []Problem
}

// OK reports whether no problem was met.
func (r *ObjectReport) OK() bool { return len(r.Problems) == 0 && len(r.RowProblems) == 0 }

type legacyObject struct {
	key, user, kind, name, etag string
	size                        int64
	cc                          clone.CloneContext
	renamed                     bool   // name sanitized (Sanitize)
	orig                        string // the name before sanitizing
}

// inventory is the classification of every object of the legacy bucket.
type inventory struct {
	objs   []legacyObject          // to copy (or already copied), mapped to a user's clone
	listed map[string]legacyObject // every legacy key listed, by key (user/kind/name set if it fit a template)
	byKey  map[string]int          // index in objs
}

func (o *ObjectOptions) templates() ([]*keyTemplate, error) {
	var all []KeyTemplate
	if o.KeyTemplate != "" {
		all = append(all, KeyTemplate{Template: o.KeyTemplate, Kind: o.Kind})
	}
	all = append(all, o.Templates...)
	if len(all) == 0 {
		return nil, errs.New(errs.InvalidInput, "legacy.ObjectOptions", "no key template: set KeyTemplate or Templates")
	}
	out := make([]*keyTemplate, len(all))
	for i, t := range all {
		kt, err := parseTemplate(t.Template, t.Kind)
		if err != nil {
			return nil, err
		}
		out[i] = kt
	}
	return out, nil
}

func (o *ObjectOptions) check() ([]*keyTemplate, error) {
	if o == nil || o.Client == nil || o.LegacyBucket == "" || o.Target == nil {
		return nil, errs.New(errs.InvalidInput, "legacy.ObjectOptions", "Client, LegacyBucket and Target are required")
	}
	return o.templates()
}

// listBucket calls each for every object of the legacy bucket outside the clone
// layout, top-level prefix by top-level prefix; objects under "tenants/" are only
// counted (rep.InClones).
func listBucket(ctx context.Context, o *ObjectOptions, rep *ObjectReport, each func(types.Object)) error {
	const op = "legacy.Objects"
	var prefixes []string
	p := s3.NewListObjectsV2Paginator(o.Client, &s3.ListObjectsV2Input{Bucket: aws.String(o.LegacyBucket), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return classify(op, err, "list legacy objects")
		}
		for _, obj := range page.Contents {
			each(obj)
		}
		for _, cp := range page.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(cp.Prefix))
		}
	}
	for _, prefix := range prefixes {
		inClones := prefix == "tenants/"
		p := s3.NewListObjectsV2Paginator(o.Client, &s3.ListObjectsV2Input{Bucket: aws.String(o.LegacyBucket), Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return classify(op, err, "list legacy objects under %s", prefix)
			}
			if inClones {
				// The clone layout (the target may be this bucket): the SDK's objects.
				rep.InClones += int64(len(page.Contents))
				continue
			}
			for _, obj := range page.Contents {
				each(obj)
			}
		}
	}
	return nil
}

// inventory lists the legacy bucket and classifies every object: out of scope (an
// operator decision), mapped to its user's clone (to copy), or refused with a reason.
func (m *Migrator) inventory(ctx context.Context, o *ObjectOptions, kts []*keyTemplate, scope objectScope, ledger map[string]ledgerRow, rep *ObjectReport) (*inventory, error) {
	_, byUser, err := m.userContexts(ctx, o.DryRun)
	if err != nil {
		return nil, err
	}
	inv := &inventory{listed: map[string]legacyObject{}, byKey: map[string]int{}}
	refuse := func(ob legacyObject, reason string) {
		rep.Problems = append(rep.Problems, Problem{Key: ob.key, UserID: ob.user, Reason: reason})
	}
	err = listBucket(ctx, o, rep, func(obj types.Object) {
		ob := legacyObject{key: aws.ToString(obj.Key), etag: aws.ToString(obj.ETag), size: aws.ToInt64(obj.Size)}
		rep.Listed++
		defer func() { inv.listed[ob.key] = ob }()
		if _, ok := scope.match(ob.key); ok {
			rep.OutOfScope++
			return
		}
		if why := traversal(ob.key); why != "" {
			refuse(ob, why+": a path traversal is never copied, not even sanitized (it could name another user's object); move the object under its owner's key, or declare it out of scope")
			return
		}
		var fits bool
		for _, kt := range kts {
			if ob.user, ob.kind, ob.name, fits = kt.match(ob.key); fits {
				break
			}
		}
		if !fits {
			refuse(ob, "key fits no key template (add a template that maps it, or declare it out of scope)")
			return
		}
		cc, ok := byUser[ob.user]
		if !ok {
			refuse(ob, "no clone for this user (not a legacy user, or not provisioned: run backfill first; or declare the key out of scope)")
			return
		}
		ob.cc = cc
		if err := objectstore.ValidateKind(ob.kind); err != nil {
			refuse(ob, "invalid kind: "+err.Error())
			return
		}
		if err := objectstore.ValidateName(ob.name); err != nil {
			if l, ok := ledger[ob.key]; ok && l.Changes != "" && l.UserID == ob.user && l.Kind == ob.kind && objectstore.ValidateName(l.Name) == nil {
				// Copied under a sanitized name by an earlier run: that is its name.
				ob.orig, ob.name, ob.renamed = ob.name, l.Name, true
				inv.objs = append(inv.objs, ob)
				return
			}
			if !o.Sanitize {
				refuse(ob, err.Error()+" (copy it under a sanitized name with Sanitize/--sanitize, or declare it out of scope)")
				return
			}
			ob.orig = ob.name
			if ob.name = sanitizeName(ob.name, ob.key); objectstore.ValidateName(ob.name) != nil {
				refuse(ob, "no valid sanitized name")
				return
			}
			ob.renamed = true
		}
		inv.objs = append(inv.objs, ob)
	})
	if err != nil {
		return nil, err
	}
	m.resolveCollisions(inv, rep)
	per := map[string]*UserObjects{}
	for i, ob := range inv.objs {
		inv.byKey[ob.key] = i
		inv.listed[ob.key] = ob
		if ob.renamed {
			rep.Sanitized++
		}
		u := per[ob.user]
		if u == nil {
			u = &UserObjects{UserID: ob.user}
			per[ob.user] = u
		}
		u.Objects++
		u.Bytes += ob.size
	}
	for _, u := range per {
		rep.PerUser = append(rep.PerUser, *u)
	}
	slices.SortFunc(rep.PerUser, func(a, b UserObjects) int { return strings.Compare(a.UserID, b.UserID) })
	return inv, nil
}

// resolveCollisions keeps two legacy objects from landing on one copy: among objects
// mapped to the same user, kind and name (several templates, or a sanitized name), an
// object under its own name wins in key order; a sanitized one gets a hash suffix;
// another one under its own name is refused.
func (m *Migrator) resolveCollisions(inv *inventory, rep *ObjectReport) {
	slices.SortFunc(inv.objs, func(a, b legacyObject) int { return strings.Compare(a.key, b.key) })
	type id struct{ user, kind, name string }
	taken := map[id]string{}
	for _, ob := range inv.objs {
		if !ob.renamed {
			if _, ok := taken[id{ob.user, ob.kind, ob.name}]; !ok {
				taken[id{ob.user, ob.kind, ob.name}] = ob.key
			}
		}
	}
	out := inv.objs[:0]
	for _, ob := range inv.objs {
		k := id{ob.user, ob.kind, ob.name}
		if ob.renamed {
			if _, ok := taken[k]; ok {
				ob.name = withSuffix(ob.name, ob.key)
				k.name = ob.name
			}
			taken[k] = ob.key
		} else if owner := taken[k]; owner != ob.key {
			rep.Problems = append(rep.Problems, Problem{Key: ob.key, UserID: ob.user,
				Reason: fmt.Sprintf("maps to the same copy (%s/%s) as %s: use templates that map them apart, or declare one out of scope", ob.kind, ob.name, owner)})
			continue
		}
		out = append(out, ob)
	}
	inv.objs = out
}

type ledgerRow struct {
	Key       string       `db:"legacy_key"`
	UserID    string       `db:"user_id"`
	Kind      string       `db:"kind"`
	Name      string       `db:"name"`
	Size      int64        `db:"size"`
	SHA256    string       `db:"sha256"`
	ETag      string       `db:"legacy_etag"`
	NewKey    string       `db:"new_key"`
	Changes   string       `db:"changes"`
	DeletedAt sql.NullTime `db:"deleted_at"`
}

// ledger reads the copy ledger; it is empty before adoption.
func (m *Migrator) ledger(ctx context.Context) (map[string]ledgerRow, error) {
	if ok, err := tableExists(ctx, m.db, "cloneiso_legacy_objects"); err != nil {
		return nil, classify("legacy.Objects", err, "catalog")
	} else if !ok {
		return map[string]ledgerRow{}, nil
	}
	var rows []ledgerRow
	if err := m.db.SelectContext(ctx, &rows, `SELECT legacy_key, user_id, kind, name, size, sha256, legacy_etag, new_key,
		coalesce(to_jsonb(_l)->>'changes', '') AS changes, deleted_at FROM cloneiso_legacy_objects _l`); err != nil {
		return nil, classify("legacy.Objects", err, "read the copy ledger")
	}
	out := make(map[string]ledgerRow, len(rows))
	for _, r := range rows {
		out[r.Key] = r
	}
	return out, nil
}

// objectSurvey is what every object step starts from: templates, the operator's
// scope decisions, the classified bucket and the ledger.
type objectSurvey struct {
	inv    *inventory
	scope  objectScope
	ledger map[string]ledgerRow
}

func (m *Migrator) survey(ctx context.Context, o *ObjectOptions, rep *ObjectReport) (*objectSurvey, error) {
	kts, err := o.check()
	if err != nil {
		return nil, err
	}
	sv := &objectSurvey{}
	if sv.scope, err = m.objectScope(ctx); err != nil {
		return nil, err
	}
	if sv.ledger, err = m.ledger(ctx); err != nil {
		return nil, err
	}
	if sv.inv, err = m.inventory(ctx, o, kts, sv.scope, sv.ledger, rep); err != nil {
		return nil, err
	}
	return sv, m.accountReferences(ctx, sv, rep)
}

// MigrateObjects copies every legacy object that a key template maps to a provisioned
// user into that user's clone (kind and name from the key), through the clone-scoped
// o.Target, so the copies carry their owner stamps like any object written by the SDK.
// It first accounts for every object of the legacy bucket and every key named by the
// configured object key columns: an object is copied, refused with a reason
// (ObjectReport.Problems), or out of scope by the operator's recorded decision; a key
// a row names that is neither is a row problem. Each copy is checked before it is
// recorded: the copy is read back and its size and SHA-256 must equal the legacy
// object's. Copies are recorded in cloneiso_legacy_objects, so an interrupted run
// resumes with the objects not yet copied, and a second run copies nothing (a legacy
// object changed since its copy is copied again). Legacy objects are never modified or
// deleted here (see [Migrator.DeleteLegacyObjects]). With o.DryRun nothing is read
// or written; With o.Sanitize objects the SDK refuses are copied in a sanitized form.
func (m *Migrator) MigrateObjects(ctx context.Context, o *ObjectOptions) (*ObjectReport, error) {
	rep := &ObjectReport{}
	if _, err := o.check(); err != nil {
		return nil, err
	}
	if !o.DryRun {
		if err := m.ensureObjectTables(ctx); err != nil {
			return rep, err
		}
		release, err := m.exclusive(ctx, lockObjects, "MigrateObjects")
		if err != nil {
			return rep, err
		}
		defer release()
	}
	sv, err := m.survey(ctx, o, rep)
	if err != nil {
		return rep, err
	}
	if o.DryRun {
		objs, err := m.foreseeWrites(ctx, o, sv, rep)
		for _, ob := range objs {
			rep.ToCopy++
			rep.Bytes += ob.size
		}
		return rep, err
	}
	todo, err := m.objectsToCopy(ctx, o, sv, rep)
	if err != nil {
		return rep, err
	}
	err = m.copyObjects(ctx, o, todo, int64(len(sv.inv.objs)), rep)
	m.cfg.Logger.InfoContext(ctx, "legacy: objects", "listed", rep.Listed, "copied", rep.Copied, "skipped", rep.Skipped,
		"out_of_scope", rep.OutOfScope, "problems", len(rep.Problems), "row_problems", len(rep.RowProblems))
	return rep, err
}

// foreseeWrites is the dry run's look at what the copy reads only when it copies: the
// Content-Type and metadata of each object not yet copied (a HEAD each, o.Concurrency at
// once). An object the SDK would refuse is a problem, or with o.Sanitize counted as
// sanitized; it returns the objects the copy would accept.
func (m *Migrator) foreseeWrites(ctx context.Context, o *ObjectOptions, sv *objectSurvey, rep *ObjectReport) ([]legacyObject, error) {
	workers := max(o.Concurrency, 1)
	refusal := make([]string, len(sv.inv.objs))
	sanitized := make([]bool, len(sv.inv.objs))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ob := sv.inv.objs[i]
				head, err := o.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.LegacyBucket), Key: aws.String(ob.key)})
				if err != nil {
					mu.Lock()
					if first == nil {
						first = classify("legacy.MigrateObjects", err, "head %s", ob.key)
					}
					mu.Unlock()
					continue
				}
				wo := &objectstore.WriteOptions{ContentType: aws.ToString(head.ContentType), Metadata: head.Metadata}
				switch why, fixable := writeProblem(wo); {
				case why == "":
				case o.Sanitize && fixable:
					sanitized[i] = !ob.renamed
				case fixable:
					refusal[i] = why + ": the copy would refuse it (copy it with Sanitize/--sanitize, or declare it out of scope)"
				default:
					refusal[i] = why + ": the copy would refuse it (shrink it in the legacy bucket, or declare the object out of scope)"
				}
			}
		}()
	}
	for i, ob := range sv.inv.objs {
		if l, ok := sv.ledger[ob.key]; ok && l.Size == ob.size && l.ETag == ob.etag {
			continue // copied already
		}
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	var out []legacyObject
	for i, ob := range sv.inv.objs {
		switch {
		case refusal[i] != "":
			rep.Problems = append(rep.Problems, Problem{Key: ob.key, UserID: ob.user, Reason: refusal[i]})
		case sanitized[i]:
			rep.Sanitized++
			fallthrough
		default:
			out = append(out, ob)
		}
	}
	return out, first
}

// objectsToCopy drops the objects whose recorded copy is still there and refuses those
// whose copy key is recorded for another legacy key.
func (m *Migrator) objectsToCopy(ctx context.Context, o *ObjectOptions, sv *objectSurvey, rep *ObjectReport) ([]legacyObject, error) {
	byNewKey := make(map[string]string, len(sv.ledger))
	for k, l := range sv.ledger {
		if l.NewKey != "" {
			byNewKey[l.NewKey] = k
		}
	}
	var todo []legacyObject
	for _, ob := range sv.inv.objs {
		newKey, err := objectstore.Key(ob.cc, ob.kind, ob.name)
		if err != nil {
			return nil, err
		}
		if other, ok := byNewKey[newKey]; ok && other != ob.key {
			rep.Problems = append(rep.Problems, Problem{Key: ob.key, UserID: ob.user, Reason: "its copy would replace the recorded copy of " + other})
			continue
		}
		if l, ok := sv.ledger[ob.key]; ok && l.Size == ob.size && l.ETag == ob.etag && l.Kind == ob.kind && l.Name == ob.name {
			// Recorded: skip it if the copy is still there (a cheap HEAD, no read).
			if a, err := o.Target.Head(ctx, ob.cc, l.Kind, l.Name); err == nil && a.Size == l.Size {
				rep.Skipped++
				continue
			} else if err != nil && !errors.Is(err, clone.ErrNotFound) {
				return nil, err
			}
		}
		todo = append(todo, ob)
	}
	return todo, nil
}

// copyObjects copies todo with o.Concurrency workers, recording each checked copy.
func (m *Migrator) copyObjects(ctx context.Context, o *ObjectOptions, todo []legacyObject, total int64, rep *ObjectReport) error {
	workers := o.Concurrency
	if workers <= 0 {
		workers = 4
	}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
		next  = make(chan legacyObject)
		count = rep.Skipped
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ob := range next {
				err := m.copyAndRecord(ctx, o, ob)
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
	return first
}

func (m *Migrator) copyAndRecord(ctx context.Context, o *ObjectOptions, ob legacyObject) error {
	sum, changes, err := m.copyObject(ctx, o, ob)
	if err != nil {
		return err
	}
	newKey, err := objectstore.Key(ob.cc, ob.kind, ob.name)
	if err != nil {
		return err
	}
	_, err = m.db.ExecContext(ctx, `INSERT INTO cloneiso_legacy_objects (legacy_key, user_id, kind, name, size, sha256, legacy_etag, new_key, changes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (legacy_key) DO UPDATE SET size = EXCLUDED.size, sha256 = EXCLUDED.sha256, legacy_etag = EXCLUDED.legacy_etag,
			kind = EXCLUDED.kind, name = EXCLUDED.name, new_key = EXCLUDED.new_key, changes = EXCLUDED.changes, copied_at = now(), deleted_at = NULL`,
		ob.key, ob.user, ob.kind, ob.name, ob.size, sum, ob.etag, newKey, changes)
	return err
}

// copyObject streams one legacy object into its clone and checks the copy; it returns
// the content's SHA-256 and, with o.Sanitize, what was changed to make the SDK accept it.
func (m *Migrator) copyObject(ctx context.Context, o *ObjectOptions, ob legacyObject) (string, string, error) {
	out, err := o.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.LegacyBucket), Key: aws.String(ob.key), IfMatch: nonEmpty(ob.etag)})
	if err != nil {
		return "", "", fmt.Errorf("read legacy object: %w", err)
	}
	defer out.Body.Close()
	wo := &objectstore.WriteOptions{ContentType: aws.ToString(out.ContentType), Size: ob.size, Metadata: out.Metadata}
	var changes []string
	if ob.renamed {
		changes = append(changes, fmt.Sprintf("name %q sanitized to %q", ob.orig, ob.name))
	}
	if o.Sanitize {
		changes = append(changes, sanitizeWrite(wo)...)
	}
	h := sha256.New()
	if _, err := o.Target.Put(ctx, ob.cc, ob.kind, ob.name, io.TeeReader(out.Body, h), wo); err != nil {
		if errors.Is(err, clone.ErrInvalidInput) && !o.Sanitize {
			return "", "", fmt.Errorf("write copy (the legacy Content-Type or metadata is not valid for the SDK: copy it with Sanitize/--sanitize, or declare it out of scope): %w", err)
		}
		return "", "", fmt.Errorf("write copy: %w", err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	size, got, err := readBack(ctx, o.Target, ob.cc, ob.kind, ob.name)
	if err != nil {
		return "", "", fmt.Errorf("read copy back: %w", err)
	}
	if size != ob.size || got != want {
		return "", "", fmt.Errorf("copy differs: %d bytes, sha256 %s; legacy object %d bytes, sha256 %s", size, got, ob.size, want)
	}
	return want, strings.Join(changes, "; "), nil
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

// userClones maps every provisioned legacy user to its clone context.
func (m *Migrator) userClones(ctx context.Context) (map[string]clone.CloneContext, error) {
	_, byUser, err := m.userContexts(ctx, false)
	return byUser, err
}

// DeleteLegacyObjects is the separate, explicit last step of the object migration: it
// deletes each legacy object whose copy is recorded, after checking again that the
// legacy object is unchanged since the copy (size and ETag) and that the copy is in its
// clone (size; with o.Deep also SHA-256). Objects that fail a check are kept and
// reported. Deletions are recorded, so the step resumes where it stopped. Objects
// never copied (refused, out of scope) are never deleted, nor are copied ones declared
// out of scope since (counted in OutOfScope). On a versioned legacy bucket
// the deletion adds a delete marker; remove old versions with the bucket's lifecycle
// rules. With o.DryRun it only counts what it would delete.
func (m *Migrator) DeleteLegacyObjects(ctx context.Context, o *ObjectOptions) (*ObjectReport, error) {
	if _, err := o.check(); err != nil {
		return nil, err
	}
	done, err := m.ledger(ctx)
	if err != nil {
		return nil, err
	}
	ccOf, err := m.userClones(ctx)
	if err != nil {
		return nil, err
	}
	scope, err := m.objectScope(ctx)
	if err != nil {
		return nil, err
	}
	rep := &ObjectReport{}
	keys := make([]string, 0, len(done))
	for k, l := range done {
		if _, out := scope.match(k); out && !l.DeletedAt.Valid {
			rep.OutOfScope++ // declared out of scope after its copy: kept
		} else if !l.DeletedAt.Valid {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for i, k := range keys {
		if err := m.cfg.at(ctx, "delete-object", i); err != nil {
			return rep, err
		}
		rep.Listed++
		if err := m.deleteLegacyObject(ctx, o, done[k], ccOf, rep); err != nil {
			return rep, err
		}
		m.cfg.Progress(Progress{Step: "delete-objects", Table: done[k].UserID, Done: int64(i + 1), Total: int64(len(keys))})
	}
	return rep, nil
}

// deleteLegacyObject deletes one recorded legacy object if it and its copy pass their
// checks; a failed check is a problem of the object, a failed bookkeeping an error.
func (m *Migrator) deleteLegacyObject(ctx context.Context, o *ObjectOptions, l ledgerRow, ccOf map[string]clone.CloneContext, rep *ObjectReport) error {
	const op = "legacy.DeleteLegacyObjects"
	k := l.Key
	record := func() error {
		if _, err := m.db.ExecContext(ctx, "UPDATE cloneiso_legacy_objects SET deleted_at = now() WHERE legacy_key = $1", k); err != nil {
			return classify(op, err, "record deletion")
		}
		return nil
	}
	keep := func(reason string) {
		rep.Problems = append(rep.Problems, Problem{Key: k, UserID: l.UserID, Reason: reason})
	}
	head, err := o.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.LegacyBucket), Key: aws.String(k)})
	var nf *types.NotFound
	if errors.As(err, &nf) {
		// Already gone (deleted before the bookkeeping of an interrupted run).
		if o.DryRun {
			return nil
		}
		return record()
	}
	if err != nil {
		return classify(op, err, "head %s", k)
	}
	if aws.ToInt64(head.ContentLength) != l.Size || aws.ToString(head.ETag) != l.ETag {
		keep("legacy object changed after its copy; kept (run objects again)")
		return nil
	}
	cc, ok := ccOf[l.UserID]
	if !ok {
		keep("user has no clone; kept")
		return nil
	}
	if err := checkCopy(ctx, o, cc, l); err != nil {
		keep("copy failed its check; kept: " + err.Error())
		return nil
	}
	if o.DryRun {
		rep.Deleted++
		return nil
	}
	if _, err := o.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(o.LegacyBucket), Key: aws.String(k)}); err != nil {
		keep("delete: " + err.Error())
		return nil
	}
	if err := record(); err != nil {
		return err
	}
	rep.Deleted++
	return nil
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
