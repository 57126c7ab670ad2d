package legacy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"mime"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"golang.org/x/text/unicode/norm"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore"
)

// objectDDL is the object migration's part of the bookkeeping (Adopt runs it after
// internalDDL); the object steps run it again so that a database adopted by an older version gets it.
const objectDDL = `
CREATE TABLE IF NOT EXISTS cloneiso_legacy_object_scope (
    entry       text        PRIMARY KEY, -- a legacy key, or a prefix ending in "/"
    reason      text        NOT NULL,
    declared_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE cloneiso_legacy_objects ADD COLUMN IF NOT EXISTS changes text NOT NULL DEFAULT ''; -- what Sanitize changed
`

func (m *Migrator) ensureObjectTables(ctx context.Context) error {
	const op = "legacy.Objects"
	if ok, err := tableExists(ctx, m.db, "cloneiso_legacy_objects"); err != nil {
		return classify(op, err, "catalog")
	} else if !ok {
		return errs.New(errs.Conflict, op, "the database was not adopted: run up (adopt) and backfill first")
	}
	if _, err := m.db.ExecContext(ctx, objectDDL); err != nil {
		return classify(op, err, "bookkeeping tables")
	}
	return nil
}

// ScopeEntry is an operator's decision that legacy objects are out of the migration's
// scope: they are neither copied, nor verified, nor deleted, and rows naming them keep
// their legacy keys.
type ScopeEntry struct {
	// Entry is a legacy key, or a prefix if it ends in "/" ("static/" covers every key
	// under it, "robots.txt" only that key).
	Entry      string    `db:"entry"`
	Reason     string    `db:"reason"`
	DeclaredAt time.Time `db:"declared_at"`
}

type objectScope []ScopeEntry

func (s objectScope) match(key string) (ScopeEntry, bool) {
	for _, e := range s {
		if key == e.Entry || strings.HasSuffix(e.Entry, "/") && strings.HasPrefix(key, e.Entry) {
			return e, true
		}
	}
	return ScopeEntry{}, false
}

// objectScope reads the recorded scope decisions (none before adoption).
func (m *Migrator) objectScope(ctx context.Context) (objectScope, error) {
	if ok, err := tableExists(ctx, m.db, "cloneiso_legacy_object_scope"); err != nil || !ok {
		return nil, classify("legacy.Objects", err, "catalog")
	}
	var out objectScope
	if err := m.db.SelectContext(ctx, &out, "SELECT entry, reason, declared_at FROM cloneiso_legacy_object_scope ORDER BY entry"); err != nil {
		return nil, classify("legacy.Objects", err, "read the object scope")
	}
	return out, nil
}

// ObjectsOutOfScope returns the recorded out-of-scope decisions, in entry order.
func (m *Migrator) ObjectsOutOfScope(ctx context.Context) ([]ScopeEntry, error) {
	return m.objectScope(ctx)
}

// DeclareObjectsOutOfScope records the operator's decision that the legacy objects
// named by entries (keys, or prefixes ending in "/") are out of the migration's scope,
// with the reason (required, kept for the record). The object steps then leave them
// alone and report them as out of scope instead of as problems; rows that name them
// keep their legacy keys. Declaring an entry again updates its reason. The decision is
// reversible until the end with [Migrator.WithdrawObjectsOutOfScope].
func (m *Migrator) DeclareObjectsOutOfScope(ctx context.Context, entries []string, reason string) error {
	const op = "legacy.DeclareObjectsOutOfScope"
	if len(entries) == 0 || strings.TrimSpace(reason) == "" {
		return errs.New(errs.InvalidInput, op, "entries and a reason are required")
	}
	for _, e := range entries {
		if e == "" || e == "/" || strings.HasPrefix(e, "tenants/") || !utf8.ValidString(e) {
			return errs.New(errs.InvalidInput, op, "entry %q: want a legacy key or a prefix ending in \"/\" (not empty, not the whole bucket, not the clone layout)", e)
		}
	}
	if err := m.ensureObjectTables(ctx); err != nil {
		return err
	}
	return m.inTx(ctx, op, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_object_scope (entry, reason) SELECT unnest($1::text[]), $2
			ON CONFLICT (entry) DO UPDATE SET reason = EXCLUDED.reason`, pq.StringArray(entries), reason)
		return err
	})
}

// WithdrawObjectsOutOfScope forgets out-of-scope decisions (exact entries); the
// objects they covered are accounted for again by the next step. It returns how many
// entries were recorded.
func (m *Migrator) WithdrawObjectsOutOfScope(ctx context.Context, entries []string) (int64, error) {
	const op = "legacy.WithdrawObjectsOutOfScope"
	if err := m.ensureObjectTables(ctx); err != nil {
		return 0, err
	}
	res, err := m.db.ExecContext(ctx, "DELETE FROM cloneiso_legacy_object_scope WHERE entry = ANY($1)", pq.StringArray(entries))
	if err != nil {
		return 0, classify(op, err, "withdraw")
	}
	return res.RowsAffected()
}

// objectRef is a legacy key named by rows of an object key column.
type objectRef struct {
	Table  string `db:"-"`
	UserID string `db:"user_id"`
	Key    string `db:"object_key"`
	Rows   int64  `db:"n"`
}

// references returns the distinct legacy keys (not in the clone layout) that the
// configured object key columns name, with the rows' user.
func (m *Migrator) references(ctx context.Context) ([]objectRef, error) {
	const op = "legacy.Objects"
	var out []objectRef
	for _, t := range m.cfg.Tables {
		if t.ObjectKeyColumn == "" {
			continue
		}
		if ok, err := tableExists(ctx, m.db, t.Name); err != nil {
			return nil, classify(op, err, "catalog")
		} else if !ok {
			continue
		}
		cols, err := columnsOf(ctx, m.db, t.Name)
		if err != nil {
			return nil, classify(op, err, "catalog")
		}
		if !slices.Contains(cols, t.ObjectKeyColumn) {
			return nil, errs.New(errs.InvalidInput, op, "table %s has no object key column %s", t.Name, t.ObjectKeyColumn)
		}
		kc, uc := pq.QuoteIdentifier(t.ObjectKeyColumn), pq.QuoteIdentifier(t.userColumn())
		var refs []objectRef
		if err := m.db.SelectContext(ctx, &refs, `SELECT coalesce(`+uc+`::text, '') AS user_id, `+kc+` AS object_key, count(*) AS n
			FROM `+pq.QuoteIdentifier(t.Name)+` WHERE `+kc+` <> '' AND NOT starts_with(`+kc+`, 'tenants/') GROUP BY 1, 2 ORDER BY 2, 1`); err != nil {
			return nil, classify(op, err, "%s.%s", t.Name, t.ObjectKeyColumn)
		}
		for i := range refs {
			refs[i].Table = t.Name + "." + t.ObjectKeyColumn
		}
		out = append(out, refs...)
	}
	return out, nil
}

// accountReferences checks every legacy key a row names: copied (in the ledger), to
// copy into the row's user's clone, or out of scope; anything else is a row problem.
func (m *Migrator) accountReferences(ctx context.Context, sv *objectSurvey, rep *ObjectReport) error {
	refs, err := m.references(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, r := range refs {
		if !seen[r.Key] {
			seen[r.Key] = true
			rep.References++
		}
		problem := func(format string, args ...any) {
			rep.RowProblems = append(rep.RowProblems, Problem{Key: r.Key, UserID: r.UserID,
				Reason: fmt.Sprintf("named by %d rows of %s: ", r.Rows, r.Table) + fmt.Sprintf(format, args...)})
		}
		owner := ""
		if _, ok := sv.scope.match(r.Key); ok {
			continue
		} else if l, ok := sv.ledger[r.Key]; ok {
			owner = l.UserID
		} else if i, ok := sv.inv.byKey[r.Key]; ok {
			owner = sv.inv.objs[i].user
		} else if _, ok := sv.inv.listed[r.Key]; ok {
			problem("the object is refused (see its problem): fix it, or declare it out of scope")
			continue
		} else {
			problem("no such object in the legacy bucket: fix or clear the rows' key, or declare the key out of scope")
			continue
		}
		if owner != r.UserID {
			problem("the object belongs to user %q, not to the rows' user %q: its copy goes to %q's clone; fix the rows or the object", owner, r.UserID, owner)
		}
	}
	return nil
}

// sanitizeName turns a name the SDK refuses into one it accepts: NFC, "%xx" escapes
// and refused characters replaced by "_", "." and ".." segments, device names and
// segments ending in a dot or space made harmless; if that is still refused, a name
// made of a hash of the legacy key (with the extension, if harmless).
func sanitizeName(name, key string) string {
	n := norm.NFC.String(name)
	var b strings.Builder
	for i := 0; i < len(n); {
		r, size := utf8.DecodeRuneInString(n[i:])
		switch {
		case r == '/':
			b.WriteByte('/')
		case r == '%' && i+2 < len(n) && isHexDigit(n[i+1]) && isHexDigit(n[i+2]):
			b.WriteByte('_')
		case r == utf8.RuneError && size <= 1, objectstore.ValidateName("a"+string(r)+"a") != nil:
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
		i += size
	}
	segs := strings.Split(b.String(), "/")
	out := segs[:0]
	for _, s := range segs {
		switch {
		case s == "", s == ".":
			continue
		case s == "..":
			s = "__"
		}
		if strings.HasSuffix(s, ".") || strings.HasSuffix(s, " ") {
			s += "_"
		}
		if objectstore.ValidateName(s) != nil && objectstore.ValidateName("_"+s) == nil {
			s = "_" + s // a Windows device name
		}
		out = append(out, s)
	}
	if s := strings.Join(out, "/"); objectstore.ValidateName(s) == nil {
		return s
	}
	h := sha256.Sum256([]byte(key))
	s := "sanitized-" + hex.EncodeToString(h[:8])
	if ext := path.Ext(name); objectstore.ValidateName(s+ext) == nil {
		s += ext
	}
	return s
}

// withSuffix inserts a short hash of key before name's extension, to keep apart two
// legacy objects whose sanitized names are the same.
func withSuffix(name, key string) string {
	h := sha256.Sum256([]byte(key))
	ext := path.Ext(name)
	if strings.Contains(ext, "/") || ext == name {
		ext = ""
	}
	return strings.TrimSuffix(name, ext) + "~" + hex.EncodeToString(h[:4]) + ext
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// sanitizeWrite makes a legacy object's Content-Type and metadata acceptable to the
// SDK and returns what it changed.
func sanitizeWrite(wo *objectstore.WriteOptions) []string {
	var changes []string
	if wo.ContentType != "" {
		if _, _, err := mime.ParseMediaType(wo.ContentType); err != nil {
			changes = append(changes, fmt.Sprintf("content type %q replaced by application/octet-stream", wo.ContentType))
			wo.ContentType = "application/octet-stream"
		}
	}
	if len(wo.Metadata) == 0 {
		return changes
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range wo.Metadata {
			if !yield(k) {
				return
			}
		}
	})
	md := make(map[string]string, len(keys))
	for _, k := range keys {
		v := wo.Metadata[k]
		nk := k
		if !validMetaKey(k) {
			nk = metaKey(k)
			for i := 2; ; i++ {
				_, inCopy := md[nk]
				_, inLegacy := wo.Metadata[nk]
				if !inCopy && !inLegacy {
					break
				}
				nk = fmt.Sprintf("%s-%d", metaKey(k), i)
			}
			changes = append(changes, fmt.Sprintf("metadata key %q renamed %q", k, nk))
		}
		if !printableASCII(v) {
			v = url.QueryEscape(v)
			changes = append(changes, fmt.Sprintf("metadata %q percent-encoded", nk))
		}
		md[nk] = v
	}
	wo.Metadata = md
	return changes
}

// writeProblem says why objectstore.Bucket.Put would refuse wo's Content-Type or
// metadata, or ""; fixable is whether Sanitize fixes it.
func writeProblem(wo *objectstore.WriteOptions) (why string, fixable bool) {
	if wo.ContentType != "" {
		if _, _, err := mime.ParseMediaType(wo.ContentType); err != nil {
			return fmt.Sprintf("Content-Type %q does not parse", wo.ContentType), true
		}
	}
	total := 0
	for _, k := range slices.Sorted(maps.Keys(wo.Metadata)) {
		v := wo.Metadata[k]
		if !validMetaKey(k) {
			return fmt.Sprintf("metadata key %q is refused (a-z, 0-9 and '-' only, not cloneiso-...)", k), true
		}
		if !printableASCII(v) {
			return fmt.Sprintf("metadata %q is not printable ASCII", k), true
		}
		total += len(k) + len(v)
	}
	if total > objectstore.MaxMetadataSize {
		return fmt.Sprintf("metadata of %d bytes (at most %d)", total, objectstore.MaxMetadataSize), false
	}
	return "", true
}

func validMetaKey(k string) bool {
	if k == "" || len(k) > 64 || strings.HasPrefix(k, "cloneiso-") {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// metaKey maps a refused metadata key to "legacy-" and its letters and digits.
func metaKey(k string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(k) {
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	s := "legacy-" + strings.Trim(b.String(), "-")
	return strings.TrimSuffix(s[:min(len(s), 56)], "-")
}

func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
