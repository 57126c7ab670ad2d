package records

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Size limits, in bytes of UTF-8, checked before any statement runs. A value over its
// limit is refused with clone.ErrTooLarge. Every text field must also be valid UTF-8
// without NUL bytes (PostgreSQL cannot store NUL in text), or it is refused with
// clone.ErrInvalidInput.
const (
	// MaxContentBytes bounds the large text fields: chunk, insight and message content,
	// and a training example's prompt and response.
	MaxContentBytes = 1 << 20
	// MaxTitleBytes bounds titles and the other descriptive strings of documents and
	// conversations (title, source name, object key).
	MaxTitleBytes = 1024
	// MaxShortBytes bounds identifiers and labels: a document's content type and content
	// hash, an insight's category, a chunk's vector ID, a conversation's subject and the
	// legacy user ID of every record.
	MaxShortBytes = 255
	// MaxErrorBytes bounds a document's error message.
	MaxErrorBytes = 4096
	// MaxJSONBytes bounds a record's metadata and a message's citations, as given.
	MaxJSONBytes = 64 << 10
	// MaxChunksPerDocument bounds the chunks [ReplaceDocumentChunks] stores for one document.
	MaxChunksPerDocument = 10000
	// MaxChunkKeys bounds the keys one [GetChunks] call looks up.
	MaxChunkKeys = 1000
	// MaxInt32 bounds the integer columns of chunks (ordinal, token count, offsets) and a
	// document's chunk count: they are 32-bit on PostgreSQL.
	MaxInt32 = 1<<31 - 1
)

// Page sizes of the List functions.
const (
	DefaultPageSize = 50   // items per page when ListOptions.Limit is 0
	MaxPageSize     = 1000 // the largest ListOptions.Limit accepted
)

// ListOptions select one page of a List function; nil means the first page of
// DefaultPageSize items in ascending order.
type ListOptions struct {
	// Limit is the most items to return: 0 means DefaultPageSize; more than
	// MaxPageSize is refused with clone.ErrInvalidInput.
	Limit int
	// Cursor is Page.Next of the previous page, or "" for the first page. A cursor is
	// opaque and belongs to the clone, the list (and the document or conversation) and
	// the direction it came from; any other use is refused with clone.ErrInvalidInput.
	Cursor string
	// Descending lists newest first (for chunks: highest ordinal first).
	Descending bool
}

// Page is one page of a List function.
type Page[T any] struct {
	Items []T `json:"items"`
	// Next is the cursor of the following page, or "" when this is the last one.
	Next string `json:"next,omitempty"`
}

// DocumentStatus is where ingestion has got with a document.
type DocumentStatus string

// Document statuses, as ingestion moves a document along.
const (
	StatusPending    DocumentStatus = "pending"    // stored, not yet processed (the default on create)
	StatusProcessing DocumentStatus = "processing" // being chunked and embedded
	StatusReady      DocumentStatus = "ready"      // chunks and vectors are in place
	StatusFailed     DocumentStatus = "failed"     // ingestion failed; Document.Error says why
)

// MessageRole is who wrote a message.
type MessageRole string

// Message roles.
const (
	RoleSystem    MessageRole = "system"    // instructions to the model
	RoleUser      MessageRole = "user"      // the person talking to the clone
	RoleAssistant MessageRole = "assistant" // the clone
)

// clock returns the current time; tests replace it to force equal timestamps.
var clock atomic.Pointer[func() time.Time]

// now is the time stamped on records: UTC, truncated to microseconds (PostgreSQL's
// precision) so both dialects store and return the same instant.
func now() time.Time {
	t := time.Now()
	if f := clock.Load(); f != nil {
		t = (*f)()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// WithAudit returns q with audit sink s in place of its own. A *clonesql.DB and a
// transaction's Querier ([clonesql.Tx.Querier]) report their sinks themselves (a Tx of
// [clonesql.DB.WithTx] holds events until it has ended), so pass them as they are; use WithAudit to send denials
// elsewhere, or, with audit.Discard, to record none (repository functions still deny).
// A nil s means audit.DefaultSink. A sink failure never changes a denial; it is logged
// with the whole event and counted (audit.Emit). Inside
// a transaction, a SQL sink on the same SQLite database given here would wait for the
// transaction's write lock: prefer the Tx's own sink there.
func WithAudit(q clonesql.Querier, s audit.Sink) clonesql.Querier {
	if q == nil {
		return nil
	}
	return audited{Querier: q, sink: s}
}

type audited struct {
	clonesql.Querier
	sink audit.Sink
}

func (a audited) Audit() audit.Sink { return a.sink }

type auditor interface{ Audit() audit.Sink }

func sinkOf(q clonesql.Querier) audit.Sink {
	if a, ok := q.(auditor); ok {
		return a.Audit()
	}
	return nil
}

// deny records one denial by the clone in cc.
func deny(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op, reason string, detail map[string]string) {
	ev := audit.Event{Action: op, Outcome: audit.Denied, Reason: reason, Detail: detail}
	if cc.Valid() {
		ev.Actor, ev.TenantID, ev.CloneID = cc.Principal().Subject, cc.TenantID(), cc.CloneID()
	}
	audit.Emit(ctx, sinkOf(q), ev)
}

// notFound audits and returns the answer to an ID the clone does not own: it is missing
// or it is another clone's, and the caller must not learn which.
func notFound(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op, record string, id string) error {
	deny(ctx, q, cc, op, "no such "+record+" for this clone (missing or another clone's)",
		map[string]string{"record": record, "target_id": id})
	return errs.New(errs.NotFound, op, "%s not found", record)
}

// begin checks what every repository function needs before it validates its payload: a
// Querier and a valid clone context (a missing context is audited).
func begin(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string) error {
	if err := cc.Validate(op); err != nil {
		deny(ctx, q, cc, op, "no clone context", nil)
		return err
	}
	if q == nil {
		return errs.New(errs.InvalidInput, op, "nil Querier")
	}
	return nil
}

// checkScope refuses a payload that names another tenant or clone (zero means unset and
// is filled from the context).
func checkScope(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string, tenantID, cloneID uuid.UUID) error {
	if (tenantID == uuid.Nil || tenantID == cc.TenantID()) && (cloneID == uuid.Nil || cloneID == cc.CloneID()) {
		return nil
	}
	deny(ctx, q, cc, op, "payload names another clone", map[string]string{
		"target_tenant_id": tenantID.String(), "target_clone_id": cloneID.String()})
	return errs.New(errs.CloneMismatch, op, "tenant or clone ID of the record differs from the clone context")
}

// newID returns id, or a new random ID if id is zero; the max UUID is refused.
func newID(op, field string, id uuid.UUID) (uuid.UUID, error) {
	if id == uuid.Nil {
		return uuid.New(), nil
	}
	if id == uuid.Max {
		return uuid.Nil, errs.New(errs.InvalidInput, op, "%s: the max UUID is not an ID", field)
	}
	return id, nil
}

// checkID refuses the nil and max UUID as the ID of a record to look up.
func checkID(op, field string, id uuid.UUID) error {
	if id == uuid.Nil || id == uuid.Max {
		return errs.New(errs.InvalidInput, op, "%s: not a record ID", field)
	}
	return nil
}

// checkText validates a text field: at most max bytes of valid UTF-8 without NUL.
func checkText(op, field, s string, max int, required bool) error {
	switch {
	case len(s) > max:
		return errs.New(errs.TooLarge, op, "%s is %d bytes; the limit is %d", field, len(s), max)
	case !utf8.ValidString(s):
		return errs.New(errs.InvalidInput, op, "%s is not valid UTF-8", field)
	case strings.IndexByte(s, 0) >= 0:
		return errs.New(errs.InvalidInput, op, "%s contains a NUL byte", field)
	case required && strings.TrimSpace(s) == "":
		return errs.New(errs.InvalidInput, op, "%s is empty", field)
	}
	return nil
}

func checkUserID(op string, u *string) error {
	if u == nil {
		return nil
	}
	return checkText(op, "user ID", *u, MaxShortBytes, false)
}

func checkCount(op, field string, n int64, max int64) error {
	if n < 0 || n > max {
		return errs.New(errs.InvalidInput, op, "%s %d out of range [0, %d]", field, n, max)
	}
	return nil
}

// jsonText validates raw as JSON of the wanted shape ('{' object or '[' array; empty
// means the empty one) and returns it in a canonical compact form, as a string: on
// PostgreSQL with binary parameters a []byte would be sent as binary jsonb. Strings
// holding NUL (\u0000, which jsonb refuses) and numbers beyond float64 are refused; lone
// surrogates are replaced.
func jsonText(op, field string, raw json.RawMessage, shape byte) (string, error) {
	empty := "{}"
	if shape == '[' {
		empty = "[]"
	}
	if len(raw) == 0 {
		return empty, nil
	}
	if len(raw) > MaxJSONBytes {
		return "", errs.New(errs.TooLarge, op, "%s is %d bytes; the limit is %d", field, len(raw), MaxJSONBytes)
	}
	if !utf8.Valid(raw) {
		return "", errs.New(errs.InvalidInput, op, "%s is not valid UTF-8", field)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", errs.New(errs.InvalidInput, op, "%s is not valid JSON", field)
	}
	if dec.More() {
		return "", errs.New(errs.InvalidInput, op, "%s has data after the JSON value", field)
	}
	switch v.(type) {
	case map[string]any:
		if shape != '{' {
			return "", errs.New(errs.InvalidInput, op, "%s must be a JSON array", field)
		}
	case []any:
		if shape != '[' {
			return "", errs.New(errs.InvalidInput, op, "%s must be a JSON object", field)
		}
	default:
		if shape == '[' {
			return "", errs.New(errs.InvalidInput, op, "%s must be a JSON array", field)
		}
		return "", errs.New(errs.InvalidInput, op, "%s must be a JSON object", field)
	}
	if err := checkJSONValue(v); err != "" {
		return "", errs.New(errs.InvalidInput, op, "%s %s", field, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", errs.Wrap(errs.InvalidInput, op, err, "%s", field)
	}
	return string(b), nil
}

// checkJSONValue describes what in v cannot be stored on both dialects and read back
// by any JSON client, or returns "": a NUL character (jsonb refuses it) or a number out
// of the float64 range.
func checkJSONValue(v any) string {
	switch x := v.(type) {
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			return "contains a NUL character"
		}
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			return "has a number out of range"
		}
	case map[string]any:
		for k, e := range x {
			if strings.IndexByte(k, 0) >= 0 {
				return "contains a NUL character"
			}
			if s := checkJSONValue(e); s != "" {
				return s
			}
		}
	case []any:
		for _, e := range x {
			if s := checkJSONValue(e); s != "" {
				return s
			}
		}
	}
	return ""
}

// inTx runs fn in one transaction: on a *clonesql.DB (possibly wrapped by WithAudit) it
// opens a scoped one; anything else (a transaction's Querier, or a host's own) is used as it
// is, so the host's transaction decides.
//
// Denials inside a transaction it opened are recorded after the transaction ends: a
// sink that writes to the same SQLite database would otherwise wait for the write lock
// the transaction holds (and the denial must be recorded even though the transaction
// rolls back).
func inTx(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, fn func(q clonesql.Querier) error) error {
	inner := q
	if a, ok := q.(audited); ok {
		inner = a.Querier
	}
	db, ok := inner.(*clonesql.DB)
	if !ok {
		return fn(q)
	}
	var held []audit.Event
	hold := audit.SinkFunc(func(_ context.Context, e audit.Event) error {
		held = append(held, e)
		return nil
	})
	err := db.WithTx(ctx, cc, func(tx *clonesql.Tx) error { return fn(WithAudit(tx.Querier(), hold)) })
	for _, e := range held {
		audit.Emit(ctx, sinkOf(q), e)
	}
	return err
}

// cursor is the decoded form of Page.Next.
type cursor struct {
	V     int       `json:"v"`           // format version
	List  string    `json:"l"`           // which list
	Scope string    `json:"s"`           // fingerprint of the clone
	Of    uuid.UUID `json:"p,omitzero"`  // document or conversation, for child lists
	Desc  bool      `json:"d,omitempty"` // direction
	At    time.Time `json:"t,omitzero"`  // created_at of the last item
	ID    uuid.UUID `json:"i,omitzero"`  // id of the last item
	Ord   int64     `json:"o,omitempty"` // ordinal of the last chunk
}

// scopeFingerprint identifies the clone a cursor was issued to without spelling out
// its IDs.
func scopeFingerprint(cc clone.CloneContext) string {
	h := sha256.Sum256([]byte("cloneiso.records.cursor\x00" + cc.TenantID().String() + "\x00" + cc.CloneID().String()))
	return hex.EncodeToString(h[:12])
}

func encodeCursor(c cursor) string {
	c.V = 1
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads s for list, refusing a cursor of another list, direction, parent
// or clone. A cursor of another clone is audited: it can only come from outside.
func decodeCursor(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op, list string, of uuid.UUID, desc bool, s string) (cursor, error) {
	var c cursor
	if len(s) > 512 {
		return c, errs.New(errs.InvalidInput, op, "invalid cursor")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.V != 1 {
		return cursor{}, errs.New(errs.InvalidInput, op, "invalid cursor")
	}
	if c.Scope != scopeFingerprint(cc) {
		deny(ctx, q, cc, op, "cursor issued to another clone", map[string]string{"record": list})
		return cursor{}, errs.New(errs.InvalidInput, op, "cursor does not belong to this clone")
	}
	if c.List != list || c.Of != of || c.Desc != desc {
		return cursor{}, errs.New(errs.InvalidInput, op, "cursor belongs to another list or direction")
	}
	if c.Ord < 0 || c.Ord > MaxInt32 {
		return cursor{}, errs.New(errs.InvalidInput, op, "invalid cursor")
	}
	return c, nil
}

// pageLimit returns the page size of opts.
func pageLimit(op string, opts *ListOptions) (int, error) {
	if opts == nil || opts.Limit == 0 {
		return DefaultPageSize, nil
	}
	if opts.Limit < 0 || opts.Limit > MaxPageSize {
		return 0, errs.New(errs.InvalidInput, op, "limit %d out of range [1, %d]", opts.Limit, MaxPageSize)
	}
	return opts.Limit, nil
}

// keyset describes one paginated list: its table, columns, optional parent column and
// sort key (created_at and id, or a chunk's ordinal).
type keyset struct {
	list      string // name in cursors and audit events
	table     string
	cols      string
	parentCol string // "" for top-level lists
	ordinal   bool   // sort by ordinal (chunks) instead of (created_at, id)
	queries   [2][2]string
}

func newKeyset(list, table, cols, parentCol string, ordinal bool) *keyset {
	k := &keyset{list: list, table: table, cols: cols, parentCol: parentCol, ordinal: ordinal}
	for d, desc := range []bool{false, true} {
		for a, after := range []bool{false, true} {
			q := "SELECT " + cols + " FROM " + table + " WHERE tenant_id = :tenant_id AND clone_id = :clone_id"
			if parentCol != "" {
				q += " AND " + parentCol + " = :parent_id"
			}
			cmp, dir := " > ", " ASC"
			if desc {
				cmp, dir = " < ", " DESC"
			}
			if after {
				if ordinal {
					q += " AND ordinal" + cmp + ":after_ordinal"
				} else {
					q += " AND (created_at, id)" + cmp + "(:after_at, :after_id)"
				}
			}
			if ordinal {
				q += " ORDER BY ordinal" + dir
			} else {
				q += " ORDER BY created_at" + dir + ", id" + dir
			}
			k.queries[d][a] = q + " LIMIT :limit"
		}
	}
	return k
}

// listPage runs one page of k for parent (uuid.Nil for top-level lists), scanning rows
// into R and converting them with conv; pos returns the sort key of an item.
func listPage[R, T any](ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string, k *keyset,
	parent uuid.UUID, opts *ListOptions, conv func(R) T, pos func(T) (time.Time, uuid.UUID, int64),
) (Page[T], error) {
	limit, err := pageLimit(op, opts)
	if err != nil {
		return Page[T]{}, err
	}
	var o ListOptions
	if opts != nil {
		o = *opts
	}
	arg := map[string]any{"limit": limit + 1}
	if k.parentCol != "" {
		arg["parent_id"] = parent
	}
	d, a := 0, 0
	if o.Descending {
		d = 1
	}
	if o.Cursor != "" {
		c, err := decodeCursor(ctx, q, cc, op, k.list, parent, o.Descending, o.Cursor)
		if err != nil {
			return Page[T]{}, err
		}
		a = 1
		if k.ordinal {
			arg["after_ordinal"] = c.Ord
		} else {
			arg["after_at"], arg["after_id"] = c.At.UTC(), c.ID
		}
	}
	var rows []R
	if err := q.Select(ctx, cc, &rows, k.queries[d][a], arg); err != nil {
		return Page[T]{}, err
	}
	p := Page[T]{Items: make([]T, 0, min(len(rows), limit))}
	for i, r := range rows {
		if i == limit {
			at, id, ord := pos(p.Items[limit-1])
			p.Next = encodeCursor(cursor{List: k.list, Scope: scopeFingerprint(cc), Of: parent, Desc: o.Descending, At: at, ID: id, Ord: ord})
			break
		}
		p.Items = append(p.Items, conv(r))
	}
	return p, nil
}

// count returns the number of k's rows of the clone (under parent, for child lists).
func count(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, k *keyset, parent uuid.UUID) (int64, error) {
	query := "SELECT count(*) FROM " + k.table + " WHERE tenant_id = :tenant_id AND clone_id = :clone_id"
	arg := map[string]any{}
	if k.parentCol != "" {
		query += " AND " + k.parentCol + " = :parent_id"
		arg["parent_id"] = parent
	}
	var n int64
	err := q.Get(ctx, cc, &n, query, arg)
	return n, err
}

// exists reports whether the clone has a row id in table.
func exists(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, table string, id uuid.UUID) (bool, error) {
	var n int64
	err := q.Get(ctx, cc, &n, "SELECT count(*) FROM "+table+" WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id",
		map[string]any{"id": id})
	return n > 0, err
}

// deleteByID deletes row id of table, answering not found (audited) when the clone has
// no such row.
func deleteByID(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op, record, table string, id uuid.UUID) error {
	if err := begin(ctx, q, cc, op); err != nil {
		return err
	}
	if err := checkID(op, record+" ID", id); err != nil {
		return err
	}
	res, err := q.Exec(ctx, cc, "DELETE FROM "+table+" WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id",
		map[string]any{"id": id})
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return clonesql.ClassifyError(op, err)
	} else if n == 0 {
		return notFound(ctx, q, cc, op, record, id.String())
	}
	return nil
}

// getByID reads row id of table into dest, answering not found (audited) when the
// clone has no such row.
func getByID(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op, record, query string, dest any, id uuid.UUID) error {
	if err := begin(ctx, q, cc, op); err != nil {
		return err
	}
	if err := checkID(op, record+" ID", id); err != nil {
		return err
	}
	return found(ctx, q, cc, op, record, id, q.Get(ctx, cc, dest, query, map[string]any{"id": id}))
}

// found turns a not-found error of a statement about id into the audited answer.
func found(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op, record string, id uuid.UUID, err error) error {
	if errs.KindOf(err) == errs.NotFound {
		return notFound(ctx, q, cc, op, record, id.String())
	}
	return err
}

func utc(t time.Time) time.Time { return t.UTC() }

// Tables lists the tables of cloneiso's schema that hold clone content, parents before
// children: each has tenant_id and clone_id columns leading its keys and, on PostgreSQL,
// a forced row-level security policy (package migrate creates them). The slice is new
// on every call.
func Tables() []string {
	return []string{"documents", "document_chunks", "insights", "training_examples", "conversations", "messages"}
}
